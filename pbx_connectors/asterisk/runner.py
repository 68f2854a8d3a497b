"""Runs the Asterisk connectors (FastAGI server, one AMI client per PBX) inside the engine.

``charging-engine serve`` calls ``run_asterisk`` when ``CE_ASTERISK_CONFIG`` names a TOML file
(format in ``config.py``). A configuration error stops the engine at start with a message that
names the file and the key.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from charging_engine.bootstrap import Engine
from pbx_connectors.asterisk.config import load_config
from pbx_connectors.asterisk.connector import PbxConnector

log = logging.getLogger("pbx_connectors.asterisk")


async def run_asterisk(engine: Engine, config: Path, stop: asyncio.Event) -> None:
    cfg = load_config(config)
    for pbx in cfg.pbx:
        pbx.ami.resolved_secret()  # a missing secret variable is a start-up error
    connectors = [PbxConnector(engine.service, pbx) for pbx in cfg.pbx]
    log.info("Asterisk connectors: %s", ", ".join(c.name for c in connectors))
    async with asyncio.TaskGroup() as tg:
        for c in connectors:
            tg.create_task(c.run(stop))

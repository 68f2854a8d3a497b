"""Runs the Asterisk connectors (FastAGI server, one AMI client per PBX) inside the engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

from charging_engine.bootstrap import Engine


async def run_asterisk(engine: Engine, config: Path, stop: asyncio.Event) -> None:
    raise NotImplementedError("the Asterisk connector is being built (issue 3)")

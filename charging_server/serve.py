"""``charging-engine serve``: one engine process with everything an operator switched on.

The real-time API always; the admin API unless ``CE_ADMIN_PORT=off``; the Asterisk connectors
when ``CE_ASTERISK_CONFIG`` names a file; settlement, the sweeper, catalogue refresh and the
background loops the admin API registered, until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio

import uvicorn
from fastapi import FastAPI

from charging_engine.bootstrap import open_engine
from charging_engine.config import Settings
from charging_engine.realtime.app import create_app
from charging_engine.runtime import tune_gc
from charging_server.billing_cmd import install_billing
from charging_server.migrations import PACKAGES
from charging_server.notifications_cmd import install_notifications


def http_server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    """A listener on the engine's own event loop (no uvicorn loop or lifespan of its own)."""
    return uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, loop="none", http="httptools", log_level="warning",
        access_log=False, lifespan="off",
    ))


async def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    async with open_engine(settings, migrations=PACKAGES) as engine:
        realtime = http_server(
            create_app(engine.service), settings.realtime_host, settings.realtime_port
        )
        others: list[uvicorn.Server] = []
        if settings.admin_port is not None:
            from admin_api.app import create_admin_app

            others.append(http_server(
                create_admin_app(engine), settings.admin_host, settings.admin_port
            ))
            print(f"admin API on http://{settings.admin_host}:{settings.admin_port}", flush=True)
        install_billing(engine)
        install_notifications(engine)
        tune_gc()
        # uvicorn turns SIGINT/SIGTERM into a graceful shutdown of serve(); then the other
        # listeners and background tasks stop, and settlement acknowledges what it wrote.
        stop = asyncio.Event()
        print(f"real-time API on http://{settings.realtime_host}:{settings.realtime_port}",
              flush=True)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(engine.run_background(stop))
            if settings.asterisk_config is not None:
                from pbx_connectors.asterisk.runner import run_asterisk

                tg.create_task(run_asterisk(engine, settings.asterisk_config, stop))
            for other in others:
                tg.create_task(other.serve())
            try:
                await realtime.serve()
            finally:
                for other in others:
                    other.should_exit = True
                stop.set()
    return 0

"""``charging-engine`` command line: serve, settle, migrate, load-data, rebuild-balances, reconcile,
demo. Without REDIS_URL/DATABASE_URL every command runs on private servers it starts itself."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import uvloop

from charging_engine.config import Settings
from charging_engine.runtime import tune_gc

log = logging.getLogger("charging_engine")


@asynccontextmanager
async def _engine(settings: Settings) -> AsyncIterator[object]:
    from charging_engine.bootstrap import open_engine

    async with open_engine(settings) as engine:
        yield engine


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn
    from fastapi import FastAPI

    from charging_engine.bootstrap import open_engine
    from charging_engine.realtime.app import create_app

    def http_server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
        return uvicorn.Server(uvicorn.Config(
            app, host=host, port=port, loop="none", http="httptools", log_level="warning",
            access_log=False, lifespan="off",
        ))

    async with open_engine(settings) as engine:
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


async def cmd_settle(settings: Settings, args: argparse.Namespace) -> int:
    from charging_engine.bootstrap import open_engine

    async with open_engine(settings) as engine:
        if args.once:
            total = 0
            while (n := await engine.settlement.drain_once()) > 0:
                total += n
            print(f"settled {total} ledger entries")
            return 0
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await engine.settlement.run(stop)
    return 0


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from charging_engine.ledger.migrations import migrate

    assert settings.database_url
    applied = await migrate(settings.database_url)
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


async def cmd_load_data(settings: Settings, args: argparse.Namespace) -> int:
    from charging_engine.bootstrap import open_engine
    from charging_engine.loader import TenantData, load_tenant

    data = TenantData.from_files(
        tenant_id=args.tenant, name=args.name or args.tenant, currency=args.currency,
        timezone=args.timezone, plan_id=args.plan, rates=Path(args.rates),
        accounts=Path(args.accounts), pbx_key=args.pbx_key,
    )
    async with open_engine(settings) as engine:
        summary = await load_tenant(engine, data)
    print(summary)
    return 0


async def cmd_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from charging_engine.bootstrap import open_engine
    from charging_engine.ledger.rebuild import rebuild_balances

    async with open_engine(settings) as engine:
        n = await rebuild_balances(engine.redis, engine.pool, settings.buckets, engine.settlement)
    print(f"rebuilt {n} account balances from the ledger")
    return 0


async def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    from charging_engine.bootstrap import open_engine
    from charging_engine.ledger.reconcile import reconcile

    async with open_engine(settings) as engine:
        diffs = await reconcile(engine.redis, engine.pool, settings.buckets, engine.settlement)
    for d in diffs:
        print(f"{d.tenant}/{d.account}: redis={d.redis_balance} ledger={d.ledger_balance} "
              f"redis_seq={d.redis_seq} ledger_seq={d.ledger_seq} ({d.reason})")
    print(f"{len(diffs)} difference(s) between Redis and the Postgres ledger")
    return 1 if diffs else 0


async def cmd_create_platform_key(settings: Settings, args: argparse.Namespace) -> int:
    from charging_engine.ledger.migrations import migrate
    from charging_server.platform_key import create_platform_key

    if not Settings().database_url:  # a key in a throwaway private database is of no use
        print("charging-engine: error: set DATABASE_URL to the deployment's database",
              file=sys.stderr)
        return 2
    assert settings.database_url
    await migrate(settings.database_url)
    key_id, secret = await create_platform_key(settings.database_url, args.name)
    print(f"platform key {key_id} created; its secret (shown once, store it now):\n{secret}")
    return 0


async def cmd_rerate(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import datetime

    from charging_engine.bootstrap import open_engine
    from charging_engine.ledger.rerate import RerateError, rerate, tenant_currency_and_zone
    from charging_engine.rating.deck import parse_deck
    from charging_engine.rating.model import RatePlan

    rates = tuple(parse_deck(await asyncio.to_thread(Path(args.plan_file).read_text)))
    try:
        since, until = (datetime.fromisoformat(v) for v in (args.since, args.until))
        async with open_engine(settings) as engine:
            currency, _ = await tenant_currency_and_zone(engine.pool, args.tenant)
            summary = await rerate(
                engine.store, engine.pool, engine.settlement, tenant=args.tenant,
                plan=RatePlan(args.plan, currency, rates), since=since, until=until,
                run_id=args.run_id,
            )
    except (RerateError, ValueError) as exc:
        print(f"charging-engine: error: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 1 if summary.failed else 0


async def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from charging_server.demo import run_demo

    return await run_demo(settings)


Command = Callable[[Settings, argparse.Namespace], Awaitable[int]]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="charging-engine", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the real-time API, settlement and the sweeper")
    s = sub.add_parser("settle", help="run the settlement worker (Redis streams -> Postgres)")
    s.add_argument("--once", action="store_true", help="drain what is pending and exit")
    sub.add_parser("migrate", help="apply Postgres migrations")
    ld = sub.add_parser("load-data", help="load a tenant, its rates (CSV), accounts (CSV), PBX key")
    ld.add_argument("--tenant", required=True)
    ld.add_argument("--name")
    ld.add_argument("--currency", required=True)
    ld.add_argument("--timezone", default="UTC")
    ld.add_argument("--plan", required=True, help="rate plan id for the rates file")
    ld.add_argument("--rates", required=True, help="rate deck CSV")
    ld.add_argument("--accounts", required=True, help="accounts CSV")
    ld.add_argument("--pbx-key", required=True, help="secret a PBX uses on the real-time API")
    sub.add_parser("rebuild-balances", help="rebuild every Redis balance from the ledger")
    sub.add_parser("reconcile", help="report accounts whose Redis balance differs from the ledger")
    sub.add_parser("demo", help="start everything on private servers and drive simulated PBX calls")
    rr = sub.add_parser("rerate", help="re-rate a period with a corrected rate deck (CSV)")
    rr.add_argument("--tenant", required=True)
    rr.add_argument("--plan", required=True, help="id of the plan the calls were rated under")
    rr.add_argument("--plan-file", required=True, help="the corrected rate deck CSV")
    rr.add_argument("--since", required=True, help="ISO 8601 with offset, included")
    rr.add_argument("--until", required=True, help="ISO 8601 with offset, excluded")
    rr.add_argument("--run-id", required=True, help="names the run; re-running it is a no-op")
    pk = sub.add_parser("create-platform-key", help="create an admin API platform key (shown once)")
    pk.add_argument("--name", default="", help="a label for the key")
    return p


COMMANDS: dict[str, Command] = {
    "serve": cmd_serve, "settle": cmd_settle, "migrate": cmd_migrate,
    "load-data": cmd_load_data, "rebuild-balances": cmd_rebuild, "reconcile": cmd_reconcile,
    "demo": cmd_demo, "create-platform-key": cmd_create_platform_key, "rerate": cmd_rerate,
}


async def _main(args: argparse.Namespace) -> int:
    from charging_engine.devservers import PrivateStack

    settings = Settings()
    if settings.redis_url and settings.database_url:
        return await COMMANDS[args.command](settings, args)
    with PrivateStack(settings.data_dir) as stack:
        print(f"private servers: {stack.redis_url} {stack.database_url}", flush=True)
        local = settings.model_copy(
            update={"redis_url": stack.redis_url, "database_url": stack.database_url}
        )
        return await COMMANDS[args.command](local, args)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from charging_engine.devservers import MissingBinaries
    from charging_engine.loader import LoadError
    from charging_engine.rating.deck import DeckError

    try:
        return uvloop.run(_main(args))
    except KeyboardInterrupt:
        return 130
    except (LoadError, DeckError, FileNotFoundError, MissingBinaries) as exc:
        print(f"charging-engine: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

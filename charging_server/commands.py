"""The operator's one-shot tasks: settle, migrate, load-data, rebuild, reconcile, rerate, keys.

Each takes the settings (with the URLs of the servers it runs on) and its parsed arguments and
returns the process exit code: 0 done, 1 done but something needs attention, 2 refused.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import datetime
from pathlib import Path

from charging_engine.bootstrap import open_engine
from charging_engine.config import Settings
from charging_server.migrations import PACKAGES


def error(message: str) -> int:
    """One line on stderr, exit code 2: how every refused command ends."""
    print(f"charging-engine: error: {message}", file=sys.stderr)
    return 2


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def cmd_settle(settings: Settings, args: argparse.Namespace) -> int:
    async with open_engine(settings, migrations=PACKAGES) as engine:
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
    from charging_server.migrations import migrate

    assert settings.database_url
    applied = await migrate(settings.database_url)
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


async def cmd_load_data(settings: Settings, args: argparse.Namespace) -> int:
    from charging_engine.loader import TenantData, load_tenant

    data = TenantData.from_files(
        tenant_id=args.tenant, name=args.name or args.tenant, currency=args.currency,
        timezone=args.timezone, plan_id=args.plan, rates=Path(args.rates),
        accounts=Path(args.accounts), pbx_key=args.pbx_key,
    )
    async with open_engine(settings, migrations=PACKAGES) as engine:
        summary = await load_tenant(engine, data)
    print(summary)
    return 0


async def cmd_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from charging_engine.ledger.rebuild import rebuild_balances

    async with open_engine(settings, migrations=PACKAGES) as engine:
        n = await rebuild_balances(engine.redis, engine.pool, settings.buckets, engine.settlement)
    print(f"rebuilt {n} account balances from the ledger")
    return 0


async def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    from charging_engine.ledger.reconcile import reconcile

    async with open_engine(settings, migrations=PACKAGES) as engine:
        diffs = await reconcile(engine.redis, engine.pool, settings.buckets, engine.settlement)
    for d in diffs:
        print(f"{d.tenant}/{d.account}: redis={d.redis_balance} ledger={d.ledger_balance} "
              f"redis_seq={d.redis_seq} ledger_seq={d.ledger_seq} ({d.reason})")
    print(f"{len(diffs)} difference(s) between Redis and the Postgres ledger")
    return 1 if diffs else 0


async def cmd_create_platform_key(settings: Settings, args: argparse.Namespace) -> int:
    from charging_server.migrations import migrate
    from charging_server.platform_key import create_platform_key

    assert settings.database_url  # the CLI refuses this command without DATABASE_URL
    await migrate(settings.database_url)
    key_id, secret = await create_platform_key(settings.database_url, args.name)
    print(f"platform key {key_id} created; its secret (shown once, store it now):\n{secret}")
    return 0


async def cmd_rerate(settings: Settings, args: argparse.Namespace) -> int:
    from charging_engine.ledger.rerate import RerateError, rerate, tenant_currency_and_zone
    from charging_engine.rating.deck import parse_deck
    from charging_engine.rating.model import RatePlan

    rates = tuple(parse_deck(await asyncio.to_thread(Path(args.plan_file).read_text)))
    try:
        since, until = (datetime.fromisoformat(v) for v in (args.since, args.until))
        async with open_engine(settings, migrations=PACKAGES) as engine:
            currency, _ = await tenant_currency_and_zone(engine.pool, args.tenant)
            summary = await rerate(
                engine.store, engine.pool, engine.settlement, tenant=args.tenant,
                plan=RatePlan(args.plan, currency, rates), since=since, until=until,
                run_id=args.run_id,
            )
    except (RerateError, ValueError) as exc:
        return error(str(exc))
    print(summary)
    return 1 if summary.failed else 0


async def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from charging_server.demo import run_demo

    return await run_demo(settings)

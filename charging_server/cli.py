"""``charging-engine`` command line: serve, settle, migrate, load-data, rebuild-balances, reconcile,
rerate, create-platform-key, bill, demo.

Without REDIS_URL/DATABASE_URL a command runs on private servers it starts itself, and their
data is thrown away when it ends; with them, it runs on those servers (checked first: one clear
line and exit code 2 when one cannot be reached).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import uvloop

from charging_engine.config import Settings
from charging_server import billing_cmd, commands, preflight
from charging_server.serve import cmd_serve

Command = Callable[[Settings, argparse.Namespace], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Task:
    """A command and the servers it runs on."""

    run: Command
    redis: bool = True
    database: bool = True
    own_database: bool = False  # refused on a throwaway private database


TASKS: dict[str, Task] = {
    "serve": Task(cmd_serve),
    "settle": Task(commands.cmd_settle),
    "migrate": Task(commands.cmd_migrate, redis=False),
    "load-data": Task(commands.cmd_load_data),
    "rebuild-balances": Task(commands.cmd_rebuild),
    "reconcile": Task(commands.cmd_reconcile),
    "rerate": Task(commands.cmd_rerate),
    "create-platform-key": Task(commands.cmd_create_platform_key, redis=False,
                                own_database=True),
    "demo": Task(commands.cmd_demo),
    "bill": Task(billing_cmd.cmd_bill),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="charging-engine", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
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
    billing_cmd.add_parser(sub)
    pk = sub.add_parser("create-platform-key",
                        help="create an admin API platform key (shown once; needs DATABASE_URL)")
    pk.add_argument("--name", default="", help="a label for the key")
    return p


def _servers_line(stack_redis: str | None, stack_db: str | None, settings: Settings) -> str:
    """Which servers this command runs on, saying plainly which ones are throwaway."""
    parts = []
    if stack_redis is not None:
        parts.append(f"private Redis {stack_redis}")
    elif settings.redis_url:
        parts.append(f"Redis {preflight.redact(settings.redis_url)} (REDIS_URL)")
    if stack_db is not None:
        parts.append(f"private PostgreSQL {stack_db}")
    elif settings.database_url:
        parts.append(f"PostgreSQL {preflight.redact(settings.database_url)} (DATABASE_URL)")
    unset = " and ".join(
        name for name, private in (("REDIS_URL", stack_redis), ("DATABASE_URL", stack_db))
        if private is not None
    )
    return (f"servers: {'; '.join(parts)}. The private one(s) and their data are thrown away "
            f"when this command ends (set {unset} to keep them).")


async def _main(args: argparse.Namespace) -> int:
    from charging_engine.devservers import PrivateStack

    settings = Settings()
    task = TASKS[args.command]
    if task.own_database and not settings.database_url:
        return commands.error(
            f"{args.command} needs DATABASE_URL (the deployment's database): a key made in a"
            " private database would be thrown away with it"
        )
    try:
        await preflight.check(settings.redis_url if task.redis else None,
                              settings.database_url if task.database else None)
    except preflight.Unreachable as exc:
        return commands.error(str(exc))
    need_redis = task.redis and not settings.redis_url
    need_db = task.database and not settings.database_url
    if not (need_redis or need_db):
        return await task.run(settings, args)
    with PrivateStack(settings.data_dir, redis=need_redis, postgres=need_db) as stack:
        private_redis = stack.redis.url if stack.redis is not None else None
        private_db = stack.postgres.url if stack.postgres is not None else None
        print(_servers_line(private_redis, private_db, settings), flush=True)
        local = settings.model_copy(update={
            "redis_url": private_redis or settings.redis_url,
            "database_url": private_db or settings.database_url,
        })
        return await task.run(local, args)


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
        return commands.error(str(exc))


if __name__ == "__main__":
    sys.exit(main())

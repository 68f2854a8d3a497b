"""``python -m benchmarks [name ...]``: run benchmarks and print their side-by-side ratios.

    python -m benchmarks                 # the microbenchmarks, one after the other
    python -m benchmarks lifecycle       # engine vs redis-benchmark
    python -m benchmarks asterisk        # AMI events/s, FastAGI authorizations/s and latency
    python -m benchmarks invoicing       # the invoice run: 100k postpaid accounts, 10M calls
    python -m benchmarks documents       # invoice PDFs rendered per second
    python -m benchmarks dunning         # the suspension ladder over 100k accounts; payments/s
    python -m benchmarks prepaid         # expiring prepaid money: accounts/s
    python -m benchmarks notifications   # messages rendered and sent/s: local SMTP and SMSC
    python -m benchmarks load --users 50 --run-time 30s   # locust load test with a report
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from benchmarks import (
    asterisk,
    documents,
    dunning,
    invoicing,
    lifecycle,
    notifications,
    prepaid,
    rating,
    settlement,
    sql_debit,
)


def _lifecycle(a: argparse.Namespace) -> str:
    return lifecycle.report(lifecycle.run(a.seconds, a.requests, a.rounds))


def _sql_debit(a: argparse.Namespace) -> str:
    return sql_debit.report(sql_debit.run(a.seconds, a.rounds))


def _settlement(a: argparse.Namespace) -> str:
    return settlement.report(settlement.run())


def _rating(a: argparse.Namespace) -> str:
    return rating.report(rating.run())


def _asterisk(a: argparse.Namespace) -> str:
    return asterisk.report(asterisk.run(a.seconds, a.rounds))


def _documents(a: argparse.Namespace) -> str:
    return documents.report(documents.run(a.seconds))


def _dunning(a: argparse.Namespace) -> str:
    return dunning.report(dunning.run(a.accounts))


def _prepaid(a: argparse.Namespace) -> str:
    return prepaid.report(prepaid.run(min(a.accounts, 10_000)))


def _notifications(a: argparse.Namespace) -> str:
    return notifications.report(notifications.run(min(a.accounts, 5_000)))


def _invoicing(a: argparse.Namespace) -> str:
    return invoicing.report(invoicing.run(a.accounts, a.calls))


MICRO: dict[str, Callable[[argparse.Namespace], str]] = {
    "lifecycle": _lifecycle,
    "sql-debit": _sql_debit,
    "settlement": _settlement,
    "rating": _rating,
    "asterisk": _asterisk,
    "documents": _documents,
    "invoicing": _invoicing,
    "dunning": _dunning,
    "prepaid": _prepaid,
    "notifications": _notifications,
}


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["load"]:
        from benchmarks import loadtest

        return loadtest.main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", nargs="*", default=[],
                   help=f"microbenchmarks to run: {', '.join(MICRO)} (default: all); "
                   "`load` runs the load test")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--accounts", type=int, default=100_000, help="invoicing: accounts")
    p.add_argument("--calls", type=int, default=100, help="invoicing: calls per account")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    unknown = [w for w in args.which if w not in MICRO]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(MICRO)}")
    for name in args.which or list(MICRO):
        print(MICRO[name](args), flush=True)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Command line: serve AMI, place calls through the FastAGI server, print what happened.

    python -m pbx_connectors.asterisk.simulator --agi 127.0.0.1:4573 --ami-port 5038 \\
        --user charging --secret S [--read call,cdr] --calls 20 --concurrency 5 --accounts a1,a2 \\
        --destination +442079460000 --talk 2 [--wait-clients 1] [--serve]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence

import uvloop

from .pbx import Simulator, SimulatorConfig
from .scenario import CallRecord, CallSpec, Outcome, ScenarioError

_OUTCOMES: dict[str, Outcome] = {"answer": "answer", "busy": "busy", "noanswer": "noanswer",
                                 "congestion": "congestion"}


def _agi(value: str) -> tuple[str, int] | None:
    if value.lower() == "none":
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"--agi wants host:port or none, not {value!r}")
    return host, int(port)


def _count(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number >= 0: {value!r}")
    return int(value)


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0 <= number <= 86_400:
        raise argparse.ArgumentTypeError(f"seconds must be between 0 and 86400: {value!r}")
    return number


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pbx_connectors.asterisk.simulator",
                                description="A protocol-faithful Asterisk 22 PBX simulator.")
    p.add_argument("--agi", type=_agi, default=("127.0.0.1", 4573),
                   help="FastAGI server host:port, or none to skip authorization")
    p.add_argument("--ami-host", default="127.0.0.1")
    p.add_argument("--ami-port", type=_count, default=5038, help="0 for a free port")
    p.add_argument("--user", default="charging")
    p.add_argument("--secret", default="charging")
    p.add_argument("--read", default="all",
                   help="the user's manager.conf read= classes, e.g. call,cdr")
    p.add_argument("--calls", type=_count, default=10)
    p.add_argument("--concurrency", type=_count, default=5)
    p.add_argument("--accounts", default="a1", help="comma-separated, used in turn")
    p.add_argument("--caller", default="15550001")
    p.add_argument("--destination", default="+442079460000")
    p.add_argument("--ring", type=_seconds, default=0.5, help="seconds of ringing")
    p.add_argument("--talk", type=_seconds, default=2.0, help="seconds of talk")
    p.add_argument("--outcomes", default="answer",
                   help="comma-separated answer|busy|noanswer|congestion, used in turn")
    p.add_argument("--hangup-by", choices=["caller", "callee"], default="caller")
    p.add_argument("--agi-timeout", type=_seconds, default=30.0)
    p.add_argument("--wait-clients", type=_count, default=0,
                   help="wait for this many AMI logins before placing calls")
    p.add_argument("--serve", action="store_true", help="keep serving AMI after the calls")
    return p


def specs(args: argparse.Namespace) -> list[CallSpec]:
    accounts = [a.strip() for a in args.accounts.split(",") if a.strip()] or [""]
    outcomes: list[Outcome] = []
    for o in (x.strip() for x in args.outcomes.split(",")):
        if o not in _OUTCOMES:
            raise ScenarioError(f"unknown outcome {o!r}: one of {', '.join(_OUTCOMES)}")
        outcomes.append(_OUTCOMES[o])
    return [CallSpec(account=accounts[i % len(accounts)], caller=args.caller,
                     destination=args.destination, ring_s=args.ring, talk_s=args.talk,
                     outcome=outcomes[i % len(outcomes)], hangup_by=args.hangup_by)
            for i in range(args.calls)]


def table(records: Sequence[CallRecord]) -> str:
    head = (f"{'uniqueid':<22} {'account':<10} {'agi':<8} {'status':<8} {'maxms':>7} "
            f"{'ended_by':<16} {'cause':>5} {'billsec':>7} disposition")
    lines = [head, "-" * len(head)]
    for r in records:
        lines.append(
            f"{r.uniqueid:<22} {r.accountcode:<10} {r.agi_status or '-':<8} "
            f"{r.agi_variables.get('CHARGING_STATUS', '-'):<8} "
            f"{r.agi_variables.get('CHARGING_MAXMS', '-'):>7} {r.ended_by:<16} "
            f"{r.hangup_cause:>5} {r.billable_seconds:>7} {r.disposition}")
    per_account: dict[str, int] = defaultdict(int)
    for r in records:
        per_account[r.accountcode] += r.billable_seconds
    ends = Counter(r.ended_by for r in records)
    lines.append("")
    lines.append("ended by: " + ", ".join(f"{k} {v}" for k, v in sorted(ends.items())))
    lines.append("billable seconds: " + ", ".join(f"{k or '(none)'} {v}"
                                                  for k, v in sorted(per_account.items())))
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> int:
    try:
        call_specs = specs(args)
        config = SimulatorConfig(users={args.user: args.secret}, read={args.user: args.read},
                                 host=args.ami_host, ami_port=args.ami_port, agi=args.agi,
                                 agi_timeout_s=args.agi_timeout, cel=True,
                                 record_events=False)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        sim = await Simulator(config).start()
    except OSError as exc:
        print(f"error: cannot listen for AMI on {args.ami_host}:{args.ami_port}: {exc}",
              file=sys.stderr)
        return 1
    try:
        print(f"AMI listening on {args.ami_host}:{sim.ami_port}", flush=True)
        while sim.ami_clients < args.wait_clients and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await stop.wait()
        if call_specs and not stop.is_set():
            work = asyncio.ensure_future(sim.run(call_specs, max(1, args.concurrency)))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not work.done():
                work.cancel()
                await asyncio.wait({work})
                print("interrupted", file=sys.stderr)
                return 130
            print(table(work.result()), flush=True)
        if args.serve and not stop.is_set():
            print("serving AMI until interrupted", flush=True)
            await stop.wait()
    finally:
        await sim.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return uvloop.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())

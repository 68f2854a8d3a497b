"""The dispatcher in real OS processes (tests/notifications/dispatch_worker.py, real clock and
lease) against an SMTP server (aiosmtpd) and the SMSC simulator in this test's loop, every
message counted where it arrives (email by Message-ID, SMS by the id in its text):

* SIGKILLed mid-batch while sends are in flight, then restarted: every row sent, every message
  arrived, and the only duplicates are exactly the messages in flight at the kill (the
  at-least-once window of the dispatcher's docstring: the provider had them, the row was not
  marked); everything else arrived once.
* Two workers draining the same 1,000 rows at once: each message exactly once, both sent some.

To make the kill land in that window deterministically, the servers freeze: from the 60th
message on, every message that arrives is kept but not answered (no 250 after DATA, no
submit_sm_resp). The worker is killed once everything answered before is marked sent, so the
in-flight set is exactly the held set.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiosmtpd.smtp import SMTP

from notifications.smpp import Smsc, SubmitSm
from notifications.smpp.link import Link
from notifications.sms.encoding import decode_text
from tests.billing import support
from tests.e2e.support import eventually
from tests.integration.fixtures import pool_fixture  # noqa: F401
from tests.notifications.dispatch_worker import PASSWORD

REPO = Path(__file__).resolve().parents[2]
MESSAGE_ID = re.compile(rb"^Message-ID: <n(\d+)\.", re.MULTILINE | re.IGNORECASE)
SMS_ID = re.compile(r"\[n(\d+)\]")
DONE_SQL = "SELECT count(*) FROM notifications WHERE status IN ('sent', 'delivered')"


class Arrivals:
    """Every message either server received (``channel:id``), and the freeze: once
    ``freeze_at`` messages have arrived, each further one is held (kept, not answered)."""

    def __init__(self, freeze_at: int | None = None) -> None:
        self.counts: Counter[str] = Counter()
        self.by_account: Counter[str] = Counter()  # SMS per SMPP system_id (= worker)
        self.held: list[str] = []
        self.freeze_at = freeze_at
        self.released = asyncio.Event()

    def arrive(self, key: str, account: str = "") -> bool:
        """Count one arrival; -> whether to hold its answer."""
        self.counts[key] += 1
        if account:
            self.by_account[account] += 1
        total = self.counts.total()
        if self.freeze_at is not None and total >= self.freeze_at and not self.released.is_set():
            self.held.append(key)
            return True
        return False

    @property
    def answered(self) -> int:
        return self.counts.total() - len(self.held)

    def unfreeze(self) -> None:
        self.freeze_at = None
        self.released.set()


class Inbox:
    """aiosmtpd handler: counts each DATA by its Message-ID; a held one waits unanswered (its
    session's task is cancelled when the killed worker's connection goes)."""

    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        found = MESSAGE_ID.search(envelope.original_content)
        assert found is not None, "a message without our Message-ID"
        if self.arrivals.arrive(f"email:{found[1].decode()}"):
            await self.arrivals.released.wait()
        return "250 Message accepted"


class CountedSmtp(SMTP):
    """The SMTP protocol, keeping the set of open connections (the test waits for the killed
    worker's to close before it takes the held set)."""

    def __init__(self, open_: set[SMTP], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open = open_

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._open.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._open.discard(self)
        super().connection_lost(error)


class HoldingSmsc(Smsc):
    """The simulator, counting each submit_sm by the id in its text; a held one is never
    answered. (``_submit`` is the simulator's hook for a bound session's submit_sm.)"""

    def __init__(self, arrivals: Arrivals, accounts: dict[str, str]) -> None:
        super().__init__(accounts)
        self.arrivals = arrivals

    def _submit(self, link: Link, sequence: int, sm: SubmitSm) -> None:
        found = SMS_ID.search(decode_text(sm.payload, sm.data_coding))
        assert found is not None, "an SMS without its notification id"
        if not self.arrivals.arrive(f"sms:{found[1]}", self._bound.get(link, "?")):
            super()._submit(link, sequence, sm)


@asynccontextmanager
async def servers(arrivals: Arrivals, accounts: tuple[str, ...]) -> AsyncIterator[
        tuple[int, set[SMTP], HoldingSmsc]]:  # fmt: skip
    """The SMTP server's port and open connections, and the SMSC, in this loop."""
    loop = asyncio.get_running_loop()
    inbox, open_ = Inbox(arrivals), set[SMTP]()
    smtp = await loop.create_server(
        lambda: CountedSmtp(open_, inbox, hostname="mx.test", loop=loop), "127.0.0.1", 0)
    try:
        smsc = HoldingSmsc(arrivals, dict.fromkeys(accounts, PASSWORD))
        async with smsc:
            yield smtp.sockets[0].getsockname()[1], open_, smsc
    finally:
        arrivals.unfreeze()
        smtp.close()
        await smtp.wait_closed()


class Worker:
    """One dispatch_worker process; ``close`` kills it if it still runs."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc, self.log = proc, log

    @classmethod
    async def start(cls, dsn: str, smtp_port: int, smsc: Smsc, system_id: str, log: Path,
                    lease_s: float) -> Worker:  # fmt: skip
        with log.open("ab") as err:  # the child keeps its own copy of the descriptor
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.notifications.dispatch_worker", "--dsn", dsn,
                "--smtp-port", str(smtp_port), "--smpp-port", str(smsc.port),
                "--system-id", system_id, "--lease-s", str(lease_s), "--batch", "25",
                cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=err)  # fmt: skip
        return cls(proc, log)

    async def line(self, within: float = 20) -> str:
        assert self.proc.stdout is not None
        try:
            out = await asyncio.wait_for(self.proc.stdout.readline(), within)
        except TimeoutError:
            raise AssertionError(f"the worker said nothing within {within}s (rows left"
                                 f" unsent?): {self.log.read_text()[-2000:]}") from None
        if not out:
            raise AssertionError(f"the worker ended early: {self.log.read_text()}")
        return out.decode().strip()

    async def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()

    async def sent(self, within: float = 30) -> int:
        """Wait for the worker to finish; -> the messages it sent."""
        last = await self.line(within)
        assert await asyncio.wait_for(self.proc.wait(), 10) == 0, self.log.read_text()
        assert last.startswith("sent "), last
        return int(last.split()[1])

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        if self.proc.stdin is not None:
            self.proc.stdin.close()


@asynccontextmanager
async def workers(*started: Awaitable[Worker]) -> AsyncIterator[list[Worker]]:
    """Start the workers, wait until each is bound, then let them all go at once."""
    ws: list[Worker] = []
    try:
        for starting in started:
            ws.append(await starting)
        for w in ws:
            assert await w.line() == "ready"
        for w in ws:
            await w.go()
        yield ws
    finally:
        for w in ws:
            await w.close()


async def queue(pool: asyncpg.Pool, emails: int, sms: int) -> set[str]:
    """Due outbox rows, the channels interleaved; -> their ``channel:id``."""
    await support.tenant(pool, "t1", "EUR")
    await pool.execute("INSERT INTO accounts (tenant_id, account_id, currency) VALUES"
                       " ('t1', 'a1', 'EUR')")  # fmt: skip
    at = datetime.now(UTC) - timedelta(minutes=1)
    rows = [(f"ev{i}", ch, f"c{i}@example.com" if ch == "email" else f"+4915100{i:05d}",
             orjson.dumps({"text": f"Invoice INV-{i} is ready"}).decode(), at)
            for i in range(max(emails, sms))
            for ch, n in (("email", emails), ("sms", sms)) if i < n]  # fmt: skip
    await pool.executemany(
        "INSERT INTO notifications (tenant_id, account_id, source_event, event, channel,"
        " recipient, language, context, next_attempt_at, created_at) VALUES ('t1', 'a1', $1,"
        " 'invoice.ready', $2, $3, 'en', $4, $5, $5)", rows)  # fmt: skip
    return {f"{r['channel']}:{r['notification_id']}"
            for r in await pool.fetch("SELECT channel, notification_id FROM notifications")}


async def all_sent(pool: asyncpg.Pool) -> tuple[int, Counter[str]]:
    statuses = Counter[str]({r["status"]: r["n"] for r in await pool.fetch(
        "SELECT status, count(*) AS n FROM notifications GROUP BY status")})  # fmt: skip
    return statuses["sent"] + statuses["delivered"], statuses


async def test_sigkilled_mid_batch_then_restarted(pool: asyncpg.Pool, database_url: str,
                                                  tmp_path: Path) -> None:
    expected = await queue(pool, 200, 200)
    arrivals = Arrivals(freeze_at=60)
    log = tmp_path / "workers.log"
    async with servers(arrivals, ("w1",)) as (smtp_port, smtp_open, smsc):
        async with workers(Worker.start(database_url, smtp_port, smsc, "w1", log, 2)) as [first]:

            async def frozen_and_settled() -> bool:
                if first.proc.returncode is not None:
                    raise AssertionError(f"the worker ended before the kill: {log.read_text()}")
                marked: int = await pool.fetchval(DONE_SQL)
                if marked > arrivals.answered:  # a server counts a message before it answers
                    raise AssertionError(f"{marked} rows marked sent, {arrivals.answered} sends"
                                         " answered: marked before the provider took them")
                return bool(arrivals.held) and marked == arrivals.answered

            await eventually(frozen_and_settled, 20, "the held messages, the rest marked sent")
            leased = await pool.fetchval("SELECT count(*) FROM notifications"
                                         " WHERE status = 'sending'")  # fmt: skip
            first.proc.send_signal(signal.SIGKILL)
            assert await asyncio.wait_for(first.proc.wait(), 10) == -signal.SIGKILL

        async def connections_gone() -> bool:
            return not smtp_open and smsc.bound_sessions == 0

        await eventually(connections_gone, 10, "the killed worker's connections to close")
        held, before = set(arrivals.held), arrivals.counts.total()
        arrivals.unfreeze()
        async with workers(Worker.start(database_url, smtp_port, smsc, "w1", log, 2)) as [again]:
            resent = await again.sent(within=30)

    done, statuses = await all_sent(pool)
    twice = {k: n for k, n in arrivals.counts.items() if n > 1}
    once = sum(1 for n in arrivals.counts.values() if n == 1)
    report = (f"{len(expected)} rows, {before} messages arrived before the kill of which"
              f" {len(held)} in flight (held unanswered) and {leased} rows leased by the killed"
              f" worker; the restarted worker sent {resent}; {once} arrived once, duplicates:"
              f" {sorted(twice.items())}, held: {sorted(held)}; statuses {dict(statuses)}")
    assert done == len(expected), report
    assert set(arrivals.counts) == expected, f"missing {expected - set(arrivals.counts)}; {report}"
    assert held and leased >= len(held), f"the kill was not mid-batch: {report}"
    assert set(twice) == held and set(twice.values()) == {2}, report
    assert once == len(expected) - len(held), report


async def test_two_dispatchers_at_once_send_each_message_once(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    expected = await queue(pool, 500, 500)
    arrivals = Arrivals()
    log = tmp_path / "workers.log"
    async with servers(arrivals, ("w1", "w2")) as (smtp_port, _, smsc):
        started = (Worker.start(database_url, smtp_port, smsc, w, log, 30) for w in ("w1", "w2"))
        async with workers(*started) as ws:
            shares = [await w.sent(within=40) for w in ws]

    done, statuses = await all_sent(pool)
    twice = {k: n for k, n in arrivals.counts.items() if n > 1}
    report = (f"{len(expected)} rows, {arrivals.counts.total()} messages arrived"
              f" ({len(arrivals.counts)} distinct), duplicates: {sorted(twice.items())};"
              f" workers sent {shares}, SMS per worker {dict(arrivals.by_account)};"
              f" statuses {dict(statuses)}")
    assert done == len(expected), report
    assert set(arrivals.counts) == expected and not twice, report
    assert sum(shares) == len(expected) and min(shares) > 0, report
    assert sorted(arrivals.by_account) == ["w1", "w2"], report

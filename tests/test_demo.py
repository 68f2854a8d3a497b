"""``charging-engine demo`` end to end, judged on facts of its output that can be recomputed.

The demo runs once as a subprocess (``python -m charging_server demo``) on the session's private
servers; each test checks one promise of the output against the demo's own data files.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from importlib import resources

import pytest
import redis

from charging_engine.devservers import PostgresServer, RedisServer
from charging_engine.ledger.reconcile import Difference
from charging_engine.loader import AccountRow, parse_accounts
from charging_engine.rating.deck import parse_deck
from charging_engine.rating.model import Rate

# A decimal number that is not part of a dotted address (127.0.0.1) or a time.
AMOUNT = re.compile(r"(?<![\d.])(-?\d+\.\d+)(?![\d.])")
CALL = re.compile(
    r"^  (?P<account>\S+)\s+(?P<dst>.{18}) (?P<what>.*?)  cost +(?P<cost>-?\d+\.\d+) "
    r"(?P<cur>[A-Z]{3})  balance +(?P<balance>-?\d+\.\d+) (?P<bcur>[A-Z]{3})$"
)
DENIED = re.compile(r"^  (?P<account>\S+)\s+(?P<dst>.{18}) DENIED (?P<reason>\w+)")
QUOTED = re.compile(r'"[^"]*"')
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _data(name: str) -> str:
    return resources.files("charging_server").joinpath(f"demo_data/{name}").read_text()


def rates(tenant: str) -> list[Rate]:
    return parse_deck(_data(f"{tenant}_rates.csv"))


def accounts(tenant: str, currency: str) -> list[AccountRow]:
    return parse_accounts(_data(f"{tenant}_accounts.csv"), tenant, currency, "p")


def micros(text: str) -> int:
    whole, _, frac = text.lstrip("-").partition(".")
    value = int(whole) * 1_000_000 + int(frac.ljust(6, "0"))
    return -value if text.startswith("-") else value


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def section(self, starts: str) -> list[str]:
        """The lines under the first ``== ...`` title that starts with ``starts``."""
        out: list[str] | None = None
        for line in self.lines:
            if line.startswith("== "):
                if out is not None:
                    break
                if line[3:].startswith(starts):
                    out = [line]
            elif out is not None:
                out.append(line)
        assert out is not None, f"no section {starts!r} in:\n{self.stdout}"
        return out

    def currencies(self) -> dict[str, str]:
        """tenant -> currency, from the 'loaded tenant ...' lines."""
        found = re.findall(r"^loaded tenant (\w+):.*\(.*, ([A-Z]{3}), [\w/]+\)$", self.stdout,
                           re.MULTILINE)
        return dict(found)


@pytest.fixture(scope="module")
def demo(private_redis: RedisServer, private_postgres: PostgresServer) -> Iterator[Run]:
    """One demo run on a fresh database and an emptied Redis."""
    private_redis.start()
    private_postgres.start()
    client = redis.Redis.from_url(private_redis.url)
    try:
        client.flushall()
    finally:
        client.close()
    name = "t_demo"
    private_postgres.drop_database(name)
    url = private_postgres.create_database(name)
    env = {**os.environ, "REDIS_URL": private_redis.url, "DATABASE_URL": url}
    try:
        proc = subprocess.run([sys.executable, "-m", "charging_server", "demo"], env=env,
                              capture_output=True, text=True, timeout=240)
        yield Run(proc.returncode, proc.stdout, proc.stderr)
    finally:
        private_postgres.drop_database(name)


def test_it_succeeds_and_reconciles_to_zero(demo: Run) -> None:
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Traceback" not in demo.stderr
    found = re.findall(r"reconcile: (\d+) difference", demo.stdout)
    assert found == ["0"], demo.stdout
    settled = re.search(r"(\d+) ledger entries, (\d+) call records", demo.stdout)
    assert settled is not None and int(settled[1]) > 0 and int(settled[2]) > 0


def test_it_prints_no_reprs(demo: Run) -> None:
    assert "{" not in demo.stdout and "}" not in demo.stdout
    assert not re.search(r"\b[A-Za-z_]\w*\(\w+=", demo.stdout)  # Difference(tenant=...)
    assert not re.search(r"'\w+': ", demo.stdout)


def test_every_amount_carries_its_tenants_currency(demo: Run) -> None:
    loaded = demo.currencies()
    assert set(loaded) == {"acme", "globex"}
    seen: set[str] = set()
    for printed in demo.lines:
        line = QUOTED.sub('""', printed)  # a customer's text: money as the locale writes it
        for m in AMOUNT.finditer(line):
            after = line[m.end():]
            code = re.match(r" ([A-Z]{3})\b", after)
            assert code is not None, f"{m[1]} has no currency code: {line!r}"
            assert code[1] in loaded.values(), line
            seen.add(code[1])
    assert seen == set(loaded.values())


def test_call_columns_line_up_per_currency(demo: Run) -> None:
    ends: dict[str, set[int]] = {}
    decimals: dict[str, set[int]] = {}
    for line in demo.lines:
        m = CALL.match(line)
        if m:
            ends.setdefault(m["cur"], set()).add(m.end("balance"))
            decimals.setdefault(m["cur"], set()).add(len(m["balance"].partition(".")[2]))
    assert set(ends) == set(demo.currencies().values())
    assert all(len(v) == 1 for v in ends.values()), ends
    assert all(len(v) == 1 for v in decimals.values()), decimals
    # sub-cent rating shows as such: acme rates to 4 decimals, so its amounts have 4
    assert decimals["USD"] == {max(r.decimals for r in rates("acme"))}


def test_parallel_counts_add_up(demo: Run) -> None:
    title = next(line for line in demo.lines if re.match(r"== \d+ parallel calls", line))
    head, counts, lowest = demo.section(title[3:])[:3]
    n = int(title.split()[1])
    assert n == 40
    pairs = re.findall(r"(\d+) (\w+)", counts.split(";")[0])
    assert sum(int(k) for k, _ in pairs) == n, counts
    assert pairs[0][1] == "allowed" and int(pairs[0][0]) > 0
    on = re.search(r"on (\w+) \(", head)
    assert on is not None, head
    account = on[1]
    row = next(a for a in accounts("acme", "USD") if a.account.account_id == account)
    low = re.search(r"lowest balance seen (-?\d+\.\d+) USD \((\d+) polls", lowest)
    assert low is not None, lowest
    assert int(low[2]) > 0
    assert micros(low[1]) >= -row.account.credit_limit
    assert micros(low[1]) < row.opening_balance  # the calls did spend


def test_long_calls_show_each_slice(demo: Run) -> None:
    lines = demo.lines
    shown = 0
    for i, line in enumerate(lines):
        m = re.match(r"^ +(\d+) slices? reserved: (.*) granted(?:; (\d+)\w\w refused "
                     r"\((\w+)\): cut at (\d+) s)?$", line)
        if not m:
            continue
        shown += 1
        granted = [int(v) for v in re.findall(r"(\d+) s", m[2])]
        assert len(granted) == int(m[1]) and granted == sorted(set(granted)), line
        call = CALL.match(lines[i - 1])
        assert call is not None, lines[i - 1]
        talk = re.match(r"talk +(\d+) s", call["what"])
        assert talk is not None, lines[i - 1]
        talked = int(talk[1])
        if m[3]:
            assert int(m[3]) == len(granted) + 1 and int(m[5]) == granted[-1] == talked
        else:
            assert talked <= granted[-1]
    assert shown >= 3


def _rate_for(deck: list[Rate], number: str) -> Rate:
    """The longest-prefix unbanded rate of ``number`` (grace rates in the demo have no band)."""
    digits = re.sub(r"\D", "", number)
    return max((r for r in deck if digits.startswith(r.prefix) and r.band is None),
               key=lambda r: len(r.prefix))


def test_grace_is_explained_with_the_rates_grace(demo: Run) -> None:
    decks = {cur: rates(t) for t, cur in demo.currencies().items()}
    lines = demo.lines
    found = [(i, m) for i, line in enumerate(lines)
             if (m := re.search(r"(\d+) s is within the (\d+) s grace period: free", line))]
    assert len(found) >= 2
    for i, m in found:
        call = CALL.match(lines[i - 1])
        assert call is not None and micros(call["cost"]) == 0
        assert re.search(rf"talk +{m[1]} s +billed +0 s", call["what"])
        rate = _rate_for(decks[call["cur"]], call["dst"])
        assert int(m[2]) == rate.grace_seconds and int(m[1]) < rate.grace_seconds


def _weekday_date(day: str) -> date:
    start = date(2024, 1, 1)  # a Monday
    return start + timedelta(days=DAYS.index(day))


def test_globex_calls_name_the_band_of_their_start_time(demo: Run) -> None:
    section = demo.section("tenant globex")
    deck = rates("globex")
    calls = 0
    for i, line in enumerate(section):
        if not CALL.match(line):
            continue
        calls += 1
        band = next(s for s in section[i + 1:] if " at " in s and "/min" in s)
        m = re.match(r"^ +(peak|off-peak|no time bands) at (\w{3}) (\d\d):(\d\d) "
                     r"Europe/Berlin\b.*: rate (\d+), ", band)
        assert m is not None, band
        local = datetime.combine(_weekday_date(m[2]), time(int(m[3]), int(m[4])))
        banded = [r.band for r in deck if r.prefix == m[5] and r.band is not None]
        inside = any(b.contains(local) for b in banded)
        expected = "no time bands" if not banded else ("peak" if inside else "off-peak")
        assert m[1] == expected, band
    assert calls >= 3


def test_postpaid_goes_into_credit_then_is_denied_at_its_limit(demo: Run) -> None:
    postpaid = [a for a in accounts("acme", "USD") if a.account.kind == "postpaid"]
    assert postpaid
    for row in postpaid:
        limit, who = row.account.credit_limit, row.account.account_id
        mine = [line for line in demo.lines if line.startswith(f"  {who} ")]
        balances = [micros(m["balance"]) for line in mine if (m := CALL.match(line))]
        assert any(-limit <= b < 0 for b in balances), mine
        denied = [m for line in mine if (m := DENIED.match(line))]
        assert denied and denied[-1]["reason"] == "insufficient_funds", mine
        assert mine.index(next(line for line in mine if DENIED.match(line))) > 0


async def test_differences_are_listed_and_exit_1(
    redis_url: str, database_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import charging_server.demo as demo_module
    from charging_engine.config import Settings

    async def drifted(*args: object, **kwargs: object) -> list[Difference]:
        return [Difference("acme", "alice", 9_958_600, 9_958_700, 12, 12, "balance")]

    monkeypatch.setattr(demo_module, "reconcile", drifted)
    settings = Settings().model_copy(update={"redis_url": redis_url, "database_url": database_url})
    assert await demo_module.run_demo(settings) == 1
    out = capsys.readouterr().out
    assert "reconcile: 1 difference " in out
    assert "acme/alice: Redis 9.9586 USD (seq 12), ledger 9.9587 USD (seq 12): balance" in out


def test_balance_by_sms_and_an_agents_cash_receipt(demo: Run) -> None:
    """The reply to BALANCE after the collection is the one before plus what the agent took;
    the phone's retry made no second payment; the receipt went to both numbers once each."""
    lines = demo.section("in the field")
    replies = [re.search(r'the reply: ".*\$(\d+\.\d{2})\."', ln) for ln in lines]
    before, after = [Decimal(r[1]) for r in replies if r]
    took = re.search(r"records (\d+\.\d{2}) USD cash, sent twice by her phone: 1 payment",
                     "\n".join(lines))
    assert took is not None, lines
    assert after - before == Decimal(took[1]) > 0
    receipts = [ln for ln in lines if ln.startswith("  SMS to ") and "receipt CR-" in ln]
    numbers = sorted(ln.split(":")[0].removeprefix("  SMS to ") for ln in receipts)
    assert numbers == ["+12125550144", "+12125550145"], receipts

"""The demo's call flows, each printed with the facts a newcomer needs to follow it.

Every explanation is computed: the rate that priced a call is looked up in the engine's own
catalogue at the call's start time, limits and balances come from the API's answers.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from charging_engine.bootstrap import Engine
from charging_engine.loader import TenantData
from charging_engine.rating.model import Rate
from charging_engine.rating.numbers import NumberError
from charging_engine.rating.pricing import cost, first_boundary
from charging_server.demo.pbx import Balance, Call, Pbx
from charging_server.demo.show import (
    INDENT,
    Money,
    band_line,
    call_line,
    grace_line,
    local_time,
    slices_line,
    title,
)


@dataclass(slots=True)
class Tenant:
    """A loaded demo tenant: its data, the PBX that calls for it, how its money prints."""

    engine: Engine
    data: TenantData
    pbx: Pbx
    money: Money

    @property
    def tid(self) -> str:
        return self.data.tenant.tenant_id

    def rate(self, c: Call) -> Rate | None:
        """The rate the engine's catalogue picks for this call at its start time."""
        tariff = self.engine.service.catalog.tariff(self.tid, self.data.plan.plan_id)
        try:
            return tariff.find(c.dst, c.started, self.data.tenant.tz) if tariff else None
        except NumberError:
            return None

    def credit_limit(self, account: str) -> int:
        acc = self.engine.service.catalog.account(self.tid, account)
        return acc.credit_limit if acc is not None else 0

    def describe(self, account: str) -> str:
        """'alice: prepaid, 10.0000 USD' from the data the tenant was loaded from."""
        for row in self.data.accounts:
            a = row.account
            if a.account_id == account:
                limit = f", credit limit {self.money(a.credit_limit)}" if a.credit_limit else ""
                state = "" if a.status.value == "active" else f", {a.status.value}"
                return (f"{account}: {a.kind}, balance {self.money(row.opening_balance)}"
                        f"{limit}{state}")
        return f"{account}: not loaded"

    async def balance(self, account: str) -> Balance | None:
        try:
            return await self.pbx.balance(account)
        except httpx.HTTPStatusError:
            return None  # an unknown account has no balance to show

    async def play(self, account: str, dst: str, talk: int | None, *, bands: bool = False
                   ) -> Call:
        """Make one call and print it, with the lines that explain it."""
        before = await self.balance(account)
        c = await self.pbx.call(account, dst, talk)
        rate, money = self.rate(c), self.money
        why = None
        if c.reason == "insufficient_funds" and rate is not None and before is not None:
            first = first_boundary(rate)
            why = f"first {first} s cost {money(cost(rate, first))}, {money(before.available)} left"
        print(call_line(c, money, why))
        lines = [slices_line(c), grace_line(c, rate)]
        if bands:
            lines.append(band_line(rate, self.data.plan.rates, c.started, self.data.tenant.tz,
                                   money))
        if c.allowed and c.balance < 0:
            limit = self.credit_limit(account)
            lines.append(f"{INDENT}in credit: owes {money(-c.balance)}, "
                         f"{money(limit + c.balance)} of its {money(limit)} limit left")
        for line in lines:
            if line:
                print(line)
        return c


async def acme_calls(t: Tenant) -> None:
    title(f"tenant {t.tid}: allowed and denied calls ({t.describe('alice')})")
    await t.play("alice", "+1 212 555 0100", 125)
    await t.play("alice", "+44 20 7946 0000", 61)
    await t.play("alice", "+44 7700 900123", 2)  # inside the UK mobile grace period
    await t.play("alice", "+33 1 42 68 53 00", None)  # not answered: nothing charged
    await t.play("alice", "+999 123", 10)  # no rate
    await t.play("dave", "+1 212 555 0100", 10)  # suspended
    await t.play("nobody", "+1 212 555 0100", 10)  # unknown account


async def low_balance(t: Tenant) -> None:
    title(f"a low balance running out ({t.describe('bob')})")
    await t.play("bob", "+881 6 1234 5678", 60)  # satellite: the first minute costs too much
    for _ in range(2):  # long UK mobile calls, extended slice by slice until the money runs out
        await t.play("bob", "+44 7700 900456", 3600)


async def postpaid(t: Tenant) -> None:
    title(f"spending on credit ({t.describe('erin')})")
    await t.play("erin", "+1 212 555 0100", 125)  # into credit, well within the limit
    await t.play("erin", "+881 6 1234 5678", 3600)  # cut when the limit is reached
    await t.play("erin", "+881 6 1234 5678", 60)  # what is left does not cover a minute


async def parallel(t: Tenant, account: str, dst: str, n: int = 40, talk: int = 900) -> None:
    """Many calls at once on one account; the balance is polled while they run."""
    before = await t.pbx.balance(account)
    title(f"{n} parallel calls of {talk} s on {account} "
          f"(balance {t.money(before.balance)}) to {dst}")
    running = asyncio.gather(*(t.pbx.call(account, dst, talk) for _ in range(n)))
    seen = [before.balance]
    while not running.done():
        seen.append((await t.pbx.balance(account)).balance)
    calls = await running
    polls = len(seen) - 1
    seen += [c.balance for c in calls if c.allowed]
    counts = Counter("allowed" if c.allowed else c.reason for c in calls)
    cut = Counter(c.refused for c in calls if c.refused is not None)
    summary = ", ".join(f"{k} {reason}" for reason, k in
                        sorted(counts.items(), key=lambda kv: (kv[0] != "allowed", -kv[1])))
    cuts = "".join(f"; {k} allowed calls cut short ({why})" for why, k in cut.items())
    after = await t.pbx.balance(account)
    print(f"  {summary}{cuts}")
    print(f"  lowest balance seen {t.money(min(seen))} ({polls} polls during the run, "
          f"{counts['allowed']} end answers); now {t.money(after.balance)}")


async def globex_calls(t: Tenant) -> None:
    tz = t.data.tenant.tz
    title(f"tenant {t.tid} ({t.money.currency}, {tz.key}): rates by local time band, "
          f"now {local_time(datetime.now(UTC), tz)}")
    await t.play("frank", "+49 30 555 1234", 300, bands=True)
    await t.play("frank", "+49 89 555 1234", 600, bands=True)
    await t.play("frank", "+44 20 7946 0000", 1200, bands=True)
    await t.play("frank", "+49 30 555 9876", 4, bands=True)  # Berlin's own grace period
    await t.play("grace", "+49 40 555 1234", 45, bands=True)
    b = await t.pbx.balance("frank")
    print(f"  frank  balance {t.money(b.balance)}, credit limit {t.money(b.credit_limit)}, "
          f"available {t.money(b.available)}")


async def play_all(acme: Tenant, globex: Tenant) -> None:
    await acme_calls(acme)
    await low_balance(acme)
    await postpaid(acme)
    await parallel(acme, "carol", "+49 30 1234567")
    await globex_calls(globex)

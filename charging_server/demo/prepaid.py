"""The demo's prepaid periods and auto top-up, on the clock the demo moves.

frank tops up money valid for 30 days: he is warned a week before, what is left of it expires
on its day (once), and at zero his account is warned, inactivated after 60 days (his calls are
refused) and closed 30 days later. grace has auto top-up: each time her balance falls through
its line the low-balance alert (not a poll) charges her saved card on the Stripe stand-in, at
most 3 times an hour however often she crosses it."""

from __future__ import annotations

from datetime import timedelta

import orjson

from admin_api.alerts.feed import AlertFeed
from billing import validity_run
from billing.auto_topup import Limits
from billing.auto_topup_run import AutoTopups
from billing.clock import MovableClock
from billing.gateways import accounts as gateway_accounts
from billing.secrets import Secrets
from billing.validity import Policy, policy_doc
from charging_engine.accounts.changes import AutoTopupSettings, NewAccount
from charging_engine.accounts.money import MoneyOperations, Operation
from charging_engine.audit import Actor
from charging_engine.bootstrap import Engine
from charging_engine.money import format_amount
from charging_server.billing_cmd import account_changes
from charging_server.demo.show import title
from charging_server.demo.stripe_standin import StripeStandIn

TENANT, CUR, PLAN = "acme", "USD", "acme-std"
USD = 1_000_000
ADMIN = Actor("demo", "tenant_admin")
POLICY = Policy(validity_days=30, warn_days=7, inactivate_after=60, terminate_after=30)


def _usd(micros: int) -> str:
    return f"{format_amount(micros, CUR)} {CUR}"


async def _drain(engine: Engine) -> None:
    while await engine.settlement.drain_once() > 0:
        pass


async def _call(engine: Engine, account: str, n: int) -> str:
    d = await engine.service.authorize(TENANT, account, f"{account}-period-{n}", "12125550100")
    if not d.allowed:
        return f"refused ({d.reason.value})"
    await engine.service.end(TENANT, account, f"{account}-period-{n}", billable_seconds=0)
    return "allowed"


async def play_prepaid(engine: Engine, clock: MovableClock) -> None:
    title("prepaid periods: frank's top-up is valid for 30 days; dormant accounts are closed")
    pool, accounts = engine.pool, account_changes(engine)
    money = MoneyOperations(pool, engine.store, clock=lambda: int(clock.now().timestamp() * 1000))
    await pool.execute("INSERT INTO prepaid_policies (tenant_id, policy) VALUES ($1, $2)",
                       TENANT, orjson.dumps(policy_doc(POLICY)).decode())  # fmt: skip
    await accounts.create(ADMIN, TENANT, NewAccount("frank", rate_plan_id=PLAN))
    day0 = clock.now()
    until = await validity_run.validity_of(pool, TENANT, day0)
    await money.perform(ADMIN, TENANT, "frank", Operation.topup(
        20 * USD, "cash", valid_until=until), "demo-frank-1")  # fmt: skip
    await money.perform(ADMIN, TENANT, "frank", Operation.withdrawal(
        12_500_000, "spent on calls (as the demo's calls would)"), "demo-frank-2")  # fmt: skip
    print(f"  frank topped up {_usd(20 * USD)} valid until {until:%Y-%m-%d}, spent"
          f" {_usd(12_500_000)}")

    async def on(day: int) -> validity_run.Outcome:
        clock.set(day0 + timedelta(days=day))
        await _drain(engine)
        out = await validity_run.evaluate(pool, money, accounts, TENANT, "frank",
                                          at=clock.now())  # fmt: skip
        await _drain(engine)
        assert out is not None
        return out

    await on(23)
    warned = await pool.fetchval("SELECT count(*) FROM webhook_events WHERE tenant_id = $1"
                                 " AND type = 'balance.expiring'", TENANT)  # fmt: skip
    print(f"  day 23: {warned} warning queued (balance.expiring: what is left expires in a week)")
    out = await on(30)
    again = await on(30)
    state = await engine.store.state(TENANT, "frank")
    print(f"  day 30: {_usd(sum(a for _, a in out.expired))} expired (an 'expiry' ledger"
          f" entry), evaluated again: {len(again.expired)} more; balance"
          f" {_usd(state.balance if state else 0)}")
    for day in (83, 90, 95, 113, 120):
        out = await on(day)
        status = await pool.fetchval("SELECT status FROM accounts WHERE tenant_id = $1 AND"
                                     " account_id = 'frank'", TENANT)  # fmt: skip
        steps = ", ".join(s.split(":")[0] for s in out.steps) or "nothing due"
        extra = f"; a call: {await _call(engine, 'frank', day)}" if day == 95 else ""
        print(f"  day {day:>3} at zero since day 30: {steps}; account {status}{extra}")
    await play_auto_topup(engine, clock, money)


async def play_auto_topup(engine: Engine, clock: MovableClock, money: MoneyOperations) -> None:
    title("auto top-up: grace's balance falls through 5.00 USD, her saved card pays")
    pool, accounts = engine.pool, account_changes(engine)
    await accounts.create(ADMIN, TENANT, NewAccount("grace", rate_plan_id=PLAN))
    await money.perform(ADMIN, TENANT, "grace", Operation.topup(8 * USD, "cash"), "demo-g-1")
    await accounts.set_auto_topup(ADMIN, TENANT, "grace", AutoTopupSettings(
        True, threshold=5 * USD, amount=20 * USD))  # fmt: skip
    await pool.execute("INSERT INTO payment_methods (tenant_id, account_id, gateway,"
                       " customer_ref, method_ref) VALUES ($1, 'grace', 'stripe',"
                       " 'cus_demo_grace', 'pm_card_visa')", TENANT)  # fmt: skip
    feed = AlertFeed(engine.redis, pool, engine.settings.buckets, "demo")
    await feed.ensure_groups()
    async with StripeStandIn() as stripe:
        async with pool.acquire() as conn, conn.transaction():
            await gateway_accounts.configure(
                conn, Secrets(), TENANT, "stripe", api_key=stripe.api_key,
                webhook_secret=stripe.webhook_secret, account_ref=None,
                base_url=stripe.base_url, at=clock.now())  # fmt: skip
        topups = AutoTopups(pool, money, Secrets(), clock=clock, limits=Limits(cap=3))
        for n in range(10):  # ten crossings within a minute
            clock.advance(timedelta(seconds=5))
            state = await engine.store.state(TENANT, "grace")
            assert state is not None
            await money.perform(ADMIN, TENANT, "grace", Operation.withdrawal(
                state.balance - 4 * USD, "spent on calls"), f"demo-g-spend-{n}")  # fmt: skip
            while await feed.drain_once():
                pass
            charged = await topups.run_once()
            state = await engine.store.state(TENANT, "grace")
            if n < 4 or charged:
                print(f"  crossing {n + 1}: balance fell to {_usd(4 * USD)};"
                      f" {'charged the card ' + _usd(20 * USD) if charged else 'not charged'}"
                      f", balance {_usd(state.balance if state else 0)}")
            if state is not None and state.balance < 5 * USD:
                await money.perform(ADMIN, TENANT, "grace", Operation.topup(
                    5 * USD - state.balance + USD, "cash"), f"demo-g-top-{n}")  # fmt: skip
    rows = await pool.fetch("SELECT status, reason FROM auto_topup_attempts WHERE tenant_id ="
                            " $1 AND account_id = 'grace' ORDER BY attempt_id", TENANT)
    skipped = [r["reason"].split(":")[0] for r in rows if r["status"] == "skipped"]
    print(f"  10 crossings: {len(stripe.intents)} card charges (the cap: 3 an hour),"
          f" {len(skipped)} answered without a charge ({', '.join(sorted(set(skipped)))})")

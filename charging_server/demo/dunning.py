"""The demo's suspension ladder: erin's next invoice goes unpaid, the demo's clock moves past
its due date, and each billing tick moves her down the ladder (a reminder, outgoing calls
barred with a late fee, then all service); her calls are refused as each step says; she pays
through a Stripe pay link (a local stand-in of Stripe's API), the verified webhook records the
payment once, and she is back at once."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import orjson

from billing import dunning_run
from billing.amounts import format_minor
from billing.clock import MovableClock
from billing.dunning import Ladder, LateFee, Step, ladder_doc
from billing.gateways import accounts as gateway_accounts
from billing.gateways.inbox import receive
from billing.gateways.model import GatewayRejected
from billing.jobs import BillingJobs
from billing.secrets import Secrets
from charging_engine.account_status import AccountStatus
from charging_engine.bootstrap import Engine
from charging_server.billing_cmd import account_changes, switches
from charging_server.demo.show import title
from charging_server.demo.stripe_standin import StripeStandIn

TENANT, ACCOUNT, CUR = "acme", "erin", "USD"
LADDER = Ladder((
    Step("reminder", 1),
    Step("outgoing_barred", 15, status=AccountStatus.OUTGOING_SUSPENDED,
         late_fee=LateFee(fixed=500)),
    Step("service_suspended", 31, status=AccountStatus.SUSPENDED),
))  # fmt: skip


async def _try_call(engine: Engine, n: int) -> str:
    decision = await engine.service.authorize(TENANT, ACCOUNT, f"{ACCOUNT}-ladder-{n}",
                                              "12125550100")  # fmt: skip
    if decision.allowed:  # not expected while barred; give the reservation back at once
        await engine.service.end(TENANT, ACCOUNT, f"{ACCOUNT}-ladder-{n}", billable_seconds=0)
        return "allowed (hung up unanswered)"
    return f"refused ({decision.reason.value})"


async def play_ladder(engine: Engine, clock: MovableClock) -> None:
    title(f"suspension ladder: {ACCOUNT}'s next invoice goes unpaid")
    pool = engine.pool
    await pool.execute("INSERT INTO dunning_ladders (tenant_id, steps) VALUES ($1, $2)",
                       TENANT, orjson.dumps(ladder_doc(LADDER)).decode())  # fmt: skip
    accounts = account_changes(engine)
    jobs = BillingJobs(pool, engine.store, clock=clock, switches=switches(engine),
                       accounts=accounts)  # fmt: skip
    ends = await pool.fetchval("SELECT open_ends_at FROM billing_accounts WHERE tenant_id = $1"
                               " AND account_id = $2", TENANT, ACCOUNT)  # fmt: skip
    clock.set(ends + timedelta(minutes=5))
    await jobs.tick()
    clock.advance(timedelta(hours=25))
    await jobs.tick()
    inv = await pool.fetchrow("SELECT * FROM invoices WHERE tenant_id = $1 AND account_id = $2"
                              " AND status = 'finalized' ORDER BY issued_on DESC LIMIT 1",
                              TENANT, ACCOUNT)  # fmt: skip
    print(f"  invoice {inv['number']}: {format_minor(inv['amount_due'], CUR)} {CUR} due"
          f" {inv['due_on']} (after the account credit), not paid")
    for n, days in enumerate((1, 15, 31), start=1):
        clock.set(datetime.combine(inv["due_on"], time(12), UTC) + timedelta(days=days))
        await jobs.tick()
        step = await pool.fetchval("SELECT step_name FROM account_dunning WHERE tenant_id = $1"
                                   " AND account_id = $2", TENANT, ACCOUNT)  # fmt: skip
        status = await pool.fetchval("SELECT status FROM accounts WHERE tenant_id = $1"
                                     " AND account_id = $2", TENANT, ACCOUNT)  # fmt: skip
        print(f"  {days:>2} days overdue: step {step}, account {status}; a call:"
              f" {await _try_call(engine, n)}")
    fee = await pool.fetchval("SELECT amount FROM one_time_charges WHERE tenant_id = $1"
                              " AND account_id = $2 AND kind = 'late_fee'", TENANT, ACCOUNT)
    print(f"  late fee {format_minor(fee, CUR)} {CUR} charged once, for the next invoice")
    due = await pool.fetchval("SELECT open FROM invoice_open WHERE invoice_id = $1",
                              inv["invoice_id"])  # fmt: skip
    at = clock.now()
    async with StripeStandIn() as stripe:
        async with pool.acquire() as conn, conn.transaction():
            await gateway_accounts.configure(
                conn, Secrets(), TENANT, "stripe", api_key=stripe.api_key,
                webhook_secret=stripe.webhook_secret, account_ref=None, base_url=stripe.base_url,
                at=at)
        async with pool.acquire() as conn:  # as POST /invoices/{id}/pay-link does
            gw = await gateway_accounts.gateway_for(conn, Secrets(), TENANT, "stripe")
        try:
            link = await gw.pay_link(
                amount=due, currency=CUR, description=f"Invoice {inv['number']}",
                metadata={"tenant_id": TENANT, "account_id": ACCOUNT,
                          "invoice_id": inv["invoice_id"]},
                success_url="https://acme.example/paid", cancel_url="https://acme.example/",
                idempotency_key=f"demo-link-{inv['invoice_id']}")  # fmt: skip
        finally:
            await gw.aclose()
        print(f"  pay link sent: {link.url} (a Stripe Checkout Session on the local stand-in)")
        body, signature = stripe.paid_event(link.reference)  # the customer paid by card
        forged = stripe.paid_event(link.reference, secret="whsec_someone_else")
        outcomes = []
        for payload, sig in (forged, (body, signature), (body, signature)):
            try:  # what the tenant's webhook URL does with each delivery
                event = await gw.verify(payload, {"stripe-signature": sig})
            except GatewayRejected:
                outcomes.append("forged: refused")
                continue
            async with pool.acquire() as conn:
                outcomes.append(await receive(conn, TENANT, event, at=at))
    async with pool.acquire() as conn:  # what the webhook route does before it answers
        await dunning_run.evaluate(conn, accounts, TENANT, ACCOUNT, today=at.date(), at=at)
    status = await pool.fetchval("SELECT status FROM accounts WHERE tenant_id = $1"
                                 " AND account_id = $2", TENANT, ACCOUNT)  # fmt: skip
    print(f"  Stripe's webhooks: {', '.join(outcomes)}")
    print(f"  paid {format_minor(due, CUR)} {CUR} through the link: account {status} again at"
          f" once; a call: {await _try_call(engine, 9)}")

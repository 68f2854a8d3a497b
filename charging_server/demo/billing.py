"""The demo's postpaid cycle: erin (postpaid, on credit in the call scenarios) is put on a
bill plan, the demo's clock moves past the end of the period (no real days pass), and the
billing job makes the invoice: consolidated usage, fees, a DID, a one-time charge, tax; a
review window; the number; the PDF; the webhook to a local accounting receiver; payments
allocated to the invoice (the rest to account credit), a credit note, the aging report."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from billing import aging, credit_notes, payments, receivables
from billing.amounts import format_minor
from billing.clock import MovableClock
from billing.crediting import CreditAsk
from billing.documents.pdf import PdfRenderer
from billing.enrollment import Enrollment, enroll
from billing.invoice_document import load
from billing.jobs import BillingJobs
from billing.payments import PaymentIn
from billing.preview import preview
from billing.secrets import ENV, Secrets, generate_key
from billing.webhooks import endpoints
from billing.webhooks.dispatcher import Dispatcher
from charging_engine.bootstrap import Engine
from charging_engine.money import format_amount
from charging_server.billing_cmd import switches
from charging_server.demo.dunning import play_ladder
from charging_server.demo.notices import play_notices
from charging_server.demo.prepaid import play_prepaid
from charging_server.demo.receiver import Receiver
from charging_server.demo.show import title

TENANT, ACCOUNT, CUR = "acme", "erin", "USD"


async def _catalogue(engine: Engine) -> None:
    async with engine.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO billing_settings (tenant_id, number_prefix, finalization, review_hours,"
            " seller_name, seller_address, seller_tax_ids, footer) VALUES ($1, 'ACME', 'review',"
            " 24, 'Acme Telecom Inc.', '{\"1 Main Street\",\"New York, NY 10001\"}',"
            " '{\"EIN 12-3456789\"}', 'Thank you for your business.')"
            " ON CONFLICT DO NOTHING", TENANT)
        await conn.execute(
            "INSERT INTO tax_labels (tenant_id, code, name, rate) VALUES"
            " ($1, 'ny', 'NY sales tax', 8.875) ON CONFLICT DO NOTHING", TENANT)
        await conn.execute(
            "INSERT INTO bill_plans (tenant_id, plan_id, name, currency, payment_terms_days,"
            " plan_fee, per_extension_fee, tax_codes, payment_text) VALUES ($1, 'business',"
            " 'Business PBX', 'USD', 14, 2500, 200, '{ny}',"
            " 'Direct debit from the account on file on the due date') ON CONFLICT DO NOTHING",
            TENANT)


async def play_billing(engine: Engine, data_dir: Path) -> None:
    title(f"postpaid billing: {ACCOUNT}'s bill cycle, on a clock the demo moves")
    pool = engine.pool
    await _catalogue(engine)
    clock = MovableClock(datetime.fromtimestamp(engine.service.clock() / 1000, UTC))
    row = await enroll(pool, TENANT, ACCOUNT, Enrollment("business", extensions=5),
                       clock.now())
    start, end = row["open_start_date"], row["open_end_date"]
    await pool.execute(
        "INSERT INTO dids (tenant_id, number, account_id, description, setup_fee, monthly_fee,"
        " assigned_on) VALUES ($1, '12125550199', $2, 'main number', 500, 300, $3)",
        TENANT, ACCOUNT, start)
    await pool.execute(
        "INSERT INTO one_time_charges (tenant_id, charge_id, account_id, kind, description,"
        " amount, charge_on) VALUES ($1, 'phone-1', $2, 'equipment', 'IP desk phone', 4900,"
        " $3)", TENANT, ACCOUNT, start)
    print(f"  {ACCOUNT} on plan 'Business PBX' (25.00 USD + 5 extensions x 2.00 USD a month,"
          f" NY sales tax), bill cycle day {row['bcd']}: period {start} to"
          f" {end - timedelta(days=1)}")
    p = await preview(pool, TENANT, ACCOUNT)
    usage = sum(g.amount_micros for g in p.usage)
    print(f"  unbilled usage so far: {format_amount(usage, CUR)} {CUR} in"
          f" {sum(g.calls for g in p.usage)} calls; next invoice (preview):"
          f" {format_minor(p.built.composed.total, CUR)} {CUR}")

    os.environ.setdefault(ENV, generate_key())  # the demo's own key for webhook secrets
    secrets = Secrets()
    async with Receiver() as rx:
        _, secret = await endpoints.create(pool, secrets, TENANT, rx.url,
                                           "accounting system (demo)")
        assert secret is not None
        rx.secret = secret
        sender = Dispatcher(pool, secrets, clock=clock)
        jobs = BillingJobs(pool, engine.store, clock=clock, deliverer=sender,
                           switches=switches(engine))
        try:
            clock.set(row["open_ends_at"] + timedelta(minutes=5))
            tick = await jobs.tick()
            draft = await pool.fetchrow("SELECT * FROM invoices WHERE account_id = $1"
                                        " AND tenant_id = $2", ACCOUNT, TENANT)
            print(f"  clock moved to {clock.now():%Y-%m-%d %H:%M} UTC: the run made"
                  f" {tick.run.invoices} draft, open for review until"
                  f" {draft['review_until']:%Y-%m-%d %H:%M} UTC; {ACCOUNT}'s balance got its"
                  f" {format_amount(draft['usage_micros'], CUR)} {CUR} of invoiced usage back")
            clock.advance(timedelta(hours=25))
            await jobs.tick()
        finally:
            await sender.aclose()
        inv = await pool.fetchrow("SELECT * FROM invoices WHERE invoice_id = $1",
                                  draft["invoice_id"])
        print(f"  clock moved a day on: invoice {inv['number']} finalized: total"
              f" {format_minor(inv['total'], CUR)} {CUR}, due {inv['due_on']}")
        lines = await pool.fetch("SELECT * FROM invoice_lines WHERE invoice_id = $1"
                                 " ORDER BY position", inv["invoice_id"])
        for ln in lines:
            n = ln["calls"]
            calls = f" ({n} call{'' if n == 1 else 's'})" if n else ""
            print(f"    {format_minor(ln['amount'], CUR):>8} {CUR}  {ln['description']}{calls}")
        print(f"    {format_minor(inv['tax_total'], CUR):>8} {CUR}  NY sales tax")
        rendering = await load(pool, TENANT, inv["invoice_id"])
        async with PdfRenderer(tabs=1) as renderer:
            pdf = await renderer.render(rendering.document, rendering.branding,
                                        rendering.source)
        out = data_dir / "demo" / "invoices" / f"{inv['number']}.pdf"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(pdf)
        print(f"  PDF: {out} ({len(pdf):,} bytes)")
        for msg_id, body in rx.received:
            print(f"  webhook {body['type']} delivered to {rx.url}: signature verified,"
                  f" webhook-id {msg_id}, invoice {body['data']['invoice']['number']}")
        if rx.rejected:
            print(f"  {rx.rejected} webhook(s) failed verification")
    await _payments(engine, inv["invoice_id"], inv["amount_due"], clock.now())
    await play_ladder(engine, clock)
    await play_prepaid(engine, clock)
    await play_notices(engine, clock)


async def _payments(engine: Engine, invoice_id: str, due: int, at: datetime) -> None:
    """A partial bank transfer, then a card payment of the rest and a little more (credit);
    the bank transfer sent again under its Idempotency-Key records nothing more."""
    first = PaymentIn(ACCOUNT, "bank_transfer", 10_000, CUR, at.date(), "BT-2027-0001")
    rest = PaymentIn(ACCOUNT, "card", due - 10_000 + 500, CUR, at.date(), "card *4242")
    for p, key in ((first, "demo-bt-1"), (first, "demo-bt-1"), (rest, "demo-card-1")):
        async with engine.pool.acquire() as conn, conn.transaction():
            paid, new = await payments.record(conn, TENANT, p, idempotency_key=key, at=at)
        status = await engine.pool.fetchval("SELECT status FROM invoices WHERE invoice_id = $1",
                                            invoice_id)  # fmt: skip
        if not new:
            print(f"  the same payment sent again (Idempotency-Key {key}): {paid.payment_id}"
                  " answered, nothing recorded twice")
            continue
        print(f"  payment {format_minor(p.amount, CUR)} {CUR} by {p.method}:"
              f" {format_minor(paid.amount - paid.credited, CUR)} {CUR} to the invoice,"
              f" now {status}"
              + (f"; {format_minor(paid.credited, CUR)} {CUR} to account credit"
                 if paid.credited else ""))  # fmt: skip
    fee = await engine.pool.fetchval("SELECT position FROM invoice_lines WHERE invoice_id = $1"
                                     " AND kind = 'recurring' ORDER BY position LIMIT 1",
                                     invoice_id)  # fmt: skip
    async with engine.pool.acquire() as conn, conn.transaction():
        note, _ = await credit_notes.issue(
            conn, TENANT, invoice_id, (CreditAsk(fee, 500, "one day of outage"),),
            settle="credit", idempotency_key="demo-cn-1", today=at.date(), at=at)  # fmt: skip
        rows, _ = aging.age(await receivables.as_of(conn, TENANT, at.date()), at.date())
    print(f"  credit note {note.number}: {format_minor(note.total, CUR)} {CUR} (5.00 {CUR} of the"
          f" plan fee + tax, 'one day of outage'), the invoice being paid: to account credit")
    open_total = sum(r.outstanding for r in rows if r.currency == CUR)
    print(f"  aging on {at.date()}: {format_minor(open_total, CUR)} {CUR} outstanding in"
          f" {len(rows)} account(s)")


"""The demo in the field: grace texts BALANCE to the tenant's short code and the answer comes
back over the same SMPP session; a collection agent takes cash at her door (the phone sends it
twice: one payment), and the receipt SMS reaches her primary and her alternate number."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from billing.amounts import format_minor
from billing.clock import MovableClock
from billing.collections import agents, collect, tasks
from billing.collections.rules import DEFAULT_PRESETS
from charging_engine.bootstrap import Engine
from charging_server.billing_cmd import money_operations
from charging_server.demo.show import title
from notifications.smpp import Smsc

TENANT, ACCOUNT, CUR = "acme", "grace", "USD"
SHORT_CODE = "55501"
PRIMARY, ALTERNATE = "+12125550144", "+12125550145"
AGENT = "ana"


async def _texted(smsc: Smsc, send: Callable[[], Awaitable[int]], source: str, text: str) -> str:
    """``text`` from ``source`` to the short code; -> the reply the SMSC received."""
    before = len(smsc.messages)
    await smsc.mo(source, SHORT_CODE, text)  # answered once the keywords logged it
    await send()
    replies = [m.text for m in smsc.messages[before:] if m.destination.endswith(source[1:])]
    return replies[-1] if replies else "(no reply)"


async def play_field(engine: Engine, clock: MovableClock, smsc: Smsc,
                     send: Callable[[], Awaitable[int]]) -> None:  # fmt: skip
    """``send``: the relay and the dispatcher run until nothing is left to send."""
    title("in the field: grace texts BALANCE; an agent collects cash and the receipt SMS"
          " arrives")
    pool = engine.pool
    await pool.execute(
        "INSERT INTO inbound_settings (tenant_id, destination, support_contact) VALUES ($1, $2,"
        " 'call 212 555 0100') ON CONFLICT (tenant_id) DO NOTHING", TENANT, SHORT_CODE)
    await pool.execute("UPDATE account_details SET alternate_mobile = $3 WHERE tenant_id = $1"
                       " AND account_id = $2", TENANT, ACCOUNT, ALTERNATE)  # fmt: skip
    reply = await _texted(smsc, send, PRIMARY, " balance ")
    print(f'  {PRIMARY} texts "balance" to {SHORT_CODE}; the reply: "{reply}"')
    money = money_operations(engine)
    at = clock.now()
    async with pool.acquire() as conn, conn.transaction():
        await agents.put(conn, TENANT, AGENT, name="Ana Agent", area="uptown", mobile=None,
                         key_id=None, active=True, at=at)  # fmt: skip
        task = await tasks.create(conn, TENANT, tasks.TaskIn(
            ACCOUNT, "pickup", area="uptown", address="12 Park Row", amount_expected=1000),
            by="demo", at=at)  # fmt: skip
    print(f"  pickup {task.task_id} at 12 Park Row assigned by the area rule to"
          f" {task.agent_id}")
    seen = []
    for _ in range(2):  # the agent's phone lost the first answer and sent it again
        async with pool.acquire() as conn, conn.transaction():
            done, created = await collect.collect(
                conn, TENANT, task.task_id, collect.CollectionIn(
                    amount=1000, method="cash", currency=CUR, preset=DEFAULT_PRESETS[0]),
                agent_id=AGENT, by="demo", idempotency_key="ana-visit-1", today=at.date(),
                at=at, money=money)  # fmt: skip
        seen.append(created)
    p = done.payment
    print(f"  {done.agent_name} records {format_minor(p.amount, CUR)} {CUR} cash, sent twice by"
          f" her phone: {seen.count(True)} payment ({p.payment_id}), receipt"
          f" {done.receipt_number}")
    before = len(smsc.messages)
    await send()
    for m in smsc.messages[before:]:
        print(f'  SMS to +{m.destination}: "{m.text}"')
    reply = await _texted(smsc, send, ALTERNATE, "BALANCE")
    print(f'  {ALTERNATE} (her alternate number) texts "BALANCE"; the reply: "{reply}"')

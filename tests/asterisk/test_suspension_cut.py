"""A live call of an account the suspension ladder suspends is cut through the connector's own
path (its next reservation extension is refused, the PBX is told to end it): within one slice
and the extension lead of the suspension, and charged only what it talked."""

from __future__ import annotations

import asyncio
import time

from billing.dunning_run import ACTOR, REASON_PREFIX
from charging_engine.account_status import AccountStatus
from charging_engine.accounts.changes import AccountChanges
from pbx_connectors.asterisk.simulator import CallSpec
from tests.asterisk.stack import US, eventually, expected_cost, running_stack

SLICE_S = 4


async def test_a_suspended_accounts_live_call_is_cut(redis_url: str, database_url: str) -> None:
    async with running_stack(redis_url, database_url, {"a1": "100.00"},
                             engine={"slice_seconds": SLICE_S},
                             fastagi={"dial_limit": "max_call"}) as stack:  # fmt: skip
        handle = stack.sim.start_call(CallSpec("a1", "15550001", US, talk_s=60.0))
        async with asyncio.timeout(10):
            await handle.wait_answered()

        async def supervised() -> bool:
            return stack.connector.enforcer.supervised(handle.uniqueid) is not None

        await eventually(supervised, 10, "the call to be supervised")
        changes = AccountChanges(stack.engine.pool, stack.engine.store,
                                 clock=stack.engine.service.clock,
                                 on_catalog_change=stack.engine.refresh_catalog)  # fmt: skip
        await changes.change_status(ACTOR, "tel", "a1", AccountStatus.SUSPENDED,
                                    REASON_PREFIX + "service_suspended")  # fmt: skip
        suspended_at = time.monotonic()
        record = await asyncio.wait_for(handle, 30)
        cut_after = time.monotonic() - suspended_at
        assert record.ended_by != "caller"  # the PBX ended it, not the 60 s of talk
        assert cut_after <= SLICE_S + 2.0 + 1.0, cut_after  # a slice, the lead, a margin
        assert record.billable_seconds < 60
        await stack.quiet()
        assert await stack.balance("a1") == 100_000_000 - expected_cost(record)

"""Call sessions: authorize -> answer -> (extend) -> end -> charged, keyed by tenant + PBX call id.

Connectors (HTTP, FastAGI, AMI) translate into these calls; the rules live here and in rating.
Each step is one or two pipelined Redis calls and no other I/O.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from charging_engine.account_status import refused_by
from charging_engine.balance.store import BalanceStore, Reservation
from charging_engine.catalog import Account, Catalog
from charging_engine.ids import InvalidId, check_call_id, check_id
from charging_engine.rating.model import Rate
from charging_engine.rating.numbers import NumberError, normalize
from charging_engine.rating.pricing import (
    MAX_CALL_SECONDS,
    billed_seconds,
    cost,
    extension_target,
    max_duration,
    next_boundary,
    price_of_billed,
    reservation_terms,
)
from charging_engine.sessions.blob import SessionInfo, call_detail, pack_session, unpack_session
from charging_engine.sessions.model import (
    Answered,
    Charge,
    Correction,
    Decision,
    Extension,
    InvalidRequest,
    NotFound,
    Reason,
    refusal_for,
)
from charging_engine.sessions.policy import ExpiryPolicy, SessionPolicy, wall_ms

RECENT_SESSIONS = 100_000
# Reservations come in a few sizes (one slice of each rate), so most lookups are cache hits.
_max_duration = functools.lru_cache(maxsize=65_536)(max_duration)
CLOCK_SKEW_MS = 60_000  # how far a PBX clock may run ahead of ours


@dataclass(slots=True)
class _Live:
    """A session this process authorized (and maybe saw answered)."""

    info: SessionInfo
    blob: bytes
    answer_ms: int | None = None


class ChargingService:
    """The real-time charging operations; ``catalog`` is swapped in place when Postgres changes."""

    def __init__(
        self,
        store: BalanceStore,
        catalog: Catalog,
        policy: SessionPolicy | None = None,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.policy = policy or SessionPolicy()
        self.clock = clock
        # Sessions this process authorized: ending them needs no Redis read when the PBX
        # reports billable seconds. Redis stays the authority (settle is idempotent there).
        self._recent: OrderedDict[tuple[str, str, str], _Live] = OrderedDict()

    # --- lookups -------------------------------------------------------------------------

    def _account(self, tenant_id: str, account_id: str) -> Account:
        account = self.catalog.account(tenant_id, account_id)
        if account is not None:  # ids in the catalogue were validated when loaded
            return account
        try:
            check_id("tenant", tenant_id)
            check_id("account", account_id)
        except InvalidId as exc:
            raise InvalidRequest(str(exc)) from exc
        if self.catalog.tenant(tenant_id) is None:
            raise NotFound(Reason.UNKNOWN_TENANT, f"tenant {tenant_id!r} does not exist")
        raise NotFound(Reason.UNKNOWN_ACCOUNT, f"account {account_id!r} does not exist")

    @staticmethod
    def _call_id(call_id: str) -> str:
        try:
            return check_call_id(call_id)
        except InvalidId as exc:
            raise InvalidRequest(str(exc)) from exc

    def _expiry(self, from_ms: int, granted: int) -> int:
        return from_ms + (granted + self.policy.ttl_margin_s) * 1000

    def _granted(self, rate: Rate, reserved: int) -> int:
        return _max_duration(rate, reserved, self.policy.max_call_seconds)

    # --- operations ----------------------------------------------------------------------

    async def authorize(
        self, tenant_id: str, account_id: str, call_id: str, destination: str,
        *, with_affordable: bool = False,
    ) -> Decision:
        """May this account call this number, and for how many answered seconds?

        ``with_affordable`` also prices what all the available money would pay for (the
        backstop limit a PBX sets with Dial's L() option).
        """
        account = self._account(tenant_id, account_id)
        call_id = self._call_id(call_id)
        try:
            number = normalize(destination)
        except NumberError as exc:
            raise InvalidRequest(str(exc)) from exc
        tenant = self.catalog.tenant(tenant_id)
        assert tenant is not None
        tariff = (
            self.catalog.tariff(tenant_id, account.rate_plan_id) if account.rate_plan_id else None
        )
        if tariff is None:
            return Decision(False, Reason.NO_RATE_PLAN, 0, destination=number,
                            detail="the account has no rate plan")
        now = self.clock()
        rate = tariff.find(number, _aware(now), tenant.tz)
        if rate is None:
            return Decision(False, Reason.NO_RATE, 0, destination=number,
                            detail=f"no rate matches {number}")
        slice_s, cap, minimum = reservation_terms(
            rate, min(self.policy.slice_seconds, self.policy.max_call_seconds)
        )
        info = SessionInfo(rate, number, tariff.plan_id, now)
        blob = pack_session(info)
        res = await self.store.authorize(
            tenant_id, account_id, call_id, cap=cap, minimum=minimum,
            expires_ms=now + (self.policy.ring_allowance_s + slice_s + self.policy.ttl_margin_s)
            * 1000,
            blob=blob, now_ms=now,
        )
        if res.repeated:
            # A retried authorize: answer from the session as first authorized, whatever
            # destination this retry names, so a call id cannot switch to another rate.
            rec = await self._session(tenant_id, account_id, call_id)
            if rec is None:  # settled in between
                return Decision(False, Reason.ALREADY_ENDED, 0, destination=number)
            first = unpack_session(rec.blob)
            return self._decision(res, first.rate, first.destination, with_affordable)
        if res.status == "ok":
            self._remember((tenant_id, account_id, call_id), info, blob)
        return self._decision(res, rate, number, with_affordable)

    def _remember(self, key: tuple[str, str, str], info: SessionInfo, blob: bytes) -> None:
        self._recent[key] = _Live(info, blob)
        if len(self._recent) > RECENT_SESSIONS:
            self._recent.popitem(last=False)

    def _decision(
        self, res: Reservation, rate: Rate, number: str, with_affordable: bool = False
    ) -> Decision:
        if res.status == "ok":
            granted = self._granted(rate, res.reserved)
            affordable = (
                self._granted(rate, res.reserved + max(res.available, 0))
                if with_affordable else granted
            )
            return Decision(True, Reason.OK, granted, res.reserved, number, rate.prefix,
                            affordable_seconds=affordable)
        if res.status == "unknown_account":
            raise NotFound(Reason.UNKNOWN_ACCOUNT, "account has no balance record")
        if res.status == "already_ended":
            return Decision(False, Reason.ALREADY_ENDED, 0, destination=number,
                            detail="this call id has already ended")
        if (status := refused_by(res.status)) is not None:
            return Decision(False, refusal_for(status), 0, destination=number,
                            detail=f"account status is {status.value}")
        return Decision(False, Reason.INSUFFICIENT_FUNDS, 0, destination=number,
                        detail="available funds do not cover the first billing increment")

    async def _session(self, tenant_id: str, account_id: str, call_id: str) -> Any:
        return await self.store.session(tenant_id, account_id, call_id)

    async def answer(
        self, tenant_id: str, account_id: str, call_id: str, answered_at_ms: int | None = None
    ) -> Answered:
        """Record the answer time (first one wins) and re-arm the reservation's TTL from it."""
        self._account(tenant_id, account_id)
        call_id = self._call_id(call_id)
        now = self.clock()
        at = answered_at_ms if answered_at_ms is not None else now
        rec = await self._session(tenant_id, account_id, call_id)
        if rec is None:
            raise NotFound(Reason.UNKNOWN_CALL, f"no live session for call {call_id!r}")
        info = unpack_session(rec.blob)
        if not info.started_ms - CLOCK_SKEW_MS <= at <= now + CLOCK_SKEW_MS:
            raise InvalidRequest("answered_at is outside the session's lifetime")
        granted = self._granted(info.rate, rec.reserved)
        status, effective, _ = await self.store.answer(
            tenant_id, account_id, call_id, answer_ms=at,
            expires_ms=self._expiry(max(at, now), granted), now_ms=now,
        )
        if status != "ok":
            raise NotFound(Reason.UNKNOWN_CALL, f"no live session for call {call_id!r}")
        live = self._recent.get((tenant_id, account_id, call_id))
        if live is not None:
            live.answer_ms = effective
        return Answered(effective, granted)

    async def extend(
        self, tenant_id: str, account_id: str, call_id: str, sequence: int
    ) -> Extension:
        """Reserve one more slice for a long call; when refused, say how long it may go on."""
        self._account(tenant_id, account_id)
        call_id = self._call_id(call_id)
        if not 1 <= sequence <= 100_000:
            raise InvalidRequest("sequence must be between 1 and 100000")
        now = self.clock()
        rec = await self._session(tenant_id, account_id, call_id)
        if rec is None:
            raise NotFound(Reason.UNKNOWN_CALL, f"no live session for call {call_id!r}")
        rate = unpack_session(rec.blob).rate
        granted = self._granted(rate, rec.reserved)
        target = extension_target(
            rate, granted, self.policy.slice_seconds, self.policy.max_call_seconds
        )
        want = cost(rate, target) - rec.reserved
        least = cost(rate, next_boundary(rate, granted)) - rec.reserved
        status, total = "ok", rec.reserved
        if target > granted and want > 0:
            anchor = rec.answer_ms if rec.answer_ms is not None else now
            res = await self.store.extend(
                tenant_id, account_id, call_id, sequence=sequence, want=want,
                least=max(least, 1), expires_ms=self._expiry(anchor, target), now_ms=now,
            )
            status, total = res.status, res.reserved
        total_granted = self._granted(rate, total)
        left = None
        if rec.answer_ms is not None:
            left = max(0, total_granted - (now - rec.answer_ms) // 1000)
        if status == "repeat" or (status == "ok" and total_granted > granted):
            return Extension(True, Reason.OK, total_granted, left)
        if target <= granted:  # nothing was asked of Redis: the cap, not the money, binds
            reason = Reason.MAX_CALL_DURATION
        elif status in ("ok", "insufficient_funds"):
            reason = Reason.INSUFFICIENT_FUNDS
        elif (barred := refused_by(status)) is not None:
            reason = refusal_for(barred)
        else:
            reason = Reason.UNKNOWN_CALL  # not_found: the reservation is gone
        return Extension(False, reason, total_granted, left)

    async def end(
        self,
        tenant_id: str,
        account_id: str,
        call_id: str,
        *,
        billable_seconds: int | None = None,
        ended_at_ms: int | None = None,
    ) -> Charge:
        """Charge the call once: from the PBX's billable seconds, else answer -> end time."""
        self._account(tenant_id, account_id)
        call_id = self._call_id(call_id)
        if billable_seconds is not None and not 0 <= billable_seconds <= MAX_CALL_SECONDS:
            raise InvalidRequest(f"billable_seconds must be between 0 and {MAX_CALL_SECONDS}")
        now = self.clock()
        end_ms = ended_at_ms if ended_at_ms is not None else now
        known = self._recent.pop((tenant_id, account_id, call_id), None)
        if known is not None and billable_seconds is not None:
            return await self._settle(
                tenant_id, account_id, call_id, known.info, known.answer_ms, end_ms,
                billable_seconds, blob=known.blob,
                kind="commit" if billable_seconds > 0 else "release",
                disposition="answered" if billable_seconds > 0 else "not_answered",
                only_if_expired_by=0,
            )
        rec = await self._session(tenant_id, account_id, call_id)
        if rec is None:
            done = await self.store.settlement_of(tenant_id, account_id, call_id)
            if done is None:
                raise NotFound(Reason.UNKNOWN_CALL, f"no session for call {call_id!r}")
            return Charge(Reason.DUPLICATE, done.cost, done.balance, 0, 0)
        info = unpack_session(rec.blob)
        if billable_seconds is not None:
            duration = billable_seconds
        elif rec.answer_ms is not None:
            if not rec.answer_ms <= end_ms <= now + CLOCK_SKEW_MS:
                raise InvalidRequest("ended_at_ms must lie between the answer time and now")
            duration = (end_ms - rec.answer_ms) // 1000
        else:
            duration = 0
        answered = rec.answer_ms is not None or (billable_seconds or 0) > 0
        return await self._settle(
            tenant_id, account_id, call_id, info, rec.answer_ms, end_ms, duration,
            kind="commit" if answered else "release",
            disposition="answered" if answered else "not_answered",
            only_if_expired_by=0,
        )

    async def _settle(
        self, tenant_id: str, account_id: str, call_id: str, info: SessionInfo,
        answer_ms: int | None, end_ms: int, duration: int, *, kind: str, disposition: str,
        only_if_expired_by: int, note: str = "", blob: bytes | None = None,
    ) -> Charge:
        rate = info.rate
        billed = billed_seconds(rate, duration)
        amount = price_of_billed(rate, billed)
        extra = call_detail(info, answer_ms, end_ms, duration, billed, disposition)
        if note:
            extra["note"] = note
        res = await self.store.settle(
            tenant_id, account_id, call_id, kind=kind, cost=amount, extra=extra,
            now_ms=self.clock(), only_if_expired_by=only_if_expired_by, billed=duration,
            blob=blob if blob is not None else pack_session(info),
        )
        if res.status == "duplicate":
            return Charge(Reason.DUPLICATE, res.cost, res.balance, 0, 0)
        if res.status == "unknown_account":
            raise NotFound(Reason.UNKNOWN_ACCOUNT, "account has no balance record")
        if res.status == "not_expired":
            return Charge(Reason.DUPLICATE, 0, res.balance, 0, 0)
        return Charge(Reason.OK, res.cost, res.balance, billed, duration)

    async def correct(
        self, tenant_id: str, account_id: str, call_id: str, cdr_seconds: int,
        tolerance_s: int = 1,
    ) -> Correction:
        """Reconcile a settled call with the PBX's CDR billable seconds, once.

        A difference beyond ``tolerance_s`` re-rates the call with the rate it was charged
        under and books the difference as a ``correction`` ledger entry keyed by the call.
        """
        self._account(tenant_id, account_id)
        call_id = self._call_id(call_id)
        if not 0 <= cdr_seconds <= MAX_CALL_SECONDS:
            raise InvalidRequest(f"cdr seconds must be between 0 and {MAX_CALL_SECONDS}")
        done = await self.store.settlement_of(tenant_id, account_id, call_id)
        if done is None:
            return Correction(False, "not_settled", None, cdr_seconds, 0)
        if done.billed is None or done.blob is None:
            return Correction(False, "unrated", done.billed, cdr_seconds, 0)
        if abs(cdr_seconds - done.billed) <= tolerance_s:
            return Correction(False, "within_tolerance", done.billed, cdr_seconds, 0)
        info = unpack_session(done.blob)
        delta = cost(info.rate, cdr_seconds) - done.cost
        res = await self.store.credit(
            tenant_id, account_id, kind="correction", amount=-delta, idem_key=call_id,
            extra={"from_seconds": done.billed, "to_seconds": cdr_seconds,
                   "billed": billed_seconds(info.rate, cdr_seconds), "delta": delta,
                   "source": "cdr"},
            now_ms=self.clock(), call_id=call_id,
        )
        if res.status == "duplicate":
            return Correction(False, "already_corrected", done.billed, cdr_seconds, 0)
        return Correction(True, "corrected", done.billed, cdr_seconds, delta)

    async def balance(self, tenant_id: str, account_id: str) -> dict[str, Any]:
        account = self._account(tenant_id, account_id)
        state = await self.store.state(tenant_id, account_id)
        if state is None:
            raise NotFound(Reason.UNKNOWN_ACCOUNT, "account has no balance record")
        return {
            "currency": account.currency, "balance": state.balance,
            "credit_limit": state.credit_limit, "reserved": state.reserved,
            "available": state.available, "status": state.status,
        }

    async def expire(self, tenant_id: str, account_id: str, call_id: str, now_ms: int) -> str:
        """Apply the expiry policy to one session whose TTL passed; says what it did."""
        rec = await self._session(tenant_id, account_id, call_id)
        if rec is None:
            return "gone"
        info = unpack_session(rec.blob)
        granted = self._granted(info.rate, rec.reserved)
        charge_it = self.policy.expiry is ExpiryPolicy.CHARGE_GRANTED and rec.answer_ms is not None
        duration = granted if charge_it else 0
        res = await self._settle(
            tenant_id, account_id, call_id, info, rec.answer_ms,
            now_ms, duration, kind="expire",
            disposition="expired_answered" if rec.answer_ms is not None else "expired_unanswered",
            only_if_expired_by=now_ms, note=f"policy={self.policy.expiry.value}",
        )
        if res.reason is Reason.DUPLICATE:
            return "skipped"
        return f"charged {res.cost}" if charge_it else "released"


def _aware(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)

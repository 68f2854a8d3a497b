"""Typed calls into the charging function library: the only code that mutates Redis balances."""

from __future__ import annotations

import asyncio
import functools
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

from charging_engine.balance.batcher import CommandBatcher
from charging_engine.balance.entries import pack_extra
from charging_engine.balance.functions import load_functions
from charging_engine.balance.keys import AccountKeys, expiry_key
from charging_engine.balance.transport import RedisPyTransport, Transport

DEFAULT_IDEM_TTL_S = 7 * 86_400


def end_key(call_id: str) -> str:
    """Idempotency key of a call's settlement: a call settles once, whoever ends it."""
    return f"end:{call_id}"


class Reservation(NamedTuple):
    status: str  # ok | repeat | insufficient_funds | unknown_account | account_<status> | ...
    reserved: int  # micros now held for the call
    available: int  # available funds after the operation
    repeated: bool = False  # the call already held this reservation; nothing changed


class Settled(NamedTuple):
    status: str  # ok | duplicate | not_expired | unknown_account
    cost: int
    balance: int
    released: int
    billed: int | None = None  # known for a recorded settlement (None if restored from ledger)
    blob: bytes | None = None  # the session record it was rated with


class Credited(NamedTuple):
    status: str  # ok | duplicate | unknown_account | insufficient_funds
    balance: int
    available: int


@dataclass(frozen=True, slots=True)
class AccountState:
    balance: int
    credit_limit: int
    reserved: int
    status: str
    currency: str
    seq: int

    @property
    def available(self) -> int:
        return self.balance + self.credit_limit - self.reserved


@dataclass(frozen=True, slots=True)
class SessionRecord:
    blob: bytes
    answer_ms: int | None
    reserved: int


@functools.lru_cache(maxsize=65_536)
def _fixed_keys(tenant: str, account: str, buckets: int) -> tuple[tuple[str, ...], str]:
    """An account's five fixed KEYS and its idempotency-key prefix (hot accounts stay cached)."""
    k = AccountKeys.of(tenant, account, buckets)
    return tuple(k.keys("")[:5]), k.idem("")


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class BalanceStore:
    """Balance mutations for accounts spread over ``buckets`` hash-tagged buckets."""

    def __init__(
        self,
        redis: Any,
        buckets: int,
        idem_ttl_s: int = DEFAULT_IDEM_TTL_S,
        transport: Transport | None = None,
        max_inflight: int = 4,
    ) -> None:
        self.redis = redis
        self.buckets = buckets
        self.idem_ttl_s = idem_ttl_s
        self._transport = transport or RedisPyTransport(redis)
        self._batcher = CommandBatcher(
            self._transport, max_inflight=max_inflight, on_missing_function=self.load
        )

    async def load(self) -> None:
        await load_functions(self.redis)

    async def close(self) -> None:
        await self._batcher.close()
        await self._transport.aclose()

    def keys(self, tenant: str, account: str) -> AccountKeys:
        return AccountKeys.of(tenant, account, self.buckets)

    async def _call(
        self, fn: str, tenant: str, account: str, idem: str, now_ms: int, *args: Any
    ) -> list[Any]:
        fixed, idem_prefix = _fixed_keys(tenant, account, self.buckets)
        reply = await self._batcher.execute(
            "FCALL", fn, 6, *fixed, idem_prefix + idem, tenant, account, now_ms,
            self.idem_ttl_s, *args,
        )
        return list(reply)

    async def authorize(
        self, tenant: str, account: str, call_id: str, *, cap: int, minimum: int,
        expires_ms: int, blob: bytes, now_ms: int,
    ) -> Reservation:
        r = await self._call(
            "ce_authorize", tenant, account, end_key(call_id), now_ms,
            call_id, cap, minimum, expires_ms, blob, b"",
        )
        return Reservation(_s(r[0]), int(r[1]), int(r[2]), bool(int(r[3])))

    async def answer(
        self, tenant: str, account: str, call_id: str, *, answer_ms: int, expires_ms: int,
        now_ms: int,
    ) -> tuple[str, int, int]:
        """-> (status, effective answer ms (first answer wins), reserved)."""
        r = await self._call(
            "ce_answer", tenant, account, "answer", now_ms, call_id, answer_ms, expires_ms
        )
        return _s(r[0]), int(r[1]), int(r[2])

    async def extend(
        self, tenant: str, account: str, call_id: str, *, sequence: int, want: int,
        least: int, expires_ms: int, now_ms: int,
    ) -> Reservation:
        r = await self._call(
            "ce_extend", tenant, account, f"ext:{call_id}:{sequence}", now_ms,
            call_id, want, least, expires_ms, b"",
        )
        return Reservation(_s(r[0]), int(r[1]), int(r[2]))

    async def settle(
        self, tenant: str, account: str, call_id: str, *, kind: str, cost: int,
        extra: dict[str, Any], now_ms: int, only_if_expired_by: int = 0, billed: int = 0,
        blob: bytes = b"",
    ) -> Settled:
        r = await self._call(
            "ce_settle", tenant, account, end_key(call_id), now_ms,
            call_id, kind, cost, only_if_expired_by, pack_extra(extra), billed, blob,
        )
        return Settled(_s(r[0]), int(r[1]), int(r[2]), int(r[3]))

    async def credit(
        self, tenant: str, account: str, *, kind: str, amount: int, idem_key: str,
        extra: dict[str, Any], now_ms: int, call_id: str = "",
    ) -> Credited:
        r = await self._call(
            "ce_credit", tenant, account, f"{kind}:{idem_key}", now_ms,
            kind, amount, pack_extra(extra), call_id,
        )
        return Credited(_s(r[0]), int(r[1]), int(r[2]))

    async def provision(
        self, tenant: str, account: str, *, currency: str, credit_limit: int, status: str,
        now_ms: int, idem_key: str | None = None,
    ) -> int:
        """Create or update; ``idem_key`` names the change so a retry of it is a no-op (without
        one, every call is a new change)."""
        key = idem_key or uuid.uuid4().hex
        r = await self._call(
            "ce_provision", tenant, account, f"provision:{key}", now_ms,
            currency, credit_limit, status, pack_extra({}),
        )
        return int(r[1])

    async def set_thresholds(
        self, tenant: str, account: str, *, thresholds: list[int], hysteresis: int, now_ms: int
    ) -> tuple[str, int]:
        """Low-balance alert lines of an account -> (ok|unchanged|unknown_account, fired)."""
        r = await self._call(
            "ce_thresholds", tenant, account, "thresholds", now_ms,
            ",".join(str(t) for t in thresholds), hysteresis,
        )
        return _s(r[0]), int(r[1])

    async def state(self, tenant: str, account: str) -> AccountState | None:
        key = self.keys(tenant, account).account_key
        f = await self._batcher.execute(
            "HMGET", key, "balance", "credit", "reserved", "status", "currency", "seq"
        )
        if f[0] is None:
            return None
        return AccountState(
            int(f[0]), int(f[1] or 0), int(f[2] or 0), _s(f[3]), _s(f[4] or b""), int(f[5] or 0)
        )

    async def session(self, tenant: str, account: str, call_id: str) -> SessionRecord | None:
        keys = self.keys(tenant, account).keys("")
        amt, fields = await asyncio.gather(
            self._batcher.execute("HGET", keys[1], call_id),
            self._batcher.execute("HMGET", keys[2], call_id, f"{call_id}|ans"),
        )
        if amt is None or fields[0] is None:
            return None
        ans = int(fields[1]) if fields[1] is not None else None
        return SessionRecord(bytes(fields[0]), ans, int(amt))

    async def expired(self, bucket: int, now_ms: int, limit: int = 256) -> list[str]:
        """Expiry-index members whose reservation TTL has passed."""
        raw = await self._batcher.execute(
            "ZRANGEBYSCORE", expiry_key(bucket), "-inf", now_ms, "LIMIT", 0, limit
        )
        return [_s(m) for m in raw]

    async def settlement_of(self, tenant: str, account: str, call_id: str) -> Settled | None:
        """The recorded settlement of a call, if it has settled."""
        raw = await self._batcher.execute("GET", self.keys(tenant, account).idem(end_key(call_id)))
        if raw is None:
            return None
        parts = bytes(raw).split(b" ", 3)
        billed = int(parts[2]) if len(parts) > 2 else None
        blob = parts[3] if len(parts) > 3 and parts[3] else None
        return Settled("duplicate", int(parts[0]), int(parts[1]), 0, billed, blob)

    async def drop_expiry(self, bucket: int, member: str) -> None:
        """Forget an expiry-index member whose reservation no longer exists."""
        await self._batcher.execute("ZREM", expiry_key(bucket), member)

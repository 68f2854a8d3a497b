"""Redis key layout, Cluster-ready: every key one function touches shares the bucket's hash tag.

An account lives in bucket ``crc32(tenant, account) % buckets``; its keys and its bucket's
settlement stream and expiry index all start with ``{b:N}`` so they hash to one slot. The bucket
count is fixed when a deployment is created: changing it moves every account.

    {b:N}:a:<tenant>:<account>          hash   balance, credit, reserved, status, currency, seq
    {b:N}:r:<tenant>:<account>          hash   call id -> reserved micros
    {b:N}:s:<tenant>:<account>          hash   call id -> session blob; "<call>|ans" -> answer ms
    {b:N}:i:<tenant>:<account>:<key>    string idempotency record (with TTL)
    {b:N}:exp                           zset   "<tenant> <account> <call>" by reservation expiry
    {b:N}:ledger                        stream one entry per mutation, read by settlement
    {b:N}:alerts                        stream low-balance/exhausted/status alerts (admin API)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final

SEP: Final = " "


def bucket_of(tenant: str, account: str, buckets: int) -> int:
    """Stable bucket of an account; the same in every engine process and language."""
    return zlib.crc32(f"{tenant}{SEP}{account}".encode()) % buckets


def bucket_tag(bucket: int) -> str:
    return f"{{b:{bucket}}}"


def stream_key(bucket: int) -> str:
    return f"{bucket_tag(bucket)}:ledger"


def expiry_key(bucket: int) -> str:
    return f"{bucket_tag(bucket)}:exp"


def alerts_key(bucket: int) -> str:
    """Balance alerts the charging functions append beside the ledger stream (same hash tag)."""
    return f"{bucket_tag(bucket)}:alerts"


@dataclass(frozen=True, slots=True)
class AccountKeys:
    """All keys of one account, in the order the Redis functions expect them."""

    tenant: str
    account: str
    bucket: int

    @classmethod
    def of(cls, tenant: str, account: str, buckets: int) -> AccountKeys:
        return cls(tenant, account, bucket_of(tenant, account, buckets))

    @property
    def _base(self) -> str:
        return f"{bucket_tag(self.bucket)}:%s:{self.tenant}:{self.account}"

    @property
    def account_key(self) -> str:
        return self._base % "a"

    def idem(self, key: str) -> str:
        return f"{self._base % 'i'}:{key}"

    def keys(self, idem_key: str) -> list[str]:
        """KEYS for every function: account, reservations, sessions, expiry, stream, idem."""
        b = self._base
        return [
            b % "a", b % "r", b % "s",
            expiry_key(self.bucket), stream_key(self.bucket), self.idem(idem_key),
        ]

    def expiry_member(self, call_id: str) -> str:
        return f"{self.tenant}{SEP}{self.account}{SEP}{call_id}"


def parse_expiry_member(member: str) -> tuple[str, str, str]:
    """Inverse of ``AccountKeys.expiry_member``."""
    tenant, account, call_id = member.split(SEP, 2)
    return tenant, account, call_id

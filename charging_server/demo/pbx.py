"""A simulated PBX on the real-time API: what it asks, and what it was answered, as plain data.

The demo prints from these records, so amounts are kept as micros (parsed with
``charging_engine.money``), never as floats or the API's raw JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from charging_engine.money import parse_amount


def micros(text: str) -> int:
    """An API amount ("-0.0210") as micros."""
    return parse_amount(text, allow_negative=True)


@dataclass(slots=True)
class Call:
    """One simulated call and everything the engine answered about it."""

    account: str
    dst: str
    started: datetime  # aware, just before authorize: the instant the rate is picked at
    talk: int | None  # seconds the caller wants to talk; None: nobody answers
    http: int = 0
    allowed: bool = False
    reason: str = ""
    detail: str = ""
    grants: list[int] = field(default_factory=list)  # granted seconds after each slice
    refused: str | None = None  # why the PBX had to cut the call, if it did
    talked: int = 0
    billed: int = 0
    cost: int = 0
    balance: int = 0  # after the call

    @property
    def answered(self) -> bool:
        return self.allowed and self.talk is not None


@dataclass(frozen=True, slots=True)
class Balance:
    """The balance endpoint's answer, in micros."""

    balance: int
    credit_limit: int
    reserved: int
    available: int
    status: str


class Pbx:
    """Asks before each call, extends long calls slice by slice, reports the end."""

    def __init__(self, client: httpx.AsyncClient, key: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"}
        self.seq = 0

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        r = await self.client.post(path, json=body, headers=self.headers)
        return r.status_code, r.json()

    async def call(self, account: str, dst: str, talk: int | None) -> Call:
        """Authorize; then answer and talk ``talk`` seconds, capped by the granted limit as
        Asterisk's Dial L() would cap it, or give up unanswered when ``talk`` is None."""
        self.seq += 1
        ids = {"account": account, "call_id": f"{account}-{self.seq}"}
        call = Call(account, dst, datetime.now(UTC), talk)
        call.http, auth = await self._post("/v1/calls/authorize", {**ids, "destination": dst})
        call.allowed = bool(auth.get("allowed"))
        call.reason, call.detail = str(auth.get("reason", "")), str(auth.get("detail", ""))
        if not call.allowed:
            return call
        call.grants.append(int(auth["max_seconds"]))
        if talk is not None:
            await self._post("/v1/calls/answer", ids)
            while talk > call.grants[-1]:  # a long call asks for another slice before its limit
                _, more = await self._post("/v1/calls/extend",
                                           {**ids, "sequence": len(call.grants)})
                if not more["extended"]:
                    call.refused = str(more["reason"])  # the PBX hangs up at the limit
                    break
                call.grants.append(int(more["max_seconds"]))
            call.talked = min(talk, call.grants[-1])
        _, end = await self._post("/v1/calls/end", {**ids, "billable_seconds": call.talked})
        call.billed, call.cost = int(end["billed_seconds"]), micros(end["cost"])
        call.balance = micros(end["balance"])
        return call

    async def balance(self, account: str) -> Balance:
        r = await self.client.get(f"/v1/accounts/{account}/balance", headers=self.headers)
        r.raise_for_status()
        b = r.json()
        return Balance(micros(b["balance"]), micros(b["credit_limit"]), micros(b["reserved"]),
                       micros(b["available"]), str(b["status"]))

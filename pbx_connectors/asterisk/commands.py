"""What the call tracker asks the engine to do (and the leg each request is about).

Plain data: the tracker (pure) produces these, the executor carries them out in order per call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Leg:
    """A billable leg: the engine's call id is its Uniqueid, keyed per tenant."""

    call_id: str
    tenant: str
    account: str
    channel: str
    linkedid: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    leg: Leg
    at_ms: int  # PBX clock when known
    estimated: bool = False  # answered while AMI was down: the time is when we learned it
    recovered: bool = False  # the engine's own answer time, from before a restart


@dataclass(frozen=True, slots=True)
class End:
    leg: Leg
    billable_seconds: int
    ended_at_ms: int


@dataclass(frozen=True, slots=True)
class Release:
    """An authorized leg that is part of another billed leg's call: charge nothing for it."""

    leg: Leg
    billed_as: str


@dataclass(frozen=True, slots=True)
class Lost:
    """The PBX no longer has the channel and its Hangup was never seen (AMI gap)."""

    leg: Leg


@dataclass(frozen=True, slots=True)
class Reconcile:
    leg: Leg
    cdr_seconds: int


@dataclass(frozen=True, slots=True)
class SettleFromCdr:
    leg: Leg
    cdr_seconds: int


@dataclass(frozen=True, slots=True)
class OrphanCdr:
    """A Cdr of a leg not tracked here (e.g. after a restart): settles it if still open."""

    leg: Leg
    cdr_seconds: int


@dataclass(frozen=True, slots=True)
class LeftToTtl:
    """A lost call whose Cdr never came: the reservation TTL settles it by policy."""

    leg: Leg


Command = Answer | End | Release | Lost | Reconcile | SettleFromCdr | OrphanCdr | LeftToTtl

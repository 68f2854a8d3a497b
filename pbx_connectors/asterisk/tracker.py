"""Call tracking, pure: FastAGI authorizations and AMI events in, charging commands out.

A call is the leg the FastAGI server authorized (``agi_uniqueid``), keyed by its Uniqueid. Its
answer is the first ``DialEnd`` with ``DialStatus: ANSWER`` (or, failing that, ``BridgeEnter``);
its end is its ``Hangup``; the ``Timestamp`` headers (PBX clock) time both. Everything else is
ignored unless it links legs:

* Local channel halves and callee legs are never billed: only authorized Uniqueids are tracked.
  When an authorized leg turns out to be dialed (through ``DialBegin`` and the ``LocalBridge``
  pairing of ``;1``/``;2`` halves) by another authorized leg, it is the same call passing through
  the outbound context twice: it is released (``Release``), the outer leg is billed.
* Parallel dials give several ``DialEnd`` but one ANSWER; only the first answer counts.
* Duplicated events change nothing (a second Hangup finds the call ended; identical Cdr events
  are counted once); a Cdr before or after the Hangup ends in the same reconciliation.
* Cdr events are gathered for ``cdr_wait_ms`` after the hangup and their ANSWERED billable seconds
  (summed over distinct records, as transfers split one leg's CDR) reconcile the charge once.
* After an AMI gap, a ``CoreShowChannels`` snapshot marks tracked calls that are gone (``Lost``);
  they settle from their Cdr when it arrives (``SettleFromCdr``), else the reservation TTL does.

No I/O and no clock: callers pass ``now_ms`` (local wall clock) for timers.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from pbx_connectors.asterisk.accounts import AccountMapper
from pbx_connectors.asterisk.ami_protocol import Message
from pbx_connectors.asterisk.commands import (
    Answer,
    Command,
    End,
    LeftToTtl,
    Leg,
    Lost,
    OrphanCdr,
    Reconcile,
    Release,
    SettleFromCdr,
)
from pbx_connectors.asterisk.events import identity, seconds, timestamp_us, tvdiff_ms, uniqueid

MAX_LINKS = 100_000  # remembered Local pairings and dial links (oldest forgotten first)


class State(StrEnum):
    LIVE = "live"
    ENDED = "ended"  # Hangup seen and charged; gathering Cdr events
    GONE = "gone"  # absent from the PBX without a Hangup; waiting for its Cdr
    MERGED = "merged"  # a Local half of another billed leg


@dataclass(slots=True)
class Call:
    leg: Leg
    seq: int
    channel: str
    state: State = State.LIVE
    answer_us: int | None = None  # PBX clock, microseconds (as Asterisk times its CDR)
    hangup_us: int | None = None
    cdr_ids: set[tuple[tuple[str, str], ...]] = field(default_factory=set)
    cdr_answered: int = 0  # distinct ANSWERED Cdr records
    cdr_seconds: int = 0  # their billable seconds, summed
    due_ms: int | None = None
    ended_local_ms: int = 0  # our clock when the Hangup was applied

    @property
    def answered(self) -> bool:
        return self.answer_us is not None


class Tracker:
    """Per-PBX call state. Every method returns the commands the caller must carry out."""

    def __init__(
        self, tenant: str, mapper: AccountMapper | None = None, *, cdr_wait_ms: int = 2000,
        gap_cdr_wait_ms: int = 300_000, max_links: int = MAX_LINKS,
    ) -> None:
        self.tenant = tenant
        self.mapper = mapper
        self.cdr_wait_ms = cdr_wait_ms
        self.gap_cdr_wait_ms = gap_cdr_wait_ms
        self.max_links = max_links
        self._calls: dict[str, Call] = {}
        self._by_linkedid: dict[str, str] = {}
        self._up: OrderedDict[str, str] = OrderedDict()  # uniqueid -> billed leg upstream
        self._pairs: OrderedDict[str, str] = OrderedDict()  # Local ;1 -> ;2 uniqueid
        self._heap: list[tuple[int, str]] = []
        self._seq = 0
        self.events_applied = 0
        self._handlers = {
            "dialbegin": self._dial_begin,
            "dialend": self._dial_end,
            "bridgeenter": self._bridge_enter,
            "hangup": self._hangup,
            "cdr": self._cdr,
            "localbridge": self._local_bridge,
            "rename": self._rename,
        }

    # --- queries -------------------------------------------------------------------------

    def call(self, call_id: str) -> Call | None:
        return self._calls.get(call_id)

    def channel(self, call_id: str) -> str | None:
        c = self._calls.get(call_id)
        return c.channel if c is not None and c.state is State.LIVE else None

    def live(self) -> list[Call]:
        return [c for c in self._calls.values() if c.state is State.LIVE]

    def __len__(self) -> int:
        return len(self._calls)

    def mark(self) -> int:
        """Registration counter: taken before asking for a snapshot (see ``snapshot``)."""
        return self._seq

    # --- inputs --------------------------------------------------------------------------

    def authorized(self, leg: Leg, now_ms: int) -> list[Command]:
        """The FastAGI server allowed this leg: track it (again is harmless)."""
        if leg.call_id in self._calls:
            return []
        call = self._track(leg)
        root = self._up.get(leg.call_id)
        if root is not None and root != leg.call_id and self._root(root) == root:
            call.state = State.MERGED
            return [Release(leg, root)]
        return []

    def adopt(self, leg: Leg, answer_ms: int | None, now_ms: int) -> list[Command]:
        """Recovery: a live channel with an open engine session that this process did not
        authorize (it restarted). ``answer_ms`` comes from the session, if it was answered."""
        if leg.call_id in self._calls:
            return []
        call = self._track(leg)
        if answer_ms is not None:
            call.answer_us = answer_ms * 1000
            return [Answer(leg, answer_ms, recovered=True)]
        return []

    def apply(self, msg: Message, now_ms: int) -> list[Command]:
        """One AMI event, in wire order."""
        self.events_applied += 1
        name = msg.event
        if name is None:
            return []
        handler = self._handlers.get(name.lower())
        return handler(msg, now_ms) if handler is not None else []

    def snapshot(self, channels: Iterable[Message], mark: int, now_ms: int) -> list[Command]:
        """Reconcile with a ``CoreShowChannels`` list. Calls registered after ``mark`` may be
        missing from it only because it was taken before they existed, so they are kept."""
        present = {u: m for m in channels if (u := uniqueid(m))}
        out: list[Command] = []
        for call in list(self._calls.values()):
            if call.state is not State.LIVE:
                continue
            m = present.get(call.leg.call_id)
            if m is None:
                if call.seq <= mark:
                    call.state = State.GONE
                    out.append(Lost(call.leg))
                    self._arm(call, now_ms + (self.cdr_wait_ms if call.cdr_ids
                                              else self.gap_cdr_wait_ms))
                continue
            call.channel = m.get("Channel") or call.channel
            if not call.answered and (m.get("BridgeId") or "").strip():
                call.answer_us = now_ms * 1000
                out.append(Answer(call.leg, now_ms, estimated=True))
        return out

    def unknown(self, channels: Iterable[Message]) -> list[tuple[Message, str]]:
        """Live channels not tracked here whose account maps (candidates for adoption)."""
        out: list[tuple[Message, str]] = []
        if self.mapper is None:
            return out
        for m in channels:
            u = uniqueid(m)
            if not u or u in self._calls or u in self._up:
                continue
            account = self.mapper.account(m.get("AccountCode"), m.get("CallerIDNum"))
            if account is not None:
                out.append((m, account))
        return out

    def due(self, now_ms: int) -> list[Command]:
        """Timers that have passed: Cdr reconciliation, and forgetting finished calls."""
        out: list[Command] = []
        while self._heap and self._heap[0][0] <= now_ms:
            at, call_id = heapq.heappop(self._heap)
            call = self._calls.get(call_id)
            if call is None or call.due_ms != at:
                continue  # re-armed or forgotten since
            if call.state is State.ENDED:
                if call.cdr_answered:
                    out.append(Reconcile(call.leg, call.cdr_seconds))
                elif not call.cdr_ids and now_ms < call.ended_local_ms + self.gap_cdr_wait_ms:
                    # no Cdr yet: keep waiting a while for a late one
                    self._arm(call, call.ended_local_ms + self.gap_cdr_wait_ms)
                    continue
            elif call.state is State.GONE:
                if call.cdr_ids:
                    out.append(SettleFromCdr(call.leg, call.cdr_seconds))
                else:
                    out.append(LeftToTtl(call.leg))
            self._forget(call)
        return out

    def next_due_ms(self) -> int | None:
        while self._heap:
            at, call_id = self._heap[0]
            call = self._calls.get(call_id)
            if call is not None and call.due_ms == at:
                return at
            heapq.heappop(self._heap)
        return None

    # --- event handlers --------------------------------------------------------------------

    def _dial_begin(self, msg: Message, now_ms: int) -> list[Command]:
        caller, dest = uniqueid(msg), msg.get("DestUniqueid")
        if not caller or not dest:
            return []
        root = self._root(caller)
        if root is None:
            return []
        out = self._link(dest, root)
        pair = self._pairs.get(dest)
        if pair is not None:
            out += self._link(pair, root)
        return out

    def _local_bridge(self, msg: Message, now_ms: int) -> list[Command]:
        one, two = msg.get("LocalOneUniqueid"), msg.get("LocalTwoUniqueid")
        if not one or not two:
            return []
        self._remember(self._pairs, one, two)
        root = self._root(one)
        return self._link(two, root) if root is not None else []

    def _dial_end(self, msg: Message, now_ms: int) -> list[Command]:
        if (msg.get("DialStatus") or "").upper() != "ANSWER":
            return []
        return self._answer(msg, now_ms)

    def _bridge_enter(self, msg: Message, now_ms: int) -> list[Command]:
        return self._answer(msg, now_ms)

    def _answer(self, msg: Message, now_ms: int) -> list[Command]:
        call = self._live(msg)
        if call is None or call.answered:
            return []
        at = timestamp_us(msg) or now_ms * 1000
        call.answer_us = at
        return [Answer(call.leg, at // 1000)]

    def _hangup(self, msg: Message, now_ms: int) -> list[Command]:
        u = uniqueid(msg)
        if not u:
            return []
        self._pairs.pop(u, None)
        call = self._calls.get(u)
        if call is None:
            self._up.pop(u, None)
            return []
        if call.state is State.MERGED:
            self._forget(call)
            return []
        if call.state is not State.LIVE:
            return []  # a repeated Hangup, or one for a call already settled as lost
        at = timestamp_us(msg) or now_ms * 1000
        call.state = State.ENDED
        call.hangup_us = at
        billable = 0
        if call.answer_us is not None:
            billable = max(0, tvdiff_ms(at, call.answer_us) // 1000)
        call.ended_local_ms = now_ms
        self._arm(call, now_ms + self.cdr_wait_ms)
        return [End(call.leg, billable, at // 1000)]

    def _cdr(self, msg: Message, now_ms: int) -> list[Command]:
        u = uniqueid(msg)
        if not u:
            return []
        answered = (msg.get("Disposition") or "").upper() == "ANSWERED"
        billable = (seconds(msg, "BillableSeconds") or 0) if answered else 0
        call = self._calls.get(u)
        if call is None:
            return self._orphan_cdr(msg, u, billable)
        if call.state is State.MERGED:
            return []
        key = identity(msg)
        if key in call.cdr_ids:
            return []  # the same record twice
        call.cdr_ids.add(key)
        if answered:
            call.cdr_answered += 1
            call.cdr_seconds += billable
        if call.state in (State.ENDED, State.GONE):
            self._arm(call, now_ms + self.cdr_wait_ms)
        return []

    def _orphan_cdr(self, msg: Message, u: str, billable: int) -> list[Command]:
        linked = msg.get("LinkedID") or msg.get("Linkedid") or ""
        if (linked and linked in self._by_linkedid) or u in self._up:
            return []  # another leg of a call billed here
        if self.mapper is None:
            return []
        account = self.mapper.account(msg.get("AccountCode"), msg.get("Source"))
        if account is None:
            return []
        return [OrphanCdr(Leg(u, self.tenant, account, msg.get("Channel") or "", linked),
                          billable)]

    def _rename(self, msg: Message, now_ms: int) -> list[Command]:
        call = self._live(msg)
        if call is not None and msg.get("Newname"):
            call.channel = msg["Newname"]
        return []

    # --- internals -------------------------------------------------------------------------

    def _live(self, msg: Message) -> Call | None:
        u = uniqueid(msg)
        call = self._calls.get(u) if u else None
        if call is None or call.state is not State.LIVE:
            return None
        ch = msg.get("Channel")
        if ch:
            call.channel = ch
        return call

    def _track(self, leg: Leg) -> Call:
        self._seq += 1
        call = Call(leg, self._seq, leg.channel)
        self._calls[leg.call_id] = call
        if leg.linkedid:
            self._by_linkedid.setdefault(leg.linkedid, leg.call_id)
        return call

    def _root(self, u: str) -> str | None:
        call = self._calls.get(u)
        if call is not None and call.state is State.LIVE:
            return u
        root = self._up.get(u)
        if root is not None:
            rc = self._calls.get(root)
            if rc is not None and rc.state is State.LIVE:
                return root
        return None

    def _link(self, u: str, root: str) -> list[Command]:
        if u == root:
            return []
        self._remember(self._up, u, root)
        call = self._calls.get(u)
        if call is not None and call.state is State.LIVE:
            call.state = State.MERGED
            return [Release(call.leg, root)]
        return []

    def _remember(self, table: OrderedDict[str, str], key: str, value: str) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self.max_links:
            table.popitem(last=False)

    def _arm(self, call: Call, at: int) -> None:
        call.due_ms = at
        heapq.heappush(self._heap, (at, call.leg.call_id))

    def _forget(self, call: Call) -> None:
        cid = call.leg.call_id
        self._calls.pop(cid, None)
        call.due_ms = None
        if call.leg.linkedid and self._by_linkedid.get(call.leg.linkedid) == cid:
            del self._by_linkedid[call.leg.linkedid]

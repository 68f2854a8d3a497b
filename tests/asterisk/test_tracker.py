"""The pure call tracker, driven by events of a real Asterisk and by reordered/duplicated copies."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from pbx_connectors.asterisk.config import AccountsConfig
from pbx_connectors.asterisk.events import timestamp_ms
from pbx_connectors.asterisk.tracker import Tracker
from tests.asterisk.transcripts import a_legs, cdr_seconds, events

LATER = 10**15  # far enough for every timer


def tracker(**kw: int) -> Tracker:
    return Tracker("t1", AccountMapper(AccountsConfig()), cdr_wait_ms=2000,
                   gap_cdr_wait_ms=60_000, **kw)


def play(t: Tracker, msgs: list[Message], legs: list[Leg]) -> list[Command]:
    """Register the legs (the AGI step runs before any Dial), apply the events with a local
    clock that follows their timestamps, then let every timer fire."""
    out: list[Command] = []
    start = timestamp_ms(msgs[0]) or 0
    for leg in legs:
        out += t.authorized(leg, start)
    for m in msgs:
        now = timestamp_ms(m) or start
        out += t.due(now)
        out += t.apply(m, now)
    out += t.due(LATER)
    return out


def summary(cmds: list[Command]) -> list[tuple[str, str, int]]:
    """What the commands would do to balances, comparable across orders."""
    out = []
    for c in cmds:
        if isinstance(c, End | Reconcile | SettleFromCdr | OrphanCdr):
            value = c.billable_seconds if isinstance(c, End) else c.cdr_seconds
            out.append((type(c).__name__, c.leg.call_id, value))
        elif isinstance(c, Answer):
            out.append(("Answer", c.leg.call_id, c.at_ms))
        else:
            out.append((type(c).__name__, c.leg.call_id, 0))
    return sorted(out)


def test_answered_call_with_limit_from_a_real_asterisk() -> None:
    msgs = events("06_agi_stub_allow_maxsecs3")
    legs = a_legs(msgs)
    assert [leg.call_id for leg in legs] == ["orig74836506-1-a"]
    cmds = play(tracker(), msgs, legs)
    assert cmds == [
        Answer(legs[0], 1795374837516),  # DialEnd ANSWER, not the earlier Newstate Up
        End(legs[0], 3, 1795374840519),  # 3.003 s answered -> 3 s, as the Cdr says
        Reconcile(legs[0], 3),
    ]


def test_cdr_before_hangup_as_recorded() -> None:
    msgs = events("04_hangup_via_ami")
    kinds = [m.event for m in msgs if m.get("Uniqueid", m.get("UniqueID")) == "orig74827577-1-a"
             and m.event in ("Cdr", "Hangup")]
    assert kinds == ["Cdr", "Hangup"]  # the real order: the Cdr came first
    legs = a_legs(msgs)
    cmds = play(tracker(), msgs, legs)
    assert [type(c).__name__ for c in cmds] == ["Answer", "End", "Reconcile"]
    assert cmds[1] == End(legs[0], 3, 1795374831591)
    assert cmds[2] == Reconcile(legs[0], 3)


@pytest.mark.parametrize("name", ["08_callee_busy", "09_callee_noanswer"])
def test_unanswered_calls_release(name: str) -> None:
    msgs = events(name)
    legs = a_legs(msgs)
    cmds = play(tracker(), msgs, legs)
    assert cmds == [End(legs[0], 0, cmds[0].ended_at_ms)]  # type: ignore[union-attr]
    # 08 has the same BUSY Cdr twice on the wire: nothing to reconcile either way


def test_five_concurrent_calls_match_their_cdrs() -> None:
    msgs = events("10_five_concurrent_calls")
    legs = a_legs(msgs)
    assert len(legs) == 5
    cmds = play(tracker(), msgs, legs)
    ends = {c.leg.call_id: c.billable_seconds for c in cmds if isinstance(c, End)}
    assert ends == cdr_seconds(msgs)  # Timestamp arithmetic agrees with Asterisk's CDR
    assert sorted(c.leg.call_id for c in cmds if isinstance(c, Reconcile)) == sorted(ends)
    assert sum(isinstance(c, Answer) for c in cmds) == 5


@pytest.mark.parametrize("name", ["04_hangup_via_ami", "06_agi_stub_allow_maxsecs3",
                                  "08_callee_busy", "10_five_concurrent_calls"])
def test_every_event_twice_changes_nothing(name: str) -> None:
    msgs = events(name)
    twice = [m for m in msgs for _ in range(2)]
    assert summary(play(tracker(), twice, a_legs(msgs))) == \
        summary(play(tracker(), msgs, a_legs(msgs)))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dup=st.floats(0, 0.5))
def test_reordered_cdrs_and_duplicates_change_nothing(seed: int, dup: float) -> None:
    """Cdr events anywhere after the answer, and any event repeated later: same charges."""
    msgs = events("10_five_concurrent_calls")
    rnd = random.Random(seed)
    base = [m for m in msgs if m.event != "Cdr"]
    first_answer = next(i for i, m in enumerate(base)
                        if m.event == "DialEnd" and m.get("DialStatus") == "ANSWER")
    shuffled = list(base)
    for cdr in (m for m in msgs if m.event == "Cdr"):
        shuffled.insert(rnd.randint(first_answer + 1, len(shuffled)), cdr)
    for i in range(len(shuffled) - 1, -1, -1):
        if rnd.random() < dup:
            shuffled.insert(rnd.randint(i + 1, len(shuffled)), shuffled[i])
    legs = a_legs(msgs)
    got = play(tracker(), shuffled, legs)
    want = play(tracker(), msgs, legs)
    assert summary(got) == summary(want)


def test_local_halves_and_callee_legs_are_never_billed() -> None:
    msgs = events("10_five_concurrent_calls")
    cmds = play(tracker(), msgs, a_legs(msgs))
    billed = {c.leg.call_id for c in cmds}
    assert billed == {f"orig74854792-{i}-a" for i in range(1, 6)}


def _ev(**kw: str) -> Message:
    return Message.of(**kw)


def leg(u: str, linked: str = "L") -> Leg:
    return Leg(u, "t1", "acc1", f"PJSIP/{u}", linked)


def test_a_leg_passing_the_outbound_context_twice_is_billed_once() -> None:
    """SIP/A runs the AGI, dials Local/...@outbound whose ;2 half runs it again."""
    for agi_first in (True, False):
        t = tracker()
        a, l2 = leg("A"), leg("L2")
        out = t.authorized(a, 0)
        out += t.apply(_ev(Event="LocalBridge", LocalOneUniqueid="L1", LocalTwoUniqueid="L2"), 1)
        if agi_first:
            out += t.authorized(l2, 2)
        out += t.apply(_ev(Event="DialBegin", Uniqueid="A", DestUniqueid="L1"), 3)
        if not agi_first:
            out += t.authorized(l2, 4)
        out += t.apply(_ev(Event="DialEnd", Uniqueid="L2", DestUniqueid="X",
                           DialStatus="ANSWER", Timestamp="10.000"), 10)
        out += t.apply(_ev(Event="DialEnd", Uniqueid="A", DestUniqueid="L1",
                           DialStatus="ANSWER", Timestamp="10.001"), 10)
        out += t.apply(_ev(Event="Hangup", Uniqueid="L2", Timestamp="70.000"), 70)
        out += t.apply(_ev(Event="Hangup", Uniqueid="A", Timestamp="70.002"), 70)
        out += t.due(LATER)
        assert out == [Release(l2, "A"), Answer(a, 10001), End(a, 60, 70002)], agi_first


def test_parallel_dial_answers_once() -> None:
    t = tracker()
    a = leg("A")
    out = t.authorized(a, 0)
    for dest in ("B1", "B2", "B3"):
        out += t.apply(_ev(Event="DialBegin", Uniqueid="A", DestUniqueid=dest), 1)
    out += t.apply(_ev(Event="DialEnd", Uniqueid="A", DestUniqueid="B2", DialStatus="ANSWER",
                       Timestamp="5.000"), 5)
    for dest in ("B1", "B3"):
        out += t.apply(_ev(Event="DialEnd", Uniqueid="A", DestUniqueid=dest,
                           DialStatus="CANCEL", Timestamp="5.001"), 5)
    out += t.apply(_ev(Event="BridgeEnter", Uniqueid="A", Timestamp="5.010"), 5)
    out += t.apply(_ev(Event="Hangup", Uniqueid="A", Timestamp="17.999"), 18)
    assert out == [Answer(a, 5000), End(a, 12, 17999)]


def test_transfer_splits_cdrs_which_are_summed_once_each() -> None:
    t = tracker()
    a = leg("A")
    t.authorized(a, 0)
    t.apply(_ev(Event="DialEnd", Uniqueid="A", DialStatus="ANSWER", Timestamp="100.0"), 100_000)
    cdr1 = _ev(Event="Cdr", UniqueID="A", DestinationChannel="PJSIP/B", BillableSeconds="30",
               Disposition="ANSWERED", Timestamp="130.5")
    cdr2 = _ev(Event="Cdr", UniqueID="A", DestinationChannel="PJSIP/C", BillableSeconds="40",
               Disposition="ANSWERED", Timestamp="170.6")
    out = t.apply(cdr1, 130_500) + t.apply(cdr1, 130_600)
    out += t.apply(_ev(Event="Hangup", Uniqueid="A", Timestamp="170.6"), 170_600)
    out += t.apply(cdr2, 170_700)
    out += t.due(170_700 + 1999)
    assert out == [End(a, 70, 170600)]
    assert t.due(170_700 + 2000) == [Reconcile(a, 70)]
    assert t.call("A") is None  # forgotten after reconciling


def test_snapshot_marks_missing_calls_lost_and_settles_them_from_their_cdr() -> None:
    t = tracker()
    a, b, c = leg("A", "LA"), leg("B", "LB"), leg("C", "LC")
    t.authorized(a, 0)
    t.authorized(b, 0)
    t.apply(_ev(Event="DialEnd", Uniqueid="A", DialStatus="ANSWER", Timestamp="1.0"), 1000)
    mark = t.mark()
    t.authorized(c, 1500)  # after the list was asked for: it may be missing from it
    channels = [_ev(Event="CoreShowChannel", Uniqueid="B", Channel="PJSIP/B-new",
                    BridgeId="br-1")]
    out = t.snapshot(channels, mark, 2000)
    assert out == [Lost(a), Answer(b, 2000, estimated=True)]
    assert t.channel("B") == "PJSIP/B-new"
    assert t.channel("C") == "PJSIP/C"  # kept
    assert t.apply(_ev(Event="Hangup", Uniqueid="A", Timestamp="9.0"), 9000) == []
    t.apply(_ev(Event="Cdr", UniqueID="A", BillableSeconds="7", Disposition="ANSWERED"), 9000)
    assert t.due(10_999) == []
    assert t.due(11_000) == [SettleFromCdr(a, 7)]


def test_lost_call_without_cdr_is_left_to_its_ttl() -> None:
    t = tracker()
    a = leg("A")
    t.authorized(a, 0)
    assert t.snapshot([], t.mark(), 1000) == [Lost(a)]
    assert t.due(60_999) == []
    assert t.due(61_000) == [LeftToTtl(a)]


def test_ended_call_waits_for_a_late_cdr_then_forgets() -> None:
    t = tracker()
    a = leg("A")
    t.authorized(a, 0)
    t.apply(_ev(Event="DialEnd", Uniqueid="A", DialStatus="ANSWER", Timestamp="1.0"), 1000)
    t.apply(_ev(Event="Hangup", Uniqueid="A", Timestamp="5.0"), 5000)
    assert t.due(7000) == []  # no Cdr yet: keeps waiting
    t.apply(_ev(Event="Cdr", UniqueID="A", BillableSeconds="4", Disposition="ANSWERED"), 30_000)
    assert t.due(32_000) == [Reconcile(a, 4)]
    t2 = tracker()
    t2.authorized(a, 0)
    t2.apply(_ev(Event="Hangup", Uniqueid="A", Timestamp="5.0"), 5000)
    assert t2.due(65_000) == []
    assert t2.call("A") is None


def test_cdr_of_an_untracked_leg() -> None:
    t = tracker()
    t.authorized(leg("A", "LINK"), 0)
    other_leg = _ev(Event="Cdr", UniqueID="B", LinkedID="LINK", AccountCode="acc1",
                    BillableSeconds="9", Disposition="ANSWERED")
    assert t.apply(other_leg, 1) == []  # a leg of a call billed here
    orphan = _ev(Event="Cdr", UniqueID="Z", AccountCode="acc9", Channel="PJSIP/z",
                 BillableSeconds="9", Disposition="ANSWERED")
    assert t.apply(orphan, 1) == [OrphanCdr(Leg("Z", "t1", "acc9", "PJSIP/z", ""), 9)]
    no_account = _ev(Event="Cdr", UniqueID="Y", AccountCode="", BillableSeconds="9",
                     Disposition="ANSWERED")
    assert t.apply(no_account, 1) == []


def test_repeated_authorization_and_unknown_events_are_harmless() -> None:
    t = tracker()
    a = leg("A")
    assert t.authorized(a, 0) == []
    assert t.authorized(a, 1) == []
    assert t.apply(_ev(Event="Hangup", Uniqueid="nobody"), 2) == []
    assert t.apply(_ev(Response="Success"), 2) == []
    assert t.apply(_ev(Event="DialEnd", Uniqueid="A", DialStatus="ANSWER",
                       Timestamp="not a number"), 3000) == [Answer(a, 3000)]
    assert t.apply(_ev(Event="Rename", Uniqueid="A", Channel="PJSIP/A",
                       Newname="PJSIP/A<MASQ>"), 3) == []
    assert t.channel("A") == "PJSIP/A<MASQ>"
    assert len(t.live()) == 1

"""Calls on the wire, checked against what the real Asterisk 22 sent (the transcripts)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from pbx_connectors.asterisk.ami_protocol import Message
from pbx_connectors.asterisk.simulator import (
    CallRecord,
    CallSpec,
    ScenarioError,
    Simulator,
    tvdiff_ms,
)

from .conftest import Connect
from .support import AmiClient, leg_events, transcript

CDR_KEYS = ["Event", "Privilege", "Timestamp", "AccountCode", "Source", "Destination",
            "DestinationContext", "CallerID", "Channel", "DestinationChannel", "LastApplication",
            "LastData", "StartTime", "AnswerTime", "EndTime", "Duration", "BillableSeconds",
            "Disposition", "AMAFlags", "UniqueID", "UserField", "LinkedID"]
LOCAL_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


def kinds(events: list[Message]) -> list[str]:
    """Event kind with what tells same-kind events apart (variable, application, status)."""
    out = []
    for m in events:
        detail = m.get("Variable") or m.get("Application") or m.get("DialStatus") or ""
        out.append(f"{m.event} {detail}".strip())
    return out


def ended(uniqueid: str) -> Callable[[list[Message]], list[Message]]:
    """The session's events of that A-leg, once its Hangup and Cdr have both arrived."""
    def check(ms: list[Message]) -> list[Message]:
        leg = leg_events(ms, uniqueid)
        done = {m.event for m in leg} >= {"Hangup", "Cdr"}
        return leg if done else []
    return check


async def a_leg_on_the_wire(ami: AmiClient, record: CallRecord) -> list[Message]:
    """Every event of the A-leg: its end has arrived, and a Ping answered after it."""
    await ami.wait_for(ended(record.uniqueid))
    assert (await ami.action("Ping")).response == "Success"
    return leg_events(ami.messages, record.uniqueid)


def without_cdr(events: list[Message]) -> list[Message]:
    return [m for m in events if m.event != "Cdr"]


async def test_answered_call_is_transcript_03(sim: Simulator, ami: AmiClient) -> None:
    """Same A-leg events, same order, same headers in the same order, as the real server."""
    record = await sim.place_call(CallSpec("", "15550001", "15559999", ring_s=0.05,
                                           talk_s=0.2, hangup_by="callee", cdr_first=True))
    got = await a_leg_on_the_wire(ami, record)
    want = leg_events(transcript("03_dial_two_local_legs.txt"), "orig74819361-1-a")
    assert kinds(got) == kinds(want)
    for mine, real in zip(got, want, strict=True):
        assert [k for k, _ in mine.pairs] == [k for k, _ in real.pairs] + (
            ["LinkedID"] if real.event == "Cdr" else []), real.event
    assert record.ended_by == "callee" and record.hangup_cause == 16


async def test_answered_call_values(sim: Simulator, ami: AmiClient) -> None:
    spec = CallSpec("acct-7", "15550001", "442079460000", ring_s=0.05, talk_s=0.3)
    record = await sim.place_call(spec)
    leg = await a_leg_on_the_wire(ami, record)
    new = next(m for m in leg if m.event == "Newchannel")
    assert (new["Channel"], new["AccountCode"]) == (record.channel, "acct-7")
    assert re.fullmatch(r"Local/442079460000@outbound-noagi-[0-9a-f]{8};2", record.channel)
    assert record.uniqueid.endswith("-a") and record.linkedid.endswith("-h")
    assert new["Linkedid"] == record.linkedid == record.uniqueid[:-2] + "-h"
    answer = next(m for m in leg if m.event == "DialEnd")
    assert (answer["DialStatus"], answer["DestChannel"]) == ("ANSWER", record.callee_channel)
    bridged = next(m for m in leg if m.event == "BridgeEnter")
    assert bridged["BridgeNumChannels"] == "2"
    hangup = next(m for m in leg if m.event == "Hangup")
    assert (hangup["Cause"], hangup["Cause-txt"]) == ("16", "Normal Clearing")
    assert float(answer["Timestamp"]) == record.answer_time
    assert float(hangup["Timestamp"]) == record.end_time
    (cdr,) = [m for m in leg if m.event == "Cdr"]
    assert [k for k, _ in cdr.pairs] == CDR_KEYS
    assert cdr["AccountCode"] == "acct-7"
    assert (cdr["Source"], cdr["Destination"]) == ("15550001", "442079460000")
    assert cdr["CallerID"] == '"15550001" <15550001>'
    assert (cdr["Channel"], cdr["DestinationChannel"]) == (record.channel, record.callee_channel)
    assert (cdr["LastApplication"], cdr["LastData"]) == ("Dial",
                                                         "Local/442079460000@callee/n,30")
    assert (cdr["UniqueID"], cdr["LinkedID"]) == (record.uniqueid, record.linkedid)
    assert cdr["Disposition"] == "ANSWERED"
    assert all(LOCAL_TIME.match(cdr[k]) for k in ("StartTime", "AnswerTime", "EndTime"))
    assert int(cdr["BillableSeconds"]) == record.billable_seconds
    # the engine's rule from the wire: floor((hangup - answer) in ms / 1000)
    wire_ms = tvdiff_ms(round(record.end_time * 1e6), round(record.answer_time * 1e6))
    assert record.billable_seconds == wire_ms // 1000
    # the handset half and both callee halves are on the wire too, with the same Linkedid
    assert record.callee_channel is not None
    b2 = next(m["Uniqueid"] for m in ami.events if m.event == "Newchannel"
              and m["Channel"] == record.callee_channel[:-1] + "2")
    linked = {m["Uniqueid"] for m in ami.events
              if m.event == "Hangup" and m.get("Linkedid") == record.linkedid}
    assert linked == {record.uniqueid, record.linkedid, record.callee_uniqueid, b2}


async def test_busy_is_transcript_08(sim: Simulator, ami: AmiClient) -> None:
    record = await sim.place_call(CallSpec("", "15550001", "15559999", outcome="busy"))
    got = await a_leg_on_the_wire(ami, record)
    want = leg_events(transcript("08_callee_busy.txt"), "orig74845426-1-a")
    assert kinds(without_cdr(got)) == kinds(without_cdr(want))  # its Cdrs came oddly early
    cdrs = [m for m in got if m.event == "Cdr"]
    assert [(c["LastApplication"], c["Disposition"], c["BillableSeconds"]) for c in cdrs] == [
        ("Dial", "BUSY", "0"), ("Hangup", "BUSY", "0")]
    hangup = next(m for m in got if m.event == "Hangup")
    assert (hangup["Cause"], hangup["Cause-txt"]) == ("17", "User busy")
    assert (record.ended_by, record.disposition, record.dial_status) == ("busy", "BUSY", "BUSY")
    assert record.answer_time is None and record.billable_seconds == 0


async def test_noanswer_is_transcript_09(sim: Simulator, ami: AmiClient) -> None:
    record = await sim.place_call(CallSpec("", "15550001", "15559999", outcome="noanswer",
                                           ring_s=0.2))
    got = await a_leg_on_the_wire(ami, record)
    want = leg_events(transcript("09_callee_noanswer.txt"), "orig74847597-1-a")
    assert kinds(got) == kinds(want)
    hangup = next(m for m in got if m.event == "Hangup")
    assert (hangup["Cause"], hangup["Cause-txt"]) == ("19", "User alerting, no answer")
    cdrs = [m for m in got if m.event == "Cdr"]
    assert [(c["LastApplication"], c["Disposition"]) for c in cdrs] == [
        ("Dial", "NO ANSWER"), ("Hangup", "NO ANSWER")]
    assert cdrs[0]["LastData"] == "Local/15559999@callee/n,0.2"
    assert (record.ended_by, record.disposition) == ("noanswer", "NO ANSWER")


async def test_congestion_fails(sim: Simulator) -> None:
    record = await sim.place_call(CallSpec("a", "15550001", "15559999", outcome="congestion"))
    assert (record.ended_by, record.hangup_cause, record.disposition) == (
        "congestion", 34, "FAILED")


async def test_caller_hangs_up_first(sim: Simulator, ami: AmiClient) -> None:
    record = await sim.place_call(CallSpec("a", "15550001", "15559999", ring_s=0.05,
                                           talk_s=0.1, hangup_by="caller"))
    await ami.wait_for(ended(record.uniqueid))
    hangups = [m["Channel"] for m in ami.events if m.event == "Hangup"
               and m.get("Linkedid") == record.linkedid]
    assert hangups.index(record.handset_channel) < hangups.index(record.channel)
    assert (record.ended_by, record.hangup_cause) == ("caller", 16)


async def test_run_plays_concurrent_calls(sim: Simulator, connect: Connect) -> None:
    ami = await connect(sim.ami_port)
    specs = [CallSpec(f"acct{i % 3}", "15550001", f"1555000{i}", ring_s=0.05, talk_s=0.2)
             for i in range(8)]
    records = await sim.run(specs, concurrency=4)
    assert [r.spec for r in records] == specs
    assert len({r.uniqueid for r in records}) == 8
    assert all(r.ended_by == "caller" and r.disposition == "ANSWERED" for r in records)
    await ami.wait_for(lambda ms: all(ended(r.uniqueid)(ms) for r in records))
    live, peak = set(), 0
    for m in ami.events:
        if m.event == "Newchannel" and m["Uniqueid"].endswith("-a"):
            live.add(m["Uniqueid"])
            peak = max(peak, len(live))
        elif m.event == "Hangup":
            live.discard(m["Uniqueid"])
    assert 2 <= peak <= 4


@pytest.mark.parametrize("bad", [
    {"destination": ""}, {"destination": "1555;9999"}, {"destination": "a/b"},
    {"caller": ""}, {"caller": 'x"y'}, {"account": "a\r\nEvent: Fake"},
    {"ring_s": -1}, {"talk_s": float("nan")}, {"talk_s": "1"}, {"outcome": "maybe"},
    {"hangup_by": "nobody"}, {"duplicate": "Hangup"}, {"call_id": "has space"},
])
def test_bad_specs_are_refused(bad: dict[str, object]) -> None:
    fields: dict[str, object] = {"account": "a", "caller": "1", "destination": "2"} | bad
    with pytest.raises(ScenarioError):
        CallSpec(**fields)  # type: ignore[arg-type]


async def test_call_ids_are_not_reused(sim: Simulator) -> None:
    spec = CallSpec("a", "1", "2", ring_s=0, talk_s=0, call_id="fixed-1")
    record = await sim.place_call(spec)
    assert record.uniqueid == "fixed-1-a"
    with pytest.raises(ScenarioError):
        sim.start_call(spec)
    with pytest.raises(ScenarioError):
        await sim.run([spec], concurrency=0)

"""AMI actions on live calls: Hangup (transcript 04), AbsoluteTimeout, CoreShowChannels."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pbx_connectors.asterisk.ami_protocol import Message
from pbx_connectors.asterisk.simulator import CallSpec, Simulator

from .support import AmiClient, leg_events, transcript

LONG = CallSpec("acct1", "15550001", "15559999", ring_s=0.05, talk_s=60)


def kinds(events: list[Message]) -> list[str]:
    return [f"{m.event} {m.get('Variable') or m.get('Application') or ''}".strip()
            for m in events]


async def test_hangup_ends_a_live_call_as_in_transcript_04(sim: Simulator,
                                                           ami: AmiClient) -> None:
    call = sim.start_call(CallSpec("acct1", "15550001", "15559999", ring_s=0.05, talk_s=60,
                                   cdr_first=True))
    async with asyncio.timeout(5):
        await call.wait_answered()
    reply = await ami.action("Hangup", Channel=call.channel, Cause=16)
    assert (reply.response, reply["Message"]) == ("Success", "Channel Hungup")
    async with asyncio.timeout(5):
        record = await call
    assert (record.ended_by, record.hangup_cause) == ("ami_hangup", 16)
    await ami.action("Ping")
    got = leg_events(ami.messages, record.uniqueid)
    want = leg_events(transcript("04_hangup_via_ami.txt"), "orig74827577-1-a")
    after = next(i for i, m in enumerate(want) if m.event == "BridgeEnter")
    mine = next(i for i, m in enumerate(got) if m.event == "BridgeEnter")
    assert kinds(got[mine:]) == kinds(want[after:])


async def test_hangup_with_a_cause_and_by_uniqueid(sim: Simulator, ami: AmiClient) -> None:
    call = sim.start_call(LONG)
    async with asyncio.timeout(5):
        await call.wait_answered()
    reply = await ami.action("Hangup", Channel=call.uniqueid, Cause=17)
    assert reply.response == "Success"
    record = await call
    assert (record.ended_by, record.hangup_cause, record.hangup_cause_txt) == (
        "ami_hangup", 17, "User busy")


async def test_hangup_errors(sim: Simulator, ami: AmiClient) -> None:
    reply = await ami.action("Hangup", Channel="Local/1@outbound-00000001;2")
    assert (reply.response, reply["Message"]) == ("Error", "No such channel")
    reply = await ami.action("Hangup")
    assert (reply.response, reply["Message"]) == ("Error", "No channel specified")


async def test_hangup_while_ringing_cancels_the_dial(sim: Simulator, ami: AmiClient) -> None:
    call = sim.start_call(CallSpec("acct1", "15550001", "15559999", ring_s=60))
    await ami.wait_for(lambda ms: any(m.event == "DialState" and m.get("Channel") == call.channel
                                      for m in ms))
    reply = await ami.action("Hangup", Channel=call.channel)
    assert reply.response == "Success"
    record = await call
    assert (record.ended_by, record.dial_status, record.disposition) == (
        "ami_hangup", "CANCEL", "NO ANSWER")
    assert record.answer_time is None and record.billable_seconds == 0
    assert not call.answered


async def test_absolute_timeout_shortens_a_live_call(sim: Simulator, ami: AmiClient) -> None:
    call = sim.start_call(LONG)
    async with asyncio.timeout(5):
        await call.wait_answered()
    reply = await ami.action("AbsoluteTimeout", Channel=call.channel, Timeout=3600)
    assert (reply.response, reply["Message"]) == ("Success", "Timeout Set")
    reply = await ami.action("AbsoluteTimeout", Channel=call.channel, Timeout="0.3")
    assert reply.response == "Success"
    async with asyncio.timeout(10):
        record = await call
    assert (record.ended_by, record.hangup_cause) == ("absolute_timeout", 16)
    assert record.disposition == "ANSWERED"


async def test_absolute_timeout_errors(sim: Simulator, ami: AmiClient) -> None:
    call = sim.start_call(LONG)
    async with asyncio.timeout(5):
        await call.wait_answered()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"Channel": call.channel, "Timeout": "0"}, "No timeout specified"),
        ({"Channel": call.channel, "Timeout": "soon"}, "No timeout specified"),
        ({"Timeout": "5"}, "No channel specified"),
        ({"Channel": "Local/x;2", "Timeout": "5"}, "No such channel"),
    ]
    for fields, message in cases:
        reply = await ami.action("AbsoluteTimeout", **fields)
        assert (reply.response, reply["Message"]) == ("Error", message)
    assert not call.done()
    await ami.action("Hangup", Channel=call.channel)
    assert (await call).ended_by == "ami_hangup"


async def test_core_show_channels_lists_live_channels(sim: Simulator, ami: AmiClient) -> None:
    calls = [sim.start_call(LONG), sim.start_call(CallSpec("acct2", "15550002", "15558888",
                                                           ring_s=0.05, talk_s=60))]
    async with asyncio.timeout(5):
        for call in calls:
            await call.wait_answered()
    reply = await ami.action("CoreShowChannels")
    assert (reply.response, reply["EventList"], reply["Message"]) == (
        "Success", "start", "Channels will follow")
    done = await ami.wait_for(lambda ms: next(
        (m for m in ms if m.event == "CoreShowChannelsComplete"
         and m.action_id == reply.action_id), None))
    items = [m for m in ami.messages if m.event == "CoreShowChannel"
             and m.action_id == reply.action_id]
    assert (done["EventList"], done["ListItems"]) == ("Complete", "8")
    assert len(items) == 8
    by_name = {m["Channel"]: m for m in items}
    for call in calls:
        assert call.callee_channel is not None
        names = {call.channel, call.handset_channel, call.callee_channel,
                 call.callee_channel[:-1] + "2"}
        assert names <= set(by_name)
        a_leg = by_name[call.channel]
        assert (a_leg["Uniqueid"], a_leg["Linkedid"]) == (call.uniqueid, call.linkedid)
        assert (a_leg["ChannelStateDesc"], a_leg["Application"]) == ("Up", "Dial")
        assert a_leg["BridgeId"] and a_leg["BridgeId"] == by_name[call.callee_channel]["BridgeId"]
        assert re.fullmatch(r"\d\d:\d\d:\d\d", a_leg["Duration"])
    assert by_name[calls[1].channel]["AccountCode"] == "acct2"
    for call in calls:
        await ami.action("Hangup", Channel=call.channel)
        await call
    reply = await ami.action("CoreShowChannels")
    done = await ami.wait_for(lambda ms: next(
        (m for m in ms if m.event == "CoreShowChannelsComplete"
         and m.action_id == reply.action_id), None))
    assert done["ListItems"] == "0"

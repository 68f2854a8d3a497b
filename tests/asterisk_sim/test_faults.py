"""Fault injection: Cdr before/after Hangup, AMI outages, duplicated events, a silent AMI."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from pbx_connectors.asterisk.ami_protocol import Message
from pbx_connectors.asterisk.simulator import CallSpec, Simulator

from .conftest import Connect
from .support import AmiClient, leg_events

SHORT = CallSpec("acct1", "15550001", "15559999", ring_s=0.05, talk_s=0.1)


async def barrier(client: AmiClient) -> None:
    assert (await client.action("Ping")).response == "Success"


@pytest.mark.parametrize("cdr_first", [True, False])
async def test_cdr_before_or_after_the_hangup(sim: Simulator, ami: AmiClient,
                                              cdr_first: bool) -> None:
    record = await sim.place_call(CallSpec("a", "1", "2", ring_s=0.01, talk_s=0.05,
                                           cdr_first=cdr_first))
    await barrier(ami)
    order = [m.event for m in leg_events(ami.messages, record.uniqueid)
             if m.event in ("Cdr", "Hangup")]
    assert order == (["Cdr", "Hangup"] if cdr_first else ["Hangup", "Cdr"])
    assert len(record.cdrs) == 1


async def test_ami_outage_refuses_connections_and_loses_events(sim: Simulator,
                                                               connect: Connect) -> None:
    old = await connect(sim.ami_port)
    port = sim.ami_port
    live = sim.start_call(CallSpec("acct1", "15550001", "15559999", ring_s=0.05, talk_s=60))
    async with asyncio.timeout(5):
        await live.wait_answered()

    await sim.drop_ami(None)
    await old.wait_for(lambda ms: old.eof.is_set() or None)
    assert not sim.ami_up
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    during = await sim.place_call(SHORT)       # a whole call while AMI is down
    sim.hangup(live.channel, 16)                # and the live call ends during the outage
    ended = await live
    assert ended.ended_by == "ami_hangup" and during.ended_by == "caller"

    await sim.restore_ami()
    assert sim.ami_port == port
    new = await connect(port)
    reply = await new.action("CoreShowChannels")
    done = await new.wait_for(lambda ms: next(
        (m for m in ms if m.event == "CoreShowChannelsComplete"
         and m.action_id == reply.action_id), None))
    assert done["ListItems"] == "0"
    seen = old.events + new.events
    assert not [m for m in seen if m.get("Linkedid") == during.linkedid]
    assert not [m for m in seen if m.get("Linkedid") == ended.linkedid and m.event == "Hangup"]
    assert [m for m in seen if m.get("Uniqueid") == ended.uniqueid and m.event == "BridgeEnter"]


async def test_ami_outage_with_a_duration_ends_by_itself(sim: Simulator,
                                                         connect: Connect) -> None:
    await sim.drop_ami(0.2)
    assert not sim.ami_up
    async with asyncio.timeout(5):
        await sim.wait_ami_up()
    client = await connect(sim.ami_port)
    await barrier(client)


async def test_duplicate_events_are_sent_twice(sim: Simulator, ami: AmiClient) -> None:
    sim.duplicate_events({"Hangup", "DialEnd"})
    first = await sim.place_call(SHORT)
    sim.duplicate_events(())
    second = await sim.place_call(SHORT)
    await barrier(ami)
    for record, times in ((first, 2), (second, 1)):
        counts = Counter((m.event, m["Uniqueid"]) for m in ami.events
                         if m.event == "Hangup" and m.get("Linkedid") == record.linkedid)
        assert len(counts) == 4 and set(counts.values()) == {times}
    dial_ends = [m.pairs for m in leg_events(ami.messages, first.uniqueid)
                 if m.event == "DialEnd"]
    assert len(dial_ends) == 2 and dial_ends[0] == dial_ends[1]   # same Timestamp: a replay


async def test_per_call_duplicates(sim: Simulator, ami: AmiClient) -> None:
    record = await sim.place_call(CallSpec("a", "1", "2", ring_s=0.01, talk_s=0.05,
                                           duplicate=frozenset({"Cdr"})))
    other = await sim.place_call(SHORT)
    await barrier(ami)
    cdrs = [m.pairs for m in leg_events(ami.messages, record.uniqueid) if m.event == "Cdr"]
    assert len(cdrs) == 2 and cdrs[0] == cdrs[1]
    assert len([m for m in leg_events(ami.messages, other.uniqueid) if m.event == "Cdr"]) == 1


async def test_silent_ami_keeps_the_connection_but_says_nothing(sim: Simulator,
                                                                ami: AmiClient) -> None:
    live = sim.start_call(CallSpec("acct1", "15550001", "15559999", ring_s=0.05, talk_s=60))
    async with asyncio.timeout(5):
        await live.wait_answered()
    sim.silent_ami(True)
    with pytest.raises(TimeoutError):
        await ami.action("Ping", within=0.3)
    ami.send(Message.of(Action="Hangup", ActionID="ignored", Channel=live.channel))
    before = len(ami.messages)
    quiet = await sim.place_call(SHORT)
    sim.silent_ami(False)
    reply = await ami.action("Ping")
    assert reply.response == "Success" and not ami.eof.is_set()
    assert not [m for m in ami.messages[before:] if m.get("Linkedid") == quiet.linkedid]
    assert sum(m.get("Ping") == "Pong" for m in ami.messages) == 1  # the silent one: never
    assert not live.done()  # the Hangup sent while silent was never carried out
    assert not [m for m in ami.messages if m.action_id == "ignored"]
    assert (await ami.action("Hangup", Channel=live.channel)).response == "Success"
    await ami.wait_for(lambda ms: any(m.event == "Hangup" and m.get("Uniqueid") == live.uniqueid
                                      for m in ms))

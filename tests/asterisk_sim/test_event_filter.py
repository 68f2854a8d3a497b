"""Event classes over real TCP: a session gets only the events its Login ``Events:``, the
``Events`` action and its user's ``read =`` allow, as manager.c sends them, while answers to
actions always arrive. The oracle for a call is every event the simulator emitted for it
(``CallRecord.events``) and the classes the real Asterisk 22 put in ``Privilege``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from pbx_connectors.asterisk.ami_protocol import Message
from pbx_connectors.asterisk.simulator import (
    CallRecord,
    CallSpec,
    ScenarioError,
    Simulator,
    SimulatorConfig,
)
from pbx_connectors.asterisk.simulator.eventmask import INT_MAX, get_perm, strings_to_mask

from .conftest import Connect, MakeSim
from .support import AmiClient, StubAgi, leg_events, transcript

ALLOW = ['SET VARIABLE CHARGING_STATUS "ALLOWED"', 'SET VARIABLE CHARGING_REASON "ok"',
         'SET VARIABLE CHARGING_MAXMS "60000"']
SHORT = CallSpec("acct1", "15550001", "442079460000", ring_s=0.05, talk_s=0.1)
LONG = CallSpec("acct1", "15550001", "442079460000", ring_s=0.05, talk_s=60)
NOT_CALL_CDR = {"Newexten", "VarSet", "AGIExecStart", "AGIExecEnd", "FullyBooted"}
CALL, CDR = 1 << 1, 1 << 10


def classes(msg: Message) -> set[str]:
    return set((msg.get("Privilege") or "").split(",")) - {"all"}


def only(*names: str) -> Callable[[Message], bool]:
    return lambda m: classes(m) <= set(names)


def a_leg_ended(uniqueid: str) -> Callable[[list[Message]], bool]:
    """The A-leg's Hangup and Cdr have both arrived."""
    return lambda ms: {m.event for m in leg_events(ms, uniqueid)} >= {"Hangup", "Cdr"}


async def barrier(client: AmiClient) -> None:
    """A Ping answered: everything the server wrote to this session before has arrived."""
    assert (await client.action("Ping")).response == "Success"


async def play(sim: Simulator, *clients: AmiClient) -> CallRecord:
    """One call, then a barrier on every session: a call's events are all written when its
    record is returned, so each session then holds everything it was sent of it."""
    record = await sim.place_call(SHORT)
    for client in clients:
        await barrier(client)
    return record


def pairs(messages: list[Message] | tuple[Message, ...]) -> list[list[tuple[str, str]]]:
    return [m.pairs for m in messages if m.event != "FullyBooted"]


@pytest.fixture
async def agi_sim(make_sim: MakeSim) -> AsyncIterator[Simulator]:
    """The connector tests' set-up: a FastAGI step (agi and dialplan events) and CEL."""
    stub = StubAgi(ALLOW)
    port = await stub.start()
    yield await make_sim(agi=("127.0.0.1", port))
    await stub.stop()


async def test_call_cdr_gets_call_and_cdr_events_only(agi_sim: Simulator,
                                                      connect: Connect) -> None:
    on = await connect(agi_sim.ami_port, events="on")
    wanted = await connect(agi_sim.ami_port, events="call,cdr")
    record = await play(agi_sim, wanted, on)
    got = {m.event for m in wanted.events}
    assert {"Newchannel", "DialBegin", "DialEnd", "BridgeEnter", "Hangup", "Cdr", "CEL"} <= got
    assert not got & NOT_CALL_CDR
    assert {m.event for m in on.events} >= NOT_CALL_CDR  # the call did raise them
    assert pairs(wanted.events) == pairs([m for m in record.events if only("call", "cdr")(m)])
    a_leg = {m.event for m in leg_events(wanted.messages, record.uniqueid)}
    assert {"Hangup", "Cdr"} <= a_leg


async def test_call_cdr_a_leg_is_transcript_03_filtered(sim: Simulator,
                                                        connect: Connect) -> None:
    """The real server's A-leg events of the classes call and cdr, in the same order."""
    wanted = await connect(sim.ami_port, events="call,cdr")
    record = await sim.place_call(CallSpec("", "15550001", "15559999", ring_s=0.05,
                                           talk_s=0.2, hangup_by="callee", cdr_first=True))
    await wanted.wait_for(a_leg_ended(record.uniqueid))
    await barrier(wanted)
    real = [m for m in leg_events(transcript("03_dial_two_local_legs.txt"), "orig74819361-1-a")
            if only("call", "cdr")(m)]
    got = leg_events(wanted.messages, record.uniqueid)
    assert [m.event for m in got] == [m.event for m in real]
    assert "Newexten" in {m.event for m in leg_events(transcript("03_dial_two_local_legs.txt"),
                                                      "orig74819361-1-a")}


async def test_events_off_gets_answers_but_no_event(agi_sim: Simulator,
                                                    connect: Connect) -> None:
    off = await connect(agi_sim.ami_port, events="off")
    on = await connect(agi_sim.ami_port, events="on")
    call = agi_sim.start_call(LONG)
    async with asyncio.timeout(5):
        await call.wait_answered()
    assert (await off.action("Ping"))["Ping"] == "Pong"
    listing = await off.action("CoreShowChannels")
    assert (listing.response, listing["EventList"]) == ("Success", "start")
    done = await off.wait_for(lambda ms: next((m for m in ms if m.action_id == listing.action_id
                                               and m.event == "CoreShowChannelsComplete"), None))
    assert done["ListItems"] == "4"
    hung = await off.action("Hangup", Channel=call.channel)
    assert (hung.response, hung["Message"]) == ("Success", "Channel Hungup")
    async with asyncio.timeout(5):
        record = await call
    await on.wait_for(a_leg_ended(record.uniqueid))
    await barrier(on)
    await barrier(off)
    # the list answers its action; nothing of the call (nor FullyBooted) came as an event
    assert [m.event for m in off.events] == ["CoreShowChannel"] * 4 + ["CoreShowChannelsComplete"]
    assert all(m.action_id == listing.action_id for m in off.events)
    assert len(pairs(on.events)) == len(record.events) > 50


async def test_events_on_gets_everything(agi_sim: Simulator, connect: Connect) -> None:
    on = await connect(agi_sim.ami_port, events="on")
    record = await play(agi_sim, on)
    assert pairs(on.events) == pairs(record.events)
    seen = set().union(*(classes(m) for m in on.events))
    assert seen == {"system", "call", "cdr", "dialplan", "agi"}
    assert on.events[0].event == "FullyBooted"


async def test_the_events_action_changes_the_mask(agi_sim: Simulator,
                                                  connect: Connect) -> None:
    ami = await connect(agi_sim.ami_port, events="on")
    reply = await ami.action("Events", EventMask="cdr")
    assert reply.pairs == [("Response", "Success"), ("ActionID", reply.action_id),
                           ("Events", "On")]
    before = len(ami.events)
    record = await play(agi_sim, ami)
    assert [m.event for m in ami.events[before:]] == ["Cdr"]
    assert ami.events[-1]["UniqueID"] == record.uniqueid
    bad = await ami.action("Events")  # no EventMask: refused, the mask stays as it was
    assert (bad.response, bad["Message"]) == ("Error", "Invalid event mask")
    before = len(ami.events)
    await play(agi_sim, ami)
    assert [m.event for m in ami.events[before:]] == ["Cdr"]
    reply = await ami.action("Events", EventMask="dialplan,agi")
    assert reply["Events"] == "On"
    before = len(ami.events)
    record = await agi_sim.place_call(SHORT)
    await barrier(ami)
    assert pairs(ami.events[before:]) == pairs(
        [m for m in record.events if only("dialplan", "agi")(m)])
    assert {"VarSet", "Newexten", "AGIExecStart"} <= {m.event for m in ami.events[before:]}


async def test_the_users_read_permission_caps_the_mask(make_sim: MakeSim,
                                                       connect: Connect) -> None:
    sim = await make_sim(agi=None, read={"charging": "call"})
    on = await connect(sim.ami_port, events="on")
    cdr = await connect(sim.ami_port, events="cdr")
    record = await play(sim, on, cdr)
    assert "Hangup" in {m.event for m in leg_events(on.messages, record.uniqueid)}
    assert pairs(on.events) == pairs([m for m in record.events if only("call")(m)])
    assert not {"Cdr", "FullyBooted", "Newexten", "VarSet"} & {m.event for m in on.events}
    assert cdr.events == []


async def test_deployed_permission_with_the_connectors_login(make_sim: MakeSim,
                                                             connect: Connect) -> None:
    """deploy/asterisk/manager.conf's ``read = call,cdr`` and the connector's default
    ``Events: call,cdr``: the call's call and cdr events, no FullyBooted."""
    sim = await make_sim(agi=None, read={"charging": "call,cdr"})
    ami = await connect(sim.ami_port, events="call,cdr")
    record = await play(sim, ami)
    assert [m.pairs for m in ami.events] == pairs(
        [m for m in record.events if only("call", "cdr")(m)])


@pytest.mark.parametrize(("text", "mask"), [
    (None, None), ("", None),                       # empty: the mask is left as it was
    ("on", INT_MAX), ("YES", INT_MAX), ("true", INT_MAX), ("all", INT_MAX),
    ("off", 0), ("No", 0), ("false", 0), ("0", 0), ("none", 0), ("nonsense", 0),
    ("call,cdr", CALL | CDR), ("cdr,call", CALL | CDR), ("call", CALL),
    ("1026", CALL | CDR), ("1", 1),                 # digits are a number (1 = system)
    ("call, cdr", CALL),                            # " cdr" is no label
    ("Call,CDR", 0),                                # labels are case-sensitive
    ("ca,cdr", CALL | CDR),                         # a token before a comma is a prefix
    ("call,all", INT_MAX),
])
def test_masks_are_parsed_as_manager_c_does(text: str | None, mask: int | None) -> None:
    assert strings_to_mask(text) == mask


def test_read_permissions_are_parsed_as_manager_c_does() -> None:
    assert get_perm("call,cdr") == CALL | CDR
    assert get_perm("on") == 0  # read= is not an event mask: on/yes mean nothing there
    assert get_perm("all") == INT_MAX


def test_read_must_name_a_configured_user() -> None:
    with pytest.raises(ScenarioError):
        SimulatorConfig(read={"nobody": "all"})
    with pytest.raises(ScenarioError):
        SimulatorConfig(read={"charging": 7})  # type: ignore[dict-item]

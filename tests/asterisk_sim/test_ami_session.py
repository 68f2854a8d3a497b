"""The AMI session over real TCP: banner, login, Ping, Events on/off, errors, Logoff
(event classes and masks in detail: ``test_event_filter``)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from pbx_connectors.asterisk.ami_protocol import Message
from pbx_connectors.asterisk.simulator import CallSpec, Simulator

from .conftest import Connect, MakeSim
from .support import AmiClient

TIMESTAMP = re.compile(r"^\d{10}\.\d{6}$")
SHORT = CallSpec("acct1", "15550001", "15559999", ring_s=0.05, talk_s=0.1)


def a_leg_hangup(uniqueid: str) -> Callable[[list[Message]], bool]:
    return lambda ms: any(m.event == "Hangup" and m.get("Uniqueid") == uniqueid for m in ms)


async def barrier(client: AmiClient) -> None:
    """A Ping answered: everything the server wrote to this session before has arrived."""
    reply = await client.action("Ping")
    assert reply.response == "Success"


async def test_banner_login_and_fully_booted(sim: Simulator) -> None:
    client = await AmiClient.connect(sim.ami_port)
    try:
        reply = await client.action("Login", Username="charging", Secret="charging")
        assert client.banner == "Asterisk Call Manager/11.0.0"
        assert reply.pairs[0] == ("Response", "Success")
        assert reply.action_id is not None and reply.pairs[1] == ("ActionID", reply.action_id)
        assert reply["Message"] == "Authentication accepted"
        booted = await client.wait_for(lambda ms: [m for m in ms if m.event == "FullyBooted"])
        assert booted[0]["Status"] == "Fully Booted"
    finally:
        await client.close()


@pytest.mark.parametrize(("user", "secret"), [("charging", "wrong"), ("nobody", "charging"),
                                              ("", "")])
async def test_bad_credentials_are_refused_and_the_connection_closed(
        sim: Simulator, user: str, secret: str) -> None:
    client = await AmiClient.connect(sim.ami_port)
    try:
        reply = await client.action("Login", Username=user, Secret=secret)
        assert reply.response == "Error"
        assert reply["Message"] == "Authentication failed"
        await client.wait_for(lambda ms: client.eof.is_set() or None)
        assert sim.ami_clients == 0
    except ConnectionError:
        pass  # closed right after the reply: also what Asterisk does
    finally:
        await client.close()
    assert client.eof.is_set()


async def test_actions_before_login_are_denied(sim: Simulator) -> None:
    client = await AmiClient.connect(sim.ami_port)
    try:
        reply = await client.action("Ping")
        assert (reply.response, reply["Message"]) == ("Error", "Permission denied")
        assert not client.eof.is_set()
    finally:
        await client.close()


async def test_ping_answers_pong_with_a_timestamp(ami: AmiClient) -> None:
    reply = await ami.action("Ping")
    assert reply.response == "Success"
    assert reply["Ping"] == "Pong"
    assert TIMESTAMP.match(reply["Timestamp"])
    assert [k for k, _ in reply.pairs] == ["Response", "ActionID", "Ping", "Timestamp"]


async def test_unknown_and_missing_actions_are_errors(ami: AmiClient) -> None:
    reply = await ami.action("Frobnicate")
    assert reply.response == "Error"
    assert reply["Message"].startswith("Invalid/unknown command: Frobnicate")
    ami.send(Message.of(ActionID="noaction", Foo="bar"))
    missing = await ami.wait_for(lambda ms: next((m for m in ms if m.action_id == "noaction"),
                                                 None))
    assert (missing.response, missing["Message"]) == ("Error", "Missing action in request")


async def test_logoff_says_goodbye_and_closes(ami: AmiClient) -> None:
    ami.send(Message.of(Action="Logoff", ActionID="bye"))
    await ami.wait_for(lambda ms: ami.eof.is_set() or None)
    goodbye = next(m for m in ami.messages if m.action_id == "bye")
    assert goodbye.response == "Goodbye"
    assert goodbye["Message"] == "Thanks for all the fish."


async def test_events_on_and_off_at_login(sim: Simulator, connect: Connect) -> None:
    on = await connect(sim.ami_port, events="on")
    off = await connect(sim.ami_port, events="off")
    record = await sim.place_call(SHORT)
    await on.wait_for(a_leg_hangup(record.uniqueid))
    await barrier(off)
    assert off.events == []
    assert any(m.get("Uniqueid") == record.uniqueid for m in on.events)


async def test_events_action_switches_events(sim: Simulator, ami: AmiClient) -> None:
    reply = await ami.action("Events", EventMask="off")
    assert reply.pairs == [("Response", "Success"), ("ActionID", reply.action_id),
                           ("Events", "Off")]  # action_events, not "Response: Events Off"
    before = len(ami.events)
    await sim.place_call(SHORT)
    await barrier(ami)
    assert len(ami.events) == before
    reply = await ami.action("Events", EventMask="on")
    assert (reply.response, reply["Events"]) == ("Success", "On")
    record = await sim.place_call(SHORT)
    await ami.wait_for(a_leg_hangup(record.uniqueid))


async def test_every_event_is_timestamped_in_order(sim: Simulator, ami: AmiClient) -> None:
    record = await sim.place_call(SHORT)
    await ami.wait_for(a_leg_hangup(record.uniqueid))
    stamped = [m for m in ami.events if m.event != "FullyBooted"]  # sent unstamped, as recorded
    assert len(stamped) > 50
    stamps = [m["Timestamp"] for m in stamped]
    assert all(TIMESTAMP.match(s) for s in stamps)
    assert all(m.pairs[2][0] == "Timestamp" for m in stamped)
    values = [float(s) for s in stamps]
    assert values == sorted(values) and len(set(values)) == len(values)


async def test_every_logged_in_client_gets_every_event(sim: Simulator, connect: Connect) -> None:
    one = await connect(sim.ami_port)
    two = await connect(sim.ami_port)
    assert sim.ami_clients == 2
    record = await sim.place_call(SHORT)
    await one.wait_for(a_leg_hangup(record.uniqueid))
    await two.wait_for(a_leg_hangup(record.uniqueid))
    await barrier(one)
    await barrier(two)
    assert [m.pairs for m in one.events] == [m.pairs for m in two.events]


async def test_a_client_that_never_logs_in_is_dropped(make_sim: MakeSim) -> None:
    sim = await make_sim(agi=None, auth_timeout_s=0.2)
    client = await AmiClient.connect(sim.ami_port)
    try:
        await client.wait_for(lambda ms: client.eof.is_set() or None)
    finally:
        await client.close()


async def test_a_line_past_the_limit_closes_the_session(ami: AmiClient) -> None:
    ami.send_raw(b"Action: Ping\r\nX: " + b"y" * 10_000)
    await ami.wait_for(lambda ms: ami.eof.is_set() or None)

"""The A-leg's FastAGI step against stand-in FastAGI servers written here (transcripts 05-07)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from pbx_connectors.asterisk.simulator import CallSpec, Simulator, tvdiff_ms

from .conftest import Connect, MakeSim
from .support import StubAgi, free_port, leg_events

ALLOW_1500 = ['SET VARIABLE CHARGING_STATUS "ALLOWED"', 'SET VARIABLE CHARGING_REASON "ok"',
              'SET VARIABLE CHARGING_MAXMS "1500"']
SPEC = CallSpec("acct-9", "15550001", "442079460000", ring_s=0.05, talk_s=10)

StartStub = Callable[..., Awaitable[tuple[StubAgi, int]]]


@pytest.fixture
async def stub() -> AsyncIterator[StartStub]:
    stubs: list[StubAgi] = []

    async def start(commands: list[str], hang: bool = False) -> tuple[StubAgi, int]:
        server = StubAgi(commands, hang)
        stubs.append(server)
        return server, await server.start()

    yield start
    for server in stubs:
        await server.stop()


async def test_allowed_call_is_cut_by_the_limit(make_sim: MakeSim, stub: StartStub,
                                                connect: Connect) -> None:
    agi, port = await stub(ALLOW_1500)
    sim = await make_sim(agi=("127.0.0.1", port))
    ami = await connect(sim.ami_port)
    record = await sim.place_call(SPEC)

    assert (record.ended_by, record.hangup_cause, record.limit_ms) == ("limit", 16, 1500)
    assert record.billable_seconds == 1 and record.disposition == "ANSWERED"
    assert record.agi_status == "SUCCESS"
    assert record.agi_variables == {"CHARGING_STATUS": "ALLOWED", "CHARGING_REASON": "ok",
                                    "CHARGING_MAXMS": "1500"}
    assert agi.replies == ["200 result=1"] * 3
    (env,) = agi.envs
    assert env["agi_request"] == f"agi://127.0.0.1:{port}/authorize"
    assert env["agi_network_script"] == "authorize"
    assert env["agi_channel"] == record.channel and env["agi_uniqueid"] == record.uniqueid
    assert env["agi_arg_1"] == record.linkedid
    assert env["agi_accountcode"] == "acct-9" and env["agi_extension"] == "442079460000"
    assert env["agi_callerid"] == "15550001" and env["agi_context"] == "outbound"
    assert list(env)[:3] == ["agi_network", "agi_network_script", "agi_request"]

    await ami.action("Ping")
    leg = leg_events(ami.messages, record.uniqueid)
    varsets = [(m["Variable"], m["Value"]) for m in leg if m.event == "VarSet"
               and m["Variable"].startswith(("CHARGING_", "AGISTATUS"))]
    assert varsets == [("CHARGING_STATUS", "ALLOWED"), ("CHARGING_REASON", "ok"),
                       ("CHARGING_MAXMS", "1500"), ("AGISTATUS", "SUCCESS")]
    assert all(m["Channel"] == record.channel for m in leg)
    execs = [(m.event, m["Command"]) for m in leg if (m.event or "").startswith("AGIExec")]
    assert execs[:2] == [("AGIExecStart", ALLOW_1500[0]), ("AGIExecEnd", ALLOW_1500[0])]
    dial = next(m for m in leg if m.event == "Newexten" and m["Application"] == "Dial")
    assert dial["AppData"] == "Local/442079460000@callee/n,30,L(1500)"
    (cdr,) = [m for m in leg if m.event == "Cdr"]
    assert cdr["BillableSeconds"] == "1" and cdr["LastData"].endswith(",L(1500)")
    assert record.answer_time is not None
    talk_ms = tvdiff_ms(round(record.end_time * 1e6), round(record.answer_time * 1e6))
    assert talk_ms >= 1500  # never cut before the limit (BillableSeconds 1 above: not far after)


async def test_denied_call_is_rejected_with_cause_21(make_sim: MakeSim, stub: StartStub,
                                                     connect: Connect) -> None:
    _, port = await stub(['SET VARIABLE CHARGING_STATUS "DENIED"',
                          'SET VARIABLE CHARGING_REASON "insufficient_funds"'])
    sim = await make_sim(agi=("127.0.0.1", port))
    ami = await connect(sim.ami_port)
    record = await sim.place_call(SPEC)
    assert (record.ended_by, record.hangup_cause, record.hangup_cause_txt) == (
        "rejected", 21, "Call Rejected")
    assert record.callee_channel is None and record.answer_time is None
    await ami.action("Ping")
    leg = leg_events(ami.messages, record.uniqueid)
    assert not any(m.event == "DialBegin" for m in leg)
    (cdr,) = [m for m in leg if m.event == "Cdr"]
    assert (cdr["LastApplication"], cdr["LastData"], cdr["Disposition"]) == (
        "Hangup", "21", "NO ANSWER")


async def test_nothing_listening_fails_with_cause_38(make_sim: MakeSim) -> None:
    sim = await make_sim(agi=("127.0.0.1", await free_port()))
    record = await sim.place_call(SPEC)
    assert (record.agi_status, record.ended_by, record.hangup_cause) == (
        "FAILURE", "agi_failure", 38)
    assert record.hangup_cause_txt == "Network out of order"
    assert ("AGISTATUS", "FAILURE") in [(m.get("Variable"), m.get("Value"))
                                        for m in record.events if m.event == "VarSet"]


async def test_server_closing_without_an_answer_is_rejected(make_sim: MakeSim,
                                                            stub: StartStub) -> None:
    agi, port = await stub([])
    sim = await make_sim(agi=("127.0.0.1", port))
    record = await sim.place_call(SPEC)
    assert len(agi.envs) == 1
    assert (record.agi_status, record.agi_variables) == ("SUCCESS", {})
    assert (record.ended_by, record.hangup_cause) == ("rejected", 21)


async def test_silent_server_makes_the_call_stuck(make_sim: MakeSim, stub: StartStub) -> None:
    agi, port = await stub([], hang=True)
    sim = await make_sim(agi=("127.0.0.1", port), agi_timeout_s=0.3)
    record = await sim.place_call(SPEC)
    assert record.ended_by == "stuck" and record.agi_status is None
    assert len(agi.envs) == 1
    assert sim.live_channels() == []


async def test_agi_command_replies(make_sim: MakeSim, stub: StartStub) -> None:
    agi, port = await stub(["NOOP", "VERBOSE \"hello\" 1", "SET VARIABLE ONLY_TWO",
                            "GET VARIABLE CHARGING_MAXMS", "SET VARIABLE CHARGING_MAXMS 900",
                            "GET VARIABLE CHARGING_MAXMS", "STREAM FILE x", "set variable "
                            "CHARGING_STATUS ALLOWED"])
    sim = await make_sim(agi=("127.0.0.1", port))
    record = await sim.place_call(CallSpec("a", "1", "2", ring_s=0.01, talk_s=0.05))
    assert agi.replies == ["200 result=0", "200 result=1", "520 End of proper usage.",
                           "200 result=0", "200 result=1", "200 result=1 (900)",
                           "510 Invalid or unknown command", "200 result=1"]
    ends = [(m["ResultCode"], m["Result"]) for m in record.events if m.event == "AGIExecEnd"]
    assert ends[2] == ("520", "Usage") and ends[6] == ("510", "Invalid or unknown command")
    assert record.ended_by == "caller"


async def test_allowed_without_maxms_has_no_limit(make_sim: MakeSim, stub: StartStub) -> None:
    _, port = await stub(["SET VARIABLE CHARGING_STATUS ALLOWED"])
    sim = await make_sim(agi=("127.0.0.1", port))
    record = await sim.place_call(CallSpec("a", "1", "2", ring_s=0.01, talk_s=0.2))
    assert (record.limit_ms, record.ended_by) == (None, "caller")


async def test_unusable_maxms_makes_dial_refuse(make_sim: MakeSim, stub: StartStub) -> None:
    _, port = await stub(["SET VARIABLE CHARGING_STATUS ALLOWED",
                          "SET VARIABLE CHARGING_MAXMS soon"])
    sim: Simulator = await make_sim(agi=("127.0.0.1", port))
    record = await sim.place_call(CallSpec("a", "1", "2", ring_s=0.01, talk_s=0.2))
    assert (record.ended_by, record.hangup_cause, record.callee_channel) == (
        "rejected", 0, None)

"""The load test's fastagi scenario, piece by piece and without a load run: its arguments, the
connector file it writes, the simulated Asterisk's call intake (real TCP, real AMI), and the
report table built from locust's final stats.

The intake test pins the contract the scenario rests on: a call handed over as ``<call id>`` is
played on AMI under Uniqueid ``<call id>-a`` and Linkedid ``<call id>-h``, which is what the
locust user (benchmarks/locustfiles/fastagi.py, not importable here: locust monkey-patches the
process) authorized, so the connector charges it at its Hangup.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from benchmarks import loadtest
from pbx_connectors.asterisk.accounts import AccountMapper
from pbx_connectors.asterisk.ami_protocol import AmiParser, Message
from pbx_connectors.asterisk.config import parse_config
from pbx_connectors.asterisk.events import uniqueid


def test_scenario_and_its_talk_default() -> None:
    args = loadtest.parse_args([])
    assert (args.scenario, args.talk) == ("realtime", 30)
    args = loadtest.parse_args(["--scenario", "fastagi"])
    assert (args.scenario, args.talk) == ("fastagi", 2)
    assert loadtest.parse_args(["--scenario", "fastagi", "--talk", "5"]).talk == 5
    with pytest.raises(SystemExit):
        loadtest.parse_args(["--scenario", "sip"])


def test_connector_file_maps_the_seeded_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_config(loadtest.connector_toml(ami_port=5555, agi_port=4444), "asterisk.toml")
    (pbx,) = cfg.pbx
    assert (pbx.tenant, pbx.ami.port, pbx.ami.username, pbx.fastagi.port) == (
        loadtest.TENANT, 5555, loadtest.AMI_USER, 4444)
    monkeypatch.setenv(loadtest.AMI_SECRET_ENV, "s3cret")
    assert pbx.ami.resolved_secret() == "s3cret"
    seeded = [row.split(",")[0] for row in loadtest.accounts_csv(3, 2).splitlines()[1:]]
    mapper = AccountMapper(pbx.accounts)
    assert [mapper.from_agi({"agi_accountcode": a}) for a in seeded] == seeded
    assert [mapper.from_event({"AccountCode": a}) for a in seeded] == seeded


async def _next(reader: asyncio.StreamReader, parser: AmiParser,
                pending: list[Message]) -> Message:
    while not pending:
        data = await reader.read(65536)
        assert data, "the AMI server closed the connection"
        parser.feed(data)
        pending.extend(parser.messages())
    return pending.pop(0)


async def test_intake_plays_the_call_under_the_authorized_uniqueid() -> None:
    pbx = loadtest.PbxSide("secret")
    await pbx.start()
    try:
        ami_r, ami_w = await asyncio.open_connection("127.0.0.1", pbx.sim.ami_port)
        ami_w.write(b"Action: Login\r\nActionID: 1\r\nUsername: charging\r\nSecret: secret\r\n"
                    b"Events: call,cdr\r\n\r\n")
        parser, pending = AmiParser(), list[Message]()
        async with asyncio.timeout(10):
            while (await _next(ami_r, parser, pending)).response != "Success":
                pass
            intake_r, intake_w = await asyncio.open_connection("127.0.0.1", pbx.intake_port)
            intake_w.write(b"PLAY L1-0-7 acc3 442079460000 0 0.2\nPLAY L1-0-8 acc3\n")
            assert await intake_r.readline() == b"OK\n"
            assert (await intake_r.readline()).startswith(b"ERR ")
            seen: dict[str, Message] = {}
            while "Hangup" not in seen or "Cdr" not in seen:
                m = await _next(ami_r, parser, pending)
                if m.event and uniqueid(m) == "L1-0-7-a":
                    seen.setdefault(m.event, m)
            await pbx.finish()
        assert seen["DialEnd"]["DialStatus"] == "ANSWER"
        assert seen["Hangup"]["Linkedid"] == "L1-0-7-h"
        assert (seen["Cdr"]["AccountCode"], seen["Cdr"]["Disposition"]) == ("acc3", "ANSWERED")
        f = pbx.figures
        assert (f.taken, f.refused, f.answered, f.ended_by) == (1, 1, 1, Counter(caller=1))
        intake_w.close()
        ami_w.close()
    finally:
        await pbx.close()
    assert pbx.figures.unfinished == 0


def test_report_rows_use_locusts_percentiles_and_add_the_aggregate() -> None:
    entries = [
        {"name": "authorize DENIED", "num_requests": 1, "num_failures": 1,
         "response_times": {"20": 1}, "start_time": 100.0, "last_request_timestamp": 101.0,
         "max_response_time": 20.4},
        {"name": "authorize ALLOWED", "num_requests": 4, "num_failures": 0,
         "response_times": {"10": 3, "100": 1}, "start_time": 100.0,
         "last_request_timestamp": 102.0, "max_response_time": 101.5},
    ]
    allowed, denied, total = loadtest.rows(entries)
    assert (allowed.name, allowed.count, allowed.rps, allowed.p50, allowed.p99) == (
        "authorize ALLOWED", 4, 2.0, 10, 100)
    assert (denied.count, denied.failures, denied.p50) == (1, 1, 20)
    assert (total.name, total.count, total.failures, total.rps, total.p50, total.p95,
            total.max_ms) == ("Aggregated", 5, 1, 2.5, 10, 100, 101.5)

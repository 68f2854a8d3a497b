"""The sans-I/O AMI and FastAGI cores: round trips, any chunking, hard limits, real transcripts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbx_connectors.asterisk.agi_protocol import (
    MAX_ENV_LINES,
    AgiEnvParser,
    AgiError,
    arguments,
    parse_reply,
    script_name,
    set_variable,
)
from pbx_connectors.asterisk.ami_protocol import (
    MAX_LINE,
    AmiParser,
    Message,
    ProtocolError,
    parse_all,
)

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-transcripts"
keys = st.text(st.characters(min_codepoint=65, max_codepoint=122, categories=["L"]),
               min_size=1, max_size=20)
values = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]),
                 max_size=40).map(str.strip)
messages = st.lists(st.tuples(keys, values), min_size=1, max_size=12).map(Message)


@given(st.lists(messages, min_size=1, max_size=5), st.lists(st.integers(1, 50), max_size=30))
def test_any_chunking_parses_the_same_messages(msgs: list[Message], cuts: list[int]) -> None:
    data = b"Asterisk Call Manager/11.0.0\r\n" + b"".join(m.encode() for m in msgs)
    parser, got, pos = AmiParser(), [], 0
    for cut in [*cuts, len(data)]:
        parser.feed(data[pos:pos + cut])
        pos += cut
        got.extend(parser.messages())
    parser.feed(data[pos:])
    got.extend(parser.messages())
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert [m.pairs for m in got] == [m.pairs for m in msgs]


@pytest.mark.parametrize("pairs", [
    [("Action", "Hangup\r\nAction: Originate")], [("Bad:Key", "x")], [("A", "x\ny")],
    [("A", "x\ry")],
])
def test_header_injection_is_refused(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(ProtocolError):
        Message(pairs).encode()


def test_an_endless_line_is_a_protocol_error() -> None:
    parser = AmiParser(expect_banner=False)
    parser.feed(b"A" * (MAX_LINE + 1))
    with pytest.raises(ProtocolError):
        list(parser.messages())


def test_real_transcript_parses_into_its_events() -> None:
    raw = (TRANSCRIPTS / "03_dial_two_local_legs.txt").read_text()
    server = "\r\n".join(line for line in raw.splitlines() if not line.startswith(">>> "))
    msgs = parse_all((server + "\r\n").encode(), expect_banner=True)
    events = [m.event for m in msgs if m.event]
    assert events.count("Cdr") == 1 and "DialEnd" in events and "Hangup" in events
    cdr = next(m for m in msgs if m.event == "Cdr")
    assert cdr["BillableSeconds"] == "4" and cdr["Disposition"] == "ANSWERED"


def test_agi_environment_with_arguments() -> None:
    p = AgiEnvParser()
    assert p.feed(b"agi_network: yes\nagi_request: agi://127.0.0.1:4573/authorize?x=1\n") is None
    env = p.feed(b"agi_uniqueid: 1.2\nagi_arg_1: linked-1\nagi_arg_2: two\n\n")
    assert env is not None
    assert script_name(env) == "authorize"
    assert arguments(env) == ["linked-1", "two"]


@pytest.mark.parametrize("data", [
    b"agi_x: 1\n" * (MAX_ENV_LINES + 1),
    b"x" * 20_000,
    b"not an agi line\n\n",
    b"agi_channel: SIP/1\n\n",  # no agi_request
])
def test_agi_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(AgiError):
        AgiEnvParser().feed(data)


def test_agi_commands_and_replies() -> None:
    assert set_variable("CHARGING_STATUS", "ALLOWED") == b'SET VARIABLE CHARGING_STATUS "ALLOWED"\n'
    for bad in [("BAD NAME", "x"), ("OK", 'x"y'), ("OK", "a\nb")]:
        with pytest.raises(AgiError):
            set_variable(*bad)
    reply = parse_reply("200 result=1 (ok)")
    assert (reply.ok, reply.result, reply.data) == (True, 1, "ok")
    with pytest.raises(AgiError):
        parse_reply("HTTP/1.1 200 OK")

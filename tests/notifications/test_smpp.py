"""SMPP 3.4: the sans-I/O codec, then the ESME against the SMSC simulator over real TCP."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.smpp import (
    BindTransceiver,
    BindTransceiverResp,
    Body,
    DeliverSm,
    DeliverSmResp,
    Delivery,
    DeliveryReport,
    EnquireLink,
    EnquireLinkResp,
    Framer,
    GenericNack,
    MobileMessage,
    NotBound,
    Pdu,
    PduError,
    ProtocolError,
    Receipt,
    SmppClient,
    Smsc,
    SubmitRejected,
    SubmitSm,
    SubmitSmResp,
    SubmitUncertain,
    Unbind,
    UnbindResp,
    Unknown,
    decode,
    encode,
    format_receipt,
    parse_receipt,
    response_for,
)
from notifications.smpp import codes as c
from notifications.sms import Encoding

ACCOUNT, SECRET = "esme", "secret"
SENDER, HANDSET, UNREACHABLE = "+447700900100", "447700900200", "447700900999"

# -- the codec ------------------------------------------------------------------------------
BODIES: list[Body] = [
    BindTransceiver(ACCOUNT, SECRET, "billing"), BindTransceiverResp("SMSC", 0x34),
    BindTransceiverResp("SMSC"),
    SubmitSm("Shop", "447700900200", b"hello", source_addr_ton=5, dest_addr_ton=1,
             dest_addr_npi=1, registered_delivery=1, validity_period="000001000000000R"),
    SubmitSm("1", "2", b"", tlvs=((c.TAG_MESSAGE_PAYLOAD, b"x" * 1000),)),
    SubmitSmResp("0A1B2C"),
    DeliverSm("447700900200", "Shop", b"id:1 ...", esm_class=c.ESM_DELIVERY_RECEIPT,
              tlvs=((c.TAG_RECEIPTED_MESSAGE_ID, b"1\0"), (c.TAG_MESSAGE_STATE, b"\x02"))),
    DeliverSmResp(), EnquireLink(), EnquireLinkResp(), Unbind(), UnbindResp(), GenericNack(),
    Unknown(0x00000103, b"\x00\x01"),
]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: type(b).__name__)
def test_every_pdu_round_trips(body: Body) -> None:
    pdu = Pdu(body, sequence=0x7FFFFFFF)
    assert decode(encode(pdu)) == pdu


def test_wire_bytes_are_the_specs() -> None:
    assert encode(Pdu(EnquireLink(), 1)).hex() == "00000010000000150000000000000001"
    assert encode(Pdu(BindTransceiver("ab", "pw"), 2)) == bytes.fromhex(
        "0000001b" "00000009" "00000000" "00000002") + b"ab\0pw\0\0\x34\x00\x00\0"
    sm = encode(Pdu(SubmitSm("1", "2", b"hi", esm_class=0x40, data_coding=8), 3))
    assert sm[16:] == b"\0" + b"\0\0" + b"1\0" + b"\0\0" + b"2\0" + bytes([0x40, 0, 0]) + \
        b"\0\0" + bytes([0, 0, 8, 0, 2]) + b"hi"


def test_an_error_response_has_no_body() -> None:
    wire = encode(Pdu(SubmitSmResp("ignored"), 5, c.ESME_RTHROTTLED))
    assert len(wire) == 16
    assert decode(wire) == Pdu(SubmitSmResp(), 5, c.ESME_RTHROTTLED)
    assert response_for(0x00000103, 9, c.ESME_RINVCMDID) == Pdu(GenericNack(), 9, 0x03)
    assert response_for(c.SUBMIT_SM, 9) == Pdu(SubmitSmResp(), 9)


def test_the_short_message_pdus_read_their_tlvs() -> None:
    sm = DeliverSm(esm_class=c.ESM_DELIVERY_RECEIPT | c.ESM_UDHI,
                   tlvs=((c.TAG_RECEIPTED_MESSAGE_ID, b"ab12\0"), (c.TAG_MESSAGE_STATE, b"\x05"),
                         (c.TAG_MESSAGE_PAYLOAD, b"long")))
    assert sm.is_receipt and sm.udhi and sm.payload == b"long"
    assert sm.receipted_message_id == "ab12" and sm.message_state == 5
    assert not DeliverSm().is_receipt and DeliverSm(short_message=b"s").payload == b"s"


@pytest.mark.parametrize("body", [
    SubmitSm("x" * 21, "1"), SubmitSm("1", "2", b"x" * 255), SubmitSm("é", "1"),
    SubmitSm("1", "2", validity_period="1h"), BindTransceiver("s" * 16, "p"),
    BindTransceiver("s", "p" * 9),
])
def test_encoding_refuses_what_a_peer_would_reject(body: Body) -> None:
    with pytest.raises(ValueError):
        encode(Pdu(body, 1))


def _frame(command_id: int, body: bytes, sequence: int = 7) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, 0, sequence) + body


@pytest.mark.parametrize(("frame", "status"), [
    (_frame(c.SUBMIT_SM, b"\0\0\0" + b"1" * 25 + b"\0"), c.ESME_RINVSRCADR),
    (_frame(c.SUBMIT_SM, b"\0\0\0123"), c.ESME_RINVCMDLEN),  # a string without its NUL
    (_frame(c.SUBMIT_SM, bytes(16) + b"\xff"), c.ESME_RINVMSGLEN),  # sm_length 255
    (_frame(c.BIND_TRANSCEIVER, b"esme\0" + b"p" * 12 + b"\0\0\x34\0\0\0"), c.ESME_RINVPASWD),
    (_frame(c.ENQUIRE_LINK, b"extra"), c.ESME_RINVCMDLEN),
    (_frame(c.DELIVER_SM, bytes(17) + b"\x04\x27\x00"), c.ESME_RINVOPTPARSTREAM),
    (_frame(c.DELIVER_SM, bytes(17) + b"\x04\x27\x00\x02\x01\x02"), c.ESME_RINVPARLEN),
], ids=["source_addr", "no NUL", "sm_length", "password", "extra", "TLV cut", "TLV length"])
def test_a_malformed_body_is_a_pdu_error_with_its_status(frame: bytes, status: int) -> None:
    with pytest.raises(PduError) as err:
        decode(frame)
    assert (err.value.status, err.value.sequence) == (status, 7)


@given(st.lists(st.sampled_from(BODIES), min_size=1, max_size=8),
       st.lists(st.integers(1, 64), max_size=40))
def test_any_chunking_frames_the_same_pdus(bodies: list[Body], cuts: list[int]) -> None:
    pdus = [Pdu(b, i) for i, b in enumerate(bodies, 1)]
    data = b"".join(encode(p) for p in pdus)
    framer, got, pos = Framer(), list[Pdu](), 0
    for cut in [*cuts, len(data)]:
        framer.feed(data[pos:pos + cut])
        pos += cut
        got.extend(decode(f) for f in framer.frames())
    assert got == pdus


@pytest.mark.parametrize("length", [0, 15, 70_001, 0xFFFFFFFF])
def test_an_absurd_command_length_is_a_protocol_error(length: int) -> None:
    framer = Framer()
    framer.feed(encode(Pdu(EnquireLink(), 1)) + struct.pack(">I", length) + bytes(12))
    frames = framer.frames()
    assert decode(next(frames)) == Pdu(EnquireLink(), 1)  # what came before is still read
    with pytest.raises(ProtocolError):
        next(frames)


RECEIPT = ("id:0A1B2C3D sub:001 dlvrd:001 submit date:2401311259 done date:2402010001 "
           "stat:DELIVRD err:000 text:Your balance is low")


def test_the_standard_delivery_receipt_is_parsed() -> None:
    r = parse_receipt(RECEIPT)
    assert r == Receipt("0A1B2C3D", 1, 1, datetime(2024, 1, 31, 12, 59),
                        datetime(2024, 2, 1, 0, 1), "DELIVRD", "000", "Your balance is low")
    assert parse_receipt(format_receipt(r)) == r


@pytest.mark.parametrize(("text", "state", "rest"), [
    (RECEIPT.replace("text:", "Text:"), "DELIVRD", "Your balance is low"),
    ("id:1234567890123 sub:1 dlvrd:0 submit date:240131125901 done date:240131130002 "
     "stat:undeliv err:034", "UNDELIV", ""),
])
def test_receipt_variants_are_read(text: str, state: str, rest: str) -> None:
    r = parse_receipt(text)
    assert r is not None and (r.state, r.text) == (state, rest)


def test_a_text_that_is_no_receipt_gives_none() -> None:
    assert parse_receipt("hello") is None
    assert parse_receipt("id:1 stat:DELIVRD") is None


# -- the client against the simulator, over TCP --------------------------------------------
async def eventually(check: Callable[[], bool], what: str, within: float = 10.0) -> None:
    """Wait on an observable fact, failing with ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)


class Inbox:
    """An ``on_deliver`` that keeps what it gets (and can fail the first ``fail`` times)."""

    def __init__(self, fail: int = 0) -> None:
        self.items: list[Delivery] = []
        self.fail = fail

    async def __call__(self, delivery: Delivery) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("the outbox is down")
        self.items.append(delivery)

    def reports(self) -> dict[str, DeliveryReport]:
        return {d.message_id: d for d in self.items if isinstance(d, DeliveryReport)}

    def texts(self) -> list[str]:
        return [d.text for d in self.items if isinstance(d, MobileMessage)]


@pytest.fixture
async def smsc() -> AsyncIterator[Smsc]:
    async with Smsc({ACCOUNT: SECRET}, retry_s=0.05, states={UNREACHABLE: "UNDELIV"}) as s:
        yield s


@asynccontextmanager
async def running(port: int, *, bound: bool = True, **kw: Any) -> AsyncIterator[SmppClient]:
    opts: dict[str, Any] = {"system_id": ACCOUNT, "password": SECRET, "reconnect_min_s": 0.05,
                            "reconnect_max_s": 0.2, "response_timeout_s": 5.0, **kw}
    client = SmppClient("127.0.0.1", port, opts.pop("system_id"), opts.pop("password"), **opts)
    if client.on_deliver is None:
        client.on_deliver = Inbox()
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    try:
        if bound:
            async with asyncio.timeout(10):
                await client.bound.wait()
        yield client
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


def inbox(client: SmppClient) -> Inbox:
    assert isinstance(client.on_deliver, Inbox)
    return client.on_deliver


async def test_bind_and_unbind(smsc: Smsc) -> None:
    async with running(smsc.port) as client:
        assert client.smsc_system_id == "SIMSMSC" and smsc.bound_sessions == 1
        assert smsc.binds == [(ACCOUNT, c.ESME_ROK)]
    assert (smsc.received["unbind"], smsc.sent["unbind_resp"]) == (1, 1)


@pytest.mark.parametrize(("system_id", "password", "status"), [
    (ACCOUNT, "wrong", c.ESME_RINVPASWD), ("nobody", SECRET, c.ESME_RINVSYSID)])
async def test_a_refused_bind(smsc: Smsc, system_id: str, password: str, status: int) -> None:
    async with running(smsc.port, bound=False, system_id=system_id, password=password,
                       response_timeout_s=0.5) as client:
        await eventually(lambda: client.last_bind_status == status, "the refused bind")
        assert smsc.binds[0] == (system_id, status) and smsc.bound_sessions == 0
        with pytest.raises(NotBound, match=c.status_name(status)):
            await client.submit(SENDER, HANDSET, "never sent")
    assert smsc.received["submit_sm"] == 0


async def test_a_long_gsm_message_goes_in_three_parts(smsc: Smsc) -> None:
    text = ("Your balance is €4.20 [low]; top up at {shop}. " * 9)[:400]
    async with running(smsc.port) as client:
        ids = await client.submit(SENDER, HANDSET, text)
    assert len(ids) == 3 == len(smsc.parts)
    [message] = smsc.messages
    assert (message.text, message.encoding, message.part_ids) == (text, Encoding.GSM7, tuple(ids))
    assert (message.source, message.destination) == (SENDER[1:], HANDSET)
    assert all(p.pdu.esm_class & c.ESM_UDHI and p.data_coding == 0 for p in smsc.parts)
    assert [p.concat.seq for p in smsc.parts if p.concat] == [1, 2, 3]


@pytest.mark.parametrize("text", ["Γειά σου, το υπόλοιπό σας είναι χαμηλό. " * 3,
                                  "आपका बैलेंस कम है, कृपया रिचार्ज करें। " * 3,
                                  "Balance low 😀🎉 " * 12, "नमस्ते 😀"])
async def test_non_gsm_text_goes_as_ucs2(smsc: Smsc, text: str) -> None:
    async with running(smsc.port) as client:
        ids = await client.submit("Shop", HANDSET, text)
    [message] = smsc.messages
    assert (message.text, message.encoding, message.part_ids) == (text, Encoding.UCS2, tuple(ids))
    assert all(p.data_coding == 8 for p in smsc.parts)
    assert smsc.parts[0].pdu.source_addr_ton == c.TON_ALPHANUMERIC


async def test_delivery_receipts_reach_the_callback(smsc: Smsc) -> None:
    async with running(smsc.port) as client:
        delivered = await client.submit(SENDER, HANDSET, "x" * 200)
        failed = await client.submit(SENDER, UNREACHABLE, "hello")
        quiet = await client.submit(SENDER, HANDSET, "no receipt", registered_delivery=False)
        reports = inbox(client).reports
        await eventually(lambda: len(reports()) == 3, "three receipts")
        assert {i: r.state for i, r in reports().items()} == {
            delivered[0]: "DELIVRD", delivered[1]: "DELIVRD", failed[0]: "UNDELIV"}
        receipt = reports()[failed[0]].receipt
        assert receipt is not None and (receipt.message_id, receipt.delivered) == (failed[0], 0)
        assert quiet[0] not in reports() and smsc.parts[-1].registered_delivery == 0


async def test_a_rejected_submit_raises_with_its_status(smsc: Smsc) -> None:
    smsc.reject[HANDSET] = c.ESME_RINVDSTADR
    async with running(smsc.port) as client:
        with pytest.raises(SubmitRejected) as err:
            await client.submit(SENDER, HANDSET, "x")
    assert (err.value.status, err.value.accepted, smsc.parts) == (c.ESME_RINVDSTADR, (), [])


async def test_enquire_link_both_ways(smsc: Smsc) -> None:
    async with running(smsc.port, enquire_link_s=0.05) as client:
        await eventually(lambda: smsc.sent["enquire_link_resp"] >= 3, "the client's keep-alive")
        assert await smsc.enquire_link() == 1
        assert smsc.received["enquire_link_resp"] == 1 and client.generation == 1


async def test_an_unanswered_enquire_link_drops_and_rebinds(smsc: Smsc) -> None:
    async with running(smsc.port, enquire_link_s=0.05, response_timeout_s=0.3) as client:
        smsc.stop_answering_enquire_link()
        await eventually(lambda: client.generation >= 2, "a re-bind after the silence")
        smsc.resume_answering_enquire_link()
        await eventually(lambda: client.bound.is_set(), "bound again")
        assert len(await client.submit(SENDER, HANDSET, "after")) == 1
    assert smsc.messages[-1].text == "after"


async def test_a_dropped_connection_is_rebound(smsc: Smsc) -> None:
    async with running(smsc.port) as client:
        await client.submit(SENDER, HANDSET, "before")
        smsc.drop()
        racing = [asyncio.create_task(client.submit(SENDER, HANDSET, f"racing {i}"))
                  for i in range(20)]
        await eventually(lambda: client.generation == 2, "the re-bind")
        assert len(await client.submit(SENDER, HANDSET, "after")) == 1
        results = await asyncio.gather(*racing, return_exceptions=True)
    stored = {m.text: m.part_ids for m in smsc.messages}
    for i, result in enumerate(results):  # each one raised, or is at the SMSC: none is lost
        if isinstance(result, BaseException):
            assert isinstance(result, SubmitUncertain | NotBound), result
        else:
            assert stored[f"racing {i}"] == tuple(result)
    assert "before" in stored and "after" in stored


async def test_a_submit_while_down_waits_for_the_rebind() -> None:
    first = Smsc({ACCOUNT: SECRET})
    await first.start()
    port = first.port
    async with running(port) as client:
        await first.close()
        await eventually(lambda: not client.bound.is_set(), "the client to see the outage")
        pending = asyncio.create_task(client.submit(SENDER, HANDSET, "queued"))
        async with Smsc({ACCOUNT: SECRET}, port=port) as second:
            assert len(await pending) == 1
            assert [m.text for m in second.messages] == ["queued"]
    async with running(port, bound=False, response_timeout_s=0.3) as lonely:
        with pytest.raises(NotBound):  # nobody listens now: it raises, it is not kept
            await lonely.submit(SENDER, HANDSET, "lost?")


async def test_two_hundred_concurrent_submits_arrive_exactly_once(smsc: Smsc) -> None:
    async with running(smsc.port, window=10) as client:
        ids = await asyncio.gather(*(client.submit(SENDER, HANDSET, f"message {i}")
                                     for i in range(200)))
    assert sorted(m.text for m in smsc.messages) == sorted(f"message {i}" for i in range(200))
    assert smsc.received["submit_sm"] == 200
    assert len({i for part_ids in ids for i in part_ids}) == 200


@pytest.mark.parametrize("text", ["STOP", "Recharge 10€ please [ref 42] " * 8, "Γειά 😀 " * 20])
async def test_mobile_originated_messages_reach_on_deliver(smsc: Smsc, text: str) -> None:
    async with running(smsc.port) as client:
        statuses = await smsc.mo(HANDSET, "12345", text)
        assert statuses == [c.ESME_ROK] * len(statuses)
        [mo] = inbox(client).items
    assert isinstance(mo, MobileMessage)
    assert (mo.source, mo.destination, mo.text) == (HANDSET, "12345", text)


async def test_a_failing_callback_gets_the_message_again(smsc: Smsc) -> None:
    async with running(smsc.port, on_deliver=Inbox(fail=2)) as client:
        long = "part of a long one " * 12
        assert await smsc.mo(HANDSET, "12345", long) == [c.ESME_ROK] * 2
        assert inbox(client).texts() == [long]
    assert smsc.received["deliver_sm_resp"] == 4  # two parts, the last one answered 3 times

"""CCAvenue: the kits' AES scheme, quick invoices as pay links against the stand-in over TCP,
and payment responses verified (forged, tampered, re-wrapped, stale and incomplete refused)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.gateways.ccavenue_crypto import decrypt, encrypt
from billing.gateways.ccavenue_gateway import (
    NAME,
    REQUIRED,
    CCAvenueError,
    CCAvenueGateway,
    encode_fields,
    order_id_for,
    parse_fields,
    to_decimal,
    to_minor,
)
from billing.gateways.model import Credentials, GatewayRejected
from charging_server.demo.ccavenue_standin import CCAvenueStandIn

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = "0123456789ABCDEF0123456789ABCDEF"
META = {"tenant_id": "t1", "account_id": "erin", "invoice_id": "inv_0123456789abcdef"}
fast = settings(max_examples=200, deadline=None)


def kit_encrypt(plain: bytes, working_key: str) -> str:
    """The kits' algorithm, written out independently of the module under test."""
    cipher = Cipher(algorithms.AES(hashlib.md5(working_key.encode()).digest()),
                    modes.CBC(bytes.fromhex("000102030405060708090a0b0c0d0e0f")))  # fmt: skip
    padder = padding.PKCS7(128).padder()
    enc = cipher.encryptor()
    return (enc.update(padder.update(plain) + padder.finalize()) + enc.finalize()).hex()


@pytest.fixture
async def cc() -> AsyncIterator[CCAvenueStandIn]:
    async with CCAvenueStandIn(working_key=KEY) as standin:
        yield standin


@pytest.fixture
async def gw(cc: CCAvenueStandIn) -> AsyncIterator[CCAvenueGateway]:
    g = CCAvenueGateway(Credentials(api_key=cc.access_code, webhook_secret=cc.working_key,
                                    account_id=cc.merchant_id, base_url=cc.base_url),
                        now=lambda: NOW)  # fmt: skip
    yield g
    await g.aclose()


async def link(gw: CCAvenueGateway, amount: int = 2323, currency: str = "INR",
               key: str = "k1") -> str:  # fmt: skip
    made = await gw.pay_link(amount=amount, currency=currency, description="Invoice 42",
                             metadata=META, success_url="https://x.example/ok",
                             cancel_url="https://x.example/", idempotency_key=key)  # fmt: skip
    return made.reference


def rewrap(body: bytes, change: Mapping[str, str | None], key: str = KEY) -> bytes:
    """``body`` with its decrypted fields changed (None: dropped), re-encrypted with ``key``."""
    form = dict(parse_qsl(body.decode()))
    fields = parse_fields(decrypt(form["encResp"], KEY))
    for name, value in change.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    form["encResp"] = encrypt(encode_fields(fields), key)
    return urlencode(form).encode()


# --- the crypto ------------------------------------------------------------------------------


@fast
@given(st.text(), st.text(min_size=1, max_size=40))
def test_any_text_round_trips(plain: str, working_key: str) -> None:
    hex_text = encrypt(plain, working_key)
    assert decrypt(hex_text, working_key) == plain
    assert decrypt(hex_text.upper(), working_key) == plain  # the Java kit writes uppercase


def test_the_module_encrypts_as_the_kits_do() -> None:
    plain = "order_id=bl42&amount=23.23&currency=INR"
    # computed with `openssl enc -aes-128-cbc -K $(md5 of the key) -iv 0001..0f`
    openssl = ("49512102c8184ee21c420a10d2af43d00b5150e75c0e9923a5e1f838967f0230"
               "f3077e60cb639a424e74b4a44bc0d954")  # fmt: skip
    assert kit_encrypt(plain.encode(), KEY) == openssl
    assert encrypt(plain, KEY) == openssl
    assert decrypt(openssl, KEY) == plain
    assert encrypt("x" * 16, KEY) == kit_encrypt(b"x" * 16, KEY)  # a whole block of padding


@pytest.mark.parametrize(("hex_text", "why"), [
    ("zz" * 16, "not hex"), ("abc", "not hex"), ("0a 0b", "not hex"), ("", "blocks"),
    ("00" * 15, "blocks"), (encrypt("a secret", "another key"), "padding"),
    (kit_encrypt(b"\xff\xfe\xfd", KEY), "UTF-8"),
])  # fmt: skip
def test_decrypt_refuses_what_the_key_did_not_write(hex_text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        decrypt(hex_text, KEY)


# --- amounts ---------------------------------------------------------------------------------


@fast
@given(st.integers(0, 10**15), st.sampled_from([0, 2, 3]))
def test_minor_units_and_decimal_strings_round_trip(minor: int, exp: int) -> None:
    text = to_decimal(minor, exp)
    assert to_minor(text, exp) == minor
    assert text.count(".") == (exp > 0) and (exp == 0 or len(text.split(".")[1]) == exp)
    assert to_minor(text + ("0" if exp else ".00"), exp) == minor  # trailing zeros are exact


def test_decimal_strings() -> None:
    assert (to_decimal(2323, 2), to_decimal(5, 2), to_decimal(500, 0)) == ("23.23", "0.05", "500")
    assert (to_decimal(1234, 3), to_minor("1.00", 2), to_minor("7", 3)) == ("1.234", 100, 7000)
    for bad in ("23.235", "1e3", "-1.00", " 1.00", "1,00", "", ".5", "١٢"):
        with pytest.raises(ValueError):
            to_minor(bad, 2)
    with pytest.raises(ValueError):
        to_decimal(-1, 2)


# --- pay links -------------------------------------------------------------------------------


async def test_a_pay_link_is_a_quick_invoice(cc: CCAvenueStandIn, gw: CCAvenueGateway) -> None:
    made = await gw.pay_link(amount=2323, currency="INR", description="Invoice 42",
                             metadata=META, success_url="https://x.example/ok",
                             cancel_url="https://x.example/", idempotency_key="k1")  # fmt: skip
    assert made.reference == order_id_for("t1", "k1") and len(made.reference) == 30
    (inv,) = cc.invoices.values()
    assert made.url == inv["tiny_url"] == f"{cc.base_url}/pay/{inv['invoice_id']}"
    assert (inv["amount"], inv["currency"], inv["order_id"]) == ("23.23", "INR", made.reference)
    assert (inv["customer_name"], inv["description"]) == ("erin", "Invoice 42")
    await link(gw, 500, "JPY", key="yen")
    assert cc.invoices[cc.by_ref[order_id_for("t1", "yen")]]["amount"] == "500"


async def test_the_same_key_gives_the_same_link(cc: CCAvenueStandIn, gw: CCAvenueGateway
                                                ) -> None:  # fmt: skip
    first = await link(gw, key="k1")
    assert await link(gw, key="k1") == first
    assert len(cc.invoices) == 1
    assert await link(gw, key="k2") != first and len(cc.invoices) == 2
    with pytest.raises(CCAvenueError, match="already used"):  # the same order, another amount
        await link(gw, 2400, key="k1")


async def test_wrong_credentials_are_refused(cc: CCAvenueStandIn) -> None:
    for creds, why in ((Credentials("AVWRONG", KEY, base_url=cc.base_url), "Access_code"),
                       (Credentials(cc.access_code, "another key", base_url=cc.base_url),
                        "Decryption")):  # fmt: skip
        g = CCAvenueGateway(creds, now=lambda: NOW)
        try:
            with pytest.raises(CCAvenueError, match=why):
                await link(g)
        finally:
            await g.aclose()
    assert cc.invoices == {}


# --- payment responses -----------------------------------------------------------------------


async def test_a_genuine_response_is_a_payment(cc: CCAvenueStandIn, gw: CCAvenueGateway) -> None:
    ref = await link(gw)
    event = await gw.verify(cc.paid(ref, at=NOW), {})
    tracking = cc.invoices[cc.by_ref[ref]]["tracking_id"]
    assert (event.gateway, event.event_id, event.type) == (NAME, f"{tracking}:Success",
                                                           "order.success")  # fmt: skip
    assert (event.paid, event.payment_ref, event.amount, event.currency) == (
        True, tracking, 2323, "INR")  # fmt: skip
    assert (event.link_ref, event.metadata) == (ref, {})  # inbox.resolve maps the ref back
    assert event.payload["order_id"] == ref and event.payload["bank_ref_no"].startswith("BRN")
    assert event.payload["trans_date"] == "01/03/2026 17:30:00"  # India time
    assert cc.invoices[cc.by_ref[ref]]["status"] == "Paid"
    assert await gw.follow_up(event) is None


async def test_a_response_at_the_edges_of_the_window_is_accepted(
    cc: CCAvenueStandIn, gw: CCAvenueGateway
) -> None:
    ref = await link(gw, 500, "JPY")
    for at in (NOW - timedelta(hours=23, minutes=59), NOW + timedelta(minutes=4)):
        assert (await gw.verify(cc.response(ref, at=at), {})).amount == 500


async def test_a_forged_response_is_refused(cc: CCAvenueStandIn, gw: CCAvenueGateway) -> None:
    ref = await link(gw)
    with pytest.raises(GatewayRejected, match="does not decrypt"):
        await gw.verify(cc.response(ref, at=NOW, working_key="someone else's key"), {})


async def test_a_tampered_response_is_refused(cc: CCAvenueStandIn, gw: CCAvenueGateway) -> None:
    ref = await link(gw)
    form = dict(parse_qsl(cc.response(ref, at=NOW).decode()))
    enc = form["encResp"]

    def flip(i: int) -> str:  # one bit of one hex digit
        return enc[:i] + format(int(enc[i], 16) ^ 1, "x") + enc[i + 1 :]

    for tampered in (flip(len(enc) - 1), flip(0), enc[:-32], enc[:-1], enc[:-2] + "zz"):
        body = urlencode({**form, "encResp": tampered}).encode()
        with pytest.raises(GatewayRejected):
            await gw.verify(body, {})


async def test_a_response_rewrapped_for_another_order_is_refused(
    cc: CCAvenueStandIn, gw: CCAvenueGateway
) -> None:
    ref, other = await link(gw, key="k1"), await link(gw, key="k2")
    form = dict(parse_qsl(cc.paid(ref, at=NOW).decode()))
    with pytest.raises(GatewayRejected, match="orderNo"):
        await gw.verify(urlencode({**form, "orderNo": other}).encode(), {})


async def test_a_stale_response_is_refused(cc: CCAvenueStandIn, gw: CCAvenueGateway) -> None:
    ref = await link(gw)
    with pytest.raises(GatewayRejected, match="stale"):
        await gw.verify(cc.response(ref, at=NOW - timedelta(days=2)), {})
    with pytest.raises(GatewayRejected, match="future"):
        await gw.verify(cc.response(ref, at=NOW + timedelta(minutes=10)), {})


async def test_an_incomplete_response_is_refused(cc: CCAvenueStandIn, gw: CCAvenueGateway
                                                 ) -> None:  # fmt: skip
    ref = await link(gw)
    body = cc.response(ref, at=NOW)
    for name in REQUIRED:
        for value in (None, ""):
            with pytest.raises(GatewayRejected, match=f"lacks {name}"):
                await gw.verify(rewrap(body, {name: value}), {})
    bad = (({"trans_date": "2026-03-01 17:30"}, "trans_date"), ({"amount": "23.235"}, "amount"),
           ({"currency": "rupees"}, "currency"))  # fmt: skip
    for change, why in bad:
        with pytest.raises(GatewayRejected, match=why):
            await gw.verify(rewrap(body, change), {})
    for junk in (b"", b"orderNo=1", b"\xff=1", b"encResp"):
        with pytest.raises(GatewayRejected):
            await gw.verify(junk, {})


async def test_failed_and_aborted_payments_are_not_paid(cc: CCAvenueStandIn, gw: CCAvenueGateway
                                                        ) -> None:  # fmt: skip
    ref = await link(gw)
    success = await gw.verify(cc.response(ref, at=NOW), {})
    events = [await gw.verify(cc.response(ref, status=s, at=NOW), {})
              for s in ("Failure", "Aborted")]  # fmt: skip
    assert [(e.paid, e.type, e.payment_ref) for e in events] == [
        (False, "order.failure", success.payment_ref),
        (False, "order.aborted", success.payment_ref)]  # fmt: skip
    assert len({success.event_id, *(e.event_id for e in events)}) == 3
    assert events[0].payload["failure_message"]

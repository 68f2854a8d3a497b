"""The sans-I/O SMS text core: alphabet choice, septets, segmentation rules, packing, and back."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.sms import (
    DCS_GSM7,
    DCS_UCS2,
    GSM_BASIC,
    GSM_EXTENSION,
    Concat,
    Encoding,
    EncodingError,
    Reassembler,
    choose_encoding,
    decode_gsm7,
    decode_text,
    encode_gsm7,
    fill_bits,
    is_gsm7,
    pack_septets,
    parse_udh,
    reassemble,
    segment,
    septet_count,
    ucs2_units,
    unpack_septets,
)

GSM_CHARS = sorted({c for i, c in enumerate(GSM_BASIC) if i != 0x1B} | set(GSM_EXTENSION))
gsm_texts = st.text(st.sampled_from(GSM_CHARS), max_size=1200)
basic_texts = st.text(st.sampled_from([c for c in GSM_CHARS if c not in GSM_EXTENSION]),
                      max_size=1200)
any_texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=600)
bmp_non_gsm = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]),
                      min_size=1, max_size=600).filter(lambda t: not is_gsm7(t))


def test_the_default_alphabet_is_complete() -> None:
    assert len(GSM_BASIC) == 128 and len(set(GSM_BASIC)) == 128
    assert GSM_BASIC[0x00] == "@" and GSM_BASIC[0x1B] == "\x1b" and GSM_BASIC[0x7F] == "à"
    assert encode_gsm7("€[]{}~^\\|") == bytes.fromhex("1b651b3c1b3e1b281b291b3d1b141b2f1b40")


@pytest.mark.parametrize(("text", "expected"), [
    ("Hello, world!", Encoding.GSM7), ("Prix: 5€ [promo] {x} ~^\\|", Encoding.GSM7),
    ("ΔΦΓΛΩΠΨΣΘΞ @£$¥", Encoding.GSM7), ("Γειά σου", Encoding.UCS2),
    ("नमस्ते", Encoding.UCS2), ("ok 😀", Encoding.UCS2), ("esc \x1b", Encoding.UCS2),
    ("ç", Encoding.UCS2), ("", Encoding.GSM7),
])
def test_the_alphabet_is_chosen_by_the_text(text: str, expected: Encoding) -> None:
    assert choose_encoding(text) is expected


def test_extension_characters_cost_two_septets() -> None:
    assert septet_count("abc") == 3
    assert septet_count("a€[") == 5
    assert ucs2_units("α😀") == 3


@pytest.mark.parametrize(("length", "parts"), [(160, 1), (161, 2), (306, 2), (307, 3),
                                               (400, 3), (153 * 255, 255)])
def test_gsm_segment_counts(length: int, parts: int) -> None:
    segments = segment("x" * length, reference=7)
    assert len(segments) == parts
    assert all(s.data_coding == DCS_GSM7 for s in segments)
    if parts == 1:
        assert segments[0].udh == b"" and not segments[0].udhi
    else:
        assert [s.udh for s in segments] == [bytes([5, 0, 3, 7, parts, i])
                                             for i in range(1, parts + 1)]
        assert all(s.length == 153 for s in segments[:-1])


@pytest.mark.parametrize(("length", "parts"), [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_ucs2_segment_counts(length: int, parts: int) -> None:
    segments = segment("ж" * length)
    assert len(segments) == parts
    assert all(s.data_coding == DCS_UCS2 for s in segments)
    if parts > 1:
        assert all(len(s.payload) == 134 for s in segments[:-1])


def test_too_many_parts_is_refused() -> None:
    with pytest.raises(EncodingError):
        segment("x" * (153 * 255 + 1))


def test_an_escape_pair_is_never_split() -> None:
    segments = segment("a" * 152 + "€" + "b" * 10)
    assert segments[0].payload == b"a" * 152  # the euro does not fit in septet 153
    assert segments[1].payload.startswith(b"\x1b\x65")


def test_a_surrogate_pair_is_never_split() -> None:
    segments = segment("α" * 66 + "😀" + "β" * 10)
    assert segments[0].length == 66
    assert segments[1].payload.startswith("😀".encode("utf-16-be"))
    assert reassemble(segments) == "α" * 66 + "😀" + "β" * 10


@given(any_texts, st.integers(0, 255))
def test_any_text_round_trips(text: str, reference: int) -> None:
    segments = segment(text, reference)
    assert reassemble(segments) == text
    assert reassemble(list(reversed(segments))) == text
    assert all(len(s.short_message) <= 160 for s in segments)


@given(gsm_texts)
def test_gsm_text_stays_gsm(text: str) -> None:
    assert is_gsm7(text) and choose_encoding(text) is Encoding.GSM7
    segments = segment(text)
    assert {s.encoding for s in segments} == {Encoding.GSM7}
    assert decode_gsm7(encode_gsm7(text)) == text
    n = septet_count(text)
    if n <= 160:
        assert len(segments) == 1
    else:
        assert all(s.length <= 153 for s in segments)
        assert sum(s.length for s in segments) == n
        # greedy: no part could have taken the next character (1 or 2 septets) as well
        for seg, nxt in itertools.pairwise(segments):
            assert seg.length + (2 if nxt.payload[0] == 0x1B else 1) > 153


@given(basic_texts)
def test_gsm_counts_follow_the_160_153_rule(text: str) -> None:
    n = len(text)
    assert len(segment(text)) == (1 if n <= 160 else math.ceil(n / 153))


@given(bmp_non_gsm)
def test_ucs2_counts_follow_the_70_67_rule(text: str) -> None:
    n = len(text)
    assert len(segment(text)) == (1 if n <= 70 else math.ceil(n / 67))


def test_packing_matches_the_spec_example() -> None:
    septets = encode_gsm7("hellohello")
    assert pack_septets(septets).hex() == "e8329bfd4697d9ec37"
    assert unpack_septets(bytes.fromhex("e8329bfd4697d9ec37"), 10) == septets


def test_fill_bits_after_the_concatenation_header() -> None:
    assert fill_bits(6) == 1  # 48 bits of UDH + 1 fill bit = 7 septets: 160 - 7 = 153
    assert fill_bits(0) == 0 and fill_bits(7) == 0


@given(st.binary(max_size=200).map(lambda b: bytes(x & 0x7F for x in b)), st.integers(0, 6))
def test_packing_round_trips(septets: bytes, fill: int) -> None:
    packed = pack_septets(septets, fill)
    assert len(packed) == (fill + 7 * len(septets) + 7) // 8
    assert unpack_septets(packed, len(septets), fill) == septets


def test_udh_parsing() -> None:
    assert parse_udh(bytes([5, 0, 3, 9, 2, 1]) + b"hi") == (Concat(9, 2, 1), b"hi")
    assert parse_udh(bytes([6, 8, 4, 1, 2, 3, 3]) + b"x") == (Concat(258, 3, 3), b"x")
    assert parse_udh(bytes([3, 0x24, 1, 1]) + b"y") == (None, b"y")  # another element only
    for bad in (b"", bytes([9, 0, 3, 1, 2, 1]), bytes([5, 0, 3, 1, 2, 3]), bytes([2, 0, 3])):
        with pytest.raises(EncodingError):
            parse_udh(bad)


def test_decoding_other_data_codings() -> None:
    assert decode_text(b"caf\xe9", 0x03) == "café"
    assert decode_text(b"plain", 0x01) == "plain"
    assert decode_gsm7(b"\x1b\x41") == "A"  # unknown extension: the basic character
    assert decode_gsm7(b"a\xff") == "a\ufffd"


def test_the_reassembler_joins_parts_in_any_order_and_is_bounded() -> None:
    r = Reassembler(max_pending=2)
    (c1, p1), (c2, p2) = (parse_udh(s.short_message) for s in segment("€" * 100, reference=3))
    assert c1 == Concat(3, 2, 1) and c2 == Concat(3, 2, 2)
    assert r.add("a", c2, DCS_GSM7, p2) is None
    assert r.add("a", c1, DCS_GSM7, p1) == "€" * 100
    assert r.add("a", c1, DCS_GSM7, p1) == "€" * 100  # kept until discarded
    r.discard("a", c1)
    assert len(r) == 0
    for origin in ("x", "y", "z"):
        r.add(origin, Concat(1, 2, 1), DCS_GSM7, b"q")
    assert len(r) == 2  # the oldest incomplete message was forgotten

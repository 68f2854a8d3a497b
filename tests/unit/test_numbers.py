"""Destination normalisation: one E.164 spelling per number, garbage rejected."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from charging_engine.rating.numbers import NumberError, normalize


@pytest.mark.parametrize(
    ("dialled", "expected"),
    [
        ("442079460000", "442079460000"),
        ("+44 20 7946 0000", "442079460000"),
        ("+44 (0)20 7946-0000", "442079460000"),  # "(0)" trunk digit is not dialled
        ("0044 (0) 20 7946 0000", "442079460000"),
        ("0044-20-7946-0000", "442079460000"),
        ("+1 (212) 555.0100", "12125550100"),
        ("  +33 1 23 45 67 89  ", "33123456789"),
        ("1", "1"),
        ("123456789012345", "123456789012345"),
        ("0207946", "0207946"),  # no default country: kept as dialled
        ("(0)20 7946 0000", "02079460000"),  # national "(0)" stays a trunk digit
    ],
)
def test_normalize_examples(dialled: str, expected: str) -> None:
    assert normalize(dialled) == expected


@pytest.mark.parametrize(
    ("dialled", "expected"),
    [
        ("020 7946 0000", "442079460000"),
        ("0044 20 7946 0000", "442079460000"),  # '00' is international, not trunk
        ("+33 1 23 45 67 89", "33123456789"),
        ("2079460000", "2079460000"),  # no trunk prefix: taken as international
    ],
)
def test_normalize_with_default_country(dialled: str, expected: str) -> None:
    assert normalize(dialled, "44") == expected


@pytest.mark.parametrize(
    ("dialled", "message"),
    [
        ("12ab", "destination '12ab' is not a phone number"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("*100#", "not a phone number"),
        ("#31#123", "not a phone number"),
        ("+", "not a phone number"),
        ("00", "not a phone number"),
        ("++44", "not a phone number"),
        ("44+1", "not a phone number"),
        ("1234567890123456", "16 digits"),
        ("+44 1234 5678 901234", "16 digits"),
        ("١٢٣", "not a phone number"),  # Arabic-Indic digits pass str.isdigit()
        ("１２３", "not a phone number"),  # fullwidth digits
        ("sip:alice@example.com", "not a phone number"),
        ("44\n20", "not a phone number"),
    ],
)
def test_normalize_rejects(dialled: str, message: str) -> None:
    with pytest.raises(NumberError, match=message.replace("+", r"\+")):
        normalize(dialled)


def test_trunk_prefix_expansion_respects_the_length_limit() -> None:
    with pytest.raises(NumberError, match="16 digits"):
        normalize("0" + "1" * 14, "44")  # '44' + 14 national digits = 16
    assert normalize("0" + "1" * 13, "44") == "44" + "1" * 13


@pytest.mark.parametrize("code", ["", "0", "044", "1234", "+44", "4a"])
def test_bad_default_country_code(code: str) -> None:
    with pytest.raises(NumberError, match="country code"):
        normalize("020 7946 0000", code)


def test_number_error_is_a_value_error() -> None:
    assert issubclass(NumberError, ValueError)


@given(st.text(alphabet="0123456789", min_size=1, max_size=15).filter(lambda s: s[0] != "0"))
def test_normalized_numbers_are_fixed_points(digits: str) -> None:
    assert normalize(digits) == digits
    assert normalize("+" + digits) == digits
    assert normalize("00" + digits) == digits


@given(st.text(max_size=20))
def test_normalize_returns_ascii_digits_or_raises(text: str) -> None:
    try:
        result = normalize(text)
    except NumberError:
        return
    assert result.isascii() and result.isdigit() and 1 <= len(result) <= 15

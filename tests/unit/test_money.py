"""Money rules: exact decimal strings in and out, and rounding checked against Decimal."""

from __future__ import annotations

from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Decimal,
    localcontext,
)

import pytest
from hypothesis import given
from hypothesis import strategies as st

from charging_engine.money import (
    MAX_AMOUNT,
    MoneyError,
    Rounding,
    currency_exponent,
    format_amount,
    parse_amount,
    quantum,
    round_div,
    to_decimal,
)

DECIMAL_MODE = {
    Rounding.UP: ROUND_CEILING,
    Rounding.DOWN: ROUND_FLOOR,
    Rounding.HALF_UP: ROUND_HALF_UP,
    Rounding.HALF_EVEN: ROUND_HALF_EVEN,
}
amounts = st.integers(-MAX_AMOUNT, MAX_AMOUNT)
currencies = st.sampled_from(["USD", "EUR", "JPY", "KWD", "CLP", "BHD"])


@given(amounts, st.none() | currencies)
def test_format_then_parse_is_identity(micros: int, currency: str | None) -> None:
    text = format_amount(micros, currency)
    assert parse_amount(text, allow_negative=True) == micros
    assert Decimal(text) == to_decimal(micros)


@given(st.integers(0, 10**9 - 1), st.integers(0, 10**6 - 1))
def test_parse_reads_decimal_strings_exactly(whole: int, frac: int) -> None:
    text = f"{whole}.{frac:06d}"
    assert parse_amount(text) == whole * 1_000_000 + frac
    assert Decimal(text).scaleb(6) == parse_amount(text)


@pytest.mark.parametrize(
    ("text", "micros"),
    [("12.50", 12_500_000), ("0.000001", 1), ("7", 7_000_000), (" 1.5 ", 1_500_000), ("0", 0)],
)
def test_parse_examples(text: str, micros: int) -> None:
    assert parse_amount(text) == micros


@pytest.mark.parametrize(
    "text",
    ["", " ", "1e5", "1E-3", "1.0000001", "nan", "inf", "-inf", "1,50", ".5", "5.", "0x10",
     "1_000", "+-1", "--1", "1.2.3", "12 50", "$12", "1000000001", "12.50EUR"],
)  # fmt: skip
def test_parse_rejects_garbage(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_amount(text)


@pytest.mark.parametrize("value", [1.5, 0.1, 10, None, Decimal("1.5")])
def test_parse_rejects_non_strings(value: object) -> None:
    with pytest.raises(MoneyError):
        parse_amount(value)  # type: ignore[arg-type]


def test_parse_rejects_negative_unless_allowed() -> None:
    with pytest.raises(MoneyError, match="negative"):
        parse_amount("-1.00")
    assert parse_amount("-1.00", allow_negative=True) == -1_000_000


def test_parse_rejects_amounts_over_the_maximum() -> None:
    assert parse_amount("1000000000") == MAX_AMOUNT
    with pytest.raises(MoneyError, match="maximum"):
        parse_amount("1000000000.000001")


@pytest.mark.parametrize(
    ("micros", "currency", "text"),
    [(12_500_000, None, "12.50"), (1, None, "0.000001"), (-5_000_000, "USD", "-5.00"),
     (1_000_000, "JPY", "1"), (1_500_000, "JPY", "1.5"), (1_000_000, "KWD", "1.000")],
)  # fmt: skip
def test_format_examples(micros: int, currency: str | None, text: str) -> None:
    assert format_amount(micros, currency) == text


def test_currency_exponent() -> None:
    assert [currency_exponent(c) for c in ("USD", "JPY", "KWD")] == [2, 0, 3]
    for bad in ("usd", "US", "EURO", ""):
        with pytest.raises(MoneyError):
            currency_exponent(bad)


def _decimal_round_div(numerator: int, denominator: int, mode: Rounding) -> int:
    """Independent oracle: exact-enough Decimal division, then quantize to an integer."""
    with localcontext() as ctx:
        ctx.prec = 100
        exact = Decimal(numerator) / Decimal(denominator)
        return int(exact.quantize(Decimal(1), rounding=DECIMAL_MODE[mode]))


@given(st.integers(0, 10**20), st.integers(1, 10**12), st.sampled_from(Rounding))
def test_round_div_matches_decimal(numerator: int, denominator: int, mode: Rounding) -> None:
    expected = _decimal_round_div(numerator, denominator, mode)
    assert round_div(numerator, denominator, mode) == expected


@given(st.integers(0, 10**6), st.integers(1, 1000), st.sampled_from(Rounding))
def test_round_div_on_ties_and_small_values(q: int, d: int, mode: Rounding) -> None:
    # numerator = q*d + d/2 exercises the tie cases whenever d is even
    for numerator in (q * d, q * d + d // 2, q * d + 1, q * d + d - 1):
        assert round_div(numerator, d, mode) == _decimal_round_div(numerator, d, mode)


@pytest.mark.parametrize(
    ("numerator", "mode", "expected"),
    [(5, Rounding.UP, 1), (5, Rounding.DOWN, 0), (5, Rounding.HALF_UP, 1),
     (5, Rounding.HALF_EVEN, 0), (15, Rounding.HALF_EVEN, 2), (25, Rounding.HALF_EVEN, 2),
     (14, Rounding.HALF_UP, 1), (16, Rounding.HALF_EVEN, 2), (10, Rounding.UP, 1)],
)  # fmt: skip
def test_round_div_examples(numerator: int, mode: Rounding, expected: int) -> None:
    assert round_div(numerator, 10, mode) == expected


@pytest.mark.parametrize(("numerator", "denominator"), [(-1, 10), (1, 0), (1, -3)])
def test_round_div_rejects_negative_and_zero(numerator: int, denominator: int) -> None:
    with pytest.raises(MoneyError):
        round_div(numerator, denominator, Rounding.UP)


def test_quantum() -> None:
    assert [quantum(d) for d in range(7)] == [10**6, 10**5, 10**4, 1000, 100, 10, 1]
    for bad in (-1, 7):
        with pytest.raises(MoneyError):
            quantum(bad)

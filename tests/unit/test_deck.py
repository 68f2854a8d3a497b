"""Rate decks: every bad line reported by number, nothing loaded if any line is bad."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from charging_engine.money import Rounding
from charging_engine.rating import DeckError, Rate, TimeBand, format_deck, parse_deck

HEADER = "prefix,price_per_minute"


def errors_of(text: str) -> list[tuple[int, str]]:
    with pytest.raises(DeckError) as info:
        parse_deck(text)
    return info.value.errors


def lines_of(text: str) -> list[int]:
    return [line for line, _ in errors_of(text)]


def test_full_deck() -> None:
    text = (
        "\ufeffPrefix, Description ,PRICE_PER_MINUTE,connect_fee,min_duration,first_increment,"
        "next_increment,grace_seconds,rounding,decimals,band,band_weekdays,band_start,band_end,"
        "active_from\r\n"
        '44,"UK, fixed",0.0125,0.05,30,30,6,3,HALF_EVEN,2,,,,,\r\n'
        "\r\n"
        "447,UK mobile,0.10,,,,,,,,peak,0-4,08:00,18:00,2026-12-01T00:00:00+01:00\r\n"
        '447,UK mobile night,0.02,,,,,,,,night,"0-4,6",22:00,6:00,\r\n'
    )
    peak = TimeBand("peak", frozenset(range(5)), time(8), time(18))
    night = TimeBand("night", frozenset({0, 1, 2, 3, 4, 6}), time(22), time(6))
    assert parse_deck(text) == [
        Rate("44", 12_500, "UK, fixed", connect_fee=50_000, min_duration=30, first_increment=30,
             next_increment=6, grace_seconds=3, rounding=Rounding.HALF_EVEN, decimals=2),
        Rate("447", 100_000, "UK mobile", band=peak,
             active_from=datetime(2026, 11, 30, 23, tzinfo=UTC)),
        Rate("447", 20_000, "UK mobile night", band=night),
    ]  # fmt: skip


def test_minimal_deck_takes_rate_defaults() -> None:
    assert parse_deck("price_per_minute,prefix\n0.5,1\n2,44\n") == [
        Rate("1", 500_000),
        Rate("44", 2_000_000),
    ]


def test_header_only_and_all_day_band() -> None:
    assert parse_deck(HEADER + "\n") == []
    [r] = parse_deck('prefix,price_per_minute,band,band_weekdays\n44,1,weekend,"5,6"\n')
    assert r.band == TimeBand("weekend", frozenset({5, 6}))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("44a,0.1", "prefix '44a': must be 1-15 digits"),
        ("1234567890123456,0.1", "prefix"),
        ("٤٤,0.1", "prefix"),
        (",0.1", "prefix is required"),
        ("44,", "price_per_minute is required"),
        ("44,1e-3", "price_per_minute '1e-3'"),
        ("44,0.0000001", "at most 6 decimals"),
        ("44,-1", "must not be negative"),
        ("44,0.1,extra", "expected 2 fields, found 3"),
    ],
)
def test_bad_required_cells(row: str, message: str) -> None:
    [(line, text)] = errors_of(f"{HEADER}\n{row}\n")
    assert line == 2
    assert message in text


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("connect_fee", "abc", "connect_fee 'abc'"),
        ("min_duration", "6.5", "min_duration '6.5': must be a whole number"),
        ("grace_seconds", "-1", "grace_seconds '-1'"),
        ("first_increment", "0", "increments must be 1..86400"),
        ("next_increment", "90000", "increments must be 1..86400"),
        ("decimals", "7", "decimals must be 0..6"),
        ("rounding", "ceil", "rounding 'ceil': must be one of up, down, half_up, half_even"),
        ("active_from", "2026-12-01T00:00:00", "needs a UTC offset"),
        ("active_from", "next tuesday", "active_from 'next tuesday': must be ISO 8601"),
        ("band_start", "08:00", "band_start given without a band name"),
    ],
)
def test_bad_optional_cells(column: str, value: str, message: str) -> None:
    [(line, text)] = errors_of(f"{HEADER},{column}\n44,0.1,{value}\n")
    assert line == 2
    assert message in text


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ("peak,7,08:00,18:00", "band_weekdays '7': must be days 0-6"),
        ("peak,4-1,08:00,18:00", "band_weekdays '4-1'"),
        ("peak,mon-fri,08:00,18:00", "band_weekdays 'mon-fri'"),
        ("peak,0-4,25:00,18:00", "band_start '25:00': must be a local time"),
        ("peak,0-4,08:00,8pm", "band_end '8pm'"),
    ],
)
def test_bad_band_cells(cells: str, message: str) -> None:
    header = f"{HEADER},band,band_weekdays,band_start,band_end"
    [(line, text)] = errors_of(f"{header}\n44,0.1,{cells}\n")
    assert line == 2
    assert message in text


def test_every_bad_line_is_reported_and_nothing_is_loaded() -> None:
    text = "\n".join(
        [
            "prefix,price_per_minute,rounding,active_from",  # 1
            "44,0.10,,",  # 2 good
            "x,0.10,up,",  # 3 bad prefix
            "45,zero,sideways,",  # 4 two bad cells
            "",  # 5 blank
            "46,0.10,,2026-13-01T00:00:00+00:00",  # 6 bad date
            "44,0.20,,",  # 7 duplicate of 2
            "47,0.10,up",  # 8 short row
            "48,0.10,,",  # 9 good
        ]
    )
    errors = errors_of(text)
    assert [line for line, _ in errors] == [3, 4, 6, 7, 8]
    assert "price_per_minute 'zero'" in errors[1][1] and "rounding 'sideways'" in errors[1][1]
    assert "duplicate of line 2" in errors[3][1]


def test_duplicates_compare_band_and_activation() -> None:
    header = "prefix,price_per_minute,band,active_from"
    ok = f"{header}\n44,1,,\n44,2,peak,\n44,3,,2026-12-01T00:00:00Z\n44,4,peak,2026-12-01T00:00Z\n"
    assert len(parse_deck(ok)) == 4
    same_instant = f"{header}\n44,3,,2026-12-01T00:00:00Z\n44,4,,2026-12-01T01:00:00+01:00\n"
    [(line, message)] = errors_of(same_instant)
    assert line == 3 and "duplicate of line 2" in message and "prefix 44" in message
    assert lines_of(f"{header}\n44,1,peak,\n45,1,peak,\n44,2,peak,\n") == [4]


def test_line_numbers_count_physical_lines() -> None:
    text = f'{HEADER},description\n44,1,"two\nlines"\n45,bad,\n'
    assert lines_of(text) == [4]


def test_malformed_csv_is_reported() -> None:
    [(line, message)] = errors_of(f'{HEADER}\n44,1\n"45,1\n')
    assert line == 3 and "malformed CSV" in message


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("prefix,price_per_minute,colour", "unknown column 'colour'"),
        ("prefix,description", "missing required column(s): price_per_minute"),
        ("prefix,price_per_minute,PREFIX", "'prefix' appears more than once"),
        ("prefix,,price_per_minute", "column 2 has no name"),
        ("", "missing header line"),
    ],
)
def test_bad_header_is_line_one(header: str, message: str) -> None:
    [(line, text)] = errors_of(f"{header}\n44,1,2\n")
    assert line == 1
    assert message in text


def test_empty_text_is_an_error() -> None:
    assert lines_of("") == [1]


def test_deck_error_message_names_lines() -> None:
    with pytest.raises(DeckError) as info:
        parse_deck(f"{HEADER}\nx,1\n44,1\ny,1\n")
    message = str(info.value)
    assert "line 2:" in message and "line 4:" in message and "2, 4" in message
    assert isinstance(info.value, ValueError)


def test_format_deck_writes_every_column() -> None:
    text = format_deck([Rate("44", 12_500, "UK")])
    assert text.splitlines()[0].split(",")[:3] == ["prefix", "description", "price_per_minute"]
    assert text.splitlines()[1] == "44,UK,0.0125,0.00,0,60,60,0,up,4,,,,,"


def test_format_deck_refuses_what_it_cannot_round_trip() -> None:
    with pytest.raises(ValueError, match="whitespace"):
        format_deck([Rate("44", 1, " padded ")])
    with pytest.raises(ValueError, match="band name"):
        format_deck([Rate("44", 1, band=TimeBand(""))])


names = st.text(st.characters(codec="utf-8"), max_size=12).filter(lambda s: s == s.strip())
bands = st.builds(
    TimeBand,
    name=names.filter(bool),
    weekdays=st.frozensets(st.integers(0, 6), min_size=1),
    start=st.times().map(lambda t: t.replace(microsecond=0)),
    end=st.times().map(lambda t: t.replace(microsecond=0)),
)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
rates = st.builds(
    Rate,
    prefix=st.text("0123456789", min_size=1, max_size=15),
    price_per_minute=st.integers(0, 10**15),
    description=names,
    connect_fee=st.integers(0, 10**15),
    min_duration=st.integers(0, 86_400),
    first_increment=st.integers(1, 86_400),
    next_increment=st.integers(1, 86_400),
    grace_seconds=st.integers(0, 86_400),
    rounding=st.sampled_from(Rounding),
    decimals=st.integers(0, 6),
    band=st.none() | bands,
    active_from=st.none() | st.datetimes(timezones=offsets),
)


def _key(rate: Rate) -> tuple[str, str | None, datetime | None]:
    return (rate.prefix, rate.band.name if rate.band else None, rate.active_from)


@given(st.lists(rates, max_size=8, unique_by=_key))
def test_round_trip(deck: list[Rate]) -> None:
    assert parse_deck(format_deck(deck)) == deck

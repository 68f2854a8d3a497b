"""CSV rate decks: all-or-nothing parsing with every bad line reported, and the inverse writer.

An operator uploading a 50,000-line deck needs the full list of mistakes in one go, and a deck
with any mistake must not half-load: a missing line would rate calls at a shorter prefix.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from datetime import datetime, time
from typing import Any, Final

from charging_engine.money import Rounding, format_amount, parse_amount
from charging_engine.rating.model import Rate, RateError, TimeBand

COLUMNS: Final = (
    "prefix", "description", "price_per_minute", "connect_fee", "min_duration",
    "first_increment", "next_increment", "grace_seconds", "rounding", "decimals",
    "band", "band_weekdays", "band_start", "band_end", "active_from",
)  # fmt: skip
REQUIRED: Final = ("prefix", "price_per_minute")
_INT_COLUMNS: Final = (
    "min_duration", "first_increment", "next_increment", "grace_seconds", "decimals",
)  # fmt: skip
_BAND_DETAIL: Final = ("band_weekdays", "band_start", "band_end")
_PREFIX_RE: Final = re.compile(r"[0-9]{1,15}", re.ASCII)
_INT_RE: Final = re.compile(r"[0-9]{1,6}", re.ASCII)
_DAYS_RE: Final = re.compile(r"([0-6])(?:-([0-6]))?", re.ASCII)
_TIME_RE: Final = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?", re.ASCII)
_ROUNDINGS: Final = ", ".join(m.value for m in Rounding)


class DeckError(ValueError):
    """A rejected deck; ``errors`` holds (1-based line number, message) for every bad line."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__(errors)
        self.errors = list(errors)

    def __str__(self) -> str:
        lines = sorted({n for n, _ in self.errors})
        head = f"rate deck rejected, bad line(s): {', '.join(map(str, lines))}"
        return "\n".join([head, *(f"  line {n}: {msg}" for n, msg in self.errors)])


class _BadRow(ValueError):
    """Every problem found on one row, reported together."""


def parse_deck(text: str) -> list[Rate]:
    """Rates of a CSV deck, in file order; raises DeckError listing every bad line.

    Line numbers are physical lines (a quoted multi-line cell counts each line), header = 1.
    Blank lines are skipped. Two rows with the same prefix, band name and activation instant
    are a duplicate: the tariff could not tell which one applies.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    try:
        header = next(reader, [])
    except csv.Error as exc:
        raise DeckError([(1, f"malformed CSV header: {exc}")]) from None
    columns = _parse_header(header)
    errors: list[tuple[int, str]] = []
    rates: list[Rate] = []
    seen: dict[tuple[str, str | None, datetime | None], int] = {}
    start = reader.line_num + 1
    while True:
        line = start
        try:
            row = next(reader, None)
        except csv.Error as exc:
            errors.append((line, f"malformed CSV: {exc}"))
            break
        if row is None:
            break
        start = reader.line_num + 1
        if not "".join(row).strip():
            continue  # blank lines are layout, not data
        if len(row) != len(columns):
            errors.append((line, f"expected {len(columns)} fields, found {len(row)}"))
            continue
        try:
            rate = _parse_row(dict(zip(columns, row, strict=True)))
        except _BadRow as exc:
            errors.append((line, str(exc)))
            continue
        key = (rate.prefix, rate.band.name if rate.band else None, rate.active_from)
        if key in seen:
            errors.append((line, f"duplicate of line {seen[key]}: {_describe_key(key)}"))
            continue
        seen[key] = line
        rates.append(rate)
    if errors:
        raise DeckError(errors)
    return rates


def format_deck(rates: Iterable[Rate]) -> str:
    """A CSV deck that ``parse_deck`` reads back to equal rates, every column written out."""
    out = io.StringIO()
    # RFC 4180 "\r\n": with a bare "\n" terminator the writer leaves a lone "\r" unquoted.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for rate in rates:
        writer.writerow(_format_row(rate))
    return out.getvalue()


def _parse_header(header: list[str]) -> list[str]:
    """Lower-cased column names, or DeckError on line 1 for unknown/missing/repeated ones."""
    names = [h.strip().lower() for h in header]
    problems: list[str] = []
    if not any(names):
        expected = ", ".join(REQUIRED)
        raise DeckError([(1, f"missing header line; expected at least {expected}")])
    for i, name in enumerate(names, 1):
        if not name:
            problems.append(f"column {i} has no name")
        elif name not in COLUMNS:
            problems.append(f"unknown column {name!r} (known: {', '.join(COLUMNS)})")
        elif name in names[: i - 1]:
            problems.append(f"column {name!r} appears more than once")
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        problems.append(f"missing required column(s): {', '.join(missing)}")
    if problems:
        raise DeckError([(1, "; ".join(problems))])
    return names


def _parse_row(cells: dict[str, str]) -> Rate:
    """One Rate from a row's cells; raises _BadRow naming every bad cell."""
    values = {name: value.strip() for name, value in cells.items()}
    problems: list[str] = []
    kwargs: dict[str, Any] = {}

    def field(name: str, parse: Callable[[str], object]) -> None:
        """Parse a non-empty cell into kwargs; empty cells keep the Rate default."""
        value = values.get(name, "")
        if not value:
            if name in REQUIRED:
                problems.append(f"{name} is required")
            return
        try:
            kwargs[name] = parse(value)
        except ValueError as exc:
            problems.append(f"{name} {value!r}: {exc}")

    field("prefix", _parse_prefix)
    field("description", str)
    field("price_per_minute", parse_amount)
    field("connect_fee", parse_amount)
    for name in _INT_COLUMNS:
        field(name, _parse_int)
    field("rounding", _parse_rounding)
    field("active_from", _parse_active_from)
    band = _parse_band(values, problems)
    if band is not None:
        kwargs["band"] = band
    if problems:
        raise _BadRow("; ".join(problems))
    try:
        return Rate(**kwargs)
    except RateError as exc:
        raise _BadRow(str(exc)) from None


def _parse_prefix(value: str) -> str:
    if not _PREFIX_RE.fullmatch(value):
        raise ValueError("must be 1-15 digits")
    return value


def _parse_int(value: str) -> int:
    if not _INT_RE.fullmatch(value):
        raise ValueError("must be a whole number of at most 6 digits")
    return int(value)


def _parse_rounding(value: str) -> Rounding:
    try:
        return Rounding(value.lower())
    except ValueError:
        raise ValueError(f"must be one of {_ROUNDINGS}") from None


def _parse_active_from(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be ISO 8601 such as 2026-12-01T00:00:00+00:00") from None
    if at.utcoffset() is None:
        raise ValueError("needs a UTC offset such as +00:00")
    return at


def _parse_band(values: dict[str, str], problems: list[str]) -> TimeBand | None:
    """The row's TimeBand, or None; band details without a band name are a mistake."""
    name = values.get("band", "")
    if not name:
        given = [c for c in _BAND_DETAIL if values.get(c)]
        if given:
            problems.append(f"{', '.join(given)} given without a band name")
        return None
    kwargs: dict[str, Any] = {"name": name}
    for column, key, parse in (
        ("band_weekdays", "weekdays", _parse_weekdays),
        ("band_start", "start", _parse_time),
        ("band_end", "end", _parse_time),
    ):
        value = values.get(column, "")
        if value:
            try:
                kwargs[key] = parse(value)
            except ValueError as exc:
                problems.append(f"{column} {value!r}: {exc}")
    try:
        return TimeBand(**kwargs)
    except RateError as exc:
        problems.append(str(exc))
        return None


def _parse_weekdays(value: str) -> frozenset[int]:
    days: set[int] = set()
    for item in value.split(","):
        m = _DAYS_RE.fullmatch(item.strip())
        if m is None or (m.group(2) and m.group(2) < m.group(1)):
            raise ValueError("must be days 0-6 (0=Monday) such as '0-4' or '5,6'")
        first = int(m.group(1))
        days.update(range(first, int(m.group(2) or first) + 1))
    return frozenset(days)


def _parse_time(value: str) -> time:
    m = _TIME_RE.fullmatch(value)
    try:
        if m is None:
            raise ValueError
        return time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
    except ValueError:
        raise ValueError("must be a local time HH:MM (or HH:MM:SS), e.g. 08:00") from None


def _describe_key(key: tuple[str, str | None, datetime | None]) -> str:
    prefix, band, active_from = key
    when = active_from.isoformat() if active_from else "always"
    return f"prefix {prefix}, band {band or '(none)'}, active_from {when}"


def _format_row(rate: Rate) -> list[str]:
    """Cells in COLUMNS order; refuses rates a deck cannot carry rather than altering them."""
    if rate.description != rate.description.strip():
        raise ValueError(f"prefix {rate.prefix}: description has surrounding whitespace")
    band = rate.band
    band_cells = ["", "", "", ""]
    if band is not None:
        if not band.name or band.name != band.name.strip():
            raise ValueError(f"prefix {rate.prefix}: band name {band.name!r} cannot be written")
        band_cells = [band.name, _format_weekdays(band.weekdays),
                      _format_time(band.start), _format_time(band.end)]  # fmt: skip
    return [
        rate.prefix,
        rate.description,
        format_amount(rate.price_per_minute),
        format_amount(rate.connect_fee),
        str(rate.min_duration),
        str(rate.first_increment),
        str(rate.next_increment),
        str(rate.grace_seconds),
        Rounding(rate.rounding).value,
        str(rate.decimals),
        *band_cells,
        rate.active_from.isoformat() if rate.active_from else "",
    ]


def _format_weekdays(days: frozenset[int]) -> str:
    """Compact runs: {0,1,2,3,4,6} -> '0-4,6'."""
    parts: list[str] = []
    for day in sorted(days):
        if day - 1 in days:
            continue
        end = day
        while end + 1 in days:
            end += 1
        parts.append(f"{day}-{end}" if end > day else str(day))
    return ",".join(parts)


def _format_time(t: time) -> str:
    if t.microsecond or t.tzinfo is not None:
        raise ValueError(f"band time {t.isoformat()} cannot be written to a deck")
    return t.strftime("%H:%M:%S" if t.second else "%H:%M")


__all__ = ["COLUMNS", "REQUIRED", "DeckError", "format_deck", "parse_deck"]

"""A tenant's billing settings (``billing_settings``): numbering, finalization, tax rounding,
default bill cycle day, prepaid/postpaid switch timing, locale and what documents show.

A tenant without a row has the defaults (``BillingSettings()``); the first write stores the
whole row. Everything is validated before it is stored: the number pattern by
``billing.numbering``, the locale by babel and a template by the document renderer's own check
(``billing.documents.templating``, when that module is installed).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime
from typing import Any, Final, Literal, get_args

import asyncpg
from babel import Locale, UnknownLocaleError

from billing.catalog.lookups import Conn, with_changes
from billing.errors import InvalidBillingInput
from billing.numbering import NumberPatternError, format_number, validate_pattern

__all__ = [
    "BillingSettings", "Finalization", "KindSwitch", "TaxRounding", "get", "patch", "put",
    "validate",
]

PREFIX: Final = re.compile(r"^[A-Za-z0-9_-]{0,20}$")
Finalization = Literal["auto", "review"]
TaxRounding = Literal["per_line", "per_invoice"]
KindSwitch = Literal["boundary", "now"]
FINALIZATIONS: Final = get_args(Finalization)
TAX_ROUNDINGS: Final = get_args(TaxRounding)
KIND_SWITCHES: Final = get_args(KindSwitch)
MAX_REVIEW_HOURS: Final = 8760
MAX_LINES: Final = 10
TEMPLATES: Final = "billing.documents.templating"


@dataclass(frozen=True, slots=True)
class BillingSettings:
    number_prefix: str = "INV"
    number_pattern: str = "{prefix}-{year}-{seq:06d}"
    finalization: Finalization = "auto"
    review_hours: int = 0
    tax_rounding: TaxRounding = "per_line"
    default_bcd: int | None = None  # None: the day each account was created
    kind_switch: KindSwitch = "boundary"
    locale: str = "en_US"
    seller_name: str = ""
    seller_address: tuple[str, ...] = field(default_factory=tuple)
    seller_tax_ids: tuple[str, ...] = field(default_factory=tuple)
    footer: str = ""
    template_source: str | None = None  # None: the built-in template
    updated_at: datetime | None = None  # None: never stored (these are the defaults)


FIELDS: Final = tuple(f.name for f in fields(BillingSettings) if f.name != "updated_at")


def _choice(value: object, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise InvalidBillingInput(f"{what} must be one of {', '.join(allowed)}")


def _locale(tag: str) -> str:
    """The canonical babel name of ``tag`` ("de-DE" and "de_DE" are "de_DE")."""
    try:
        return str(Locale.parse(tag.replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        raise InvalidBillingInput(f"unknown locale {tag!r}") from None


def _template_check() -> Callable[[str], Any] | None:
    """The renderer's template validation, if the renderer is installed (imported lazily:
    the catalogue must not need the document stack)."""
    try:
        module = importlib.import_module(TEMPLATES)
    except ModuleNotFoundError as exc:
        if exc.name is not None and TEMPLATES.startswith(exc.name):
            return None
        raise
    check: Callable[[str], Any] | None = getattr(module, "validate_template", None)
    return check


def _check_template(source: str) -> None:
    check = _template_check()
    if check is None:
        return
    try:
        check(source)
    except (ValueError, TypeError, LookupError, SyntaxError) as exc:
        raise InvalidBillingInput(f"template_source: {exc}") from None


def validate(s: BillingSettings) -> BillingSettings:
    """``s`` checked, with its locale in canonical form."""
    if not PREFIX.match(s.number_prefix):
        raise InvalidBillingInput("number_prefix is up to 20 letters, digits, '_' or '-'")
    try:
        validate_pattern(s.number_pattern)
        format_number(s.number_pattern, prefix=s.number_prefix, seq=1,
                      issued_on=date(2000, 1, 1))
    except NumberPatternError as exc:
        raise InvalidBillingInput(f"number_pattern: {exc}") from None
    _choice(s.finalization, FINALIZATIONS, "finalization")
    _choice(s.tax_rounding, TAX_ROUNDINGS, "tax_rounding")
    _choice(s.kind_switch, KIND_SWITCHES, "kind_switch")
    if not 0 <= s.review_hours <= MAX_REVIEW_HOURS:
        raise InvalidBillingInput(f"review_hours must be between 0 and {MAX_REVIEW_HOURS}")
    if s.default_bcd is not None and not 1 <= s.default_bcd <= 31:
        raise InvalidBillingInput("default_bcd must be between 1 and 31")
    for name in ("seller_address", "seller_tax_ids"):
        if len(getattr(s, name)) > MAX_LINES:
            raise InvalidBillingInput(f"{name} has at most {MAX_LINES} lines")
    if s.template_source is not None:
        _check_template(s.template_source)
    return replace(s, locale=_locale(s.locale))


def _settings(r: asyncpg.Record) -> BillingSettings:
    values: dict[str, Any] = {name: r[name] for name in FIELDS}
    values["seller_address"] = tuple(r["seller_address"])
    values["seller_tax_ids"] = tuple(r["seller_tax_ids"])
    return BillingSettings(**values, updated_at=r["updated_at"])


async def get(conn: Conn, tenant_id: str, *, lock: bool = False) -> BillingSettings:
    """The tenant's settings (the defaults when it never stored any)."""
    r = await conn.fetchrow(
        "SELECT * FROM billing_settings WHERE tenant_id = $1" + (" FOR UPDATE" if lock else ""),
        tenant_id,
    )
    return BillingSettings() if r is None else _settings(r)


async def _locked(conn: asyncpg.Connection, tenant_id: str) -> BillingSettings:
    """The current settings, row-locked (a row of defaults is made for a tenant without)."""
    created = await conn.fetchval("INSERT INTO billing_settings (tenant_id) VALUES ($1)"
                                  " ON CONFLICT DO NOTHING RETURNING 1", tenant_id)
    current = await get(conn, tenant_id, lock=True)
    return BillingSettings() if created else current


async def _store(
    conn: asyncpg.Connection, tenant_id: str, before: BillingSettings, new: BillingSettings
) -> tuple[BillingSettings, BillingSettings]:
    new = validate(replace(new, updated_at=None))
    if before.updated_at is not None and replace(before, updated_at=None) == new:
        return before, before  # nothing changes: not even the time of the last change
    values = [list(v) if isinstance(v, tuple) else v for v in (getattr(new, n) for n in FIELDS)]
    sets = ", ".join(f"{n} = ${i}" for i, n in enumerate(FIELDS, start=2))
    r = await conn.fetchrow(
        f"UPDATE billing_settings SET {sets}, updated_at = now() WHERE tenant_id = $1"
        " RETURNING *", tenant_id, *values,
    )
    assert r is not None
    return before, _settings(r)


async def put(
    conn: asyncpg.Connection, tenant_id: str, new: BillingSettings
) -> tuple[BillingSettings, BillingSettings]:
    """Store ``new`` whole (call inside a transaction); -> (before, after)."""
    return await _store(conn, tenant_id, await _locked(conn, tenant_id), new)


async def patch(
    conn: asyncpg.Connection, tenant_id: str, changes: Mapping[str, Any]
) -> tuple[BillingSettings, BillingSettings]:
    """Change only the fields named (call inside a transaction); -> (before, after)."""
    before = await _locked(conn, tenant_id)
    new = with_changes(replace(before, updated_at=None), changes, FIELDS)
    return await _store(conn, tenant_id, before, new)

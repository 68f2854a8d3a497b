"""Documents as HTML from one sandboxed Jinja template (the default, or a tenant's own source).

The same HTML is served as the web page and printed by headless Chromium for the PDF, so a
tenant edits one source. Tenant templates are untrusted: they run in Jinja's immutable sandbox with
autoescaping and ``StrictUndefined``, and ``validate_template`` renders them against full sample
documents before they are accepted, so a typo is refused at upload rather than at invoice time.

Money is formatted with Babel from exact Decimals: minor units scaled by the ISO 4217 exponent
(``billing.minor_units.exponent``); call amounts (micros) with two more digits, rounded half-up.
Where CLDR's digits for a currency differ from ISO's (COP, IQD...), the ISO digits are kept.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import (
    NumberPattern,
    format_currency,
    format_decimal,
    format_percent,
    get_currency_precision,
)
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from billing.documents.model import (
    DEFAULT_BRANDING,
    Branding,
    CallRow,
    Document,
)
from billing.documents.samples import sample_document, samples
from billing.minor_units import exponent

__all__ = [
    "CONTEXT_NAMES",
    "DEFAULT_TEMPLATE",
    "TEMPLATES_DIR",
    "TemplateError",
    "format_micros",
    "format_money",
    "render_html",
    "sample_document",
    "validate_template",
]

TEMPLATES_DIR = Path(__file__).with_name("templates")
DEFAULT_TEMPLATE = "document.html.j2"
MAX_SOURCE_CHARS = 200_000
CONTEXT_NAMES = frozenset(("doc", "branding", "logo_uri", "t", "lang", "title", "medium"))
MEDIA = ("html", "pdf")
_INVISIBLE = dict.fromkeys(map(ord, "\u200e\u200f\u061c\u2066\u2067\u2068\u2069"))
_SPACES = dict.fromkeys(map(ord, "\u00a0\u202f\u2009\u2007"), " ")
_COLUMN_MAX = 40
_LABELS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    lang: MappingProxyType(labels)
    for lang, labels in json.loads((TEMPLATES_DIR / "labels.json").read_text("utf-8")).items()
})  # fmt: skip


class TemplateError(ValueError):
    """A template that cannot be used: syntax, unknown name, sandbox violation, failure."""


@lru_cache(maxsize=64)
def _locale(tag: str) -> Locale:
    try:
        return Locale.parse(tag.replace("-", "_"))
    except (ValueError, UnknownLocaleError) as e:
        raise ValueError(f"unknown locale {tag!r}") from e


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=256)
def _pattern(tag: str, digits: int) -> NumberPattern:
    """The locale's currency pattern with exactly ``digits`` fraction digits."""
    pattern: NumberPattern = copy.copy(_locale(tag).currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    return pattern


def _decimal_format(value: Decimal, currency: str, tag: str, digits: int) -> str:
    if get_currency_precision(currency) == digits:
        return format_currency(value, currency, locale=_locale(tag), currency_digits=True)
    text: str = _pattern(tag, digits).apply(value, _locale(tag), currency=currency,
                                            currency_digits=False)  # fmt: skip
    return text


def format_money(minor: int, currency: str, locale: str) -> str:
    """Integer minor units of ``currency`` as the locale writes money ("$1,234.50")."""
    digits = exponent(currency)
    return _decimal_format(Decimal(minor).scaleb(-digits), currency, locale, digits)


def format_micros(micros: int, currency: str, locale: str) -> str:
    """Engine micros with the currency's digits + 2 (a call's price), rounded half-up."""
    digits = min(exponent(currency) + 2, 6)
    value = Decimal(micros).scaleb(-6).quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP)
    return _decimal_format(value, currency, locale, digits)


def _doc(ctx: jinja2.runtime.Context) -> Document:
    doc = ctx.get("doc")
    if not isinstance(doc, Document):
        raise TemplateError("the money and date filters need `doc` in the template context")
    return doc


@jinja2.pass_context
def _money_filter(ctx: jinja2.runtime.Context, minor: int, currency: str | None = None) -> str:
    doc = _doc(ctx)
    return format_money(minor, currency or doc.currency, doc.locale)


@jinja2.pass_context
def _micros_filter(ctx: jinja2.runtime.Context, micros: int, currency: str | None = None) -> str:
    doc = _doc(ctx)
    return format_micros(micros, currency or doc.currency, doc.locale)


@jinja2.pass_context
def _date_filter(ctx: jinja2.runtime.Context, value: date | None, format: str = "medium"
                 ) -> str:  # fmt: skip
    """A date as the locale writes it; None (an unset optional date) is empty, not today."""
    if value is None:
        return ""
    return format_date(value, format=format, locale=_locale(_doc(ctx).locale))


@jinja2.pass_context
def _datetime_filter(ctx: jinja2.runtime.Context, value: datetime | None, format: str = "short"
                     ) -> str:  # fmt: skip
    """An instant in the document's time zone (a naive value is taken as UTC; None empty)."""
    if value is None:
        return ""
    doc = _doc(ctx)
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return format_datetime(aware, format=format, tzinfo=_zone(doc.timezone),
                           locale=_locale(doc.locale))  # fmt: skip


@jinja2.pass_context
def _percent_filter(ctx: jinja2.runtime.Context, rate: Decimal) -> str:
    return format_percent(rate, "#,##0.###%", locale=_locale(_doc(ctx).locale))


@jinja2.pass_context
def _number_filter(ctx: jinja2.runtime.Context, value: Decimal | int) -> str:
    return format_decimal(value, locale=_locale(_doc(ctx).locale), decimal_quantization=False)


def _minutes_filter(seconds: int) -> str:
    """A duration as m:ss, or h:mm:ss from an hour."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _url_filter(url: str | None) -> str:
    """Only http(s) and relative links reach an href: no javascript: or data: URLs."""
    if not url:
        return "#"
    scheme = urlsplit(url).scheme.lower()
    return url if scheme in ("http", "https", "") else "#"


@jinja2.pass_context
def _call_cells_filter(ctx: jinja2.runtime.Context, calls: Iterable[CallRow]
                       ) -> list[tuple[str, str, str, str]]:  # fmt: skip
    """Each call as its formatted (started, destination, duration, amount) cells."""
    return [(_datetime_filter(ctx, c.started_at), c.destination, _minutes_filter(c.seconds),
             _micros_filter(ctx, c.amount_micros)) for c in calls]  # fmt: skip


def _columns_filter(rows: Iterable[Sequence[object]], aligns: str = "l",
                    header: Sequence[object] | None = None, gap: int = 3) -> list[str]:  # fmt: skip
    """Rows as lines of fixed-width columns for a monospaced block (``aligns``: l/r each).

    Bidi marks are dropped and Babel's narrow spaces made plain so every character is one cell
    wide; a cell longer than ``_COLUMN_MAX`` is cut with an ellipsis.
    """
    table = [list(header)] if header is not None else []
    table += [list(row) for row in rows]
    cells = [[_cell(value) for value in row] for row in table]
    count = max((len(row) for row in cells), default=0)
    widths = [max((len(row[i]) for row in cells if i < len(row)), default=0)
              for i in range(count)]  # fmt: skip
    lines = []
    for row in cells:
        parts = []
        for i, cell in enumerate(row):
            right = (aligns[i] if i < len(aligns) else aligns[-1:]) == "r"
            parts.append(cell.rjust(widths[i]) if right else cell.ljust(widths[i]))
        lines.append((" " * gap).join(parts).rstrip())
    return lines


def _cell(value: object) -> str:
    text = " ".join(str(value).translate(_INVISIBLE).translate(_SPACES).split())
    return text if len(text) <= _COLUMN_MAX else text[: _COLUMN_MAX - 1] + "…"


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
        cache_size=-1,
    )
    env.filters.update(
        money=_money_filter, micros=_micros_filter, date=_date_filter,
        datetime=_datetime_filter, percent=_percent_filter, number=_number_filter,
        minutes=_minutes_filter, url=_url_filter, call_cells=_call_cells_filter,
        columns=_columns_filter,
    )  # fmt: skip
    return env


_ENV = _environment()


def logo_uri(branding: Branding) -> str:
    if not branding.logo:
        return ""
    return f"data:{branding.logo_type};base64,{base64.b64encode(branding.logo).decode('ascii')}"


def _context(doc: Document, branding: Branding, medium: str) -> dict[str, Any]:
    loc = _locale(doc.locale)
    labels = _LABELS.get(loc.language, _LABELS["en"])
    title = labels[doc.kind.value]
    if doc.is_draft:
        title = f"{labels['draft']}: {title}"
    lang = loc.language if loc.territory is None else f"{loc.language}-{loc.territory}"
    return {"doc": doc, "branding": branding, "logo_uri": logo_uri(branding), "t": labels,
            "lang": lang, "title": title, "medium": medium}  # fmt: skip


@lru_cache(maxsize=128)
def _compile(source: str) -> jinja2.Template:
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateError(f"template is longer than {MAX_SOURCE_CHARS} characters")
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"syntax error on line {e.lineno}: {e.message}") from e


def _template(source: str | None) -> jinja2.Template:
    if source is None:
        return _ENV.get_template(DEFAULT_TEMPLATE)
    return _compile(source)


def _render(template: jinja2.Template, doc: Document, branding: Branding, medium: str) -> str:
    try:
        return template.render(_context(doc, branding, medium))
    except TemplateError:
        raise
    except jinja2.UndefinedError as e:
        raise TemplateError(f"unknown variable or attribute: {e.message}") from e
    except SecurityError as e:
        raise TemplateError(f"not allowed in a template (sandbox): {e}") from e
    except jinja2.TemplateNotFound as e:
        raise TemplateError(f"unknown template {e.name!r}") from e
    except jinja2.TemplateSyntaxError as e:  # in an included or extended template
        raise TemplateError(f"syntax error on line {e.lineno}: {e.message}") from e


def render_html(doc: Document, branding: Branding = DEFAULT_BRANDING,
                source: str | None = None, *, medium: str = "html") -> str:  # fmt: skip
    """The document's HTML; ``source`` is a tenant's template text (None: the default).

    ``medium`` "pdf" is the HTML the browser prints: the same template, told (as the
    ``medium`` variable) so that it may add print-only touches.
    """
    if medium not in MEDIA:
        raise ValueError(f"medium must be one of {', '.join(MEDIA)}: {medium!r}")
    return _render(_template(source), doc, branding, medium)


def validate_template(source: str) -> None:
    """Refuse ``source`` (``TemplateError``) unless it renders every kind of sample document."""
    if not isinstance(source, str):
        raise TemplateError("template source must be text")
    template = _compile(source)
    try:
        ast = _ENV.parse(source)
        unknown = meta.find_undeclared_variables(ast) - CONTEXT_NAMES - _declared(ast)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"syntax error on line {e.lineno}: {e.message}") from e
    if unknown:
        raise TemplateError(
            f"unknown variable(s) {', '.join(sorted(unknown))}; "
            f"a template can use {', '.join(sorted(CONTEXT_NAMES))}"
        )
    for (doc, branding), medium in itertools.product(samples(), MEDIA):
        try:
            _render(template, doc, branding, medium)
        except TemplateError:
            raise
        except Exception as e:  # a failing filter call, a division by zero...
            raise TemplateError(f"the template fails on a sample document: {e!r}") from e


def _declared(ast: nodes.Template) -> set[str]:
    """Names the template defines itself (macros, top-level sets, imports), seen from blocks."""
    names = {m.name for m in ast.find_all(nodes.Macro)}
    for node in ast.find_all((nodes.Assign, nodes.AssignBlock, nodes.For)):
        if isinstance(node, nodes.Assign | nodes.AssignBlock | nodes.For):
            names |= {n.name for n in (node.target, *node.target.find_all(nodes.Name))
                      if isinstance(n, nodes.Name)}  # fmt: skip
    names |= {i.target for i in ast.find_all(nodes.Import)}
    for f in ast.find_all(nodes.FromImport):
        names |= {n if isinstance(n, str) else n[1] for n in f.names}
    return names

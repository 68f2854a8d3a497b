"""Validate, render and preview notification templates (pure: no I/O).

Tenant templates are untrusted: they run in Jinja's immutable sandbox with ``StrictUndefined``
(an unknown name is an error, never a blank), HTML parts autoescaped, text and SMS parts not. A
notification only shows data, so a template has expressions, the ``FILTERS``, ``{% if %}`` and
one level of ``{% for %}``: no calls, ``{% set %}``, macros, includes or ``_`` names. That keeps
Python's internals and unbounded work out of reach, at upload and at send time alike.

``validate`` refuses a template before it is stored (``TemplateInvalid`` says what is wrong);
``render`` never raises at send time: it falls back to the catalogue's default (strict, then
lenient) and says so (only a caller's bug raises ``NotInCatalog``). Money: Babel, from exact
Decimals of integer minor units (ISO 4217 exponent); micros rounded once, half-up. No floats.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import NumberPattern
from jinja2 import meta, nodes, sandbox
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context

from billing.minor_units import exponent, micros_to_minor
from notifications.sms.encoding import EncodingError, is_gsm7, segment, septet_count, ucs2_units
from notifications.templates.catalog import (
    WEBHOOK_NOTE,
    Channel,
    Event,
    NotInCatalog,
    get_event,
    parts_of,
)

__all__ = ["FILTERS", "MAX_SMS_SEGMENTS", "MAX_SOURCE_BYTES", "Rendered", "TemplateInvalid",
           "format_micros", "format_money", "pick_language", "preview", "render", "validate"]

MAX_SOURCE_BYTES: Final = 20_000
MAX_OUTPUT_CHARS: Final = 100_000
MAX_SMS_SEGMENTS: Final = 10
# A trial render in each: decimal and grouping signs, symbol placement, 0 and 3 decimals.
TRIAL_LOCALES: Final = (("en_US", "USD"), ("de_DE", "EUR"), ("fr_FR", "EUR"),
                        ("ja_JP", "JPY"), ("en_US", "KWD"))  # fmt: skip
_BUILTIN_FILTERS: Final = ("abs", "capitalize", "d", "default", "first", "last", "length",
                           "lower", "string", "striptags", "title", "trim", "truncate", "upper")
FILTERS: Final = frozenset((*_BUILTIN_FILTERS, "money", "micros", "date"))
_REFUSED_TAGS: Final[Mapping[type[nodes.Node], str]] = {
    nodes.Assign: "{% set %}", nodes.AssignBlock: "{% set %}", nodes.With: "{% with %}",
    nodes.Macro: "{% macro %}", nodes.CallBlock: "{% call %}", nodes.Block: "{% block %}",
    nodes.Extends: "{% extends %}", nodes.Include: "{% include %}",
    nodes.Import: "{% import %}", nodes.FromImport: "{% from ... import %}",
}  # fmt: skip
_INTERNAL_ATTRS: Final = frozenset(("mro", *sandbox.UNSAFE_GENERATOR_ATTRIBUTES,
                                    *sandbox.UNSAFE_COROUTINE_ATTRIBUTES,
                                    *sandbox.UNSAFE_ASYNC_GENERATOR_ATTRIBUTES))  # fmt: skip
# Babel's no-break and narrow spaces (12,34 €) would make every such SMS UCS-2.
_SMS_SPACES: Final = dict.fromkeys(map(ord, "\u00a0\u202f\u2009\u2007"), " ")
_FMT: Final = "_fmt"  # the context key of the formatting settings (unreachable by templates)


class TemplateInvalid(ValueError):
    """A template that cannot be stored: syntax, unknown name or filter, sandbox, size."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered part; ``fell_back`` when it is the catalogue's default instead of the source
    asked for (``error`` says why). ``text`` is empty only when even the default failed."""

    text: str
    fell_back: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class _Format:
    locale: Locale
    currency: str


@lru_cache(maxsize=64)
def _locale(tag: str) -> Locale:
    try:
        return Locale.parse(tag.replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError) as e:
        raise ValueError(f"unknown locale {tag!r}") from e


@lru_cache(maxsize=256)
def _pattern(tag: str, digits: int) -> NumberPattern:
    """The locale's currency pattern with exactly the ISO digits (CLDR's differ for some)."""
    pattern: NumberPattern = copy.copy(_locale(tag).currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    return pattern


def format_money(minor: int, currency: str, locale: str) -> str:
    """Integer minor units of ``currency`` as ``locale`` writes money ("$12.34", "12,34 €")."""
    if not isinstance(minor, int) or isinstance(minor, bool):
        raise TypeError(f"money is an integer of minor units, not {type(minor).__name__}")
    digits = exponent(currency)
    value = Decimal(f"{minor}E-{digits}")  # exact: no context rounding
    text: str = _pattern(locale, digits).apply(value, _locale(locale), currency=currency,
                                               currency_digits=False)  # fmt: skip
    return text


def format_micros(micros: int, currency: str, locale: str) -> str:
    """Engine micros as money: rounded once, half-up, to the currency's minor unit."""
    return format_money(micros_to_minor(micros, currency), currency, locale)


def _as_date(value: object) -> date:
    if isinstance(value, date):  # a datetime too: its own calendar day
        return value.date() if isinstance(value, datetime) else value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return datetime.fromisoformat(value).date()
    raise TypeError(f"not a date: {type(value).__name__}")


def _fmt(ctx: Context) -> _Format:
    fmt = ctx.get(_FMT)
    if not isinstance(fmt, _Format):
        raise TypeError("the money, micros and date filters need a locale and currency")
    return fmt


@jinja2.pass_context
def _money_filter(ctx: Context, minor: int | None, currency: str | None = None) -> str:
    """An amount that does not apply (None) is empty."""
    fmt = _fmt(ctx)
    return "" if minor is None else format_money(minor, currency or fmt.currency, str(fmt.locale))


@jinja2.pass_context
def _micros_filter(ctx: Context, micros: int | None, currency: str | None = None) -> str:
    fmt = _fmt(ctx)
    return "" if micros is None else format_micros(micros, currency or fmt.currency,
                                                   str(fmt.locale))  # fmt: skip


@jinja2.pass_context
def _date_filter(ctx: Context, value: date | str | None, format: str = "medium") -> str:
    """A date (or ISO string) as the locale writes it; None (a date that does not apply) empty."""
    if value is None:
        return ""
    return format_date(_as_date(value), format=format, locale=_fmt(ctx).locale)


def _lenient(fn: Any) -> Any:
    """``fn`` for the last-resort render: a value it cannot format is shown as given if text,
    else not at all (never a wrong figure: minor units are not major ones)."""

    @jinja2.pass_context
    def filter_(ctx: Context, value: object, *args: Any) -> str:
        try:
            return str(fn(ctx, value, *args))
        except Exception:
            return value if isinstance(value, str) else ""

    return filter_


class _Sandbox(sandbox.ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, minus calls and the operators that build huge values."""

    intercepted_binops = frozenset(("*", "**", "%"))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        raise SecurityError("a template cannot call functions or methods; use a filter")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("% string formatting is not available; use filters")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (isinstance(seq, str | list | tuple) and isinstance(times, int)
                        and len(seq) * times > MAX_OUTPUT_CHARS):  # fmt: skip
                    raise SecurityError("repetition too large")
        if (operator == "**" and isinstance(left, int) and isinstance(right, int)
                and abs(left) > 1 and abs(left).bit_length() * right > 10_000):  # fmt: skip
            raise SecurityError("power too large")
        return super().call_binop(context, operator, left, right)


@lru_cache(maxsize=4)
def _env(html: bool, strict: bool = True) -> _Sandbox:
    env = _Sandbox(
        autoescape=html,
        undefined=jinja2.StrictUndefined if strict else jinja2.ChainableUndefined,
        auto_reload=False, cache_size=0,
    )  # fmt: skip
    env.globals.clear()  # range, cycler, lipsum...: nothing a notification needs
    ours = {"money": _money_filter, "micros": _micros_filter, "date": _date_filter}
    builtins = {name: env.filters[name] for name in _BUILTIN_FILTERS}
    env.filters.clear()
    env.filters.update(builtins)
    env.filters.update(ours if strict else {k: _lenient(f) for k, f in ours.items()})
    return env


def _syntax(e: jinja2.TemplateSyntaxError) -> str:
    return f"syntax error on line {e.lineno}: {e.message}"


def _explain(e: Exception) -> str:
    if isinstance(e, TemplateInvalid):
        return str(e)
    if isinstance(e, jinja2.TemplateSyntaxError):
        return _syntax(e)
    if isinstance(e, SecurityError):
        return f"not allowed in a template (sandbox): {e}"
    if isinstance(e, jinja2.UndefinedError):
        return f"unknown variable or attribute: {e.message}"
    return f"the template fails: {type(e).__name__}: {e}"


def _lookup(event: str, channel: Channel | str, part: str) -> tuple[Event, Channel]:
    ev = get_event(event)
    parts = parts_of(channel)
    ch = Channel(channel)
    if ch is Channel.WEBHOOK:
        raise NotInCatalog(WEBHOOK_NOTE)
    if ch not in ev.channels:
        raise NotInCatalog(f"{event} has no {ch} messages; it has {', '.join(ev.channels)}")
    if part not in parts:
        raise NotInCatalog(f"a {ch} template has the parts {', '.join(parts)}, not {part!r}")
    return ev, ch


def _check_policy(ast: nodes.Template, env: _Sandbox) -> None:
    for node_type, tag in _REFUSED_TAGS.items():
        if next(ast.find_all(node_type), None) is not None:
            raise TemplateInvalid(f"{tag} is not available in notification templates")
    for f in ast.find_all(nodes.Filter):
        if f.name not in env.filters:
            raise TemplateInvalid(
                f"unknown filter {f.name!r}; filters are {', '.join(sorted(env.filters))}"
            )
    for t in ast.find_all(nodes.Test):
        if t.name not in env.tests:
            raise TemplateInvalid(f"unknown test {t.name!r}")
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        key = node.attr if isinstance(node, nodes.Getattr) else getattr(node, "arg", None)
        name = key.value if isinstance(key, nodes.Const) else key
        if isinstance(name, str) and (name.startswith("_") or name in _INTERNAL_ATTRS):
            raise TemplateInvalid(f"not allowed in a template (sandbox): {name!r} is internal")
    if next(ast.find_all(nodes.Call), None) is not None:
        raise TemplateInvalid("a template cannot call functions or methods; use a filter")
    for loop in ast.find_all(nodes.For):
        if loop.recursive:
            raise TemplateInvalid("recursive loops are not available in notification templates")
        if any(True for _ in loop.find_all(nodes.For)):
            raise TemplateInvalid("loops cannot be nested in notification templates")


@lru_cache(maxsize=256)
def _prepare(event: str, channel: Channel, part: str, source: str) -> jinja2.Template:
    """``source`` compiled, after every check that needs no data (cached: sends reuse it)."""
    size = len(source.encode("utf-8"))
    if size > MAX_SOURCE_BYTES:
        raise TemplateInvalid(f"template is {size} bytes; at most {MAX_SOURCE_BYTES}")
    env = _env(part == "html")  # only email has an HTML part
    try:
        ast = env.parse(source)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateInvalid(_syntax(e)) from e
    _check_policy(ast, env)
    known = get_event(event).variables
    unknown = meta.find_undeclared_variables(ast) - set(known)
    if unknown:
        raise TemplateInvalid(
            f"unknown variable(s) {', '.join(sorted(unknown))}; {event} templates can use "
            f"{', '.join(sorted(known))}"
        )
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as e:  # e.g. TemplateAssertionError
        raise TemplateInvalid(_syntax(e)) from e


def _finish(channel: Channel, part: str, text: str) -> str:
    """A subject on one line (no header injection); an SMS without padding or odd spaces."""
    if channel is Channel.EMAIL and part == "subject":
        return " ".join(text.split())
    if channel is Channel.SMS:
        return text.translate(_SMS_SPACES).strip()
    return text


def _sms_segments(text: str) -> tuple[int, int]:
    """(length, segments) exactly as the SMS channel will send it (``notifications.sms``)."""
    length = septet_count(text) if is_gsm7(text) else ucs2_units(text)
    try:
        return length, len(segment(text))
    except EncodingError:  # more parts than a concatenated message can have
        return length, MAX_SMS_SEGMENTS + 1


def _context(values: Mapping[str, object], locale: Locale, currency: str) -> dict[str, object]:
    return {**values, _FMT: _Format(locale, currency)}


def validate(event: str, channel: Channel | str, part: str, source: str) -> None:
    """Refuse ``source`` (``TemplateInvalid``) unless it renders every sample of ``event`` in
    every trial locale, inside the limits; an SMS body must fit ``MAX_SMS_SEGMENTS``."""
    try:
        ev, ch = _lookup(event, channel, part)
    except NotInCatalog as e:
        raise TemplateInvalid(str(e)) from None
    if not isinstance(source, str):
        raise TemplateInvalid("template source must be text")
    template = _prepare(event, ch, part, source)
    for sample in ev.samples:
        for tag, currency in TRIAL_LOCALES:
            try:
                text = template.render(_context(sample, _locale(tag), currency))
            except Exception as e:  # a sandbox refusal, a failing filter, a division by zero
                raise TemplateInvalid(f"{_explain(e)} (with the sample data, {tag})") from e
            if len(text) > MAX_OUTPUT_CHARS:
                raise TemplateInvalid(f"renders {len(text)} characters; at most {MAX_OUTPUT_CHARS}")
            if not text.strip() and (ch is Channel.SMS or part == "subject"):
                raise TemplateInvalid(f"the {ch} {part} is empty with the sample data ({tag})")
            if ch is Channel.SMS:
                length, segments = _sms_segments(_finish(ch, part, text))
                if segments > MAX_SMS_SEGMENTS:
                    raise TemplateInvalid(
                        f"the SMS is {length} characters with the sample data ({tag}), about "
                        f"{segments} segments; at most {MAX_SMS_SEGMENTS} segments"
                    )


def render(event: str, channel: Channel | str, part: str, source: str | None,
           context: Mapping[str, object], *, locale: str, currency: str) -> Rendered:  # fmt: skip
    """One part of a message; ``source`` None is the catalogue's default.

    Never raises over the template or the data: when ``source`` fails it renders the default
    in the locale's language (else ``en``), then the default leniently (odd values shown plainly,
    missing ones blank); ``error`` says what failed. An unknown locale is replaced by ``en``.
    """
    ev, ch = _lookup(event, channel, part)
    errors: list[str] = []
    try:
        loc = _locale(locale)
    except ValueError as e:
        errors.append(f"{e}; formatted for en")
        loc = _locale("en")
    language = pick_language(ev.languages(ch), str(loc))
    default = ev.default(ch, part, language)
    ctx = _context(context, loc, currency)
    attempts = [(source, True)] if source is not None and source != default else []
    attempts += [(default, True), (default, False)]
    for i, (src, strict) in enumerate(attempts):
        try:
            if strict:
                text = _prepare(event, ch, part, src).render(ctx)
            else:
                text = _env(part == "html", strict=False).from_string(src).render(ctx)
        except Exception as e:
            errors.append(_explain(e))
            continue
        fell_back = i > 0 or not strict or bool(errors)
        return Rendered(_finish(ch, part, text), fell_back, "; ".join(errors) or None)
    return Rendered("", True, "; ".join(errors))


def preview(event: str, channel: Channel | str, part: str, source: str | None, *,
            locale: str, currency: str) -> Rendered:  # fmt: skip
    """``render`` with the event's first sample: what a tenant sees while editing."""
    return render(event, channel, part, source, get_event(event).samples[0], locale=locale,
                  currency=currency)  # fmt: skip


def pick_language(available: Iterable[str], wanted: str | None) -> str:
    """The best of ``available`` for ``wanted`` ("de_CH": de_CH, then de, then any de_*), then
    likewise for ``en``, then the first available."""
    tags = list(dict.fromkeys(available))
    if not tags:
        raise ValueError("no language to pick from")
    norm = {t: t.replace("-", "_").lower() for t in tags}
    for want in [w.replace("-", "_").lower() for w in (wanted, "en") if w]:
        base = want.split("_")[0]
        for found in ([t for t in tags if norm[t] == want], [t for t in tags if norm[t] == base],
                      [t for t in tags if norm[t].split("_")[0] == base]):  # fmt: skip
            if found:
                return found[0]
    return tags[0]

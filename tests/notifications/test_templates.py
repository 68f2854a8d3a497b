"""Notification templates: every default validates and renders; tenant sources are refused on
upload for syntax, unknown names, sandbox escapes and size; send-time rendering falls back
instead of raising; money is exact in every locale (property test, no floats)."""

from __future__ import annotations

from datetime import date

import pytest
from babel.numbers import get_decimal_symbol, get_minus_sign_symbol
from hypothesis import given, settings
from hypothesis import strategies as st

import notifications.templates as templates
from billing.minor_units import exponent
from notifications.templates import (
    EVENTS,
    PARTS,
    Channel,
    NotInCatalog,
    Rendered,
    TemplateInvalid,
    format_micros,
    format_money,
    get_event,
    pick_language,
    preview,
    render,
    validate,
)
from notifications.templates.render import MAX_SMS_SEGMENTS, _sms_segments

LOCALE_OF = {"en": ("en_US", "USD"), "de": ("de_DE", "EUR"), "fr": ("fr_FR", "EUR")}
DEFAULTS = [
    (ev.name, ch, part, lang)
    for ev in EVENTS.values() for ch in ev.channels for lang in ev.languages(ch)
    for part in PARTS[ch]
]  # fmt: skip
REQUIRED = ("invoice.ready", "invoice.reminder", "payment.succeeded", "payment.failed",
            "dunning.step", "account.suspended", "account.restored", "balance.low",
            "balance.exhausted", "balance.expiring", "account.inactivation_pending",
            "topup.confirmed", "collection.receipt", "sms.balance_reply", "sms.help")  # fmt: skip


def test_public_api() -> None:
    assert set(templates.__all__) == {
        "COMMON_VARIABLES", "EVENTS", "FILTERS", "MAX_SMS_SEGMENTS", "MAX_SOURCE_BYTES", "PARTS",
        "WEBHOOK_NOTE", "Channel", "Event", "NotInCatalog", "Rendered", "TemplateInvalid",
        "format_micros", "format_money", "get_event", "parts_of", "pick_language", "preview",
        "render", "validate",
    }  # fmt: skip
    assert all(hasattr(templates, name) for name in templates.__all__)


def test_catalogue_has_every_event_with_sms_in_three_languages() -> None:
    assert set(REQUIRED) == set(EVENTS)
    for ev in EVENTS.values():
        assert set(ev.languages(Channel.SMS)) >= {"en", "de", "fr"}, ev.name
        assert {"customer_name", "account_id", "tenant_name"} <= set(ev.variables)
        assert all(set(ev.variables) == set(sample) for sample in ev.samples), ev.name
        if not ev.name.startswith("sms."):
            assert ev.languages(Channel.EMAIL) == ("en",), ev.name
    assert "JSON" in templates.WEBHOOK_NOTE and PARTS[Channel.WEBHOOK] == ()


@pytest.mark.parametrize(("event", "channel", "part", "lang"), DEFAULTS)
def test_every_default_validates_and_renders_every_sample(event: str, channel: Channel,
                                                          part: str, lang: str) -> None:
    ev = get_event(event)
    source = ev.default(channel, part, lang)
    validate(event, channel, part, source)
    locale, currency = LOCALE_OF[lang]
    for sample in ev.samples:
        out = render(event, channel, part, None, sample, locale=locale, currency=currency)
        assert out == Rendered(out.text, fell_back=False, error=None)
        assert out.text.strip()
        assert "None" not in out.text and "{" not in out.text
        if part == "text":
            assert out.text.endswith("\n\nExample Telecom")
    if channel is Channel.SMS:
        assert _sms_segments(preview(event, channel, part, None, locale=locale,
                                     currency=currency).text)[1] <= 3  # fmt: skip


def test_default_text_reads_as_intended() -> None:
    sample = get_event("invoice.ready").samples[0]
    out = render("invoice.ready", "sms", "body", None, sample, locale="en_US", currency="USD")
    assert out.text == (
        "Example Telecom: your invoice INV-2026-0042 of $123.45 is ready; we will collect it on "
        "or just after Mar 15, 2026. https://pay.example.com/i/INV-2026-0042"
    )
    de = render("invoice.ready", "sms", "body", None, get_event("invoice.ready").samples[1],
                locale="de_DE", currency="EUR")  # fmt: skip
    assert "123,45 €" in de.text and "bitte zahlen Sie bis 15.03.2026" in de.text
    # a language with no default (Spanish) gets English, formatted the Spanish way
    es = render("invoice.ready", "sms", "body", None, sample, locale="es_ES", currency="EUR")
    assert es.text.startswith("Example Telecom: your invoice") and "123,45 €" in es.text
    assert not es.fell_back


def test_unknown_variable_is_refused_with_its_name() -> None:
    with pytest.raises(TemplateInvalid, match="amont"):
        validate("invoice.ready", "sms", "body", "{{ amount_due|money }} {{ amont }}")
    with pytest.raises(TemplateInvalid, match="balance_micros"):  # not a variable of this event
        validate("invoice.ready", "email", "text", "{{ balance_micros|micros }}")


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
    "{{ customer_name.__class__ }}",
    "{{ customer_name['__class__'] }}",
    "{{ account_id['_' ~ '_class__'] }}",  # computed: only the sandbox can see it
    "{{ account_id[('_' ~ '_class__')]['_' ~ '_mro__'] }}",
    "{{ customer_name.upper() }}",
    "{{ '%s' % customer_name }}",
    "{{ 'x' * 1000000 }}",
    "{{ 10 ** 100000 }}",
    "{% set x = customer_name %}{{ x }}",
    "{% macro m() %}{% endmacro %}",
    "{% include 'other' %}",
    "{% for a in customer_name %}{% for b in customer_name %}{% endfor %}{% endfor %}",
])  # fmt: skip
def test_sandbox_escapes_and_unbounded_constructs_are_refused(source: str) -> None:
    with pytest.raises(TemplateInvalid):
        validate("invoice.ready", "email", "html", source)


def test_a_computed_internal_name_is_refused_by_the_sandbox_on_the_trial_render() -> None:
    with pytest.raises(TemplateInvalid, match="sandbox"):
        validate("invoice.ready", "sms", "body", "{{ account_id['_' ~ '_class__'] }}")


def test_syntax_error_unknown_filter_and_size_are_refused() -> None:
    with pytest.raises(TemplateInvalid, match="syntax error on line 2"):
        validate("invoice.ready", "sms", "body", "Hello\n{{ amount_due|money }")
    with pytest.raises(TemplateInvalid, match="unknown filter 'shout'"):
        validate("invoice.ready", "sms", "body", "{{ amount_due|shout }}")
    with pytest.raises(TemplateInvalid, match="bytes"):
        validate("invoice.ready", "email", "text", "x" * 20_001)
    too_long = "{{ customer_name }} " * 200  # ~2,600 characters of sample data
    with pytest.raises(TemplateInvalid, match=r"2599 characters .* 17 segments"):
        validate("invoice.ready", "sms", "body", too_long)
    validate("invoice.ready", "email", "text", too_long)  # only SMS has a segment limit
    assert MAX_SMS_SEGMENTS == 10


def test_unknown_event_channel_part_and_webhook_templates_are_refused() -> None:
    with pytest.raises(TemplateInvalid, match="unknown event"):
        validate("invoice.eaten", "sms", "body", "x")
    with pytest.raises(TemplateInvalid, match="unknown channel"):
        validate("invoice.ready", "fax", "body", "x")
    with pytest.raises(TemplateInvalid, match="JSON"):
        validate("invoice.ready", "webhook", "body", "x")
    with pytest.raises(TemplateInvalid, match="subject, text, html"):
        validate("invoice.ready", "email", "body", "x")
    with pytest.raises(TemplateInvalid, match="no email"):
        validate("sms.help", "email", "text", "x")
    with pytest.raises(NotInCatalog):  # at send time that is the caller's bug, not data
        render("invoice.ready", "webhook", "body", None, {}, locale="en_US", currency="USD")


def test_html_is_escaped_and_text_and_sms_are_not() -> None:
    sample = {**get_event("invoice.ready").samples[0], "customer_name": "<script>x</script>"}
    html = render("invoice.ready", "email", "html", None, sample, locale="en", currency="USD")
    assert "&lt;script&gt;x&lt;/script&gt;" in html.text and "<script>" not in html.text
    text = render("invoice.ready", "email", "text", None, sample, locale="en", currency="USD")
    assert "Hello <script>x</script>," in text.text
    sms = render("invoice.ready", "sms", "body", "Hi {{ customer_name }}", sample, locale="en",
                 currency="USD")  # fmt: skip
    assert sms == Rendered("Hi <script>x</script>", False, None)


def test_subject_stays_on_one_line_and_sms_gets_plain_spaces() -> None:
    sample = {**get_event("invoice.ready").samples[0], "invoice_number": "A\r\nBcc: x@y"}
    out = render("invoice.ready", "email", "subject", None, sample, locale="en", currency="USD")
    assert out.text == "Your invoice A Bcc: x@y is ready"
    sms = render("invoice.ready", "sms", "body", " {{ amount_due|money }} \n", sample,
                 locale="fr_FR", currency="EUR")  # fmt: skip
    assert sms.text == "123,45 €"  # no-break spaces made plain, padding trimmed


def test_send_time_failure_falls_back_to_the_default_and_says_so() -> None:
    ev = get_event("invoice.reminder")
    source = "Pay {{ (amount_due // days_before_due)|money }} a day"
    validate(ev.name, "sms", "body", source)  # fine with the sample data...
    odd = {**ev.samples[0], "days_before_due": 0}  # ...but not with this
    out = render(ev.name, "sms", "body", source, odd, locale="de_DE", currency="EUR")
    assert out.fell_back and out.error is not None and "ZeroDivisionError" in out.error
    assert out.text.startswith("Example Telecom: Erinnerung: Rechnung INV-2026-0042")
    # data the default cannot take either: the lenient default still says something
    odder = {**ev.samples[0], "amount_due": "12.34", "due_date": "someday"}
    out = render(ev.name, "sms", "body", source, odder, locale="en_US", currency="USD")
    assert out.fell_back and out.error is not None
    assert "12.34" in out.text and "someday" in out.text and "INV-2026-0042" in out.text
    # a missing variable, an unknown locale: still a message
    missing = {k: v for k, v in ev.samples[0].items() if k != "pay_url"}
    out = render(ev.name, "sms", "body", None, missing, locale="xx_YY", currency="USD")
    assert out.fell_back and out.error is not None and "xx_YY" in out.error
    assert "INV-2026-0042" in out.text and "pay_url" not in out.text
    # a stored template that no longer validates is not sent as is
    out = render(ev.name, "sms", "body", "{{ ''.__class__ }}", ev.samples[0], locale="en_US",
                 currency="USD")  # fmt: skip
    assert out.fell_back and "internal" in (out.error or "")


def test_preview_uses_the_sample_and_reports_a_broken_source() -> None:
    out = preview("balance.low", "sms", "body", "Left: {{ balance_micros|micros }}",
                  locale="en_US", currency="USD")  # fmt: skip
    assert out == Rendered("Left: $1.25", False, None)
    bad = preview("balance.low", "sms", "body", "{{ nope }}", locale="en_US", currency="USD")
    assert bad.fell_back and "nope" in (bad.error or "") and bad.text.startswith("Example")


def test_filters_money_micros_date() -> None:
    sample = {**get_event("balance.expiring").samples[0], "expiring_micros": 1_234_567,
              "expiry_date": "2026-03-31"}  # an ISO string, as in the event JSON
    source = "{{ expiring_micros|micros }} {{ expiry_date|date }} {{ expiry_date|date('long') }}"
    out = render("balance.expiring", "email", "text", source, sample, locale="en_US",
                 currency="USD")  # fmt: skip
    assert out.text == "$1.23 Mar 31, 2026 March 31, 2026"
    out = render("balance.expiring", "email", "text", source, sample, locale="de_DE",
                 currency="EUR")  # fmt: skip
    assert out.text == "1,23\xa0€ 31.03.2026 31. März 2026"
    assert format_micros(1_235_000, "USD", "en_US") == "$1.24"  # half-up, once
    assert format_micros(-1_235_000, "USD", "en_US") == "-$1.24"


def test_babel_money_per_locale() -> None:
    assert format_money(1234, "USD", "en_US") == "$12.34"
    assert format_money(1234, "EUR", "de_DE") == "12,34\xa0€"
    assert format_money(123456, "JPY", "ja_JP") == "￥123,456"  # no decimals
    assert format_money(123456789, "INR", "en_IN") == "₹12,34,567.89"  # lakh grouping
    assert format_money(1234567, "KWD", "en_US") == "KWD1,234.567"
    assert format_money(-600, "USD", "en_US") == "-$6.00"
    with pytest.raises(TypeError):
        format_money(12.34, "USD", "en_US")  # type: ignore[arg-type]


def test_pick_language() -> None:
    assert pick_language(["en", "de", "fr"], "de_CH") == "de"
    assert pick_language(["en", "de_CH", "de"], "de-CH") == "de_CH"
    assert pick_language(["en", "de_AT"], "de_DE") == "de_AT"
    assert pick_language(["en", "de"], "es_ES") == "en"
    assert pick_language(["fr", "en_GB"], None) == "en_GB"
    assert pick_language(["fr", "de"], "es") == "fr"
    with pytest.raises(ValueError):
        pick_language([], "en")


LOCALES = ("en_US", "de_DE", "fr_FR", "de_CH", "en_IN", "ja_JP", "pt_BR", "sv_SE")
CURRENCIES = ("JPY", "KRW", "USD", "EUR", "INR", "KWD", "BHD", "IQD")  # exponents 0, 2, 3


@settings(max_examples=300, deadline=None)
@given(st.integers(-(10**15), 10**15), st.sampled_from(CURRENCIES), st.sampled_from(LOCALES))
def test_money_filter_gives_back_exactly_the_minor_units(minor: int, currency: str,
                                                          locale: str) -> None:
    sample = {**get_event("payment.succeeded").samples[0], "amount": minor}
    out = render("payment.succeeded", "email", "text", "{{ amount|money }}", sample,
                 locale=locale, currency=currency)  # fmt: skip
    assert not out.fell_back, out.error
    decimal_sign = get_decimal_symbol(locale)
    negative = get_minus_sign_symbol(locale) in out.text or "-" in out.text
    kept = "".join(c for c in out.text if c.isdigit() or c == decimal_sign)
    whole, _, frac = kept.partition(decimal_sign)
    assert len(frac) == exponent(currency)  # ISO digits, even where CLDR's differ (IQD)
    value = int(whole + frac)  # integers only: no float between the amount and its text
    assert (-value if negative else value) == minor


def test_dates_accept_date_and_iso_datetime() -> None:
    sample = {**get_event("collection.receipt").samples[0],
              "received_on": "2026-03-10T09:30:00+01:00"}  # fmt: skip
    out = render("collection.receipt", "sms", "body", "{{ received_on|date }}", sample,
                 locale="fr_FR", currency="EUR")  # fmt: skip
    assert out.text == "10 mars 2026"
    assert get_event("collection.receipt").samples[0]["received_on"] == date(2026, 3, 10)


def test_empty_sms_or_subject_is_refused_and_an_odd_currency_still_sends() -> None:
    with pytest.raises(TemplateInvalid, match="empty"):
        validate("sms.help", "sms", "body", "{% if false %}x{% endif %}  ")
    with pytest.raises(TemplateInvalid, match="empty"):
        validate("balance.low", "email", "subject", " ")
    sample = get_event("balance.low").samples[0]
    out = render("balance.low", "sms", "body", None, sample, locale="en_US", currency="XAU")
    assert out.fell_back and "XAU" in (out.error or "")
    assert out.text == "Example Telecom: your balance is low:  left. Top up: " \
        "https://pay.example.com/t/acc-1001"  # no amount rather than a wrong one


ODD = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
                st.dates(), st.lists(st.integers(), max_size=3), st.just(object()))  # fmt: skip
NAMES = sorted({name for ev in EVENTS.values() for name in ev.variables})


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(DEFAULTS), st.dictionaries(st.sampled_from(NAMES), ODD, max_size=4),
       st.sampled_from(("en_US", "de_DE", "fr", "xx", "")),
       st.sampled_from(("USD", "JPY", "KWD", "XAU", "usd", "")),
       st.sampled_from((None, "{{ customer_name|upper }} {{ tenant_name|truncate(5) }}")))
def test_render_never_raises_at_send_time(default: tuple[str, Channel, str, str],
                                          odd: dict[str, object], locale: str, currency: str,
                                          source: str | None) -> None:  # fmt: skip
    event, channel, part, _ = default
    context = {**get_event(event).samples[0], **odd}
    out = render(event, channel, part, source, context, locale=locale, currency=currency)
    assert isinstance(out.text, str)
    assert out.fell_back == (out.error is not None)

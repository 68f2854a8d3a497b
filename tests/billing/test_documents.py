"""Invoice and receipt documents: the HTML page and the PDF from one sandboxed template.

PDFs are printed by a real headless Chromium after the template ran in real worker processes
(``PdfRenderer``), and read back with pypdf: the figures, the order of the page (summary
before the lines), the draft marker, the appendix note and its link. Tenant templates are
checked against the sandbox; money and durations have property tests against independent
models.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import signal
import struct
import time
import zlib
from collections.abc import AsyncIterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import pypdf
import pytest
from babel.dates import format_date
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf.generic import DictionaryObject

from billing.documents import (
    Branding,
    BrowserGone,
    CallRow,
    ChromiumMissing,
    DocLine,
    DocTax,
    Document,
    DocumentKind,
    Party,
    PdfRenderer,
    TemplateError,
    calls_csv,
    format_micros,
    format_money,
    render_html,
    render_pdf_sync,
    sample_document,
    validate_template,
)
from billing.documents.templating import DEFAULT_TEMPLATE, TEMPLATES_DIR
from billing.minor_units import exponent, half_up

fast = settings(max_examples=200, deadline=None)
KINDS = (DocumentKind.INVOICE, DocumentKind.RECEIPT)
CURRENCIES = ("USD", "JPY", "KWD")
LOCALES = ("en_US", "de_DE")
CASES = [(k, c, loc) for k in KINDS for c in CURRENCIES for loc in LOCALES]
CSV_URL = "https://billing.example.com/inv/1001/calls.csv"
TITLES = {(DocumentKind.INVOICE, "en_US"): "Invoice INV-1001",
          (DocumentKind.INVOICE, "de_DE"): "Rechnung INV-1001",
          (DocumentKind.RECEIPT, "en_US"): "Receipt INV-1001",
          (DocumentKind.RECEIPT, "de_DE"): "Quittung INV-1001"}  # fmt: skip
TENANT_SOURCE = """<!DOCTYPE html><html lang="{{ lang }}"><head><meta charset="utf-8">
<title>{{ title }}</title><style>body { font-family: sans-serif; }</style></head><body>
<h1>{{ doc.seller.name }} – {{ title }}</h1>
<p>Pay {{ doc.amount_due|money }} by {{ doc.due_on|date }}</p>
{% for line in doc.lines %}<p>{{ line.description }}: {{ line.amount|money }}</p>{% endfor %}
</body></html>"""


def png_pixel() -> bytes:
    """A valid 1x1 red PNG, built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(
        b"IEND", b"")


def calls(n: int) -> tuple[CallRow, ...]:
    start = datetime(2026, 5, 3, 7, 30, tzinfo=UTC)
    return tuple(CallRow(start + timedelta(minutes=97 * i), f"+49 30 1234 {i:04d}", 17 + 61 * i,
                         23_456 * (i + 1)) for i in range(n))  # fmt: skip


def make_doc(kind: DocumentKind = DocumentKind.INVOICE, currency: str = "USD",
             locale: str = "en_US", *, number: str | None = "INV-1001",
             buyer: str = "Acme Widgets plc", lines: int = 3, n_calls: int = 0,
             calls_total: int = 0, csv_url: str | None = None) -> Document:  # fmt: skip
    base = [
        DocLine("Business line, monthly fee", 12_345, Decimal(1), "month", "1–31 May 2026"),
        DocLine("Calls to mobiles", 2_500, Decimal("120.5"), "min"),
        DocLine("Loyalty discount", -300),
    ]
    doc_lines = tuple(base[i % 3] if i < 3 else replace(base[1], description=f"Extra {i}")
                      for i in range(lines))  # fmt: skip
    subtotal = sum(line.amount for line in doc_lines)
    tax = (subtotal * 10 + 50) // 100
    return Document(
        kind=kind, number=number, issued_on=date(2026, 6, 1), currency=currency,
        locale=locale, timezone="Europe/Berlin",
        seller=Party("Example Telecom GmbH", ("Hauptstraße 1", "10115 Berlin"), ("DE123456789",)),
        buyer=Party(buyer, ("Unit 4, Riverside Park", "Leeds LS1 4AP"), (), "ap@acme.example"),
        account_id="ACC-42", lines=doc_lines,
        taxes=(DocTax("VAT", Decimal("0.10"), subtotal, tax, inclusive=False),),
        subtotal=subtotal, tax_total=tax, total=subtotal + tax, amount_due=subtotal + tax,
        period_start=date(2026, 5, 1), period_end=date(2026, 6, 1),
        due_on=date(2026, 6, 15) if kind is DocumentKind.INVOICE else None,
        payment_text="Direct debit on or just after 15 June" if kind is DocumentKind.INVOICE
        else "Card ending 4242",
        calls=calls(n_calls), calls_total=calls_total, calls_csv_url=csv_url,
    )  # fmt: skip


def norm(text: str) -> str:
    """Extracted or formatted text with the locale's no-break spaces made plain, runs collapsed."""
    return " ".join(text.replace("\xa0", " ").replace("\u202f", " ").split())


def pdf_text(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return norm("\n".join(page.extract_text() for page in reader.pages))


def pdf_images(pdf: bytes) -> int:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    count = 0
    for page in reader.pages:
        resources = cast(DictionaryObject, page["/Resources"].get_object())
        xobjects = resources.get("/XObject")
        if xobjects is not None:
            count += sum(1 for x in xobjects.get_object().values()
                         if x.get_object()["/Subtype"] == "/Image")  # fmt: skip
    return count


def pdf_links(pdf: bytes) -> list[str]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return [a.get_object()["/A"]["/URI"] for page in reader.pages
            for a in page.get("/Annots", []) if "/A" in a.get_object()]  # fmt: skip


@pytest.fixture(scope="module")
async def renderer() -> AsyncIterator[PdfRenderer]:
    async with PdfRenderer(tabs=2) as pool:
        yield pool


@pytest.fixture(scope="module")
async def case_pdfs(renderer: PdfRenderer) -> dict[tuple[DocumentKind, str, str], bytes]:
    """One PDF per (kind, currency, locale), rendered in one batch."""
    pdfs = await renderer.render_many([make_doc(*case) for case in CASES])
    return dict(zip(CASES, pdfs, strict=True))


# --- HTML and PDF content ----------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "currency", "locale"), CASES)
async def test_pdf_shows_summary_before_the_lines(
    case_pdfs: dict[tuple[DocumentKind, str, str], bytes], kind: DocumentKind, currency: str,
    locale: str,
) -> None:  # fmt: skip
    doc = make_doc(kind, currency, locale)
    text = pdf_text(case_pdfs[kind, currency, locale])
    total = norm(format_money(doc.total, currency, locale))
    when = format_date(doc.due_on or doc.issued_on, "medium", locale=locale)
    first_line = doc.lines[0].description
    for needle in (total, when, "INV-1001", first_line, norm(format_money(12_345, currency,
                                                                          locale))):  # fmt: skip
        assert needle in text
    assert text.index(total) < text.index(first_line)
    assert text.index(when) < text.index(first_line)
    assert TITLES[kind, locale] in text


@pytest.mark.parametrize(("kind", "currency", "locale"), CASES)
def test_html_shows_the_same_figures(kind: DocumentKind, currency: str, locale: str) -> None:
    doc = make_doc(kind, currency, locale)
    html = render_html(doc)
    assert norm(format_money(doc.total, currency, locale)) in norm(html)
    assert f'<html lang="{locale.replace("_", "-")}">' in html
    assert "http" not in html  # the default template links and loads nothing
    assert html.index("summary-title") < html.index("lines-title")


def test_money_formats_iso_digits_in_each_locale() -> None:
    assert format_money(123456, "USD", "en_US") == "$1,234.56"
    assert format_money(123456, "USD", "de_DE") == "1.234,56\xa0$"
    assert format_money(123456, "JPY", "en_US") == "¥123,456"
    assert format_money(123456, "JPY", "de_DE") == "123.456\xa0¥"
    assert format_money(1234567, "KWD", "en_US") == "KWD1,234.567"
    assert format_money(-600, "USD", "en_US") == "-$6.00"
    # CLDR shows COP without cents; the amount is in ISO minor units (2), so they are kept
    assert format_money(123456, "COP", "es_CO").endswith("1.234,56")


def test_call_amounts_get_two_more_digits_rounded_half_up() -> None:
    assert format_micros(123456, "USD", "en_US") == "$0.1235"
    assert format_micros(50, "USD", "en_US") == "$0.0001"  # a tie: half-up, not half-even
    assert format_micros(-50, "USD", "en_US") == "-$0.0001"
    assert format_micros(1234567, "JPY", "en_US") == "¥1.23"
    assert format_micros(1234567, "KWD", "en_US") == "KWD1.23457"


@fast
@given(st.integers(-(10**12), 10**12), st.sampled_from(("USD", "JPY", "KWD", "EUR", "CLF")))
def test_money_text_has_exactly_the_minor_units(minor: int, currency: str) -> None:
    text = format_money(minor, currency, "en_US")
    digits = re.sub(r"\D", "", text)
    assert int(digits) == abs(minor)
    assert text.startswith("-") == (minor < 0)
    fraction = text.rsplit(".", 1)[1] if "." in text else ""
    assert len(fraction) == exponent(currency)


@fast
@given(st.integers(-(10**12), 10**12), st.sampled_from(("USD", "JPY", "KWD")))
def test_call_amount_is_micros_rounded_once(micros: int, currency: str) -> None:
    digits = exponent(currency) + 2
    expected = half_up(Fraction(micros, 10 ** (6 - digits)))
    text = format_micros(micros, currency, "en_US")
    assert int(re.sub(r"\D", "", text)) == abs(expected)
    assert len(text.rsplit(".", 1)[1]) == digits


@fast
@given(st.integers(0, 10**6))
def test_minutes_filter_reads_back(seconds: int) -> None:
    doc = make_doc(n_calls=1)
    call = replace(doc.calls[0], seconds=seconds)
    html = render_html(replace(doc, calls=(call,)))
    shown = re.search(r'<td class="num">(\d+(?::\d\d){1,2})</td>', html)
    assert shown is not None
    parts = [int(p) for p in shown.group(1).split(":")]
    assert sum(p * 60**i for i, p in enumerate(reversed(parts))) == seconds
    assert len(parts) == (3 if seconds >= 3600 else 2)


def test_period_end_is_exclusive_and_dates_follow_the_locale() -> None:
    html = render_html(make_doc(locale="de_DE"))
    assert "01.05.2026 – 31.05.2026" in html
    assert "Fällig am: <strong>15.06.2026</strong>" in html
    with pytest.raises(ValueError, match="exclusive"):
        replace(make_doc(), period_end=date(2026, 5, 1))


async def test_draft_says_draft(renderer: PdfRenderer) -> None:
    doc = make_doc(number=None)
    html = render_html(doc)
    assert "DRAFT" in html and "INV-1001" not in html
    text = pdf_text(await renderer.render(doc))
    assert "DRAFT" in text and "Preview only" in text


async def test_appendix_truncation_links_the_csv(renderer: PdfRenderer) -> None:
    doc = make_doc(n_calls=20, calls_total=57, csv_url=CSV_URL)
    html = render_html(doc)
    assert "Showing 20 of 57 calls." in html
    assert f'<a href="{CSV_URL}">' in html
    assert html.count("+49 30 1234 ") == 20
    pdf = await renderer.render(doc)
    text = pdf_text(pdf)
    assert "Showing 20 of 57 calls." in text and "+49 30 1234 0019" in text
    assert CSV_URL in pdf_links(pdf)
    assert len(pypdf.PdfReader(io.BytesIO(pdf)).pages) == 1
    only_csv = render_html(make_doc(calls_total=5, csv_url=CSV_URL))
    assert "available as a CSV file" in only_csv and f'<a href="{CSV_URL}">' in only_csv


def test_complete_appendix_has_no_note() -> None:
    html = render_html(make_doc(n_calls=3, calls_total=3, csv_url=CSV_URL))
    assert "Showing" not in html and CSV_URL not in html


def test_only_web_links_reach_an_href() -> None:
    with pytest.raises(ValueError, match="calls_csv_url"):
        make_doc(calls_total=9, csv_url="javascript:alert(1)")
    assert render_html(make_doc(calls_total=9, csv_url="/inv/1/calls.csv")).count(
        'href="/inv/1/calls.csv"') == 1
    source = '<a href="{{ doc.notes|url }}">x</a>'  # a tenant template linking other text
    html = render_html(replace(make_doc(), notes="javascript:alert(1)"), source=source)
    assert html == '<a href="#">x</a>'


def test_customer_text_is_escaped() -> None:
    evil = "<script>alert('x')</script> & Co"
    html = render_html(make_doc(buyer=evil))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in html
    tenant = render_html(make_doc(buyer=evil), source="<p>{{ doc.buyer.name }}</p>")
    assert tenant == "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co</p>"


def test_branding_is_validated_and_the_logo_embedded() -> None:
    for accent in ("red", "#12345", "#1f4e79; background: url(x)"):
        with pytest.raises(ValueError, match="accent"):
            Branding(accent=accent)
    with pytest.raises(ValueError, match="logo_type"):
        Branding(logo=b"x", logo_type="text/html")
    html = render_html(make_doc(), Branding(logo=png_pixel(), accent="#a00", footer="Reg. 123"))
    assert 'src="data:image/png;base64,iVBORw0KGgo' in html
    assert "color: #a00" in html and "Reg. 123" in html


def test_documents_refuse_wrong_amounts_and_currencies() -> None:
    with pytest.raises(TypeError):
        DocLine("x", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no minor unit"):
        replace(make_doc(), currency="XAU")


# --- templates -------------------------------------------------------------------------------


def test_default_template_validates() -> None:
    validate_template((TEMPLATES_DIR / DEFAULT_TEMPLATE).read_text("utf-8"))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{% if doc.total %}unclosed", "syntax error on line 1"),
        ("{{ doc.total | nosuchfilter }}", "syntax error"),
        ("{{ customer_name }}", "unknown variable"),
        ("{% if false %}{{ never_rendered }}{% endif %}", "unknown variable"),
        ("{{ doc.totl }}", "unknown variable or attribute"),
        ("{{ doc.buyer.phone }}", "unknown variable or attribute"),
        ("{{ ''.__class__ }}", "sandbox"),
        ("{{ doc.__class__.__mro__ }}", "sandbox"),
        ("{{ cycler.__init__.__globals__ }}", "sandbox"),
        ("{{ [1].append(2) }}", "sandbox"),
        ("{{ doc.total|money('XAU') }}", "fails on a sample"),
        ('{% include "nope.html" %}', "unknown template"),
        ('{% include "../model.py" %}', "unknown template"),
    ],
)
def test_validate_template_refuses(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)):
        validate_template(source)


def test_rendering_a_broken_tenant_template_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="sandbox"):
        render_html(make_doc(), source="{{ ''.__class__.__base__.__subclasses__() }}")


async def test_tenant_template_renders_html_and_pdf(renderer: PdfRenderer) -> None:
    validate_template(TENANT_SOURCE)
    doc = make_doc()
    html = render_html(doc, source=TENANT_SOURCE)
    assert "Pay $160.00 by Jun 15, 2026" in html
    text = pdf_text(await renderer.render(doc, source=TENANT_SOURCE))
    assert "Pay $160.00 by Jun 15, 2026" in text and "Loyalty discount: -$3.00" in text


def test_tenant_template_can_extend_the_default() -> None:
    source = ('{% extends "document.html.j2" %}{% block footer %}'
              "<footer>Custom footer for {{ doc.account_id }}</footer>{% endblock %}")  # fmt: skip
    validate_template(source)
    html = render_html(make_doc(), source=source)
    assert "Custom footer for ACC-42" in html and "summary-title" in html


async def test_worker_errors_reach_the_caller(renderer: PdfRenderer) -> None:
    with pytest.raises(TemplateError, match="unknown variable"):
        await renderer.render(make_doc(), source="{{ nope }}")


async def test_pdf_fetches_nothing_but_data_urls(renderer: PdfRenderer, tmp_path: Path) -> None:
    image = tmp_path / "secret.png"
    image.write_bytes(png_pixel())
    local = (f'<p>x</p><img src="file://{image}" alt=""><img src="http://127.0.0.1:9/x.png" alt="">'
             f'<iframe src="file://{image}"></iframe><link rel="stylesheet" href="http://127.0.0.1:9/a.css">'
             '<script>document.body.textContent = "SCRIPT RAN"</script>')
    moving = f'<meta http-equiv="refresh" content="0;url=file://{image}"><p>STAYED</p>'
    fetched, logo, moved = await renderer.render_many([
        (make_doc(), Branding(), local),
        (make_doc(), Branding(logo=png_pixel()), "<p>x</p><img src='{{ logo_uri }}' alt=''>"),
        (make_doc(), Branding(), moving),
    ])  # fmt: skip
    assert pdf_images(fetched) == 0 and "SCRIPT RAN" not in pdf_text(fetched)
    assert "STAYED" in pdf_text(moved)
    assert pdf_images(logo) == 1  # the control: the same image as a data: URL shows up


async def test_characters_of_many_scripts_reach_the_pdf(renderer: PdfRenderer) -> None:
    name = "Ĳsselmeer Ωμέγα Жук Հայաստան ტექსტი"  # Armenian, Georgian: DejaVu Sans only
    text = pdf_text(await renderer.render(make_doc(buyer=name)))
    assert name in text


async def test_consecutive_documents_keep_their_own_glyphs(renderer: PdfRenderer) -> None:
    first, second = await renderer.render_many([
        (make_doc(buyer="Zzyzx Qwerty"), Branding(), None),
        (make_doc(buyer="Ümlaut Ørsted Çedille"), Branding(), None),
    ])  # fmt: skip
    assert "Zzyzx Qwerty" in pdf_text(first)
    assert "Ümlaut Ørsted Çedille" in pdf_text(second)


def test_render_pdf_sync_in_process() -> None:
    text = pdf_text(render_pdf_sync(make_doc(DocumentKind.RECEIPT, "KWD", "de_DE", number=None)))
    assert "ENTWURF" in text and "16,000 KWD" in text


# --- the event loop --------------------------------------------------------------------------


async def _loop_gaps(work: asyncio.Future[bytes] | None, blocking: bool = False) -> tuple[
        float, float, int]:  # fmt: skip
    """(seconds the work took, longest gap between ticks of another coroutine, ticks)."""
    loop = asyncio.get_running_loop()
    ticks: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            ticks.append(loop.time())
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # the ticker has started
    started = loop.time()
    if blocking:
        render_pdf_sync(make_doc())
    else:
        assert work is not None
        await work
    took = loop.time() - started
    stop.set()
    await task
    inside = [t for t in ticks if t >= started] + [started + took]
    gaps = [b - a for a, b in zip([started, *inside], inside, strict=False)]
    return took, max(gaps), len(inside)


async def test_rendering_does_not_block_the_event_loop(renderer: PdfRenderer) -> None:
    heavy = make_doc(lines=800, n_calls=2500, calls_total=2500)  # ~60 pages: ~0.5 s or more
    took, gap, ticks = await _loop_gaps(asyncio.ensure_future(renderer.render(heavy)))
    assert took > 0.2  # a multi-page PDF: long enough for the gaps to mean something
    assert gap < took / 4, (took, gap)
    assert ticks >= 20
    # the control: the same kind of render on the loop itself stops the ticker
    took_blocking, gap_blocking, _ = await _loop_gaps(None, blocking=True)
    assert gap_blocking > took_blocking * 0.9


async def test_render_many_keeps_order_survives_dead_and_runaway_workers_and_closes() -> None:
    runaway = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
    async with PdfRenderer(tabs=2, batch=2, timeout=2.0) as pool:
        docs = [make_doc(number=f"INV-{i}") for i in range(5)]
        pdfs = await pool.render_many(docs)
        assert [f"INV-{i}" in pdf_text(p) for i, p in enumerate(pdfs)] == [True] * 5
        crash = pool._pool.submit(os._exit, 3)  # a template worker dying
        with pytest.raises(BrokenProcessPool):
            await asyncio.wrap_future(crash)
        assert "INV-4" in pdf_text(await pool.render(docs[4]))  # on a new pool
        with pytest.raises(TimeoutError):
            await pool.render_html(docs[0], source=runaway)
        assert "INV-3" in await pool.render_html(docs[3])  # and again
        first_browser, browser = pool.browser_pid, pool._browser
        assert first_browser is not None and browser is not None
        printing = asyncio.Event()
        send = browser.call

        async def spy(method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
            if method == "Page.setDocumentContent":
                printing.set()
            return await send(method, *args, **kwargs)

        browser.call = spy  # type: ignore[method-assign]
        heavy = asyncio.ensure_future(pool.render(make_doc(lines=300, n_calls=600,
                                                           calls_total=600)))  # fmt: skip
        await printing.wait()
        os.killpg(first_browser, signal.SIGKILL)  # the browser dying mid-print
        with pytest.raises(BrowserGone):
            await heavy
        assert "INV-2" in pdf_text(await pool.render(docs[2]))  # on a new browser
        assert pool.browser_pid not in (None, first_browser)
    with pytest.raises(RuntimeError, match="closed"):
        await pool.render(docs[0])
    assert await gone_within(first_browser, 10.0)  # nothing of the old browser is left


async def gone_within(pgid: int, seconds: float) -> bool:
    """Whether group ``pgid`` has no live process within ``seconds`` (SIGKILLed children
    finish dying on their own time)."""
    deadline = time.monotonic() + seconds
    while (alive := live_in_group(pgid)) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return not alive


def live_in_group(pgid: int) -> list[int]:
    """Processes of group ``pgid`` still running (zombies left to init do not count)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if entry.name.isdigit() and int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


async def test_without_chromium_pdfs_fail_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CE_CHROMIUM", "/nonexistent/chromium")
    async with PdfRenderer(tabs=1) as pool:
        with pytest.raises(ChromiumMissing, match="CE_CHROMIUM"):
            await pool.render(make_doc())


async def test_templates_validate_in_a_worker_too(renderer: PdfRenderer) -> None:
    await renderer.validate_template(TENANT_SOURCE)
    with pytest.raises(TemplateError, match="unknown variable"):
        await renderer.validate_template("{{ nope }}")


def test_sample_document_is_a_complete_invoice() -> None:
    doc = sample_document()
    assert doc.calls_omitted == 37 and doc.credit_applied and doc.notes and doc.taxes
    assert sample_document() == doc  # static data: previews are stable


# --- call-detail CSV ---------------------------------------------------------------------------


def test_calls_csv_columns_and_formula_cells() -> None:
    rows = (*calls(2), CallRow(datetime(2026, 5, 4, 12, 0, tzinfo=UTC), "=HYPERLINK(\"x\")", 5,
                               1_500_000))  # fmt: skip
    text = calls_csv(rows, currency="EUR", timezone="Europe/Berlin")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == ["started_at", "destination", "seconds", "amount", "currency"]
    assert table[1] == ["2026-05-03T09:30:00+02:00", "+49 30 1234 0000", "17", "0.023456", "EUR"]
    assert table[3][1] == "'=HYPERLINK(\"x\")" and table[3][3] == "1.500000"
    assert text.endswith("\r\n")


@fast
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(-(10**12), 10**12),
                          st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                                  max_size=20)), max_size=8))  # fmt: skip
def test_calls_csv_reads_back(values: list[tuple[int, int, str]]) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [CallRow(start + timedelta(seconds=i), dest, secs, amount)
            for i, (secs, amount, dest) in enumerate(values)]  # fmt: skip
    table = list(csv.reader(io.StringIO(calls_csv(rows), newline="")))[1:]
    assert [(int(r[2]), int(r[3])) for r in table] == [(s, a) for s, a, _ in values]
    for row, (_, _, dest) in zip(table, values, strict=True):
        assert row[1] in (dest, "'" + dest)
        assert datetime.fromisoformat(row[0]) >= start

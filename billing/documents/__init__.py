"""Invoice, credit note and receipt documents: HTML and PDF from one sandboxed template.

``render_html`` is cheap and synchronous; PDFs go through ``PdfRenderer`` (template worker
processes and headless Chromium, never the event loop).
"""

from billing.documents.csv_export import calls_csv
from billing.documents.model import (
    Branding,
    CallRow,
    DocLine,
    DocTax,
    Document,
    DocumentKind,
    Party,
)
from billing.documents.pdf import BrowserGone, ChromiumMissing, PdfRenderer, render_pdf_sync
from billing.documents.templating import (
    TemplateError,
    format_micros,
    format_money,
    render_html,
    sample_document,
    validate_template,
)

__all__ = [
    "Branding",
    "BrowserGone",
    "CallRow",
    "ChromiumMissing",
    "DocLine",
    "DocTax",
    "Document",
    "DocumentKind",
    "Party",
    "PdfRenderer",
    "TemplateError",
    "calls_csv",
    "format_micros",
    "format_money",
    "render_html",
    "render_pdf_sync",
    "sample_document",
    "validate_template",
]

"""Invoice, credit note and receipt documents: HTML and PDF from one sandboxed template.

``render_html`` is cheap and synchronous; PDFs go through ``PdfRenderer`` (worker processes,
never the event loop). ``billing.documents.pdf`` imports WeasyPrint only when a PDF is made.
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
from billing.documents.pdf import PdfRenderer, render_pdf_sync
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
    "CallRow",
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

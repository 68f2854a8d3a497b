"""Notification templates: the catalogue of events and their default texts, and the sandboxed
renderer that validates a tenant's own texts at upload and renders them at send time.

Pure: no I/O. Which template a tenant has stored, and when a message goes out, is decided by the
caller; this package only checks and renders text.
"""

from notifications.templates.catalog import (
    COMMON_VARIABLES,
    EVENTS,
    PARTS,
    WEBHOOK_NOTE,
    Channel,
    Event,
    NotInCatalog,
    get_event,
    parts_of,
)
from notifications.templates.render import (
    FILTERS,
    MAX_SMS_SEGMENTS,
    MAX_SOURCE_BYTES,
    Rendered,
    TemplateInvalid,
    format_micros,
    format_money,
    pick_language,
    preview,
    render,
    validate,
)

__all__ = [
    "COMMON_VARIABLES",
    "EVENTS",
    "FILTERS",
    "MAX_SMS_SEGMENTS",
    "MAX_SOURCE_BYTES",
    "PARTS",
    "WEBHOOK_NOTE",
    "Channel",
    "Event",
    "NotInCatalog",
    "Rendered",
    "TemplateInvalid",
    "format_micros",
    "format_money",
    "get_event",
    "parts_of",
    "pick_language",
    "preview",
    "render",
    "validate",
]

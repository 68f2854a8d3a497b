"""SMS through a generic HTTP gateway: one request per message, and the gateway's signed
webhooks (texts from phones, delivery statuses).

The pure part builds the request from the settings and the message (``build_request``), finds
the provider's id in its answer (``provider_id``), says what an answer's status means
(``outcome``) and verifies a webhook (``verify_inbound``, ``verify_status``); ``HttpSmsChannel``
only does the I/O. The notification id travels as the ``reference`` placeholder and the
``Idempotency-Key`` header, so a provider that dedupes sends a retried message once.

A connection error, a timeout, 408, 425, 429, a 3xx or a 5xx is ``SendFailed`` (retried); any
other 4xx is ``Undeliverable``. A 2xx without an id where ``id_path`` says is ``Undeliverable``
too: the message may have gone out, and a wrong path would send it again on every retry.

Webhooks are signed like Stripe's: ``X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>." + body>`` with the shared secret (several v1 entries: any may match, for rotation),
accepted within ``TOLERANCE_S`` of the injected clock; nothing in the body is read before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal
from urllib.parse import urlencode

import httpx
import orjson

from notifications.channels.model import Outgoing, SendFailed, Undeliverable

__all__ = [
    "DEFAULT_FIELDS", "PLACEHOLDERS", "SIGNATURE_HEADER", "TOLERANCE_S", "HttpRequest",
    "HttpSmsChannel", "HttpSmsSettings", "InboundText", "PayloadInvalid", "SignatureInvalid",
    "StatusReport", "WebhookRejected", "build_request", "outcome", "provider_id", "sign",
    "verify", "verify_inbound", "verify_status",
]  # fmt: skip

Auth = Literal["none", "basic", "bearer", "header"]
BodyFormat = Literal["json", "form"]
PLACEHOLDERS: Final = frozenset({"{to}", "{from}", "{text}", "{reference}"})
DEFAULT_FIELDS: Final[Mapping[str, str]] = {"to": "{to}", "from": "{from}", "text": "{text}"}
SIGNATURE_HEADER: Final = "X-Signature"
TOLERANCE_S: Final = 300
RETRYABLE: Final = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class HttpSmsSettings:
    """A tenant's gateway; ``secret``: the basic password, bearer token or header value."""

    url: str
    method: str = "POST"
    auth: Auth = "none"
    username: str = ""
    secret: str = ""
    header_name: str = ""
    body_format: BodyFormat = "json"
    fields: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELDS))
    sender: str = ""
    id_path: str = "id"
    timeout_s: float = 10.0

    @classmethod
    def from_stored(cls, s: Mapping[str, Any], secret: str | None) -> HttpSmsSettings:
        """From ``notification_channels.settings`` (what the admin API stored)."""
        return cls(url=s["url"], method=s.get("method", "POST"), auth=s.get("auth", "none"),
                   username=s.get("username", ""), secret=secret or "",
                   header_name=s.get("header_name", ""),
                   body_format=s.get("body_format", "json"),
                   fields=dict(s.get("fields") or DEFAULT_FIELDS), sender=s.get("sender", ""),
                   id_path=s.get("id_path", "id"),
                   timeout_s=float(s.get("timeout_seconds", 10)))  # fmt: skip


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes


def build_request(s: HttpSmsSettings, message: Outgoing) -> HttpRequest:
    """The request that hands ``message`` to the gateway."""
    reference = str(message.notification_id)
    values = {"{to}": message.recipient, "{from}": s.sender, "{text}": message.body,
              "{reference}": reference}  # fmt: skip
    unknown = sorted(set(s.fields.values()) - PLACEHOLDERS)
    if unknown:
        raise ValueError(f"unknown placeholders {unknown}")
    body = {name: values[placeholder] for name, placeholder in s.fields.items()}
    headers = {"Accept": "application/json", "Idempotency-Key": reference}
    if s.body_format == "json":
        headers["Content-Type"] = "application/json"
        content = orjson.dumps(body)
    else:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        content = urlencode(body).encode()
    if s.auth == "basic":
        pair = f"{s.username}:{s.secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    elif s.auth == "bearer":
        headers["Authorization"] = f"Bearer {s.secret}"
    elif s.auth == "header":
        headers[s.header_name] = s.secret
    return HttpRequest(s.method, s.url, headers, content)


def outcome(status: int) -> Literal["sent", "retry", "refused"]:
    """What the gateway's HTTP status means for the message."""
    if 200 <= status < 300:
        return "sent"
    if 400 <= status < 500 and status not in RETRYABLE:
        return "refused"
    return "retry"


def provider_id(path: str, answer: Any) -> str:
    """The id at ``path`` (dot-separated keys and list indexes, e.g. ``messages.0.id``) of the
    gateway's JSON answer; a list of ids is joined with commas (one per part). ValueError when
    there is none."""
    node = answer
    for step in path.split("."):
        if isinstance(node, Mapping) and step in node:
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            raise ValueError(f"the gateway's answer has no {path!r}")
    ids = node if isinstance(node, list) else [node]
    out = [str(i) for i in ids if isinstance(i, str | int) and not isinstance(i, bool)]
    if not ids or len(out) != len(ids) or not all(out):
        raise ValueError(f"the gateway's answer has no id at {path!r}")
    return ",".join(out)


class HttpSmsChannel:
    """The outbox's SMS through the gateway; one connection pool per channel (``aclose``)."""

    def __init__(self, settings: HttpSmsSettings, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.client = httpx.AsyncClient(timeout=settings.timeout_s, transport=transport)

    async def send(self, message: Outgoing) -> str:
        req = build_request(self.settings, message)
        try:
            r = await self.client.request(req.method, req.url, headers=req.headers,
                                          content=req.content)  # fmt: skip
        except httpx.HTTPError as e:  # connection refused, reset, timeouts, a bad URL
            raise SendFailed(f"{type(e).__name__}: {e}"[:300]) from None
        verdict = outcome(r.status_code)
        if verdict == "retry":
            raise SendFailed(f"gateway answered {r.status_code}: {r.text[:200]}")
        if verdict == "refused":
            raise Undeliverable(f"gateway refused with {r.status_code}: {r.text[:200]}")
        try:
            return provider_id(self.settings.id_path, r.json())
        except ValueError as e:  # no JSON, or no id in it (JSONDecodeError is a ValueError)
            raise Undeliverable(f"{e} (it answered {r.status_code}: {r.text[:200]})") from None

    async def aclose(self) -> None:
        await self.client.aclose()


# Webhooks from the gateway.


class WebhookRejected(ValueError):
    """A webhook that is not acted upon."""


class SignatureInvalid(WebhookRejected):
    """Missing, malformed, stale or wrong signature: the body was not read."""


class PayloadInvalid(WebhookRejected):
    """Signed, but not the shape this endpoint takes."""


@dataclass(frozen=True, slots=True)
class InboundText:
    """A text from a phone, as the gateway reports it."""

    source: str  # "from"
    destination: str  # "to"
    text: str
    message_id: str


@dataclass(frozen=True, slots=True)
class StatusReport:
    message_id: str
    status: Literal["delivered", "failed"]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Signature`` value for ``body`` sent at ``timestamp`` (what the gateway does)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str | None, body: bytes, *, now: datetime,
           tolerance_s: int = TOLERANCE_S) -> None:  # fmt: skip
    """Raise ``SignatureInvalid`` unless ``header`` signs ``body`` with ``secret``, within
    ``tolerance_s`` of ``now`` (either way: a replayed old request and a skewed clock alike)."""
    if not secret:
        raise SignatureInvalid("no webhook secret is configured")
    if not header:
        raise SignatureInvalid(f"the {SIGNATURE_HEADER} header is missing")
    stamp, macs = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            stamp = value
        elif key == "v1":
            macs.append(value.lower())
    if stamp is None or not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12 or not macs:
        raise SignatureInvalid(f"the {SIGNATURE_HEADER} header is not t=<unix>,v1=<hex>")
    if abs(now.timestamp() - int(stamp)) > tolerance_s:
        raise SignatureInvalid("the signature's timestamp is outside the tolerance")
    expected = sign(secret, int(stamp), body).rpartition("v1=")[2]
    # Every candidate compared in constant time (no early exit on the first match).
    if not [m for m in macs if hmac.compare_digest(m.encode(), expected.encode())]:
        raise SignatureInvalid("the signature does not match")


def _fields(body: bytes, names: tuple[str, ...], blank: str = "") -> dict[str, str]:
    """The string fields ``names`` of a JSON object (only ``blank`` may be empty)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise PayloadInvalid("the body is not JSON") from None
    if not isinstance(data, dict):
        raise PayloadInvalid("the body is not a JSON object")
    out: dict[str, str] = {}
    for name in names:
        value = data.get(name)
        if not isinstance(value, str) or len(value) > 2000 or "\x00" in value or (
                not value and name != blank):
            raise PayloadInvalid(f"{name!r} must be a string (of at most 2000 characters)")
        out[name] = value
    return out


def verify_inbound(secret: str, header: str | None, body: bytes, *,
                   now: datetime) -> InboundText:  # fmt: skip
    """A signed text from a phone: ``{"from", "to", "text", "message_id"}``."""
    verify(secret, header, body, now=now)
    f = _fields(body, ("from", "to", "text", "message_id"), blank="text")
    return InboundText(f["from"], f["to"], f["text"], f["message_id"])


def verify_status(secret: str, header: str | None, body: bytes, *,
                  now: datetime) -> StatusReport:  # fmt: skip
    """A signed delivery status: ``{"message_id", "status": "delivered" | "failed"}``."""
    verify(secret, header, body, now=now)
    f = _fields(body, ("message_id", "status"))
    if f["status"] == "delivered":
        return StatusReport(f["message_id"], "delivered")
    if f["status"] == "failed":
        return StatusReport(f["message_id"], "failed")
    raise PayloadInvalid("'status' must be 'delivered' or 'failed'")

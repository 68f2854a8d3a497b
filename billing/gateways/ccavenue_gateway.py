"""CCAvenue: quick invoices as pay links, and payment responses verified by decrypting them.

Both directions use CCAvenue's one scheme (``ccavenue_crypto``, keyed by the working key): the
pay link is ``generateQuickInvoice`` on ``/apis/servlet/DoWebTrans`` (a JSON request encrypted
into a form, an encrypted JSON answer); the payment response CCAvenue posts to the merchant is
``encResp=<hex>&orderNo=<order id>``, whose plaintext is a kit-style ``k=v&k=v`` string. No
signature exists: a response is trusted because it decrypts under our key, names the order its
wrapper names, and is recent.

The order id CCAvenue echoes back is at most 30 characters of ``[A-Za-z0-9_/-]``, too short to
carry a tenant, an account and an invoice id (that alone is 36), so it is a digest of the
tenant and the idempotency key (the same key: the same order, the same link) and the event
names it as ``link_ref``: ``inbox.resolve`` maps it back through our own ``pay_links`` row.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final
from urllib.parse import parse_qsl

import httpx

from billing.gateways.ccavenue_crypto import decrypt, encrypt
from billing.gateways.model import Credentials, GatewayEvent, GatewayRejected, PayLink
from billing.minor_units import exponent

__all__ = [
    "IST", "NAME", "REQUIRED", "TRANS_DATE_FORMAT", "CCAvenueError", "CCAvenueGateway",
    "encode_fields", "order_id_for", "parse_fields", "to_decimal", "to_minor",
]  # fmt: skip

NAME: Final = "ccavenue"
API_BASE: Final = "https://api.ccavenue.com"
IST: Final = timezone(timedelta(hours=5, minutes=30), "IST")  # trans_date is India time
TRANS_DATE_FORMAT: Final = "%d/%m/%Y %H:%M:%S"
MAX_AGE: Final = timedelta(hours=24)  # older: a replay, not a delivery
MAX_AHEAD: Final = timedelta(minutes=5)  # clock skew allowed
VALID_DAYS: Final = 7
ORDER_ID_LEN: Final = 30  # CCAvenue's order_id: alphanumeric (30), also - / _
REQUIRED: Final = ("order_id", "tracking_id", "order_status", "currency", "amount", "trans_date")
_DECIMAL: Final = re.compile(r"([0-9]+)(?:\.([0-9]+))?")


class CCAvenueError(RuntimeError):
    """CCAvenue refused an API call (bad access code, invalid request) or answered nonsense."""


def order_id_for(tenant_id: str, idempotency_key: str) -> str:
    """The merchant reference / order id of a pay link: deterministic, so a retried request
    names the same quick invoice; 30 characters CCAvenue accepts as an order id."""
    digest = hashlib.sha256(f"{tenant_id}\0{idempotency_key}".encode()).hexdigest()
    return "bl" + digest[: ORDER_ID_LEN - 2]


def to_decimal(minor: int, exp: int) -> str:
    """``minor`` units as CCAvenue's decimal amount (2323, 2 -> "23.23"; 500, 0 -> "500")."""
    if minor < 0 or exp < 0:
        raise ValueError("amounts are not negative")
    if exp == 0:
        return str(minor)
    whole, frac = divmod(minor, 10**exp)
    return f"{whole}.{frac:0{exp}d}"


def to_minor(text: str, exp: int) -> int:
    """CCAvenue's decimal amount in minor units, exactly ("500.00", 0 -> 500); ``ValueError``
    for anything else, or for a fraction of a minor unit."""
    m = _DECIMAL.fullmatch(text)
    if m is None:
        raise ValueError(f"not a decimal amount: {text[:40]!r}")
    whole, frac = m[1], m[2] or ""
    if frac[exp:].strip("0"):
        raise ValueError(f"{text} is not a whole number of minor units")
    frac = frac[:exp].ljust(exp, "0")
    scale: int = 10**exp
    return int(whole) * scale + (int(frac) if frac else 0)


def parse_fields(plain: str) -> dict[str, str]:
    """A decrypted response's ``k=v&k=v``, split as the kits split it (no URL-decoding)."""
    fields: dict[str, str] = {}
    for part in plain.split("&"):
        key, sep, value = part.partition("=")
        if sep and key:
            fields[key] = value
    return fields


def encode_fields(fields: Mapping[str, str]) -> str:
    """``fields`` as CCAvenue writes a response's plaintext (the inverse of ``parse_fields``)."""
    return "&".join(f"{k}={v}" for k, v in fields.items())


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CCAvenueGateway:
    """One tenant's CCAvenue account: access code for the API, working key for both ways."""

    def __init__(self, creds: Credentials, *, now: Callable[[], datetime] = _utc_now) -> None:
        self._access_code = creds.api_key
        self._working_key = creds.webhook_secret
        self._base = (creds.base_url or API_BASE).rstrip("/")
        self._now = now
        self._http = httpx.AsyncClient(timeout=20)  # a pay link waits that long at most

    async def pay_link(self, *, amount: int, currency: str, description: str,
                       metadata: dict[str, str], success_url: str, cancel_url: str,
                       idempotency_key: str) -> PayLink:  # fmt: skip
        """A quick invoice for ``amount`` minor units. CCAvenue takes no return URLs here: the
        payment response goes to the URL set in the merchant's CCAvenue dashboard."""
        if amount <= 0:
            raise ValueError("a pay link is for a positive amount")
        order_id = order_id_for(metadata.get("tenant_id", ""), idempotency_key)
        request = {
            "customer_name": (metadata.get("account_id") or "Customer")[:60],
            "bill_delivery_type": "none", "currency": currency, "valid_for": VALID_DAYS,
            "valid_type": "days", "amount": to_decimal(amount, exponent(currency)),
            "merchant_reference_no": order_id, "invoice_description": description[:200],
        }  # fmt: skip
        answer = await self._call("generateQuickInvoice", request)
        if not answer.get("tiny_url"):
            raise CCAvenueError("CCAvenue's quick invoice has no tiny_url")
        return PayLink(url=str(answer["tiny_url"]), reference=order_id)

    async def _call(self, command: str, request: dict[str, Any]) -> dict[str, Any]:
        form = {
            "request_type": "JSON", "access_code": self._access_code, "command": command,
            "version": "1.2", "response_type": "JSON",
            "enc_request": encrypt(json.dumps(request), self._working_key),
        }  # fmt: skip
        r = await self._http.post(f"{self._base}/apis/servlet/DoWebTrans", data=form)
        r.raise_for_status()
        reply = dict(parse_qsl(r.text.strip(), keep_blank_values=True))
        enc = reply.get("enc_response", "").strip()
        if reply.get("status") != "0":  # enc_response then holds a plain error message
            why = enc or reply.get("enc_error_code") or r.text[:200]
            raise CCAvenueError(f"CCAvenue refused {command}: {why}")
        try:
            body: Any = json.loads(decrypt(enc, self._working_key))
        except ValueError:
            raise CCAvenueError(f"CCAvenue's answer to {command} does not decrypt") from None
        if not isinstance(body, dict):
            raise CCAvenueError(f"CCAvenue's answer to {command} is not an object")
        if body.get("error_code") or body.get("error_desc"):
            raise CCAvenueError(f"CCAvenue refused {command}: {body.get('error_code')}"
                                f" {body.get('error_desc')}"[:300])  # fmt: skip
        return body

    async def aclose(self) -> None:
        """Close the API's HTTP connections (a pay link opened them)."""
        await self._http.aclose()

    async def follow_up(self, event: GatewayEvent) -> GatewayEvent | None:
        """Nothing: CCAvenue captures a successful payment itself."""
        return None

    async def verify(self, payload: bytes, headers: dict[str, str]) -> GatewayEvent:
        """The payment response, if it decrypts under our working key, its wrapper names the
        same order and it is recent; else ``GatewayRejected``."""
        try:
            form = dict(parse_qsl(payload.decode("ascii"), keep_blank_values=True,
                                  strict_parsing=True))  # fmt: skip
        except ValueError:  # UnicodeDecodeError too
            raise GatewayRejected("not a CCAvenue response form") from None
        enc = form.get("encResp", "").strip()
        if not enc:
            raise GatewayRejected("no encResp")
        try:
            fields = parse_fields(decrypt(enc, self._working_key))
        except ValueError as e:
            raise GatewayRejected(f"encResp does not decrypt with the working key: {e}"
                                  ) from None  # fmt: skip
        missing = [name for name in REQUIRED if not fields.get(name)]
        if missing:
            raise GatewayRejected(f"the response lacks {', '.join(missing)}")
        order_id, status = fields["order_id"], fields["order_status"]
        if "orderNo" in form and form["orderNo"] != order_id:
            raise GatewayRejected("orderNo does not match the encrypted order_id")
        self._check_time(fields["trans_date"])
        currency = fields["currency"]
        try:
            amount = to_minor(fields["amount"], exponent(currency))
        except ValueError as e:
            raise GatewayRejected(f"bad amount or currency: {e}") from None
        return GatewayEvent(
            gateway=NAME, event_id=f"{fields['tracking_id']}:{status}",
            type=f"order.{status.lower()}", paid=status == "Success",
            payment_ref=fields["tracking_id"], amount=amount, currency=currency,
            metadata={}, payload=dict(fields), link_ref=order_id,
        )  # fmt: skip

    def _check_time(self, trans_date: str) -> None:
        try:
            at = datetime.strptime(trans_date, TRANS_DATE_FORMAT).replace(tzinfo=IST)
        except ValueError:
            raise GatewayRejected(f"bad trans_date {trans_date[:40]!r}") from None
        now = self._now()
        if at < now - MAX_AGE:
            raise GatewayRejected(f"stale response: trans_date {trans_date} IST")
        if at > now + MAX_AHEAD:
            raise GatewayRejected(f"response from the future: trans_date {trans_date} IST")

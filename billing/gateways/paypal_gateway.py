"""PayPal: Orders v2 as pay links, webhooks verified offline by PayPal's transmission signature.

Plain HTTP (httpx) and ``cryptography``, no SDK. An order (intent CAPTURE) is the pay link; the
buyer approves it on PayPal (``CHECKOUT.ORDER.APPROVED``) and ``follow_up`` captures it, which is
the payment (``PAYMENT.CAPTURE.COMPLETED``, also delivered as its own webhook: both name the same
capture id, so the inbox records the money once, in whichever order they come). A webhook is
trusted when its RSA-SHA256 signature over ``transmission_id|transmission_time|webhook_id|crc32``
verifies with the certificate at its cert URL, fetched only from PayPal's hosts (or from the
configured base URL: the local stand-in), within 300 s of its transmission time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx
import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from billing.amounts import format_minor
from billing.gateways.model import Credentials, GatewayEvent, GatewayRejected, PayLink
from billing.minor_units import exponent

__all__ = ["NAME", "PayPalError", "PayPalGateway", "cert_url_allowed", "to_minor", "to_value"]

NAME: Final = "paypal"
LIVE: Final = "https://api-m.paypal.com"
TOLERANCE_S: Final = 300
ALGO: Final = "SHA256withRSA"
HEADERS: Final = ("paypal-transmission-id", "paypal-transmission-time", "paypal-transmission-sig",
                  "paypal-cert-url", "paypal-auth-algo")  # fmt: skip
CAPTURED: Final = "PAYMENT.CAPTURE.COMPLETED"
APPROVED: Final = "CHECKOUT.ORDER.APPROVED"
_MAX_ID = 127  # custom_id, invoice_id, description
_META = (("t", "tenant_id"), ("a", "account_id"), ("i", "invoice_id"))
_VALUE = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
# Per process, bounded: the adapter is built per request, a token lives 9 hours, a cert longer.
_CERTS: dict[str, x509.Certificate] = {}
_TOKENS: dict[tuple[str, str, str], tuple[str, float]] = {}
_CACHE_MAX = 64


class PayPalError(RuntimeError):
    """PayPal's API refused (the caller answers 502); ``issue`` is PayPal's first detail."""

    def __init__(self, message: str, status: int = 0, issue: str = "") -> None:
        super().__init__(message)
        self.status, self.issue = status, issue


# Minor units as PayPal's decimal string (2323 EUR -> "23.23", 500 JPY -> "500"): the API's own.
to_value = format_minor


def to_minor(value: str, currency: str) -> int:
    """PayPal's decimal string as minor units, exactly; finer than the currency: ValueError."""
    m = _VALUE.fullmatch(value)
    if m is None:
        raise ValueError(f"not a PayPal amount: {value!r}")
    e, frac = exponent(currency), m[3] or ""
    if frac[e:].strip("0"):
        raise ValueError(f"{value} has more than {e} decimals for {currency}")
    n = int(m[2]) * int(10**e) + int(frac[:e].ljust(e, "0") or "0")
    return -n if m[1] else n


def _origin(url: str) -> tuple[str, str, int | None]:
    p = urlsplit(url)
    return p.scheme, (p.hostname or "").lower(), p.port or {"https": 443, "http": 80}.get(p.scheme)


def cert_url_allowed(url: str, base_url: str | None) -> bool:
    """Only PayPal's own hosts over HTTPS (or exactly the configured API origin) hand out the
    certificate: anyone can sign with a key whose certificate they serve themselves."""
    try:
        scheme, host, port = origin = _origin(url)
        paypal = scheme == "https" and host.endswith(".paypal.com") and port == 443
        return paypal or (base_url is not None and origin == _origin(base_url))
    except ValueError:  # a port out of range
        return False


def _decode_custom(custom_id: object) -> dict[str, str]:
    """The metadata ``pay_link`` packed into ``custom_id`` (nothing if it is not ours)."""
    names = dict(_META)
    return {names[k]: v for k, v in parse_qsl(str(custom_id or "")) if k in names}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _put(cache: dict[Any, Any], key: Any, value: Any) -> None:
    while len(cache) >= _CACHE_MAX:
        del cache[next(iter(cache))]  # the oldest
    cache[key] = value


def _error(r: httpx.Response) -> PayPalError:
    """PayPal's error (``name``, ``message``, ``details[0].issue``; OAuth's ``error``)."""
    try:
        body = r.json()
        detail = (body.get("details") or [{}])[0]
        issue, text = str(detail.get("issue") or ""), detail.get("description")
        text = text or body.get("message") or body.get("error_description") or r.text[:200]
        name = body.get("name") or body.get("error") or r.reason_phrase
    except (ValueError, AttributeError, TypeError, IndexError):
        issue, text, name = "", r.text[:200], r.reason_phrase
    what = " ".join(str(w) for w in (r.status_code, name, issue) if w)
    return PayPalError(f"PayPal {what}: {text}", r.status_code, issue)


class PayPalGateway:
    """A tenant's PayPal REST app (client id and secret) and the id of its webhook."""

    def __init__(self, creds: Credentials, *, now: Callable[[], float] = time.time) -> None:
        self._base = (creds.base_url or LIVE).rstrip("/")
        self._configured = creds.base_url
        self._client_id, self._secret = creds.account_id or "", creds.api_key
        self._webhook_id, self._now = creds.webhook_secret, now
        self._token_key = (self._base, self._client_id, _sha(creds.api_key))
        self._http = httpx.AsyncClient(timeout=20)  # a pay link waits that long at most

    async def aclose(self) -> None:
        """Close the HTTP connections (API calls and certificate downloads opened them)."""
        await self._http.aclose()

    async def _token(self) -> str:
        """An OAuth2 client-credentials token, reused until a minute before it expires."""
        hit = _TOKENS.get(self._token_key)
        if hit is not None and hit[1] > self._now():
            return hit[0]
        r = await self._http.post(f"{self._base}/v1/oauth2/token", auth=(
            self._client_id, self._secret), data={"grant_type": "client_credentials"})  # fmt: skip
        if r.status_code != 200:
            raise _error(r)
        body = r.json()
        token = str(body["access_token"])
        _put(_TOKENS, self._token_key, (token, self._now() + float(body["expires_in"]) - 60))
        return token

    async def _call(self, method: str, path: str, *, body: dict[str, Any] | None = None,
                    request_id: str | None = None) -> dict[str, Any]:  # fmt: skip
        """One API call; a 401 (token revoked or expired early) fetches a new token once."""
        headers = {"Prefer": "return=representation"}
        if request_id:  # PayPal's idempotency key, at most 108 characters
            long = len(request_id) > 108
            headers["PayPal-Request-Id"] = _sha(request_id) if long else request_id
        for fresh in (False, True):
            headers["Authorization"] = f"Bearer {await self._token()}"
            r = await self._http.request(method, self._base + path, json=body, headers=headers)
            if r.status_code != 401 or fresh:
                break
            _TOKENS.pop(self._token_key, None)
        if r.status_code >= 400:
            raise _error(r)
        out: dict[str, Any] = r.json()
        return out

    async def pay_link(self, *, amount: int, currency: str, description: str,
                       metadata: dict[str, str], success_url: str, cancel_url: str,
                       idempotency_key: str) -> PayLink:  # fmt: skip
        """An order for ``amount`` minor units; the link is where the buyer approves it."""
        if amount <= 0:
            raise ValueError("a pay link is for a positive amount")
        invoice = metadata.get("invoice_id", "")
        custom = urlencode([(k, metadata[name]) for k, name in _META if metadata.get(name)])
        unit: dict[str, Any] = {k: v for k, v in {
            "reference_id": invoice[:_MAX_ID] or "default",
            "custom_id": custom if len(custom) <= _MAX_ID else "",  # else: the link's reference
            # PayPal refuses a second capture under one invoice_id: one per link, not per invoice
            "invoice_id": f"{invoice[:100]}-{idempotency_key[:16]}" if invoice else "",
            "description": description[:_MAX_ID],
            "amount": {"currency_code": currency, "value": to_value(amount, currency)},
        }.items() if v}  # fmt: skip
        context = {"return_url": success_url, "cancel_url": cancel_url, "user_action": "PAY_NOW"}
        order = await self._call("POST", "/v2/checkout/orders", request_id=idempotency_key, body={
            "intent": "CAPTURE", "purchase_units": [unit],
            "payment_source": {"paypal": {"experience_context": context}}})  # fmt: skip
        links = {str(li.get("rel")): str(li.get("href")) for li in order.get("links") or []}
        url = links.get("payer-action") or links.get("approve")
        if not url or not order.get("id"):
            raise PayPalError(f"PayPal order {order.get('id')} has no approval link")
        return PayLink(url, str(order["id"]))

    async def _certificate(self, url: str) -> x509.Certificate:
        if not cert_url_allowed(url, self._configured):
            raise GatewayRejected(f"certificate URL {url[:200]} is not PayPal's")
        cert = _CERTS.get(url)
        if cert is None:
            try:
                r = await self._http.get(url)
            except httpx.HTTPError as e:
                raise GatewayRejected(f"certificate {url} not fetched: {e!r}") from None
            try:
                if r.status_code != 200 or len(r.content) > 65536:
                    raise ValueError(f"HTTP {r.status_code}, {len(r.content)} bytes")
                cert = x509.load_pem_x509_certificates(r.content)[0]  # the leaf, then its chain
            except ValueError as e:
                raise GatewayRejected(f"no certificate at {url}: {e}") from None
            _put(_CERTS, url, cert)
        valid = cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()
        if not valid[0] <= self._now() <= valid[1]:
            raise GatewayRejected(f"certificate {url} is not valid now")
        return cert

    async def verify(self, payload: bytes, headers: dict[str, str]) -> GatewayEvent:
        """The event, if PayPal signed it for this webhook id lately; else ``GatewayRejected``."""
        missing = [h for h in HEADERS if not headers.get(h)]
        if missing:
            raise GatewayRejected(f"missing PayPal header(s): {', '.join(missing)}")
        tid, at, sig, cert_url, algo = (headers[h] for h in HEADERS)
        if algo != ALGO:
            raise GatewayRejected(f"paypal-auth-algo {algo[:40]!r} is not {ALGO}")
        try:
            sent = datetime.fromisoformat(at)
            if sent.tzinfo is None:
                raise ValueError("no time zone")
            signature = base64.b64decode(sig, validate=True)
        except (ValueError, binascii.Error) as e:
            raise GatewayRejected(f"malformed PayPal headers: {e}") from None
        if abs(self._now() - sent.timestamp()) > TOLERANCE_S:
            raise GatewayRejected(f"transmission time {at} is more than {TOLERANCE_S} s from now")
        key = (await self._certificate(cert_url)).public_key()
        message = f"{tid}|{at}|{self._webhook_id}|{zlib.crc32(payload)}".encode()
        try:
            if not isinstance(key, rsa.RSAPublicKey):
                raise InvalidSignature
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise GatewayRejected("signature does not verify (forged, altered, or for another"
                                  " webhook id)") from None  # fmt: skip
        try:
            body = orjson.loads(payload)
            event_id, kind = str(body["id"]), str(body["event_type"])
            res: dict[str, Any] = body.get("resource") or {}
            if kind == CAPTURED:
                order = (res.get("supplementary_data") or {}).get("related_ids") or {}
                return _paid(event_id, kind, res, body, str(order.get("order_id") or ""))
            if kind == APPROVED:
                units = res.get("purchase_units") or [{}]
                return GatewayEvent(NAME, event_id, kind, False, payload=body,
                                    metadata=_decode_custom(units[0].get("custom_id")),
                                    link_ref=str(res.get("id") or ""))  # fmt: skip
            return GatewayEvent(NAME, event_id, kind, False, payload=body)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
            raise GatewayRejected(f"not a PayPal event: {e!r}"[:300]) from None

    async def follow_up(self, event: GatewayEvent) -> GatewayEvent | None:
        """An approved order captured (the payment), or ``None``: nothing to do, or not yet
        complete (a pending capture's own webhook comes when it completes)."""
        if event.gateway != NAME or event.type != APPROVED or not event.link_ref:
            return None
        order_id = event.link_ref
        path = f"/v2/checkout/orders/{quote(order_id, safe='')}"
        try:
            order = await self._call("POST", f"{path}/capture", body={},
                                     request_id=f"capture-{order_id}")  # fmt: skip
        except PayPalError as e:
            if e.issue != "ORDER_ALREADY_CAPTURED":  # captured before: read that capture
                raise
            order = await self._call("GET", path)
        try:
            unit = (order.get("purchase_units") or [{}])[0]
            captures = (unit.get("payments") or {}).get("captures") or [{}]
            capture = {"custom_id": unit.get("custom_id"), **captures[0]}
            if capture.get("status") != "COMPLETED":
                return None
            return _paid(f"capture:{capture['id']}", CAPTURED, capture, order, order_id)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
            raise PayPalError(f"PayPal order {order_id}: unexpected capture {e!r}") from None


def _paid(event_id: str, kind: str, capture: dict[str, Any], payload: dict[str, Any],
          order_id: str) -> GatewayEvent:  # fmt: skip
    """A capture as the event naming it: paid when COMPLETED, one payment per capture id."""
    amount = capture.get("amount") or {}
    currency = str(amount["currency_code"])
    return GatewayEvent(
        gateway=NAME, event_id=event_id, type=kind, paid=capture.get("status") == "COMPLETED",
        payment_ref=str(capture["id"]), amount=to_minor(str(amount["value"]), currency),
        currency=currency, metadata=_decode_custom(capture.get("custom_id")), payload=payload,
        link_ref=order_id,
    )  # fmt: skip

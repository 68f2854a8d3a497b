"""A local stand-in for PayPal's REST API, faithful to what the adapter uses (PayPal cannot be
reached from here): OAuth2 client credentials (``/v1/oauth2/token``, HTTP Basic), Orders v2
(create with ``PayPal-Request-Id`` idempotency, capture once the buyer approved, read), and
webhooks signed as PayPal signs them: SHA256withRSA over
``transmission_id|transmission_time|webhook_id|crc32(body)`` with the key of a certificate
served at ``/certs/<name>.pem`` (its URL travels in ``PAYPAL-CERT-URL``)."""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import string
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request, Response

from billing.minor_units import exponent
from charging_server.demo.loopback import LoopbackServer

_VALUE = re.compile(r"[0-9]{1,15}(?:\.([0-9]+))?")
_ALNUM = string.ascii_uppercase + string.digits


def new_key() -> rsa.RSAPrivateKey:
    """An RSA-2048 key (PayPal's webhook key is one; a test's forger uses another)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pid(n: int = 17) -> str:
    """An id shaped like PayPal's (17 upper-case letters and digits)."""
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _iso(at: float) -> str:
    return datetime.fromtimestamp(int(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PayPalStandIn(LoopbackServer):
    client_id: str = "AStandInClientId0000000000000000"
    client_secret: str = "EStandInClientSecret000000000000"
    webhook_id: str = "8PT597110X687430LKGECATA"
    capture_status: str = "COMPLETED"  # what a capture comes out as ("PENDING": under review)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)  # what made each order
    tokens: set[str] = field(default_factory=set)  # issued and not revoked
    token_requests: int = 0
    cert_fetches: int = 0
    key: rsa.RSAPrivateKey = field(default_factory=new_key, repr=False)
    cert_name: str = field(default_factory=lambda: f"CERT-360caa42-{secrets.token_hex(8)}")
    port: int = 0
    _replies: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(
        default_factory=dict, init=False, repr=False)  # fmt: skip
    _cert: x509.Certificate | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cert_url(self) -> str:
        return f"{self.base_url}/certs/{self.cert_name}.pem"

    @property
    def certificate(self) -> x509.Certificate:
        """Self-signed, valid from a day ago for a year, for ``key`` (made on first use)."""
        if self._cert is None:
            cn = "messageverificationcerts.paypal.com"  # the name on PayPal's own
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                              x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PayPal (stand-in)")
                              ])  # fmt: skip
            now = datetime.now(UTC)
            self._cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                          .public_key(self.key.public_key())
                          .serial_number(x509.random_serial_number())
                          .not_valid_before(now - timedelta(days=1))
                          .not_valid_after(now + timedelta(days=365))
                          .sign(self.key, hashes.SHA256()))  # fmt: skip
        return self._cert

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/oauth2/token")
        async def token(request: Request) -> Response:
            self.token_requests += 1
            basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {basic}":
                failed = "Client Authentication failed"
                return _json(401, {"error": "invalid_client", "error_description": failed})
            form = (await request.body()).decode()
            if form != "grant_type=client_credentials":
                return _json(400, {"error": "unsupported_grant_type",
                                   "error_description": "Grant Type is NULL"})  # fmt: skip
            access = f"A21AA{secrets.token_urlsafe(32)}"
            self.tokens.add(access)
            return _json(200, {"scope": "https://uri.paypal.com/services/payments/payment",
                               "access_token": access, "token_type": "Bearer",
                               "app_id": "APP-80W284485P519543T", "expires_in": 32400,
                               "nonce": f"{_iso(time.time())}{secrets.token_hex(8)}"})  # fmt: skip

        @app.post("/v2/checkout/orders")
        async def create(request: Request) -> Response:
            try:
                req = json.loads(await request.body() or b"null")
            except ValueError:
                req = None
            return self._once(request, "create", lambda: self._create(req))

        @app.post("/v2/checkout/orders/{order_id}/capture")
        async def capture(order_id: str, request: Request) -> Response:
            return self._once(request, "capture", lambda: self._capture_api(order_id))

        @app.get("/v2/checkout/orders/{order_id}")
        async def read(order_id: str, request: Request) -> Response:
            if (denied := self._denied(request)) is not None:
                return denied
            if order_id not in self.orders:
                return _json(*_not_found(order_id))
            return _json(200, self.orders[order_id])

        @app.get("/certs/{filename}")
        async def cert(filename: str) -> Response:
            if filename != f"{self.cert_name}.pem":
                return _json(404, {"name": "RESOURCE_NOT_FOUND", "message": "no such cert"})
            self.cert_fetches += 1
            pem = self.certificate.public_bytes(serialization.Encoding.PEM)
            return Response(pem, media_type="application/x-pem-file")

        return app

    def _denied(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            return _json(401, {"name": "AUTHENTICATION_FAILURE", "message": (
                "Authentication failed due to invalid authentication credentials or a missing"
                " Authorization header."), "links": []})  # fmt: skip
        return None

    def _once(self, request: Request, kind: str, make: Callable[[], tuple[int, dict[str, Any]]]
              ) -> Response:  # fmt: skip
        """PayPal-Request-Id: a repeated id answers what the first request got."""
        if (denied := self._denied(request)) is not None:
            return denied
        rid = request.headers.get("paypal-request-id", "")
        if rid and (kind, rid) in self._replies:
            status, reply = self._replies[(kind, rid)]
            return _json(status, reply)
        status, reply = make()
        if rid and status < 400:  # a refusal is not remembered: the same id may try again
            self._replies[(kind, rid)] = (status, reply)
        if kind == "create" and status == 201 and "return=representation" not in (
                request.headers.get("prefer", "")):  # fmt: skip
            reply = {k: reply[k] for k in ("id", "status", "payment_source", "links")
                     if k in reply}  # fmt: skip
        return _json(status, reply)

    def _create(self, req: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(req, dict):
            return _invalid("/", "MALFORMED_REQUEST_JSON", "The request JSON is not well formed.")
        units = req.get("purchase_units")
        one = isinstance(units, list) and len(units) == 1 and isinstance(units[0], dict)
        if req.get("intent") != "CAPTURE" or not one or not isinstance(units, list):
            return _invalid("/intent", "MALFORMED_REQUEST_JSON", "intent CAPTURE, one unit")
        unit = copy.deepcopy(units[0])
        amount = unit.get("amount") if isinstance(unit.get("amount"), dict) else {}
        currency, value = str(amount.get("currency_code", "")), str(amount.get("value", ""))
        try:
            digits = exponent(currency)
        except ValueError:
            return _unprocessable("CURRENCY_NOT_SUPPORTED", f"{currency} is not supported")
        match = _VALUE.fullmatch(value)
        if match is None:
            return _invalid("/purchase_units/@reference_id=='default'/amount/value",
                            "INVALID_PARAMETER_SYNTAX", "The value of a field does not conform"
                            " to the expected format.")  # fmt: skip
        if len(match[1] or "") > digits:
            return _unprocessable("DECIMAL_PRECISION", f"{currency} takes {digits} decimals")
        if int(value.replace(".", "")) == 0:
            return _unprocessable("CANNOT_BE_ZERO_OR_NEGATIVE", "amount must be positive")
        for name in ("custom_id", "invoice_id"):
            if len(str(unit.get(name, ""))) > 127:
                return _invalid(f"/purchase_units/0/{name}", "INVALID_STRING_MAX_LENGTH",
                                "The value of a field is too long.")  # fmt: skip
        oid = _pid()
        unit.setdefault("reference_id", "default")
        unit["payee"] = {"email_address": "merchant@example.com", "merchant_id": _pid(13)}
        source = req.get("payment_source") or {}
        paypal = source.get("paypal") if isinstance(source, dict) else None
        action = "payer-action" if paypal is not None else "approve"
        order: dict[str, Any] = {
            "id": oid, "intent": "CAPTURE", "purchase_units": [unit],
            "status": "PAYER_ACTION_REQUIRED" if paypal is not None else "CREATED",
            "create_time": _iso(time.time()), "links": [
                {"href": f"{self.base_url}/v2/checkout/orders/{oid}", "rel": "self",
                 "method": "GET"},
                {"href": f"{self.base_url}/checkoutnow?token={oid}", "rel": action,
                 "method": "GET"},
                {"href": f"{self.base_url}/v2/checkout/orders/{oid}", "rel": "update",
                 "method": "PATCH"},
                {"href": f"{self.base_url}/v2/checkout/orders/{oid}/capture", "rel": "capture",
                 "method": "POST"}]}  # fmt: skip
        if paypal is not None:
            order["payment_source"] = {"paypal": {}}
        self.orders[oid], self.requests[oid] = order, req
        return 201, order

    def _capture_api(self, order_id: str) -> tuple[int, dict[str, Any]]:
        order = self.orders.get(order_id)
        if order is None:
            return _not_found(order_id)
        if order["status"] == "COMPLETED":
            return _unprocessable("ORDER_ALREADY_CAPTURED", "Order already captured.If"
                                  " 'intent=CAPTURE' only one capture per order is allowed."
                                  )  # fmt: skip
        if order["status"] != "APPROVED":
            return _unprocessable("ORDER_NOT_APPROVED", "Payer has not yet approved the Order"
                                  " for payment.")  # fmt: skip
        self._capture(order)
        return 201, order

    def _capture(self, order: dict[str, Any]) -> dict[str, Any]:
        """The order's capture: made now (the order becomes COMPLETED) or the one it has."""
        unit = order["purchase_units"][0]
        if "payments" not in unit:
            cid, now = _pid(), _iso(time.time())
            capture = {
                "id": cid, "status": self.capture_status, "amount": dict(unit["amount"]),
                "final_capture": True, "seller_protection": {"status": "ELIGIBLE"},
                "create_time": now, "update_time": now, "links": [
                    {"href": f"{self.base_url}/v2/payments/captures/{cid}", "rel": "self",
                     "method": "GET"},
                    {"href": f"{self.base_url}/v2/payments/captures/{cid}/refund",
                     "rel": "refund", "method": "POST"},
                    {"href": f"{self.base_url}/v2/checkout/orders/{order['id']}", "rel": "up",
                     "method": "GET"}]}  # fmt: skip
            for name in ("custom_id", "invoice_id"):
                if name in unit:
                    capture[name] = unit[name]
            if self.capture_status != "COMPLETED":
                capture["status_details"] = {"reason": "PENDING_REVIEW"}
            unit["payments"] = {"captures": [capture]}
            order["status"] = "COMPLETED"
        captured: dict[str, Any] = unit["payments"]["captures"][0]
        return captured

    def approve(self, order_id: str) -> None:
        """The buyer approved the order on PayPal's page (PayPal then sends the webhook)."""
        order = self.orders[order_id]
        if order["status"] in ("CREATED", "PAYER_ACTION_REQUIRED"):
            order["status"] = "APPROVED"
            order["payer"] = {"name": {"given_name": "John", "surname": "Doe"},
                              "email_address": "buyer@example.com", "payer_id": _pid(13),
                              "address": {"country_code": "DE"}}  # fmt: skip
            order["payment_source"] = {"paypal": {"email_address": "buyer@example.com",
                                                  "account_id": order["payer"]["payer_id"],
                                                  "account_status": "VERIFIED"}}  # fmt: skip

    def approved_event(self, order_id: str, **kw: Any) -> tuple[bytes, dict[str, str]]:
        """``CHECKOUT.ORDER.APPROVED`` as PayPal sends it when the buyer approves (approving the
        order first if that has not happened): the order, as it was then, is the resource."""
        self.approve(order_id)
        order = copy.deepcopy(self.orders[order_id])
        order["status"] = "APPROVED"
        order["purchase_units"][0].pop("payments", None)
        order["links"] = [li for li in order["links"] if li["rel"] in ("self", "capture")]
        return self.event("CHECKOUT.ORDER.APPROVED", order, **kw)

    def capture_completed_event(self, order_id: str, **kw: Any) -> tuple[bytes, dict[str, str]]:
        """``PAYMENT.CAPTURE.COMPLETED`` for the order's capture (capturing the approved order
        now if nobody has, as after a capture): the capture is the resource."""
        order = self.orders[order_id]
        if order["status"] not in ("APPROVED", "COMPLETED"):
            raise ValueError(f"order {order_id} is {order['status']}: nothing was captured")
        resource = copy.deepcopy(self._capture(order))
        resource["supplementary_data"] = {"related_ids": {"order_id": order_id}}
        return self.event("PAYMENT.CAPTURE.COMPLETED", resource, **kw)

    def event(self, event_type: str, resource: dict[str, Any], *, event_id: str | None = None,
              at: float | None = None, webhook_id: str | None = None,
              key: rsa.RSAPrivateKey | None = None) -> tuple[bytes, dict[str, str]]:  # fmt: skip
        """(body, headers) of a webhook delivery of ``event_type`` about ``resource``, signed
        with ``key`` (another key: a forgery) for ``webhook_id`` at ``at`` (default now)."""
        sent = time.time() if at is None else at
        eid = event_id or f"WH-{_pid()}-{_pid()}"
        kind = "capture" if event_type.startswith("PAYMENT.CAPTURE.") else "checkout-order"
        amount = resource.get("amount") or resource.get("purchase_units", [{}])[0].get("amount")
        summary = f"{event_type} for {amount['currency_code']} {amount['value']}" if amount else ""
        body = json.dumps({
            "id": eid, "event_version": "1.0", "create_time": _iso(sent),
            "resource_type": kind, "resource_version": "2.0", "event_type": event_type,
            "summary": summary, "resource": resource, "links": [
                {"href": f"{self.base_url}/v1/notifications/webhooks-events/{eid}",
                 "rel": "self", "method": "GET"},
                {"href": f"{self.base_url}/v1/notifications/webhooks-events/{eid}/resend",
                 "rel": "resend", "method": "POST"}],
        }).encode()  # fmt: skip
        return body, self.sign(body, at=sent, webhook_id=webhook_id, key=key)

    def sign(self, body: bytes, *, at: float | None = None, webhook_id: str | None = None,
             key: rsa.RSAPrivateKey | None = None) -> dict[str, str]:  # fmt: skip
        """The headers PayPal sends with ``body`` (any bytes): its transmission signature."""
        tid, when = str(uuid.uuid1()), _iso(time.time() if at is None else at)
        message = f"{tid}|{when}|{webhook_id or self.webhook_id}|{zlib.crc32(body)}".encode()
        signature = (key or self.key).sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {"paypal-transmission-id": tid, "paypal-transmission-time": when,
                "paypal-transmission-sig": base64.b64encode(signature).decode(),
                "paypal-cert-url": self.cert_url, "paypal-auth-algo": "SHA256withRSA",
                "content-type": "application/json"}  # fmt: skip


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json",
                    headers={"paypal-debug-id": secrets.token_hex(7)})  # fmt: skip


def _invalid(where: str, issue: str, description: str) -> tuple[int, dict[str, Any]]:
    detail = {"field": where, "location": "body", "issue": issue, "description": description}
    return 400, {"name": "INVALID_REQUEST", "message": "Request is not well-formed,"
                 " syntactically incorrect, or violates schema.",
                 "debug_id": secrets.token_hex(7), "details": [detail]}  # fmt: skip


def _unprocessable(issue: str, description: str) -> tuple[int, dict[str, Any]]:
    return 422, {"name": "UNPROCESSABLE_ENTITY", "message": "The requested action could not be"
                 " performed, semantically incorrect, or failed business validation.",
                 "debug_id": secrets.token_hex(7),
                 "details": [{"issue": issue, "description": description}]}  # fmt: skip


def _not_found(order_id: str) -> tuple[int, dict[str, Any]]:
    detail = {"issue": "INVALID_RESOURCE_ID", "description": f"Order {order_id} does not exist."}
    return 404, {"name": "RESOURCE_NOT_FOUND", "message": "The specified resource does not"
                 " exist.", "debug_id": secrets.token_hex(7), "details": [detail]}  # fmt: skip

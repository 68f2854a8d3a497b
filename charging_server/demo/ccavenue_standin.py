"""A local stand-in for CCAvenue, faithful to what the adapter uses (CCAvenue cannot be reached
from here): ``POST /apis/servlet/DoWebTrans`` with ``command=generateQuickInvoice``, the access
code checked and the request decrypted with the working key (the same merchant_reference_no
answers the same invoice), and the payment response CCAvenue posts once an invoice is paid:
``encResp=<hex>&orderNo=<order id>``, encrypted as the integration kits encrypt it."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request, Response

from billing.gateways.ccavenue_crypto import decrypt, encrypt
from billing.gateways.ccavenue_gateway import (
    IST,
    TRANS_DATE_FORMAT,
    encode_fields,
    to_decimal,
    to_minor,
)
from billing.minor_units import exponent
from charging_server.demo.loopback import LoopbackServer

_ids = itertools.count(1)
_ORDER_ID = re.compile(r"[A-Za-z0-9_/-]{1,30}")  # CCAvenue's order_id rule
_FAILURES = {"Failure": "Transaction declined by the bank", "Aborted": "Cancelled by the user",
             "Invalid": "Invalid transaction", "Timeout": "Session timed out"}  # fmt: skip


@dataclass
class CCAvenueStandIn(LoopbackServer):
    merchant_id: str = "2000001"
    access_code: str = "AVSTANDIN00AA11BB22"
    working_key: str = "0123456789ABCDEF0123456789ABCDEF"
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)  # by invoice_id
    by_ref: dict[str, str] = field(default_factory=dict)  # merchant_reference_no -> invoice_id
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/apis/servlet/DoWebTrans")
        async def do_web_trans(request: Request) -> Response:
            form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
            if form.get("access_code") != self.access_code:
                return _failed("Access_code: Invalid Parameter")
            if form.get("command") != "generateQuickInvoice":
                return _failed(f"Command: Invalid Parameter {form.get('command', '')}"[:80])
            if form.get("request_type") != "JSON" or form.get("response_type") != "JSON":
                return _failed("Request_type/response_type: Invalid Parameter")
            try:
                req: Any = json.loads(decrypt(form.get("enc_request", ""), self.working_key))
            except ValueError:
                return _failed("Enc_request: Decryption failed")
            if not isinstance(req, dict):
                return _failed("Enc_request: Invalid Parameter")
            return self._answer(self._invoice(req))

        @app.get("/pay/{invoice_id}")
        async def pay_page(invoice_id: str) -> Response:
            inv = self.invoices.get(invoice_id)
            if inv is None:
                return Response("no such invoice", status_code=404)
            return Response(f"<p>Pay {inv['amount']} {inv['currency']}: {inv['description']}"
                            "</p>", media_type="text/html")  # fmt: skip

        return app

    def _invoice(self, req: dict[str, Any]) -> dict[str, Any]:
        """The quick invoice ``req`` asks for, or ``{error_code, error_desc}``."""
        ref, currency = str(req.get("merchant_reference_no", "")), str(req.get("currency", ""))
        try:
            minor = to_minor(str(req.get("amount", "")), exponent(currency))
        except ValueError:
            return _error("51419", "Invalid amount or currency")
        if minor <= 0:
            return _error("51419", "Invalid amount")
        if not _ORDER_ID.fullmatch(ref):
            return _error("51420", "Invalid merchant_reference_no")
        if not str(req.get("customer_name", "")).strip():
            return _error("51421", "customer_name is required")
        if ref in self.by_ref:  # the same reference: the same invoice, if it asks the same
            inv = self.invoices[self.by_ref[ref]]
            if (inv["minor"], inv["currency"]) != (minor, currency):
                return _error("51422", "merchant_reference_no already used")
            return inv
        n = next(_ids)
        invoice_id = f"{7000000 + n}"
        inv = {
            "invoice_id": invoice_id, "order_id": ref, "minor": minor, "currency": currency,
            "amount": to_decimal(minor, exponent(currency)), "status": "Unpaid",
            "customer_name": str(req["customer_name"]),
            "description": str(req.get("invoice_description", "")),
            "tiny_url": f"{self.base_url}/pay/{invoice_id}", "tracking_id": f"{310000000000 + n}",
        }  # fmt: skip
        self.invoices[invoice_id] = inv
        self.by_ref[ref] = invoice_id
        return inv

    def _answer(self, inv: dict[str, Any]) -> Response:
        ok = "error_code" not in inv
        body = {"invoice_id": inv.get("invoice_id", ""), "tiny_url": inv.get("tiny_url", ""),
                "invoice_status": 0 if ok else 1, "error_desc": inv.get("error_desc", ""),
                "error_code": inv.get("error_code", "")}  # fmt: skip
        enc = encrypt(json.dumps(body), self.working_key)
        return Response(urlencode({"status": "0", "enc_response": enc}),
                        media_type="text/plain")  # fmt: skip

    def response(self, order_id: str, *, status: str = "Success", amount: int | None = None,
                 tracking_id: str | None = None, at: datetime | None = None,
                 working_key: str | None = None) -> bytes:  # fmt: skip
        """The form CCAvenue posts for ``order_id``'s payment: ``encResp=...&orderNo=...``.
        ``amount`` (minor units) defaults to the invoice's; ``at`` to now."""
        inv = self.invoices.get(self.by_ref.get(order_id, ""), {})
        currency = str(inv.get("currency", "INR"))
        minor = amount if amount is not None else inv.get("minor")
        if minor is None:
            raise ValueError(f"no invoice for {order_id}: give the amount")
        tracking = tracking_id or str(inv.get("tracking_id") or 310000000000 + next(_ids))
        ok = status == "Success"
        fields = {
            "order_id": order_id, "tracking_id": tracking,
            "bank_ref_no": f"BRN{tracking[-8:]}" if ok else "null", "order_status": status,
            "failure_message": "" if ok else _FAILURES.get(status, ""),
            "payment_mode": "Net Banking", "card_name": "AvenuesTest", "status_code": "null",
            "status_message": "Y" if ok else "N", "currency": currency,
            "amount": to_decimal(int(minor), exponent(currency)),
            "billing_name": str(inv.get("customer_name", "")),
            **{f"merchant_param{i}": "" for i in range(1, 6)},
            "vault": "N", "offer_type": "null", "offer_code": "null", "discount_value": "0.0",
            "mer_amount": to_decimal(int(minor), exponent(currency)), "eci_value": "null",
            "retry": "N", "response_code": "0" if ok else "1", "billing_notes": "",
            "trans_date": (at or datetime.now(UTC)).astimezone(IST).strftime(TRANS_DATE_FORMAT),
            "bin_country": "INDIA",
        }  # fmt: skip
        enc = encrypt(encode_fields(fields), working_key or self.working_key)
        return urlencode({"encResp": enc, "orderNo": order_id}).encode()

    def paid(self, order_id: str, *, at: datetime | None = None) -> bytes:
        """The customer paid ``order_id``'s invoice: the Success response CCAvenue posts."""
        if order_id in self.by_ref:
            self.invoices[self.by_ref[order_id]]["status"] = "Paid"
        return self.response(order_id, at=at)


def _failed(message: str) -> Response:
    """CCAvenue's refusal of the call itself: status 1, the message in plain text."""
    return Response(urlencode({"status": "1", "enc_response": message}),
                    media_type="text/plain")  # fmt: skip


def _error(code: str, desc: str) -> dict[str, Any]:
    """A refused request, answered encrypted (the codes are this stand-in's own)."""
    return {"error_code": code, "error_desc": desc}

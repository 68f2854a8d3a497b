"""A local stand-in for Stripe's API, faithful to what the adapter uses (Stripe cannot be reached
from here): ``POST /v1/checkout/sessions`` with Stripe's form encoding, bearer key and
Idempotency-Key (the same key answers the same session), ``POST /v1/payment_intents`` off-session
on a saved card (declined for Stripe's declining test card), and the ``checkout.session.completed``
event a paid session produces, signed as Stripe signs webhooks (``Stripe-Signature: t=...,v1=...``,
by the official package's own helper)."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from stripe import WebhookSignature

from charging_server.demo.loopback import LoopbackServer

_ids = itertools.count(1)


@dataclass
class StripeStandIn(LoopbackServer):
    api_key: str = "sk_test_standin"
    webhook_secret: str = "whsec_standin_secret"
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    declining: set[str] = field(default_factory=lambda: {"pm_card_chargeDeclined"})
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/checkout/sessions")
        async def create(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                return _error(401, "Invalid API Key provided")
            key = request.headers.get("idempotency-key", "")
            if key and key in self.by_key:
                return Response(json.dumps(self.sessions[self.by_key[key]]),
                                media_type="application/json")  # fmt: skip
            form = dict(parse_qsl((await request.body()).decode()))  # Stripe's form encoding
            amount = int(str(form.get("line_items[0][price_data][unit_amount]", "0")))
            currency = str(form.get("line_items[0][price_data][currency]", ""))
            if amount <= 0 or not currency:
                return _error(400, "line_items[0][price_data] is incomplete")
            n = next(_ids)
            sid = f"cs_test_{n:08d}"
            session = {
                "id": sid, "object": "checkout.session", "mode": "payment",
                "url": f"{self.base_url}/pay/{sid}", "amount_total": amount,
                "currency": currency, "payment_status": "unpaid", "status": "open",
                "payment_intent": f"pi_test_{n:08d}",
                "metadata": {k[len("metadata["):-1]: str(v) for k, v in form.items()
                             if k.startswith("metadata[")},
            }  # fmt: skip
            self.sessions[sid] = session
            if key:
                self.by_key[key] = sid
            return Response(json.dumps(session), media_type="application/json")

        @app.post("/v1/payment_intents")
        async def intent(request: Request) -> Response:
            """An off-session PaymentIntent confirmed at once: Stripe's test card
            ``pm_card_chargeDeclined`` (any in ``declining``) is declined with a 402."""
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                return _error(401, "Invalid API Key provided")
            key = request.headers.get("idempotency-key", "")
            if key and f"pi:{key}" in self.by_key:
                pi = self.intents[self.by_key[f"pi:{key}"]]
                return _intent_reply(pi)
            form = dict(parse_qsl((await request.body()).decode()))
            amount = int(str(form.get("amount", "0")))
            if amount <= 0 or not form.get("currency") or not form.get("customer"):
                return _error(400, "amount, currency and customer are required")
            declined = form.get("payment_method", "") in self.declining
            pid = f"pi_test_{next(_ids):08d}"
            pi = {"id": pid, "object": "payment_intent", "amount": amount,
                  "amount_received": 0 if declined else amount,
                  "currency": form["currency"], "customer": form["customer"],
                  "payment_method": form.get("payment_method"),
                  "status": "requires_payment_method" if declined else "succeeded",
                  "metadata": {k[len("metadata["):-1]: str(v) for k, v in form.items()
                               if k.startswith("metadata[")}}  # fmt: skip
            self.intents[pid] = pi
            if key:
                self.by_key[f"pi:{key}"] = pid
            return _intent_reply(pi)

        return app

    def paid_event(self, session_id: str, *, event_id: str | None = None,
                   at: int | None = None, secret: str | None = None) -> tuple[bytes, str]:
        """(body, Stripe-Signature) of ``checkout.session.completed`` for a paid session."""
        session = {**self.sessions[session_id], "payment_status": "paid", "status": "complete"}
        self.sessions[session_id] = session
        return self.event("checkout.session.completed", session, event_id=event_id, at=at,
                          secret=secret)  # fmt: skip

    def event(self, kind: str, obj: dict[str, Any], *, event_id: str | None = None,
              at: int | None = None, secret: str | None = None) -> tuple[bytes, str]:
        created = int(time.time()) if at is None else at
        body = json.dumps({
            "id": event_id or f"evt_test_{next(_ids):08d}", "object": "event", "type": kind,
            "api_version": "2024-06-20", "created": created, "livemode": False,
            "data": {"object": obj},
        }).encode()  # fmt: skip
        header = WebhookSignature.generate_signature_header(
            body.decode(), secret or self.webhook_secret, timestamp=created)
        return body, header


def _intent_reply(pi: dict[str, Any]) -> Response:
    if pi["status"] == "succeeded":
        return Response(json.dumps(pi), media_type="application/json")
    body = {"error": {"type": "card_error", "code": "card_declined",
                      "decline_code": "generic_decline", "message": "Your card was declined.",
                      "payment_intent": pi}}  # fmt: skip
    return Response(json.dumps(body), status_code=402, media_type="application/json")


def _error(status: int, message: str) -> Response:
    body = {"error": {"type": "invalid_request_error", "message": message}}
    return Response(json.dumps(body), status_code=status, media_type="application/json")

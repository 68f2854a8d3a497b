"""What an invoice was composed from, as JSON (stored with the draft, so a review correction
recomposes exactly the same charges, discounts and taxes plus the admin's change)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import orjson

from billing.composition import Charge, InvoiceInputs, LineKind
from billing.discounts import Discount, DiscountKind, DiscountScope
from billing.taxes import TaxLabel, TaxRounding


def _day(d: date | None) -> str | None:
    return d.isoformat() if d is not None else None


def to_doc(i: InvoiceInputs) -> dict[str, Any]:
    return {
        "currency": i.currency, "rounding": i.rounding.value,
        "credit_available": i.credit_available, "minimum_spend": i.minimum_spend,
        "minimum_spend_tax_codes": list(i.minimum_spend_tax_codes),
        "charges": [
            {"kind": c.kind.value, "description": c.description, "amount": c.amount,
             "tax_codes": list(c.tax_codes), "quantity": str(c.quantity), "unit": c.unit,
             "calls": c.calls, "seconds": c.seconds, "ref": c.ref}
            for c in i.charges
        ],
        "discounts": [
            {"code": d.code, "name": d.name, "kind": d.kind.value, "value": str(d.value),
             "scope": d.scope.value, "starts": _day(d.starts), "ends": _day(d.ends)}
            for d in i.discounts
        ],
        "taxes": [
            {"code": t.code, "name": t.name, "rate": str(t.rate), "inclusive": t.inclusive,
             "compound": t.compound, "order": t.order}
            for t in i.taxes
        ],
    }


def dumps(i: InvoiceInputs) -> str:
    return orjson.dumps(to_doc(i)).decode()


def charge_of(c: dict[str, Any]) -> Charge:
    return Charge(
        kind=LineKind(c["kind"]), description=c["description"], amount=int(c["amount"]),
        tax_codes=tuple(c["tax_codes"]), quantity=Decimal(c["quantity"]), unit=c["unit"],
        calls=int(c["calls"]), seconds=int(c["seconds"]), ref=c["ref"],
    )


def from_doc(doc: dict[str, Any]) -> InvoiceInputs:
    def day(v: str | None) -> date | None:
        return date.fromisoformat(v) if v else None

    discounts = []
    for d in doc["discounts"]:
        kind = DiscountKind(d["kind"])
        value: Decimal | int = Decimal(d["value"]) if kind is DiscountKind.PERCENT else int(
            Decimal(d["value"]))
        discounts.append(Discount(code=d["code"], name=d["name"], kind=kind, value=value,
                                  scope=DiscountScope(d["scope"]), starts=day(d["starts"]),
                                  ends=day(d["ends"])))
    return InvoiceInputs(
        currency=doc["currency"], rounding=TaxRounding(doc["rounding"]),
        credit_available=int(doc["credit_available"]), minimum_spend=int(doc["minimum_spend"]),
        minimum_spend_tax_codes=tuple(doc["minimum_spend_tax_codes"]),
        charges=tuple(charge_of(c) for c in doc["charges"]),
        discounts=tuple(discounts),
        taxes=tuple(
            TaxLabel(code=t["code"], name=t["name"], rate=Decimal(t["rate"]),
                     inclusive=t["inclusive"], compound=t["compound"], order=t["order"])
            for t in doc["taxes"]
        ),
    )


def loads(text: str | bytes) -> InvoiceInputs:
    return from_doc(orjson.loads(text))

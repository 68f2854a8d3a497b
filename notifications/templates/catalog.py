"""What a tenant can be told about: each event with its variables, sample data and default texts.

The catalogue is data, checked by the renderer like a tenant's own template (a default that stops
validating fails the tests, not a send). Money variables are integers: minor units of the
account's currency (``|money``), or engine micros where the figure comes from the charging engine
(``balance_micros``..., ``|micros``). Dates are ``datetime.date`` (``|date``). An optional figure
that does not apply is ``None``, never missing: the renderer treats a missing name as an error.

Defaults: SMS in ``en``, ``de`` and ``fr``; email (subject, text, HTML) in ``en``. Webhooks have
no template: they carry the event's JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = ["COMMON_VARIABLES", "EVENTS", "PARTS", "WEBHOOK_NOTE", "Channel", "Event",
           "NotInCatalog", "get_event", "parts_of"]  # fmt: skip


class NotInCatalog(LookupError):
    """An event, channel, part or language the catalogue does not have."""


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    WEBHOOK = "webhook"


PARTS: Final[Mapping[Channel, tuple[str, ...]]] = MappingProxyType({
    Channel.SMS: ("body",),
    Channel.EMAIL: ("subject", "text", "html"),
    Channel.WEBHOOK: (),
})  # fmt: skip
WEBHOOK_NOTE: Final = (
    "webhooks have no template: they send the event's JSON (type, timestamp, data), signed"
)

# name -> (description, sample value). One glossary, so that a name means the same everywhere.
_GLOSSARY: Final[Mapping[str, tuple[str, object]]] = {
    "customer_name": ("the customer's name, as billed", "Ada Lovelace"),
    "account_id": ("the customer's account id", "acc-1001"),
    "tenant_name": ("the operator's name: who the message is from", "Example Telecom"),
    "invoice_number": ("the invoice's number", "INV-2026-0042"),
    "amount_due": ("the amount to pay, minor units: |money", 12_345),
    "due_date": ("the invoice's due date: |date", date(2026, 3, 15)),
    "collection_date": ("the day the stored payment method is charged (|date), or none",
                        date(2026, 3, 15)),
    "invoice_url": ("a link to the invoice", "https://pay.example.com/i/INV-2026-0042"),
    "pay_url": ("a link to pay online", "https://pay.example.com/p/acc-1001"),
    "days_before_due": ("days left until the due date", 3),
    "amount": ("the amount paid, topped up or collected, minor units: |money", 5_000),
    "paid_on": ("the day the payment was made: |date", date(2026, 3, 14)),
    "failure_reason": ("why the payment failed, as the gateway said, or none", "card declined"),
    "step_name": ("the dunning ladder step entered, as configured (e.g. reminder)", "reminder"),
    "amount_overdue": ("the open overdue amount, minor units: |money", 12_345),
    "days_overdue": ("days since the oldest unpaid due date", 14),
    "balance_micros": ("the prepaid balance, engine micros: |micros", 1_250_000),
    "threshold_micros": ("the low-balance threshold crossed, engine micros: |micros", 2_000_000),
    "topup_url": ("a link to top up", "https://pay.example.com/t/acc-1001"),
    "expiring_micros": ("the part of the balance that expires, micros: |micros", 3_500_000),
    "expiry_date": ("the day it expires: |date", date(2026, 3, 31)),
    "inactivation_date": ("the day the account becomes inactive: |date", date(2026, 4, 30)),
    "receipt_number": ("the receipt's number", "RC-000815"),
    "method": ("how it was paid, as the customer reads it (cash, cheque...)", "cash"),
    "agent_name": ("the collection agent who took the payment", "Grace Hopper"),
    "received_on": ("the day the payment was collected: |date", date(2026, 3, 10)),
    "prepaid": ("true: prepaid (balance_micros set); false: postpaid (amount_due, due_date)",
                True),
    "support_contact": ("where to get help: a phone number or web address", "+44 20 7946 0000"),
    "keyword": ("the word to text for a balance", "BALANCE"),
}
_COMMON: Final = ("customer_name", "account_id", "tenant_name")
COMMON_VARIABLES: Final[Mapping[str, str]] = MappingProxyType(
    {name: _GLOSSARY[name][0] for name in _COMMON}
)


@dataclass(frozen=True, slots=True)
class Event:
    """One notifiable event. ``samples[0]`` is the preview; the others cover other branches
    (no collection date, a postpaid account...) so that validation renders them too."""

    name: str
    summary: str
    own_variables: Mapping[str, str]
    samples: tuple[Mapping[str, object], ...]
    defaults: Mapping[Channel, Mapping[str, Mapping[str, str]]]  # channel -> language -> part

    @property
    def variables(self) -> Mapping[str, str]:
        """Every name a template of this event can use: the common ones and its own."""
        return {**COMMON_VARIABLES, **self.own_variables}

    @property
    def channels(self) -> tuple[Channel, ...]:
        return tuple(self.defaults)

    def languages(self, channel: Channel) -> tuple[str, ...]:
        return tuple(self.defaults.get(channel, {}))

    def default(self, channel: Channel, part: str, language: str) -> str:
        try:
            return self.defaults[channel][language][part]
        except KeyError:
            raise NotInCatalog(
                f"no default {channel} {part} in {language!r} for {self.name}"
            ) from None


def _email(subject: str, *paragraphs: str, link: tuple[str, str] | None = None
           ) -> dict[str, str]:  # fmt: skip
    """Text and HTML parts from the same paragraphs, so that the two never say different things."""
    paras = ["Hello {{ customer_name }},", *paragraphs]
    text, html = list(paras), [f"<p>{p}</p>" for p in paras]
    if link is not None:
        label, name = link
        text.append(f"{label}: {{{{ {name} }}}}")
        html.append(f'<p><a href="{{{{ {name} }}}}">{label}</a></p>')
    text.append("{{ tenant_name }}")
    html.append("<p>{{ tenant_name }}</p>")
    return {
        "subject": subject,
        "text": "\n\n".join(text) + "\n",
        "html": "<!DOCTYPE html>\n<html><body>\n" + "\n".join(html) + "\n</body></html>\n",
    }


def _event(name: str, summary: str, names: tuple[str, ...], *, sms: Mapping[str, str],
           email: Mapping[str, str] | None = None,
           variants: tuple[Mapping[str, object], ...] = ()) -> Event:  # fmt: skip
    base = {n: _GLOSSARY[n][1] for n in (*_COMMON, *names)}
    defaults: dict[Channel, Mapping[str, Mapping[str, str]]] = {
        Channel.SMS: {lang: {"body": body} for lang, body in sms.items()}
    }
    if email is not None:
        defaults[Channel.EMAIL] = {"en": email}
    return Event(
        name=name, summary=summary,
        own_variables=MappingProxyType({n: _GLOSSARY[n][0] for n in names}),
        samples=(base, *({**base, **v} for v in variants)),
        defaults=MappingProxyType(defaults),
    )  # fmt: skip


_INVOICE_WHEN = {
    "en": "{% if collection_date %}we will collect it on or just after "
          "{{ collection_date|date }}{% else %}please pay by {{ due_date|date }}{% endif %}",
    "de": "{% if collection_date %}wir buchen sie am oder kurz nach dem "
          "{{ collection_date|date }} ab{% else %}bitte zahlen Sie bis {{ due_date|date }}"
          "{% endif %}",
    "fr": "{% if collection_date %}nous la prélèverons le {{ collection_date|date }} ou peu "
          "après{% else %}merci de la régler avant le {{ due_date|date }}{% endif %}",
}  # fmt: skip
_FOR_INVOICE = {
    "en": "{% if invoice_number %} for invoice {{ invoice_number }}{% endif %}",
    "de": "{% if invoice_number %} für Rechnung {{ invoice_number }}{% endif %}",
    "fr": "{% if invoice_number %} pour la facture {{ invoice_number }}{% endif %}",
}
_WHY = "{% if failure_reason %} ({{ failure_reason }}){% endif %}"
_T = "{{ tenant_name }}: "
_T_FR = "{{ tenant_name }} : "

_EVENTS: Final = (
    _event("invoice.ready", "an invoice is issued",
           ("invoice_number", "amount_due", "due_date", "collection_date", "invoice_url"),
           sms={
               "en": _T + "your invoice {{ invoice_number }} of {{ amount_due|money }} is ready; "
                     + _INVOICE_WHEN["en"] + ". {{ invoice_url }}",
               "de": _T + "Ihre Rechnung {{ invoice_number }} über {{ amount_due|money }} ist "
                     "da; " + _INVOICE_WHEN["de"] + ". {{ invoice_url }}",
               "fr": _T_FR + "votre facture {{ invoice_number }} de {{ amount_due|money }} est "
                     "disponible ; " + _INVOICE_WHEN["fr"] + ". {{ invoice_url }}",
           },
           email=_email("Your invoice {{ invoice_number }} is ready",
                        "Your invoice {{ invoice_number }} of {{ amount_due|money }} is ready; "
                        + _INVOICE_WHEN["en"] + ".", link=("View your invoice", "invoice_url")),
           variants=({"collection_date": None},)),
    _event("invoice.reminder", "some days before an unpaid invoice's due date",
           ("invoice_number", "amount_due", "due_date", "days_before_due", "pay_url"),
           sms={
               "en": _T + "reminder: invoice {{ invoice_number }} of {{ amount_due|money }} is due "
                     "in {{ days_before_due }} day{% if days_before_due != 1 %}s{% endif %}, on "
                     "{{ due_date|date }}. Pay: {{ pay_url }}",
               "de": _T + "Erinnerung: Rechnung {{ invoice_number }} über {{ amount_due|money }} "
                     "ist in {{ days_before_due }} Tag{% if days_before_due != 1 %}en{% endif %} "
                     "fällig, am {{ due_date|date }}. Zahlen: {{ pay_url }}",
               "fr": _T_FR + "rappel : la facture {{ invoice_number }} de {{ amount_due|money }} "
                     "est à payer dans {{ days_before_due }} jour{% if days_before_due != 1 %}s"
                     "{% endif %}, le {{ due_date|date }}. Payer : {{ pay_url }}",
           },
           email=_email("Invoice {{ invoice_number }} is due on {{ due_date|date }}",
                        "A reminder: your invoice {{ invoice_number }} of {{ amount_due|money }} "
                        "is due on {{ due_date|date }}.", link=("Pay now", "pay_url")),
           variants=({"days_before_due": 1},)),
    _event("payment.succeeded", "a payment is received", ("amount", "invoice_number", "paid_on"),
           sms={
               "en": _T + "thank you, we received your payment of {{ amount|money }}"
                     + _FOR_INVOICE["en"] + " on {{ paid_on|date }}.",
               "de": _T + "Vielen Dank, wir haben Ihre Zahlung über {{ amount|money }}"
                     + _FOR_INVOICE["de"] + " am {{ paid_on|date }} erhalten.",
               "fr": _T_FR + "merci, nous avons reçu votre paiement de {{ amount|money }}"
                     + _FOR_INVOICE["fr"] + " le {{ paid_on|date }}.",
           },
           email=_email("Thank you for your payment",
                        "We received your payment of {{ amount|money }}" + _FOR_INVOICE["en"]
                        + " on {{ paid_on|date }}. Thank you."),
           variants=({"invoice_number": None},)),
    _event("payment.failed", "a payment attempt fails",
           ("amount", "invoice_number", "failure_reason", "pay_url"),
           sms={
               "en": _T + "your payment of {{ amount|money }}" + _FOR_INVOICE["en"]
                     + " did not go through" + _WHY + ". Please pay here: {{ pay_url }}",
               "de": _T + "Ihre Zahlung über {{ amount|money }}" + _FOR_INVOICE["de"]
                     + " ist fehlgeschlagen" + _WHY + ". Bitte zahlen Sie hier: {{ pay_url }}",
               "fr": _T_FR + "votre paiement de {{ amount|money }}" + _FOR_INVOICE["fr"]
                     + " a échoué" + _WHY + ". Pour payer : {{ pay_url }}",
           },
           email=_email("Your payment did not go through",
                        "Your payment of {{ amount|money }}" + _FOR_INVOICE["en"]
                        + " did not go through" + _WHY + ".",
                        "Please pay online so that your service is not interrupted.",
                        link=("Pay now", "pay_url")),
           variants=({"invoice_number": None, "failure_reason": None},)),
    _event("dunning.step", "an overdue account enters a step of the dunning ladder",
           ("step_name", "amount_overdue", "days_overdue", "pay_url"),
           sms={
               "en": _T + "{{ amount_overdue|money }} on your account is {{ days_overdue }} day"
                     "{% if days_overdue != 1 %}s{% endif %} overdue. Please pay now to keep "
                     "your service: {{ pay_url }}",
               "de": _T + "{{ amount_overdue|money }} auf Ihrem Konto sind seit {{ days_overdue }} "
                     "Tag{% if days_overdue != 1 %}en{% endif %} überfällig. Bitte zahlen Sie "
                     "jetzt, damit Ihr Dienst aktiv bleibt: {{ pay_url }}",
               "fr": _T_FR + "{{ amount_overdue|money }} sont en retard de paiement depuis "
                     "{{ days_overdue }} jour{% if days_overdue != 1 %}s{% endif %}. Payez "
                     "maintenant pour garder votre service : {{ pay_url }}",
           },
           email=_email("Your account is overdue",
                        "{{ amount_overdue|money }} on your account is {{ days_overdue }} day"
                        "{% if days_overdue != 1 %}s{% endif %} overdue.",
                        "Please pay now to keep your service.", link=("Pay now", "pay_url")),
           variants=({"days_overdue": 1},)),
    _event("account.suspended", "service is suspended (dunning or by the operator)",
           ("amount_due", "pay_url"),
           sms={
               "en": _T + "your service is suspended{% if amount_due %}: {{ amount_due|money }} "
                     "is overdue. Pay to restore it: {{ pay_url }}{% else %}. Please contact us."
                     "{% endif %}",
               "de": _T + "Ihr Dienst ist gesperrt{% if amount_due %}: {{ amount_due|money }} "
                     "sind überfällig. Zahlen Sie, um ihn freizuschalten: {{ pay_url }}"
                     "{% else %}. Bitte kontaktieren Sie uns.{% endif %}",
               "fr": _T_FR + "votre service est suspendu{% if amount_due %} : "
                     "{{ amount_due|money }} sont impayés. Payez pour le rétablir : {{ pay_url }}"
                     "{% else %}. Merci de nous contacter.{% endif %}",
           },
           email=_email("Your service is suspended",
                        "Your service is suspended{% if amount_due %} because "
                        "{{ amount_due|money }} is overdue. Pay it to restore your service: "
                        "{{ pay_url }}{% else %}. Please contact us to restore it.{% endif %}"),
           variants=({"amount_due": None},)),
    _event("account.restored", "service is active again after a suspension", (),
           sms={
               "en": _T + "thank you, your service is active again.",
               "de": _T + "Vielen Dank, Ihr Dienst ist wieder aktiv.",
               "fr": _T_FR + "merci, votre service est de nouveau actif.",
           },
           email=_email("Your service is active again",
                        "Thank you: your service is active again.")),
    _event("balance.low", "a prepaid balance falls below its threshold",
           ("balance_micros", "threshold_micros", "topup_url"),
           sms={
               "en": _T + "your balance is low: {{ balance_micros|micros }} left. Top up: "
                     "{{ topup_url }}",
               "de": _T + "Ihr Guthaben ist niedrig: noch {{ balance_micros|micros }}. Aufladen: "
                     "{{ topup_url }}",
               "fr": _T_FR + "votre crédit est bas : il reste {{ balance_micros|micros }}. "
                     "Recharger : {{ topup_url }}",
           },
           email=_email("Your balance is low",
                        "Your balance is down to {{ balance_micros|micros }}. Top up to keep "
                        "calling.", link=("Top up", "topup_url"))),
    _event("balance.exhausted", "a prepaid balance is used up", ("topup_url",),
           sms={
               "en": _T + "your balance is used up. Top up to keep calling: {{ topup_url }}",
               "de": _T + "Ihr Guthaben ist aufgebraucht. Laden Sie auf, um weiter zu "
                     "telefonieren: {{ topup_url }}",
               "fr": _T_FR + "votre crédit est épuisé. Rechargez pour continuer à appeler : "
                     "{{ topup_url }}",
           },
           email=_email("Your balance is used up",
                        "Your balance is used up. Top up to keep calling.",
                        link=("Top up", "topup_url"))),
    _event("balance.expiring", "topped-up money is about to expire",
           ("expiring_micros", "expiry_date", "topup_url"),
           sms={
               "en": _T + "{{ expiring_micros|micros }} of your balance expires on "
                     "{{ expiry_date|date }}. Use it before then.",
               "de": _T + "{{ expiring_micros|micros }} Ihres Guthabens verfallen am "
                     "{{ expiry_date|date }}. Nutzen Sie es bis dahin.",
               "fr": _T_FR + "{{ expiring_micros|micros }} de votre crédit expirent le "
                     "{{ expiry_date|date }}. Utilisez-les d'ici là.",
           },
           email=_email("Part of your balance expires on {{ expiry_date|date }}",
                        "{{ expiring_micros|micros }} of your balance expires on "
                        "{{ expiry_date|date }}. Use it before then.",
                        link=("Top up", "topup_url"))),
    _event("account.inactivation_pending", "a dormant prepaid account is about to be inactivated",
           ("inactivation_date", "topup_url"),
           sms={
               "en": _T + "your account will be deactivated on {{ inactivation_date|date }} "
                     "unless you top up: {{ topup_url }}",
               "de": _T + "Ihr Konto wird am {{ inactivation_date|date }} deaktiviert, wenn Sie "
                     "nicht aufladen: {{ topup_url }}",
               "fr": _T_FR + "votre compte sera désactivé le {{ inactivation_date|date }} sauf "
                     "si vous rechargez : {{ topup_url }}",
           },
           email=_email("Your account will be deactivated on {{ inactivation_date|date }}",
                        "Your balance has been empty for a while: your account will be "
                        "deactivated on {{ inactivation_date|date }} unless you top up.",
                        link=("Top up", "topup_url"))),
    _event("topup.confirmed", "a top-up is credited", ("amount", "balance_micros"),
           sms={
               "en": _T + "top-up of {{ amount|money }} received. Your balance is now "
                     "{{ balance_micros|micros }}.",
               "de": _T + "Aufladung über {{ amount|money }} erhalten. Ihr Guthaben beträgt "
                     "jetzt {{ balance_micros|micros }}.",
               "fr": _T_FR + "recharge de {{ amount|money }} reçue. Votre crédit est maintenant "
                     "de {{ balance_micros|micros }}.",
           },
           email=_email("Top-up of {{ amount|money }} received",
                        "We received your top-up of {{ amount|money }}. Your balance is now "
                        "{{ balance_micros|micros }}.")),
    _event("collection.receipt", "an agent collects a payment (cash, cheque...)",
           ("amount", "method", "agent_name", "receipt_number", "received_on"),
           sms={
               "en": _T + "receipt {{ receipt_number }}: {{ amount|money }} ({{ method }}) "
                     "received by {{ agent_name }} on {{ received_on|date }}. Thank you.",
               "de": _T + "Quittung {{ receipt_number }}: {{ amount|money }} ({{ method }}) "
                     "erhalten von {{ agent_name }} am {{ received_on|date }}. Vielen Dank.",
               "fr": _T_FR + "reçu {{ receipt_number }} : {{ amount|money }} ({{ method }}) "
                     "encaissé par {{ agent_name }} le {{ received_on|date }}. Merci.",
           },
           email=_email("Your receipt {{ receipt_number }}",
                        "{{ agent_name }} received {{ amount|money }} ({{ method }}) from you on "
                        "{{ received_on|date }}. Your receipt number is {{ receipt_number }}.")),
    _event("sms.balance_reply", "the answer to an inbound BALANCE text",
           ("prepaid", "balance_micros", "amount_due", "due_date"),
           sms={
               "en": _T + "{% if prepaid %}your balance is {{ balance_micros|micros }}.{% else %}"
                     "amount due: {{ amount_due|money }}{% if due_date %}, due on "
                     "{{ due_date|date }}{% endif %}.{% endif %}",
               "de": _T + "{% if prepaid %}Ihr Guthaben: {{ balance_micros|micros }}.{% else %}"
                     "offener Betrag: {{ amount_due|money }}{% if due_date %}, fällig am "
                     "{{ due_date|date }}{% endif %}.{% endif %}",
               "fr": _T_FR + "{% if prepaid %}votre crédit : {{ balance_micros|micros }}."
                     "{% else %}montant dû : {{ amount_due|money }}{% if due_date %}, à payer "
                     "avant le {{ due_date|date }}{% endif %}.{% endif %}",
           },
           variants=({"prepaid": False, "balance_micros": None},
                     {"prepaid": False, "balance_micros": None, "amount_due": 0,
                      "due_date": None})),
    _event("sms.help", "the answer to an inbound HELP text (or any unknown one)",
           ("keyword", "support_contact"),
           sms={
               "en": _T + "text {{ keyword }} for your balance. Help: {{ support_contact }}",
               "de": _T + "Senden Sie {{ keyword }} für Ihr Guthaben. Hilfe: "
                     "{{ support_contact }}",
               "fr": _T_FR + "envoyez {{ keyword }} pour connaître votre crédit. Aide : "
                     "{{ support_contact }}",
           }),
)  # fmt: skip

EVENTS: Final[Mapping[str, Event]] = MappingProxyType({e.name: e for e in _EVENTS})


def get_event(name: str) -> Event:
    try:
        return EVENTS[name]
    except KeyError:
        raise NotInCatalog(
            f"unknown event {name!r}; the catalogue has {', '.join(EVENTS)}"
        ) from None


def parts_of(channel: Channel | str) -> tuple[str, ...]:
    """The parts a template of ``channel`` has (none for webhooks)."""
    try:
        return PARTS[Channel(channel)]
    except ValueError:
        raise NotInCatalog(
            f"unknown channel {channel!r}; channels are {', '.join(PARTS)}"
        ) from None

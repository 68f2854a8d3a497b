"""Rate plan and rate requests/responses; a rate is validated by ``rating.model.Rate`` too."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Final, Literal

from pydantic import Field, StringConstraints

from admin_api.schemas import Amount, Body, Id, Micros, Name, Out, Page, Time
from charging_engine.money import Rounding, format_amount
from charging_engine.rating.model import Rate, TimeBand

HHMM: Final = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"
Clock = Annotated[str, StringConstraints(pattern=HHMM), Field(examples=["08:00"])]
Seconds = Annotated[int, Field(ge=0, le=86_400)]
Increment = Annotated[int, Field(ge=1, le=86_400)]
# No surrounding whitespace (a deck could not carry it), no control characters.
_CH = r"[^\x00-\x1f\x7f]"
_EDGE = r"[^\s\x00-\x1f\x7f]"
Trimmed = rf"^({_EDGE}({_CH}{{0,198}}{_EDGE})?)?$"
BandName = rf"^{_EDGE}({_CH}{{0,30}}{_EDGE})?$"
RoundingName = Literal["up", "down", "half_up", "half_even"]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class PlanCreate(Body):
    plan_id: Id
    name: Name = ""
    currency: Currency | None = Field(None, description="Default: the tenant's currency")


class PlanUpdate(Body):
    name: Name


class PlanOut(Out):
    plan_id: str
    name: str
    currency: str
    rates: int
    accounts: int = Field(description="Accounts on this plan")


class PlanPage(Page):
    items: list[PlanOut]


class BandIn(Body):
    name: Annotated[str, StringConstraints(pattern=BandName)]
    weekdays: Annotated[
        list[Annotated[int, Field(ge=0, le=6)]],
        Field(min_length=1, max_length=7, description="0 = Monday"),
    ] = Field(default_factory=lambda: list(range(7)))
    start: Clock = "00:00"
    end: Clock = Field("00:00", description="end <= start wraps past midnight")


class RateIn(Body):
    prefix: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,15}$")]
    description: Annotated[str, StringConstraints(pattern=Trimmed)] = ""
    price_per_minute: Micros
    connect_fee: Micros | None = None
    min_duration: Seconds = 0
    first_increment: Increment = 60
    next_increment: Increment = 60
    grace_seconds: Seconds = 0
    rounding: RoundingName = "up"
    decimals: Annotated[int, Field(ge=0, le=6)] = 4
    band: BandIn | None = None
    active_from: Time | None = None

    def rate(self) -> Rate:
        """The domain rate (raises RateError on a rule Rate enforces)."""
        band = None
        if self.band is not None:
            band = TimeBand(self.band.name, frozenset(self.band.weekdays),
                            _clock(self.band.start), _clock(self.band.end))
        return Rate(
            prefix=self.prefix, price_per_minute=self.price_per_minute,
            description=self.description, connect_fee=self.connect_fee or 0,
            min_duration=self.min_duration, first_increment=self.first_increment,
            next_increment=self.next_increment, grace_seconds=self.grace_seconds,
            rounding=Rounding(self.rounding), decimals=self.decimals, band=band,
            active_from=self.active_from,
        )


def _clock(text: str) -> time:
    return time.fromisoformat(text)


class BandOut(Out):
    name: str
    weekdays: list[int]
    start: str
    end: str


class MatchedRate(Out):
    prefix: str
    description: str
    price_per_minute: Amount
    connect_fee: Amount
    min_duration: int
    first_increment: int
    next_increment: int
    grace_seconds: int
    rounding: RoundingName
    decimals: int
    band: BandOut | None
    active_from: datetime | None


class RateOut(MatchedRate):
    id: int


def _hhmm(t: time) -> str:
    return t.strftime("%H:%M:%S" if t.second else "%H:%M")


def matched_rate(rate: Rate, currency: str | None) -> MatchedRate:
    band = rate.band
    return MatchedRate(
        prefix=rate.prefix, description=rate.description,
        price_per_minute=format_amount(rate.price_per_minute, currency),
        connect_fee=format_amount(rate.connect_fee, currency), min_duration=rate.min_duration,
        first_increment=rate.first_increment, next_increment=rate.next_increment,
        grace_seconds=rate.grace_seconds, rounding=Rounding(rate.rounding).value,
        decimals=rate.decimals,
        band=None if band is None else BandOut(
            name=band.name, weekdays=sorted(band.weekdays), start=_hhmm(band.start),
            end=_hhmm(band.end),
        ),
        active_from=rate.active_from,
    )


def rate_out(rate_id: int, rate: Rate, currency: str | None) -> RateOut:
    return RateOut(id=rate_id, **matched_rate(rate, currency).model_dump())


class RatePage(Page):
    items: list[RateOut]


class DeckImported(Out):
    plan_id: str
    currency: str
    rates: int = Field(description="Rates in the plan now")
    replaced: int = Field(description="Rates the deck replaced")


class PriceRequest(Body):
    """Price a call nobody made: which rate, what cost, how long the money lasts."""

    destination: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    plan_id: Id | None = Field(None, description="Price with this plan ...")
    account_id: Id | None = Field(None, description="... or with this account's plan and funds")
    duration_seconds: Annotated[int, Field(ge=0, le=604_800)] = 60
    at: Time | None = Field(None, description="When the call starts (default now)")
    amount: Micros | None = Field(
        None, description="Funds for max_duration (default: the account's available funds)"
    )


class PriceOut(Out):
    destination: str
    plan_id: str
    currency: str
    at: datetime
    rate: MatchedRate | None = Field(description="The rate that applies; null if none does")
    duration_seconds: int
    billed_seconds: int
    cost: Amount
    amount: Amount | None = Field(description="Funds max_duration_seconds is computed for")
    max_duration_seconds: int | None

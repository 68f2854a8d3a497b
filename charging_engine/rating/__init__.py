"""Rating: which rate prices a call and what it costs. Pure functions and data, no I/O."""

from charging_engine.rating.deck import DeckError, format_deck, parse_deck
from charging_engine.rating.model import Rate, RateError, RatePlan, TimeBand
from charging_engine.rating.numbers import NumberError, normalize
from charging_engine.rating.pricing import billed_seconds, cost, max_duration, next_boundary
from charging_engine.rating.tariff import Tariff

__all__ = [
    "DeckError",
    "NumberError",
    "Rate",
    "RateError",
    "RatePlan",
    "Tariff",
    "TimeBand",
    "billed_seconds",
    "cost",
    "format_deck",
    "max_duration",
    "next_boundary",
    "normalize",
    "parse_deck",
]

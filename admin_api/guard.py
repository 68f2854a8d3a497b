"""Request bodies: JSON only (except CSV decks and the payment gateways' callbacks, which post
what each gateway posts: CCAvenue a form), and bounded in size before they are read; the
mechanics are the shared ``charging_engine.web.body_guard``, the limits are the admin API's."""

from __future__ import annotations

from functools import partial
from typing import Final

from charging_engine.web.body_guard import BODY_METHODS
from charging_engine.web.body_guard import BodyGuard as _SharedGuard

MAX_JSON_BYTES: Final = 64 * 1024
MAX_DECK_BYTES: Final = 32 * 1024 * 1024  # ~400,000 deck lines
GATEWAY_CALLBACKS: Final = "/v1/gateway-webhooks/"  # verified by each gateway's own scheme


def _is_deck(path: str) -> bool:
    return path.endswith("/deck")


def _limit(path: str) -> int:
    return MAX_DECK_BYTES if _is_deck(path) else MAX_JSON_BYTES


def _json_only(path: str) -> bool:
    return not _is_deck(path) and not path.startswith(GATEWAY_CALLBACKS)


BodyGuard = partial(_SharedGuard, limit=_limit, json_only=_json_only, methods=BODY_METHODS)

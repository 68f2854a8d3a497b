"""Request bodies: JSON only (except CSV decks), and bounded in size before they are read."""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin_api.problems import ApiProblem, problem

MAX_JSON_BYTES: Final = 64 * 1024
MAX_DECK_BYTES: Final = 32 * 1024 * 1024  # ~400,000 deck lines
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


def _is_json(media: str) -> bool:
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class BodyGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        deck = scope["path"].endswith("/deck")
        limit = MAX_DECK_BYTES if deck else MAX_JSON_BYTES
        length: int | None = None
        media = ""
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    bad = problem(400, "invalid_request", "bad Content-Length")
                    await bad(scope, receive, send)
                    return
                length = int(value)
            elif name == b"content-type":
                media = value.decode("latin-1").partition(";")[0].strip().lower()
            elif name == b"transfer-encoding":
                chunked = True
        if length is not None and length > limit:
            await problem(413, "payload_too_large", f"the body must not exceed {limit} bytes")(
                scope, receive, send
            )
            return
        has_body = chunked or bool(length)
        if has_body and not deck and not _is_json(media):
            await problem(415, "unsupported_media_type", "send the body as application/json")(
                scope, receive, send
            )
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise ApiProblem(413, "payload_too_large",
                                     f"the body must not exceed {limit} bytes")
            return message

        await self.app(scope, limited, send)

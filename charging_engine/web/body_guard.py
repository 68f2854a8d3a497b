"""Request bodies bounded in size before they are read, and JSON where JSON is expected.

One ASGI middleware for every front end: a declared ``Content-Length`` over the limit is
refused before anything is read, a chunked body is counted as it arrives, and a body of the
wrong media type gets 415, all as problem+json. (FastAPI's own ``max_body_size`` answers a
declared oversize body in text/plain, replacing any handler's response.)
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from charging_engine.web.problems import (
    INVALID_REQUEST,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    ApiProblem,
    problem,
)

BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


def is_json(media: str | None) -> bool:
    """``application/json`` or any ``application/*+json``; parameters (charset) ignored."""
    if not media:
        return False
    media = media.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class BodyGuard:
    """``limit(path)`` bytes at most; ``json_only(path)``: a body must be JSON (415 otherwise).

    ``methods``: the methods checked (None: every HTTP request).
    """

    def __init__(
        self, app: ASGIApp, *, limit: Callable[[str], int],
        json_only: Callable[[str], bool] = lambda path: False,
        methods: Collection[str] | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.json_only = json_only
        self.methods = None if methods is None else frozenset(methods)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            self.methods is not None and scope["method"] not in self.methods
        ):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.limit(path)
        length: int | None = None
        media = ""
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    await problem(400, INVALID_REQUEST, "bad Content-Length")(scope, receive, send)
                    return
                length = int(value)
            elif name == b"content-type":
                media = value.decode("latin-1")
            elif name == b"transfer-encoding":
                chunked = True
        detail = f"the body must not exceed {limit} bytes"
        if length is not None and length > limit:
            await problem(413, PAYLOAD_TOO_LARGE, detail)(scope, receive, send)
            return
        if (chunked or bool(length)) and self.json_only(path) and not is_json(media):
            await problem(415, UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")(
                scope, receive, send
            )
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # chunked (or lying): counted as it arrives
                    raise ApiProblem(413, PAYLOAD_TOO_LARGE, detail)
            return message

        await self.app(scope, limited, send)

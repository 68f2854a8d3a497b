"""The webhook receiver of the tests: the demo's verifying receiver, on ``/hook``, answering
200 unless told otherwise."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar

from charging_server.demo.receiver import Receiver as _Verifying


@dataclass
class Receiver(_Verifying):
    PATH: ClassVar[str] = "/hook"

    answer: int = 200


@contextlib.asynccontextmanager
async def receiver(secret: str = "") -> AsyncIterator[Receiver]:
    async with Receiver(secret) as r:
        yield r

"""The Asterisk side of FastAGI: connect, send the ``agi_*`` environment, answer commands.

Mirrors res_agi: a 2 s connect limit (``MAX_AGI_CONNECT``), the environment as ``name: value``
lines ended by a blank line, then one reply per command line until the server closes. A server
that closes (or resets) the connection ends the AGI with ``AGISTATUS=SUCCESS``, whatever it set;
only a failed connect gives ``FAILURE``. A server that never closes keeps Asterisk waiting: the
caller bounds that wait (the simulator calls such a call stuck).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

AgiStatus = Literal["SUCCESS", "FAILURE"]
MAX_COMMAND = 8192
CommandHandler = Callable[[str], str]


@dataclass(slots=True)
class AgiExchange:
    """What one FastAGI session did; filled in while it runs (a stuck one is cut short)."""

    status: AgiStatus | None = None
    commands: list[str] = field(default_factory=list)


def environment_bytes(env: list[tuple[str, str]]) -> bytes:
    return "".join(f"{k}: {v}\n" for k, v in env).encode() + b"\n"


def parse_args(line: str) -> list[str]:
    """res_agi ``parse_args``: blanks split, double quotes group, a backslash escapes."""
    argv: list[str] = []
    cur: list[str] = []
    in_arg = quoted = escaped = False
    for ch in line:
        if escaped:
            cur.append(ch)
            in_arg, escaped = True, False
        elif ch == "\\":
            in_arg = escaped = True
        elif ch == '"':
            quoted, in_arg = not quoted, True
        elif ch in " \t" and not quoted:
            if in_arg:
                argv.append("".join(cur))
                cur, in_arg = [], False
        else:
            cur.append(ch)
            in_arg = True
    if in_arg:
        argv.append("".join(cur))
    return argv


async def run_fastagi(host: str, port: int, env: list[tuple[str, str]], handle: CommandHandler,
                      exchange: AgiExchange, connect_timeout_s: float = 2.0) -> AgiStatus:
    """Run one session; ``handle`` turns a command line into its reply (with the newline)."""
    try:
        async with asyncio.timeout(connect_timeout_s):
            reader, writer = await asyncio.open_connection(host, port, limit=MAX_COMMAND)
    except (OSError, TimeoutError):
        exchange.status = "FAILURE"
        return "FAILURE"
    try:
        writer.write(environment_bytes(env))
        while True:
            try:
                raw = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):  # a line past the limit
                break
            if not raw:
                break
            line = raw.decode("utf-8", "replace").replace("\r", "").rstrip("\n")
            if not line.strip():
                continue
            exchange.commands.append(line)
            writer.write(handle(line).encode())
            await writer.drain()
    except OSError:
        pass  # a reset ends the AGI like a close: res_agi returns its initial SUCCESS
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    exchange.status = "SUCCESS"
    return "SUCCESS"

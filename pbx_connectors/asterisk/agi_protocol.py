"""FastAGI wire protocol, sans I/O.

Asterisk connects, sends ``agi_name: value`` lines ended by a blank line (the AGI environment,
with ``agi_arg_N`` for the dialplan's arguments), then reads commands such as
``SET VARIABLE NAME "value"`` and expects ``200 result=1`` replies. The environment parser has
hard limits: a peer that sends half a header, garbage or megabytes must not hold anything but
its own connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_ENV_BYTES = 16 * 1024
MAX_ENV_LINES = 128
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,79}$")
_REPLY_RE = re.compile(r"^(\d{3})(?: result=(-?\d+))?(?: \((.*)\))?")


class AgiError(ValueError):
    """A broken or hostile AGI peer; close its connection."""


@dataclass(frozen=True, slots=True)
class AgiReply:
    code: int
    result: int | None
    data: str | None

    @property
    def ok(self) -> bool:
        return self.code == 200


class AgiEnvParser:
    """Collects the environment block; ``feed`` returns the environment once complete."""

    __slots__ = ("_buf", "_lines")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._lines: list[str] = []

    def feed(self, data: bytes) -> dict[str, str] | None:
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl == -1:
                if len(self._buf) > MAX_ENV_BYTES:
                    raise AgiError("AGI environment line too long")
                return None
            line = bytes(self._buf[:nl]).rstrip(b"\r").decode("utf-8", "replace")
            del self._buf[: nl + 1]
            if not line:
                env = self._environment()
                self._lines = []  # a parser is one environment: never merge with a next one
                return env
            self._lines.append(line)
            if len(self._lines) > MAX_ENV_LINES:
                raise AgiError(f"AGI environment longer than {MAX_ENV_LINES} lines")

    def _environment(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for line in self._lines:
            key, sep, value = line.partition(":")
            key = key.strip()
            if not sep or not key.startswith("agi_"):
                raise AgiError(f"not an AGI environment line: {line[:80]!r}")
            env[key] = value.strip()
        if "agi_request" not in env and "agi_network_script" not in env:
            raise AgiError("AGI environment without agi_request")
        return env

    @property
    def leftover(self) -> bytes:
        return bytes(self._buf)


def arguments(env: dict[str, str]) -> list[str]:
    """The dialplan's AGI arguments (agi_arg_1, agi_arg_2, ...), in order."""
    out: list[str] = []
    n = 1
    while f"agi_arg_{n}" in env:
        out.append(env[f"agi_arg_{n}"])
        n += 1
    return out


def script_name(env: dict[str, str]) -> str:
    """The route asked for: ``authorize`` from ``agi://host:4573/authorize?x=1``."""
    script = env.get("agi_network_script") or env.get("agi_request", "").split("/", 3)[-1]
    return script.split("?", 1)[0].strip("/")


def set_variable(name: str, value: str) -> bytes:
    """``SET VARIABLE`` command; the value is quoted and may not break the line."""
    if not _NAME_RE.match(name):
        raise AgiError(f"bad channel variable name {name!r}")
    if any(c in value for c in '\r\n"\\'):
        raise AgiError(f"channel variable value {value!r} cannot be quoted safely")
    return f'SET VARIABLE {name} "{value}"\n'.encode()


def parse_reply(line: str) -> AgiReply:
    m = _REPLY_RE.match(line.strip())
    if not m:
        raise AgiError(f"not an AGI reply: {line[:80]!r}")
    result = int(m.group(2)) if m.group(2) is not None else None
    return AgiReply(int(m.group(1)), result, m.group(3))

"""AMI wire protocol, sans I/O: bytes in, messages out; messages in, bytes out.

AMI is line-based TCP: a banner line (``Asterisk Call Manager/11.0.0``), then messages of
``Key: Value`` lines ended by a blank line. Keys may repeat (``Variable:`` in actions,
``ChanVariable`` in events), so a message keeps its pairs in order; ``msg["Key"]`` is the first
value.
The parser has hard limits so a hostile or broken peer cannot make it grow without bound.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

MAX_LINE = 8192
MAX_FIELDS = 512


class ProtocolError(ValueError):
    """The peer broke the AMI framing or a limit; the connection must be dropped."""


@dataclass(slots=True)
class Message:
    """One AMI message: an event, a response or an action, with its pairs in wire order."""

    pairs: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, **kw: str | int) -> Message:
        return cls([(k, str(v)) for k, v in kw.items()])

    def get(self, key: str, default: str | None = None) -> str | None:
        lk = key.lower()
        for k, v in self.pairs:
            if k.lower() == lk:
                return v
        return default

    def __getitem__(self, key: str) -> str:
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def all(self, key: str) -> list[str]:
        lk = key.lower()
        return [v for k, v in self.pairs if k.lower() == lk]

    def add(self, key: str, value: str | int) -> Message:
        self.pairs.append((key, str(value)))
        return self

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def encode(self) -> bytes:
        """Wire form; values with CR/LF are refused (they would inject extra headers)."""
        text = "".join([f"{k}: {v}\r\n" for k, v in self.pairs])
        # One scan of the whole message: a CR/LF inside a key or value, or a colon in a key,
        # shows up as a line count or a key that differs from the pairs'.
        lines = text.split("\r\n")
        rest = text.replace("\r\n", "")
        if len(lines) != len(self.pairs) + 1 or "\r" in rest or "\n" in rest or any(
            line.partition(":")[0] != k for line, (k, _) in zip(lines, self.pairs, strict=False)
        ):
            raise ProtocolError("a header cannot be sent: it holds a line break or a bad key")
        return (text + "\r\n").encode()


class AmiParser:
    """Incremental parser: ``feed(data)`` then iterate ``messages()``.

    ``expect_banner`` is true for a client (the server speaks first with its banner line).
    Complete lines are split off the buffer a whole chunk at a time (one C-level split instead
    of a search, copy and delete per line); lines not yet turned into messages stay queued if
    the caller stops iterating.
    """

    __slots__ = ("_banner_pending", "_buf", "_current", "_lines", "banner")

    def __init__(self, expect_banner: bool = True) -> None:
        self._buf = bytearray()
        self._lines: deque[bytes] = deque()
        self._current: list[tuple[str, str]] = []
        self._banner_pending = expect_banner
        self.banner: str | None = None

    def feed(self, data: bytes) -> None:
        self._buf += data

    def messages(self) -> Iterator[Message]:
        lines = self._lines
        while True:
            if not lines:
                last = self._buf.rfind(b"\n")
                if last == -1:
                    if len(self._buf) > MAX_LINE:
                        raise ProtocolError(f"line longer than {MAX_LINE} bytes")
                    return
                lines.extend(bytes(self._buf[:last]).split(b"\n"))
                del self._buf[: last + 1]
            raw = lines.popleft()
            if len(raw) > MAX_LINE:
                raise ProtocolError(f"line longer than {MAX_LINE} bytes")
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if self._banner_pending:
                self._banner_pending = False
                self.banner = line
                continue
            if not line:
                if self._current:
                    msg = Message(self._current)
                    self._current = []
                    yield msg
                continue
            key, sep, value = line.partition(":")
            if not sep:
                # Command output lines (Response: Follows) have no colon; keep them as text.
                self._current.append(("Output", line))
            else:
                self._current.append((key.strip(), value.strip()))
            if len(self._current) > MAX_FIELDS:
                raise ProtocolError(f"message with more than {MAX_FIELDS} fields")


def parse_all(data: bytes, expect_banner: bool = False) -> list[Message]:
    """Parse a complete byte string (tests, transcripts)."""
    p = AmiParser(expect_banner)
    p.feed(data)
    return list(p.messages())

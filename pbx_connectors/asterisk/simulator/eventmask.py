"""AMI event classes as manager.c computes them, sans I/O: which events a session is sent.

An event goes to a logged-in session only when every class it was raised with is both in the
user's ``read =`` permission (manager.conf) and in the session's event mask (Login ``Events:``,
later the ``Events`` action): ``(readperm & cls) == cls and (send_events & cls) == cls`` in
``process_events``. An event's classes are its ``Privilege`` header without ``all``
(``call,all`` is EVENT_FLAG_CALL). Answers to actions (responses and their list events such as
``CoreShowChannel``) are written straight to the asking session and are never filtered.

The parsing keeps manager.c's quirks, because a connector configured with them gets exactly
this from a real Asterisk: labels are case-sensitive; ``call, cdr`` (with a space) selects
``call`` only; a digits-only mask is a number; an empty mask leaves the mask as it was.
"""

from __future__ import annotations

from functools import lru_cache

INT_MAX = 2**31 - 1
SYSTEM = 1 << 0
EVERYTHING = -1  # a new session's mask (build_mansession: send_events = -1)

# manager.c perms[] with the EVENT_FLAG_* bits of include/asterisk/manager.h, in table order.
PERMS: tuple[tuple[str, int], ...] = (
    ("system", 1 << 0), ("call", 1 << 1), ("log", 1 << 2), ("verbose", 1 << 3),
    ("command", 1 << 4), ("agent", 1 << 5), ("user", 1 << 6), ("config", 1 << 7),
    ("dtmf", 1 << 8), ("reporting", 1 << 9), ("cdr", 1 << 10), ("dialplan", 1 << 11),
    ("originate", 1 << 12), ("agi", 1 << 13), ("cc", 1 << 15), ("aoc", 1 << 16),
    ("test", 1 << 17), ("security", 1 << 18), ("message", 1 << 30),
    ("all", INT_MAX), ("none", 0),
)
_BITS = dict(PERMS)
_TRUE = frozenset({"yes", "true", "y", "t", "1", "on"})  # ast_true, case-insensitive
_FALSE = frozenset({"no", "false", "n", "f", "0", "off"})  # ast_false


def _instring(big: str, small: str) -> bool:
    """``ast_instring(big, small, ',')``: a token followed by a comma matches when it is a
    prefix of ``small`` (``strncmp`` over the token's length); the last token must be equal."""
    *heads, last = big.split(",")
    return any(small.startswith(token) for token in heads) or small == last


def get_perm(text: str) -> int:
    """A manager.conf ``read =``/``write =`` value as a class mask (``get_perm``)."""
    mask = 0
    for label, bit in PERMS:
        if _instring(text, label):
            mask |= bit
    return mask


def strings_to_mask(text: str | None) -> int | None:
    """A Login ``Events:`` or ``EventMask:`` value as a class mask; None when it is empty or
    missing (``strings_to_mask`` returns -1: the session keeps its mask, Events errs)."""
    if not text:
        return None
    if all("0" <= c <= "9" for c in text):
        number = int(text)  # atoi
        return number if number <= INT_MAX else None
    if text.lower() in _FALSE:
        return 0
    if text.lower() in _TRUE:
        return INT_MAX  # every perms[] bit, "all" included
    return get_perm(text)


@lru_cache(maxsize=256)
def event_class(privilege: str) -> int:
    """The classes an event was raised with, from its ``Privilege`` header."""
    mask = 0
    for label in privilege.split(","):
        if label != "all":
            mask |= _BITS.get(label, 0)
    return mask


def may_send(readperm: int, send_events: int, cls: int) -> bool:
    """``process_events``: every class of the event is readable and asked for."""
    return readperm & cls == cls and send_events & cls == cls

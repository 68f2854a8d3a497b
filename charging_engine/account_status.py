"""Account statuses: one enum for Python, Postgres rows and the Redis functions' replies.

``charging.lua`` stores an account's status as the enum's value and, when a status other than
``active`` refuses a reservation, replies ``account_<value>``; ``refused_by`` is the only
reader of that reply, so a new status needs no string parsing anywhere else.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class AccountStatus(StrEnum):
    ACTIVE = "active"  # calls allowed
    OUTGOING_SUSPENDED = "outgoing_suspended"  # outgoing calls barred
    SUSPENDED = "suspended"  # all service barred
    INACTIVE = "inactive"  # dormant: barred, kept
    TERMINATED = "terminated"  # closed for good


OPEN_STATUSES: Final = tuple(s for s in AccountStatus if s is not AccountStatus.TERMINATED)
REFUSAL_PREFIX: Final = "account_"  # as charging.lua builds a refusal reply
_REFUSALS: Final = {REFUSAL_PREFIX + s.value: s for s in AccountStatus}


def refused_by(reply_status: str) -> AccountStatus | None:
    """The account status behind a Redis function's refusal reply, or None for other replies."""
    return _REFUSALS.get(reply_status)

"""Which engine account pays for a call: the channel's accountcode (or caller id), mapped.

The same mapping reads the AGI environment (``agi_accountcode``) and AMI events
(``AccountCode``), so a call adopted after a reconnect maps to the account that authorized it.
"""

from __future__ import annotations

import re

from charging_engine.ids import ID_RE
from pbx_connectors.asterisk.config import AccountsConfig


class AccountMapper:
    __slots__ = ("_rx", "source")

    def __init__(self, config: AccountsConfig) -> None:
        self.source = config.source
        self._rx = re.compile(config.pattern) if config.pattern else None

    def account(self, accountcode: str | None, callerid: str | None) -> str | None:
        """The account id, or None when the value is empty or does not match."""
        value = (accountcode if self.source == "accountcode" else callerid) or ""
        value = value.strip()
        if self._rx is not None:
            m = self._rx.search(value)
            if m is None:
                return None
            value = m.group("account") if "account" in self._rx.groupindex else m.group(0)
        if not value or not ID_RE.match(value):
            return None
        return value

    def from_agi(self, env: dict[str, str]) -> str | None:
        return self.account(env.get("agi_accountcode"), env.get("agi_callerid"))

    def from_event(self, fields: dict[str, str]) -> str | None:
        return self.account(fields.get("AccountCode"), fields.get("CallerIDNum"))

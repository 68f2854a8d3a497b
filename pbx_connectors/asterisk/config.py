"""The Asterisk connector's TOML file: one ``[[pbx]]`` table per Asterisk server.

Validated on load (unknown keys, bad ports, a regex without its ``account`` group are errors that
name the PBX and the key), so a typo stops the engine at start instead of mis-billing calls::

    [[pbx]]
    name = "pbx-east"             # used in logs
    tenant = "acme"               # every call of this PBX belongs to this tenant

    [pbx.ami]
    host = "10.0.0.5"
    port = 5038
    username = "charging"
    secret_env = "PBX_EAST_AMI_SECRET"   # or: secret = "..."

    [pbx.fastagi]                 # where this PBX's dialplan sends AGI(agi://host:port/authorize)
    host = "0.0.0.0"
    port = 4573
    allow = ["10.0.0.5/32"]       # peers allowed to ask (default: anyone who can connect)

    [pbx.accounts]                # accountcode -> engine account
    source = "accountcode"        # or "callerid"
    pattern = '^acme-(?P<account>\\w+)$'   # optional; default: the value as is
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from charging_engine.ids import InvalidId, check_id

Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0, le=3600)]


# Asterisk manager event classes (main/manager.c's perms table), as a login's Events: lists them.
AMI_EVENT_CLASSES: Final = frozenset({
    "system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
    "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
    "message",
})


class ConfigError(ValueError):
    """The Asterisk connector configuration cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AmiConfig(_Strict):
    host: str = "127.0.0.1"
    port: Port = 5038
    username: str = Field(min_length=1)
    secret: str | None = None
    secret_env: str | None = None  # name of an environment variable holding the secret
    events: str = "call,cdr"  # event classes asked for at login
    connect_timeout_s: Seconds = 5.0
    ping_interval_s: Seconds = 10.0  # a Ping after this much quiet...
    ping_timeout_s: Seconds = 5.0  # ...unanswered this long drops the connection
    action_timeout_s: Seconds = 5.0
    reconnect_min_s: Seconds = 0.5
    reconnect_max_s: Seconds = 30.0

    @field_validator("events")
    @classmethod
    def _events(cls, value: str) -> str:
        """What Asterisk would make of it: a comma list without spaces ("call, cdr" means call
        only), which must hold call (channels, hangups) and cdr (reconciliation); or "on"."""
        if value == "on":
            return value
        names = value.split(",")
        if unknown := [n for n in names if n not in AMI_EVENT_CLASSES]:
            raise ValueError(
                f"unknown AMI event class {unknown[0]!r} (a comma list without spaces,"
                " e.g. call,cdr)"
            )
        if missing := sorted({"call", "cdr"} - set(names)):
            raise ValueError(
                f"events must include {', '.join(missing)}: the connector follows calls"
                " (call) and reconciles their charges with the Cdr (cdr)"
            )
        return value

    @model_validator(mode="after")
    def _secret_source(self) -> AmiConfig:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give exactly one of secret or secret_env")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self

    def resolved_secret(self) -> str:
        if self.secret is not None:
            return self.secret
        assert self.secret_env is not None
        value = os.environ.get(self.secret_env)
        if not value:
            raise ConfigError(f"environment variable {self.secret_env} (AMI secret) is not set")
        return value


class FastAgiConfig(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 4573  # 0: any free port (tests)
    allow: tuple[str, ...] = ()  # CIDRs; empty: any peer
    header_timeout_s: Seconds = 2.0  # the whole AGI environment must arrive within this
    answer_timeout_s: Seconds = 1.0  # the engine must decide within this, else failure policy
    reply_timeout_s: Seconds = 2.0  # each SET VARIABLE must be acknowledged within this
    max_connections: Annotated[int, Field(ge=1, le=100_000)] = 2000
    fail_open_seconds: Annotated[int, Field(ge=1, le=86_400)] = 60  # limit when failing open
    # CHARGING_MAXSEC: "affordable" = what all available money pays for (a hard PBX-side cap;
    # a mid-call top-up cannot lift it), "max_call" = the engine's longest call (the enforcer's
    # AbsoluteTimeout/Hangup is then the only cap, and a top-up extends the call without bound).
    dial_limit: Literal["affordable", "max_call"] = "affordable"

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"allow: {net!r} is not an IP network") from exc
        return value

    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.allow)


class AccountsConfig(_Strict):
    source: Literal["accountcode", "callerid"] = "accountcode"
    pattern: str | None = None  # regex with a named group ``account`` (or none: whole match)

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            rx = re.compile(value)
        except re.error as exc:
            raise ValueError(f"pattern is not a regular expression: {exc}") from exc
        if rx.groups and "account" not in rx.groupindex:
            raise ValueError("pattern has groups but none named 'account'")
        return value


class ChargingConfig(_Strict):
    extend_ahead_s: Seconds = 30.0  # extend the reservation this long before it runs out
    topup_poll_s: Seconds = 5.0  # a call cut short retries its extension this often
    # Cdr billable seconds further than this from the charged seconds correct the charge
    # (0: the CDR is authoritative to the second, as customers reconcile against it)
    cdr_tolerance_s: Annotated[int, Field(ge=0, le=3600)] = 0
    cdr_wait_s: Seconds = 2.0  # after a hangup, Cdr events are gathered this long
    gap_cdr_wait_s: Seconds = 300.0  # a call that ended while AMI was down waits this for its Cdr
    command_retry_s: Seconds = 600.0  # an engine command that keeps failing is retried this long
    reconcile_interval_s: Seconds = 60.0  # CoreShowChannels this often (and on every login)
    hangup_cause: Annotated[int, Field(ge=1, le=127)] = 16


class PbxConfig(_Strict):
    name: str = Field(min_length=1, max_length=64)
    tenant: str
    ami: AmiConfig
    fastagi: FastAgiConfig = FastAgiConfig()
    accounts: AccountsConfig = AccountsConfig()
    charging: ChargingConfig = ChargingConfig()

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str) -> str:
        try:
            return check_id("tenant", value)
        except InvalidId as exc:
            raise ValueError(str(exc)) from exc


class ConnectorConfig(_Strict):
    pbx: tuple[PbxConfig, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> ConnectorConfig:
        names = [p.name for p in self.pbx]
        if len(set(names)) != len(names):
            raise ValueError("every [[pbx]] needs its own name")
        listeners = [(p.fastagi.host, p.fastagi.port) for p in self.pbx if p.fastagi.port]
        if len(set(listeners)) != len(listeners):
            raise ValueError("two [[pbx]] share a FastAGI host and port: the tenant would be "
                             "ambiguous")
        return self


def parse_config(text: str, source: str = "<config>") -> ConnectorConfig:
    """Parse and validate the TOML text; raises ``ConfigError`` naming the bad key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return ConnectorConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_where(raw, err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None


def load_config(path: Path) -> ConnectorConfig:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read Asterisk config {path}: {exc.strerror}") from exc
    return parse_config(text, str(path))


def _where(raw: object, loc: tuple[int | str, ...]) -> str:
    """``pbx[1] (pbx-east).ami.port`` rather than ``pbx.1.ami.port``."""
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int):
            name = node[item].get("name") if isinstance(node, list) and item < len(node) and \
                isinstance(node[item], dict) else None
            parts[-1] += f"[{item}]" + (f" ({name})" if name else "")
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "config"

"""The ``authorize`` FastAGI route: an AGI environment in, channel variables out, in bounded time.

The dialplan contract (see ``deploy/asterisk/extensions.conf``): ``CHARGING_MAXSEC``,
``CHARGING_MAXMS`` and ``CHARGING_REASON`` are set first and ``CHARGING_STATUS`` last, so a
connection cut half-way never leaves ``ALLOWED`` without its limit. ``CHARGING_MAXSEC`` is what
all the account's available money pays for (the Dial ``L()`` backstop); the enforcer keeps the
reservation one slice ahead and cuts the call through AMI when an extension is refused.

When the engine cannot decide within ``answer_timeout_s`` (or fails), the tenant's failure
policy answers: fail_closed -> ``ERROR`` (``engine_timeout`` | ``engine_error``), fail_open ->
``ALLOWED`` with ``fail_open_seconds`` and reason ``fail_open``. The engine call is not
cancelled on timeout (a reservation may be made anyway): when it completes late, a fail-closed
reservation is released and a fail-open one is kept for the call it now covers.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from charging_engine.catalog import FailurePolicy
from charging_engine.sessions.model import Decision, InvalidRequest, NotFound
from charging_engine.sessions.service import ChargingService
from pbx_connectors.asterisk.accounts import AccountMapper
from pbx_connectors.asterisk.agi_protocol import arguments
from pbx_connectors.asterisk.commands import Leg
from pbx_connectors.asterisk.config import FastAgiConfig

log = logging.getLogger("pbx_connectors.asterisk.agi")

ALLOWED, DENIED, ERROR = "ALLOWED", "DENIED", "ERROR"
LATE_LIMIT_S = 30.0  # an engine call still pending after this is abandoned
_DIGITS = re.compile(r"^\+?[0-9]{2,20}$")


@dataclass(frozen=True, slots=True)
class AgiAnswer:
    status: str  # ALLOWED | DENIED | ERROR
    reason: str
    max_seconds: int = 0

    def variables(self) -> list[tuple[str, str]]:
        """In sending order: the status comes last."""
        return [
            ("CHARGING_MAXSEC", str(self.max_seconds)),
            ("CHARGING_MAXMS", str(self.max_seconds * 1000)),
            ("CHARGING_REASON", self.reason),
            ("CHARGING_STATUS", self.status),
        ]


def destination_of(env: dict[str, str]) -> str | None:
    """The number dialled: AGI argument 2 when the dialplan passes one, else the extension,
    else the DNID (when the extension is ``s`` or similar)."""
    args = arguments(env)
    for candidate in (args[1] if len(args) > 1 else "", env.get("agi_extension", ""),
                      env.get("agi_dnid", "")):
        if candidate and _DIGITS.match(candidate.strip()):
            return candidate.strip()
    return None


class Authorizer:
    """Decides one AGI request for one PBX (tenant); ``on_allowed`` registers the leg."""

    def __init__(
        self, service: ChargingService, tenant: str, mapper: AccountMapper,
        config: FastAgiConfig, on_allowed: Callable[[Leg], None],
    ) -> None:
        self.service = service
        self.tenant = tenant
        self.mapper = mapper
        self.config = config
        self.on_allowed = on_allowed
        self._late: set[asyncio.Task[None]] = set()

    def _policy(self) -> FailurePolicy | None:
        t = self.service.catalog.tenant(self.tenant)
        return t.failure_policy if t is not None else None

    async def answer(self, env: dict[str, str]) -> AgiAnswer:
        call_id = env.get("agi_uniqueid", "").strip()
        channel = env.get("agi_channel", "").strip()
        args = arguments(env)
        linkedid = args[0].strip() if args else ""
        destination = destination_of(env)
        if not call_id or not channel:
            return AgiAnswer(DENIED, "invalid_request")
        if destination is None:
            return AgiAnswer(DENIED, "invalid_destination")
        account = self.mapper.from_agi(env)
        if account is None:
            return AgiAnswer(DENIED, "unknown_account")
        policy = self._policy()
        if policy is None:
            return AgiAnswer(ERROR, "unknown_tenant")
        leg = Leg(call_id, self.tenant, account, channel, linkedid)
        task = asyncio.create_task(self.service.authorize(
            self.tenant, account, call_id, destination, with_affordable=True
        ))
        try:
            async with asyncio.timeout(self.config.answer_timeout_s):
                decision = await asyncio.shield(task)
        except TimeoutError:
            self._finish_late(task, leg, policy)
            return self._fail(policy, "engine_timeout", leg)
        except NotFound as exc:
            return AgiAnswer(DENIED, exc.reason.value)
        except InvalidRequest as exc:
            log.info("AGI %s: invalid request: %s", call_id, exc)
            return AgiAnswer(DENIED, "invalid_request")
        except Exception as exc:
            log.warning("AGI %s: engine error %s: %s", call_id, type(exc).__name__, exc)
            return self._fail(policy, "engine_error", leg)
        return self._decided(decision, leg)

    def _decided(self, decision: Decision, leg: Leg) -> AgiAnswer:
        if not decision.allowed:
            return AgiAnswer(DENIED, decision.reason.value)
        self.on_allowed(leg)
        seconds = max(decision.affordable_seconds, decision.max_seconds)
        if self.config.dial_limit == "max_call":
            seconds = max(seconds, self.service.policy.max_call_seconds)
        return AgiAnswer(ALLOWED, "ok", seconds)

    def _fail(self, policy: FailurePolicy, reason: str, leg: Leg) -> AgiAnswer:
        log.warning("AGI %s (%s/%s): %s, answering by policy %s", leg.call_id, leg.tenant,
                    leg.account, reason, policy.value)
        if policy is FailurePolicy.FAIL_OPEN:
            self.on_allowed(leg)  # charged at hangup if the late reservation lands
            return AgiAnswer(ALLOWED, "fail_open", self.config.fail_open_seconds)
        return AgiAnswer(ERROR, reason)

    def _finish_late(self, task: asyncio.Task[Decision], leg: Leg, policy: FailurePolicy) -> None:
        async def settle_late() -> None:
            try:
                async with asyncio.timeout(LATE_LIMIT_S):
                    decision = await task
            except Exception as exc:
                log.info("AGI %s: late engine answer failed too (%s)", leg.call_id,
                         type(exc).__name__)
                return
            if decision.allowed and policy is FailurePolicy.FAIL_CLOSED:
                # the call was refused: give the reservation back now rather than at its TTL
                try:
                    async with asyncio.timeout(LATE_LIMIT_S):
                        await self.service.end(leg.tenant, leg.account, leg.call_id,
                                               billable_seconds=0)
                except Exception as exc:
                    log.warning("AGI %s: could not release a late reservation (%s); its TTL "
                                "will", leg.call_id, type(exc).__name__)

        t = asyncio.create_task(settle_late())
        self._late.add(t)
        t.add_done_callback(self._late.discard)

    async def aclose(self) -> None:
        for t in list(self._late):
            t.cancel()
        await asyncio.gather(*self._late, return_exceptions=True)

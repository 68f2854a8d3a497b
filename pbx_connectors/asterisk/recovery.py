"""Reconciling tracked calls with the PBX's live channels, on every (re)connect and periodically.

AMI replays nothing after a gap (and our client, unlike panoramisk, replays no action either),
so on login (and every ``reconcile_interval_s``) we ask ``CoreShowChannels``. Its answer is
delivered through the event inbox at its wire position, so every event sent before it has been
applied first. Then:

* tracked calls missing from the list ended in the gap: they settle from their Cdr when it
  arrives, else by the reservation TTL (tracker ``Lost``);
* tracked calls now bridged but never seen answered were answered in the gap: the answer time is
  estimated as now and the Cdr corrects the charge;
* live channels not tracked here whose account maps and whose Uniqueid has an open engine session
  were authorized before this process (re)started: they are adopted, so their hangup is charged
  and their reservation extended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from charging_engine.sessions.service import ChargingService
from pbx_connectors.asterisk.ami_client import AmiClient, AmiError
from pbx_connectors.asterisk.ami_protocol import Message
from pbx_connectors.asterisk.commands import Command, Leg
from pbx_connectors.asterisk.events import uniqueid
from pbx_connectors.asterisk.tracker import Tracker

log = logging.getLogger("pbx_connectors.asterisk.recovery")

ADOPT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class SnapshotTag:
    mark: int  # tracker registrations up to here existed before the list was asked for


class Recovery:
    def __init__(
        self, service: ChargingService, ami: AmiClient, tracker: Tracker,
        submit: Callable[[Command], None], clock: Callable[[], int], name: str = "pbx",
    ) -> None:
        self.service = service
        self.ami = ami
        self.tracker = tracker
        self.submit = submit
        self.clock = clock
        self.name = name
        self.snapshots = 0
        self.adopted = 0

    async def request(self) -> bool:
        """Ask for the channel list; its answer arrives in the inbox (see ``apply``)."""
        tag = SnapshotTag(self.tracker.mark())
        try:
            await self.ami.action("CoreShowChannels", tag=tag, within_s=30.0)
        except AmiError as exc:
            log.warning("%s: CoreShowChannels failed (%s); retried on the next reconnect "
                        "or period", self.name, exc)
            return False
        return True

    async def apply(self, tag: SnapshotTag, messages: list[Message]) -> None:
        channels = [m for m in messages if (m.event or "").lower() == "coreshowchannel"]
        now = self.clock()
        for cmd in self.tracker.snapshot(channels, tag.mark, now):
            self.submit(cmd)
        self.snapshots += 1
        await self._adopt(channels)

    async def _adopt(self, channels: list[Message]) -> None:
        candidates = self.tracker.unknown(channels)
        if not candidates:
            return
        store, tenant = self.service.store, self.tracker.tenant
        try:
            async with asyncio.timeout(ADOPT_TIMEOUT_S):
                records = await asyncio.gather(*(
                    store.session(tenant, account, uniqueid(m) or "") for m, account in candidates
                ))
        except Exception as exc:
            log.warning("%s: cannot look up %d untracked channels (%s: %s); they are left to "
                        "their Cdr or TTL", self.name, len(candidates), type(exc).__name__, exc)
            return
        now = self.clock()
        for (m, account), rec in zip(candidates, records, strict=True):
            if rec is None:
                continue
            u = uniqueid(m) or ""
            leg = Leg(u, tenant, account, m.get("Channel") or "", m.get("Linkedid") or "")
            answer = rec.answer_ms
            if answer is None and (m.get("BridgeId") or "").strip():
                answer = now
            for cmd in self.tracker.adopt(leg, answer, now):
                self.submit(cmd)
            self.adopted += 1
            log.info("%s: adopted live call %s (%s) after a restart", self.name, u, account)

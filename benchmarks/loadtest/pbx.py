"""The simulated Asterisk of the fastagi scenario: the connector's file, the simulator's AMI
server the connector logs in to, and the intake the locust users hand allowed calls to."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.loadtest.tenant import TENANT
from charging_engine.devservers import free_port
from pbx_connectors.asterisk.simulator import (
    CallHandle,
    CallSpec,
    ScenarioError,
    Simulator,
    SimulatorConfig,
)

AMI_USER = "charging"
AMI_SECRET_ENV = "CE_LOAD_AMI_SECRET"
CALLER = "15550001"  # the caller id the FastAGI user sends


def connector_toml(ami_port: int, agi_port: int, secret_env: str = AMI_SECRET_ENV) -> str:
    """The connector's file for the fastagi scenario (format: deploy/asterisk/connector.toml).

    One PBX of the seeded tenant; account codes are the engine's account ids as they are (the
    default ``source = "accountcode"`` without a pattern), which is what the locust user and the
    simulator put in ``agi_accountcode`` and ``AccountCode``. Everything else keeps its default.
    """
    return (
        "# written by benchmarks/loadtest --scenario fastagi\n"
        "[[pbx]]\n"
        'name = "load-pbx"\n'
        f'tenant = "{TENANT}"\n\n'
        "[pbx.ami]\n"
        'host = "127.0.0.1"\n'
        f"port = {ami_port}\n"
        f'username = "{AMI_USER}"\n'
        f'secret_env = "{secret_env}"\n\n'
        "[pbx.fastagi]\n"
        'host = "127.0.0.1"\n'
        f"port = {agi_port}\n\n"
        "[pbx.accounts]\n"
        'source = "accountcode"\n'
    )


@dataclass
class PbxFigures:
    """What the simulated Asterisk saw: the PBX's side of the books."""

    taken: int = 0
    refused: int = 0
    answered: int = 0
    billable_seconds: int = 0  # from the calls' Cdr, as Asterisk computes BillableSeconds
    ended_by: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0  # still playing when the run gave up waiting
    peak_live: int = 0


class PbxSide:
    """The Asterisk of the fastagi scenario: the simulator's AMI server and a call intake.

    The simulator plays the ``outbound-noagi`` dialplan (no authorization step of its own):
    the locust user has already run the FastAGI exchange, with the Uniqueid (``<call id>-a``)
    and Linkedid (``<call id>-h``) this call id gives the simulator's legs, and hands the call
    over on the intake (one ``PLAY`` line per call, see benchmarks/locustfiles/fastagi.py).
    The connector keys calls by that Uniqueid and ignores the events of legs it did not
    authorize, so it sees what a real Asterisk would send it. What differs: the channels appear
    on AMI only after the authorization (the tracker learns the channel name from the answer;
    a ``CoreShowChannels`` reconciliation, every 60 s, that falls between the two takes the call
    for one that ended while AMI was away, and it is charged the seconds of its Cdr, with one
    warning in engine.log), and the locust user, not the simulator, applies the Dial ``L()`` cap
    to the talk time.
    """

    def __init__(self, secret: str) -> None:
        self.sim = Simulator(SimulatorConfig(users={AMI_USER: secret}, agi=None, cel=False,
                                             record_events=False))
        self.figures = PbxFigures()
        self._server: asyncio.Server | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self.intake_port = 0

    async def start(self) -> None:
        await self.sim.start()
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.intake_port = int(self._server.sockets[0].getsockname()[1])

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(self.take(line.decode("utf-8", "replace")).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def take(self, line: str) -> str:
        """``PLAY <call id> <account> <destination> <ring s> <talk s>`` -> ``OK`` | ``ERR``."""
        parts = line.split()
        try:
            if len(parts) != 6 or parts[0] != "PLAY":
                raise ScenarioError("expected PLAY <call id> <account> <destination> <ring s> "
                                    "<talk s>")
            _, call_id, account, destination, ring, talk = parts
            handle = self.sim.start_call(CallSpec(account, CALLER, destination,
                                                  ring_s=float(ring), talk_s=float(talk),
                                                  call_id=call_id))
        except (ScenarioError, ValueError, RuntimeError) as exc:
            self.figures.refused += 1
            return f"ERR {exc}"
        self.figures.taken += 1
        task = asyncio.create_task(self._follow(handle))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        self.figures.peak_live = max(self.figures.peak_live, len(self._calls))
        return "OK"

    async def _follow(self, handle: CallHandle) -> None:
        record = await handle
        f = self.figures
        f.ended_by[record.ended_by] += 1
        if record.answered:
            f.answered += 1
            f.billable_seconds += record.billable_seconds

    async def finish(self) -> None:
        """Take no more calls; wait until every call taken has ended (bound it)."""
        if self._server is not None:
            self._server.close()
        if self._calls:
            await asyncio.wait(set(self._calls))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.figures.unfinished = len(self._calls)
        await self.sim.close()  # cancels calls still playing
        if self._calls:
            await asyncio.wait(set(self._calls))


async def start_pbx(out_dir: Path) -> tuple[PbxSide, dict[str, str], dict[str, str]]:
    """Start the PBX and write the connector's file into ``out_dir``: the PBX, then what the
    engine's environment and the locust users' environment need to reach it."""
    secret = secrets.token_hex(16)
    pbx = PbxSide(secret)
    await pbx.start()
    agi_port = free_port()
    config = out_dir / "asterisk.toml"
    config.write_text(connector_toml(pbx.sim.ami_port, agi_port))
    engine_env = {"CE_ASTERISK_CONFIG": str(config), AMI_SECRET_ENV: secret}
    locust_env = {"CE_AGI_HOST": "127.0.0.1", "CE_AGI_PORT": str(agi_port),
                  "CE_LOAD_PBX": f"127.0.0.1:{pbx.intake_port}"}
    return pbx, engine_env, locust_env

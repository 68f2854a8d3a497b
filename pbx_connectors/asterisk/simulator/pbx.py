"""The simulated Asterisk: an AMI server, calls driven by scenarios, and fault switches.

Usage::

    async with Simulator(SimulatorConfig(agi=("127.0.0.1", agi_port))) as sim:
        record = await sim.place_call(CallSpec("acct1", "15550001", "442079460000"))
        # or: handle = sim.start_call(spec); await handle.wait_answered(); ...; await handle
"""

from __future__ import annotations

import asyncio
import itertools
import math
import secrets
import time
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from ..ami_protocol import Message
from .ami_server import AmiServer
from .calls import Call, CallConfig
from .channels import Channel
from .clock import EventClock
from .scenario import CallRecord, CallSpec, ScenarioError

_DEFAULT_USERS: Mapping[str, str] = {"charging": "charging"}


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """How the simulated PBX is set up.

    ``agi`` is the FastAGI server (host, port) the A-leg's dialplan calls; None plays the
    ``outbound-noagi`` dialplan of transcript 03 (no authorization step). ``agi_timeout_s`` is
    how long a FastAGI session may stay open before the call is recorded as stuck.
    ``read`` is a user's manager.conf ``read =`` value (for example ``"call,cdr"``, as in
    ``deploy/asterisk/manager.conf``); a user not in it reads ``all``.
    """

    users: Mapping[str, str] = field(default_factory=lambda: dict(_DEFAULT_USERS))
    read: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    ami_port: int = 0
    agi: tuple[str, int] | None = ("127.0.0.1", 4573)
    agi_script: str = "authorize"
    agi_timeout_s: float = 30.0
    agi_connect_timeout_s: float = 2.0
    dial_timeout_s: float = 30.0
    auth_timeout_s: float = 30.0
    cel: bool = True
    record_events: bool = True
    call_id_prefix: str | None = None
    version: str = "22.10.1"

    def __post_init__(self) -> None:
        if not self.users or not all(isinstance(u, str) and u and isinstance(s, str)
                                     for u, s in self.users.items()):
            raise ScenarioError("users must map non-empty user names to secrets")
        for user, perms in self.read.items():
            if user not in self.users or not isinstance(perms, str):
                raise ScenarioError(f"read must map users of `users` to permission lists, "
                                    f"not {user!r}: {perms!r}")
        if not 0 <= self.ami_port <= 65535:
            raise ScenarioError(f"ami_port {self.ami_port} is not a TCP port")
        if self.agi is not None:
            host, port = self.agi
            if not host or not isinstance(port, int) or not 0 < port <= 65535:
                raise ScenarioError(f"agi {self.agi!r} must be (host, port)")
        for name in ("agi_timeout_s", "agi_connect_timeout_s", "dial_timeout_s",
                     "auth_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ScenarioError(f"{name} must be a positive number of seconds")
        if not self.agi_script or any(c in self.agi_script for c in " ,/?\r\n"):
            raise ScenarioError(f"agi_script {self.agi_script!r} is not a plain route name")


class CallHandle:
    """A call in progress: its identifiers at once, its answer, and (awaited) its record."""

    __slots__ = ("_call", "_task")

    def __init__(self, call: Call, task: asyncio.Task[CallRecord]) -> None:
        self._call = call
        self._task = task

    @property
    def call_id(self) -> str:
        return self._call.call_id

    @property
    def uniqueid(self) -> str:
        return self._call.legs.a.uniqueid

    @property
    def linkedid(self) -> str:
        return self._call.legs.a.linkedid

    @property
    def channel(self) -> str:
        return self._call.legs.a.name

    @property
    def handset_channel(self) -> str:
        return self._call.legs.h.name

    @property
    def callee_channel(self) -> str | None:
        b1 = self._call.legs.b1
        return None if b1 is None else b1.name

    @property
    def answered(self) -> bool:
        return self._call.answered.is_set()

    def done(self) -> bool:
        return self._task.done()

    async def wait_answered(self) -> None:
        """Until the call is answered (bound it with ``asyncio.timeout``); RuntimeError if
        it ended unanswered."""
        answered = asyncio.ensure_future(self._call.answered.wait())
        try:
            await asyncio.wait({answered, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            answered.cancel()
        if not self._call.answered.is_set():
            raise RuntimeError(f"call {self.uniqueid} ended unanswered: {self._call.ended_by}")

    def __await__(self) -> Generator[object, None, CallRecord]:
        return self._task.__await__()


class Simulator:
    """A protocol-faithful Asterisk 22 for tests, benchmarks and the CLI."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        cfg = self.config
        self._call_cfg = CallConfig(agi=cfg.agi, agi_script=cfg.agi_script,
                                    agi_timeout_s=cfg.agi_timeout_s,
                                    agi_connect_timeout_s=cfg.agi_connect_timeout_s,
                                    dial_timeout_s=cfg.dial_timeout_s, cel=cfg.cel,
                                    record_events=cfg.record_events, version=cfg.version)
        self._clock = EventClock()
        self._ami = AmiServer(self, cfg.users, cfg.host, cfg.ami_port, cfg.auth_timeout_s,
                              cfg.read)
        self._prefix = cfg.call_id_prefix or f"sim{secrets.randbelow(10**8):08d}"
        self._call_no = itertools.count(1)
        self._local_no = itertools.count(0x200)
        self._uniqueid_no = itertools.count(1000)
        self._used_ids: set[str] = set()
        self._calls: dict[str, tuple[Call, asyncio.Task[CallRecord]]] = {}
        self._duplicates: frozenset[str] = frozenset()
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> Simulator:
        await self._ami.start()
        self._started = True
        return self

    async def close(self) -> None:
        """Stop the AMI server and abandon calls still running (their awaiters get cancelled)."""
        tasks = [task for _, task in self._calls.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await self._ami.close()
        self._started = False

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    @property
    def ami_port(self) -> int:
        return self._ami.port

    @property
    def ami_clients(self) -> int:
        """AMI sessions currently logged in."""
        return self._ami.clients

    # -- calls -----------------------------------------------------------------------------
    def start_call(self, spec: CallSpec) -> CallHandle:
        if not self._started:
            raise RuntimeError("start the simulator before placing calls")
        if not isinstance(spec, CallSpec):
            raise ScenarioError(f"expected a CallSpec, not {type(spec).__name__}")
        call_id = spec.call_id or f"{self._prefix}-{next(self._call_no)}"
        if call_id in self._used_ids:
            raise ScenarioError(f"call id {call_id!r} was already used by this simulator")
        self._used_ids.add(call_id)
        call = Call(spec, call_id, self._call_cfg, self._clock, self._send,
                    lambda: next(self._local_no), self._next_uniqueid, self._ami.flow)
        task = asyncio.create_task(call.run(), name=f"sim-call-{call_id}")
        self._calls[call_id] = (call, task)
        task.add_done_callback(lambda _t: self._calls.pop(call_id, None))
        return CallHandle(call, task)

    async def place_call(self, spec: CallSpec) -> CallRecord:
        return await self.start_call(spec)

    async def run(self, specs: Iterable[CallSpec], concurrency: int = 10) -> list[CallRecord]:
        """Play every spec with at most ``concurrency`` calls at once; records in spec order."""
        specs = list(specs)
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ScenarioError(f"concurrency must be a positive integer, not {concurrency!r}")
        slots = asyncio.Semaphore(concurrency)

        async def one(spec: CallSpec) -> CallRecord:
            async with slots:
                return await self.place_call(spec)

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(spec)) for spec in specs]
        return [t.result() for t in tasks]

    def live_calls(self) -> list[CallHandle]:
        return [CallHandle(call, task) for call, task in self._calls.values() if not call.ended]

    def _next_uniqueid(self) -> str:
        return f"{int(time.time())}.{next(self._uniqueid_no)}"

    # -- faults ----------------------------------------------------------------------------
    async def drop_ami(self, seconds: float | None) -> None:
        """Close every AMI session and refuse new ones for ``seconds`` (None: until
        ``restore_ami``). Events of the outage are lost, as with a real Asterisk."""
        if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
            raise ScenarioError(f"drop_ami seconds must be >= 0, not {seconds!r}")
        await self._ami.drop(seconds)

    async def restore_ami(self) -> None:
        """End an AMI outage now."""
        await self._ami.restore()

    async def wait_ami_up(self) -> None:
        """Until the AMI server listens again (bound it with ``asyncio.timeout``)."""
        await self._ami.up.wait()

    @property
    def ami_up(self) -> bool:
        return self._ami.up.is_set()

    def duplicate_events(self, kinds: Iterable[str]) -> None:
        """Send every event of these kinds twice (empty: stop duplicating)."""
        if isinstance(kinds, str):
            raise ScenarioError("duplicate_events takes a collection of event names")
        self._duplicates = frozenset(kinds)

    def silent_ami(self, silent: bool = True) -> None:
        """Keep AMI sessions open but answer no action and send no event (a hung PBX)."""
        self._ami.silent = bool(silent)

    # -- what AMI actions reach (PbxControl) ---------------------------------------------
    def _send(self, msg: Message, call_duplicates: frozenset[str]) -> None:
        kind = msg.event
        twice = kind is not None and (kind in self._duplicates or kind in call_duplicates)
        self._ami.broadcast(msg, 2 if twice else 1)

    def _find(self, name: str) -> tuple[Call, Channel] | None:
        """By channel name (case-insensitive) or uniqueid, like ast_channel_get_by_name."""
        lname = name.lower()
        for call, _task in self._calls.values():
            for ch in call.legs.live:
                if ch.name.lower() == lname or ch.uniqueid == name:
                    return call, ch
        return None

    def hangup(self, channel: str, cause: int) -> bool:
        found = self._find(channel)
        if found is None:
            return False
        call, ch = found
        call.request_hangup("ami_hangup", cause, ch)
        return True

    def absolute_timeout(self, channel: str, seconds: float) -> bool:
        found = self._find(channel)
        if found is None:
            return False
        call, ch = found
        call.set_timeout(seconds, ch)
        return True

    def live_channels(self) -> list[Channel]:
        return [ch for call, _task in self._calls.values() for ch in call.legs.live]

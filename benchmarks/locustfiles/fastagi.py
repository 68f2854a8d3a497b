"""Outbound calls through the Asterisk connector, for locust (headless-ready).

Each user is an Asterisk whose dialplan runs ``AGI(agi://host:port/authorize,${CHANNEL(linkedid)})``
before every outbound call: it connects, sends the ``agi_*`` environment in res_agi's order,
answers every ``SET VARIABLE`` with ``200 result=1`` until the server closes, and reports one
request per authorization through locust's request event (``authorize ALLOWED|DENIED``; a
failure when no CHARGING_STATUS came back, it was ERROR, or the PBX would not take the call).

With ``CE_LOAD_PBX`` (the load test's simulated Asterisk, ``benchmarks/loadtest/``) an allowed
call is then handed over to be played on AMI under the Uniqueid it was authorized with: Dial,
answer after the ring, talk (capped at CHARGING_MAXSEC, as Dial's ``L()`` would), Hangup, Cdr.
The connector charges it at its Hangup exactly as on a real PBX. Without it nothing ends the
calls and their reservations are left to their TTL (the sweeper's expiry policy).

    CE_AGI_HOST / CE_AGI_PORT  the connector's FastAGI listener          default 127.0.0.1:4573
    CE_LOAD_PBX                host:port of the simulator's call intake  default: none
    CE_LOAD_ACCOUNTS           funded account codes acc0..N-1            default 100
    CE_LOAD_POOR               account codes without money poor0..M-1    default 5
    CE_LOAD_HOLD_MS            ring time before the answer               default 0
    CE_LOAD_TALK_S             mean talk (real seconds, uniform 0..2x)   default 2
    CE_LOAD_P99_MS             stats gate: p99 threshold (ms)            default 50
    CE_LOAD_MAX_FAIL           stats gate: failure ratio threshold       default 0.01

The intake protocol is one line per call, ``PLAY <call id> <account> <destination> <ring s>
<talk s>``, answered ``OK`` (the call is playing) or ``ERR <why>``. The simulator names the
call's channels from the call id: the billable leg's Uniqueid is ``<call id>-a`` and the
Linkedid ``<call id>-h``, which is what the AGI environment carries.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import socket
import time
from typing import Any

import gevent
from gevent import GreenletExit
from gevent.lock import BoundedSemaphore
from locust import User, between, events, task
from locust.env import Environment

HOST = os.environ.get("CE_AGI_HOST", "127.0.0.1")
PORT = int(os.environ.get("CE_AGI_PORT", "4573"))
PBX = os.environ.get("CE_LOAD_PBX", "")
ACCOUNTS = int(os.environ.get("CE_LOAD_ACCOUNTS", "100"))
POOR = int(os.environ.get("CE_LOAD_POOR", "5"))
RING_S = int(os.environ.get("CE_LOAD_HOLD_MS", "0")) / 1000
TALK_S = float(os.environ.get("CE_LOAD_TALK_S", "2"))
P99_MS = float(os.environ.get("CE_LOAD_P99_MS", "50"))
MAX_FAIL = float(os.environ.get("CE_LOAD_MAX_FAIL", "0.01"))
DESTINATIONS = ["12125550100", "442079460000", "4930123456", "33142685300"]
NO_RATE = "999555123"
_ids = itertools.count()
_locals = itertools.count(0x1000)


def agi_authorize(account: str, destination: str, call_id: str, timeout: float = 5.0
                  ) -> dict[str, str]:
    """One FastAGI exchange as Asterisk performs it; returns the variables the server set."""
    url = f"agi://{HOST}:{PORT}/authorize"
    env = (
        f"agi_network: yes\nagi_network_script: authorize\nagi_request: {url}\n"
        f"agi_channel: Local/{destination}@outbound-{next(_locals):08x};2\nagi_language: en\n"
        f"agi_type: Local\nagi_uniqueid: {call_id}-a\nagi_version: 22.10.1\n"
        "agi_callerid: 15550001\nagi_calleridname: 15550001\nagi_callingpres: 0\n"
        "agi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\nagi_dnid: unknown\n"
        "agi_rdnis: unknown\nagi_context: outbound\n"
        f"agi_extension: {destination}\nagi_priority: 2\nagi_enhanced: 0.0\n"
        f"agi_accountcode: {account}\nagi_threadid: 139850000000000\n"
        f"agi_arg_1: {call_id}-h\n\n"
    )
    variables: dict[str, str] = {}
    with socket.create_connection((HOST, PORT), timeout=timeout) as s:
        s.sendall(env.encode())
        buf = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return variables
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode().strip()
                if text.startswith("SET VARIABLE "):
                    name, _, value = text[len("SET VARIABLE "):].partition(" ")
                    variables[name] = value.strip('"')
                    s.sendall(b"200 result=1\n")
                elif text:
                    s.sendall(b"510 Invalid or unknown command\n")


class PbxIntake:
    """This user's connection to the simulated Asterisk; one call handed over at a time."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.address = (host, int(port))
        self.lock = BoundedSemaphore(1)
        self.sock: socket.socket | None = None
        self.reader: Any = None

    def play(self, call_id: str, account: str, destination: str, ring_s: float,
             talk_s: float) -> None:
        """Raises when the simulator did not take the call (it would be left to its TTL)."""
        with self.lock:
            try:
                if self.sock is None:
                    self.sock = socket.create_connection(self.address, timeout=10)
                    self.reader = self.sock.makefile("rb")
                self.sock.sendall(f"PLAY {call_id} {account} {destination} {ring_s:.3f} "
                                  f"{talk_s:.3f}\n".encode())
                answer = self.reader.readline().decode().strip()
            except OSError:
                self.close()
                raise
        if answer != "OK":
            raise RuntimeError(f"the PBX did not take call {call_id}: {answer or 'closed'}")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = self.reader = None


class AsteriskUser(User):
    """A PBX's dialplan asking the connector before each outbound call, then placing it."""

    wait_time = between(0, 0.01)

    def on_start(self) -> None:
        self.tag = f"L{os.getpid()}-{next(_ids)}"
        self.n = 0
        self.pbx = PbxIntake(PBX) if PBX else None

    def on_stop(self) -> None:
        if self.pbx is not None:
            self.pbx.close()

    def _call(self, account: str, destination: str) -> None:
        self.n += 1
        call_id = f"{self.tag}-{self.n}"
        started = time.perf_counter()
        exc: Exception | None = None
        status = ""
        elapsed: float | None = None  # what is timed: the FastAGI exchange, not the hand-over
        try:
            variables = agi_authorize(account, destination, call_id)
            elapsed = time.perf_counter() - started
            status = variables.get("CHARGING_STATUS", "")
            if status not in ("ALLOWED", "DENIED"):
                exc = RuntimeError(f"CHARGING_STATUS={status!r} {variables}")
            elif status == "ALLOWED" and self.pbx is not None:
                limit = int(variables.get("CHARGING_MAXSEC", "0") or 0)
                talk = min(random.uniform(0, 2 * TALK_S), limit)
                self.pbx.play(call_id, account, destination, RING_S, talk)
        except (OSError, RuntimeError, ValueError) as e:
            exc = e
        if elapsed is None:
            elapsed = time.perf_counter() - started
        self.environment.events.request.fire(
            request_type="FastAGI", name=f"authorize {status or 'error'}",
            response_time=elapsed * 1000, response_length=0, exception=exc, context={},
        )

    def _place(self, *calls: tuple[str, str]) -> None:
        """Each call in its own greenlet, waited for even when locust stops this user.

        Locust can kill a user mid-task at the end of a run (a stop that races the user leaving
        its wait), and a call killed between its authorization and its hand-over would hold a
        reservation no PBX ever ends. The kill reaches only the user: its calls finish first.
        """
        jobs = [gevent.spawn(self._call, account, destination) for account, destination in calls]
        try:
            gevent.joinall(jobs)
        except GreenletExit:
            gevent.joinall(jobs)
            raise

    @task(85)
    def normal_call(self) -> None:
        self._place((f"acc{random.randrange(ACCOUNTS)}", random.choice(DESTINATIONS)))

    @task(5)
    def shared_account_burst(self) -> None:
        """Parallel calls on one account, as a busy office's extensions place them."""
        account = f"acc{random.randrange(min(ACCOUNTS, 5))}"
        self._place(*[(account, random.choice(DESTINATIONS)) for _ in range(4)])

    @task(5)
    def denied_no_money(self) -> None:
        if POOR:
            self._place((f"poor{random.randrange(POOR)}", random.choice(DESTINATIONS)))

    @task(5)
    def unknown_destination(self) -> None:
        self._place((f"acc{random.randrange(ACCOUNTS)}", NO_RATE))


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def stats_gate(environment: Environment, **_: Any) -> None:
    """Fail the run (exit code 1) when p99 or the failure ratio break their thresholds."""
    total = environment.stats.total
    p99 = total.get_response_time_percentile(0.99) or 0.0
    if total.fail_ratio > MAX_FAIL:
        logging.error("stats gate: failure ratio %.4f > %.4f", total.fail_ratio, MAX_FAIL)
        environment.process_exit_code = 1
    elif p99 > P99_MS:
        logging.error("stats gate: p99 %.1f ms > %.1f ms", p99, P99_MS)
        environment.process_exit_code = 1
    else:
        environment.process_exit_code = 0

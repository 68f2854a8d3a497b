"""FastAGI authorizations against the Asterisk connector, for locust (headless-ready).

Each user plays Asterisk's side of ``AGI(agi://host:port/authorize,<linkedid>)``: it connects,
sends the ``agi_*`` environment, answers every ``SET VARIABLE`` with ``200 result=1`` until the
server closes, and reports one request per authorization through locust's request event
(failure when no CHARGING_STATUS came back or it was ERROR).

    CE_AGI_HOST / CE_AGI_PORT   the connector's FastAGI listener   default 127.0.0.1:4573
    CE_LOAD_ACCOUNTS            account codes acc0..N-1             default 100
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import time
from typing import Any

from locust import User, between, task

HOST = os.environ.get("CE_AGI_HOST", "127.0.0.1")
PORT = int(os.environ.get("CE_AGI_PORT", "4573"))
ACCOUNTS = int(os.environ.get("CE_LOAD_ACCOUNTS", "100"))
DESTINATIONS = ["12125550100", "442079460000", "4930123456", "999555123"]
_ids = itertools.count()


def agi_authorize(account: str, destination: str, uniqueid: str, timeout: float = 5.0
                  ) -> dict[str, str]:
    """One FastAGI exchange as Asterisk performs it; returns the variables the server set."""
    env = (
        "agi_network: yes\nagi_network_script: authorize\n"
        f"agi_request: agi://{HOST}:{PORT}/authorize\n"
        f"agi_channel: Local/{destination}@outbound-{uniqueid};2\nagi_language: en\n"
        f"agi_type: Local\nagi_uniqueid: {uniqueid}\nagi_version: 22.10.1\n"
        "agi_callerid: 15550001\nagi_calleridname: 15550001\nagi_dnid: unknown\n"
        f"agi_context: outbound\nagi_extension: {destination}\nagi_priority: 2\n"
        f"agi_accountcode: {account}\nagi_arg_1: {uniqueid}-h\n\n"
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


class AsteriskUser(User):
    """A PBX's dialplan asking the connector before each outbound call."""

    wait_time = between(0, 0.01)

    def on_start(self) -> None:
        self.tag = f"{os.getpid()}-{next(_ids)}"
        self.n = 0

    @task
    def authorize(self) -> None:
        self.n += 1
        uniqueid = f"{self.tag}.{self.n}"
        account = f"acc{random.randrange(ACCOUNTS)}"
        started = time.perf_counter()
        exc: Exception | None = None
        status = ""
        try:
            variables = agi_authorize(account, random.choice(DESTINATIONS), uniqueid)
            status = variables.get("CHARGING_STATUS", "")
            if status not in ("ALLOWED", "DENIED"):
                exc = RuntimeError(f"CHARGING_STATUS={status!r} {variables}")
        except OSError as e:
            exc = e
        meta: dict[str, Any] = {
            "request_type": "FastAGI", "name": f"authorize {status or 'error'}",
            "response_time": (time.perf_counter() - started) * 1000, "response_length": 0,
            "exception": exc, "context": {},
        }
        self.environment.events.request.fire(**meta)

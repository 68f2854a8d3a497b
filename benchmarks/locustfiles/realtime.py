"""PBX call flows on the real-time HTTP API, for locust (headless-ready).

Each simulated PBX user places calls on a shared pool of accounts: authorize -> hold (ring) ->
answer -> end, with a realistic mix of denied calls (accounts without money), unknown
destinations and parallel calls on shared accounts. Parameters come from the environment so the
same file runs from the one-command load test or by hand:

    CE_LOAD_KEY        PBX key (Bearer)                       default loadtest-key
    CE_LOAD_ACCOUNTS   number of funded accounts (acc0..N-1)  default 100
    CE_LOAD_POOR       accounts without money (poor0..M-1)    default 5
    CE_LOAD_HOLD_MS    ring time between authorize and answer default 0
    CE_LOAD_TALK_S     billable seconds reported at the end   default 30
    CE_LOAD_P99_MS     stats gate: p99 threshold (ms)         default 50
    CE_LOAD_MAX_FAIL   stats gate: failure ratio threshold    default 0.01
"""

from __future__ import annotations

import itertools
import logging
import os
import random
from typing import Any

import gevent
from locust import FastHttpUser, between, events, task
from locust.env import Environment

KEY = os.environ.get("CE_LOAD_KEY", "loadtest-key")
ACCOUNTS = int(os.environ.get("CE_LOAD_ACCOUNTS", "100"))
POOR = int(os.environ.get("CE_LOAD_POOR", "5"))
HOLD_S = int(os.environ.get("CE_LOAD_HOLD_MS", "0")) / 1000
TALK_S = int(os.environ.get("CE_LOAD_TALK_S", "30"))
P99_MS = float(os.environ.get("CE_LOAD_P99_MS", "50"))
MAX_FAIL = float(os.environ.get("CE_LOAD_MAX_FAIL", "0.01"))
DESTINATIONS = ["+12125550100", "+442079460000", "+4930123456", "+33142685300"]
_ids = itertools.count()


class PbxUser(FastHttpUser):
    """One PBX trunk placing calls back to back."""

    wait_time = between(0, 0.01)

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {KEY}"}
        self.tag = f"{os.getpid()}-{next(_ids)}"
        self.n = 0

    def _post(self, path: str, body: dict[str, Any], name: str, ok: set[int]) -> Any:
        with self.client.post(path, json=body, headers=self.headers, name=name,
                              catch_response=True) as r:
            if r.status_code not in ok:
                r.failure(f"HTTP {r.status_code}: {r.text[:200]}")
                return None
            r.success()
            return r.json()

    def _call(self, account: str, destination: str) -> None:
        self.n += 1
        call = f"{self.tag}-{self.n}"
        body = {"account": account, "call_id": call}
        auth = self._post("/v1/calls/authorize", {**body, "destination": destination},
                          "authorize", {200})
        if not auth or not auth["allowed"]:
            return
        if HOLD_S:
            gevent.sleep(HOLD_S)  # ringing
        self._post("/v1/calls/answer", body, "answer", {200})
        talk = random.randint(0, min(TALK_S * 2, auth["max_seconds"]))
        self._post("/v1/calls/end", {**body, "billable_seconds": talk}, "end", {200})

    @task(85)
    def normal_call(self) -> None:
        self._call(f"acc{random.randrange(ACCOUNTS)}", random.choice(DESTINATIONS))

    @task(5)
    def shared_account_burst(self) -> None:
        """Parallel calls on one account, as a busy office trunk does."""
        account = f"acc{random.randrange(min(ACCOUNTS, 5))}"
        jobs = [gevent.spawn(self._call, account, random.choice(DESTINATIONS)) for _ in range(4)]
        gevent.joinall(jobs)

    @task(5)
    def denied_no_money(self) -> None:
        if POOR:
            self._call(f"poor{random.randrange(POOR)}", random.choice(DESTINATIONS))

    @task(5)
    def unknown_destination(self) -> None:
        self._call(f"acc{random.randrange(ACCOUNTS)}", "+999555123")


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

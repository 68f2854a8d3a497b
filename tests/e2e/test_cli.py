"""The operator's commands, run as an operator would: load data, reconcile, rebuild."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis

from charging_engine.balance.functions import library_source
from charging_engine.balance.keys import AccountKeys
from tests.e2e.support import ACCOUNTS, KEY, RATES


def cli(redis_url: str, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "charging_server", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )


def test_load_reconcile_rebuild(redis_url: str, database_url: str, tmp_path: Path) -> None:
    (tmp_path / "rates.csv").write_text(RATES)
    (tmp_path / "accounts.csv").write_text(ACCOUNTS)
    load = ["load-data", "--tenant", "tel", "--currency", "USD", "--plan", "p",
            "--rates", str(tmp_path / "rates.csv"), "--accounts", str(tmp_path / "accounts.csv"),
            "--pbx-key", KEY]
    first = cli(redis_url, database_url, *load)
    assert first.returncode == 0, first.stderr
    assert "2 rates, 5 accounts" in first.stdout
    again = cli(redis_url, database_url, *load)  # loading twice funds opening balances once
    assert again.returncode == 0, again.stderr

    ok = cli(redis_url, database_url, "reconcile")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 difference(s)" in ok.stdout

    r = redis.Redis.from_url(redis_url)
    key = AccountKeys.of("tel", "a1", 64).account_key
    assert int(r.hget(key, "balance") or 0) == 20_000_000
    r.hincrby(key, "balance", 123)  # Redis drifts from the ledger
    drift = cli(redis_url, database_url, "reconcile")
    assert drift.returncode == 1
    assert "tel/a1" in drift.stdout and "1 difference(s)" in drift.stdout

    r.flushall()  # Redis lost entirely
    r.execute_command("FUNCTION", "LOAD", "REPLACE", library_source())
    rebuilt = cli(redis_url, database_url, "rebuild-balances")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt 5 account balances" in rebuilt.stdout
    assert int(r.hget(key, "balance") or 0) == 20_000_000
    clean = cli(redis_url, database_url, "reconcile")
    assert clean.returncode == 0 and "0 difference(s)" in clean.stdout

    bad = cli(redis_url, database_url, "load-data", "--tenant", "tel", "--currency", "USD",
              "--plan", "p", "--rates", str(tmp_path / "missing.csv"),
              "--accounts", str(tmp_path / "accounts.csv"), "--pbx-key", KEY)
    assert bad.returncode == 2
    assert "missing.csv" in bad.stderr and "Traceback" not in bad.stderr
    r.close()

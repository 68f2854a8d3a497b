"""What an operator sees when a command cannot start: one line naming the problem, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from charging_engine.devservers import free_port


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("REDIS_URL", "DATABASE_URL", "CE_REDIS_URL", "CE_DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "charging_server", *args],
        env={**base, **env}, capture_output=True, text=True, timeout=120,
    )


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_unreachable_database_url_exits_2_with_one_line(redis_url: str, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://ce:s3cret@127.0.0.1:{port}/ledger"
    done = run_cli({"REDIS_URL": redis_url, "DATABASE_URL": url,
                    "CE_DATA_DIR": str(tmp_path)}, "reconcile")
    assert done.returncode == 2, done.stdout + done.stderr
    line = one_line(done.stderr)
    assert "PostgreSQL" in line and f"127.0.0.1:{port}" in line
    assert "s3cret" not in line and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_unreachable_redis_url_exits_2_with_one_line(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    done = run_cli({"REDIS_URL": f"redis://127.0.0.1:{port}/0", "DATABASE_URL": database_url,
                    "CE_DATA_DIR": str(tmp_path)}, "reconcile")
    assert done.returncode == 2, done.stdout + done.stderr
    line = one_line(done.stderr)
    assert "Redis" in line and f"127.0.0.1:{port}" in line
    assert "Traceback" not in done.stderr


def test_create_platform_key_without_database_url_refuses_before_starting_anything(
    tmp_path: Path,
) -> None:
    data = tmp_path / "var"
    done = run_cli({"CE_DATA_DIR": str(data)}, "create-platform-key", "--name", "operator")
    assert done.returncode == 2
    assert "DATABASE_URL" in one_line(done.stderr)
    assert done.stdout == ""
    assert not data.exists()  # no private server was started for it


def test_only_the_missing_server_is_called_private(database_url: str, tmp_path: Path) -> None:
    done = run_cli({"DATABASE_URL": database_url, "CE_DATA_DIR": str(tmp_path)}, "reconcile")
    assert done.returncode == 0, done.stdout + done.stderr
    servers = next(line for line in done.stdout.splitlines() if line.startswith("servers:"))
    assert "private Redis redis://" in servers
    assert "private PostgreSQL" not in servers
    assert "(DATABASE_URL)" in servers and "set REDIS_URL to keep" in servers

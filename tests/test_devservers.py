"""The private Redis/PostgreSQL servers of charging_engine.devservers, for real."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
import redis
import uvloop

from charging_engine.devservers import (
    INSTALL_HINT,
    MIN_POSTGRES,
    MIN_REDIS,
    MissingBinaries,
    PostgresServer,
    PrivateStack,
    RedisServer,
    apt_packages,
    ensure_binaries,
    free_port,
    install_hint,
    reap_stale_runs,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def _gone(pid: int) -> bool:
    """No such process (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _group_gone(pgid: int) -> bool:
    """No live process left in process group ``pgid``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return False
    return True


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


# ------------------------------------------------------------------ the session fixtures


def test_redis_answers(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
        assert client.info("server")["redis_version"].split(".")[0] >= str(MIN_REDIS)
        client.set("left-behind", 1)  # the next test must not see it
    finally:
        client.close()


def test_redis_url_is_flushed_before_each_test(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
    finally:
        client.close()


async def test_postgres_answers_on_uvloop(database_url: str) -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    conn = await asyncpg.connect(database_url)
    try:
        version = await conn.fetchval("select version()")
        assert version.startswith("PostgreSQL ")
        assert conn.get_server_version().major >= MIN_POSTGRES
        name = await conn.fetchval("select current_database()")
        assert name == database_url.rsplit("/", 1)[1]
        assert name.startswith("t_")
    finally:
        await conn.close()


async def test_each_test_gets_a_new_database(
    database_url: str, private_postgres: PostgresServer
) -> None:
    conn = await asyncpg.connect(private_postgres.url)
    try:
        names = {
            r["datname"]
            for r in await conn.fetch("select datname from pg_database where datname like 't\\_%'")
        }
    finally:
        await conn.close()
    # earlier tests' databases were dropped after them
    assert names == {database_url.rsplit("/", 1)[1]}


# ------------------------------------------------------------------ restart and kill


async def test_postgres_restart_keeps_port_and_data(devservers_dir: Path) -> None:
    pg = PostgresServer(devservers_dir / "pg-restart")
    try:
        pg.start()
        port, url = pg.port, pg.create_database("kept")
        conn = await asyncpg.connect(url)
        await conn.execute("create table t (x int); insert into t values (42)")
        await conn.close()
        old_pid = pg.pid

        pg.restart()

        assert pg.port == port and pg.running and pg.pid != old_pid
        assert pg.url == f"postgresql://postgres@127.0.0.1:{port}/postgres"
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("select x from t") == 42
        await conn.close()

        # stop ... (clients see it down) ... start: still the same port
        pg.stop()
        assert _refuses(port)
        pg.start()
        assert pg.port == port
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("select x from t") == 42
        await conn.close()
    finally:
        pg.remove_data()
    assert not pg.data_dir.exists()


def test_redis_restart_keeps_port_and_aof_data(devservers_dir: Path) -> None:
    server = RedisServer(devservers_dir / "redis-restart", appendonly=True)
    try:
        server.start()
        port = server.port
        client = redis.Redis.from_url(server.url)
        client.set("balance", 100)
        client.close()

        server.restart()

        assert server.port == port
        assert server.url == f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(server.url)
        assert client.get("balance") == b"100"
        client.close()
    finally:
        server.stop()


def test_redis_kill_actually_kills(devservers_dir: Path) -> None:
    server = RedisServer(devservers_dir / "redis-kill")
    server.start()
    pid = server.pid
    assert pid is not None and not _gone(pid)

    server.kill()

    assert not server.running and server.pid is None
    assert _gone(pid) and _group_gone(pid)
    assert _refuses(server.port)


async def test_postgres_kill_actually_kills_and_recovers(devservers_dir: Path) -> None:
    pg = PostgresServer(devservers_dir / "pg-kill")
    try:
        pg.start()
        url = pg.create_database("survivor")
        conn = await asyncpg.connect(url)
        # the server runs with synchronous_commit=off: commits of the last few hundred ms may
        # be lost in a crash, as in production with that setting; make this one durable
        await conn.execute("set synchronous_commit = on")
        await conn.execute("create table t (x int); insert into t values (7)")
        await conn.close()
        pid = pg.pid
        assert pid is not None

        pg.kill()  # the postmaster and all its backends, at once

        assert not pg.running
        assert _gone(pid) and _group_gone(pid)
        assert _refuses(pg.port)

        pg.start()  # crash recovery
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("select x from t") == 7
        await conn.close()
    finally:
        pg.remove_data()


# ------------------------------------------------------------------ binaries


def test_ensure_binaries_finds_recent_enough_versions() -> None:
    redis_server, pg_bin = ensure_binaries()
    assert redis_server.name == "redis-server" and os.access(redis_server, os.X_OK)
    for tool in ("postgres", "initdb", "createdb"):
        assert os.access(pg_bin / tool, os.X_OK)


def test_missing_binaries_names_what_to_install(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    # an empty search PATH: no redis-server, no postgres, no pg_config and no apt-get either,
    # so nothing gets installed and the error says what to do
    with pytest.raises(MissingBinaries) as caught:
        ensure_binaries(path=str(empty), pg_candidates=[empty])
    message = str(caught.value)
    assert "redis-server not found" in message
    assert "PostgreSQL server binaries" in message
    assert "apt-get install -y redis-server postgresql" in message
    assert "redis-server (>= 7)" in message and "postgresql-15" in message

    with pytest.raises(MissingBinaries, match="automatic installation disabled"):
        ensure_binaries(path=str(empty), pg_candidates=[empty], install=False)


def test_too_old_binaries_are_refused(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    pg_dir = tmp_path / "pg13" / "bin"
    bin_dir.mkdir()
    pg_dir.mkdir(parents=True)

    def script(path: Path, output: str) -> None:
        path.write_text(f"#!/bin/sh\necho '{output}'\n")
        path.chmod(0o755)

    script(bin_dir / "redis-server", "Redis server v=6.0.16 sha=00000000:0 malloc=jemalloc")
    script(pg_dir / "postgres", "postgres (PostgreSQL) 13.4")
    for tool in ("initdb", "createdb", "dropdb"):
        script(pg_dir / tool, "")
    with pytest.raises(MissingBinaries) as caught:
        ensure_binaries(path=str(bin_dir), pg_candidates=[pg_dir], install=False)
    message = str(caught.value)
    assert "Redis 6, need >= 7" in message
    assert "PostgreSQL 13, need >= 15" in message
    assert "apt-get install -y redis-server postgresql" in message


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


# ------------------------------------------------------------------ PrivateStack


async def test_private_stack_starts_both_and_cleans_up(
    devservers_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    base = devservers_dir / "stacks"
    started = time.monotonic()
    with PrivateStack(base) as stack:
        assert time.monotonic() - started < 15, "starting both should take seconds at most"
        assert stack.redis is not None and stack.postgres is not None
        assert stack.run_dir.parent == base and (stack.run_dir / "redis").is_dir()
        assert stack.redis_url == stack.redis.url
        assert stack.database_url == stack.postgres.url
        client = redis.Redis.from_url(stack.redis_url)
        assert client.ping()
        client.close()
        conn = await asyncpg.connect(stack.database_url)
        assert await conn.fetchval("select 1") == 1
        await conn.close()
        pids = [stack.redis.pid, stack.postgres.pid]
        run_dir = stack.run_dir
    assert not run_dir.exists()
    for pid in pids:
        assert pid is not None and _gone(pid) and _group_gone(pid)


def test_private_stacks_do_not_clash(devservers_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    base = devservers_dir / "stacks"
    with PrivateStack(base) as one, PrivateStack(base) as two:
        assert one.run_dir != two.run_dir
        assert one.redis_url != two.redis_url and one.database_url != two.database_url


def test_private_stack_uses_urls_from_the_environment(
    devservers_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    private_redis: RedisServer,
    private_postgres: PostgresServer,
) -> None:
    monkeypatch.setenv("REDIS_URL", private_redis.url)
    monkeypatch.setenv("DATABASE_URL", private_postgres.url)
    with PrivateStack(devservers_dir / "stacks") as stack:
        assert stack.redis is None and stack.postgres is None
        assert stack.redis_url == private_redis.url
        assert stack.database_url == private_postgres.url
        assert not stack.run_dir.exists()

    monkeypatch.delenv("REDIS_URL")
    with PrivateStack(devservers_dir / "stacks") as stack:
        assert stack.redis is not None and stack.postgres is None
        assert stack.redis_url == stack.redis.url != private_redis.url
        assert stack.database_url == private_postgres.url


def _children() -> dict[int, str]:
    """This process's live child processes: pid -> command name (the servers are children)."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
        except OSError:
            continue
        fields = rest.split()
        if int(fields[1]) == os.getpid() and fields[0] not in ("Z", "X"):
            found[int(entry)] = head.split("(", 1)[1]
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc")
def test_private_stack_with_redis_only_starts_no_postgres(
    devservers_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    before = _children()
    with PrivateStack(devservers_dir / "stacks", redis=True, postgres=False) as stack:
        assert stack.redis is not None and stack.postgres is None
        new = {pid: name for pid, name in _children().items() if pid not in before}
        assert new == {stack.redis.pid: "redis-server"}
        assert sorted(p.name for p in stack.run_dir.iterdir()) == ["redis"]
        client = redis.Redis.from_url(stack.redis_url)
        try:
            assert client.ping()
        finally:
            client.close()
        with pytest.raises(RuntimeError, match=r"no PostgreSQL: made with postgres=False"):
            _ = stack.database_url
        run_dir, redis_pid = stack.run_dir, stack.redis.pid
    assert not run_dir.exists() and _gone(redis_pid)


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc")
async def test_private_stack_with_postgres_only_needs_no_redis(
    devservers_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    # no redis-server (nor apt-get) on PATH: starting must not even look for it
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    before = _children()
    with PrivateStack(devservers_dir / "stacks", redis=False, postgres=True) as stack:
        assert stack.redis is None and stack.postgres is not None
        new = {pid: name for pid, name in _children().items() if pid not in before}
        assert new == {stack.postgres.pid: "postgres"}
        assert sorted(p.name for p in stack.run_dir.iterdir()) == ["pg"]
        conn = await asyncpg.connect(stack.database_url)
        try:
            assert await conn.fetchval("select 1") == 1
        finally:
            await conn.close()
        with pytest.raises(RuntimeError, match=r"no Redis: made with redis=False"):
            _ = stack.redis_url
        run_dir, pg_pid = stack.run_dir, stack.postgres.pid
    assert not run_dir.exists() and _gone(pg_pid)


def test_urls_of_a_stack_not_started_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    stack = PrivateStack(Path("unused"))
    with pytest.raises(RuntimeError, match="not started"):
        _ = stack.redis_url
    with pytest.raises(RuntimeError, match="not started"):
        _ = stack.database_url


@pytest.mark.parametrize(
    ("need_redis", "need_pg", "redis_found", "pg_found", "expected"),
    [
        (True, True, False, False, ["redis-server", "postgresql"]),
        (True, True, True, False, ["postgresql"]),
        (True, True, False, True, ["redis-server"]),
        (True, False, False, False, ["redis-server"]),
        (False, True, False, False, ["postgresql"]),
        (False, False, False, False, []),
        (True, True, True, True, []),
    ],
)
def test_apt_installs_only_the_missing_package(
    need_redis: bool, need_pg: bool, redis_found: bool, pg_found: bool, expected: list[str]
) -> None:
    assert apt_packages(need_redis, need_pg, redis_found, pg_found) == expected


def test_install_hint_names_only_the_given_packages() -> None:
    assert install_hint(["redis-server"]) == (
        "install redis-server (>= 7): apt-get install -y redis-server"
    )
    assert install_hint(["postgresql"]) == (
        "install postgresql-15 (or newer): apt-get install -y postgresql"
    )
    assert install_hint(["postgresql", "redis-server"]) == INSTALL_HINT
    assert "redis-server postgresql" in INSTALL_HINT


def test_missing_redis_only_names_redis(tmp_path: Path) -> None:
    _, pg_bin = ensure_binaries()
    empty = tmp_path / "empty"
    empty.mkdir()
    # real PostgreSQL binaries, no redis-server (and no apt-get) on the search PATH
    with pytest.raises(MissingBinaries) as caught:
        ensure_binaries(path=str(empty), pg_candidates=[pg_bin])
    message = str(caught.value)
    assert "redis-server not found" in message
    assert message.endswith("To fix: install redis-server (>= 7): apt-get install -y redis-server")
    assert "postgres" not in message.lower()
    # and without Redis needed, the same machine is fine
    assert ensure_binaries(path=str(empty), pg_candidates=[pg_bin], redis=False) == (None, pg_bin)


def test_missing_postgres_only_names_postgres(tmp_path: Path) -> None:
    redis_server, _ = ensure_binaries()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "redis-server").symlink_to(redis_server)
    empty = tmp_path / "empty"
    empty.mkdir()
    # a real redis-server on the search PATH, no PostgreSQL anywhere searched (nor apt-get)
    with pytest.raises(MissingBinaries) as caught:
        ensure_binaries(path=str(bin_dir), pg_candidates=[empty])
    message = str(caught.value)
    assert "PostgreSQL server binaries" in message
    assert message.endswith(
        "To fix: install postgresql-15 (or newer): apt-get install -y postgresql"
    )
    assert "redis" not in message.lower()
    assert ensure_binaries(path=str(bin_dir), pg_candidates=[empty], postgres=False) == (
        bin_dir / "redis-server",
        None,
    )


def test_nothing_needed_looks_for_nothing(tmp_path: Path) -> None:
    assert ensure_binaries(path=str(tmp_path), pg_candidates=[], redis=False, postgres=False) == (
        None,
        None,
    )


_CHILD = """
import os, sys, time
from pathlib import Path
from charging_engine.devservers import PrivateStack
with PrivateStack(Path(sys.argv[1])) as stack:
    print(os.getpid(), stack.redis.pid, stack.postgres.pid, stack.run_dir, flush=True)
    time.sleep(120)
"""

# Runs _CHILD as a child subreaper: orphans of the child are re-parented to it (not to PID 1,
# which may never reap them), and it exits only once every descendant has exited.
_SUBREAPER = """
import ctypes, os, subprocess, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
code = None
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    if pid == child.pid:
        code = os.waitstatus_to_exitcode(status)
sys.exit(128 - code if code is not None and code < 0 else 1)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc and PR_SET_CHILD_SUBREAPER")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_no_orphan_servers_when_the_parent_dies(how: signal.Signals, devservers_dir: Path) -> None:
    base = devservers_dir / f"orphans-{how.name}"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    with subprocess.Popen(
        [sys.executable, "-c", _SUBREAPER, _CHILD, str(base)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    ) as reaper:
        try:
            assert reaper.stdout is not None
            line = reaper.stdout.readline()
            assert line, "the child failed to start its stack"
            child_pid, redis_pid, pg_pid, run_dir = line.split()
            os.kill(int(child_pid), how)
            # the reaper exits once the child *and every server process* have exited
            assert reaper.wait(timeout=60) == 128 + how
        finally:
            if reaper.poll() is None:
                reaper.kill()
                reaper.wait()
    for pid in (int(child_pid), int(redis_pid), int(pg_pid)):
        assert not Path(f"/proc/{pid}").exists()
    if how == signal.SIGTERM:
        assert not Path(run_dir).exists()  # cleaned up by the signal handler
    else:
        assert Path(run_dir).exists()  # nobody could clean up: the next run does
        reap_stale_runs(base)
        assert not Path(run_dir).exists()

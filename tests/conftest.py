"""Shared fixtures: private Redis and PostgreSQL servers for the whole test session.

* ``private_redis`` / ``private_postgres``: one server each per session, in
  ``.var/test-<pid>/{redis,pg}``, stopped (and the folder removed) at the end.
* ``redis_url``: that Redis, emptied (FLUSHALL) before each test.
* ``database_url``: a new database ``t_<n>`` per test, migrated when
  ``charging_engine.ledger.migrations`` exists, dropped after the test.
* Async tests and fixtures run on uvloop (``pytest_asyncio_loop_factories`` hook).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import uvloop

from charging_engine.devservers import PostgresServer, RedisServer, ensure_binaries, reap_stale_runs

pytest_plugins = ["tests.timeouts"]  # pytest-timeout that also fails tests hung on uvloop

REPO_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_MODULE = "charging_server.migrations"


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run every asyncio test and fixture on uvloop.

    pytest-asyncio 1.x deprecates overriding the ``event_loop_policy`` fixture (and
    ``filterwarnings = error`` makes that deprecation fail the run); this hook replaces it.
    With a single factory the test ids are unchanged.
    """
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def devservers_dir() -> Iterator[Path]:
    """``.var/test-<pid>/``: home of this session's servers, removed at the end."""
    base = REPO_ROOT / ".var"
    reap_stale_runs(base)  # folders of earlier runs that were killed
    path = base / f"test-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def _binaries() -> tuple[Path, Path]:
    return ensure_binaries()


@pytest.fixture(scope="session")
def private_redis(devservers_dir: Path, _binaries: tuple[Path, Path]) -> Iterator[RedisServer]:
    server = RedisServer(devservers_dir / "redis", redis_server=_binaries[0])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def private_postgres(
    devservers_dir: Path, _binaries: tuple[Path, Path]
) -> Iterator[PostgresServer]:
    server = PostgresServer(devservers_dir / "pg", bin_dir=_binaries[1])
    server.start()
    yield server
    server.remove_data()


@pytest.fixture
def redis_url(private_redis: RedisServer) -> str:
    """URL of the session's Redis, emptied before the test (FLUSHALL; functions stay)."""
    private_redis.start()  # in case an earlier test stopped it
    client = redis.Redis.from_url(private_redis.url)
    try:
        client.flushall()
    finally:
        client.close()
    return private_redis.url


def _migrate_function() -> Callable[[str], object] | None:
    """``charging_engine.ledger.migrations.migrate`` if that module exists, else None.

    A module that exists but fails to import is an error worth seeing, so that is not hidden.
    """
    if importlib.util.find_spec(MIGRATIONS_MODULE) is None:
        return None
    module = importlib.import_module(MIGRATIONS_MODULE)
    migrate: Callable[[str], object] | None = getattr(module, "migrate", None)
    return migrate


_db_counter = itertools.count(1)


@pytest.fixture
def database_url(private_postgres: PostgresServer) -> Iterator[str]:
    """URL of a new database ``t_<n>`` for this test, migrated if migrations exist."""
    private_postgres.start()  # in case an earlier test stopped it
    name = f"t_{next(_db_counter)}"
    url = private_postgres.create_database(name)
    migrate = _migrate_function()
    if migrate is not None:
        # like asyncio.run(migrate(url)), but on uvloop and without touching the thread's
        # current event loop, which pytest-asyncio's session loop relies on
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            coro = migrate(url)
            assert asyncio.iscoroutine(coro), f"{MIGRATIONS_MODULE}.migrate must be async"
            runner.run(coro)
    yield url
    if private_postgres.running:
        private_postgres.drop_database(name)

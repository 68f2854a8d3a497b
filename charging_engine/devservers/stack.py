"""The servers of one run together: only those not given by ``REDIS_URL``/``DATABASE_URL`` (or not
asked for) are started, and all are stopped and their folder removed when the run ends."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from charging_engine.devservers.binaries import ensure_binaries
from charging_engine.devservers.postgres import PostgresServer
from charging_engine.devservers.redis_server import RedisServer
from charging_engine.devservers.supervision import (
    _install_cleanup_handlers,
    _is_alive,
    _register_cleanup,
    _unregister_cleanup,
)

_RUN_DIR = re.compile(r"^(?:run|test)-(\d+)(?:-[0-9a-f]+)?$")


def reap_stale_runs(base_dir: Path) -> None:
    """Delete ``run-<pid>-*`` / ``test-<pid>`` folders of ``base_dir`` whose process is gone."""
    if not base_dir.is_dir():
        return
    for child in base_dir.iterdir():
        m = _RUN_DIR.match(child.name)
        if m is None or not child.is_dir() or child.is_symlink():
            continue
        if int(m.group(1)) == os.getpid() or _is_alive(int(m.group(1))):
            continue
        pg = PostgresServer(child / "pg", port=0)
        with contextlib.suppress(OSError):
            pg.remove_data()  # includes a relocated cluster, if any
        shutil.rmtree(child, ignore_errors=True)


class PrivateStack:
    """Redis + PostgreSQL for one run, in ``base_dir/run-<pid>-<random>/{redis,pg}``.

    ``REDIS_URL`` / ``DATABASE_URL`` in the environment are used instead of starting that
    server, and ``redis=False`` / ``postgres=False`` say a server is not needed at all: it is
    neither installed nor started and gets no folder.  The ``redis`` / ``postgres`` attribute
    is None for a server not started here; ``redis_url`` / ``database_url`` give the URL from
    the environment then, and raise RuntimeError saying why when there is none.  On exit (and
    on SIGTERM/SIGHUP, or at interpreter exit) the servers are stopped and the run folder
    removed.
    """

    redis: RedisServer | None
    postgres: PostgresServer | None

    def __init__(
        self,
        base_dir: Path = Path(".var"),
        *,
        redis_appendonly: bool = False,
        environ: Mapping[str, str] | None = None,
        redis: bool = True,
        postgres: bool = True,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.run_dir = self.base_dir / f"run-{os.getpid()}-{secrets.token_hex(4)}"
        env = os.environ if environ is None else environ
        self._external_redis = env.get("REDIS_URL") or None
        self._external_db = env.get("DATABASE_URL") or None
        self._appendonly = redis_appendonly
        self._want_redis = redis
        self._want_postgres = postgres
        self.redis = None
        self.postgres = None

    @property
    def redis_url(self) -> str:
        """URL of the Redis to use: ours, else ``REDIS_URL``."""
        if self.redis is not None:
            return self.redis.url
        if self._external_redis is None:
            raise RuntimeError(self._no_server("Redis", "redis", "REDIS_URL", self._want_redis))
        return self._external_redis

    @property
    def database_url(self) -> str:
        """URL of the PostgreSQL database to use: ours, else ``DATABASE_URL``."""
        if self.postgres is not None:
            return self.postgres.url
        if self._external_db is None:
            raise RuntimeError(
                self._no_server("PostgreSQL", "postgres", "DATABASE_URL", self._want_postgres)
            )
        return self._external_db

    @staticmethod
    def _no_server(what: str, arg: str, env: str, wanted: bool) -> str:
        """Why there is no URL: a server left out on purpose, or a stack not started yet."""
        if not wanted:
            return f"this PrivateStack has no {what}: made with {arg}=False and {env} unset"
        return f"PrivateStack is not started (no {what} yet): use it in a with block or start()"

    def start(self) -> None:
        """Start the servers needed (none if URLs replace them), installing what is missing."""
        need_redis = self._want_redis and self._external_redis is None
        need_pg = self._want_postgres and self._external_db is None
        if not (need_redis or need_pg):
            return
        redis_bin, pg_bin = ensure_binaries(redis=need_redis, postgres=need_pg)
        reap_stale_runs(self.base_dir)
        self.run_dir.mkdir(parents=True)
        _install_cleanup_handlers()
        _register_cleanup(self.close)
        try:
            if need_redis:
                self.redis = RedisServer(
                    self.run_dir / "redis", appendonly=self._appendonly, redis_server=redis_bin
                )
                self.redis.start()
            if need_pg:
                self.postgres = PostgresServer(self.run_dir / "pg", bin_dir=pg_bin)
                self.postgres.start()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the servers started and delete the run folder (idempotent)."""
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.remove_data()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        _unregister_cleanup(self.close)

    def __enter__(self) -> PrivateStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

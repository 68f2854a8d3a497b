"""A private PostgreSQL cluster (fsync off), run as the ``postgres`` user when we are root:
``initdb`` and ``postgres`` refuse to run as root."""

from __future__ import annotations

import contextlib
import grp
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from charging_engine.devservers.binaries import _default_pg_bin
from charging_engine.devservers.supervision import HOST, _ChildServer


def _running_as_root() -> bool:
    """Whether we are root: initdb and postgres then have to run as another user."""
    return os.geteuid() == 0


def _postgres_user() -> pwd.struct_passwd:
    """The ``postgres`` system user (created with useradd --system when missing)."""
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "postgres",
            ],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        return pwd.getpwnam("postgres")


def _user_can_traverse(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` can reach ``path`` (search permission on every ancestor)."""
    gids = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for d in [path, *path.parents]:
        if not d.exists():
            continue
        st = d.stat()
        if st.st_uid == user.pw_uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in gids:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return False
    return True


def _pg_ready(port: int, timeout: float = 1.0) -> bool:
    """Whether the server on ``port`` completes a startup as user postgres (trust auth).

    Speaks just enough of the v3 protocol: a startup message, then read until ReadyForQuery
    ('Z': accepting connections) or ErrorResponse ('E': e.g. still starting up).
    """
    params = b"user\0postgres\0database\0postgres\0\0"
    startup = struct.pack("!ii", 8 + len(params), 196608) + params
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(startup)
            buf = b""
            while True:
                while len(buf) < 5:
                    chunk = s.recv(4096)
                    if not chunk:
                        return False
                    buf += chunk
                kind = buf[:1]
                (length,) = struct.unpack("!i", buf[1:5])
                if kind == b"Z":
                    with contextlib.suppress(OSError):
                        s.sendall(b"X\0\0\0\4")  # Terminate
                    return True
                if kind == b"E":
                    return False
                while len(buf) < 1 + length:
                    chunk = s.recv(4096)
                    if not chunk:
                        return False
                    buf += chunk
                buf = buf[1 + length :]
    except OSError:
        return False


_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _pg_env() -> dict[str, str]:
    """Our environment without PG* variables that could redirect or alter client tools."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    return env


class PostgresServer(_ChildServer):
    """A private PostgreSQL cluster (trust auth, fsync off: for dev and tests only).

    Layout: ``data_dir/data`` is the cluster, ``data_dir/postgres.log`` the log and the unix
    socket lives in ``data_dir``.  Running as root, the server runs as the ``postgres`` user;
    should that user be unable to reach ``data_dir`` (say, under ``/root``), the cluster lives
    in a folder of the temporary directory named after ``data_dir`` instead (``data_dir/data``
    is then a symlink to it) and :meth:`remove_data` deletes both.
    """

    name = "postgres"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        bin_dir: Path | None = None,
    ) -> None:
        super().__init__(data_dir, port)
        self._bin_dir = bin_dir
        self._user: pwd.struct_passwd | None = None
        self._base: Path | None = None  # where the cluster and socket actually live

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{name}"

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = _default_pg_bin()
        return self._bin_dir

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def cluster_dir(self) -> Path:
        return self.data_dir / "data"

    def _relocated_base(self) -> Path:
        """Where the cluster lives when the postgres user cannot reach ``data_dir`` (root)."""
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"charging-engine-pg-{digest}"

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _prepare(self) -> None:
        """Create the folders (owned by postgres when we are root) and initdb once."""
        bin_dir = self.bin_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _running_as_root():
            self._user = _postgres_user()
            if self._base is None:
                if _user_can_traverse(self.data_dir.parent, self._user):
                    self._base = self.data_dir
                else:
                    self._base = self._relocated_base()
            if self._base != self.data_dir:
                self._base.mkdir(mode=0o700, exist_ok=True)
                if not self.cluster_dir.is_symlink():
                    self.cluster_dir.symlink_to(self._base / "data", target_is_directory=True)
            self._chown(self._base)
        else:
            self._base = self.data_dir
        self._base.chmod(0o700)
        pgdata = self._base / "data"
        if (pgdata / "PG_VERSION").exists():
            return
        if pgdata.exists():
            shutil.rmtree(pgdata)  # left over from an interrupted initdb
        argv = [
            str(bin_dir / "initdb"),
            "-D", str(pgdata),
            "--auth=trust",
            "-U", "postgres",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]  # fmt: skip
        if self._user is not None:
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            argv = [runuser, "-u", "postgres", "--", *argv]
        result = subprocess.run(
            argv,
            cwd=self._base,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed (exit {result.returncode}) for {pgdata}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )

    def _argv(self) -> list[str]:
        assert self._base is not None
        socket_dir = str(self._base)
        # a unix socket path is limited to 107 bytes; TCP is all we need anyway
        if len(f"{socket_dir}/.s.PGSQL.{self.port}") > 100:
            socket_dir = ""
        return [
            str(self.bin_dir / "postgres"),
            "-D", str(self._base / "data"),
            "-p", str(self.port),
            "-k", socket_dir,
            "-c", f"listen_addresses={HOST}",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=200",
        ]  # fmt: skip

    def _popen_kwargs(self) -> dict[str, Any]:
        if self._user is None:
            return {"cwd": self._base}
        # setuid in the child itself (not through runuser, which would fork and stand in
        # between): our child pid *is* the postmaster, so SIGINT/SIGKILL reach it directly.
        return {
            "user": self._user.pw_uid,
            "group": self._user.pw_gid,
            "extra_groups": [g.gr_gid for g in grp.getgrall() if "postgres" in g.gr_mem],
            "cwd": self._base,
        }

    def _is_ready(self) -> bool:
        return _pg_ready(self.port)

    def _graceful_stop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGINT)  # "fast" shutdown: roll back sessions, checkpoint

    def _run_tool(self, tool: str, *args: str) -> None:
        """Run a client tool (createdb, dropdb) against this server, starting it if needed."""
        self.start()
        argv = [str(self.bin_dir / tool), "-h", HOST, "-p", str(self.port), "-U", "postgres"]
        result = subprocess.run(
            [*argv, *args],
            env=_pg_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed (exit {result.returncode}): "
                f"{result.stderr.strip()}"
            )

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` (starting the server if needed); its URL."""
        if not _DB_NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self._run_tool("createdb", name)
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting its clients."""
        if not _DB_NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self._run_tool("dropdb", "--if-exists", "--force", name)

    def remove_data(self) -> None:
        """Stop the server and delete ``data_dir`` (and a relocated cluster folder)."""
        self.stop()
        if self._base is not None and self._base != self.data_dir:
            shutil.rmtree(self._base, ignore_errors=True)
        elif self._base is None and _running_as_root():
            shutil.rmtree(self._relocated_base(), ignore_errors=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)

"""Private Redis and PostgreSQL servers for development, demos and tests.

Each server is a child process of the caller, listening on 127.0.0.1 on a free port, with its
data in a folder of its own (``.var/`` in the repository, git-ignored).  Nothing here is meant
for production: PostgreSQL runs with ``fsync=off`` and Redis without snapshots.

Typical use::

    with PrivateStack() as stack:
        run_something(stack.redis_url, stack.database_url)

The servers are stopped when the stack exits, when this process exits normally (atexit), on
SIGTERM/SIGHUP of this process, and (on Linux) when this process dies abruptly: the children get
SIGKILL from the kernel through ``PR_SET_PDEATHSIG``.  No orphan servers outlive a run.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import grp
import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, ClassVar

__all__ = [
    "INSTALL_HINT",
    "MIN_POSTGRES",
    "MIN_REDIS",
    "MissingBinaries",
    "PostgresServer",
    "PrivateStack",
    "RedisServer",
    "ensure_binaries",
    "free_port",
    "reap_stale_runs",
]

MIN_REDIS = 7
MIN_POSTGRES = 15
APT_PACKAGES = ("redis-server", "postgresql")
INSTALL_HINT = (
    f"install redis-server (>= {MIN_REDIS}) and postgresql-{MIN_POSTGRES} (or newer): "
    "apt-get install -y redis-server postgresql"
)
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
_POLL = 0.02


class MissingBinaries(RuntimeError):
    """redis-server or the PostgreSQL server binaries are missing (or too old) and cannot be
    installed from here; the message says what to install."""


# --------------------------------------------------------------------------------------------
# finding (and installing) the binaries


def _version(argv: Sequence[str], pattern: str) -> int | None:
    """Major version printed by ``argv`` (e.g. ``redis-server --version``), or None."""
    try:
        out = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(pattern, out)
    return int(m.group(1)) if m else None


def _redis_version(redis_server: Path) -> int | None:
    return _version([str(redis_server), "--version"], r"v=(\d+)\.")


def _postgres_version(bin_dir: Path) -> int | None:
    return _version([str(bin_dir / "postgres"), "--version"], r"\(PostgreSQL\)\s+(\d+)")


def _default_pg_candidates() -> list[Path]:
    """Usual places of PostgreSQL server binaries (Debian/Ubuntu, RHEL, source builds)."""
    found: list[Path] = []
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"):
        found.extend(Path("/").glob(pattern.lstrip("/")))
    found.append(Path("/usr/local/pgsql/bin"))
    return found


def _pg_bin_dirs(path: str | None, candidates: Sequence[Path] | None) -> list[Path]:
    dirs: list[Path] = []
    pg_config = shutil.which("pg_config", path=path)
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=False
            ).stdout.strip()
            if out:
                dirs.append(Path(out))
    dirs.extend(_default_pg_candidates() if candidates is None else candidates)
    postgres = shutil.which("postgres", path=path)
    if postgres:
        dirs.append(Path(postgres).resolve().parent)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


_PG_TOOLS = ("postgres", "initdb", "createdb", "dropdb")


def _find(
    path: str | None,
    pg_candidates: Sequence[Path] | None,
    need_redis: bool,
    need_postgres: bool,
) -> tuple[Path | None, Path | None, list[str]]:
    """(redis-server, postgres bin dir, problems); a None is missing or too old."""
    problems: list[str] = []
    redis_path: Path | None = None
    pg_bin: Path | None = None
    if need_redis:
        which = shutil.which("redis-server", path=path)
        if which is None:
            problems.append("redis-server not found on PATH")
        else:
            version = _redis_version(Path(which))
            if version is None or version < MIN_REDIS:
                problems.append(
                    f"{which} is Redis {version if version is not None else '(unknown)'}, "
                    f"need >= {MIN_REDIS}"
                )
            else:
                redis_path = Path(which)
    if need_postgres:
        best: tuple[int, Path] | None = None
        too_old: list[str] = []
        searched = _pg_bin_dirs(path, pg_candidates)
        for d in searched:
            if not all(os.access(d / tool, os.X_OK) for tool in _PG_TOOLS):
                continue
            version = _postgres_version(d)
            if version is None or version < MIN_POSTGRES:
                too_old.append(f"{d} is PostgreSQL {version}")
                continue
            if best is None or version > best[0]:
                best = (version, d)
        if best is not None:
            pg_bin = best[1]
        elif too_old:
            problems.append(f"{'; '.join(too_old)}, need >= {MIN_POSTGRES}")
        else:
            where = ", ".join(str(d) for d in searched) or "nothing to search"
            problems.append(
                f"PostgreSQL server binaries ({', '.join(_PG_TOOLS)}) not found "
                f"(searched pg_config --bindir, postgres on PATH and {where})"
            )
    return redis_path, pg_bin, problems


def _apt_install(apt_get: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(
        f"devservers: installing {' '.join(APT_PACKAGES)} with apt-get ...",
        file=sys.stderr,
        flush=True,
    )
    for argv in (
        [apt_get, "update"],
        [apt_get, "install", "-y", *APT_PACKAGES],
    ):
        result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            raise MissingBinaries(
                f"`{' '.join(argv)}` failed with exit code {result.returncode}; {INSTALL_HINT}"
            )


def _ensure(
    *,
    path: str | None,
    pg_candidates: Sequence[Path] | None,
    install: bool,
    need_redis: bool,
    need_postgres: bool,
) -> tuple[Path | None, Path | None]:
    redis_path, pg_bin, problems = _find(path, pg_candidates, need_redis, need_postgres)
    if not problems:
        return redis_path, pg_bin
    apt_get = shutil.which("apt-get", path=path)
    can_install = install and os.geteuid() == 0 and apt_get is not None
    if can_install and apt_get is not None:
        _apt_install(apt_get)
        redis_path, pg_bin, problems = _find(path, pg_candidates, need_redis, need_postgres)
        if not problems:
            return redis_path, pg_bin
        why = "still missing after apt-get install"
    elif not install:
        why = "automatic installation disabled"
    elif os.geteuid() != 0:
        why = "not root, so cannot install them"
    else:
        why = "no apt-get (not Debian/Ubuntu), so cannot install them"
    raise MissingBinaries(f"{'; '.join(problems)} ({why}). To fix: {INSTALL_HINT}")


def ensure_binaries(
    *,
    path: str | None = None,
    pg_candidates: Sequence[Path] | None = None,
    install: bool = True,
) -> tuple[Path, Path]:
    """Return (redis-server path, PostgreSQL bin dir), installing them with apt-get if needed.

    ``path`` is the search PATH (default: ``$PATH``; apt-get is looked up there too) and
    ``pg_candidates`` the directories tried for the PostgreSQL server binaries besides
    ``pg_config --bindir`` and ``postgres`` on PATH (default: ``/usr/lib/postgresql/*/bin`` and
    the like).  When something is missing and we are root with apt-get (and ``install``), run
    ``apt-get update`` and ``apt-get install -y redis-server postgresql``; raise
    :class:`MissingBinaries` if they are still missing or older than Redis 7 / PostgreSQL 15.
    """
    redis_path, pg_bin = _ensure(
        path=path,
        pg_candidates=pg_candidates,
        install=install,
        need_redis=True,
        need_postgres=True,
    )
    assert redis_path is not None and pg_bin is not None
    return redis_path, pg_bin


_lookup_lock = threading.Lock()
_lookup_cache: dict[str, Path] = {}


def _default_binary(kind: str) -> Path:
    """redis-server (``kind="redis"``) or the Postgres bin dir, found (or installed) once."""
    with _lookup_lock:
        if kind not in _lookup_cache:
            redis_found, pg_found = _ensure(
                path=None, pg_candidates=None, install=True,
                need_redis=kind == "redis", need_postgres=kind == "postgres",
            )
            found = redis_found if kind == "redis" else pg_found
            assert found is not None
            _lookup_cache[kind] = found
        return _lookup_cache[kind]


def _default_redis_server() -> Path:
    return _default_binary("redis")


def _default_pg_bin() -> Path:
    return _default_binary("postgres")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------
# process plumbing: cleanup of live servers on exit and on SIGTERM/SIGHUP

_live: set[_ChildServer] = set()
_cleanups: list[Callable[[], None]] = []  # e.g. PrivateStack.close: stop and remove folders
_live_lock = threading.Lock()
_handlers_installed = False
_previous_handlers: dict[int, Any] = {}


def _cleanup_all() -> None:
    """Run registered cleanups (newest first), then stop any server still running."""
    with _live_lock:
        cleanups = list(reversed(_cleanups))
    for cleanup in cleanups:
        with contextlib.suppress(Exception):
            cleanup()
    with _live_lock:
        servers = list(_live)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


def _register_cleanup(fn: Callable[[], None]) -> None:
    with _live_lock:
        _cleanups.append(fn)


def _unregister_cleanup(fn: Callable[[], None]) -> None:
    with _live_lock, contextlib.suppress(ValueError):
        _cleanups.remove(fn)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _cleanup_all()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    # default action (terminate): re-deliver with the default disposition
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_cleanup_handlers() -> None:
    """Once per process: stop live servers at exit and on SIGTERM/SIGHUP (main thread only)."""
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_cleanup_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(signum)
        if previous == signal.SIG_IGN or previous is None:
            continue  # ignored (nohup) or set from C: leave alone
        _previous_handlers[signum] = previous
        signal.signal(signum, _on_signal)


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """On Linux, a preexec_fn making the kernel SIGKILL the child when we die (even by SIGKILL).

    Only from the main thread: PR_SET_PDEATHSIG fires when the *thread* that forked exits.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # parent already gone between fork and prctl
            os._exit(1)

    return preexec


def _running_as_root() -> bool:
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


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _ChildServer:
    """A server run as our child process, in a process group (and session) of its own."""

    name: ClassVar[str] = "server"

    def __init__(self, data_dir: Path, port: int | None) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._fixed_port = port is not None
        self.port: int = port if port is not None else free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    # -- to be provided by subclasses
    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Create folders and initialise data (once)."""

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _popen_kwargs(self) -> dict[str, Any]:
        return {"cwd": self.data_dir}

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _graceful_stop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGTERM)

    # -- common behaviour
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines this server logged since it was last started."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> None:
        """Start the server (no-op if running) and wait until it answers."""
        if self.running:
            return
        _install_cleanup_handlers()
        self._prepare()
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            try:
                self._spawn_and_wait()
                self._fixed_port = True  # clients hold our URL: later starts reuse the port
                return
            except RuntimeError:
                in_use = "Address already in use" in self.log_tail(200)
                if attempt + 1 < attempts and in_use:
                    self.port = free_port()  # somebody took our port meanwhile: try another
                    continue
                raise

    def _spawn_and_wait(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            proc = subprocess.Popen(
                self._argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: a terminal Ctrl-C doesn't reach it
                preexec_fn=_pdeathsig_preexec(),
                **self._popen_kwargs(),
            )
        self._proc = proc
        with _live_lock:
            _live.add(self)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                self._forget()
                raise RuntimeError(
                    f"{self.name} on port {self.port} exited with code {proc.returncode} "
                    f"during start; log {self.log_path}:\n{self.log_tail()}"
                )
            if self._is_ready():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"{self.name} on port {self.port} did not answer within {START_TIMEOUT:.0f} s;"
                    f" log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(_POLL)

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self)

    def _wait_gone(self, proc: subprocess.Popen[bytes], timeout: float) -> bool:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _killpg(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the whole process group (the server and any children it forked)."""
        if proc.poll() is None:  # not reaped yet, so its pid (= process group id) is still ours
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        proc.wait()

    def stop(self) -> None:
        """Shut the server down cleanly and wait for it to exit (SIGKILL after 30 s)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._graceful_stop(proc)
            if not self._wait_gone(proc, STOP_TIMEOUT):
                self._killpg(proc)
        self._proc = None
        self._forget()

    def kill(self) -> None:
        """SIGKILL the server (and its process group) at once, as a crash would.

        PostgreSQL runs with ``synchronous_commit=off``: commits of the last few hundred
        milliseconds may be lost (``SET synchronous_commit = on`` in a session avoids that).
        """
        proc = self._proc
        if proc is None:
            return
        self._killpg(proc)
        self._proc = None
        self._forget()

    def restart(self) -> None:
        """Stop, then start again on the same port with the same data."""
        self.stop()
        self.start()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} port {self.port} {state} in {self.data_dir}>"


# --------------------------------------------------------------------------------------------
# Redis


def _redis_ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(_ChildServer):
    """A private redis-server (no RDB snapshots; AOF only if ``appendonly``)."""

    name = "redis-server"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        appendonly: bool = False,
        *,
        redis_server: Path | None = None,
    ) -> None:
        super().__init__(data_dir, port)
        self.appendonly = appendonly
        self._binary = redis_server

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def _prepare(self) -> None:
        if self._binary is None:
            self._binary = _default_redis_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def _argv(self) -> list[str]:
        assert self._binary is not None
        return [
            str(self._binary),
            "--port", str(self.port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip

    def _is_ready(self) -> bool:
        return _redis_ping(self.port)

    def _graceful_stop(self, proc: subprocess.Popen[bytes]) -> None:
        # SHUTDOWN NOSAVE over the wire; SIGTERM (same effect) if that cannot be sent
        try:
            with socket.create_connection((HOST, self.port), timeout=2) as s:
                s.sendall(b"SHUTDOWN NOSAVE\r\n")
                s.recv(64)
        except OSError:
            proc.send_signal(signal.SIGTERM)


# --------------------------------------------------------------------------------------------
# PostgreSQL


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
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"charging-engine-pg-{digest}"

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _prepare(self) -> None:
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


# --------------------------------------------------------------------------------------------
# both at once

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

    ``REDIS_URL`` / ``DATABASE_URL`` in the environment (or given as arguments) are used
    instead of starting that server; the matching ``redis`` / ``postgres`` attribute is then
    None.  On exit (and on SIGTERM/SIGHUP, or at interpreter exit) the servers are stopped and
    the run folder removed.
    """

    redis: RedisServer | None
    postgres: PostgresServer | None

    def __init__(
        self,
        base_dir: Path = Path(".var"),
        *,
        redis_appendonly: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.run_dir = self.base_dir / f"run-{os.getpid()}-{secrets.token_hex(4)}"
        env = os.environ if environ is None else environ
        self._external_redis = env.get("REDIS_URL") or None
        self._external_db = env.get("DATABASE_URL") or None
        self._appendonly = redis_appendonly
        self.redis = None
        self.postgres = None

    @property
    def redis_url(self) -> str:
        if self.redis is not None:
            return self.redis.url
        if self._external_redis is None:
            raise RuntimeError("PrivateStack is not started")
        return self._external_redis

    @property
    def database_url(self) -> str:
        if self.postgres is not None:
            return self.postgres.url
        if self._external_db is None:
            raise RuntimeError("PrivateStack is not started")
        return self._external_db

    def start(self) -> None:
        need_redis = self._external_redis is None
        need_pg = self._external_db is None
        if not (need_redis or need_pg):
            return
        redis_bin, pg_bin = _ensure(
            path=None,
            pg_candidates=None,
            install=True,
            need_redis=need_redis,
            need_postgres=need_pg,
        )
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
        """Stop both servers and delete the run folder (idempotent)."""
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

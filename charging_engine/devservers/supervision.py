"""Child-server plumbing: free ports, a process group per server, cleanup on exit and on
SIGTERM/SIGHUP, and PR_SET_PDEATHSIG so no server outlives an abruptly killed parent."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
_POLL = 0.02


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
    """Run ``fn`` at exit or on SIGTERM/SIGHUP (e.g. to remove a run folder, not just stop)."""
    with _live_lock:
        _cleanups.append(fn)


def _unregister_cleanup(fn: Callable[[], None]) -> None:
    """Forget ``fn`` once it has run, so a closed stack is not kept alive until exit."""
    with _live_lock, contextlib.suppress(ValueError):
        _cleanups.remove(fn)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Clean up, then do what the signal would have done without us (chain or terminate)."""
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


def _is_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (owned by someone else counts): its folder is in use."""
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
        """Start the process and poll until it answers, dies or times out (RuntimeError)."""
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

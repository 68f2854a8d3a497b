"""A private Redis: no snapshots (AOF only where a test needs durability), loopback only."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

from charging_engine.devservers.binaries import _default_redis_server
from charging_engine.devservers.supervision import HOST, _ChildServer


def _redis_ping(port: int, timeout: float = 0.5) -> bool:
    """Whether Redis answers PING on ``port``: listening alone does not mean data is loaded."""
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

"""A headless Chromium driven over the DevTools protocol on a pipe: the PDF engine's adapter.

Why Chromium: its C++ layout and Skia PDF back end print a one-page invoice in ~20 ms of CPU,
three times less than WeasyPrint (Python) needed for the same HTML, and the PDF is the very page
the browser shows (one template source). Lago prints its invoices the same way (Gotenberg).

Why our own few lines of protocol instead of Playwright: Playwright relays every call through a
Node.js driver process, which cost ~12 % of the PDF rate on a two-core machine
(``benchmarks/documents.py``); the DevTools protocol over ``--remote-debugging-pipe`` is
NUL-terminated JSON on file descriptors 3 (commands) and 4 (answers and events).

Each ``Tab`` runs with scripts disabled and every network request failed by the ``Fetch`` domain
(``data:`` URLs never reach the network stack, so an embedded logo still shows); ``file:`` URLs
are refused by Chromium itself for a page set with ``Page.setDocumentContent``. The browser runs
in its own process group, with a throw-away profile, and is killed with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

__all__ = ["BrowserGone", "Chromium", "ChromiumMissing", "Tab", "find_chromium"]

LOGGER = logging.getLogger(__name__)
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable",
               "chrome-headless-shell", "headless_shell", "chrome")  # fmt: skip
# The Debian/Ubuntu "chromium" command is a shell wrapper around this binary.
_REAL_BINARIES = ("/usr/lib/chromium/chromium", "/usr/lib/chromium-browser/chromium-browser")
_FLAGS = ("--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--no-default-browser-check", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--disable-extensions",
          "--disable-dev-shm-usage", "--disable-default-apps", "--mute-audio",
          "--disable-features=Translate,MediaRouter,OptimizationHints",
          "--remote-debugging-pipe")  # fmt: skip
_TRAMPOLINE = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
               "os.execv(sys.argv[3], sys.argv[3:])")
_LIMIT = 1 << 29  # one message may carry a large PDF in base64


class ChromiumMissing(RuntimeError):
    """No Chromium on this machine: PDFs cannot be made (HTML still can)."""


class BrowserGone(RuntimeError):
    """The browser process ended (or was killed) while a call was waiting for it."""


def find_chromium() -> str:
    """``CE_CHROMIUM`` if set, else the first Chromium-like command on PATH (its real binary)."""
    configured = os.environ.get("CE_CHROMIUM")
    if configured:
        if not (Path(configured).is_file() and os.access(configured, os.X_OK)):
            raise ChromiumMissing(f"CE_CHROMIUM={configured} is not an executable file")
        return configured
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            for real in _REAL_BINARIES:
                if Path(found).name in Path(real).name and os.access(real, os.X_OK):
                    return real
            return found
    raise ChromiumMissing("invoice PDFs need Chromium (Debian/Ubuntu: apt-get install -y "
                          "chromium; or set CE_CHROMIUM to a Chrome/Chromium binary)")  # fmt: skip


def _above_4(fd: int) -> int:
    """``fd`` moved to a number above 4, so that renumbering it to 3 or 4 cannot clobber it."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


@dataclass(frozen=True)
class Tab:
    """One page of the browser, attached with its own session (flattened protocol)."""

    target_id: str
    session_id: str
    frame_id: str


class Chromium:
    """One browser process; ``call`` sends a command and awaits its answer."""

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary
        self._proc: subprocess.Popen[bytes] | None = None
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._handlers: dict[str, Callable[[dict[str, Any], str | None], None]] = {}
        self._profile: str | None = None
        self._context_id: str | None = None
        self.gone = False

    async def start(self) -> None:
        binary = self.binary or find_chromium()
        loop = asyncio.get_running_loop()
        commands_r, commands_w = os.pipe()
        answers_r, answers_w = os.pipe()
        commands_r, answers_w = _above_4(commands_r), _above_4(answers_w)
        self._profile = tempfile.mkdtemp(prefix="ce-chromium-")
        flags = [*_FLAGS, f"--user-data-dir={self._profile}"]
        if os.geteuid() == 0:  # Chromium refuses to run as root with its sandbox on
            flags.append("--no-sandbox")
        # The child needs the pipes as fds 3 and 4: a tiny Python trampoline renumbers them
        # (no preexec_fn, which is unsafe in a process with threads; sh takes fds 0-9 only).
        # A plain Popen, not an asyncio subprocess: a browser left running must never hold up
        # the event loop's close (it ends by itself when its command pipe closes).
        argv = [sys.executable, "-I", "-c", _TRAMPOLINE, str(commands_r), str(answers_w), binary,
                *flags, "about:blank"]  # fmt: skip
        try:
            self._proc = await asyncio.to_thread(
                subprocess.Popen, argv, pass_fds=(commands_r, answers_w),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)  # fmt: skip
        finally:
            os.close(commands_r)
            os.close(answers_w)
        # The pipes are served by two daemon threads, not by loop transports: nothing of the
        # browser can hold up the loop's close, and a process that exits closes them for it.
        self._threads = [
            threading.Thread(target=self._read_loop, args=(answers_r, loop), daemon=True,
                             name=f"chromium-{self._proc.pid}-reader"),
            threading.Thread(target=self._write_loop, args=(commands_w,), daemon=True,
                             name=f"chromium-{self._proc.pid}-writer"),
        ]  # fmt: skip
        for thread in self._threads:
            thread.start()
        self.on("Fetch.requestPaused", self._refuse_request)
        self._context_id = (await self.call("Target.createBrowserContext"))["browserContextId"]

    def on(self, method: str, handler: Callable[[dict[str, Any], str | None], None]) -> None:
        """Call ``handler(params, session_id)`` for every event ``method``."""
        self._handlers[method] = handler

    async def call(self, method: str, params: dict[str, Any] | None = None,
                   session: str | None = None) -> dict[str, Any]:  # fmt: skip
        if self.gone or not self._threads:
            raise BrowserGone("the browser is not running")
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        try:
            self._outbox.put(orjson.dumps(message) + b"\0")
            answer = await future
        finally:
            self._waiting.pop(ident, None)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error'].get('message', answer['error'])}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def new_tab(self) -> Tab:
        """A locked-down page: no scripts, no network (see the module docstring)."""
        target = (await self.call("Target.createTarget", {
            "url": "about:blank", "browserContextId": self._context_id}))["targetId"]  # fmt: skip
        session = (await self.call("Target.attachToTarget", {
            "targetId": target, "flatten": True}))["sessionId"]  # fmt: skip
        await self.call("Emulation.setScriptExecutionDisabled", {"value": True}, session)
        await self.call("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}, session)
        tree = await self.call("Page.getFrameTree", session=session)
        return Tab(target, session, tree["frameTree"]["frame"]["id"])

    async def close_tab(self, tab: Tab) -> None:
        with contextlib.suppress(RuntimeError):
            await self.call("Target.closeTarget", {"targetId": tab.target_id})

    def _refuse_request(self, params: dict[str, Any], session: str | None) -> None:
        LOGGER.info("document asked for %.200s: refused", params.get("request", {}).get("url"))
        refusal = {"requestId": params["requestId"], "errorReason": "BlockedByClient"}
        task = asyncio.ensure_future(self.call("Fetch.failRequest", refusal, session))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _read_loop(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        """Reader thread: split NUL-terminated messages, hand each to the loop."""
        buffer, scanned = bytearray(), 0
        try:
            while chunk := os.read(fd, 1 << 20):
                buffer += chunk
                while (end := buffer.find(b"\0", scanned)) >= 0:
                    message = orjson.loads(bytes(buffer[:end]))
                    del buffer[: end + 1]
                    scanned = 0
                    loop.call_soon_threadsafe(self._dispatch, message)
                scanned = len(buffer)
                if scanned > _LIMIT:
                    LOGGER.error("a browser message exceeded %d bytes", _LIMIT)
                    break
        except (OSError, orjson.JSONDecodeError, RuntimeError):  # RuntimeError: loop closed
            pass
        finally:
            os.close(fd)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._fail_waiting)

    def _write_loop(self, fd: int) -> None:
        """Writer thread: commands in order; ``None`` (or a dead browser) ends it."""
        try:
            while (data := self._outbox.get()) is not None:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
        except OSError:
            pass
        finally:
            os.close(fd)

    def _dispatch(self, message: dict[str, Any]) -> None:
        ident = message.get("id")
        if ident is not None:
            future = self._waiting.get(ident)
            if future is not None and not future.done():
                future.set_result(message)
        elif (handler := self._handlers.get(message.get("method", ""))) is not None:
            handler(message.get("params", {}), message.get("sessionId"))

    def _fail_waiting(self) -> None:
        self.gone = True
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(BrowserGone("the browser process ended"))

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def close(self) -> None:
        """Kill the browser and its children, remove its profile."""
        self.gone = True
        self._outbox.put(None)  # the writer closes the command pipe
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            await asyncio.to_thread(self._proc.wait)
        self._fail_waiting()
        if self._profile is not None:
            await asyncio.to_thread(shutil.rmtree, self._profile, True)
            self._profile = None

"""pytest-timeout's signal method, made to work for a test stuck on an idle uvloop loop.

pytest-timeout raises its failure from the SIGALRM handler, inside whatever code is running:
that fails a test stuck in a blocking call or a busy loop. But a test awaiting something that
never comes leaves uvloop waiting in libuv, so the handler runs inside uvloop's signal
callback, which hands every exception to the loop's exception handler: it is logged and the
run hangs for good. In that case this cancels the timed-out test's task instead (it fails with
a traceback at the await that hung), or stops the loop when no such task is found. After a
timeout, a thread left blocked for good (asyncio.to_thread) would hang the interpreter's exit,
which joins it: the run then exits with pytest's status without waiting.
Registered from tests/conftest.py; without SIGALRM or off the main thread pytest-timeout's own
timer applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import sys
import threading
from collections.abc import Generator
from types import CodeType, FrameType
from typing import Any

import pytest
import pytest_asyncio.plugin
import pytest_timeout

_PYTEST_ASYNCIO_FILE = pytest_asyncio.plugin.__file__
_TIMED_OUT = pytest.StashKey[bool]()
_EXIT_STATUS = pytest.StashKey[int]()
_SETTINGS = pytest.StashKey[Any]()


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    if settings.method != "signal" or threading.current_thread() is not threading.main_thread():
        return None  # pytest-timeout's own timer
    item.stash[_SETTINGS] = settings

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        __tracebackhide__ = True
        item.config.stash[_TIMED_OUT] = True
        # Armed again: the teardown that follows may hang too (on what the test left behind).
        signal.setitimer(signal.ITIMER_REAL, settings.timeout)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or asyncio.current_task(loop) is not None:
            pytest_timeout.timeout_sigalrm(item, settings)  # raises in the running code
        elif settings.disable_debugger_detection or not pytest_timeout.is_debugging():
            _fail_on_idle_loop(loop, item, pytest_timeout.PYTEST_FAILURE_MESSAGE % settings.timeout)

    def cancel() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    item.cancel_timeout = cancel  # type: ignore[attr-defined]  # pytest-timeout's cancel hook
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    return True


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None]:
    """Guard the teardown of a test that failed: pytest-timeout stops the timer at the first
    failure (for pdb), yet that teardown may hang on what the test left behind."""
    __tracebackhide__ = True
    settings = item.stash.get(_SETTINGS, None)
    if (settings is not None and signal.getitimer(signal.ITIMER_REAL)[0] == 0
            and not item.config.getoption("usepdb", False)):
        pytest_timeout_set_timer(item, settings)  # cancelled when the item's protocol ends
    return (yield)


def _fail_on_idle_loop(loop: asyncio.AbstractEventLoop, item: pytest.Item, message: str) -> None:
    """Cancel the tasks pytest-asyncio runs for this item (the test, or a fixture's setup or
    teardown); else stop the loop, which fails the step with "Event loop stopped"."""
    test_code = _code_of(getattr(item, "function", None))
    stuck = [
        task for task in asyncio.all_tasks(loop)
        if (code := _code_of(task.get_coro())) is not None
        and (code is test_code or code.co_filename == _PYTEST_ASYNCIO_FILE)
    ]
    for task in stuck:
        task.cancel(message)
    if not stuck:
        loop.stop()
        item.config.get_terminal_writer().sep("+", title=message)
        for task in asyncio.all_tasks(loop):
            with contextlib.suppress(Exception):  # a Cython coroutine has no frames to show
                task.print_stack()


def _code_of(obj: object) -> CodeType | None:
    if inspect.iscoroutine(obj):
        return obj.cr_code
    if callable(obj):
        return getattr(inspect.unwrap(obj), "__code__", None)
    return None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """The last hook: after a timeout, leave without joining threads that may never end."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if config.stash.get(_TIMED_OUT, False) and others:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash.get(_EXIT_STATUS, 1) or 1)

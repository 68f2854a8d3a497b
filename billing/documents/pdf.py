"""PDF documents: the template renders in worker processes, headless Chromium prints the page.

Neither step runs on the asyncio event loop. Jinja (a tenant's template may be slow, or loop for
ever inside the sandbox's limits) runs in a ``ProcessPoolExecutor`` started with
forkserver/spawn (forking an asyncio process with live sockets and threads is unsafe), whose
worker is killed when it overruns the timeout. The HTML then goes to one of several locked-down
browser tabs (``billing.documents.chromium``): the loop only awaits the answer and decodes it.

A dead worker or browser is replaced for the next calls (the calls in flight at the time get
``BrokenProcessPool`` or ``BrowserGone``); a tab that overruns the timeout is closed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any, TypeVar

from billing.documents.chromium import BrowserGone, Chromium, ChromiumMissing, Tab
from billing.documents.model import DEFAULT_BRANDING, Branding, Document
from billing.documents.templating import render_html, sample_document, validate_template

__all__ = ["BrowserGone", "ChromiumMissing", "PdfRenderer", "RenderItem", "render_pdf_sync"]

LOGGER = logging.getLogger(__name__)
RenderItem = tuple[Document, Branding, str | None]
T = TypeVar("T")
# A4 unless the template's @page says otherwise; untagged (tagging costs ~30 % of the rate).
_PRINT = {"preferCSSPageSize": True, "printBackground": True, "generateTaggedPDF": False,
          "paperWidth": 8.27, "paperHeight": 11.69, "marginTop": 0.4, "marginBottom": 0.4,
          "marginLeft": 0.4, "marginRight": 0.4, "transferMode": "ReturnAsBase64"}  # fmt: skip


def _html_batch(items: Sequence[RenderItem]) -> list[str]:
    """Worker entry point: several documents per call to spread the IPC cost."""
    return [render_html(doc, branding, source, medium="pdf") for doc, branding, source in items]


def _ready() -> bool:
    """Worker no-op: answers once its process is up."""
    return True


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


async def _print(browser: Chromium, tab: Tab, html: str) -> bytes:
    await browser.call("Page.setDocumentContent", {"frameId": tab.frame_id, "html": html},
                       tab.session_id)  # fmt: skip
    answer = await browser.call("Page.printToPDF", _PRINT, tab.session_id)
    return base64.b64decode(answer["data"])


class PdfRenderer:
    """Template workers plus a browser with ``tabs`` pages; ``await render(doc)``."""

    def __init__(self, tabs: int | None = None, *, template_workers: int = 1, batch: int = 8,
                 timeout: float = 30.0, binary: str | None = None) -> None:  # fmt: skip
        self.tabs = tabs or 2 * (os.cpu_count() or 1)  # two per core keep Chromium busy
        self.template_workers = max(1, template_workers)
        self.batch = max(1, batch)
        self.timeout = timeout  # per template batch and per page printed
        self._binary = binary
        self._pool = self._new_pool()
        self._pool_started = False
        self._browser: Chromium | None = None
        self._idle: list[Tab] = []
        self._slots = asyncio.Semaphore(self.tabs)
        self._lock = asyncio.Lock()
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.template_workers, mp_context=_context())

    async def start(self) -> None:
        """Start the template workers and the browser; rendering calls this itself."""
        await self._start_pool()
        await self._browser_ready()

    async def _start_pool(self) -> None:
        if self._closed:
            raise RuntimeError("PdfRenderer is closed")
        async with self._lock:
            if not self._pool_started:
                pool = self._pool

                def spawn() -> None:  # each submit to a pool not yet full forks one worker
                    for future in [pool.submit(_ready) for _ in range(self.template_workers)]:
                        future.result()

                await asyncio.to_thread(spawn)
                self._pool_started = True

    async def _browser_ready(self) -> Chromium:
        if self._closed:
            raise RuntimeError("PdfRenderer is closed")
        browser = self._browser
        if browser is not None and not browser.gone:
            return browser
        async with self._lock:
            if self._browser is None or self._browser.gone:
                if self._browser is not None:
                    LOGGER.error("the PDF browser ended; starting a new one")
                    await self._browser.close()
                fresh = Chromium(self._binary)
                try:
                    await fresh.start()
                except BaseException:
                    await fresh.close()
                    raise
                self._browser, self._idle = fresh, []
            return self._browser

    async def warm(self) -> None:
        """Start everything and print a sample on every tab, so that timings start warm."""
        await self.start()
        await self.render_many([sample_document()] * (2 * self.tabs))

    # --- rendering ---------------------------------------------------------------------------

    async def render(self, doc: Document, branding: Branding = DEFAULT_BRANDING,
                     source: str | None = None) -> bytes:  # fmt: skip
        (html,) = await self._submit(_html_batch, [(doc, branding, source)])
        return await self.print_html(html)

    async def render_many(self, items: Iterable[RenderItem | Document]) -> list[bytes]:
        """PDFs of ``items`` (documents, or (document, branding, source)), in order."""
        work: list[RenderItem] = [
            (item, DEFAULT_BRANDING, None) if isinstance(item, Document) else item
            for item in items
        ]
        chunks = [work[i : i + self.batch] for i in range(0, len(work), self.batch)]

        async def chunk_pdfs(chunk: list[RenderItem]) -> list[bytes]:
            pages = await self._submit(_html_batch, chunk)
            return list(await asyncio.gather(*(self.print_html(html) for html in pages)))

        done = await asyncio.gather(*(chunk_pdfs(chunk) for chunk in chunks))
        return [pdf for chunk in done for pdf in chunk]

    async def print_html(self, html: str) -> bytes:
        """The PDF of ``html`` as the browser prints it (at most ``tabs`` at once)."""
        async with self._slots:
            browser = await self._browser_ready()
            tab = self._idle.pop() if self._idle else await browser.new_tab()
            try:
                async with asyncio.timeout(self.timeout):
                    pdf = await _print(browser, tab, html)
            except BaseException as e:
                if isinstance(e, TimeoutError):
                    LOGGER.error("a page took more than %s s to print; closing its tab",
                                 self.timeout)  # fmt: skip
                if not browser.gone:  # a tab in an unknown state is not reused
                    task = asyncio.ensure_future(browser.close_tab(tab))
                    task.add_done_callback(lambda t: t.cancelled() or t.exception())
                raise
            if browser is self._browser:
                self._idle.append(tab)
            return pdf

    async def render_html(self, doc: Document, branding: Branding = DEFAULT_BRANDING,
                          source: str | None = None) -> str:  # fmt: skip
        """``templating.render_html`` in a worker: for tenant templates, which may be slow."""
        html: str = await self._submit(render_html, doc, branding, source)
        return html

    async def validate_template(self, source: str) -> None:
        """``templating.validate_template`` in a worker, under the renderer's timeout."""
        await self._submit(validate_template, source)

    async def _submit(self, fn: Callable[..., T], *args: Any) -> T:
        await self._start_pool()
        pool = self._pool
        try:
            future = pool.submit(fn, *args)
        except BrokenProcessPool:  # broken before this call: a new pool, and this call on it
            self._replace(pool)
            await self._start_pool()
            pool = self._pool
            future = pool.submit(fn, *args)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError:
            LOGGER.error("a template took more than %s s; restarting its workers", self.timeout)
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()  # concurrent.futures cannot stop one running task
            self._replace(pool)
            raise
        except BrokenProcessPool:  # a worker died, maybe running this very call
            self._replace(pool)
            raise

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if broken is self._pool and not self._closed:
            LOGGER.error("replacing the template worker pool")
            self._pool, self._pool_started = self._new_pool(), False
            broken.shutdown(wait=False, cancel_futures=True)

    @property
    def browser_pid(self) -> int | None:
        """The browser's process id (its process group), None before it starts."""
        return self._browser.pid if self._browser is not None else None

    async def aclose(self) -> None:
        self._closed = True
        if self._browser is not None:
            await self._browser.close()
        await asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True)

    async def __aenter__(self) -> PdfRenderer:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        await self.aclose()


def render_pdf_sync(doc: Document, branding: Branding = DEFAULT_BRANDING,
                    source: str | None = None, *, timeout: float = 60.0) -> bytes:  # fmt: skip
    """One PDF for a synchronous caller (a CLI): starts a browser for it, in its own thread.

    It blocks the caller for the whole time (~1 s): never call it on an event loop.
    """
    html = render_html(doc, branding, source, medium="pdf")

    async def once() -> bytes:
        browser = Chromium()
        try:
            async with asyncio.timeout(timeout):
                await browser.start()
                return await _print(browser, await browser.new_tab(), html)
        finally:
            await browser.close()

    return _run_in_thread(once)


def _run_in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(make())`` in a new thread, so that it works under a running loop too."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make())
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    thread = threading.Thread(target=target, name="render-pdf-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value

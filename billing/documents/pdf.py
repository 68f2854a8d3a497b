"""PDF documents via WeasyPrint, rendered in worker processes off the asyncio event loop.

WeasyPrint is CPU-bound Python (a one-page invoice costs ~80 ms of CPU), so it never runs on
the loop: ``PdfRenderer`` hands pickled ``Document`` values to a ``ProcessPoolExecutor`` started
with forkserver/spawn (forking an asyncio process with live sockets and threads is unsafe).
Each worker, once:

* builds lean copies of the DejaVu Sans (and Mono) faces (no OpenType layout or hinting tables,
  only Latin, Greek, Cyrillic and common symbols, common glyphs first) and points its own
  fontconfig at them, preferred for "DejaVu Sans"/sans-serif and "DejaVu Sans Mono"/monospace.
  Without libharfbuzz-subset, WeasyPrint subsets every embedded font with fontTools, which
  parses the system DejaVu Sans' large GSUB/GPOS tables each time: ~200 ms of a ~300 ms PDF.
  With the lean copies it is ~10 ms a face; with libharfbuzz-subset (C) ~1 ms either way.
  Characters outside the lean copies fall back to the system fonts as usual;
* keeps one WeasyPrint ``FontConfiguration`` (fontconfig is loaded once, Pango's font cache
  stays warm) and an image cache (a tenant's logo is decoded once).

WeasyPrint fetches nothing but ``data:`` URLs: a tenant template cannot read local files or
reach the network (no file://, no SSRF).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from billing.documents.lean_fonts import LEAN_SUFFIX, find_faces, lean_dir
from billing.documents.model import DEFAULT_BRANDING, Branding, Document
from billing.documents.templating import render_html, sample_document, validate_template

__all__ = [
    "LEAN_SUFFIX",
    "PdfRenderer",
    "RenderItem",
    "init_worker",
    "render_pdf_sync",
    "stage_times",
]

LOGGER = logging.getLogger(__name__)
_IMAGE_CACHE_MAX = 64

RenderItem = tuple[Document, Branding, str | None]
T = TypeVar("T")


@dataclass
class _Worker:
    """Per-process WeasyPrint state, built once."""

    font_config: Any
    url_fetcher: Any
    image_cache: dict[str, Any] = field(default_factory=dict)
    lean_dir: Path | None = None


_STATE: _Worker | None = None


def _weasyprint() -> Any:
    """WeasyPrint, imported on first use (it takes ~0.5 s and loads Pango and fontconfig).

    Its import warns when libharfbuzz-subset is missing ("will be required by future
    versions"); that is a deployment note (see the module docstring), not a failure.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*HarfBuzz-Subset",
                                category=DeprecationWarning)
        import weasyprint  # type: ignore[import-untyped]
    return weasyprint


def _new_state(lean_dir: Path | None) -> _Worker:
    weasyprint = _weasyprint()
    from weasyprint.text.fonts import FontConfiguration  # type: ignore[import-untyped]

    fetcher = weasyprint.URLFetcher(allowed_protocols={"data"}, fail_on_errors=False)
    return _Worker(FontConfiguration(), fetcher, lean_dir=lean_dir)


def init_worker(lean_fonts: bool = True) -> None:
    """Process initializer: lean fonts, fontconfig, WeasyPrint imported and warmed."""
    global _STATE
    folder: Path | None = None
    faces = find_faces() if lean_fonts else {}
    if faces:
        try:
            folder = lean_dir(faces)
            os.environ["FONTCONFIG_FILE"] = str(folder / "fonts.conf")
        except Exception:  # the system fonts still work, only slower
            LOGGER.exception("could not build lean fonts; using the system fonts")
            folder = None
    _STATE = _new_state(folder)
    _render_one(sample_document(), Branding(), None)  # loads fonts, fills Pango's caches


def _state() -> _Worker:
    global _STATE
    if _STATE is None:  # the calling process (CLI, tests): system fonts, no environ change
        _STATE = _new_state(None)
    return _STATE


def _render_one(doc: Document, branding: Branding, source: str | None) -> bytes:
    state = _state()
    weasyprint = _weasyprint()
    html = render_html(doc, branding, source, medium="pdf")
    if len(state.image_cache) > _IMAGE_CACHE_MAX:
        state.image_cache.clear()
    font_config = state.font_config
    if source is not None and "@font-face" in source:  # a tenant's own faces stay theirs
        from weasyprint.text.fonts import FontConfiguration

        font_config = FontConfiguration()
    pdf: bytes = weasyprint.HTML(string=html, url_fetcher=state.url_fetcher).write_pdf(
        font_config=font_config, cache=state.image_cache
    )
    return pdf


def _render_batch(items: Sequence[RenderItem]) -> list[bytes]:
    """Worker entry point: several documents per call to spread the IPC cost."""
    return [_render_one(doc, branding, source) for doc, branding, source in items]


def render_pdf_sync(doc: Document, branding: Branding = DEFAULT_BRANDING,
                    source: str | None = None) -> bytes:  # fmt: skip
    """The PDF in the calling thread (CLI, tests): blocks, never call it on the event loop."""
    return _render_one(doc, branding, source)


def stage_times(doc: Document, rounds: int = 10) -> dict[str, float | bool]:
    """Median milliseconds of each stage of one PDF in this process (for the benchmark)."""
    state = _state()
    weasyprint = _weasyprint()
    from weasyprint.text.ffi import harfbuzz_subset  # type: ignore[import-untyped]

    html_ms, layout_ms, write_ms = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        html = render_html(doc, medium="pdf")
        t1 = time.perf_counter()
        rendered = weasyprint.HTML(string=html, url_fetcher=state.url_fetcher).render(
            font_config=state.font_config)
        t2 = time.perf_counter()
        rendered.write_pdf()
        t3 = time.perf_counter()
        html_ms.append((t1 - t0) * 1e3)
        layout_ms.append((t2 - t1) * 1e3)
        write_ms.append((t3 - t2) * 1e3)
    return {"html_ms": statistics.median(html_ms), "layout_ms": statistics.median(layout_ms),
            "write_ms": statistics.median(write_ms), "pages": len(rendered.pages),
            "lean_fonts": state.lean_dir is not None,
            "harfbuzz_subset": harfbuzz_subset is not None}  # fmt: skip


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _ready() -> bool:
    """Worker no-op: answers once its process (and the initializer) is up."""
    return _STATE is not None


class PdfRenderer:
    """A pool of PDF worker processes; ``await render(doc)`` never blocks the event loop.

    Workers start in a thread on first use (or ``start()``), since starting the forkserver and
    forking blocks; a pool broken by a dead worker is replaced for the next calls (the calls
    that were in flight get ``BrokenProcessPool``).
    """

    def __init__(self, workers: int | None = None, *, lean_fonts: bool = True,
                 batch: int = 4, timeout: float | None = 30.0) -> None:  # fmt: skip
        self.workers = workers or os.cpu_count() or 1
        self.batch = max(1, batch)
        self.timeout = timeout  # per batch; a tenant template looping for ever is cut off
        self._lean_fonts = lean_fonts
        self._pool = self._new_pool()
        self._started = False
        self._start_lock = asyncio.Lock()
        self._closed = False

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=_context(), initializer=init_worker,
                                   initargs=(self._lean_fonts,))  # fmt: skip

    async def start(self) -> None:
        """Start every worker process (in a thread); rendering calls this itself."""
        if self._closed:
            raise RuntimeError("PdfRenderer is closed")
        async with self._start_lock:
            if not self._started:
                pool = self._pool

                def spawn() -> None:  # each submit to a pool not yet full forks one worker
                    for future in [pool.submit(_ready) for _ in range(self.workers)]:
                        future.result()

                await asyncio.to_thread(spawn)
                self._started = True

    async def warm(self) -> None:
        """Start the workers and render a sample on each, so that timings start warm."""
        await self.start()
        await self.render_many([sample_document()] * (2 * self.workers))

    async def render(self, doc: Document, branding: Branding = DEFAULT_BRANDING,
                     source: str | None = None) -> bytes:  # fmt: skip
        (pdf,) = await self._submit(_render_batch, [(doc, branding, source)])
        return pdf

    async def render_html(self, doc: Document, branding: Branding = DEFAULT_BRANDING,
                          source: str | None = None) -> str:  # fmt: skip
        """``templating.render_html`` in a worker: for tenant templates, which may be slow."""
        html: str = await self._submit(render_html, doc, branding, source)
        return html

    async def validate_template(self, source: str) -> None:
        """``templating.validate_template`` in a worker, under the renderer's timeout."""
        await self._submit(validate_template, source)

    async def render_many(self, items: Iterable[RenderItem | Document]) -> list[bytes]:
        """PDFs of ``items`` (documents, or (document, branding, source)), in order."""
        work: list[RenderItem] = [
            (item, DEFAULT_BRANDING, None) if isinstance(item, Document) else item
            for item in items
        ]
        size = max(1, min(self.batch, -(-len(work) // self.workers)))
        chunks = [work[i : i + size] for i in range(0, len(work), size)]
        done = await asyncio.gather(*(self._submit(_render_batch, chunk) for chunk in chunks))
        return [pdf for chunk in done for pdf in chunk]

    async def _submit(self, fn: Callable[..., T], *args: Any) -> T:
        await self.start()
        pool = self._pool
        try:
            future = pool.submit(fn, *args)
        except BrokenProcessPool:  # broken before this call: a new pool, and this call on it
            self._replace(pool)
            await self.start()
            pool = self._pool
            future = pool.submit(fn, *args)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError:
            LOGGER.error("a PDF worker took more than %s s; restarting the pool", self.timeout)
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()  # concurrent.futures cannot stop one running task
            self._replace(pool)
            raise
        except BrokenProcessPool:  # a worker died, maybe running this very call
            self._replace(pool)
            raise

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if broken is self._pool and not self._closed:
            LOGGER.error("replacing the PDF worker pool")
            self._pool, self._started = self._new_pool(), False
            broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers (blocks until they exit; from async code use ``aclose``)."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def aclose(self) -> None:
        self._closed = True
        await asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True)

    async def __aenter__(self) -> PdfRenderer:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        await self.aclose()

    def __enter__(self) -> PdfRenderer:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()

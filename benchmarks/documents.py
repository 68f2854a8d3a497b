"""Invoice documents: HTML renders/s and PDFs/s through ``PdfRenderer`` (1 and N workers).

A typical one-page invoice: 10 lines (some with a detail line), one tax, a credit, notes and a
20-call appendix with its CSV link (``sample_document``), each document with its own number and
customer. HTML is rendered in this process; PDFs in worker processes (WeasyPrint), kept busy with
``render_many`` batches. A stage breakdown (template, WeasyPrint layout, PDF writing with font
subsetting) is measured inside a worker, and says whether libharfbuzz-subset was found (without
it WeasyPrint subsets fonts with fontTools, in Python).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from billing.documents import Document, PdfRenderer, render_html, sample_document
from billing.documents.pdf import init_worker, stage_times

TARGET_PDF_RATE = 50.0


def documents(n: int) -> list[Document]:
    """``n`` variants of the sample invoice: own number, customer name and account."""
    base = sample_document()
    return [replace(base, number=f"INV-2026-{i:06d}", account_id=f"ACC-{i:06d}",
                    buyer=replace(base.buyer, name=f"Customer {i} Ltd"))
            for i in range(n)]  # fmt: skip


def html_rate(docs: list[Document], seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        render_html(docs[done % len(docs)])
        done += 1
    return done / (time.perf_counter() - start)


async def pdf_rate(docs: list[Document], workers: int, seconds: float) -> tuple[float, int]:
    """PDFs/s with ``workers`` processes, measured after a warm-up; and one PDF's size."""
    async with PdfRenderer(workers=workers) as renderer:
        await renderer.warm()
        per_call = 4 * renderer.workers * 2
        size = len((await renderer.render_many(docs[:1]))[0])
        done = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            chunk = [docs[(done + i) % len(docs)] for i in range(per_call)]
            await renderer.render_many(chunk)
            done += per_call
        return done / (time.perf_counter() - start), size


def stages(doc: Document) -> dict[str, Any]:
    """Stage medians inside a fresh worker process (lean fonts built as in ``PdfRenderer``)."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=init_worker) as pool:
        return pool.submit(stage_times, doc, 10).result()


def run(seconds: float = 5.0) -> dict[str, Any]:
    docs = documents(64)
    n = os.cpu_count() or 1
    one, size = asyncio.run(pdf_rate(docs, 1, seconds))
    many, _ = asyncio.run(pdf_rate(docs, n, seconds))
    return {
        "html_per_s": html_rate(docs, min(seconds, 3.0)),
        "pdf_per_s_1": one,
        "pdf_per_s_n": many,
        "workers": n,
        "pdf_bytes": size,
        "stages": stages(docs[0]),
    }


def report(r: dict[str, Any]) -> str:
    s = r["stages"]
    per_pdf = s["html_ms"] + s["layout_ms"] + s["write_ms"]
    verdict = "meets" if r["pdf_per_s_n"] >= TARGET_PDF_RATE else "BELOW"
    return "\n".join([
        "## invoice documents (10 lines, 20-call appendix, "
        f"{s['pages']} page{'s' if s['pages'] != 1 else ''}, {r['pdf_bytes']:,} bytes)",
        f"HTML renders (this process):   {r['html_per_s']:8.1f} /s",
        f"PDFs, 1 worker:                {r['pdf_per_s_1']:8.1f} /s",
        f"PDFs, {r['workers']} workers:               {r['pdf_per_s_n']:8.1f} /s"
        f"  (target >= {TARGET_PDF_RATE:.0f}: {verdict})",
        f"one PDF in a worker: template {s['html_ms']:.1f} ms + layout {s['layout_ms']:.1f} ms"
        f" + PDF/fonts {s['write_ms']:.1f} ms = {per_pdf:.1f} ms",
        f"lean fonts: {'yes' if s['lean_fonts'] else 'no'}; libharfbuzz-subset: "
        f"{'yes' if s['harfbuzz_subset'] else 'no (fonts subset by fontTools, in Python)'}",
    ])


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.documents")
    p.add_argument("--seconds", type=float, default=5.0)
    print(report(run(p.parse_args().seconds)))


if __name__ == "__main__":
    main()

"""Invoice documents: HTML renders/s and PDFs/s through ``PdfRenderer`` (1 tab and N tabs).

A typical one-page invoice: 10 lines (some with a detail line), one tax, a credit, notes and a
20-call appendix with its CSV link (``sample_document``), each document with its own number and
customer. HTML is rendered in this process; PDFs go the production way: the template in a
worker process, the page printed by headless Chromium in ``render_many`` batches. A stage
breakdown (template; Chromium's setDocumentContent + printToPDF, one tab, sequential) and the
CPU that Chromium's processes spent per PDF (from /proc) say where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from billing.documents import Document, PdfRenderer, render_html, sample_document

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


def group_cpu_seconds(pgid: int | None) -> float:
    """CPU seconds (user + system) of the live processes of group ``pgid`` (the browser's)."""
    if pgid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


async def pdf_rate(docs: list[Document], tabs: int, seconds: float) -> dict[str, Any]:
    """PDFs/s with ``tabs`` browser tabs, after a warm-up; one PDF's size; CPU per PDF."""
    async with PdfRenderer(tabs=tabs) as renderer:
        await renderer.warm()
        per_call = 8 * tabs
        size = len((await renderer.render_many(docs[:1]))[0])
        done = 0
        cpu0, own0 = group_cpu_seconds(renderer.browser_pid), time.process_time()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            chunk = [docs[(done + i) % len(docs)] for i in range(per_call)]
            await renderer.render_many(chunk)
            done += per_call
        elapsed = time.perf_counter() - start
        browser_ms = (group_cpu_seconds(renderer.browser_pid) - cpu0) / done * 1e3
        own_ms = (time.process_time() - own0) / done * 1e3
        return {"rate": done / elapsed, "bytes": size, "browser_cpu_ms": browser_ms,
                "own_cpu_ms": own_ms}  # fmt: skip


async def stages(doc: Document, rounds: int = 20) -> dict[str, float]:
    """Median ms of the template (this process) and of one print (one tab, nothing else)."""
    async with PdfRenderer(tabs=1) as renderer:
        await renderer.warm()
        html_ms, print_ms = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            html = render_html(doc, medium="pdf")
            t1 = time.perf_counter()
            await renderer.print_html(html)
            t2 = time.perf_counter()
            html_ms.append((t1 - t0) * 1e3)
            print_ms.append((t2 - t1) * 1e3)
    return {"html_ms": statistics.median(html_ms), "print_ms": statistics.median(print_ms)}


def run(seconds: float = 5.0) -> dict[str, Any]:
    docs = documents(64)
    n = 2 * (os.cpu_count() or 1)
    one = asyncio.run(pdf_rate(docs, 1, seconds))
    many = asyncio.run(pdf_rate(docs, n, seconds))
    return {
        "html_per_s": html_rate(docs, min(seconds, 3.0)),
        "one": one,
        "many": many,
        "tabs": n,
        "cpus": os.cpu_count() or 1,
        "stages": asyncio.run(stages(docs[0])),
    }


def report(r: dict[str, Any]) -> str:
    s, one, many = r["stages"], r["one"], r["many"]
    verdict = "meets" if many["rate"] >= TARGET_PDF_RATE else "BELOW"
    return "\n".join([
        f"## invoice documents (10 lines, 20-call appendix, 1 page, {one['bytes']:,} bytes)",
        f"HTML renders (this process):   {r['html_per_s']:8.1f} /s",
        f"PDFs, 1 tab:                   {one['rate']:8.1f} /s",
        f"PDFs, {r['tabs']} tabs ({r['cpus']} CPUs):        {many['rate']:8.1f} /s"
        f"  (target >= {TARGET_PDF_RATE:.0f}: {verdict})",
        f"one PDF: template {s['html_ms']:.1f} ms + print {s['print_ms']:.1f} ms (one tab, alone);"
        f" CPU per PDF at full rate: Chromium {many['browser_cpu_ms']:.1f} ms,"
        f" this process {many['own_cpu_ms']:.1f} ms",
    ])


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.documents")
    p.add_argument("--seconds", type=float, default=5.0)
    print(report(run(p.parse_args().seconds)))


if __name__ == "__main__":
    main()

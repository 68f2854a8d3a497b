"""Process-level tuning for the engine's long-running processes."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Move start-up objects (catalogue, code) out of the collector's way and collect the young
    generation less often: each request allocates little that forms cycles, and full passes
    over a large catalogue would show up as latency spikes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)

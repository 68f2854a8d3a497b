"""Benchmarks: side-by-side ratios measured in one run on one machine (never timed tests)."""

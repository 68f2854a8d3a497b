"""``python -m benchmarks [lifecycle] [--seconds S]``: run benchmarks and print their ratios."""

from __future__ import annotations

import argparse

from benchmarks import lifecycle


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    p.add_argument("which", nargs="?", default="lifecycle", choices=["lifecycle"])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    print(lifecycle.report(lifecycle.run(args.seconds, args.requests, args.rounds)))


if __name__ == "__main__":
    main()

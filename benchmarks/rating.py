"""Vectorised batch rating against per-CDR scalar rating of the same CDRs, side by side.

A realistic plan (default 20,000 prefixes of 1-8 digits under ~200 country codes, a fifth with a
peak band, some with a scheduled price change, every rounding mode) and 1,000,000 CDRs over a
month that crosses a DST change in Europe/London (3% unknown destinations, a tenth unanswered):

* batch: ``BatchRater.rate`` over all of them, from integer numbers and from digit strings;
* scalar: ``Tariff.find`` + ``pricing.cost`` per CDR on the first 50,000, rate per CDR
  extrapolated; the two answers are checked to be identical on those CDRs.

Rounds alternate between the two sides and medians are kept (shared, noisy machines).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from charging_engine.money import Rounding
from charging_engine.rating.batch import BatchRater, Destinations
from charging_engine.rating.model import Rate, RatePlan, TimeBand
from charging_engine.rating.pricing import cost
from charging_engine.rating.tariff import Tariff

ZONE = ZoneInfo("Europe/London")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MONTH_START = datetime(2026, 3, 15, tzinfo=UTC)  # London's clocks go forward on 29 March
PEAK = TimeBand("peak", frozenset(range(5)), datetime(2026, 1, 1, 8).time(),
                datetime(2026, 1, 1, 18).time())  # fmt: skip
TARGET_RATE = 1_000_000
TARGET_RATIO = 30.0


@dataclass
class Figures:
    prefixes: int
    rates: int
    cdrs: int
    scalar_cdrs: int
    build_s: float
    batch: float  # CDRs/s from integer numbers
    batch_strings: float  # CDRs/s from digit strings (encoding included)
    scalar: float  # CDRs/s, one Tariff.find + cost per CDR
    identical: bool

    @property
    def ratio(self) -> float:
        return self.batch / self.scalar

    @property
    def ratio_strings(self) -> float:
        return self.batch_strings / self.scalar


def make_plan(prefixes: int, seed: int = 1) -> RatePlan:
    """``prefixes`` distinct prefixes: country codes, then area/mobile ranges under them."""
    rng = random.Random(seed)
    countries = sorted({str(rng.randint(1, 999)) for _ in range(260)})[:200]
    chosen: set[str] = set(countries)
    while len(chosen) < prefixes:
        cc = rng.choice(countries)
        chosen.add(cc + str(rng.randint(0, 10 ** rng.randint(1, 8 - len(cc)) - 1)))
    switch = MONTH_START + timedelta(days=10)
    rates: list[Rate] = []
    for p in sorted(chosen)[:prefixes]:
        price = rng.randint(50, 600_000)
        common = {
            "rounding": rng.choice(list(Rounding)), "decimals": rng.choice([2, 4, 6]),
            "first_increment": rng.choice([1, 30, 60]), "next_increment": rng.choice([1, 6, 60]),
            "connect_fee": rng.choice([0, 0, 0, 10_000]), "grace_seconds": rng.choice([0, 3]),
        }
        rates.append(Rate(p, price, **common))  # type: ignore[arg-type]
        if rng.random() < 0.2:
            rates.append(Rate(p, price * 3 // 2, band=PEAK, **common))  # type: ignore[arg-type]
        if rng.random() < 0.05:
            rates.append(Rate(p, price * 9 // 10, active_from=switch, **common))  # type: ignore[arg-type]
    return RatePlan("bench", "GBP", tuple(rates))


def make_cdrs(plan: RatePlan, n: int, seed: int = 2) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Digit strings, start instants (epoch ms) and durations of ``n`` CDRs."""
    rng = np.random.default_rng(seed)
    prefixes = np.array(sorted({r.prefix for r in plan.rates}))
    picked = prefixes[rng.integers(0, len(prefixes), n)]
    suffix = rng.integers(0, 10**9, n).astype(str)
    numbers = np.char.add(picked, suffix)
    unknown = rng.random(n) < 0.03
    numbers[unknown] = np.char.add("999", suffix[unknown])  # no such country code
    as_list = [s[:12] for s in numbers.tolist()]
    base = (MONTH_START - EPOCH) // timedelta(milliseconds=1)
    starts = base + rng.integers(0, 30 * 86_400_000, n)
    durations = np.where(rng.random(n) < 0.1, 0, rng.exponential(120, n).astype(np.int64))
    return as_list, starts.astype(np.int64), durations.astype(np.int64)


def scalar_rate(tariff: Tariff, numbers: list[str], starts: list[int], durations: list[int]
                ) -> tuple[list[int], float]:  # fmt: skip
    """Costs and seconds taken, one ``Tariff.find`` + ``cost`` per CDR."""
    costs = []
    t0 = time.perf_counter()
    for number, start, duration in zip(numbers, starts, durations, strict=True):
        rate = tariff.find(number, EPOCH + timedelta(milliseconds=start), ZONE)
        costs.append(0 if rate is None else cost(rate, duration))
    return costs, time.perf_counter() - t0


def run(cdrs: int = 1_000_000, scalar_cdrs: int = 50_000, prefixes: int = 20_000,
        rounds: int = 3) -> Figures:  # fmt: skip
    plan = make_plan(prefixes)
    numbers, starts, durations = make_cdrs(plan, cdrs)
    t0 = time.perf_counter()
    rater = BatchRater(plan)
    build = time.perf_counter() - t0
    tariff = Tariff(plan)
    encoded = Destinations.from_strings(numbers)
    ints = Destinations.from_ints(encoded.padded // 10 ** (15 - encoded.lengths), encoded.lengths)
    k = min(scalar_cdrs, cdrs)
    s_numbers, s_starts, s_durs = numbers[:k], starts[:k].tolist(), durations[:k].tolist()
    batch_s, string_s, scalar_s = [], [], []
    identical = True
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = rater.rate(ints, starts, durations, ZONE)
        batch_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rater.rate(numbers, starts, durations, ZONE)
        string_s.append(time.perf_counter() - t0)
        costs, took = scalar_rate(tariff, s_numbers, s_starts, s_durs)
        scalar_s.append(took)
        identical &= result.cost[:k].tolist() == costs
    print("rounds (batch s, batch from strings s, scalar s):",
          [(round(a, 3), round(b, 3), round(c, 3))
           for a, b, c in zip(batch_s, string_s, scalar_s, strict=True)])  # fmt: skip
    return Figures(
        prefixes=len({r.prefix for r in plan.rates}), rates=len(plan.rates), cdrs=cdrs,
        scalar_cdrs=k, build_s=build, batch=cdrs / statistics.median(batch_s),
        batch_strings=cdrs / statistics.median(string_s),
        scalar=k / statistics.median(scalar_s), identical=identical,
    )


def report(f: Figures) -> str:
    return "\n".join([
        "## batch rating against scalar rating (one run, same machine, medians of rounds)",
        f"plan: {f.prefixes} prefixes, {f.rates} rates; compiled in {f.build_s:.3f} s",
        f"batch rater, {f.cdrs} CDRs (integer numbers):    {f.batch:12.0f} CDRs/s"
        f"  (target >= {TARGET_RATE:,})",
        f"batch rater, {f.cdrs} CDRs (digit strings):      {f.batch_strings:12.0f} CDRs/s"
        f"  (ratio {f.ratio_strings:.1f}: parsing the strings included)",
        f"scalar Tariff.find + cost, {f.scalar_cdrs} CDRs:  {f.scalar:12.0f} CDRs/s",
        f"ratio batch / scalar:                            {f.ratio:12.1f}"
        f"  (target >= {TARGET_RATIO:.0f})",
        f"identical costs on the {f.scalar_cdrs} CDRs rated both ways: "
        f"{'yes' if f.identical else 'NO'}",
    ])


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.rating")
    p.add_argument("--cdrs", type=int, default=1_000_000)
    p.add_argument("--scalar-cdrs", type=int, default=50_000)
    p.add_argument("--prefixes", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    print(report(run(a.cdrs, a.scalar_cdrs, a.prefixes, a.rounds)))


if __name__ == "__main__":
    main()

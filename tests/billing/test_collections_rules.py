"""The collections' pure rules: the renewal quote's arithmetic, the assignment rule, the visit
and preset checks."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.collections.rules import (
    DEFAULT_PRESETS,
    Candidate,
    Preset,
    check_presets,
    check_visit,
    pick_agent,
    quote,
)
from billing.errors import InvalidBillingInput

minor = st.integers(min_value=0, max_value=10**12)


@given(minor, minor, st.integers(min_value=-(10**12), max_value=10**12))
def test_quote_collects_what_the_money_does_not_cover(owed: int, price: int,
                                                      available: int) -> None:  # fmt: skip
    q = quote(owed, price, available)
    assert q.to_collect + q.transferred == owed + price  # nothing lost, nothing made up
    assert 0 <= q.transferred <= min(price, max(available, 0))
    assert q.left_over == max(available, 0) - q.transferred >= 0
    assert q.to_collect >= owed  # the account's money never pays old invoices here
    if available >= price:
        assert q.to_collect == owed


def test_quote_refuses_negative_amounts() -> None:
    with pytest.raises(InvalidBillingInput):
        quote(-1, 0, 0)


agents = st.lists(st.builds(Candidate, st.sampled_from(["g1", "g2", "g3", "g4"]),
                            st.sampled_from(["north", "south", ""]),
                            st.integers(min_value=0, max_value=20)), max_size=8)  # fmt: skip


@given(st.sampled_from(["north", "south", "east", ""]), agents)
def test_pick_agent_takes_the_least_loaded_agent_of_the_area(area: str,
                                                             found: list[Candidate]) -> None:
    chosen = pick_agent(area, found)
    local = [a for a in found if a.area == area and area]
    if not local:
        assert chosen is None
        return
    least = min(a.open_tasks for a in local)
    assert chosen in {a.agent_id for a in local if a.open_tasks == least}
    assert chosen == pick_agent(area, list(reversed(found)))  # the order does not matter


def test_visits_and_presets() -> None:
    today = date(2026, 12, 4)
    collected, absent, promised, _ = DEFAULT_PRESETS
    check_visit(absent, None, "", today, collecting=False)
    check_visit(promised, today, "", today, collecting=False)
    check_visit(collected, None, "", today, collecting=True)
    for preset, day, collecting in ((promised, None, False),
                                    (promised, today - timedelta(days=1), False),
                                    (absent, today, False), (collected, None, False),
                                    (absent, None, True)):  # fmt: skip
        with pytest.raises(InvalidBillingInput):
            check_visit(preset, day, "", today, collecting=collecting)
    with pytest.raises(InvalidBillingInput):
        check_visit(absent, None, "x" * 501, today, collecting=False)
    check_presets(DEFAULT_PRESETS)
    for bad in ((), (Preset("x", "X", "absent"),), (collected, collected),
                (Preset("Bad Code", "X", "collected"),), (Preset("ok", " ", "collected"),)):
        with pytest.raises(InvalidBillingInput):
            check_presets(bad)

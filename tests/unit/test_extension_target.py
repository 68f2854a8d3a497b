"""How far one extension reaches: a boundary past the grant, whatever the slice's length.

The regression this guards: with a slice shorter than the increment the target was rounded
back down to the grant itself, so no call on that rate could ever be extended.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from charging_engine.rating.model import Rate
from charging_engine.rating.pricing import (
    MAX_CALL_SECONDS,
    boundary_at_or_below,
    extension_target,
    first_boundary,
    max_duration,
    next_boundary,
    reservation_terms,
)
from tests.unit.test_pricing import rates

slices = st.integers(1, 900) | st.sampled_from([1, 5, 10, 59, 60, 61, 300])
seconds = st.integers(0, 20_000) | st.sampled_from([0, 1, 59, 60, 61, 120])
caps = st.integers(1, MAX_CALL_SECONDS) | st.sampled_from([60, 3_600, 14_400, MAX_CALL_SECONDS])


def is_charged_boundary(rate: Rate, s: int) -> bool:
    x0 = first_boundary(rate)
    return s >= x0 and (s - x0) % rate.next_increment == 0


@given(rates(), seconds, slices, caps)
def test_target_is_the_next_boundary_or_one_slice_on(
    rate: Rate, granted: int, slice_s: int, cap: int
) -> None:
    target = extension_target(rate, granted, slice_s, cap)
    nb = next_boundary(rate, granted)
    assert target <= max(granted + slice_s, nb)
    assert target <= cap
    if nb <= cap:  # the longest call leaves room for one more block
        assert target > granted
        assert is_charged_boundary(rate, target)
        # as far as the slice reaches: the next boundary would overrun it or the cap
        later = next_boundary(rate, target)
        assert later > granted + slice_s or later > cap
    else:  # capped: no charged time beyond the grant
        assert target <= granted or target < first_boundary(rate)


@given(rates(), st.integers(0, 10**10), slices, caps)
def test_extends_a_real_grant_unless_at_the_cap(
    rate: Rate, reserved: int, slice_s: int, cap: int
) -> None:
    """From what a reservation actually grants (max_duration), as the service computes it."""
    granted = max_duration(rate, reserved, cap)
    target = extension_target(rate, granted, slice_s, cap)
    if granted < boundary_at_or_below(rate, cap) and next_boundary(rate, granted) <= cap:
        assert target > granted and is_charged_boundary(rate, target)
    else:
        assert target <= granted


@given(rates(), slices)
def test_short_slice_extends_by_exactly_one_block(rate: Rate, slice_s: int) -> None:
    """A slice shorter than the increment reaches the next boundary and no further."""
    granted = first_boundary(rate)
    target = extension_target(rate, granted, slice_s, MAX_CALL_SECONDS)
    if slice_s < rate.next_increment:
        assert target == granted + rate.next_increment
    else:
        assert target == boundary_at_or_below(rate, granted + slice_s)


@given(rates(), slices)
def test_authorization_slice_is_an_extension_from_zero(rate: Rate, slice_s: int) -> None:
    """authorize and extend round a slice by the same rule: never less than the first block."""
    assert reservation_terms(rate, slice_s)[0] == extension_target(
        rate, 0, slice_s, MAX_CALL_SECONDS
    )


def test_minute_increments_with_ten_second_slices() -> None:
    rate = Rate(prefix="1", price_per_minute=60_000, first_increment=60, next_increment=60)
    assert reservation_terms(rate, 10)[0] == 60
    assert [extension_target(rate, g, 10, 14_400) for g in (60, 120, 180)] == [120, 180, 240]
    assert extension_target(rate, 14_400, 10, 14_400) == 14_400  # at the longest call

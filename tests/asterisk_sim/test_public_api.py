"""The simulator's public API is what ``__all__`` says, and nothing is wired at import time."""

from __future__ import annotations

import pbx_connectors.asterisk.simulator as simulator


def test_all_names_the_public_api() -> None:
    assert set(simulator.__all__) == {
        "CAUSE_TEXT", "AmiServer", "CallHandle", "CallRecord", "CallSpec", "CdrRecord",
        "EndedBy", "HangupBy", "Outcome", "ScenarioError", "Simulator", "SimulatorConfig",
        "cause_text", "parse_limit", "tvdiff_ms"}
    for name in simulator.__all__:
        assert getattr(simulator, name) is not None


def test_cdr_arithmetic_is_asterisks() -> None:
    # ast_tvdiff_ms floors to whole ms (also when the usec part is negative)
    assert simulator.tvdiff_ms(2_000_400, 1_000_900) == 999
    assert simulator.tvdiff_ms(2_000_900, 1_000_400) == 1000
    assert simulator.tvdiff_ms(3_999_999, 2_000_000) == 1999
    assert simulator.cause_text(16) == "Normal Clearing" and simulator.cause_text(0) == "Unknown"
    assert simulator.parse_limit("") == (True, None)
    assert simulator.parse_limit("1500") == (True, 1500)
    assert simulator.parse_limit("0") == (False, None)
    assert simulator.parse_limit("-5") == (False, None)

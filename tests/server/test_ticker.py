"""Tick scheduling as a function of ``now``: cadence, catch-up, drops."""

from __future__ import annotations

import pytest

from server.ticker import Ticker


def test_ticker_runs_one_tick_per_period_with_deadlines_from_the_start() -> None:
    t = Ticker(rate=30, start=100.0)
    assert t.poll(100.0) == 1
    assert t.poll(100.0 + 0.5 / 30) == 0
    assert t.next_deadline() == pytest.approx(100.0 + 1 / 30)
    assert t.poll(100.0 + 1 / 30) == 1
    # 1000 polls exactly on the deadlines never drift.
    for k in range(2, 1002):
        assert t.poll(100.0 + k / 30 + 1e-9) == 1
    assert t.done == 1002 and t.dropped == 0


def test_ticker_catches_up_a_bounded_number_of_late_ticks_and_drops_the_rest() -> None:
    t = Ticker(rate=10, start=0.0, max_catchup=3)
    assert t.poll(0.0) == 1
    assert t.poll(0.25) == 2  # ticks due at 0.1 and 0.2
    assert t.poll(1.05) == 3  # 8 due (0.3 .. 1.0): run 3, drop 5
    assert t.dropped == 5
    assert t.next_deadline() == pytest.approx(1.1)
    assert t.poll(1.1) == 1


def test_ticker_rejects_a_rate_that_is_not_positive() -> None:
    with pytest.raises(ValueError):
        Ticker(rate=0, start=0.0)

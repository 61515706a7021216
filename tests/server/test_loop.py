"""The asyncio tick loop on a fake clock: it sleeps to each deadline, catches up, stops."""

from __future__ import annotations

import asyncio

import pytest

from server.loop import LoopChoice, loop_factory, run_feed, run_ticker
from server.ticker import Ticker


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_run_ticker_sleeps_exactly_to_each_deadline_on_a_fake_clock() -> None:
    clock = FakeClock()
    times: list[float] = []
    ticker = Ticker(rate=20, start=clock())
    asyncio.run(run_ticker(ticker, lambda: times.append(clock()), clock, clock.sleep, max_ticks=40))
    assert times == pytest.approx([k / 20 for k in range(40)])


def test_run_ticker_with_slow_ticks_catches_up_then_drops() -> None:
    clock = FakeClock()
    ticks: list[float] = []

    def slow_tick() -> None:
        ticks.append(clock())
        if len(ticks) == 5:
            clock.now += 1.05  # one tick takes a second: deadlines 0.5 .. 1.4 (10) are late

    ticker = Ticker(rate=10, start=0.0, max_catchup=3)
    asyncio.run(run_ticker(ticker, slow_tick, clock, clock.sleep, max_ticks=12))
    assert ticker.dropped == 7  # 3 of the 10 late ticks ran at once
    # After the stall the loop is back on the original grid of deadlines.
    assert ticks[-1] == pytest.approx(ticker.next_deadline() - 0.1)


def test_run_ticker_stops_when_the_event_is_set() -> None:
    clock = FakeClock()
    stop = asyncio.Event()
    count = 0

    def tick() -> None:
        nonlocal count
        count += 1
        if count == 7:
            stop.set()

    async def main() -> None:
        await run_ticker(Ticker(rate=30, start=0.0), tick, clock, clock.sleep, stop=stop)

    asyncio.run(main())
    assert count == 7


def test_run_feed_ticks_a_feed_at_its_own_rate_on_its_own_ticker() -> None:
    clock = FakeClock()
    times: list[float] = []

    class Feed:
        tick_rate = 25
        ticker: Ticker | None = None

        def tick(self, now: float) -> None:
            times.append(now)

    feed = Feed()
    asyncio.run(run_feed(feed, clock, clock.sleep, max_ticks=10))  # type: ignore[arg-type]  # only what the loop uses
    assert times == pytest.approx([k / 25 for k in range(10)])
    assert feed.ticker is not None and feed.ticker.rate == 25 and feed.ticker.dropped == 0


def test_the_event_loop_is_uvloop_when_installed_unless_asyncio_is_asked_for() -> None:
    import uvloop  # installed with the server's dependencies

    assert loop_factory("auto") == LoopChoice("uvloop", uvloop.new_event_loop)
    assert loop_factory("uvloop").name == "uvloop"
    assert loop_factory("asyncio") == LoopChoice("asyncio", None)
    with pytest.raises(ValueError, match="expected one of auto, uvloop, asyncio, got 'tokio'"):
        loop_factory("tokio")

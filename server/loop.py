"""The asyncio driver of a ``Ticker``: call a function on schedule until stopped.

The schedule itself (deadlines, bounded catch-up, drops) is the pure
``server.ticker.Ticker``; this module only sleeps until its next deadline. The
clock and the sleep are injected, so tests run the loop on a fake clock.
``run_feed`` is the one tick loop of every feed the server hosts (a match, a
playback): each on its own ``Ticker``, at its own rate. ``loop_factory``
picks the event loop ``python -m server`` runs on (``--event-loop``): uvloop
when it is installed, unless told otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from attrs import frozen

from server.feed import Feed
from server.ticker import Ticker


#: ``--event-loop`` choices: ``auto`` is uvloop when it can be imported, else asyncio's own loop.
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
#: The environment variable that sets ``--event-loop``'s default.
EVENT_LOOP_ENV = "TICKSERVER_EVENT_LOOP"


@frozen
class LoopChoice:
    """The event loop to run on: its name (``uvloop`` or ``asyncio``) and its factory (None: asyncio's default)."""

    name: str
    factory: Callable[[], asyncio.AbstractEventLoop] | None


def loop_factory(choice: str) -> LoopChoice:
    """The event loop ``choice`` (one of ``EVENT_LOOPS``) stands for.

    uvloop runs the same ``asyncio.Protocol`` and transports in C: the socket
    reads and writes, the callbacks and the timers cost less per client
    (BENCHMARKS.md, *Server CPU per client*).

    Raises:
        ValueError: ``uvloop`` was asked for and is not installed, or ``choice`` is unknown.
    """
    if choice not in EVENT_LOOPS:
        raise ValueError(f"event loop: expected one of {', '.join(EVENT_LOOPS)}, got {choice!r}")
    if choice == "asyncio":
        return LoopChoice("asyncio", None)
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ValueError("event loop uvloop: uvloop is not installed (pip install uvloop)") from None
        return LoopChoice("asyncio", None)
    return LoopChoice("uvloop", uvloop.new_event_loop)


async def run_ticker(
    ticker: Ticker,
    tick: Callable[[], None],
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    stop: asyncio.Event | None = None,
    max_ticks: int | None = None,
) -> None:
    """Call ``tick()`` on schedule until ``stop`` is set (or ``max_ticks`` ran)."""
    ran = 0
    while not (stop is not None and stop.is_set()):
        for _ in range(ticker.poll(clock())):
            tick()
            ran += 1
            if max_ticks is not None and ran >= max_ticks:
                return
        await sleep(max(0.0, ticker.next_deadline() - clock()))


async def run_feed(
    feed: Feed[Any],
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    stop: asyncio.Event | None = None,
    max_ticks: int | None = None,
) -> None:
    """Tick ``feed`` at its ``tick_rate`` on ``clock`` until ``stop`` is set (or the task is cancelled).

    The feed's ``ticker`` is set here, from its first deadline (now) on, so
    its dropped ticks can be reported. Cancelling the task stops the feed
    between two ticks: ``tick`` is synchronous, the loop only waits in ``sleep``.
    """
    ticker = feed.ticker = Ticker(feed.tick_rate, clock())
    await run_ticker(ticker, lambda: feed.tick(clock()), clock, sleep, stop, max_ticks)

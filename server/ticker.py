"""Fixed-rate tick scheduling as a pure function of ``now``.

Tick ``k`` (1-based) is due at ``start + (k - 1) * period``: deadlines come
from the start time, never from "now + period", so errors do not accumulate.
When the loop falls behind it runs at most ``max_catchup`` late ticks at once
and drops (skips and counts) the rest.

Sans-I/O: no asyncio and no clock of its own; the caller passes ``now``, so
tests drive it without sleeping. ``server.loop.run_ticker`` runs it on an
event loop.
"""

from __future__ import annotations

import math

from attrs import define, field


@define
class Ticker:
    """Deadlines for a fixed-rate loop.

    Attributes:
        rate: ticks per second.
        start: monotonic time of the first deadline.
        max_catchup: most ticks run in one poll when late.
        done: ticks handed out so far (run or dropped).
        dropped: ticks skipped because the loop was too late.
    """

    rate: float
    start: float
    max_catchup: int = 3
    done: int = 0
    dropped: int = 0
    period: float = field(init=False)

    def __attrs_post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("tick rate must be positive")
        self.period = 1.0 / self.rate

    def poll(self, now: float) -> int:
        """How many ticks to run now (0 when the next deadline is in the future)."""
        # The epsilon makes "now == next_deadline()" due despite float rounding.
        due = math.floor((now - self.start) / self.period + 1e-9) + 1 - self.done
        if due <= 0:
            return 0
        if due > self.max_catchup:
            skip = due - self.max_catchup
            self.done += skip
            self.dropped += skip
            due = self.max_catchup
        self.done += due
        return due

    def next_deadline(self) -> float:
        """Monotonic time when the next tick is due."""
        return self.start + self.done * self.period

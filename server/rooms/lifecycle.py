"""When a node's matches are disposed: an empty match goes after a grace period.

Pure and clock-free, like ``server.ticker.Ticker``: the shell reports each
match's occupancy as it changes (``occupancy``) and asks ``poll(now)``
which matches are due for disposal; ``next_due`` says when to ask next.
A match that gets a player back before its grace runs out is kept. A new
match counts as empty from its creation, so one made for a seat that is
never taken goes too (keep the grace longer than the seat's validity: the
defaults are 30 s and 15 s).

The transitions, as data: ``occupancy(n > 0)`` makes a match occupied (no
deadline); ``occupancy(0)`` on an occupied match starts its deadline at
``now + grace_s`` (an empty one keeps its deadline); ``poll`` hands over
and forgets each match whose deadline has passed.
"""

from __future__ import annotations

import heapq

from server.rooms.directory import MatchId


class Lifecycle:
    """Empty-match disposal for the matches of one node.

    Args:
        grace_s: seconds a match may stay empty before it is disposed.
    """

    def __init__(self, grace_s: float = 30.0) -> None:
        if not grace_s >= 0:
            raise ValueError(f"grace_s must be >= 0, not {grace_s}")
        self.grace_s = grace_s
        #: Deadline of each empty match; None for an occupied one.
        self.deadlines: dict[MatchId, float | None] = {}
        self._due: list[tuple[float, MatchId]] = []

    def created(self, match_id: MatchId, *, now: float) -> None:
        """A new match, empty until someone joins."""
        self.deadlines[match_id] = None
        self.occupancy(match_id, 0, now=now)

    def occupancy(self, match_id: MatchId, players: int, *, now: float) -> None:
        """The match now has ``players`` players (seated or connected). Unknown matches are ignored."""
        if match_id not in self.deadlines:
            return
        if players > 0:
            self.deadlines[match_id] = None
        elif self.deadlines[match_id] is None:
            deadline = now + self.grace_s
            self.deadlines[match_id] = deadline
            heapq.heappush(self._due, (deadline, match_id))

    def forget(self, match_id: MatchId) -> None:
        """Stop tracking a match (it ended by other means)."""
        self.deadlines.pop(match_id, None)

    def poll(self, *, now: float) -> list[MatchId]:
        """The matches empty for ``grace_s`` by ``now``, in deadline order; they are forgotten."""
        out = []
        while self._due and self._due[0][0] <= now:
            deadline, match_id = heapq.heappop(self._due)
            if self.deadlines.get(match_id, -1.0) == deadline:  # else refilled, or a newer deadline
                del self.deadlines[match_id]
                out.append(match_id)
        return out

    def next_due(self) -> float | None:
        """The earliest deadline, or None: when to ``poll`` next."""
        due = self._due
        while due and self.deadlines.get(due[0][1], -1.0) != due[0][0]:
            heapq.heappop(due)  # stale: the match filled up again, or was disposed or forgotten
        return due[0][0] if due else None

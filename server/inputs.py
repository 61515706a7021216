"""Players' inputs: a short queue per player, one input applied per tick, each exactly once, in order.

Quake 3's user commands and Overwatch's input buffer: a client sends one
``input`` per batch of updates it processes (one per tick when nothing
stalls), numbered by ``seq``; the server queues them per player and applies
exactly one per tick, the oldest first, so a client that replays its inputs
newer than ``update.ack`` on the server's state lands where the server will.
PROTOCOL.md, *The input queue*, is the normative description; the rules:

- **Stale**: an input whose ``seq`` is not above the last one queued or
  applied for the player is ignored (counted as ``stale``).
- **One per tick**: each tick applies the oldest queued input; it stays in
  force until the next one is applied. ``ack`` is the ``seq`` of the input
  applied last (0 before the first).
- **Starved**: a tick that finds the queue empty applies the input in force
  again with its *resting* fields (the ruleset's axes and buttons,
  ``game.schema.InputField.kind``) at 0: the player stands still, presses
  nothing and keeps its settings (aim). Counted as ``starved`` once the
  player's first input was applied; ``ack`` does not move. So a press acts
  once however long the queue starves, and the player moves by exactly the
  inputs it sent: a client that replays its inputs after ``ack`` on the
  state of a starved tick lands where it predicted before (no correction).
- **Overflow**: a queue holds at most ``CAPACITY`` inputs; more push out the
  oldest (counted as ``dropped``).
- **Depth**: the queue's target depth ``D`` adapts to the arrival jitter:
  with ``x`` the player's inputs arrived minus ticks run (constant on a
  network without jitter), ``D = 1 + (max x - min x over the last WINDOW
  ticks)``, clamped to 1..``MAX_DEPTH``: the depth the queue reaches at its
  fullest when arrivals never come too late to be applied in time. A queue
  grows by itself when it starves (the late input is applied a tick later,
  and so are all after it); when it has held more than ``D`` inputs at every
  tick of the last ``WINDOW`` ticks, its surplus (its fewest over that time
  minus ``D``) is *owed*. Trims: an idle input (resting fields all 0) at the
  head of a queue deeper than ``D`` is dropped, one per tick, at any time
  (the player stands still one tick fewer: nothing a prediction rests on
  changes); what is still owed when the queue has stayed too deep for one
  more window is dropped then from the head, idle or not (a ruleset without
  axes or buttons has no idle input: its surplus goes when first owed).
  Dropped inputs are counted as ``dropped`` (and ``trimmed``): latency the
  jitter no longer needs is given back.
- **Skips**: a client that learns from ``surplus`` that its queue is deeper
  than it needs sends fewer inputs, leaving a gap in its ``seq``: the arrivals
  are counted by ``seq`` (an input ``k`` above the last arrived counts ``k``),
  so a skip lowers the queue without looking like a late input (it does not
  deepen ``D``), and the gaps are counted as ``skipped``.
- **Surplus**: each tick, after the trims, a queue holding more than ``D``
  inputs has a surplus of ``queued - D`` (0 otherwise): the ``surplus`` of
  the player's update (protocol minor 2), which tells its client to skip that
  many sends. Never more than the queue could lose without starving when the
  arrivals keep the spread of the last window (at the tick where ``x`` is at
  its highest it is exactly that, at any other less), unless that spread is
  beyond what ``MAX_DEPTH`` covers (then the bound decides, as for the depth).
- **Lag**: an input may carry ``view``, the tick the client was displaying
  when it sampled the input; the tick ``t`` that applies it records
  ``lag = clamp(t - view, 0, max_lag)`` for the ruleset's lag compensation
  (0 without ``view``). A repeated input keeps its lag.

Arrivals are staged in a list (``submit`` is a dict lookup, a compare and an
append); ``commit(tick)`` scatters them into a ring per player (numpy,
``(players, CAPACITY)``), takes the head of every non-empty queue with one
fancy-index assignment and returns the batch the ruleset steps with, in
ascending player-id order. No Python loop per player on the tick.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from game.rules import InputBatch

#: Inputs a player's queue holds at most: a ninth pushes out the oldest.
CAPACITY = 8
#: Bounds of the target depth (ticks of inputs the queue aims to hold at its fullest).
MIN_DEPTH, MAX_DEPTH = 1, 4
#: Seconds of arrivals the depth is measured over, and a queue too deep must stay so before it is trimmed.
WINDOW_S = 10.0
#: Seconds of rewind a client's ``view`` may buy at most (Overwatch's and the issue's bound: a quarter second).
MAX_LAG_S = 0.25

_ARRAYS = ("players", "current", "lag", "applied_seq", "ring", "ring_seq", "ring_view", "head", "queued",
           "started", "held", "neutral_next", "x", "xmin", "xmax", "calm", "qmin", "owed", "depth",
           "starved", "dropped", "stale", "last_seq", "surplus", "skipped")


def max_lag_ticks(tick_rate: int) -> int:
    """The largest lag a match at ``tick_rate`` records: ``ceil(MAX_LAG_S * tick_rate)`` (8 at 30 Hz)."""
    return math.ceil(MAX_LAG_S * tick_rate)


class InputTable:
    """Every player's input queue and the input in force, rows in ascending player-id order.

    Args:
        fields: input fields per input (the ruleset's).
        max_lag: the largest lag recorded, in ticks (``max_lag_ticks``).
        window: ticks the jitter is measured over (``WINDOW_S`` at the match's rate).
        resting: indices of the fields a starved tick sets to 0 (the ruleset's axes and buttons:
            ``InputField.rests``); an input whose resting fields are all 0 is idle.

    Attributes (per row):
        players: int32 (P,), ascending player ids.
        current: int16 (P, F), the input in force.
        lag: int16 (P,), the lag of the input in force, ticks.
        applied_seq: int64 (P,), the ``seq`` of the input applied last (0: none yet).
        queued: int64 (P,), inputs waiting.
        depth: int64 (P,), the target depth ``D``.
        owed: int64 (P,), inputs a trim still drops when idle ones reach the head.
        surplus: int64 (P,), inputs queued beyond ``depth`` at the last commit (after its trims), 0 or more.
        starved, dropped, stale, skipped: int64 (P,), the player's counts (``totals`` keeps them past a removal;
            ``skipped``: gaps in the ``seq`` of its inputs, the sends its client skipped).
    """

    def __init__(self, fields: int, *, max_lag: int = 0, window: int = 300, resting: Sequence[int] = ()) -> None:
        self.fields = fields
        self.max_lag = max_lag
        self.window = max(1, window)
        self.resting = np.asarray(sorted(set(resting)), np.intp)
        if self.resting.size and not 0 <= self.resting[0] <= self.resting[-1] < fields:
            raise ValueError(f"resting fields {resting} outside 0..{fields - 1}")
        #: The window in blocks of ``block`` ticks: the jitter's extremes are kept per block.
        self.block = max(1, self.window // 10)
        self.blocks = -(-self.window // self.block)
        #: Counts since the table began; ``trimmed`` (the trims' drops, the rest of ``dropped`` being
        #: overflow) and ``trimmed_idle`` (those of idle inputs: free for a prediction) are among ``dropped``.
        self.totals = {"starved": 0, "dropped": 0, "stale": 0, "trimmed": 0, "trimmed_idle": 0, "skipped": 0}
        self.ticks = 0
        self._staged: list[tuple[int, int, tuple[int, ...], int]] = []
        self._last: dict[int, int] = {}
        self._alloc(0)

    def _alloc(self, n: int) -> None:
        f, cap, nb = self.fields, CAPACITY, self.blocks
        self.players = np.zeros(n, np.int32)
        self.current = np.zeros((n, f), np.int16)
        self.lag = np.zeros(n, np.int16)
        self.applied_seq = np.zeros(n, np.int64)
        self.ring = np.zeros((n, cap, f), np.int16)
        self.ring_seq = np.zeros((n, cap), np.int64)
        self.ring_view = np.zeros((n, cap), np.int64)
        self.head = np.zeros(n, np.int64)
        self.queued = np.zeros(n, np.int64)
        #: An input arrived since the player joined or its connection was replaced.
        self.started = np.zeros(n, np.bool_)
        #: Disconnected, held for a resume: no arrivals, nothing counted.
        self.held = np.zeros(n, np.bool_)
        self.neutral_next = np.zeros(n, np.bool_)
        self.x = np.zeros(n, np.int64)
        self.xmin = np.zeros((n, nb), np.int64)
        self.xmax = np.zeros((n, nb), np.int64)
        self.calm = np.zeros(n, np.int64)
        self.qmin = np.zeros(n, np.int64)
        self.owed = np.zeros(n, np.int64)
        self.depth = np.full(n, MIN_DEPTH, np.int64)
        self.starved = np.zeros(n, np.int64)
        self.dropped = np.zeros(n, np.int64)
        self.stale = np.zeros(n, np.int64)
        #: The ``seq`` of the newest input arrived (committed), for counting arrivals by ``seq``.
        self.last_seq = np.zeros(n, np.int64)
        self.surplus = np.zeros(n, np.int64)
        self.skipped = np.zeros(n, np.int64)

    def __len__(self) -> int:
        return len(self.players)

    def __contains__(self, player: int) -> bool:
        return player in self._last

    def _row(self, player: int) -> int:
        if player not in self._last:
            raise KeyError(player)
        return int(np.searchsorted(self.players, player))

    # -- membership --------------------------------------------------------------

    def add(self, players: Sequence[int]) -> None:
        """Add players with a neutral (all-zero) input in force and an empty queue, keeping player-id order."""
        if not players:
            return
        new = np.sort(np.asarray(players, dtype=np.int32))
        if any(int(p) in self._last for p in new) or len(set(new.tolist())) != len(new):
            raise ValueError("player already in the input table")
        fresh = InputTable(self.fields, max_lag=self.max_lag, window=self.window, resting=self.resting.tolist())
        fresh._alloc(len(new))
        fresh.players[:] = new
        # New players have the newest ids: their rows go after the others' (one concatenation per array, not
        # np.insert's work); a handover's or a test's may go anywhere: the rows are then put in id order.
        order = None if not self.players.size or new[0] > self.players[-1] else np.argsort(
            np.concatenate([self.players, new]), kind="stable")
        for name in _ARRAYS:
            rows = np.concatenate([getattr(self, name), getattr(fresh, name)])
            setattr(self, name, rows if order is None else rows[order])
        for p in new.tolist():
            self._last[p] = 0

    def remove(self, players: Sequence[int]) -> None:
        if not players:
            return
        keep = np.ones(len(self.players), np.bool_)
        keep[np.searchsorted(self.players, np.asarray(players, dtype=np.int32))] = False
        gone = set(players)
        self._staged = [s for s in self._staged if s[0] not in gone]
        for name in _ARRAYS:
            setattr(self, name, getattr(self, name)[keep])
        for p in players:
            del self._last[p]

    def neutral(self, player: int) -> None:
        """The player's connection is gone: drop its queue; an all-zero input is in force from the next tick."""
        self._unstage(player)
        row = self._row(player)
        self.queued[row] = 0
        self.held[row] = True
        self.neutral_next[row] = True

    def restart(self, player: int) -> None:
        """A new connection took over the player: its ``seq`` numbering starts again (ack 0)."""
        self._unstage(player)
        row = self._row(player)
        self._last[player] = 0
        self.applied_seq[row] = self.last_seq[row] = self.surplus[row] = 0
        self.queued[row] = 0
        self.started[row] = self.held[row] = False
        self.calm[row] = self.owed[row] = 0
        self.depth[row] = MIN_DEPTH

    def _unstage(self, player: int) -> None:
        if any(s[0] == player for s in self._staged):
            self._staged = [s for s in self._staged if s[0] != player]

    # -- arrivals ----------------------------------------------------------------

    def submit(self, player: int, seq: int, values: tuple[int, ...], view: int | None = None) -> bool:
        """Queue an input that arrived (applied at a later ``commit``); False when its ``seq`` is stale.

        Args:
            player: a player in the table.
            seq: its sequence number (1 and up).
            values: one int16 per field.
            view: the tick the client was displaying when it sampled the input, or None.
        """
        if seq <= self._last[player]:
            self.totals["stale"] += 1
            self.stale[self._row(player)] += 1
            return False
        self._last[player] = seq
        self._staged.append((player, seq, values, -1 if view is None else view))
        return True

    # -- the tick ----------------------------------------------------------------

    def commit(self, tick: int) -> InputBatch:
        """Take this tick's arrivals, apply one input per player; the batch the step at ``tick`` uses.

        Args:
            tick: the tick the batch is simulated for (the world's tick after the step), for the lag.
        """
        n = len(self.players)
        advance = self._scatter(n)
        self._measure(advance)
        self._consume(tick)
        self.ticks += 1
        return InputBatch(self.players.copy(), self.current.copy(), self.lag.copy())

    def _scatter(self, n: int) -> npt.NDArray[np.int64]:
        """Move the staged arrivals into the rings (the oldest beyond ``CAPACITY`` drop); arrivals per row,
        counted by ``seq`` (a gap is a send the client skipped: it counts as arrived)."""
        staged, self._staged = self._staged, []
        if not staged or n == 0:
            return np.zeros(n, np.int64)
        pid = np.fromiter((s[0] for s in staged), np.int64, len(staged))
        rows = np.searchsorted(self.players, pid)  # every staged player is in the table: remove() unstages
        order = np.argsort(rows, kind="stable")
        rows = rows[order]
        arrived = np.bincount(rows, minlength=n).astype(np.int64)
        first = np.cumsum(arrived) - arrived
        rank = np.arange(len(rows)) - first[rows]
        keep = rank >= arrived[rows] - CAPACITY  # more than CAPACITY at once: only the newest can stay
        sel = order[keep]
        rows, rank = rows[keep], rank[keep]
        slot = (self.head[rows] + self.queued[rows] + rank) % CAPACITY
        self.ring[rows, slot] = np.array([staged[i][2] for i in sel.tolist()], np.int16).reshape(-1, self.fields)
        seqs = np.fromiter((staged[i][1] for i in sel.tolist()), np.int64, len(sel))
        self.ring_seq[rows, slot] = seqs
        # A row's seqs ascend (submit refuses any other): the last of its run is its newest.
        last = np.flatnonzero(np.append(rows[1:] != rows[:-1], True))
        newest = self.last_seq.copy()
        newest[rows[last]] = seqs[last]
        self.ring_view[rows, slot] = np.fromiter((staged[i][3] for i in sel.tolist()), np.int64, len(sel))
        self.queued += arrived
        over = np.maximum(self.queued - CAPACITY, 0)
        if over.any():
            self.head += over
            self.queued -= over
            self._drop(over)
        first_input = (arrived > 0) & ~self.started
        advance = np.where(first_input, arrived, newest - self.last_seq)
        self.last_seq = newest
        gaps = advance - arrived
        if gaps.any():
            self.skipped += gaps
            self.totals["skipped"] += int(gaps.sum())
        if first_input.any():
            self.started |= first_input
            self.x[first_input] = 0
            self.xmin[first_input] = self.xmax[first_input] = 0
            self.calm[first_input] = 0
        return advance

    def _measure(self, arrived: npt.NDArray[np.int64]) -> None:
        """Track arrivals (by ``seq``) minus ticks, the target depth, trim a queue deeper than it needs, and
        note what is still deeper: the surplus."""
        active = self.started & ~self.held
        self.x += np.where(active, arrived - 1, 0)
        b = (self.ticks // self.block) % self.blocks
        if self.ticks % self.block == 0:
            self.xmin[:, b] = self.xmax[:, b] = self.x
        else:
            np.minimum(self.xmin[:, b], self.x, out=self.xmin[:, b])
            np.maximum(self.xmax[:, b], self.x, out=self.xmax[:, b])
        spread = self.xmax.max(axis=1) - self.xmin.min(axis=1) if len(self.x) else self.x
        self.depth = np.clip(1 + spread, MIN_DEPTH, MAX_DEPTH)
        deep = active & (self.queued > self.depth)
        self.calm = np.where(deep, self.calm + 1, 0)
        self.qmin = np.where(self.calm == 1, self.queued, np.minimum(self.qmin, self.queued))
        self.owed[~deep] = 0
        due = deep & (self.calm >= self.window)
        if due.any():
            surplus = np.where(due, self.qmin - self.depth, 0)
            # Owed since a window ago and never idle at the head: dropped now, idle or not. (Without
            # resting fields no input is ever idle: the surplus goes at once.)
            forced = np.minimum(np.where(due, self.owed, 0), surplus) if self.resting.size else surplus
            self.head += forced
            self.queued -= forced
            self._drop(forced)
            self.totals["trimmed"] += int(forced.sum())
            self.owed = np.where(due, surplus - forced, self.owed)
            self.calm[due] = 0
        # An idle input at the head of a queue deeper than it needs goes at once, whatever is owed: the
        # player stands still one tick fewer, which no prediction feels.
        over = np.flatnonzero(active & (self.queued > self.depth) & bool(self.resting.size))
        if over.size:
            head = self.ring[over, self.head[over] % CAPACITY]
            idle = over[~head[:, self.resting].any(axis=1)]
            if idle.size:
                self.head[idle] += 1
                self.queued[idle] -= 1
                self.owed[idle] = np.maximum(self.owed[idle] - 1, 0)
                self.dropped[idle] += 1
                for key in ("dropped", "trimmed", "trimmed_idle"):
                    self.totals[key] += int(idle.size)
        self.surplus = np.where(active, np.maximum(self.queued - self.depth, 0), 0)

    def _consume(self, tick: int) -> None:
        starved = (self.queued == 0) & self.started & ~self.held & (self.applied_seq > 0)
        if starved.any():
            self.starved += starved
            self.totals["starved"] += int(starved.sum())
        got = self.queued > 0
        have = np.flatnonzero(got)
        if self.resting.size and not got.all():
            self.current[:, self.resting] *= got[:, None]  # a tick without a new input: axes and buttons rest
        if have.size:
            slot = self.head[have] % CAPACITY
            self.current[have] = self.ring[have, slot]
            self.applied_seq[have] = self.ring_seq[have, slot]
            view = self.ring_view[have, slot]
            self.lag[have] = np.where(view < 0, 0, np.clip(tick - view, 0, self.max_lag))
            self.head[have] += 1
            self.queued[have] -= 1
        if self.neutral_next.any():
            m = self.neutral_next
            self.current[m] = 0
            self.lag[m] = 0
            self.neutral_next[:] = False

    def _drop(self, count: npt.NDArray[np.int64]) -> None:
        self.dropped += count
        self.totals["dropped"] += int(count.sum())

    # -- reading -----------------------------------------------------------------

    def ack(self, player: int) -> int:
        """The ``seq`` of the player's input applied last (0: none since it joined or reconnected)."""
        return int(self.applied_seq[self._row(player)])

    def acks(self) -> npt.NDArray[np.int64]:
        return self.applied_seq

    def ack_map(self) -> dict[int, int]:
        """Every player's ``ack`` (as ``ack``), player id -> seq: one conversion a tick for all updates."""
        return dict(zip(self.players.tolist(), self.applied_seq.tolist()))

    def surplus_map(self) -> dict[int, int]:
        """The players whose queue holds more than its depth at the last commit: player id -> surplus (each
        update's ``surplus``; most ticks none: an empty dict)."""
        rows = np.flatnonzero(self.surplus)
        if not rows.size:
            return {}
        return dict(zip(self.players[rows].tolist(), self.surplus[rows].tolist()))

    def queue_stats(self, player: int) -> dict[str, Any]:
        """The player's queue: ``queued``, ``depth`` (the target), ``surplus``, ``lag``, ``starved``, ``dropped``,
        ``stale``, ``skipped``."""
        r = self._row(player)
        return {"queued": int(self.queued[r]), "depth": int(self.depth[r]), "surplus": int(self.surplus[r]),
                "lag": int(self.lag[r]), "starved": int(self.starved[r]), "dropped": int(self.dropped[r]),
                "stale": int(self.stale[r]), "skipped": int(self.skipped[r])}

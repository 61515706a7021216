"""Players' inputs as arrays: the current input per player and the newest pending one.

Messages write into the pending row as they arrive; at the tick boundary
``commit()`` moves every pending row into the current inputs at once and
returns the batch the ruleset steps with, in ascending player-id order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from game.rules import InputBatch


class InputTable:
    """Rows of int16 inputs, one per player, kept in ascending player-id order."""

    def __init__(self, fields: int) -> None:
        self.fields = fields
        self.players = np.zeros(0, dtype=np.int32)
        self.current = np.zeros((0, fields), dtype=np.int16)
        self.pending = np.zeros((0, fields), dtype=np.int16)
        self.has_pending = np.zeros(0, dtype=bool)
        self.pending_seq = np.zeros(0, dtype=np.int64)
        #: The sequence number of the input applied last, per player (0: none yet).
        self.applied_seq = np.zeros(0, dtype=np.int64)
        self._row: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.players)

    def __contains__(self, player: int) -> bool:
        return player in self._row

    def add(self, players: Sequence[int]) -> None:
        """Add players with a neutral (all-zero) input, keeping player-id order."""
        if not players:
            return
        new = np.asarray(players, dtype=np.int32)
        if any(int(p) in self._row for p in new):
            raise ValueError("player already in the input table")
        at = np.searchsorted(self.players, new)
        n = len(new)
        self.players = np.insert(self.players, at, new)
        self.current = np.insert(self.current, at, np.zeros((n, self.fields), np.int16), axis=0)
        self.pending = np.insert(self.pending, at, np.zeros((n, self.fields), np.int16), axis=0)
        self.has_pending = np.insert(self.has_pending, at, False)
        self.pending_seq = np.insert(self.pending_seq, at, 0)
        self.applied_seq = np.insert(self.applied_seq, at, 0)
        self._reindex()

    def remove(self, players: Sequence[int]) -> None:
        if not players:
            return
        rows = [self._row[p] for p in players]
        for name in ("players", "current", "pending", "has_pending", "pending_seq", "applied_seq"):
            setattr(self, name, np.delete(getattr(self, name), rows, axis=0))
        self._reindex()

    def _reindex(self) -> None:
        self._row = {int(p): i for i, p in enumerate(self.players)}

    def submit(self, player: int, seq: int, values: tuple[int, ...]) -> None:
        """Record ``values`` as the player's newest input (replacing any not yet applied)."""
        row = self._row[player]
        self.pending[row] = values
        self.pending_seq[row] = seq
        self.has_pending[row] = True

    def neutral(self, player: int) -> None:
        """Queue an all-zero input (a player who disconnected stops moving and firing)."""
        row = self._row[player]
        self.pending[row] = 0
        self.pending_seq[row] = self.applied_seq[row]
        self.has_pending[row] = True

    def restart(self, player: int) -> None:
        """A new connection took over the player: its ``seq`` numbering starts again (ack 0)."""
        row = self._row[player]
        self.applied_seq[row] = 0
        self.pending_seq[row] = 0
        self.has_pending[row] = False

    def commit(self) -> InputBatch:
        """Apply every pending input; the batch of current inputs for this tick."""
        if self.has_pending.any():
            m = self.has_pending
            self.current[m] = self.pending[m]
            self.applied_seq[m] = self.pending_seq[m]
            self.has_pending[:] = False
        return InputBatch(self.players.copy(), self.current.copy())

    def ack(self, player: int) -> int:
        return int(self.applied_seq[self._row[player]])

    def acks(self) -> npt.NDArray[np.int64]:
        return self.applied_seq

"""The input track: the table of players' inputs a replay records, and its per-tick codec.

The input table has one row per player in the match (int32 ids, ascending)
and one int16 value per input field, then (format version 2, a header with
``lag_max``) one more: the player's lag, the ticks its shots are
lag-compensated by; it persists from tick to tick. The
recorder and every reader keep an ``InputTrack`` and move it the same way
each tick: leaves remove rows, joins add rows of zeros, then the tick's
input change (``encode_inputs`` / ``apply_inputs``, mirror images) sets
values, or replaces the whole table when its players differ from what the
leaves and joins predict. REPLAY.md, *Tick*, is the normative description;
the changed cells are a row set (``server/protocol/rowset.py``, shared with
the wire's deltas).

Pure: numpy only, bytes and arrays in and out. This runs on the tick (the
recorder encodes every tick): no Python loop per player. A malformed change
raises ``ValueError`` (``RowSetError`` is one); the reader turns it into
``CorruptReplay``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from attrs import define, field

from game.rules import InputBatch
from server.protocol.rowset import array_from, decode_cells, decode_rows, encode_cells

#: Forms of a tick record's input change: changed cells, or the whole table.
INPUTS_DELTA, INPUTS_FULL = 0, 1


def input_dtype(lo: int, hi: int) -> np.dtype[Any]:
    """How an input field's values are stored: int8, uint8 or int16 LE, the first that holds [lo, hi]."""
    if -128 <= lo and hi <= 127:
        return np.dtype("i1")
    if 0 <= lo and hi <= 255:
        return np.dtype("u1")
    return np.dtype("<i2")


@define
class InputTrack:
    """The input table as a replay sees it: int32 (P,) ascending player ids, int16 (P, F) values.

    The recorder and every reader keep one and move it tick by tick the same
    way: leaves remove rows, joins add all-zero rows, then the tick's input
    change sets values (or replaces the whole table).

    Attributes:
        fields: the table's columns: the input fields, and the lag when ``lagged``.
        lagged: the last column is each player's lag (``InputBatch.lag``), not an input field.
    """

    fields: int
    lagged: bool = False
    players: npt.NDArray[np.int32] = field(init=False)
    values: npt.NDArray[np.int16] = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.players = np.zeros(0, np.int32)
        self.values = np.zeros((0, self.fields), np.int16)

    def membership(self, leaves: Sequence[int], joins: Sequence[tuple[int, str]]) -> None:
        if leaves:
            keep = ~np.isin(self.players, np.asarray(leaves, np.int32))
            self.players, self.values = self.players[keep], self.values[keep]
        if joins:
            new = np.asarray([p for p, _ in joins], np.int32)
            players = np.concatenate([self.players, new])
            order = np.argsort(players, kind="stable")
            values = np.concatenate([self.values, np.zeros((len(new), self.fields), np.int16)])
            self.players, self.values = players[order], values[order]

    def batch(self) -> InputBatch:
        if self.lagged:
            return InputBatch(self.players.copy(), self.values[:, :-1].copy(), self.values[:, -1].copy())
        return InputBatch(self.players.copy(), self.values.copy())

    def copy(self) -> InputTrack:
        out = InputTrack(self.fields, self.lagged)
        out.players, out.values = self.players.copy(), self.values.copy()
        return out


def batch_arrays(batch: InputBatch, fields: int, lagged: bool = False) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int16]]:
    """A batch's players int32 (P,) and its table rows int16 (P, fields): the values, then the lag when
    ``lagged`` (``fields`` counts it), whatever shape an empty batch has."""
    players = batch.players.astype(np.int32, copy=False)
    values = batch.values.astype(np.int16, copy=False)
    nf = fields - lagged
    if values.shape != (len(players), nf):
        values = values.reshape(len(players), nf)
    if lagged:
        values = np.concatenate([values, batch.lag.astype(np.int16).reshape(-1, 1)], axis=1)
    return players, values


def encode_inputs(dtypes: Sequence[np.dtype[Any]], track: InputTrack, batch: InputBatch) -> list[Any] | None:
    """The change taking ``track`` (after this tick's membership) to ``batch``; None when equal.

    ``[INPUTS_DELTA, [rows format, rows], [[field, selection or nil, values], ...]]``
    when the players are the same, ``[INPUTS_FULL, players, values]`` otherwise.
    """
    players, values = batch_arrays(batch, len(dtypes), track.lagged)
    # Byte comparisons: the common "nothing changed" answer costs well under a microsecond.
    if players.tobytes() != track.players.tobytes():
        return [INPUTS_FULL, players.astype("<i4").tobytes(), values.astype("<i2").tobytes()]
    if values.tobytes() == track.values.tobytes():
        return None
    cells = encode_cells((values != track.values).T)
    assert cells is not None  # the bytes differ
    rows, changed = cells
    return [INPUTS_DELTA, rows, [[f, sel, values[which, f].astype(dtypes[f]).tobytes()] for f, sel, which in changed]]


def apply_inputs(dtypes: Sequence[np.dtype[Any]], track: InputTrack, change: Any) -> None:
    """Apply an input change (``encode_inputs``' output, decoded) to ``track``. ValueError when malformed."""
    if change is None:
        return
    if not isinstance(change, list) or not change:
        raise ValueError("inputs: expected an array")
    nf = len(dtypes)
    if change[0] == INPUTS_FULL and len(change) == 3:
        players = array_from(change[1], "<i4", None, "inputs players").astype(np.int32)
        values = array_from(change[2], "<i2", len(players) * nf, "inputs values").astype(np.int16).reshape(len(players), nf)
        if len(players) > 1 and np.any(np.diff(players) <= 0):
            raise ValueError("inputs: players must ascend")
        track.players, track.values = players, values
        return
    if change[0] != INPUTS_DELTA or len(change) != 3:
        raise ValueError("inputs: unknown form")
    rows = decode_rows(change[1], len(track.players), "inputs rows")
    values = track.values.copy()
    for f, which, entry in decode_cells(rows, change[2], nf, 3, "inputs"):
        values[which, f] = array_from(entry[2], dtypes[f], len(which), f"inputs field {f}")
    track.values = values

"""Filtered views (interest management), encoded once per grid cell and base, not once per client.

PROTOCOL.md, *Filtered views*, is the normative description. In a match
whose ruleset options ask for it (``view`` > 0: ``game.schema.VIEW_OPTIONS``)
each player receives only its **view**: the entities whose position lies in
a grid cell that the circle (or rectangle) around its own entity touches,
plus the entities of the kinds its ruleset marks always relevant, and the
events placed in those cells (``ViewGrid.event_cells``) or always relevant.
A client that says it can (``hello.interest``) gets filtered updates
(``ViewEncoder.frames``): entering the view is an ``add`` for that client,
leaving it a ``gone``; ``sum`` is the view sum of what it holds. One that
does not gets ordinary updates of the same view (``ViewEncoder.plain_frames``,
one encode per client: the compatibility path).

Sharing: every part of a filtered update is a concatenation, over the
client's cells in ascending order, of byte segments encoded once per cell:
per tick (a cell's entities as records, for a client that did not have the
cell at its base; a cell's ids, for one that drops it) or per (base, tick)
(the cell's leavers, entrants and changes). ``ViewEncoder.frames`` finds each
client's cells, picks the segments and gathers them with numpy, for all
clients at once: no Python loop per entity or per cell, one short step per
client to frame its bytes. Clients that share a base share the segments.

``reference_body`` encodes one client's update directly from the two
snapshots (each entity classified on its own), ``reference_events`` picks its
events one by one: the definitions the vectorized encoder is tested against,
and the audit's (``server.replay.audit``: a recorded match re-simulated gives
back every frame each client was sent, ``reference_frame`` and
``reference_plain_frame``).
``apply_view`` is the client's side.

Glossary (this module):

- **cell**: a square of the grid over the arena, ``ViewShape.cell`` world
  units a side, numbered ``cy * ncx + cx``; one more cell, ``ViewGrid.always``,
  holds the always-relevant entities and is in every view.
- **view**: the cells a client receives at a tick (``ViewGrid.view_pairs``).
- **stayer**: an entity present at the base and now, in the same cell.
- **view sum**: ``view_sum``, the checksum of a filtered state.

Pure: numpy, msgpack and the protocol's own modules.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import msgpack
import numpy as np
import numpy.typing as npt
from attrs import frozen

from game.motion import extrapolate
from game.schema import RulesetSpec
from server.protocol.codec import encode_update_prefix, finish_update
from server.protocol.delta import Array, Snapshot, WireSchema, encode_body, same_ids
from server.protocol.errors import InvalidField
from server.protocol.history import SNAP, SnapshotHistory
from server.protocol.rowset import RowSetError, array_from

I64 = npt.NDArray[np.int64]
U32 = npt.NDArray[np.uint32]
Idx = npt.NDArray[np.intp]
#: Cell numbers of entities.
Cells = npt.NDArray[np.int32]

#: Change codes, two bits per column in a change record's mask.
SAME, D8, D16, ABS = 0, 1, 2, 3
#: The view sum's per-entity mixing (FNV-1a's prime, then murmur3's finalizer).
FNV_PRIME = 0x01000193
_M32 = 0xFFFFFFFF
_U4 = np.dtype("<u4")
_U8 = np.dtype(np.uint8)
#: An entity's group (``ViewGrid.groups``): in the same cell at the base and now, in one of the 8
#: neighbours (1-8: ``_NEIGHBOURS``, the offset of the base's cell from now's), or anywhere else.
SAME_CELL, ELSEWHERE = 0, 9
_NEIGHBOURS = [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0)]
_GROUP_OF = np.zeros(9, dtype=np.int8)  # by (dy + 1) * 3 + dx + 1
for _g, (_dx, _dy) in enumerate(_NEIGHBOURS, 1):
    _GROUP_OF[(_dy + 1) * 3 + _dx + 1] = _g
#: Bases whose binning is kept from tick to tick (older ones are binned again when a client needs them).
KEEP_BINNED = 4
#: ``Binned.find`` searches among the ids themselves when they hold more than one run of consecutive ids in this many.
RUNS_PER_ID = 8
#: The automatic cell side, as a fraction of the view's half-width (``view_cell`` 0).
AUTO_CELL_DIVISOR = 2


# -- the view ---------------------------------------------------------------------------


@frozen
class ViewShape:
    """What a filtered client sees around its entity, in world units.

    Attributes:
        half_w: the circle's radius, or the rectangle's half-width.
        half_h: the rectangle's half-height; 0 for a circle.
        cell: the grid's cell side.
    """

    half_w: int
    half_h: int
    cell: int

    @classmethod
    def from_options(cls, options: Mapping[str, int]) -> ViewShape | None:
        """The shape the options ``view``, ``view_h`` and ``view_cell`` give; None when ``view`` is 0 (or absent)."""
        half_w = int(options.get("view", 0))
        if half_w <= 0:
            return None
        half_h = int(options.get("view_h", 0))
        cell = int(options.get("view_cell", 0)) or max(1, -(-max(half_w, half_h) // AUTO_CELL_DIVISOR))
        return cls(half_w, half_h, cell)

    @property
    def round(self) -> bool:
        return self.half_h == 0

    def to_wire(self) -> dict[str, Any]:
        """``welcome.interest``."""
        if self.round:
            return {"shape": "circle", "radius": self.half_w, "cell": self.cell}
        return {"shape": "rect", "half_w": self.half_w, "half_h": self.half_h, "cell": self.cell}


class ViewGrid:
    """The grid over one match's arena, and which cells a view touches.

    Args:
        spec: the match's spec (``RulesetSpec.resolve``d: its arena's size).
        shape: the view.

    Raises:
        ValueError: the ruleset has no position columns to place entities by, or
            they have different scales.
    """

    def __init__(self, spec: RulesetSpec, shape: ViewShape) -> None:
        self.shape = shape
        self.schema = WireSchema.from_spec(spec)
        names = self.schema.names()
        xname, yname = (spec.player.x, spec.player.y) if spec.player is not None else ("x", "y")
        if xname not in names or yname not in names:
            raise ValueError(f"{spec.name}: filtered views need replicated position columns ({xname!r}, {yname!r})")
        self.xi, self.yi = names.index(xname), names.index(yname)
        cx, cy = self.schema.columns[self.xi], self.schema.columns[self.yi]
        if cx.scale != cy.scale:
            raise ValueError(f"{spec.name}: filtered views need position columns of one scale, not {cx.scale} and {cy.scale}")
        #: Cell side in each position column's units.
        self.csx, self.csy = shape.cell * cx.scale, shape.cell * cy.scale
        #: View half-extents in column units.
        self.rx, self.ry = shape.half_w * cx.scale, (shape.half_h or shape.half_w) * cy.scale
        self.ncx = max(1, -(-spec.width // shape.cell))
        self.ncy = max(1, -(-spec.height // shape.cell))
        #: The cell of the always-relevant entities; cells number ``always + 1``.
        self.always = self.ncx * self.ncy
        self.ncells = self.always + 1
        self.kind_i = names.index("kind") if "kind" in names and spec.always_relevant else None
        kinds = np.zeros(256, dtype=np.bool_)
        for k in spec.always_relevant:
            kinds[spec.kinds.index(k)] = True
        self._relevant = kinds
        self.relevant_events = frozenset(spec.always_relevant_events)
        #: Per group, how its entities' cell at the base is numbered from their cell now (groups 1-8).
        self.shift = np.array([0] + [dy * self.ncx + dx for dx, dy in _NEIGHBOURS] + [0], dtype=np.int64)
        # Cell offsets a view may reach around its centre's cell.
        self._reach_x = -(-self.rx // self.csx)
        self._reach_y = -(-self.ry // self.csy)

    def cells(self, snap: Snapshot) -> Cells:
        """The cell of each entity of ``snap`` (int32 (N,)): its position's, clamped to the grid."""
        x, y = snap.cols[self.xi], snap.cols[self.yi]
        # In int32: a division by a scalar of the same type is a multiplication (int64's is ten times slower),
        # and half intp's memory (callgrind: converting it when it indexes costs less than the larger arrays).
        cx = np.floor_divide(x, self.csx, dtype=np.int32, casting="unsafe")
        cy = np.floor_divide(y, self.csy, dtype=np.int32, casting="unsafe")
        np.clip(cx, 0, self.ncx - 1, out=cx)
        np.clip(cy, 0, self.ncy - 1, out=cy)
        cy *= np.int32(self.ncx)
        cy += cx
        cell: Cells = cy
        if self.kind_i is not None:
            kind = snap.cols[self.kind_i]
            cell[self._relevant[kind.astype(np.intp) & 0xFF]] = self.always
        return cell

    def event_cells(self, events: Sequence[Any], places: Sequence[Sequence[tuple[int, int]]]) -> tuple[Idx, I64]:
        """Where each event belongs: the always cell for a kind the ruleset marks always relevant, else the cells
        of its positions (``places[i]``, column units; an event without one belongs nowhere).

        Returns:
            ``(event, cell)``: intp and int64 (K,), distinct pairs in ascending (event, cell) order.
        """
        ev: list[int] = []
        xs: list[int] = []
        ys: list[int] = []
        always = []
        for i, e in enumerate(events):
            if e[0] in self.relevant_events:
                always.append(i)
            elif i < len(places):
                for x, y in places[i]:
                    ev.append(i)
                    xs.append(x)
                    ys.append(y)
        at_x, at_y = np.array(xs, dtype=np.int64), np.array(ys, dtype=np.int64)
        cell = np.clip(at_y // self.csy, 0, self.ncy - 1) * self.ncx + np.clip(at_x // self.csx, 0, self.ncx - 1)
        key = np.unique(np.concatenate([np.array(ev, dtype=np.int64) * self.ncells + cell,
                                        np.array(always, dtype=np.int64) * self.ncells + self.always]))
        return (key // self.ncells).astype(np.intp), key % self.ncells

    def view_pairs(self, px: I64, py: I64, has: npt.NDArray[np.bool_]) -> tuple[Idx, I64]:
        """The cells of the views centred at ``(px, py)`` (column units, int64 (Q,)).

        A view holds the cells its circle (``(dx² + dy²) <= r²``, with ``dx,
        dy`` the distances from the centre to the cell's nearest position) or
        rectangle (``dx <= half_w``, ``dy <= half_h``) touches, and the always
        cell; a centre without a position (``has`` False) only the always cell.

        Returns:
            ``(q, cell)``: intp (K,) view indices, ascending, and int64 (K,)
            cells, ascending within each view.
        """
        n = len(px)
        ox = np.arange(-self._reach_x, self._reach_x + 1, dtype=np.int64)
        oy = np.arange(-self._reach_y, self._reach_y + 1, dtype=np.int64)
        x, y = px[:, None], py[:, None]
        gx = np.clip(x // self.csx, 0, self.ncx - 1) + ox[None, :]  # (Q, W)
        gy = np.clip(y // self.csy, 0, self.ncy - 1) + oy[None, :]  # (Q, H)
        # Distance from the centre to the cell's nearest position, per axis (0 inside it).
        dx = np.maximum(np.maximum(gx * self.csx - x, x - (gx + 1) * self.csx + 1), 0)
        dy = np.maximum(np.maximum(gy * self.csy - y, y - (gy + 1) * self.csy + 1), 0)
        okx = (gx >= 0) & (gx < self.ncx) & has[:, None]
        oky = (gy >= 0) & (gy < self.ncy)
        if self.shape.round:
            dx[~okx] = self.rx + 1
            dy[~oky] = self.ry + 1
            inside = dx[:, None, :] ** 2 + dy[:, :, None] ** 2 <= self.rx * self.rx  # (Q, H, W): x fastest
        else:
            inside = ((dx <= self.rx) & okx)[:, None, :] & ((dy <= self.ry) & oky)[:, :, None]
        keys = gy[:, :, None] * self.ncx + gx[:, None, :]
        w = inside.shape[1] * inside.shape[2]
        # The always cell (the largest number) as one more column of every view: order holds, no sort.
        inside = np.concatenate([inside.reshape(n, w), np.ones((n, 1), dtype=np.bool_)], axis=1)
        keys = np.concatenate([keys.reshape(n, w), np.full((n, 1), self.always, dtype=np.int64)], axis=1)
        q = np.broadcast_to(np.arange(n, dtype=np.intp)[:, None], inside.shape)
        return q[inside], keys[inside]

    def groups(self, before: Cells, now: Cells) -> npt.NDArray[np.int8]:
        """Where entities were, seen from where they are: each one's cell at the base (``before``) and now
        (``now``), -1 where absent; its group (``SAME_CELL``, 1-8 for the neighbour cell it came from, whose
        number is ``now + self.shift[group]``, or ``ELSEWHERE``: farther, or came, or went, or to or from
        the always cell)."""
        g = np.full(len(now), ELSEWHERE, dtype=np.int8)
        both = (before >= 0) & (now >= 0)
        g[both & (before == now)] = SAME_CELL
        spatial = both & (before != now) & (before != self.always) & (now != self.always)
        b, n = before[spatial].astype(np.int64), now[spatial].astype(np.int64)
        dx, dy = b % self.ncx - n % self.ncx, b // self.ncx - n // self.ncx
        near = (np.abs(dx) <= 1) & (np.abs(dy) <= 1)
        g[np.flatnonzero(spatial)[near]] = _GROUP_OF[(dy[near] + 1) * 3 + dx[near] + 1]
        return g

    def view_of(self, snap: Snapshot, entity: int | None) -> I64:
        """The cells (ascending) of the view of ``entity`` in ``snap`` (one view: tests, the reference)."""
        px, py, has = centres(snap, self, np.array([-1 if entity is None else entity], dtype=np.int64))
        return self.view_pairs(px, py, has)[1]


def centres(snap: Snapshot, grid: ViewGrid, entities: I64) -> tuple[I64, I64, npt.NDArray[np.bool_]]:
    """Positions (int64 (Q,)) of ``entities`` in ``snap``, and whether each is there (-1: none)."""
    ids = snap.ids
    n = len(ids)
    if n == 0:
        z = np.zeros(len(entities), dtype=np.int64)
        return z, z.copy(), np.zeros(len(entities), dtype=np.bool_)
    # Searched as ids of the snapshot's dtype (-1 wraps past every id): an int64 key would make numpy convert
    # every id to int64 first, a pass over the world (60 µs a tick at E=100,000) for a few hundred centres.
    want = entities.astype(ids.dtype)
    pos = np.minimum(np.searchsorted(ids, want), n - 1)
    has = (ids[pos] == want) & (entities >= 0)
    return snap.cols[grid.xi][pos].astype(np.int64), snap.cols[grid.yi][pos].astype(np.int64), has


# -- the view sum -----------------------------------------------------------------------


def entity_hashes(ids: npt.NDArray[np.uint32], cols: Sequence[Array]) -> U32:
    """Each entity's hash (uint32 (N,)): ``h = id``, then per column ``h = (h ^ v) * FNV_PRIME``, then fmix32.

    ``v`` is the column's value as uint32 (two's complement for signed columns).
    """
    prime = np.uint32(FNV_PRIME)
    h: U32 = np.empty(len(ids), dtype=np.uint32)
    acc: npt.NDArray[Any] = ids  # the first column is mixed into the ids (not into a copy of them), the rest into h
    for c in cols:
        v = c.view(np.uint32) if c.dtype.itemsize == 4 else c  # 32-bit values' bits as they are: no cast
        np.bitwise_xor(acc, v, out=h, dtype=np.uint32, casting="unsafe")  # v as uint32: two's complement
        np.multiply(h, prime, out=h)
        acc = h
    if acc is ids:
        h[...] = ids
    t = np.empty_like(h)  # one scratch array for the shifts, not a new one each
    for shift, mult in ((16, 0x85EBCA6B), (13, 0xC2B2AE35), (16, None)):
        np.right_shift(h, np.uint32(shift), out=t)
        np.bitwise_xor(h, t, out=h)
        if mult is not None:
            np.multiply(h, np.uint32(mult), out=h)
    return h


def view_sum(ids: npt.NDArray[np.uint32], cols: Sequence[Array]) -> int:
    """The view sum of a state: its entities' hashes added modulo 2**32 (0 when empty)."""
    return int(entity_hashes(ids, cols).sum(dtype=np.uint64)) & _M32


# -- records -----------------------------------------------------------------------------


def record_dtype(schema: WireSchema) -> np.dtype[Any]:
    """An ``add`` record: the id (uint32) and every column, packed little-endian."""
    return np.dtype([("id", _U4)] + [(f"c{i}", c.dtype) for i, c in enumerate(schema.columns)])


def records(schema: WireSchema, ids: npt.NDArray[np.uint32], cols: Sequence[Array]) -> npt.NDArray[np.uint8]:
    """The ``add`` records of these entities, as bytes (uint8 (N * width,))."""
    out = np.empty(len(ids), dtype=record_dtype(schema))
    out["id"] = ids
    for i, c in enumerate(cols):
        out[f"c{i}"] = c
    return out.view(_U8)


def mask_width(ncols: int) -> int:
    """Bytes of a change record's mask: two bits per column."""
    return (2 * ncols + 7) // 8


def encode_changes(schema: WireSchema, actual: Sequence[Array], predicted: Sequence[Array]
                   ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], I64]:
    """Change records' masks and values for rows whose values are ``actual`` where the client predicts ``predicted``.

    Per column and row: ``SAME`` when equal; else for a column of one byte its
    value (``ABS``), else the difference ``actual - predicted`` as int8
    (``D8``) when it fits, as int16 (``D16``) for a column wider than two
    bytes when that fits, else the value (``ABS``).

    Returns:
        masks uint8 (n * mask_width,), values uint8 (all rows' values, row after
        row), and each row's value bytes int64 (n,).
    """
    ncols = len(schema.columns)
    n = len(actual[0]) if ncols else 0
    if n == 0:
        return np.zeros(0, dtype=_U8), np.zeros(0, dtype=_U8), np.zeros(0, dtype=np.int64)
    # Column by column, and only those where some row differs (a redraw of velocities: 2 or 4 of drift's 7):
    # the others are SAME in every row, no value bytes, 0 in the mask. (A (rows, columns, 8) array of every
    # value's bytes, picked by a mask, took 4-9 times as long: BENCHMARKS.md, *Interest management*.)
    packed = np.zeros(n, dtype=np.int64)
    row_bytes = np.zeros(n, dtype=np.int64)
    parts = []
    for j, (a, p) in enumerate(zip(actual, predicted)):
        ne = a != p
        if not ne.any():
            continue
        item = schema.columns[j].dtype.itemsize
        av = a.astype(np.int64)
        if item == 1:  # a byte: its value
            code, size, val = ne * ABS, ne.astype(np.int64), av
        else:
            d = av - p.astype(np.int64)
            code = np.full(n, ABS, dtype=np.int64)
            fits8 = (d >= -128) & (d <= 127)
            code[fits8] = D8
            if item > 2:
                code[~fits8 & (d >= -32768) & (d <= 32767)] = D16
            code[~ne] = SAME
            absolute = code == ABS
            size, val = np.where(absolute, item, code), np.where(absolute, av, d)
        packed |= code << (2 * j)
        row_bytes += size
        parts.append((size, val))
    # Each value's little-endian bytes (a difference's, or the value's in two's complement), the first
    # ``size`` of them, after the row's earlier columns'.
    at = np.cumsum(row_bytes) - row_bytes
    values = np.empty(int(row_bytes.sum()), dtype=_U8)
    for size, val in parts:
        for k in range(int(size.max())):
            w = np.flatnonzero(size > k)
            values[at[w] + k] = (val[w] >> (8 * k)).astype(_U8)
        at += size
    masks = (packed[:, None] >> (8 * np.arange(mask_width(ncols), dtype=np.int64))).astype(_U8).reshape(-1)
    return masks, values, row_bytes


def decode_changes(schema: WireSchema, count: int, masks: Any, values: Any) -> tuple[I64, I64]:
    """Mirror image of ``encode_changes``: each record's code (int64 (count, columns)) and value or
    difference (int64 (count, columns); 0 where the code is ``SAME``).

    Raises:
        InvalidField: masks or values of the wrong size, an unused mask bit set.
    """
    ncols, mw = len(schema.columns), mask_width(len(schema.columns))
    try:
        m = array_from(masks, _U8, count * mw, "chg masks").reshape(count, mw).astype(np.int64)
        raw = array_from(values, _U8, None, "chg values")
    except RowSetError as exc:
        raise InvalidField(str(exc)) from None
    packed = (m << (8 * np.arange(mw, dtype=np.int64))).sum(axis=1)
    if np.any(packed >> (2 * ncols)):
        raise InvalidField("chg masks: bits set past the last column")
    code = (packed[:, None] >> (2 * np.arange(ncols, dtype=np.int64))) & 3
    items = np.array([c.dtype.itemsize for c in schema.columns], dtype=np.int64)
    signed = np.array([c.dtype.kind == "i" for c in schema.columns], dtype=np.bool_)
    sizes = np.where(code == ABS, items, code)
    if int(sizes.sum()) != len(raw):
        raise InvalidField(f"chg values: {len(raw)} bytes where the masks say {int(sizes.sum())}")
    starts = (np.cumsum(sizes.reshape(-1)) - sizes.reshape(-1)).reshape(count, ncols)
    take = np.arange(8) < sizes[:, :, None]
    padded = np.zeros((count, ncols, 8), dtype=_U8)
    padded[take] = raw[(starts[:, :, None] + np.arange(8))[take]]
    u = padded.view("<i8").reshape(count, ncols)
    bits = 8 * sizes
    # Sign-extend differences, and the values of signed columns, from their size.
    extend = (code != ABS) | signed[None, :]
    top = np.where(extend & (bits > 0) & (bits < 64), np.left_shift(1, np.maximum(bits - 1, 0)), 0)
    return code, (u ^ top) - top


# -- one snapshot binned ---------------------------------------------------------------------


class Binned:
    """A snapshot's entities by cell: each one's cell; counts, sums and sorting on demand.

    ``cell_sums`` (the current tick's) and ``rows_of`` (its entities by cell)
    are computed when first asked for; a snapshot that serves only as a base
    needs neither. ``rows_of`` the cells given to ``pick`` first (a tick's
    keyframes and the cells its clients gain or lose: a few hundred
    entities) costs one pass over the world, not a sort of it.

    Attributes:
        snap: the snapshot.
        cell: int32 (N,), each entity's cell.
    """

    def __init__(self, grid: ViewGrid, snap: Snapshot, prev: Binned | None = None) -> None:
        self.grid = grid
        self.snap = snap
        self.cell = grid.cells(snap)
        self._order: Idx | None = None
        self._starts: I64 | None = None
        self._counts: I64 | None = None
        #: ``pick``'s cells (bool (ncells,)), and their entities' order, counts and starts as ``_sorted``'s.
        self._picked: tuple[npt.NDArray[np.bool_], Idx, I64, I64] | None = None
        #: When ``prev`` (the tick before's binning) holds the same ids, row for row: the rows whose cell
        #: changed since (ascending), what ``movers`` is, and that snapshot.
        self.moved: Idx | None = None
        self.moved_since: Snapshot | None = None
        #: The ids' runs of consecutive values (``find``), shared with ``prev`` when it has the same ids array.
        self._runs: tuple[I64, I64] | None = prev._runs if prev is not None and prev.snap.ids is snap.ids else None
        if prev is not None and prev.tick == snap.tick - 1 and same_ids(prev.snap.ids, snap.ids):
            self.moved = np.flatnonzero(prev.cell != self.cell)
            self.moved_since = prev.snap

    @property
    def tick(self) -> int:
        return self.snap.tick

    def find(self, want: U32) -> tuple[Idx, npt.NDArray[np.bool_]]:
        """The rows of the ids ``want`` (ascending) and whether each is there (its row is then meaningless).

        By the ids' runs of consecutive values: an id's row is its run's first row plus its distance from
        the run's first id, one search among a few runs (the NPCs' ids and the players', and one run more
        for each hole a leaver left) instead of one among every id (+1 ms a tick at E=100,000 once a player
        left: BENCHMARKS.md, *Interest management*); ids mostly apart: a search among the ids.
        """
        ids = self.snap.ids
        if len(ids) == 0:
            return np.zeros(len(want), dtype=np.intp), np.zeros(len(want), dtype=np.bool_)
        if self._runs is None:
            rows = np.concatenate([[0], np.flatnonzero(ids[1:] != ids[:-1] + np.uint32(1)) + 1]).astype(np.int64)
            self._runs = (ids[rows].astype(np.int64), rows)
        first_id, first_row = self._runs
        if len(first_row) * RUNS_PER_ID > len(ids):
            return _rows(ids, want)
        w = want.astype(np.int64)
        run = np.maximum(np.searchsorted(first_id, w, side="right") - 1, 0)
        row = first_row[run] + (w - first_id[run])
        end = np.append(first_row[1:], len(ids))[run]
        found = (row >= first_row[run]) & (row < end)
        return np.where(found, row, 0).astype(np.intp), found

    def cell_sums(self) -> npt.NDArray[np.uint64]:
        """Each cell's entity hashes summed modulo 2**32 (uint64 (ncells,)): every entity hashed (picking out
        those of the cells views look at first costs more in gathers than it saves: they hold most of them),
        then added into its cell's sum (``np.add.at`` in uint32, which wraps as the sum does: half the time
        of a gather in the cell order and ``reduceat``, a seventh of a ``bincount`` with float weights)."""
        out = np.zeros(self.grid.ncells, dtype=np.uint32)
        if len(self.cell):
            np.add.at(out, self.cell, entity_hashes(self.snap.ids, self.snap.cols))
        return out.astype(np.uint64)

    def _sorted(self) -> tuple[Idx, I64, I64]:
        """The rows sorted by (cell, id), each cell's count and its first position in that order.

        Every entity is sorted by cell once (kept for all the ticks the snapshot serves as a base), cheaper
        than picking a few cells' entities out of the world at each call: each row's cell and row packed in
        one uint32 (``cell << bits | row``: ids ascend with rows, so the row breaks ties as a stable sort
        would) and sorted, a third of the time of numpy's radix ``argsort`` of 16-bit cells (0.24 against
        0.85 ms at E=100,000), which remains for grids too large to pack. (Deriving the order from the tick
        before's, moving only the entities that changed cell, took fewer instructions but more time:
        BENCHMARKS.md, *Interest management*.)
        """
        if self._order is None or self._starts is None or self._counts is None:
            n, ncells = len(self.cell), self.grid.ncells
            bits = max(1, (n - 1).bit_length())  # rows < 2**bits
            if ncells <= 1 << (32 - bits):
                key = self.cell.astype(np.uint32) << np.uint32(bits)
                key |= np.arange(n, dtype=np.uint32)
                key.sort()
                key &= np.uint32((1 << bits) - 1)
                self._order = key.astype(np.intp)
            else:
                self._order = np.argsort(self.cell.astype(np.uint16) if ncells <= 1 << 16 else self.cell, kind="stable")
            self._counts = np.bincount(self.cell, minlength=ncells)
            self._starts = np.cumsum(self._counts) - self._counts
        return self._order, self._counts, self._starts

    def pick(self, cells: I64) -> None:
        """Make ``rows_of`` any of ``cells`` (int64, ascending, unique) cheap: their entities picked out of the
        world by one pass (each entity's cell looked up in a table of them) and sorted by cell, instead of
        every entity sorted by cell (``_sorted``: 0.5 ms a tick at E=100,000, 500 players, where a tick's
        clients gain and lose some 150 cells, 1,650 entities: BENCHMARKS.md, *Interest management*)."""
        if self._order is not None:
            return
        table = np.zeros(self.grid.ncells, dtype=np.bool_)
        table[cells] = True
        rows = np.flatnonzero(table.take(self.cell))
        cell = self.cell[rows]
        counts = np.bincount(cell, minlength=self.grid.ncells)
        self._picked = (table, rows[np.argsort(cell, kind="stable")], counts, np.cumsum(counts) - counts)

    def rows_of(self, cells: I64) -> tuple[Idx, I64]:
        """The rows of every entity in ``cells`` (ascending, unique), sorted by (cell, id), and each cell's first
        (from ``pick``'s index when it holds every one of ``cells``, else from ``_sorted``)."""
        picked = self._picked
        if picked is not None and self._order is None and picked[0][cells].all():
            _, order, all_counts, starts = picked
        else:
            order, all_counts, starts = self._sorted()
        counts = all_counts[cells]
        return order[_expand(starts[cells], counts)], np.cumsum(counts) - counts

    def records_of(self, cells: I64) -> tuple[npt.NDArray[np.uint8], I64]:
        """The ``add`` records of every entity in ``cells``, cell after cell, and each cell's first byte."""
        rows, first = self.rows_of(cells)
        snap = self.snap
        width = record_dtype(self.grid.schema).itemsize
        return records(self.grid.schema, snap.ids[rows], [c[rows] for c in snap.cols]), first * width


def _expand(start: I64, count: I64) -> I64:
    """``concatenate([arange(s, s + c) for s, c in zip(start, count)])``, vectorized."""
    total = int(count.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(count) - count
    out: I64 = np.arange(total, dtype=np.int64) + np.repeat(start - first, count)
    return out


def _run_starts(key: npt.NDArray[Any]) -> Idx:
    """Where each run of equal values of ``key`` (sorted) starts (int, ascending)."""
    if not len(key):
        return np.zeros(0, dtype=np.intp)
    return np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))


def _group_order(rows: Idx, cells: Cells, groups: npt.NDArray[np.int8]) -> tuple[Idx, I64]:
    """``rows`` (ascending) ordered by (cell, group, row), and their keys ``cell * 10 + group`` in that order:
    one sort of the keys packed with each one's position (``key << 22 | position``, a stable order: a
    half of ``np.lexsort``'s time for a few thousand), a stable ``argsort`` past 2**22 rows or 2**41 keys."""
    key = cells[rows].astype(np.int64) * 10 + groups[rows]
    n = len(rows)
    if n >= 1 << 22 or n and int(key.max()) >= 1 << 41:
        order: Idx = np.argsort(key, kind="stable")
    else:
        packed = key << 22
        packed |= np.arange(n, dtype=np.int64)
        packed.sort()
        order = (packed & ((1 << 22) - 1)).astype(np.intp)
    return rows[order], key[order]


class _Groups:
    """Entities by (cell, group) in one buffer: ``keys`` (int64, ascending: ``cell * 10 + group``), and
    per key where its entities' bytes start and how many, per part (``at[part]``, ``size[part]``)."""

    def __init__(self, keys: I64, counts: I64, widths: dict[str, I64]) -> None:
        self.keys = keys
        self.at: dict[str, I64] = {}
        self.size: dict[str, I64] = {}
        first = np.cumsum(counts) - counts
        for part, row_bytes in widths.items():  # bytes of each entity, in key order
            prefix = np.zeros(len(row_bytes) + 1, dtype=np.int64)
            np.cumsum(row_bytes, out=prefix[1:])
            self.at[part] = prefix[first]
            self.size[part] = prefix[first + counts] - prefix[first]

    @classmethod
    def of(cls, key: I64, widths: dict[str, I64]) -> _Groups:
        """Groups of entities given by their keys (``_group_order``'s, ascending)."""
        first = _run_starts(key)
        return cls(key[first], np.diff(np.append(first, len(key))).astype(np.int64), widths)

    def find(self, key: I64) -> tuple[Idx, npt.NDArray[np.bool_]]:
        """Each key's group, and whether it has one."""
        return _rows(self.keys, key)  # type: ignore[arg-type]

    def in_cells(self, cells: I64) -> tuple[Idx, Idx]:
        """For each of ``cells``: the groups of that cell with a group above ``SAME_CELL`` (expanded:
        (index into ``cells``, group index))."""
        lo = np.searchsorted(self.keys, cells * 10 + 1)
        hi = np.searchsorted(self.keys, cells * 10 + 10)
        n = hi - lo
        return np.repeat(np.arange(len(cells)), n), _expand(lo, n)


class BaseDelta:
    """What a base's clients are owed, cell by cell and group by group (``ViewGrid.groups``).

    ``add`` holds the records of the entities that moved into a cell (a group
    above ``SAME_CELL``, by (cell, group, id)): an entrant, for a client that
    did not hold the cell it came from; ``chg`` the change records of the
    entities that stayed in their cell or moved to a neighbour and differ from
    the base extrapolated (``cid``, ``cmask``, ``cval``); ``gone`` the ids of
    the entities that left a cell (for a client that does not hold where they
    went), by (cell, group, id). ``add0`` and ``gone0``: for the cells given as
    ``new`` and ``dropped``, the records and ids of their entities that stayed
    (what a client that gains the cell, or loses it, gets of it).

    Args:
        suspects: ids (uint32, ascending) outside which no entity can differ
            from its extrapolation (``surprises`` since the base); None:
            compare them all.
        moves: the entities not in the same cell at the base and now, with
            both cells (``movers`` since the base); None: compare them all.
        need_t, need_b: bool (ncells,): the cells now and at the base of the
            views of the base's clients; only theirs are encoded.
    """

    def __init__(self, grid: ViewGrid, base: Binned, cur: Binned, suspects: U32 | None, moves: Moves | None,
                 need_t: npt.NDArray[np.bool_], need_b: npt.NDArray[np.bool_], new: I64, dropped: I64) -> None:
        schema, b, c = grid.schema, base.snap, cur.snap
        if moves is None or suspects is None:
            in_c, in_b = _common(b.ids, c.ids)
            moves = _moves(base, cur, _moved(base, cur, in_c, in_b))
            suspects = (c.ids if in_b is None else c.ids[in_b]).astype(np.uint32)
        wanted_t, wanted_b = np.append(need_t, False), np.append(need_b, False)  # [-1]: absent
        cb, ct = moves.before, moves.after
        moving = cb != ct
        self.moved = moves.ids[moving]  # (came back to its cell: stayed)
        # Only those leaving or entering a cell the base's clients look at.
        seen = np.flatnonzero(moving & (wanted_b[cb] | wanted_t[ct]))
        ids, cb, ct = moves.ids[seen], cb[seen], ct[seen]
        g = grid.groups(cb, ct)
        # Entrants and leavers, by (cell, group, id).
        into, key = _group_order(np.flatnonzero(wanted_t[ct]), ct, g)
        rc = cur.find(ids[into])[0]
        width = record_dtype(schema).itemsize
        self.add = records(schema, ids[into], [col[rc] for col in c.cols])
        self.entrants = _Groups.of(key, {"add": np.full(len(into), width, dtype=np.int64)})
        out, key = _group_order(np.flatnonzero(wanted_b[cb]), cb, g)
        self.gone = ids[out].astype(_U4).view(_U8)
        self.leavers = _Groups.of(key, {"gone": np.full(len(out), 4, dtype=np.int64)})
        # Changes: the suspects that stayed or moved next door, by (cell, group, id).
        sc, hs = cur.find(suspects)
        sb, hsb = base.find(suspects)
        s_ct = np.where(hs, _at(cur.cell, sc), -1).astype(np.int32)
        look = np.flatnonzero(hs & hsb & wanted_t[s_ct])  # there then and now, in a cell looked at
        sc, sb, s_ct = sc[look], sb[look], s_ct[look]
        s_g = grid.groups(_at(base.cell, sb), s_ct)
        cand = np.flatnonzero(s_g != ELSEWHERE)
        st, bst = sc[cand], sb[cand]
        predicted = _predicted(schema, b, bst, c.tick)
        actual = [col[st] for col in c.cols]
        diff = np.zeros(len(st), dtype=np.bool_)
        for act, pred in zip(actual, predicted):
            diff |= act != pred
        ch, key = _group_order(np.flatnonzero(diff), s_ct[cand], s_g[cand])
        masks, self.cval, row_bytes = encode_changes(schema, [x[ch] for x in actual], [x[ch] for x in predicted])
        self.cid = c.ids[st[ch]].astype(_U4).view(_U8)
        self.cmask = masks
        mw = mask_width(len(schema.columns))
        self.changes = _Groups.of(key, {
            "cid": np.full(len(ch), 4, dtype=np.int64), "cmask": np.full(len(ch), mw, dtype=np.int64),
            "cval": row_bytes})
        # What stayed in the cells clients gain (records) or lose (ids). An entity that stayed is in the same
        # cell at the base and now, so both are found among the current tick's entities (``cur.pick``ed).
        self.add0, self.add0_at = self._stayed(cur, new, width, lambda rows: records(schema, c.ids[rows], [col[rows] for col in c.cols]))
        self.gone0, self.gone0_at = self._stayed(cur, dropped, 4, lambda rows: c.ids[rows].astype(_U4).view(_U8))

    def _stayed(self, cur: Binned, cells: I64, width: int,
                encode: Callable[[Idx], npt.NDArray[np.uint8]]) -> tuple[npt.NDArray[np.uint8], I64]:
        """The entities of ``cells`` that did not move since the base (rows of ``cur``, ``encode``d, cell after
        cell), and each cell's first byte (int64 (len(cells) + 1,))."""
        rows, first = cur.rows_of(cells)
        cell_of = np.repeat(np.arange(len(cells)), np.diff(np.append(first, len(rows))))
        if len(self.moved):
            stay = ~_isin_sorted(cur.snap.ids[rows].astype(np.int64), self.moved.astype(np.int64))
            rows, cell_of = rows[stay], cell_of[stay]
        at = np.zeros(len(cells) + 1, dtype=np.int64)
        np.cumsum(np.bincount(cell_of, minlength=len(cells)) * width, out=at[1:])
        return encode(rows), at


def _rows(ids: U32, want: U32) -> tuple[Idx, npt.NDArray[np.bool_]]:
    """The rows of ``want`` in ``ids`` (both ascending) and whether each is there (its row is then meaningless)."""
    n = len(ids)
    if n == 0:
        return np.zeros(len(want), dtype=np.intp), np.zeros(len(want), dtype=np.bool_)
    if int(ids[-1]) == n - 1:  # ids 0..n-1 (ascending, distinct): an id is its row
        found = want < n
        return np.where(found, want, 0).astype(np.intp), found
    at = np.minimum(np.searchsorted(ids, want), n - 1)
    return at, ids[at] == want


def _at(values: Cells, rows: Idx) -> Cells:
    """``values[rows]``, -1 for every row when ``values`` is empty (``_rows`` of nothing)."""
    return values[rows] if len(values) else np.full(len(rows), -1, dtype=np.int32)


class Moves(NamedTuple):
    """Entities not in the same cell at two ticks (moved to another cell, came or went): ids (uint32,
    ascending), and each one's cell at the first tick and at the last (int32, -1: absent). Every other
    entity of either tick is in the same cell at both, and at every tick between them."""

    ids: U32
    before: Cells
    after: Cells

    @classmethod
    def union(cls, moves: Sequence[Moves]) -> Moves:
        """The moves over consecutive spans of ticks (in their order), as one: each entity's cell before the
        first span it moved in, and after the last (its cell did not change in the others)."""
        if len(moves) == 1:
            return moves[0]
        ids = np.concatenate([m.ids for m in moves])
        # A few thousand ids in a few ascending runs: a stable sort (timsort, which merges the runs; the spans
        # stay in order), not a bitmap of E nor np.unique's hash table.
        n = len(ids)
        order = np.argsort(ids, kind="stable")
        key = ids[order]
        first = _run_starts(key)
        last = np.append(first[1:] - 1, n - 1) if n else first
        return cls(ids[order[first]], np.concatenate([m.before for m in moves])[order[first]],
                   np.concatenate([m.after for m in moves])[order[last]])


def movers(prev: Binned, cur: Binned) -> Moves:
    """The entities not in the same cell at both ticks, with their cells (``Moves``)."""
    if cur.moved is not None and cur.moved_since is prev.snap:  # found when ``cur`` was binned, rows alike
        rows = cur.moved
        return Moves(cur.snap.ids[rows].astype(np.uint32), prev.cell[rows], cur.cell[rows])
    return _moves(prev, cur, _moved(prev, cur, *_common(prev.snap.ids, cur.snap.ids)))


def _moves(prev: Binned, cur: Binned, ids: U32) -> Moves:
    """``Moves`` of ``ids`` (``_moved``'s) between two binned ticks: each one's cells looked up."""
    rb, hb = prev.find(ids)
    rc, hc = cur.find(ids)
    return Moves(ids, np.where(hb, _at(prev.cell, rb), -1).astype(np.int32),
                 np.where(hc, _at(cur.cell, rc), -1).astype(np.int32))


def _moved(prev: Binned, cur: Binned, in_cur: npt.NDArray[np.bool_] | None, in_prev: npt.NDArray[np.bool_] | None) -> U32:
    """``movers`` from the rows of each snapshot whose id the other holds (``_common``)."""
    p_ids, c_ids = prev.snap.ids, cur.snap.ids
    if in_cur is None and in_prev is None:
        moved: U32 = c_ids[prev.cell != cur.cell].astype(np.uint32)
        return moved
    p_cell = prev.cell if in_cur is None else prev.cell[in_cur]
    c_both = c_ids if in_prev is None else c_ids[in_prev]
    c_cell = cur.cell if in_prev is None else cur.cell[in_prev]
    came = c_ids[~in_prev] if in_prev is not None else c_ids[:0]
    went = p_ids[~in_cur] if in_cur is not None else p_ids[:0]
    out: U32 = np.union1d(c_both[p_cell != c_cell], np.concatenate([came, went])).astype(np.uint32)
    return out


def _common(a: U32, b: U32) -> tuple[npt.NDArray[np.bool_] | None, npt.NDArray[np.bool_] | None]:
    """Which rows of ``a`` hold an id that ``b`` holds, and which of ``b`` one of ``a`` (both ascending; None:
    every row). The ids both hold come in the same order in both, so each side's rows pick them out
    with a boolean mask (cheaper than gathering by each id's row). The rows before the first difference
    are in both (most of the world: ids come at the end, and players, who leave, hold the last ones);
    only those after it are looked up."""
    if same_ids(a, b):
        return None, None
    m = min(len(a), len(b))
    differ = np.flatnonzero(a[:m] != b[:m])
    k = int(differ[0]) if len(differ) else m
    a_in = np.isin(a[k:], b[k:], assume_unique=True)
    b_in = np.isin(b[k:], a[k:], assume_unique=True)
    head = np.ones(k, dtype=np.bool_)
    return (None if a_in.all() else np.concatenate([head, a_in]),
            None if b_in.all() else np.concatenate([head, b_in]))


def surprises(schema: WireSchema, prev: Snapshot, cur: Snapshot) -> U32:
    """The ids (ascending) of entities present at both ticks (one apart) whose values now are not
    ``prev``'s extrapolated one tick: nothing else can differ from an extrapolation over many ticks.

    Cheap where the motion rule holds without reflecting (a sum and a
    comparison per axis); the exact rule runs only on the rest.
    """
    in_cur, in_prev = _common(prev.ids, cur.ids)
    rows = None if in_prev is None else np.flatnonzero(in_prev)
    names = schema.names()
    bcols = prev.cols if in_cur is None else tuple(col[in_cur] for col in prev.cols)
    ccols = cur.cols if in_prev is None else tuple(col[in_prev] for col in cur.cols)
    odd = np.zeros(len(ccols[0]) if ccols else 0, dtype=np.bool_)
    moving = set()
    for axis in schema.motion:
        i, v = names.index(axis.pos), names.index(axis.vel)
        moving |= {i, v}
        # In int32 when the walls are well inside its range: a sum that wraps then lands past a wall (as
        # the exact one does), so it is a candidate either way; else in int64.
        narrow = -(2**31) + 256 <= axis.lo and axis.hi <= 2**31 - 256
        work, unsigned = (np.int32, np.uint32) if narrow else (np.int64, np.uint64)
        p = np.add(bcols[i], bcols[v], dtype=work, casting="unsafe")
        odd |= p != ccols[i]
        # Past a wall (p < lo or p > hi) in one comparison: p - lo, unsigned (wrapping), above hi - lo.
        if axis.lo:
            np.subtract(p, axis.lo, out=p, dtype=work, casting="unsafe")
        odd |= np.greater(p.view(unsigned), axis.hi - axis.lo)
        odd |= bcols[v] != ccols[v]
    for j, (bc, cc) in enumerate(zip(bcols, ccols)):
        if j not in moving:
            odd |= bc != cc
    cand = np.flatnonzero(odd)
    predicted = _predicted(schema, Snapshot(prev.tick, prev.ids, bcols), cand, cur.tick)
    diff = np.zeros(len(cand), dtype=np.bool_)
    for p_, cc in zip(predicted, ccols):
        diff |= p_ != cc[cand]
    rows_cur = cand[diff] if rows is None else rows[cand[diff]]
    return cur.ids[rows_cur].astype(np.uint32)


def _predicted(schema: WireSchema, base: Snapshot, rows: Idx, tick: int) -> list[Array]:
    """The base's ``rows`` extrapolated to ``tick`` with the motion rule, every column."""
    named = {n: col[rows] for n, col in zip(schema.names(), base.cols)}
    moved = extrapolate(schema.motion, named, tick - base.tick)
    return [moved[n] for n in schema.names()]


# -- the encoder -------------------------------------------------------------------------------


#: A filtered update's keys in the order the server writes them.
_KEYS = {k: msgpack.packb(k) for k in ("t", "tick", "base", "gone", "chg", "add", "sum", "ev", "ack")}
#: The parts of a filtered update's body, in the order they travel (``chg``'s three in its array).
_PARTS = ("gone", "cid", "cmask", "cval", "add")


class ViewEncoder:
    """Filtered updates for a tick, for many clients at once, sharing every cell's segments.

    Call ``begin`` with each tick's snapshot (it must also be in ``history``,
    where the bases are looked up), then ``frames`` once with the filtered
    clients.
    """

    def __init__(self, grid: ViewGrid, history: SnapshotHistory) -> None:
        self.grid = grid
        self.history = history
        self._binned: OrderedDict[int, Binned] = OrderedDict()
        #: Per tick, ``surprises`` since the tick before (kept for the history's ticks).
        self._surprises: OrderedDict[int, U32] = OrderedDict()
        #: Per tick, ``movers`` since the tick before (kept for the history's ticks).
        self._movers: OrderedDict[int, Moves] = OrderedDict()
        #: Per tick, the views of the entities of that tick's frames (``_keep_views``).
        self._views: OrderedDict[int, tuple[I64, I64, I64, I64]] = OrderedDict()
        self._cur: Snapshot | None = None
        #: This tick's events, each packed once, and where they belong (``ViewGrid.event_cells``).
        self._events: list[bytes] = []
        self._wire_events: list[Any] = []
        self._event_cells: tuple[Idx, I64] | None = None
        #: Views as ordinary states (``view_state``), by (tick, entity), for ``plain_frames``.
        self._plain: OrderedDict[tuple[int, int], tuple[Snapshot, Snapshot]] = OrderedDict()
        #: Encodes of the current tick: binnings and per-base cell deltas.
        self.encodes = 0

    def begin(self, snapshot: Snapshot, events: Sequence[Any], places: Sequence[Sequence[tuple[int, int]]] = ()) -> None:
        """A new tick: ``snapshot`` is what this tick's updates bring clients to, ``events`` (wire form) what
        happened in it, each at the positions ``places[i]`` (column units; ``Event.at``)."""
        self._cur = snapshot
        self._events = [msgpack.packb(e) for e in events]
        self._wire_events = list(events)
        for key in [k for k in self._plain if k[0] <= snapshot.tick - KEEP_BINNED]:
            del self._plain[key]
        self._event_cells = self.grid.event_cells(events, places) if events else None
        self.encodes = 0

    def _client_events(self, tq: Idx, tc: I64) -> tuple[Idx, Idx]:
        """Which events the views ``(tq, tc)`` receive: (client, event) pairs, distinct, in ascending order (an
        event in two cells of a view once, events in their order)."""
        if self._event_cells is None:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
        ev, cell = self._event_cells
        order = np.argsort(cell, kind="stable")
        counts = np.bincount(cell, minlength=self.grid.ncells)
        starts = np.cumsum(counts) - counts
        cnt = counts[tc]
        some = cnt > 0
        q = np.repeat(tq[some].astype(np.int64), cnt[some])
        e = ev[order][_expand(starts[tc[some]], cnt[some])]
        nev = len(self._events)
        key = np.unique(q * nev + e)
        return (key // nev).astype(np.intp), (key % nev).astype(np.intp)

    def _binned_at(self, snap: Snapshot) -> Binned:
        got = self._binned.get(snap.tick)
        if got is None or got.snap is not snap:
            prev = self._binned.get(snap.tick - 1)
            if prev is not None and prev.snap is not self.history.get(snap.tick - 1):
                prev = None
            got = Binned(self.grid, snap, prev)
            self.encodes += 1
            self._binned[snap.tick] = got
            self._binned.move_to_end(snap.tick)
            # Keep what may still serve as a base: the last few ticks, and the anchors (history.py).
            newest = max(self._binned)
            for t in [t for t in self._binned if t <= newest - KEEP_BINNED
                      and (t % SNAP or t <= newest - self.history.size)]:
                del self._binned[t]
        return got

    def _tick_facts(self, cur: Snapshot) -> None:
        """What changed since the tick before, once per tick: ``surprises`` and ``movers``."""
        t = cur.tick
        prev = self.history.get(t - 1)
        if t in self._surprises or prev is None:
            return
        self._surprises[t] = surprises(self.grid.schema, prev, cur)
        self._movers[t] = movers(self._binned_at(prev), self._binned_at(cur))
        while len(self._surprises) > self.history.size:
            self._surprises.popitem(last=False)
        while len(self._movers) > self.history.size:
            self._movers.popitem(last=False)

    def _surprises_since(self, base: int, tick: int) -> U32 | None:
        """The union of ``surprises`` over the ticks after ``base`` up to ``tick``, or None if one is missing."""
        found = [self._surprises.get(t) for t in range(base + 1, tick + 1)]
        if any(f is None for f in found):
            return None
        if len(found) == 1:
            return found[0]
        # A few thousand ids: sorted and deduplicated, neither a bitmap of E nor np.unique's hash table.
        ids = np.sort(np.concatenate([f for f in found if f is not None]))
        out: U32 = ids[np.append(True, ids[1:] != ids[:-1])] if len(ids) else ids
        return out

    def _movers_since(self, base: int, tick: int) -> Moves | None:
        """``movers`` from ``base`` to ``tick`` (``Moves.union`` of each tick's), or None if one is missing."""
        found = [self._movers.get(t) for t in range(base + 1, tick + 1)]
        return None if any(f is None for f in found) else Moves.union([f for f in found if f is not None])

    def frames(self, entities: Sequence[int | None] | I64, bases: Sequence[int | None] | I64,
               acks: Sequence[int] | I64) -> list[bytes]:
        """One update frame per client: its entity (-1 or None: none), its base tick (-1 or None: a keyframe)
        and its ``ack``, each an array (or sequence) with one value per client.

        A base must be a tick the history still holds, before the current one.
        """
        cur_snap = self._cur
        if cur_snap is None:
            raise RuntimeError("frames() before begin()")
        ent = _ints(entities)
        base_of = _ints(bases)
        n = len(ent)
        if n == 0:
            return []
        grid = self.grid
        cur = self._binned_at(cur_snap)
        self._tick_facts(cur_snap)

        # Every client's view now: (client, cell) pairs, in (client, cell) order; kept for the ticks after.
        px, py, has = centres(cur_snap, grid, ent)
        tq, tc = grid.view_pairs(px, py, has)
        self._keep_views(cur_snap.tick, ent, tq, tc)
        kt = tq.astype(np.int64) * grid.ncells + tc
        src = _Sources()
        pieces: dict[str, list[tuple[I64, I64, I64]]] = {k: [] for k in _PARTS}  # (sort key, source, length)

        def piece(parts: tuple[str, ...], q: Idx, cell: I64, group: I64 | int, at: dict[str, I64],
                  size: dict[str, I64], offset: dict[str, int]) -> None:
            key = (q.astype(np.int64) * grid.ncells + cell) * 10 + group
            for part in parts:
                pieces[part].append((key, at[part] + offset[part], size[part]))

        # Per base: the clients' views then, which cells they keep, gain (``new``) and lose (``dropped``).
        plans = []
        for b in np.unique(base_of[base_of >= 0]).tolist():
            base_snap = self.history.get(b)
            if base_snap is None or b >= cur_snap.tick:
                raise ValueError(f"base {b} is not a tick the history holds before {cur_snap.tick}")
            mine = base_of[tq] == b
            q_t, c_t = tq[mine], tc[mine]
            bq, bc = self._views_at(base_snap, ent, np.flatnonzero(base_of == b))
            kb = bq.astype(np.int64) * grid.ncells + bc
            kept = _isin_sorted(kt[mine], kb)  # cells held then and wanted now
            still = _isin_sorted(kb, kt)
            plans.append((b, base_snap, q_t, c_t, bq, bc, kb, kept, still, np.unique(c_t[~kept]), np.unique(bc[~still])))
        # The cells whose entities are needed whole (keyframes', and the cells gained or lost), picked out at once.
        key_t = base_of[tq] < 0
        key_cells = np.unique(tc[key_t])
        cur.pick(np.unique(np.concatenate([key_cells, *(p[-2] for p in plans), *(p[-1] for p in plans)])))

        # Keyframes: every entity of every cell of the view, as records.
        if key_t.any():
            recs, first = cur.records_of(key_cells)
            o = src.add(recs)
            k = np.searchsorted(key_cells, tc[key_t])
            ends = np.append(first[1:], len(recs))
            piece(("add",), tq[key_t], tc[key_t], 0, {"add": first[k]}, {"add": ends[k] - first[k]}, {"add": o})

        # Per base: what each cell owes its clients.
        for b, base_snap, q_t, c_t, bq, bc, kb, kept, still, new, dropped in plans:
            base = self._binned_at(base_snap)
            need_t = np.zeros(grid.ncells, dtype=np.bool_)
            need_t[c_t] = True
            need_b = np.zeros(grid.ncells, dtype=np.bool_)
            need_b[bc] = True
            d = BaseDelta(grid, base, cur, self._surprises_since(b, cur_snap.tick),
                          self._movers_since(b, cur_snap.tick), need_t, need_b, new, dropped)
            self.encodes += 1
            off = {"add": src.add(d.add), "gone": src.add(d.gone), "cid": src.add(d.cid), "cmask": src.add(d.cmask),
                 "cval": src.add(d.cval)}
            chg = ("cid", "cmask", "cval")
            # A cell held then and wanted now: what stayed and changed.
            gi, found = d.changes.find(c_t[kept] * 10 + SAME_CELL)
            piece(chg, q_t[kept][found], c_t[kept][found], SAME_CELL, {p: d.changes.at[p][gi[found]] for p in chg},
                  {p: d.changes.size[p][gi[found]] for p in chg}, off)
            # A cell gained: what stayed in it, as records; a cell lost: the ids of what stayed in it.
            k = np.searchsorted(new, c_t[~kept])
            o0 = src.add(d.add0)
            piece(("add",), q_t[~kept], c_t[~kept], SAME_CELL, {"add": d.add0_at[k]},
                  {"add": d.add0_at[k + 1] - d.add0_at[k]}, {"add": o0})
            k = np.searchsorted(dropped, bc[~still])
            o0 = src.add(d.gone0)
            piece(("gone",), bq[~still], bc[~still], SAME_CELL, {"gone": d.gone0_at[k]},
                  {"gone": d.gone0_at[k + 1] - d.gone0_at[k]}, {"gone": o0})
            # Entrants: kept by a client that held the cell they came from (their changes), else added.
            i, gi = d.entrants.in_cells(c_t)
            if len(i):
                q, cell, grp = q_t[i], c_t[i], d.entrants.keys[gi] % 10
                came = cell + grid.shift[grp]
                held = (grp != ELSEWHERE) & _isin_sorted(q.astype(np.int64) * grid.ncells + came, kb)
                piece(("add",), q[~held], cell[~held], grp[~held], {"add": d.entrants.at["add"][gi[~held]]},
                      {"add": d.entrants.size["add"][gi[~held]]}, off)
                ci, found = d.changes.find(cell[held] * 10 + grp[held])
                piece(chg, q[held][found], cell[held][found], grp[held][found],
                      {p: d.changes.at[p][ci[found]] for p in chg}, {p: d.changes.size[p][ci[found]] for p in chg}, off)
            # Leavers: gone for a client that does not want the cell they went to.
            i, gi = d.leavers.in_cells(bc)
            if len(i):
                q, cell, grp = bq[i], bc[i], d.leavers.keys[gi] % 10
                went = cell - grid.shift[grp]
                lost = (grp == ELSEWHERE) | ~_isin_sorted(q.astype(np.int64) * grid.ncells + went, kt)
                piece(("gone",), q[lost], cell[lost], grp[lost], {"gone": d.leavers.at["gone"][gi[lost]]},
                      {"gone": d.leavers.size["gone"][gi[lost]]}, off)

        segs = {}
        for part in _PARTS:
            key = np.concatenate([k for k, _, _ in pieces[part]]) if pieces[part] else np.zeros(0, np.int64)
            order = np.argsort(key)
            segs[part] = ((key[order] // 10 // grid.ncells).astype(np.intp),
                          np.concatenate([a for _, a, _ in pieces[part]])[order] if pieces[part] else key,
                          np.concatenate([z for _, _, z in pieces[part]])[order] if pieces[part] else key)
        # Events: each packed once, gathered into the arrays of the clients whose views hold one of its cells.
        eq, ei = self._client_events(tq, tc)
        ev_len = np.array([len(e) for e in self._events], dtype=np.int64)
        ev_at = src.add(np.frombuffer(b"".join(self._events), dtype=_U8)) + np.cumsum(ev_len) - ev_len
        segs["ev"] = (eq, ev_at[ei], ev_len[ei])
        sums = np.bincount(tq, weights=cur.cell_sums()[tc].astype(np.float64), minlength=n).astype(np.int64) & _M32
        return self._frame_all(cur_snap.tick, base_of, _ints(acks), sums, np.bincount(eq, minlength=n), src, segs)

    def plain_frames(self, entities: Sequence[int | None] | I64, bases: Sequence[int | None] | I64,
                     acks: Sequence[int] | I64) -> list[tuple[bytes, bool]]:
        """Ordinary updates (PROTOCOL.md, *Updates*) of each client's view, for clients that did not say they can
        apply filtered ones; arguments as ``frames``. Each frame comes with whether it is a keyframe: an
        ordinary delta adds only ids above every id its base holds, so when an older entity enters the view
        the update is a keyframe of the view (``plain_base``). One encode per (entity, base), in a loop over
        the clients: a compatibility path, not the fast one.
        """
        cur = self._cur
        if cur is None:
            raise RuntimeError("plain_frames() before begin()")
        ent, base_of, ack = _ints(entities), _ints(bases), _ints(acks)
        tq, tc = self.grid.view_pairs(*centres(cur, self.grid, ent))
        eq, ei = self._client_events(tq, tc)
        starts = np.searchsorted(eq, np.arange(len(ent) + 1))
        prefixes: dict[tuple[int, int], tuple[bytes, bool]] = {}
        out = []
        for i, (e, b, a) in enumerate(zip(ent.tolist(), base_of.tolist(), ack.tolist())):
            got = prefixes.get((e, b))
            if got is None:
                now = self.view_state(cur, e)
                base_snap = self.history.get(b) if b >= 0 else None
                before = None if base_snap is None else self.view_state(base_snap, e)
                events = [self._wire_events[j] for j in ei[starts[i]:starts[i + 1]].tolist()]
                tick_b = plain_base(before, now)
                body = encode_body(self.grid.schema, None if tick_b is None else before, now)
                got = prefixes[(e, b)] = (encode_update_prefix(cur.tick, tick_b, body, now.checksum, events), tick_b is None)
            out.append((finish_update(got[0], a), got[1]))
        return out

    def view_state(self, snap: Snapshot, entity: int) -> Snapshot:
        """The entities of ``entity``'s view at ``snap`` (-1: none), ascending, with the ordinary checksum (the
        CRC-32): what ``plain_frames`` sends; kept for the ticks after, where it is a base."""
        key = (snap.tick, entity)
        got = self._plain.get(key)
        if got is not None and got[0] is snap:
            return got[1]
        binned = self._binned_at(snap)
        rows = np.sort(binned.rows_of(self.grid.view_of(snap, None if entity < 0 else entity))[0])
        state = Snapshot.of(snap.tick, snap.ids[rows], [c[rows] for c in snap.cols])
        self._plain[key] = (snap, state)
        return state

    def _keep_views(self, tick: int, ent: I64, q: Idx, cells: I64) -> None:
        """Remember this tick's views by entity, for the clients whose base it becomes."""
        order = np.argsort(ent, kind="stable")
        counts = np.bincount(q, minlength=len(ent))
        starts = np.cumsum(counts) - counts
        self._views[tick] = (ent[order], starts[order], counts[order], cells)
        while len(self._views) > KEEP_BINNED:
            self._views.popitem(last=False)

    def _views_at(self, snap: Snapshot, ent: I64, who: Idx) -> tuple[Idx, I64]:
        """The views at ``snap``'s tick of the clients ``who`` (ascending): (client, cell) pairs in that order.

        Taken from that tick's frames where the entity got one then (the same view), else computed.
        """
        grid = self.grid
        kept = self._views.get(snap.tick)
        if kept is not None and len(kept[0]):
            ents, starts, counts, cells = kept
            e = ent[who]
            pos = np.minimum(np.searchsorted(ents, e), len(ents) - 1)
            found = ents[pos] == e
            if found.all():
                cnt = counts[pos]
                return np.repeat(who, cnt), cells[_expand(starts[pos], cnt)]
        bx, by, bhas = centres(snap, grid, ent[who])
        bq, bc = grid.view_pairs(bx, by, bhas)
        return who[bq], bc

    def _frame_all(self, tick: int, base_of: I64, acks: I64, sums: I64, events: I64, src: _Sources,
                   segs: dict[str, tuple[Idx, I64, I64]]) -> list[bytes]:
        """Every client's frame, written by one scatter of shared literals, per-client headers and segments.

        A frame is a row of slots: literals (keys, ``head``), per-client
        headers (the map's, each bin's, ``sum``, ``ev``'s array of ``events``
        events, ``ack``: msgpack's shortest forms, written for all clients at
        once) and the parts' segments; a slot of length 0 is left out (an
        empty part: its key and header too).
        """
        n = len(base_of)
        K = _KEYS
        lens = {p: np.bincount(q, weights=ln, minlength=n).astype(np.int64) for p, (q, _, ln) in segs.items()}
        has = {"gone": lens["gone"] > 0, "chg": lens["cid"] > 0, "add": lens["add"] > 0, "ev": events > 0}
        lit = {name: src.add_bytes(data) for name, data in (
            ("head", K["t"] + msgpack.packb("update") + K["tick"] + msgpack.packb(tick) + K["base"]),
            ("gone", K["gone"]), ("chg", K["chg"] + b"\x93"), ("add", K["add"]), ("sum", K["sum"]),
            ("ev", K["ev"]), ("ack", K["ack"]))}
        distinct, bi = np.unique(base_of, return_inverse=True)
        base_lit = np.array([src.add_bytes(msgpack.packb(None if b < 0 else b)) for b in distinct.tolist()], dtype=np.int64)
        # Per-client headers: the map's (1 byte), then 5 bytes for each of gone, cid, cmask, cval, add, sum, ev, ack.
        names = ("gone", "cid", "cmask", "cval", "add", "sum", "ev", "ack")
        fields = np.stack([lens["gone"], lens["cid"], lens["cmask"], lens["cval"], lens["add"], sums, events, acks], axis=1)
        heads, hsize = _msgpack_heads(fields, np.array([_BIN] * 5 + [_UINT, _ARRAY, _UINT]))
        scratch = np.concatenate([(0x80 | (5 + has["ev"] + has["gone"] + has["chg"] + has["add"]))
                                  .astype(_U8)[:, None], heads.reshape(n, -1)], axis=1)
        row = src.add(scratch.reshape(-1)) + scratch.shape[1] * np.arange(n, dtype=np.int64)
        H = {name: (row + 1 + 5 * i, hsize[:, i]) for i, name in enumerate(names)}

        def literal(name: str, on: npt.NDArray[np.bool_] | None = None) -> tuple[I64, I64]:
            at, size = lit[name]
            sizes = np.full(n, size, dtype=np.int64)
            return np.full(n, at, dtype=np.int64), sizes if on is None else np.where(on, sizes, 0)

        def header(name: str, on: npt.NDArray[np.bool_] | None = None) -> tuple[I64, I64]:
            at, size = H[name]
            return at, size if on is None else np.where(on, size, 0)

        # A frame's slots in order: (source, length) per client, or a part's segments (its name).
        slots: list[tuple[I64, I64] | str] = [
            (row, np.ones(n, dtype=np.int64)), literal("head"), (base_lit[bi, 0], base_lit[bi, 1]),
            literal("gone", has["gone"]), header("gone", has["gone"]), "gone",
            literal("chg", has["chg"]), header("cid", has["chg"]), "cid", header("cmask", has["chg"]), "cmask",
            header("cval", has["chg"]), "cval",
            literal("add", has["add"]), header("add", has["add"]), "add",
            literal("sum"), header("sum"), literal("ev", has["ev"]), header("ev", has["ev"]), "ev",
            literal("ack"), header("ack"),
        ]
        fixed = [(j, slot) for j, slot in enumerate(slots) if not isinstance(slot, str)]
        width = np.stack([lens[slot] if isinstance(slot, str) else slot[1] for slot in slots], axis=1)  # (n, slots)
        ends = np.cumsum(width.reshape(-1)).reshape(width.shape)
        at = ends - width  # where each client's slot starts in the output
        js = [j for j, _ in fixed]
        pieces = [(np.stack([slot[0] for _, slot in fixed], axis=1).reshape(-1),
                   at[:, js].reshape(-1), width[:, js].reshape(-1))]
        for j, slot in enumerate(slots):
            if isinstance(slot, str):
                q, lo, ln = segs[slot]
                within = np.cumsum(ln) - ln  # the segment's offset among its client's, by the part's running total
                pieces.append((lo, at[q, j] + within - (np.cumsum(lens[slot]) - lens[slot])[q], ln))
        ln = np.concatenate([pc[2] for pc in pieces])
        some = ln > 0  # most cells owe a client nothing this tick
        ln = ln[some]
        first = np.cumsum(ln) - ln
        step = np.arange(int(ln.sum()), dtype=np.int64)
        out = np.empty(int(ends[-1, -1]), dtype=_U8)
        out[step + np.repeat(np.concatenate([pc[1] for pc in pieces])[some] - first, ln)] = \
            src.joined()[step + np.repeat(np.concatenate([pc[0] for pc in pieces])[some] - first, ln)]
        data = out.tobytes()
        bounds = [0, *ends[:, -1].tolist()]
        return [data[a:b] for a, b in zip(bounds, bounds[1:])]


class _Sources:
    """Buffers that frames' bytes come from, joined once: ``add`` returns where a buffer starts."""

    def __init__(self) -> None:
        self._bufs: list[npt.NDArray[np.uint8]] = []
        self._size = 0

    def add(self, buf: npt.NDArray[np.uint8]) -> int:
        at = self._size
        self._bufs.append(buf)
        self._size += len(buf)
        return at

    def add_bytes(self, data: bytes) -> tuple[int, int]:
        return self.add(np.frombuffer(data, dtype=_U8)), len(data)

    def joined(self) -> npt.NDArray[np.uint8]:
        return np.concatenate(self._bufs) if self._bufs else np.zeros(0, dtype=_U8)


def _ints(values: Sequence[int | None] | I64) -> I64:
    """int64 (N,) of ``values``, None as -1."""
    if isinstance(values, np.ndarray):
        return values.astype(np.int64, copy=False)
    return np.array([-1 if v is None else v for v in values], dtype=np.int64)


#: What ``_msgpack_heads`` writes per column: the unsigned integer, a bin's header, an array's header.
_UINT, _BIN, _ARRAY = 0, 1, 2


def _msgpack_heads(values: I64, kind: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.uint8], I64]:
    """msgpack's shortest headers for many values at once, per column as ``kind`` says: the unsigned integer
    itself (``_UINT``, < 2**32), a bin's length header (``_BIN``) or an array's (``_ARRAY``).

    Returns:
        uint8 (*values.shape, 5), each header's bytes (its first ``size`` used), and int64 sizes.
    """
    v = values
    is_bin, is_array = kind == _BIN, kind == _ARRAY
    size = np.where(is_bin, np.where(v < 256, 2, np.where(v < 65536, 3, 5)),
                    np.where(is_array, np.where(v < 16, 1, np.where(v < 65536, 3, 5)),
                             np.where(v < 128, 1, np.where(v < 256, 2, np.where(v < 65536, 3, 5)))))
    lead = np.where(is_bin, np.where(size == 2, 0xC4, np.where(size == 3, 0xC5, 0xC6)),
                    np.where(is_array, np.where(size == 1, 0x90 | v, np.where(size == 3, 0xDC, 0xDD)),
                             np.where(size == 1, v, np.where(size == 2, 0xCC, np.where(size == 3, 0xCD, 0xCE)))))
    k = np.arange(1, 5, dtype=np.int64)
    width = (size - 1)[..., None]  # big-endian bytes after the lead
    be = np.where(k <= width, (v[..., None] >> np.maximum(8 * (width - k), 0)) & 0xFF, 0)
    return np.concatenate([lead[..., None], be], axis=-1).astype(_U8), size


def _isin_sorted(a: I64, b: I64) -> npt.NDArray[np.bool_]:
    """Which of ``a`` are in ``b`` (int64, ``b`` ascending)."""
    if len(b) == 0:
        return np.zeros(len(a), dtype=np.bool_)
    pos = np.minimum(np.searchsorted(b, a), len(b) - 1)
    found: npt.NDArray[np.bool_] = b[pos] == a
    return found


# -- the client's side ----------------------------------------------------------------------------


FILTERED_KEYS = ("gone", "chg", "add")


def apply_view(schema: WireSchema, base: Snapshot | None, tick: int, body: dict[str, Any]) -> Snapshot:
    """The filtered state at ``tick`` from ``base`` (None: a keyframe) and a filtered update's ``gone``, ``chg``, ``add``.

    Order: extrapolate the base to ``tick``, remove ``gone``, apply ``chg``,
    insert ``add`` (ids kept ascending). The snapshot's ``checksum`` is the
    view sum of the result, computed: compare it with the update's ``sum``.

    Raises:
        InvalidField: a part that does not decode, or does not fit the base.
    """
    try:
        return _apply_view(schema, base, tick, body)
    except RowSetError as exc:
        raise InvalidField(str(exc)) from None


def _apply_view(schema: WireSchema, base: Snapshot | None, tick: int, body: dict[str, Any]) -> Snapshot:
    names = schema.names()
    if base is None:
        ids: npt.NDArray[np.uint32] = np.zeros(0, _U4)
        cols = [np.zeros(0, c.dtype) for c in schema.columns]
    else:
        ids = base.ids
        moved = extrapolate(schema.motion, dict(zip(names, base.cols)), tick - base.tick)
        cols = [moved[n] for n in names]
    gone_raw = body.get("gone")
    if gone_raw is not None:
        gone = np.sort(array_from(gone_raw, _U4, None, "gone"))
        if np.any(gone[1:] == gone[:-1]):
            raise InvalidField("gone: an id twice")
        keep = ~np.isin(ids, gone, assume_unique=True)
        if len(ids) - int(np.count_nonzero(keep)) != len(gone):
            raise InvalidField("gone: names ids the client does not hold")
        ids, cols = ids[keep], [c[keep] for c in cols]
    elif base is not None:
        cols = [c.copy() if c is own else c for c, own in zip(cols, base.cols)]  # changes must not touch the base
    chg = body.get("chg")
    if chg is not None:
        if not isinstance(chg, (list, tuple)) or len(chg) != 3:
            raise InvalidField("chg: expected [ids, masks, values]")
        cid = array_from(chg[0], _U4, None, "chg ids")
        if len(ids) == 0 and len(cid):
            raise InvalidField("chg: names ids the client does not hold")
        rows = np.minimum(np.searchsorted(ids, cid), max(len(ids) - 1, 0))
        if len(cid) and (np.any(ids[rows] != cid) or len(np.unique(cid)) != len(cid)):
            raise InvalidField("chg: names ids the client does not hold, or one twice")
        code, value = decode_changes(schema, len(cid), chg[1], chg[2])
        for j, col in enumerate(cols):
            absolute, moved = code[:, j] == ABS, (code[:, j] == D8) | (code[:, j] == D16)
            if absolute.any():
                col[rows[absolute]] = value[absolute, j].astype(col.dtype)
            if moved.any():
                r = rows[moved]
                col[r] = (col[r].astype(np.int64) + value[moved, j]).astype(col.dtype)
    add = body.get("add")
    if add is not None:
        dt = record_dtype(schema)
        recs = array_from(add, dt, None, "add")
        new_ids = recs["id"].astype(_U4)
        merged = np.concatenate([ids, new_ids])
        order = np.argsort(merged, kind="stable")
        merged = merged[order]
        if np.any(merged[1:] == merged[:-1]):
            raise InvalidField("add: an id the client holds, or one twice")
        ids = merged
        cols = [np.concatenate([c, recs[f"c{j}"].astype(c.dtype)])[order] for j, c in enumerate(cols)]
    return Snapshot(tick, ids, tuple(cols), view_sum(ids, cols))


# -- the reference --------------------------------------------------------------------------------


def reference_body(grid: ViewGrid, base: Snapshot | None, cur: Snapshot, entity: int | None) -> dict[str, Any]:
    """One client's filtered update body, computed on its own: the definition ``ViewEncoder`` must match.

    Each entity is classified alone: *held* if its cell at the base is in the
    client's view at the base, *wanted* if its cell now is in the view now,
    *kept* if held and wanted and its group (``ViewGrid.groups``) is not
    ``ELSEWHERE`` (it stayed, or moved to a neighbouring cell). ``gone``: held
    and not kept, sorted by (cell at the base, group, id); ``add``: wanted and
    not kept, sorted by (cell now, group, id), or by (cell, id) in a keyframe;
    ``chg``: kept with values other than the base's extrapolated, sorted by
    (cell now, group, id).
    """
    schema = grid.schema
    cur_cell = grid.cells(cur)
    wanted = np.isin(cur_cell, grid.view_of(cur, entity))
    body: dict[str, Any] = {}
    if base is None:
        a = np.flatnonzero(wanted)
        a = a[np.lexsort((cur.ids[a], cur_cell[a]))]
        if len(a):
            body["add"] = records(schema, cur.ids[a], [c[a] for c in cur.cols]).tobytes()
        return body
    base_cell = grid.cells(base)
    held = np.isin(base_cell, grid.view_of(base, entity))
    # Every entity of either tick, with its cells (-1: absent) and group.
    _, bi, ci = np.intersect1d(base.ids, cur.ids, assume_unique=True, return_indices=True)
    at_b = np.full(len(cur.ids), -1, dtype=np.int32)
    at_b[ci] = base_cell[bi]
    g_now = grid.groups(at_b, cur_cell)  # per current entity
    at_t = np.full(len(base.ids), -1, dtype=np.int32)
    at_t[bi] = cur_cell[ci]
    g_base = grid.groups(base_cell, at_t)  # per base entity
    held_now = np.zeros(len(cur.ids), dtype=np.bool_)
    held_now[ci] = held[bi]
    wanted_base = np.zeros(len(base.ids), dtype=np.bool_)
    wanted_base[bi] = wanted[ci]
    kept = held_now & wanted & (g_now != ELSEWHERE)
    kept_base = held & wanted_base & (g_base != ELSEWHERE)
    g = np.flatnonzero(held & ~kept_base)
    g = g[np.lexsort((base.ids[g], g_base[g], base_cell[g]))]
    if len(g):
        body["gone"] = base.ids[g].astype(_U4).tobytes()
    k = np.flatnonzero(kept)
    k = k[np.lexsort((cur.ids[k], g_now[k], cur_cell[k]))]
    kb = np.searchsorted(base.ids, cur.ids[k])
    predicted = _predicted(schema, base, kb.astype(np.intp), cur.tick)
    actual = [c[k] for c in cur.cols]
    diff = np.zeros(len(k), dtype=np.bool_)
    for act, pred in zip(actual, predicted):
        diff |= act != pred
    if diff.any():
        masks, values, _ = encode_changes(schema, [x[diff] for x in actual], [x[diff] for x in predicted])
        body["chg"] = [cur.ids[k[diff]].astype(_U4).tobytes(), masks.tobytes(), values.tobytes()]
    a = np.flatnonzero(wanted & ~kept)
    a = a[np.lexsort((cur.ids[a], g_now[a], cur_cell[a]))]
    if len(a):
        body["add"] = records(schema, cur.ids[a], [c[a] for c in cur.cols]).tobytes()
    return body


def reference_events(grid: ViewGrid, snap: Snapshot, entity: int | None, events: Sequence[Any],
                     places: Sequence[Sequence[tuple[int, int]]]) -> list[Any]:
    """The events a client of ``entity`` receives at ``snap``'s tick, each judged on its own, in their order:
    those of a kind the ruleset marks always relevant, and those with a position (``places[i]``) in a cell
    of the client's view."""
    view = set(grid.view_of(snap, entity).tolist())
    out = []
    for i, e in enumerate(events):
        if e[0] in grid.relevant_events:
            out.append(e)
            continue
        for x, y in places[i] if i < len(places) else ():
            cx = min(max(x // grid.csx, 0), grid.ncx - 1)
            cy = min(max(y // grid.csy, 0), grid.ncy - 1)
            if cy * grid.ncx + cx in view:
                out.append(e)
                break
    return out


def reference_frame(grid: ViewGrid, base: Snapshot | None, cur: Snapshot, entity: int | None, ack: int,
                    events: Sequence[Any], places: Sequence[Sequence[tuple[int, int]]] = ()) -> bytes:
    """The whole frame ``ViewEncoder`` sends one client, from ``reference_body`` and ``reference_events``:
    what the audit rebuilds."""
    body = reference_body(grid, base, cur, entity)
    sv = reference_state(grid, cur, entity)
    fields: dict[str, Any] = {"t": "update", "tick": cur.tick, "base": None if base is None else base.tick,
                              **{k: body[k] for k in FILTERED_KEYS if k in body}, "sum": sv.checksum}
    mine = reference_events(grid, cur, entity, events, places)
    if mine:
        fields["ev"] = mine
    fields["ack"] = ack
    out: bytes = msgpack.packb(fields)
    return out


def plain_base(before: Snapshot | None, now: Snapshot) -> int | None:
    """The base an ordinary update of a view from ``before`` to ``now`` can have: ``before``'s tick, or None (a
    keyframe) when ``now`` holds an entity that ``before`` did not with an id below one ``before`` holds (an
    ordinary delta's ``new`` ids ascend past every held id)."""
    if before is None:
        return None
    if len(before.ids) and len(now.ids):
        came = now.ids[~_isin_sorted(now.ids.astype(np.int64), before.ids.astype(np.int64))]
        if len(came) and int(came[0]) <= int(before.ids[-1]):
            return None
    return before.tick


def reference_plain_frame(grid: ViewGrid, base: Snapshot | None, cur: Snapshot, entity: int | None, ack: int,
                          events: Sequence[Any], places: Sequence[Sequence[tuple[int, int]]] = ()) -> bytes:
    """The ordinary update of ``entity``'s view (``ViewEncoder.plain_frames``) for one client, computed on its
    own: what the audit rebuilds for a client that did not ask for filtered views."""
    def state(snap: Snapshot) -> Snapshot:
        held = reference_state(grid, snap, entity)
        return Snapshot.of(snap.tick, held.ids, held.cols)  # its checksum: the CRC-32

    now = state(cur)
    before = None if base is None else state(base)
    tick_b = plain_base(before, now)
    body = encode_body(grid.schema, None if tick_b is None else before, now)
    mine = reference_events(grid, cur, entity, events, places)
    return finish_update(encode_update_prefix(cur.tick, tick_b, body, now.checksum, mine), ack)


def reference_state(grid: ViewGrid, snap: Snapshot, entity: int | None) -> Snapshot:
    """What a client of ``entity`` holds at ``snap``'s tick: the entities of its view, with its view sum."""
    wanted = np.isin(grid.cells(snap), grid.view_of(snap, entity))
    ids, cols = snap.ids[wanted], [c[wanted] for c in snap.cols]
    return Snapshot(snap.tick, ids, tuple(cols), view_sum(ids, cols))

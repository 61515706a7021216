"""Filtered views (interest management), encoded once per grid cell and base, not once per client.

PROTOCOL.md, *Filtered views*, is the normative description. In a match
whose ruleset options ask for it (``view`` > 0: ``game.schema.VIEW_OPTIONS``)
each player that says it can (``hello.interest``) receives only its **view**:
the entities whose position lies in a grid cell that the circle (or
rectangle) around its own entity touches, plus the entities of the kinds its
ruleset marks always relevant. Entering the view is an ``add`` for that
client, leaving it a ``gone``; ``sum`` is the view sum of what it holds.

Sharing: every part of a filtered update is a concatenation, over the
client's cells in ascending order, of byte segments encoded once per cell:
per tick (a cell's entities as records, for a client that did not have the
cell at its base; a cell's ids, for one that drops it) or per (base, tick)
(the cell's leavers, entrants and changes). ``ViewEncoder.frames`` finds each
client's cells, picks the segments and gathers them with numpy, for all
clients at once: no Python loop per entity or per cell, one short step per
client to frame its bytes. Clients that share a base share the segments.

``reference_body`` encodes one client's update directly from the two
snapshots (each entity classified on its own): the definition the vectorized
encoder is tested against, and the audit's (``tests/replay``: a recorded
match re-simulated gives back every frame each client was sent).
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
from collections.abc import Mapping, Sequence
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt
from attrs import frozen

from game.motion import extrapolate
from game.schema import RulesetSpec
from server.protocol.delta import Array, Snapshot, WireSchema
from server.protocol.errors import InvalidField
from server.protocol.history import SNAP, SnapshotHistory
from server.protocol.rowset import RowSetError, array_from

I64 = npt.NDArray[np.int64]
U32 = npt.NDArray[np.uint32]
Idx = npt.NDArray[np.intp]

#: Change codes, two bits per column in a change record's mask.
SAME, D8, D16, ABS = 0, 1, 2, 3
#: The view sum's per-entity mixing (FNV-1a's prime, then murmur3's finalizer).
FNV_PRIME = 0x01000193
_M32 = 0xFFFFFFFF
_U4 = np.dtype("<u4")
_U8 = np.dtype(np.uint8)
#: Bases whose binning is kept from tick to tick (older ones are binned again when a client needs them).
KEEP_BINNED = 4
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
        # Cell offsets a view may reach around its centre's cell.
        self._reach_x = -(-self.rx // self.csx)
        self._reach_y = -(-self.ry // self.csy)

    def cells(self, snap: Snapshot) -> npt.NDArray[np.int32]:
        """The cell of each entity of ``snap`` (int32 (N,)): its position's, clamped to the grid."""
        x, y = snap.cols[self.xi], snap.cols[self.yi]
        cx = np.floor_divide(x, self.csx, dtype=np.int32, casting="unsafe")
        cy = np.floor_divide(y, self.csy, dtype=np.int32, casting="unsafe")
        np.clip(cx, 0, self.ncx - 1, out=cx)
        np.clip(cy, 0, self.ncy - 1, out=cy)
        cy *= np.int32(self.ncx)
        cy += cx
        cell: npt.NDArray[np.int32] = cy
        if self.kind_i is not None:
            kind = snap.cols[self.kind_i]
            cell[self._relevant[kind.astype(np.intp) & 0xFF]] = self.always
        return cell

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
    pos = np.minimum(np.searchsorted(ids, entities), n - 1)
    has = (ids[pos] == entities) & (entities >= 0)
    return snap.cols[grid.xi][pos].astype(np.int64), snap.cols[grid.yi][pos].astype(np.int64), has


# -- the view sum -----------------------------------------------------------------------


def entity_hashes(ids: npt.NDArray[np.uint32], cols: Sequence[Array]) -> U32:
    """Each entity's hash (uint32 (N,)): ``h = id``, then per column ``h = (h ^ v) * FNV_PRIME``, then fmix32.

    ``v`` is the column's value as uint32 (two's complement for signed columns).
    """
    h = ids.astype(np.uint32)
    prime = np.uint32(FNV_PRIME)
    for c in cols:
        np.bitwise_xor(h, c, out=h, dtype=np.uint32, casting="unsafe")  # v as uint32: two's complement
        h *= prime
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
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
    items = np.array([c.dtype.itemsize for c in schema.columns], dtype=np.int64)
    act = np.stack([a.astype(np.int64) for a in actual], axis=1)  # (n, columns)
    diff = act - np.stack([p.astype(np.int64) for p in predicted], axis=1)
    code = np.full((n, ncols), ABS, dtype=np.int64)
    code[(diff >= -128) & (diff <= 127) & (items > 1)] = D8
    code[(code == ABS) & (diff >= -32768) & (diff <= 32767) & (items > 2)] = D16
    code[diff == 0] = SAME
    sizes = np.where(code == ABS, items, code)  # SAME 0, D8 1, D16 2, ABS the column's size
    # Each value's little-endian bytes, the first ``size`` of them: a difference's, or the value's (two's complement).
    payload = np.where(code == ABS, act, diff).astype("<i8").view(_U8).reshape(n, ncols, 8)
    values = payload[np.arange(8) < sizes[:, :, None]]
    mw = mask_width(ncols)
    packed = (code << (2 * np.arange(ncols, dtype=np.int64))).sum(axis=1)
    masks = (packed[:, None] >> (8 * np.arange(mw, dtype=np.int64))).astype(_U8).reshape(-1)
    return masks, values, sizes.sum(axis=1)


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
    """A snapshot's entities by cell: each one's cell, and each cell's count and sum.

    The entities sorted by cell (``rows_of``: a cell's entities one by one) are
    sorted when first asked for, once for all the ticks the snapshot serves as
    a base.

    Attributes:
        snap: the snapshot.
        cell: int32 (N,), each entity's cell.
        counts: int64 (ncells,), entities per cell.
        cellsum: uint64 (ncells,), each cell's entity hashes summed modulo 2**32.
    """

    def __init__(self, grid: ViewGrid, snap: Snapshot) -> None:
        self.grid = grid
        self.snap = snap
        self.cell = grid.cells(snap)
        self.counts = np.bincount(self.cell, minlength=grid.ncells)
        sums = np.bincount(self.cell, weights=entity_hashes(snap.ids, snap.cols), minlength=grid.ncells)
        self.cellsum = sums.astype(np.uint64) & np.uint64(_M32)  # exact: at most 2**32 per entity, < 2**53 in all
        self._order: Idx | None = None
        self._starts: I64 | None = None

    @property
    def tick(self) -> int:
        return self.snap.tick

    def rows_of(self, cells: I64) -> tuple[Idx, I64]:
        """The rows of every entity in ``cells`` (ascending, unique), sorted by (cell, id), and each cell's first."""
        if self._order is None or self._starts is None:
            key = self.cell.astype(np.uint16) if self.grid.ncells <= 1 << 16 else self.cell
            self._order = np.argsort(key, kind="stable")  # a radix sort for 16-bit keys
            self._starts = np.cumsum(self.counts) - self.counts
        counts = self.counts[cells]
        return self._order[_expand(self._starts[cells], counts)], np.cumsum(counts) - counts

    def ids_of(self, cells: I64) -> tuple[npt.NDArray[np.uint8], I64]:
        """The ids (uint32 LE bytes) of every entity in ``cells``, cell after cell, and each cell's first byte."""
        rows, first = self.rows_of(cells)
        return self.snap.ids[rows].astype(_U4).view(_U8), 4 * first

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


def _by_cell(rows: Idx, cells: npt.NDArray[np.int32]) -> Idx:
    """``rows`` (ascending) sorted by their cells, then by row."""
    return rows[np.argsort(cells[rows], kind="stable")]


# -- base -> now, per cell ----------------------------------------------------------------------


class CellDelta:
    """What changed in every cell from a base to now: leavers, entrants and changed stayers.

    Each part is a byte buffer and int64 (ncells + 1,) offsets of each cell's
    segment in it: ``gone`` (leavers' ids: at the base in the cell, now not
    there), ``add`` (entrants' records: now in the cell, at the base not
    there), and the change records of stayers whose values differ from the
    base extrapolated to now (``cid`` ids, ``cmask`` masks, ``cval`` values).

    Args:
        suspects: ids (uint32, ascending) outside which no stayer can differ
            from its extrapolation (``surprises``), or None to compare them all.
        movers: ids (uint32, ascending) outside which every entity of the base
            or now is a stayer (``movers`` of every tick since the base), or
            None. With both, the work is proportional to them, not to the world.
        need: bool (ncells,), the cells whose segments anyone will ask for (the
            others' are left empty), or None: every cell.
    """

    def __init__(self, grid: ViewGrid, base: Binned, cur: Binned, suspects: U32 | None = None,
                 movers: U32 | None = None, need: npt.NDArray[np.bool_] | None = None) -> None:
        b, c = base.snap, cur.snap
        wanted = np.append(need, False) if need is not None else np.ones(grid.ncells + 1, dtype=np.bool_)  # [-1]: none
        if suspects is not None and movers is not None:
            # Sparse: only the movers can leave or enter, only the suspects change.
            rb, hb = _rows(b.ids, movers)
            rc, hc = _rows(c.ids, movers)
            cb, cc = np.where(hb, _at(base.cell, rb), -1), np.where(hc, _at(cur.cell, rc), -1)
            moved = ~(hb & hc & (cb == cc))
            out, into = moved & wanted[cb], moved & wanted[cc]
            lv = rb[out][np.argsort(cb[out], kind="stable")]
            en = rc[into][np.argsort(cc[into], kind="stable")]
            sc, hs = _rows(c.ids, suspects)
            sb, hsb = _rows(b.ids, suspects)
            there = _at(cur.cell, sc)
            stay = hs & hsb & (_at(base.cell, sb) == there) & wanted[there]
            st, bst = sc[stay], sb[stay]
        else:
            pos, present = _match(b.ids, c.ids)
            base_cell = base.cell if pos is None else base.cell[pos] if len(b.ids) else np.full(len(c.ids), -1, np.int32)
            stay_all = present & (base_cell == cur.cell)
            if pos is None:
                stay_base = stay_all
            else:
                stay_base = np.zeros(len(b.ids), dtype=np.bool_)
                stay_base[pos[stay_all]] = True
            lv = _by_cell(np.flatnonzero(~stay_base & wanted[base.cell]), base.cell)
            en = _by_cell(np.flatnonzero(~stay_all & wanted[cur.cell]), cur.cell)
            if suspects is None:
                st = np.flatnonzero(stay_all & wanted[cur.cell])
            else:
                at, found = _rows(c.ids, suspects)
                st = at[found & stay_all[at] & wanted[_at(cur.cell, at)]] if len(c.ids) else np.zeros(0, np.intp)
            bst = st if pos is None else pos[st]
        self._encode(grid, base, cur, lv, en, st, bst)

    def _encode(self, grid: ViewGrid, base: Binned, cur: Binned, lv: Idx, en: Idx, st: Idx, bst: Idx) -> None:
        """The parts from the leavers' base rows ``lv`` and the entrants' rows ``en`` (each by cell), and the
        stayers' rows now ``st`` and at the base ``bst`` (any order)."""
        schema, b, c = grid.schema, base.snap, cur.snap
        ncells = grid.ncells
        self.gone = b.ids[lv].astype(_U4).view(_U8)
        self.gone_at = _offsets(base.cell[lv], ncells, 4)
        self.add = records(schema, c.ids[en], [col[en] for col in c.cols])
        self.add_at = _offsets(cur.cell[en], ncells, record_dtype(schema).itemsize)
        predicted = _predicted(schema, b, bst, c.tick)
        actual = [col[st] for col in c.cols]
        diff = np.zeros(len(st), dtype=np.bool_)
        for a, p in zip(actual, predicted):
            diff |= a != p
        ch = np.flatnonzero(diff)
        ch = ch[np.lexsort((c.ids[st[ch]], cur.cell[st[ch]]))]  # by (cell, id)
        rows = st[ch]
        masks, self.cval, row_bytes = encode_changes(schema, [a[ch] for a in actual], [p[ch] for p in predicted])
        self.cid = c.ids[rows].astype(_U4).view(_U8)
        self.cmask = masks
        ccell = cur.cell[rows]
        self.cid_at = _offsets(ccell, ncells, 4)
        self.cmask_at = _offsets(ccell, ncells, mask_width(len(schema.columns)))
        self.cval_at = np.zeros(ncells + 1, dtype=np.int64)
        np.cumsum(np.bincount(ccell, weights=row_bytes, minlength=ncells).astype(np.int64), out=self.cval_at[1:])


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


def _at(values: npt.NDArray[np.int32], rows: Idx) -> npt.NDArray[np.int32]:
    """``values[rows]``, -1 for every row when ``values`` is empty (``_rows`` of nothing)."""
    return values[rows] if len(values) else np.full(len(rows), -1, dtype=np.int32)


def movers(prev: Binned, cur: Binned) -> U32:
    """The ids (ascending) of entities that are not in the same cell at both ticks: moved to another cell,
    came or went. Every other entity of either tick stays where it was."""
    pos, present = _match(prev.snap.ids, cur.snap.ids)
    if pos is None:
        moved: U32 = cur.snap.ids[prev.cell != cur.cell].astype(np.uint32)
        return moved
    stay = present & (prev.cell[pos] == cur.cell) if len(prev.snap.ids) else present
    kept = np.zeros(len(prev.snap.ids), dtype=np.bool_)
    kept[pos[present]] = True
    out: U32 = np.union1d(cur.snap.ids[~stay], prev.snap.ids[~kept]).astype(np.uint32)
    return out


def _match(base_ids: U32, cur_ids: U32) -> tuple[Idx | None, npt.NDArray[np.bool_]]:
    """Each current id's row at the base (None: the same rows, nothing came or went) and whether it is there."""
    nb, nc = len(base_ids), len(cur_ids)
    if nb == nc and np.array_equal(base_ids, cur_ids):
        return None, np.ones(nc, dtype=np.bool_)
    if nb == 0 or nc == 0:
        return np.zeros(nc, dtype=np.intp), np.zeros(nc, dtype=np.bool_)
    pos = np.minimum(np.searchsorted(base_ids, cur_ids), nb - 1)
    return pos, base_ids[pos] == cur_ids


def surprises(schema: WireSchema, prev: Snapshot, cur: Snapshot) -> U32:
    """The ids (ascending) of entities present at both ticks (one apart) whose values now are not
    ``prev``'s extrapolated one tick: nothing else can differ from an extrapolation over many ticks.

    Cheap where the motion rule holds without reflecting (a sum and a
    comparison per axis); the exact rule runs only on the rest.
    """
    pos, present = _match(prev.ids, cur.ids)
    rows = np.flatnonzero(present) if pos is not None else None
    names = schema.names()
    bcols = prev.cols if pos is None else tuple(col[pos[rows]] for col in prev.cols)
    ccols = cur.cols if rows is None else tuple(col[rows] for col in cur.cols)
    odd = np.zeros(len(ccols[0]) if ccols else 0, dtype=np.bool_)
    moving = set()
    for axis in schema.motion:
        i, v = names.index(axis.pos), names.index(axis.vel)
        moving |= {i, v}
        # In int32 when the walls are well inside its range: a sum that wraps then lands past a wall (as
        # the exact one does), so it is a candidate either way; else in int64.
        work = np.int32 if -(2**31) + 256 <= axis.lo and axis.hi <= 2**31 - 256 else np.int64
        p = np.add(bcols[i], bcols[v], dtype=work, casting="unsafe")
        odd |= p != ccols[i]
        odd |= p < axis.lo
        odd |= p > axis.hi
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


def _offsets(cells: npt.NDArray[np.int32], ncells: int, width: int) -> I64:
    """Byte offsets (int64 (ncells + 1,)) of each cell's segment of items ``width`` bytes long, sorted by cell."""
    at = np.zeros(ncells + 1, dtype=np.int64)
    np.cumsum(np.bincount(cells, minlength=ncells) * width, out=at[1:])
    return at


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
        self._movers: OrderedDict[int, U32] = OrderedDict()
        #: Per tick, the views of the entities of that tick's frames (``_keep_views``).
        self._views: OrderedDict[int, tuple[I64, I64, I64, I64]] = OrderedDict()
        self._cur: Snapshot | None = None
        self._events = b""
        #: Encodes of the current tick: binnings and per-base cell deltas.
        self.encodes = 0

    def begin(self, snapshot: Snapshot, events: list[Any]) -> None:
        """A new tick: ``snapshot`` is what this tick's updates bring clients to."""
        self._cur = snapshot
        self._events = msgpack.packb(events) if events else b""
        self.encodes = 0

    def _binned_at(self, snap: Snapshot) -> Binned:
        got = self._binned.get(snap.tick)
        if got is None or got.snap is not snap:
            got = Binned(self.grid, snap)
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
        for facts in (self._surprises, self._movers):
            while len(facts) > self.history.size:
                facts.popitem(last=False)

    def _since(self, facts: OrderedDict[int, U32], base: int, tick: int) -> U32 | None:
        """The union of ``facts`` over the ticks after ``base`` up to ``tick``, or None if one is missing."""
        found = [facts.get(t) for t in range(base + 1, tick + 1)]
        if any(f is None for f in found):
            return None
        if len(found) == 1:
            return found[0]
        top = max((int(f[-1]) for f in found if f is not None and len(f)), default=-1)
        hit = np.zeros(top + 1, dtype=np.bool_)
        for f in found:
            hit[f] = True
        out: U32 = np.flatnonzero(hit).astype(np.uint32)
        return out

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
        t_kept = np.zeros(len(tq), dtype=np.bool_)
        src = _Sources()
        # Each view pair's segment of each part: source offset and length.
        seg = {k: (np.zeros(len(tq), dtype=np.int64), np.zeros(len(tq), dtype=np.int64)) for k in _PARTS if k != "gone"}
        gone: list[tuple[Idx, I64, I64]] = []  # (client, source offset, length) per base view pair

        # Per base: the clients' views then, which cells they keep, and what each kept cell owes them.
        for b in np.unique(base_of[base_of >= 0]).tolist():
            base_snap = self.history.get(b)
            if base_snap is None or b >= cur_snap.tick:
                raise ValueError(f"base {b} is not a tick the history holds before {cur_snap.tick}")
            base = self._binned_at(base_snap)
            bq, bc = self._views_at(base_snap, ent, np.flatnonzero(base_of == b))
            kb = bq.astype(np.int64) * grid.ncells + bc
            kept = _isin_sorted(kt, kb)
            t_kept |= kept
            c = tc[kept]
            need = np.zeros(grid.ncells, dtype=np.bool_)
            need[c] = True  # the cells this base's clients keep: only theirs are encoded
            delta = CellDelta(grid, base, cur, self._since(self._surprises, b, cur_snap.tick),
                              self._since(self._movers, b, cur_snap.tick), need)
            self.encodes += 1
            for part, buf, at in (("add", delta.add, delta.add_at), ("cid", delta.cid, delta.cid_at),
                                  ("cmask", delta.cmask, delta.cmask_at), ("cval", delta.cval, delta.cval_at)):
                o = src.add(buf)
                seg[part][0][kept] = at[c] + o
                seg[part][1][kept] = at[c + 1] - at[c]
            # Gone, by the base's cells: a kept cell's leavers, a dropped cell's every id.
            still = _isin_sorted(kb, kt)
            glo = delta.gone_at[bc] + src.add(delta.gone)
            gln = delta.gone_at[bc + 1] - delta.gone_at[bc]
            if not still.all():
                dropped = np.unique(bc[~still])
                ids, first = base.ids_of(dropped)
                o = src.add(ids)
                k = np.searchsorted(dropped, bc[~still])
                glo[~still] = first[k] + o
                gln[~still] = np.append(first[1:], len(ids))[k] - first[k]
            gone.append((bq, glo, gln))

        # Cells a client did not have at its base: every entity, as records.
        new = ~t_kept
        if new.any():
            cells = np.unique(tc[new])
            recs, first = cur.records_of(cells)
            o = src.add(recs)
            k = np.searchsorted(cells, tc[new])
            seg["add"][0][new] = first[k] + o
            seg["add"][1][new] = np.append(first[1:], len(recs))[k] - first[k]
        if gone:
            gq = np.concatenate([g[0] for g in gone])
            order = np.argsort(gq, kind="stable")  # each base's pairs are in (client, cell) order already
            segs = {"gone": (gq[order], np.concatenate([g[1] for g in gone])[order],
                             np.concatenate([g[2] for g in gone])[order])}
        else:
            segs = {"gone": (np.zeros(0, np.intp), np.zeros(0, np.int64), np.zeros(0, np.int64))}
        for part, (lo, ln) in seg.items():
            segs[part] = (tq, lo, ln)
        sums = np.bincount(tq, weights=cur.cellsum[tc].astype(np.float64), minlength=n).astype(np.int64) & _M32
        return self._frame_all(cur_snap.tick, base_of, _ints(acks), sums, src, segs)

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

    def _frame_all(self, tick: int, base_of: I64, acks: I64, sums: I64, src: _Sources,
                   segs: dict[str, tuple[Idx, I64, I64]]) -> list[bytes]:
        """Every client's frame, written by one scatter of shared literals, per-client headers and segments.

        A frame is a row of slots: literals (keys, ``head``, ``ev``), per-client
        headers (the map's, each bin's, ``sum``, ``ack``: msgpack's shortest
        forms, written for all clients at once) and the parts' segments; a
        slot of length 0 is left out (an empty part: its key and header too).
        """
        n = len(base_of)
        K = _KEYS
        lens = {p: np.bincount(q, weights=ln, minlength=n).astype(np.int64) for p, (q, _, ln) in segs.items()}
        has = {"gone": lens["gone"] > 0, "chg": lens["cid"] > 0, "add": lens["add"] > 0}
        lit = {name: src.add_bytes(data) for name, data in (
            ("head", K["t"] + msgpack.packb("update") + K["tick"] + msgpack.packb(tick) + K["base"]),
            ("gone", K["gone"]), ("chg", K["chg"] + b"\x93"), ("add", K["add"]), ("sum", K["sum"]),
            ("ev", K["ev"] + self._events if self._events else b""), ("ack", K["ack"]))}
        distinct, bi = np.unique(base_of, return_inverse=True)
        base_lit = np.array([src.add_bytes(msgpack.packb(None if b < 0 else b)) for b in distinct.tolist()], dtype=np.int64)
        # Per-client headers: the map's (1 byte), then 5 bytes for each of gone, cid, cmask, cval, add, sum, ack.
        fields = np.stack([lens["gone"], lens["cid"], lens["cmask"], lens["cval"], lens["add"], sums, acks], axis=1)
        heads, hsize = _msgpack_heads(fields, np.array([True] * 5 + [False] * 2))
        scratch = np.concatenate([(0x80 | (5 + bool(self._events) + has["gone"] + has["chg"] + has["add"]))
                                  .astype(_U8)[:, None], heads.reshape(n, -1)], axis=1)
        row = src.add(scratch.reshape(-1)) + scratch.shape[1] * np.arange(n, dtype=np.int64)
        H = {name: (row + 1 + 5 * i, hsize[:, i]) for i, name in enumerate(("gone", "cid", "cmask", "cval", "add", "sum", "ack"))}

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
            literal("sum"), header("sum"), literal("ev"), literal("ack"), header("ack"),
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


def _msgpack_heads(values: I64, is_bin: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.uint8], I64]:
    """msgpack's shortest headers for many values at once: a bin's length header where ``is_bin`` (per column),
    else the unsigned integer itself (< 2**32).

    Returns:
        uint8 (*values.shape, 5), each header's bytes (its first ``size`` used), and int64 sizes.
    """
    v = values
    size = np.where(is_bin, np.where(v < 256, 2, np.where(v < 65536, 3, 5)),
                    np.where(v < 128, 1, np.where(v < 256, 2, np.where(v < 65536, 3, 5))))
    lead = np.where(is_bin, np.where(size == 2, 0xC4, np.where(size == 3, 0xC5, 0xC6)),
                    np.where(size == 1, v, np.where(size == 2, 0xCC, np.where(size == 3, 0xCD, 0xCE))))
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
    *kept* if wanted and held in the same cell. ``gone``: held and not kept,
    sorted by (cell at the base, id); ``add``: wanted and not kept, sorted by
    (cell now, id); ``chg``: kept with values other than the base's
    extrapolated, sorted by (cell, id).
    """
    schema = grid.schema
    cur_cell = grid.cells(cur)
    vt = grid.view_of(cur, entity)
    wanted = np.isin(cur_cell, vt)
    body: dict[str, Any] = {}
    kept = np.zeros(len(cur.ids), dtype=np.bool_)
    if base is not None:
        base_cell = grid.cells(base)
        held = np.isin(base_cell, grid.view_of(base, entity))
        # An entity in the same cell then and now, held then and wanted now, is kept.
        common, bi, ci = np.intersect1d(base.ids, cur.ids, assume_unique=True, return_indices=True)
        same = (base_cell[bi] == cur_cell[ci]) & held[bi] & wanted[ci]
        kept[ci[same]] = True
        kept_b = np.zeros(len(base.ids), dtype=np.bool_)
        kept_b[bi[same]] = True
        g = np.flatnonzero(held & ~kept_b)
        g = g[np.lexsort((base.ids[g], base_cell[g]))]
        if len(g):
            body["gone"] = base.ids[g].astype(_U4).tobytes()
        k = ci[same]
        kb = bi[same]
        order = np.lexsort((cur.ids[k], cur_cell[k]))
        k, kb = k[order], kb[order]
        predicted = _predicted(schema, base, kb.astype(np.intp), cur.tick)
        actual = [c[k] for c in cur.cols]
        diff = np.zeros(len(k), dtype=np.bool_)
        for a, p in zip(actual, predicted):
            diff |= a != p
        if diff.any():
            masks, values, _ = encode_changes(schema, [a[diff] for a in actual], [p[diff] for p in predicted])
            body["chg"] = [cur.ids[k[diff]].astype(_U4).tobytes(), masks.tobytes(), values.tobytes()]
    a = np.flatnonzero(wanted & ~kept)
    a = a[np.lexsort((cur.ids[a], cur_cell[a]))]
    if len(a):
        body["add"] = records(schema, cur.ids[a], [c[a] for c in cur.cols]).tobytes()
    return body


def reference_frame(grid: ViewGrid, base: Snapshot | None, cur: Snapshot, entity: int | None, ack: int,
                    events: list[Any]) -> bytes:
    """The whole frame ``ViewEncoder`` sends one client, from ``reference_body``: what the audit rebuilds."""
    body = reference_body(grid, base, cur, entity)
    sv = reference_state(grid, cur, entity)
    fields: dict[str, Any] = {"t": "update", "tick": cur.tick, "base": None if base is None else base.tick,
                              **{k: body[k] for k in FILTERED_KEYS if k in body}, "sum": sv.checksum}
    if events:
        fields["ev"] = events
    fields["ack"] = ack
    out: bytes = msgpack.packb(fields)
    return out


def reference_state(grid: ViewGrid, snap: Snapshot, entity: int | None) -> Snapshot:
    """What a client of ``entity`` holds at ``snap``'s tick: the entities of its view, with its view sum."""
    wanted = np.isin(grid.cells(snap), grid.view_of(snap, entity))
    ids, cols = snap.ids[wanted], [c[wanted] for c in snap.cols]
    return Snapshot(snap.tick, ids, tuple(cols), view_sum(ids, cols))

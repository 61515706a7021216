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
from server.protocol.history import SnapshotHistory
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
        ValueError: the ruleset has no position columns to place entities by.
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
        cx = np.clip(x // self.csx, 0, self.ncx - 1).astype(np.int32)
        cy = np.clip(y // self.csy, 0, self.ncy - 1).astype(np.int32)
        cell: npt.NDArray[np.int32] = cy * np.int32(self.ncx) + cx
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
        q = np.flatnonzero(has)
        ox = np.arange(-self._reach_x, self._reach_x + 1, dtype=np.int64)
        oy = np.arange(-self._reach_y, self._reach_y + 1, dtype=np.int64)
        x, y = px[q], py[q]
        ccx = np.clip(x // self.csx, 0, self.ncx - 1)
        ccy = np.clip(y // self.csy, 0, self.ncy - 1)
        gx = ccx[:, None, None] + ox[None, None, :]  # (Q, 1, W): cells vary fastest in x...
        gy = ccy[:, None, None] + oy[None, :, None]  # (Q, H, 1): ...so keys come out ascending
        # Distance from the centre to the cell's nearest position, per axis (0 inside it).
        dx = np.maximum(np.maximum(gx * self.csx - x[:, None, None], x[:, None, None] - (gx + 1) * self.csx + 1), 0)
        dy = np.maximum(np.maximum(gy * self.csy - y[:, None, None], y[:, None, None] - (gy + 1) * self.csy + 1), 0)
        inside = (gx >= 0) & (gx < self.ncx) & (gy >= 0) & (gy < self.ncy)
        if self.shape.round:
            inside &= dx * dx + dy * dy <= self.rx * self.rx
        else:
            inside &= (dx <= self.rx) & (dy <= self.ry)
        shape = (len(q), len(oy), len(ox))
        keys = np.broadcast_to(gy * self.ncx + gx, shape)
        owner = np.broadcast_to(q[:, None, None], shape)
        # Append the always cell to every view (it is the largest cell number: order holds).
        n = len(px)
        qq = np.concatenate([owner[inside], np.arange(n, dtype=np.intp)])
        cc = np.concatenate([keys[inside], np.full(n, self.always, dtype=np.int64)])
        order = np.argsort(qq, kind="stable")
        return qq[order].astype(np.intp), cc[order]

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
        h ^= c.astype(np.uint32)
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
    n, ncols = len(actual[0]) if actual else 0, len(actual)
    codes = np.zeros((n, ncols), dtype=np.int64)
    sizes = np.zeros((n, ncols), dtype=np.int64)
    diffs: list[I64] = []
    for j, (a, p, col) in enumerate(zip(actual, predicted, schema.columns)):
        diff = a.astype(np.int64) - p.astype(np.int64)
        item = col.dtype.itemsize
        code = np.full(n, ABS, dtype=np.int64)
        if item > 1:
            code[(diff >= -128) & (diff <= 127)] = D8
            if item > 2:
                code[(code == ABS) & (diff >= -32768) & (diff <= 32767)] = D16
        code[diff == 0] = SAME
        codes[:, j] = code
        sizes[:, j] = np.choose(code, (0, 1, 2, item))
        diffs.append(diff)
    mw = mask_width(ncols)
    packed = (codes << (2 * np.arange(ncols, dtype=np.int64))).sum(axis=1) if ncols else np.zeros(n, np.int64)
    masks = (packed[:, None] >> (8 * np.arange(mw, dtype=np.int64))).astype(np.uint8).reshape(-1)
    row_bytes = sizes.sum(axis=1)
    ends = np.cumsum(sizes.reshape(-1)).reshape(n, ncols) if n else sizes
    starts = ends - sizes
    values = np.empty(int(row_bytes.sum()), dtype=_U8)
    for j, (a, col) in enumerate(zip(actual, schema.columns)):
        code, at = codes[:, j], starts[:, j]
        for c, dt in ((D8, np.dtype("<i1")), (D16, np.dtype("<i2")), (ABS, col.dtype)):
            rows = np.flatnonzero(code == c)
            if not len(rows):
                continue
            data = (diffs[j][rows] if c != ABS else a[rows]).astype(dt).view(_U8).reshape(len(rows), dt.itemsize)
            values[at[rows][:, None] + np.arange(dt.itemsize)] = data
    return masks, values, row_bytes


def decode_changes(schema: WireSchema, count: int, masks: Any, values: Any
                   ) -> tuple[npt.NDArray[np.int64], list[tuple[int, int, Idx, Array]]]:
    """Mirror image of ``encode_changes``: the codes (int64 (count, columns)) and, per column and code,
    ``(column, code, rows, data)`` with ``data`` int8/int16 differences or the column's values.

    Raises:
        InvalidField: masks or values of the wrong size, an unused mask bit set.
    """
    ncols, mw = len(schema.columns), mask_width(len(schema.columns))
    try:
        m = array_from(masks, _U8, count * mw, "chg masks").reshape(count, mw).astype(np.int64)
        raw = array_from(values, _U8, None, "chg values")
    except RowSetError as exc:
        raise InvalidField(str(exc)) from None
    packed = (m << (8 * np.arange(mw, dtype=np.int64))).sum(axis=1) if count else np.zeros(0, np.int64)
    if np.any(packed >> (2 * ncols)):
        raise InvalidField("chg masks: bits set past the last column")
    codes = (packed[:, None] >> (2 * np.arange(ncols, dtype=np.int64))) & 3
    items = np.array([c.dtype.itemsize for c in schema.columns], dtype=np.int64)
    sizes = np.where(codes == ABS, items[None, :], codes)
    if int(sizes.sum()) != len(raw):
        raise InvalidField(f"chg values: {len(raw)} bytes where the masks say {int(sizes.sum())}")
    ends = np.cumsum(sizes.reshape(-1)).reshape(count, ncols) if count else sizes
    starts = ends - sizes
    out: list[tuple[int, int, Idx, Array]] = []
    for j, col in enumerate(schema.columns):
        for c, dt in ((D8, np.dtype("<i1")), (D16, np.dtype("<i2")), (ABS, col.dtype)):
            rows = np.flatnonzero(codes[:, j] == c)
            if len(rows):
                at = starts[rows, j][:, None] + np.arange(dt.itemsize)
                out.append((j, c, rows, raw[at].reshape(-1).view(dt)))
    return codes, out


# -- one snapshot binned ---------------------------------------------------------------------


class Binned:
    """A snapshot's entities by cell: each one's cell, and each cell's count and sum.

    No sort of the whole snapshot: the few cells whose entities a tick needs
    one by one (``rows_of``) are picked out when asked for.

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

    @property
    def tick(self) -> int:
        return self.snap.tick

    def rows_of(self, cells: I64) -> tuple[Idx, I64]:
        """The rows of every entity in ``cells`` (ascending, unique), sorted by (cell, id), and each cell's first."""
        pick = np.zeros(self.grid.ncells, dtype=np.bool_)
        pick[cells] = True
        rows = np.flatnonzero(pick[self.cell])
        rows = rows[np.argsort(self.cell[rows], kind="stable")]
        counts = self.counts[cells]
        return rows, np.cumsum(counts) - counts

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
    """

    def __init__(self, grid: ViewGrid, base: Binned, cur: Binned, suspects: U32 | None = None) -> None:
        schema, b, c = grid.schema, base.snap, cur.snap
        ncells = grid.ncells
        pos, present = _match(b.ids, c.ids)
        base_cell = base.cell if pos is None else base.cell[pos] if len(b.ids) else np.full(len(c.ids), -1, np.int32)
        stay = present & (base_cell == cur.cell)
        if pos is None:
            stay_base = stay
        else:
            stay_base = np.zeros(len(b.ids), dtype=np.bool_)
            stay_base[pos[stay]] = True

        lv = _by_cell(np.flatnonzero(~stay_base), base.cell)
        self.gone = b.ids[lv].astype(_U4).view(_U8)
        self.gone_at = _offsets(base.cell[lv], ncells, 4)
        en = _by_cell(np.flatnonzero(~stay), cur.cell)
        self.add = records(schema, c.ids[en], [col[en] for col in c.cols])
        self.add_at = _offsets(cur.cell[en], ncells, record_dtype(schema).itemsize)

        # Changes: stayers (of the suspects) that differ from the base extrapolated to now.
        if suspects is None:
            st = np.flatnonzero(stay)
        else:
            at = np.minimum(np.searchsorted(c.ids, suspects), max(len(c.ids) - 1, 0))
            st = at[(c.ids[at] == suspects) & stay[at]] if len(c.ids) else np.zeros(0, np.intp)
        bst = st if pos is None else pos[st]
        predicted = _predicted(schema, b, bst, c.tick)
        actual = [col[st] for col in c.cols]
        diff = np.zeros(len(st), dtype=np.bool_)
        for a, p in zip(actual, predicted):
            diff |= a != p
        ch = np.flatnonzero(diff)
        ch = ch[np.argsort(cur.cell[st[ch]], kind="stable")]
        rows = st[ch]
        masks, self.cval, row_bytes = encode_changes(schema, [a[ch] for a in actual], [p[ch] for p in predicted])
        self.cid = c.ids[rows].astype(_U4).view(_U8)
        self.cmask = masks
        ccell = cur.cell[rows]
        self.cid_at = _offsets(ccell, ncells, 4)
        self.cmask_at = _offsets(ccell, ncells, mask_width(len(schema.columns)))
        self.cval_at = np.zeros(ncells + 1, dtype=np.int64)
        np.cumsum(np.bincount(ccell, weights=row_bytes, minlength=ncells).astype(np.int64), out=self.cval_at[1:])


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
        p = bcols[i].astype(np.int64) + bcols[v]
        odd |= (p != ccols[i]) | (p < axis.lo) | (p > axis.hi) | (bcols[v] != ccols[v])
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
            while len(self._binned) > KEEP_BINNED:
                self._binned.popitem(last=False)
        return got

    def _suspects(self, base: int, cur: Snapshot) -> U32 | None:
        """The entities that may differ from their extrapolation from ``base`` to ``cur``, or None (all may)."""
        prev = self.history.get(cur.tick - 1)
        if cur.tick not in self._surprises and prev is not None:
            self._surprises[cur.tick] = surprises(self.grid.schema, prev, cur)
            while len(self._surprises) > self.history.size:
                self._surprises.popitem(last=False)
        found = [self._surprises.get(t) for t in range(base + 1, cur.tick + 1)]
        if any(f is None for f in found):
            return None
        return found[0] if len(found) == 1 else np.unique(np.concatenate(found))  # type: ignore[arg-type]

    def frames(self, entities: Sequence[int | None], bases: Sequence[int | None], acks: Sequence[int]) -> list[bytes]:
        """One update frame per client: its entity (None: none), its base tick (None: a keyframe) and its ``ack``.

        A base must be a tick the history still holds, before the current one.
        """
        cur_snap = self._cur
        if cur_snap is None:
            raise RuntimeError("frames() before begin()")
        n = len(entities)
        if n == 0:
            return []
        grid = self.grid
        cur = self._binned_at(cur_snap)
        ent = np.array([-1 if e is None else e for e in entities], dtype=np.int64)
        base_of = np.array([-1 if b is None else b for b in bases], dtype=np.int64)

        # Every client's view now: (client, cell) pairs, sorted.
        px, py, has = centres(cur_snap, grid, ent)
        tq, tc = grid.view_pairs(px, py, has)
        kt = tq.astype(np.int64) * grid.ncells + tc
        t_kept = np.zeros(len(tq), dtype=np.bool_)
        # Per part: the buffers segments point into, and each view pair's segment (start, length).
        bufs: dict[str, list[npt.NDArray[np.uint8]]] = {k: [] for k in _PARTS}
        size = dict.fromkeys(_PARTS, 0)
        lo = {k: np.zeros(len(tq), dtype=np.int64) for k in _PARTS if k != "gone"}
        ln = {k: np.zeros(len(tq), dtype=np.int64) for k in _PARTS if k != "gone"}
        gone: list[tuple[Idx, I64, I64]] = []  # (client, start, length) per base-view pair, by client and cell

        def source(part: str, buf: npt.NDArray[np.uint8]) -> int:
            at = size[part]
            bufs[part].append(buf)
            size[part] += len(buf)
            return at

        # Per base: the clients' views then, which cells they keep, and what each kept cell owes them.
        for b in np.unique(base_of[base_of >= 0]).tolist():
            base_snap = self.history.get(b)
            if base_snap is None or b >= cur_snap.tick:
                raise ValueError(f"base {b} is not a tick the history holds before {cur_snap.tick}")
            base = self._binned_at(base_snap)
            delta = CellDelta(grid, base, cur, self._suspects(b, cur_snap))
            self.encodes += 1
            who = np.flatnonzero(base_of == b)
            bx, by, bhas = centres(base_snap, grid, ent[who])
            bq, bc = grid.view_pairs(bx, by, bhas)
            bq = who[bq]
            kb = bq.astype(np.int64) * grid.ncells + bc
            kept = _isin_sorted(kt, kb)
            t_kept |= kept
            c = tc[kept]
            for part, buf, at in (("add", delta.add, delta.add_at), ("cid", delta.cid, delta.cid_at),
                                  ("cmask", delta.cmask, delta.cmask_at), ("cval", delta.cval, delta.cval_at)):
                o = source(part, buf)
                lo[part][kept] = at[c] + o
                ln[part][kept] = at[c + 1] - at[c]
            # Gone, by the base's cells: a kept cell's leavers, a dropped cell's every id.
            still = _isin_sorted(kb, kt)
            o_lv = source("gone", delta.gone)
            dropped = np.unique(bc[~still])
            ids, first = base.ids_of(dropped)
            o_all = source("gone", ids)
            ends = np.append(first[1:], len(ids))
            k = np.searchsorted(dropped, bc)
            glo = np.where(still, delta.gone_at[bc] + o_lv, first[np.minimum(k, len(dropped) - 1)] + o_all
                           if len(dropped) else 0)
            gln = np.where(still, delta.gone_at[bc + 1] - delta.gone_at[bc],
                           (ends - first)[np.minimum(k, len(dropped) - 1)] if len(dropped) else 0)
            gone.append((bq, glo, gln))

        # Cells a client did not have at its base: every entity, as records.
        new = ~t_kept
        if new.any():
            cells = np.unique(tc[new])
            recs, first = cur.records_of(cells)
            o = source("add", recs)
            ends = np.append(first[1:], len(recs))
            k = np.searchsorted(cells, tc[new])
            lo["add"][new] = first[k] + o
            ln["add"][new] = ends[k] - first[k]

        data: dict[str, tuple[npt.NDArray[np.uint8], I64]] = {}
        for part in _PARTS:
            buf = _joined(bufs[part])
            if part == "gone":
                if gone:
                    q = np.concatenate([g[0] for g in gone])
                    order = np.argsort(q, kind="stable")  # each base's pairs are in (client, cell) order already
                    q, glo, gln = q[order], np.concatenate([g[1] for g in gone])[order], np.concatenate([g[2] for g in gone])[order]
                else:
                    q, glo, gln = np.zeros(0, np.intp), np.zeros(0, np.int64), np.zeros(0, np.int64)
                data[part] = _gather(buf, q, glo, gln, n)
            else:
                data[part] = _gather(buf, tq, lo[part], ln[part], n)
        sums = np.bincount(tq, weights=cur.cellsum[tc].astype(np.float64), minlength=n).astype(np.int64) & _M32
        return self._frame_all(cur_snap.tick, base_of, np.asarray(acks, dtype=np.int64), sums, data)

    def _frame_all(self, tick: int, base_of: I64, acks: I64, sums: I64,
                   data: dict[str, tuple[npt.NDArray[np.uint8], I64]]) -> list[bytes]:
        """Every client's frame, built by one gather from shared literals, per-client headers and the parts."""
        n = len(base_of)
        K = _KEYS
        lens = {p: np.diff(data[p][1]) for p in _PARTS}
        has_gone, has_chg, has_add = lens["gone"] > 0, lens["cid"] > 0, lens["add"] > 0
        # Literals: shared by every client.
        lit = bytearray()
        spots: dict[str, tuple[int, int]] = {}

        def literal(name: str, data_: bytes) -> None:
            spots[name] = (len(lit), len(data_))
            lit.extend(data_)

        literal("head", K["t"] + msgpack.packb("update") + K["tick"] + msgpack.packb(tick) + K["base"])
        literal("gone", K["gone"])
        literal("chg", K["chg"] + b"\x93")
        literal("add", K["add"])
        literal("sum", K["sum"])
        literal("ev", K["ev"] + self._events if self._events else b"")
        literal("ack", K["ack"])
        distinct = np.unique(base_of)
        for b in distinct.tolist():
            literal(f"base{b}", msgpack.packb(None if b < 0 else b))
        base_lo = np.array([spots[f"base{b}"][0] for b in distinct.tolist()], dtype=np.int64)
        base_ln = np.array([spots[f"base{b}"][1] for b in distinct.tolist()], dtype=np.int64)
        bi = np.searchsorted(distinct, base_of)
        # Per-client headers, each in its own slot of a row of 40 bytes.
        scratch = np.zeros((n, 40), dtype=_U8)
        keys = 5 + bool(self._events) + has_gone + has_chg + has_add
        scratch[:, 0] = 0x80 | keys
        hdr = {}
        for slot, (part, at) in enumerate((("gone", 1), ("cid", 6), ("cmask", 11), ("cval", 16), ("add", 21))):
            hdr[part] = (at, _write_bin_header(scratch, at, lens[part]))
        sum_len = _write_uint(scratch, 26, sums)
        ack_len = _write_uint(scratch, 31, acks)
        # The sources, one after the other: literals, scratch, then the parts.
        sources = [np.frombuffer(bytes(lit), dtype=_U8), scratch.reshape(-1)] + [data[p][0] for p in _PARTS]
        base_at = np.cumsum([0] + [len(s) for s in sources])
        S = base_at[1] + 40 * np.arange(n, dtype=np.int64)  # each client's scratch row
        part_at = {p: base_at[2 + i] + data[p][1][:-1] for i, p in enumerate(_PARTS)}

        def lit_piece(name: str, on: npt.NDArray[np.bool_] | None = None) -> tuple[I64, I64]:
            at, length = spots[name]
            ln_ = np.full(n, length, dtype=np.int64)
            return np.full(n, at, dtype=np.int64), ln_ if on is None else np.where(on, ln_, 0)

        def part_pieces(part: str, on: npt.NDArray[np.bool_]) -> list[tuple[I64, I64]]:
            at, hl = hdr[part]
            return [(S + at, np.where(on, hl, 0)), (part_at[part], lens[part])]

        pieces = [
            (S, np.ones(n, dtype=np.int64)),
            lit_piece("head"),
            (base_lo[bi], base_ln[bi]),
            lit_piece("gone", has_gone), *part_pieces("gone", has_gone),
            lit_piece("chg", has_chg), *part_pieces("cid", has_chg), *part_pieces("cmask", has_chg),
            *part_pieces("cval", has_chg),
            lit_piece("add", has_add), *part_pieces("add", has_add),
            lit_piece("sum"), (S + 26, sum_len),
            lit_piece("ev"),
            lit_piece("ack"), (S + 31, ack_len),
        ]
        starts = np.stack([p[0] for p in pieces], axis=1).reshape(-1)
        lengths = np.stack([p[1] for p in pieces], axis=1).reshape(-1)
        out = np.concatenate(sources)[_expand(starts, lengths)]
        ends = np.cumsum(lengths.reshape(n, -1).sum(axis=1)).tolist()
        return [out[a:b].tobytes() for a, b in zip([0] + ends[:-1], ends)]


def _write_bin_header(rows: npt.NDArray[np.uint8], at: int, lengths: I64) -> I64:
    """msgpack bin headers for ``lengths`` (the shortest form) into ``rows[:, at:at + 5]``; their sizes."""
    size = np.where(lengths < 256, 2, np.where(lengths < 65536, 3, 5))
    rows[:, at] = np.where(size == 2, 0xC4, np.where(size == 3, 0xC5, 0xC6))
    _write_be(rows, at + 1, lengths, size - 1)
    return size


def _write_uint(rows: npt.NDArray[np.uint8], at: int, values: I64) -> I64:
    """msgpack unsigned integers (< 2**32, the shortest form) into ``rows[:, at:at + 5]``; their sizes."""
    size = np.where(values < 128, 1, np.where(values < 256, 2, np.where(values < 65536, 3, 5)))
    rows[:, at] = np.where(size == 1, values, np.where(size == 2, 0xCC, np.where(size == 3, 0xCD, 0xCE))) & 0xFF
    _write_be(rows, at + 1, values, np.maximum(size - 1, 0) * (size > 1))
    return size


def _write_be(rows: npt.NDArray[np.uint8], at: int, values: I64, width: I64) -> None:
    """``values`` big-endian in ``width`` (0-4) bytes each, into ``rows[:, at:]``."""
    for k in range(4):
        shift = np.maximum(8 * (width - 1 - k), 0)
        rows[:, at + k] = np.where(k < width, (values >> shift) & 0xFF, 0)


def _joined(bufs: list[npt.NDArray[np.uint8]]) -> npt.NDArray[np.uint8]:
    if not bufs:
        return np.zeros(0, dtype=_U8)
    return bufs[0] if len(bufs) == 1 else np.concatenate(bufs)


def _isin_sorted(a: I64, b: I64) -> npt.NDArray[np.bool_]:
    """Which of ``a`` are in ``b`` (int64, ``b`` ascending)."""
    if len(b) == 0:
        return np.zeros(len(a), dtype=np.bool_)
    pos = np.minimum(np.searchsorted(b, a), len(b) - 1)
    found: npt.NDArray[np.bool_] = b[pos] == a
    return found


def _gather(buf: npt.NDArray[np.uint8], q: Idx, lo: I64, ln: I64, n: int) -> tuple[npt.NDArray[np.uint8], I64]:
    """The segments ``buf[lo:lo + ln]`` joined, in order (``q``: their clients, ascending), and each client's first byte."""
    at = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(q, weights=ln, minlength=n).astype(np.int64), out=at[1:])
    return buf[_expand(lo, ln)], at


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
        _, entries = decode_changes(schema, len(cid), chg[1], chg[2])
        for j, code, which, data in entries:
            col, r = cols[j], rows[which]
            if code == ABS:
                col[r] = data
            else:
                col[r] = (col[r].astype(np.int64) + data).astype(col.dtype)
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

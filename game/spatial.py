"""Uniform-grid broad phase: which points lie within a radius of which.

A ``Grid`` bins points (integer coordinates) into square cells of side
``cell``, sorted by cell. A query visits the ``(2r+1)²`` cells around each
query point (``r = ceil(radius / cell)``, so 3 x 3 when ``radius <= cell``),
expands the candidate ranges with ``np.repeat`` / ``cumsum`` and keeps the
pairs whose exact integer squared distance is ``<= radius²``. Everything is
vectorized: one sort to build, work proportional to the candidates to query,
never all pairs, except when there are so few (``DIRECT_PAIRS``: queries x
points) that checking each is cheaper than walking cells; both ways give the
same pairs in the same order.

Cell offsets are kept in a dense table (``bincount`` + ``cumsum``) when the
points' bounding box has few enough cells, and found by ``searchsorted`` on
the sorted cell keys otherwise (sparse points over a huge area).

Coordinates are integers (any int dtype) within ±2**30, so squared distances
fit int64. Results are deterministic: pairs come grouped by query index in
ascending order.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from attrs import frozen

from game.errors import GameError

I64 = npt.NDArray[np.int64]
Idx = npt.NDArray[np.intp]

#: Bounding boxes with up to this many cells (or 4 per point) use a dense table.
_DENSE_CELLS = 1 << 16
#: Queries with at most this many (query, point) combinations check them all directly.
DIRECT_PAIRS = 4096


def _ints(v: npt.ArrayLike) -> I64:
    return np.asarray(v, dtype=np.int64).reshape(-1)


@frozen(eq=False)
class Grid:
    """Points binned into square cells, ready for radius queries.

    Build with ``Grid.build``. Attributes:
        x, y: int64 (N,), the points.
        cell: cell side, same unit as the coordinates.
        ox, oy: origin of cell (0, 0) (the points' minimum).
        ncx, ncy: cells along x and y covering the points.
        order: intp (N,), point indices sorted by cell key (stable).
        starts: int64 (ncx*ncy + 1,), dense offsets into ``order``, or None.
        keys: int64 (N,), sorted cell keys when ``starts`` is None.
    """

    x: I64
    y: I64
    cell: int
    ox: int
    oy: int
    ncx: int
    ncy: int
    order: Idx
    starts: I64 | None
    keys: I64 | None

    @classmethod
    def build(cls, x: npt.ArrayLike, y: npt.ArrayLike, cell: int) -> Grid:
        """Bin the points ``(x, y)`` (int (N,)) into cells of side ``cell`` (> 0)."""
        if cell <= 0:
            raise GameError(f"grid cell must be positive, not {cell}")
        xs, ys = _ints(x), _ints(y)
        if xs.shape != ys.shape:
            raise GameError("grid: x and y must have the same length")
        if xs.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return cls(xs, ys, cell, 0, 0, 0, 0, np.zeros(0, dtype=np.intp), np.zeros(1, np.int64), empty)
        ox, oy = int(xs.min()), int(ys.min())
        cx = (xs - ox) // cell
        cy = (ys - oy) // cell
        ncx, ncy = int(cx.max()) + 1, int(cy.max()) + 1
        ncells = ncx * ncy
        key = cx * ncy + cy
        # Small keys sort by radix (stable sort on 16-bit ints): much faster.
        sortable = key.astype(np.uint16) if ncells <= 1 << 16 else key
        order = np.argsort(sortable, kind="stable").astype(np.intp)
        if ncells <= max(_DENSE_CELLS, 4 * xs.size):
            starts = np.zeros(ncells + 1, dtype=np.int64)
            np.cumsum(np.bincount(key, minlength=ncells), out=starts[1:])
            return cls(xs, ys, cell, ox, oy, ncx, ncy, order, starts, None)
        return cls(xs, ys, cell, ox, oy, ncx, ncy, order, None, key[order])

    def __len__(self) -> int:
        return int(self.x.size)

    def pairs(self, qx: npt.ArrayLike, qy: npt.ArrayLike, radius: int) -> tuple[Idx, Idx, I64]:
        """Every (query, point) pair at squared distance <= radius².

        Args:
            qx, qy: int (Q,), query points, same unit as the grid.
            radius: int >= 0.

        Returns:
            ``(iq, ip, d2)``: intp (K,) query indices (ascending), intp (K,)
            indices into the grid's points, int64 (K,) squared distances.
        """
        qxs, qys = _ints(qx), _ints(qy)
        none = (np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.int64))
        if radius < 0 or qxs.size == 0 or self.x.size == 0:
            return none
        if qxs.size * self.x.size <= DIRECT_PAIRS:
            return self._pairs_direct(qxs, qys, radius)
        reach = -(-radius // self.cell)
        offs = np.arange(-reach, reach + 1, dtype=np.int64)
        width = offs.size
        qcx = (qxs - self.ox) // self.cell
        qcy = (qys - self.oy) // self.cell
        # Skip query points whose neighbourhood misses the grid entirely.
        near = (qcx >= -reach) & (qcx < self.ncx + reach) & (qcy >= -reach) & (qcy < self.ncy + reach)
        qi = np.flatnonzero(near)
        if qi.size == 0:
            return none
        ncx = qcx[qi][:, None, None] + offs[None, :, None]
        ncy = qcy[qi][:, None, None] + offs[None, None, :]
        valid = (ncx >= 0) & (ncx < self.ncx) & (ncy >= 0) & (ncy < self.ncy)
        key = np.where(valid, ncx * self.ncy + ncy, 0).reshape(-1)
        if self.starts is not None:
            lo = self.starts[key]
            hi = self.starts[key + 1]
        else:
            assert self.keys is not None
            lo = np.searchsorted(self.keys, key, side="left").astype(np.int64)
            hi = np.searchsorted(self.keys, key, side="right").astype(np.int64)
        cnt = np.where(valid.reshape(-1), hi - lo, 0)
        used = np.flatnonzero(cnt)
        if used.size == 0:
            return none
        lo, cnt = lo[used], cnt[used]
        owner = qi[used // (width * width)]
        # Expand each [lo, lo+cnt) range: position = k + (lo - first output index of the range).
        first = np.cumsum(cnt) - cnt
        total = int(first[-1] + cnt[-1])
        pos = np.arange(total, dtype=np.int64) + np.repeat(lo - first, cnt)
        iq = np.repeat(owner, cnt)
        ip = self.order[pos]
        dx = qxs[iq] - self.x[ip]
        dy = qys[iq] - self.y[ip]
        d2 = dx * dx + dy * dy
        keep = d2 <= radius * radius
        return iq[keep].astype(np.intp), ip[keep], d2[keep]

    def _pairs_direct(self, qxs: I64, qys: I64, radius: int) -> tuple[Idx, Idx, I64]:
        """``pairs`` for a few combinations: check each one, in a handful of numpy calls
        instead of the walk's few dozen (the walk's per-call cost dominates when the
        arrays are tiny). Taking the points in the grid's order (cell key, then index)
        gives the very pairs the walk finds, in the very same order: the walk visits a
        query's neighbour cells in ascending key order."""
        px, py = self.x[self.order], self.y[self.order]
        dx = qxs[:, None] - px[None, :]
        dy = qys[:, None] - py[None, :]
        d2 = dx * dx + dy * dy
        iq, j = np.nonzero(d2 <= radius * radius)
        return iq.astype(np.intp), self.order[j], d2[iq, j]

    def nearest(self, qx: npt.ArrayLike, qy: npt.ArrayLike, radius: int) -> tuple[Idx, I64]:
        """The nearest grid point within ``radius`` of each query point.

        Returns:
            ``(ip, d2)``: intp (Q,) index of the nearest point (-1 where none;
            ties go to the lower index) and int64 (Q,) its squared distance
            (-1 where none).
        """
        q = _ints(qx).size
        iq, ip, d2 = self.pairs(qx, qy, radius)
        return nearest_of_pairs(q, iq, ip, d2)


def nearest_of_pairs(n: int, ia: Idx, ib: Idx, d2: I64) -> tuple[Idx, I64]:
    """For each a in [0, n): the b of its closest pair (ties: lower b), or -1.

    Args:
        n: number of a's.
        ia, ib: intp (K,), pair indices; d2: int64 (K,), their squared distances.

    Returns:
        intp (n,) chosen b (-1 where a has no pair), int64 (n,) its d2 (-1 where none).
    """
    best = np.full(n, -1, dtype=np.intp)
    dist = np.full(n, -1, dtype=np.int64)
    if ia.size == 0:
        return best, dist
    order = np.lexsort((ib, d2, ia))
    sa = ia[order]
    first = np.ones(sa.size, dtype=np.bool_)
    first[1:] = sa[1:] != sa[:-1]
    sel = order[first]
    best[ia[sel]] = ib[sel]
    dist[ia[sel]] = d2[sel]
    return best, dist


def pairs_within(
    ax: npt.ArrayLike, ay: npt.ArrayLike, bx: npt.ArrayLike, by: npt.ArrayLike, radius: int, cell: int | None = None
) -> tuple[Idx, Idx]:
    """All index pairs (ia, ib) with ``(ax-bx)² + (ay-by)² <= radius²``.

    Bins ``b`` into a grid of side ``cell`` (default: ``radius``, so a 3 x 3
    neighbourhood) and queries it with ``a``. Pairs come sorted by ``ia``.
    """
    grid = Grid.build(bx, by, cell if cell is not None else max(1, radius))
    ia, ib, _ = grid.pairs(ax, ay, radius)
    return ia, ib


def nearest(
    ax: npt.ArrayLike, ay: npt.ArrayLike, bx: npt.ArrayLike, by: npt.ArrayLike, radius: int, cell: int | None = None
) -> tuple[Idx, I64]:
    """For each a, the index of the nearest b within ``radius`` (-1 if none) and its d2."""
    grid = Grid.build(bx, by, cell if cell is not None else max(1, radius))
    return grid.nearest(ax, ay, radius)

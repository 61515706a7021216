"""Column snapshots, keyframes and deltas, and the state checksum.

A ``Snapshot`` is the replicated state at one tick: entity ids (ascending)
and one array per replicated column, in the wire dtypes of the ruleset's
schema. A delta from a base snapshot to the current one carries, column by
column as little-endian bytes:

- ``gone``: ids present at the base and removed since;
- ``rows`` and ``cols``: for the kept entities, the values that differ from
  the base *extrapolated* to the current tick with the schema's motion rule
  (so things moving steadily cost nothing), as absolute values or as small
  differences from the prediction, whichever is smaller;
- ``new``: entities spawned since the base, every column.

A keyframe is a delta from nothing. Encoder and decoder are mirror images;
PROTOCOL.md is the normative description. ``rows`` and ``cols`` are a row
set (``server/protocol/rowset.py``, shared with the replay's input codec).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import numpy.typing as npt
from attrs import frozen

from game.motion import extrapolate
from game.schema import INT_DTYPES, Axis, RulesetSpec
from game.world import World
from server.protocol.errors import InvalidField
from server.protocol.rowset import ROWS_MASK as ROWS_MASK  # the formats of ``rows``, re-exported
from server.protocol.rowset import ROWS_U16 as ROWS_U16
from server.protocol.rowset import ROWS_U32 as ROWS_U32
from server.protocol.rowset import RowSetError, array_from, decode_cells, decode_rows, encode_cells

Array = npt.NDArray[Any]

#: Value encodings in ``cols`` entries.
ENC_ABS, ENC_D8, ENC_D16 = 0, 1, 2

_U32 = np.dtype("<u4")
_DIFF_DTYPES: dict[int, np.dtype[Any]] = {ENC_D8: np.dtype("<i1"), ENC_D16: np.dtype("<i2")}


@frozen
class WireColumn:
    """A replicated column as the wire knows it: name, little-endian dtype, fixed-point scale."""

    name: str
    dtype: np.dtype[Any]
    scale: int = 1


@frozen
class WireSchema:
    """The replicated columns and motion axes both ends agree on (``welcome.ruleset``)."""

    columns: tuple[WireColumn, ...]
    motion: tuple[Axis, ...] = ()

    @classmethod
    def from_spec(cls, spec: RulesetSpec) -> WireSchema:
        cols = tuple(WireColumn(c.name, np.dtype(c.wire).newbyteorder("<"), c.scale) for c in spec.replicated)
        return cls(cols, spec.motion)

    @classmethod
    def from_wire(cls, desc: Any) -> WireSchema:
        """Parse ``welcome.ruleset``; InvalidField when it is not a valid description."""
        try:
            cols = []
            for c in desc["columns"]:
                if c["dtype"] not in INT_DTYPES:
                    raise InvalidField(f"column {c['name']!r}: unknown dtype {c['dtype']!r}")
                cols.append(WireColumn(str(c["name"]), np.dtype(c["dtype"]).newbyteorder("<"), int(c.get("scale", 1))))
            motion = tuple(Axis(str(a["pos"]), str(a["vel"]), int(a["lo"]), int(a["hi"])) for a in desc.get("motion", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidField(f"bad ruleset description: {exc!r}") from None
        names = {c.name for c in cols}
        for a in motion:
            if a.pos not in names or a.vel not in names:
                raise InvalidField(f"motion axis names an unknown column: {a}")
        return cls(tuple(cols), motion)

    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def checksum(ids: npt.NDArray[np.uint32], cols: tuple[Array, ...] | list[Array]) -> int:
    """CRC-32 (zlib) of the ids as uint32 LE, then each column's LE bytes in schema order."""
    crc = zlib.crc32(ids.astype(_U32, copy=False).tobytes())
    for c in cols:
        crc = zlib.crc32(c.tobytes(), crc)
    return crc


def same_ids(a: npt.NDArray[np.uint32], b: npt.NDArray[np.uint32]) -> bool:
    """Whether two snapshots hold the same ids, row for row (``is`` first: ``Snapshot.capture`` shares them)."""
    return a is b or (len(a) == len(b) and bool(np.array_equal(a, b)))


@frozen(eq=False)
class Snapshot:
    """Replicated state at ``tick``: ids uint32 (N,) ascending; cols in wire dtypes (N,) each.

    ``checksum`` is computed when first asked for (a tick whose clients all
    receive filtered views never needs it), unless given to the constructor
    (a filtered state's view sum: ``server.protocol.interest``).
    """

    tick: int
    ids: npt.NDArray[np.uint32]
    cols: tuple[Array, ...]
    _checksum: int | None = None

    @property
    def checksum(self) -> int:
        if self._checksum is None:
            object.__setattr__(self, "_checksum", checksum(self.ids, self.cols))
        assert self._checksum is not None
        return self._checksum

    @classmethod
    def of(cls, tick: int, ids: npt.NDArray[np.uint32], cols: tuple[Array, ...] | list[Array]) -> Snapshot:
        return cls(tick, ids, tuple(cols))

    @classmethod
    def capture(cls, world: World, before: Snapshot | None = None) -> Snapshot:
        """The world's replicated state now; with the same ids as ``before`` (most ticks: nobody came or
        went) it shares ``before``'s ids array, so comparing the two ticks' ids is ``is``, not a pass."""
        ids, cols = world.replicated()
        if before is not None and same_ids(before.ids, ids):
            ids = before.ids
        return cls.of(world.tick, ids, tuple(cols))

    @classmethod
    def empty(cls, schema: WireSchema, tick: int = 0) -> Snapshot:
        return cls.of(tick, np.zeros(0, _U32), tuple(np.zeros(0, c.dtype) for c in schema.columns))

    def column(self, schema: WireSchema, name: str) -> Array:
        return self.cols[schema.names().index(name)]


def predict(schema: WireSchema, base: Snapshot, tick: int) -> tuple[Array, ...]:
    """``base``'s columns extrapolated to ``tick`` by the schema's motion rule (what a delta is taken against).

    Extrapolating is stepping: predicting from a prediction of ``base`` at an earlier tick gives the same
    arrays as predicting from ``base`` (the encoder carries its bases' predictions from tick to tick).
    """
    named = dict(zip(schema.names(), base.cols))
    moved = extrapolate(schema.motion, named, tick - base.tick)
    return tuple(moved[n] for n in schema.names())


def _keyframe_body(cur: Snapshot) -> dict[str, Any]:
    if len(cur.ids) == 0:
        return {}
    return {"new": [cur.ids.astype(_U32).tobytes(), [c.tobytes() for c in cur.cols]]}


def encode_body(schema: WireSchema, base: Snapshot | None, cur: Snapshot,
                predicted: tuple[Array, ...] | None = None) -> dict[str, Any]:
    """The delta fields (``gone``, ``rows``, ``cols``, ``new``) taking ``base`` to ``cur``.

    ``base`` None gives a keyframe. Empty fields are left out. ``predicted``: ``predict(schema, base,
    cur.tick)`` if the caller has it already.
    """
    if base is None:
        return _keyframe_body(cur)
    n_base = len(base.ids)
    if base.ids is cur.ids or (n_base == len(cur.ids) and np.array_equal(base.ids, cur.ids)):
        keep = np.ones(n_base, dtype=bool)  # nobody came or went: most ticks, and cheaper than a search
    elif n_base and len(cur.ids):
        pos = np.minimum(np.searchsorted(cur.ids, base.ids), len(cur.ids) - 1)
        keep = cur.ids[pos] == base.ids
    else:
        keep = np.zeros(n_base, dtype=bool)
    k = int(np.count_nonzero(keep))
    # New ids are always above every base id (ids only grow), so the kept
    # entities are exactly cur[:k]. Should that ever not hold, send a keyframe.
    if not np.array_equal(cur.ids[:k], base.ids[keep]) or (k < len(cur.ids) and n_base and cur.ids[k] <= base.ids[-1]):
        return _keyframe_body(cur)

    body: dict[str, Any] = {}
    if k < n_base:
        body["gone"] = base.ids[~keep].astype(_U32).tobytes()
    if k:
        if predicted is None:
            predicted = predict(schema, base, cur.tick)
        all_kept = k == n_base
        pred = [p if all_kept else p[keep] for p in predicted]
        act = [c[:k] for c in cur.cols]
        cells = encode_cells([a != p for a, p in zip(act, pred)])
        if cells is not None:
            body["rows"], changed = cells
            body["cols"] = [[ci, sel, *_encode_values(act[ci][which], pred[ci][which])] for ci, sel, which in changed]
    if k < len(cur.ids):
        body["new"] = [cur.ids[k:].astype(_U32).tobytes(), [c[k:].tobytes() for c in cur.cols]]
    return body


def _encode_values(actual: Array, predicted: Array) -> list[Any]:
    """[enc, bytes]: absolute values, or wrapped int8/int16 differences when smaller."""
    itemsize = actual.dtype.itemsize
    if itemsize > 1:
        diff = actual.astype(np.int64) - predicted.astype(np.int64)
        lo, hi = int(diff.min()), int(diff.max())
        if -128 <= lo and hi <= 127:
            return [ENC_D8, diff.astype("<i1").tobytes()]
        if itemsize > 2 and -32768 <= lo and hi <= 32767:
            return [ENC_D16, diff.astype("<i2").tobytes()]
    return [ENC_ABS, actual.tobytes()]


def apply_body(schema: WireSchema, base: Snapshot | None, tick: int, body: dict[str, Any]) -> Snapshot:
    """The snapshot at ``tick`` from ``base`` (None: keyframe) and a delta's fields.

    Raises InvalidField when the delta does not fit the base or the schema.
    The checksum of the result is computed, not trusted: compare it with the
    update's ``sum`` to detect a desync.
    """
    try:
        return _apply_body(schema, base, tick, body)
    except RowSetError as exc:
        raise InvalidField(str(exc)) from None


def _apply_body(schema: WireSchema, base: Snapshot | None, tick: int, body: dict[str, Any]) -> Snapshot:
    ncols = len(schema.columns)
    if base is None:
        ids: npt.NDArray[np.uint32] = np.zeros(0, _U32)
        cols: list[Array] = [np.zeros(0, c.dtype) for c in schema.columns]
    else:
        ids = base.ids
        cols = list(predict(schema, base, tick))
        gone_raw = body.get("gone")
        if gone_raw is not None:
            gone = array_from(gone_raw, _U32, None, "gone")
            keep = ~np.isin(ids, gone)
            if len(ids) - int(np.count_nonzero(keep)) != len(gone):
                raise InvalidField("gone: names ids the base does not have")
            ids = ids[keep]
            cols = [c[keep] for c in cols]
        else:
            cols = [c.copy() for c in cols]
    k = len(ids)

    rows_field = body.get("rows")
    if rows_field is not None:
        rows = decode_rows(rows_field, k, "rows")
        for ci, which, (_, _, enc, data) in decode_cells(rows, body.get("cols") or [], ncols, 4, "cols"):
            col = cols[ci]
            if enc == ENC_ABS:
                col[which] = array_from(data, col.dtype, len(which), f"column {ci}")
            elif enc in _DIFF_DTYPES:
                diff = array_from(data, _DIFF_DTYPES[enc], len(which), f"column {ci}")
                col[which] = (col[which].astype(np.int64) + diff).astype(col.dtype)
            else:
                raise InvalidField(f"cols: unknown encoding {enc!r}")
    elif body.get("cols"):
        raise InvalidField("cols without rows")

    new = body.get("new")
    if new is not None:
        try:
            new_ids_raw, new_cols_raw = new
        except (TypeError, ValueError):
            raise InvalidField("new: expected [ids, columns]") from None
        new_ids = array_from(new_ids_raw, _U32, None, "new ids")
        if not isinstance(new_cols_raw, (list, tuple)) or len(new_cols_raw) != ncols:
            raise InvalidField(f"new: expected {ncols} columns")
        if len(new_ids) and ((k and new_ids[0] <= ids[-1]) or np.any(np.diff(new_ids.astype(np.int64)) <= 0)):
            raise InvalidField("new: ids must ascend past every existing id")
        ids = np.concatenate([ids, new_ids])
        cols = [
            np.concatenate([c, array_from(raw, c.dtype, len(new_ids), f"new column {i}")])
            for i, (c, raw) in enumerate(zip(cols, new_cols_raw))
        ]
    return Snapshot.of(tick, ids, tuple(cols))

"""Row sets: which cells of a table changed, as packed bytes. One codec for the wire and for replays.

A table of ``n`` rows and some columns changed in some cells. The change is
written in two parts:

- ``rows = [format, bin]``: the rows ``R`` (ascending, ``r`` of them) with at
  least one changed cell. ``ROWS_MASK``: a bitmask over the ``n`` rows,
  ``ceil(n/8)`` bytes, row ``i`` set if ``(data[i >> 3] >> (i & 7)) & 1``;
  ``ROWS_U16`` / ``ROWS_U32``: the row indices as uint16 / uint32 LE (uint32
  only when ``n`` > 65536). The bitmask when it is not longer than the index
  list.
- one entry per column that changed somewhere in ``R``, in column order,
  ``[column, selection, ...]``: ``selection`` nil when the column changed in
  every row of ``R``, else a bitmask over ``R`` (``ceil(r/8)`` bytes, same bit
  order). What follows (the values of the selected rows) is the user's.

Two users, one encoding: a delta's ``rows`` and ``cols`` (PROTOCOL.md,
*Applying an update*, steps 4 and 5; ``server/protocol/delta.py``) and a
replay's input-table changes (REPLAY.md, *Tick*;
``server/replay/inputs.py``). ``encode_cells`` and ``decode_cells`` are
mirror images; ``bitmask``/``from_bitmask`` and ``array_from`` are the
primitives both formats also use for their other fields.

Pure: numpy only; bytes and arrays in, bytes and arrays out. Bytes that do
not decode raise ``RowSetError`` (a ``ValueError``) naming the field; each
user maps it to its own error (``InvalidField`` on the wire, ``CorruptReplay``
in a file).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: Row-set formats: the first element of ``rows``.
ROWS_MASK, ROWS_U16, ROWS_U32 = 0, 1, 2
#: Most rows whose indices fit ``ROWS_U16``.
_U16_ROWS = 0x10000
_INDEX_DTYPES: dict[int, np.dtype[Any]] = {ROWS_U16: np.dtype("<u2"), ROWS_U32: np.dtype("<u4")}
_FORMATS = frozenset({ROWS_MASK, *_INDEX_DTYPES})
_U8 = np.dtype(np.uint8)
_BYTES = (bytes, bytearray, memoryview)

Array = npt.NDArray[Any]
Rows = npt.NDArray[np.intp]
#: What ``encode_cells`` says about one changed column: its index, its selection (None: every row
#: of ``R``) and the rows it covers, int (m,) ascending.
CellColumn = tuple[int, bytes | None, Rows]


class RowSetError(ValueError):
    """Bytes that are not a valid row set, bitmask or array: ``what`` names the field."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(what, reason)
        self.what = what
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


# -- primitives ---------------------------------------------------------------------


def bitmask(mask: npt.NDArray[np.bool_]) -> bytes:
    """bool (n,) as ``ceil(n/8)`` bytes, least significant bit first."""
    return np.packbits(mask, bitorder="little").tobytes()


def from_bitmask(data: Any, count: int, what: str) -> npt.NDArray[np.bool_]:
    """The bool (count,) array of a ``bitmask``. RowSetError when ``data`` is not ``ceil(count/8)`` bytes."""
    size = (count + 7) // 8
    if not isinstance(data, _BYTES) or len(data) != size:
        got = f"{len(data)} bytes" if isinstance(data, _BYTES) else type(data).__name__
        raise RowSetError(what, f"expected a bitmask of {size} bytes for {count} rows, got {got}")
    return np.unpackbits(np.frombuffer(data, _U8), count=count, bitorder="little").view(np.bool_)


def array_from(data: Any, dtype: npt.DTypeLike, count: int | None, what: str) -> Array:
    """``data`` (bin) read as ``count`` values of ``dtype`` (any whole number of them for None); read-only.

    Raises:
        RowSetError: ``data`` is not bytes, or not that many values.
    """
    dt = np.dtype(dtype)
    if not isinstance(data, _BYTES):
        raise RowSetError(what, f"expected bin, got {type(data).__name__}")
    if len(data) % dt.itemsize or (count is not None and len(data) != count * dt.itemsize):
        raise RowSetError(what, f"{len(data)} bytes is not {'a whole number of' if count is None else count} x {dt}")
    return np.frombuffer(data, dt)


# -- rows -----------------------------------------------------------------------------


def encode_rows(changed: npt.NDArray[np.bool_], rows: Rows) -> list[Any]:
    """``[format, bin]`` for ``rows`` (the indices where ``changed``, bool (n,), is set): the shorter form."""
    n = len(changed)
    index_size = 2 if n <= _U16_ROWS else 4
    if (n + 7) // 8 <= index_size * len(rows):
        return [ROWS_MASK, bitmask(changed)]
    if index_size == 2:
        return [ROWS_U16, rows.astype("<u2").tobytes()]
    return [ROWS_U32, rows.astype("<u4").tobytes()]


def decode_rows(field: Any, count: int, what: str) -> Rows:
    """The row indices, int (r,) ascending, that ``field`` (``[format, bin]``) names among ``count`` rows.

    Raises:
        RowSetError: not ``[format, bin]``, an unknown format, a bitmask of the wrong size, or
            indices out of range or not ascending.
    """
    if not isinstance(field, (list, tuple)) or len(field) != 2:
        raise RowSetError(what, "expected [format, bin]")
    fmt, data = field
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt not in _FORMATS:
        raise RowSetError(what, f"unknown format {fmt!r}")
    if fmt == ROWS_MASK:
        return np.flatnonzero(from_bitmask(data, count, what))
    rows = array_from(data, _INDEX_DTYPES[fmt], None, what).astype(np.intp)
    if len(rows) and (rows[-1] >= count or np.any(rows[1:] <= rows[:-1])):
        raise RowSetError(what, f"indices out of range [0, {count}) or not ascending")
    return rows


# -- cells ------------------------------------------------------------------------------


def encode_cells(changed: Sequence[npt.NDArray[np.bool_]] | npt.NDArray[np.bool_]) -> tuple[list[Any], list[CellColumn]] | None:
    """Which cells changed, as ``rows`` and one (column, selection, rows covered) per changed column.

    Args:
        changed: per column, bool (n,): True where that column's value changed in that
            row. A list of arrays or a bool (columns, n) array (a transposed (n, columns)
            table is fine).

    Returns:
        None when no cell changed; else the ``rows`` field and, for each column that changed
        in some row, in column order: its index, its selection (None when it changed in every
        changed row, else a bitmask over them) and the indices of the rows it covers, which
        the caller writes the values of.
    """
    row_changed: npt.NDArray[np.bool_] = np.logical_or.reduce(changed)
    rows = np.flatnonzero(row_changed)
    r = len(rows)
    if not r:
        return None
    columns: list[CellColumn] = []
    for c, d in enumerate(changed):  # a loop per column, not per row
        # A column's changes are a subset of the changed rows: counting them over the whole
        # column says whether it covers all of them, with no gather (this runs per tick).
        m = np.count_nonzero(d)
        if m == r:
            columns.append((c, None, rows))
        elif m:
            columns.append((c, bitmask(d[rows]), np.flatnonzero(d)))
    return encode_rows(row_changed, rows), columns


def decode_cells(rows: Rows, entries: Any, columns: int, width: int,
                 what: str) -> Iterator[tuple[int, Rows, list[Any] | tuple[Any, ...]]]:
    """Mirror image of ``encode_cells``: per entry, its column, the rows it covers and the entry itself.

    Args:
        rows: the changed rows, ``decode_rows`` of the ``rows`` field.
        entries: the array of entries ``[column, selection, ...]``, each ``width`` items long.
        columns: columns in the table.
        what: the entries' field name, for errors.

    Raises:
        RowSetError: an entry of another shape, a column out of range or named twice, a
            selection of the wrong size.
    """
    if not isinstance(entries, (list, tuple)):
        raise RowSetError(what, "expected an array of column entries")
    selection = f"{what} selection"
    seen: set[int] = set()
    for entry in entries:
        if not isinstance(entry, (list, tuple)) or len(entry) != width:
            raise RowSetError(what, f"expected entries of {width} items [column, selection, ...]")
        c, sel = entry[0], entry[1]
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < columns:
            raise RowSetError(what, f"column index {c!r} out of range [0, {columns})")
        if c in seen:
            raise RowSetError(what, f"column {c} has two entries")
        seen.add(c)
        yield c, rows if sel is None else rows[from_bitmask(sel, len(rows), selection)], entry

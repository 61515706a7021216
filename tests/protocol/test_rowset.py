"""Row sets: the changed cells of a table as ``rows`` and per-column selections, for deltas and replays."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from server.protocol.rowset import (
    ROWS_MASK,
    ROWS_U16,
    ROWS_U32,
    RowSetError,
    array_from,
    bitmask,
    decode_cells,
    decode_rows,
    encode_cells,
    encode_rows,
    from_bitmask,
)


def wire(value: Any) -> Any:
    """``value`` as a peer reads it: through msgpack and back."""
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False)


def decode(rows_field: Any, entries: list[Any], n: int, columns: int) -> np.ndarray:
    """The changed cells, bool (columns, n), that a row set names (entries carry no values here)."""
    changed = np.zeros((columns, n), bool)
    for c, which, entry in decode_cells(decode_rows(rows_field, n, "rows"), entries, columns, 2, "cols"):
        assert list(entry[:1]) == [c]
        changed[c, which] = True
    return changed


tables = hnp.arrays(np.bool_, st.tuples(st.integers(0, 6), st.integers(0, 300)),
                    elements=st.booleans() | st.sampled_from([False] * 6))


@given(tables)
@settings(max_examples=300, deadline=None)
def test_any_set_of_changed_cells_round_trips_through_msgpack(changed: np.ndarray) -> None:
    cells = encode_cells(changed)
    if not changed.any():
        assert cells is None
        return
    assert cells is not None
    rows_field, columns = cells
    assert [c for c, _, _ in columns] == [c for c in range(changed.shape[0]) if changed[c].any()]
    for c, _, which in columns:
        assert which.tolist() == np.flatnonzero(changed[c]).tolist()  # the rows whose values the user writes
    entries = wire([[c, sel] for c, sel, _ in columns])
    assert np.array_equal(decode(wire(rows_field), entries, changed.shape[1], changed.shape[0]), changed)


@given(tables)
@settings(max_examples=100, deadline=None)
def test_a_transposed_table_encodes_to_the_same_bytes_as_a_contiguous_one(changed: np.ndarray) -> None:
    def packed(cells: Any) -> Any:
        return None if cells is None else wire([cells[0], [[c, sel, which.tolist()] for c, sel, which in cells[1]]])

    by_row = np.ascontiguousarray(changed.T)
    assert packed(encode_cells(by_row.T)) == packed(encode_cells(changed))


@given(st.integers(1, 3000), st.data())
@settings(max_examples=200, deadline=None)
def test_the_rows_take_the_shorter_form_and_the_bitmask_on_a_tie(n: int, data: st.DataObject) -> None:
    rows = np.array(sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n))), np.intp)
    changed = np.zeros(n, bool)
    changed[rows] = True
    fmt, raw = encode_rows(changed, rows)
    if (n + 7) // 8 <= 2 * len(rows):
        assert fmt == ROWS_MASK and raw == bitmask(changed)
    else:
        assert fmt == ROWS_U16 and np.frombuffer(raw, "<u2").tolist() == rows.tolist()
    assert decode_rows([fmt, raw], n, "rows").tolist() == rows.tolist()


def test_row_bytes_are_as_the_specs_say() -> None:
    assert bitmask(np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1], bool)) == b"\x01\x02"  # least significant bit first
    one_of_16 = np.zeros(16, bool)
    one_of_16[3] = True
    assert encode_rows(one_of_16, np.array([3])) == [ROWS_MASK, b"\x08\x00"]  # 2 bytes either way: the bitmask
    one_of_17 = np.zeros(17, bool)
    one_of_17[16] = True
    assert encode_rows(one_of_17, np.array([16])) == [ROWS_U16, b"\x10\x00"]


def test_tables_over_65536_rows_name_rows_by_uint32_index() -> None:
    n = 70_000
    changed = np.zeros((1, n), bool)
    changed[0, [5, 69_999]] = True
    cells = encode_cells(changed)
    assert cells is not None
    rows_field, [(column, selection, which)] = cells
    assert rows_field == [ROWS_U32, np.array([5, 69_999], "<u4").tobytes()]
    assert (column, selection, which.tolist()) == (0, None, [5, 69_999])
    assert np.array_equal(decode(rows_field, [[0, None]], n, 1), changed)


def test_a_column_changed_in_every_changed_row_has_no_selection_and_others_a_bitmask_over_them() -> None:
    changed = np.zeros((3, 40), bool)
    changed[0, [2, 9]] = True
    changed[2, 9] = True
    cells = encode_cells(changed)
    assert cells is not None
    rows_field, columns = cells
    assert rows_field == [ROWS_U16, np.array([2, 9], "<u2").tobytes()]
    assert [(c, sel, which.tolist()) for c, sel, which in columns] == [(0, None, [2, 9]), (2, b"\x02", [9])]


def test_arrays_are_read_little_endian_and_sized_exactly() -> None:
    assert array_from(b"\x01\x00\x02\x00", "<i2", 2, "x").tolist() == [1, 2]
    assert array_from(b"", "<u4", None, "x").tolist() == []
    assert from_bitmask(b"\x05", 3, "m").tolist() == [True, False, True]


# -- bad row sets ---------------------------------------------------------------------------


@pytest.mark.parametrize("call, message", [
    (lambda: decode_rows([9, b""], 4, "rows"), "rows: unknown format 9"),
    (lambda: decode_rows([True, b"\x01"], 4, "rows"), "rows: unknown format True"),
    (lambda: decode_rows("nonsense", 4, "rows"), "rows: expected [format, bin]"),
    (lambda: decode_rows([ROWS_U16, b"\x04\x00"], 4, "rows"), "rows: indices out of range [0, 4) or not ascending"),
    (lambda: decode_rows([ROWS_U32, np.array([2, 1], "<u4").tobytes()], 4, "rows"), "not ascending"),
    (lambda: decode_rows([ROWS_U16, np.array([1, 1], "<u2").tobytes()], 4, "rows"), "not ascending"),
    (lambda: decode_rows([ROWS_U16, b"\x01"], 4, "rows"), "rows: 1 bytes is not a whole number of x uint16"),
    (lambda: decode_rows([ROWS_MASK, b"\x01\x00"], 4, "rows"), "rows: expected a bitmask of 1 bytes for 4 rows, got 2 bytes"),
    (lambda: decode_rows([ROWS_MASK, 7], 4, "rows"), "got int"),
    (lambda: list(decode_cells(np.arange(3), [[5, None]], 2, 2, "cols")), "cols: column index 5 out of range [0, 2)"),
    (lambda: list(decode_cells(np.arange(3), [[True, None]], 2, 2, "cols")), "column index True"),
    (lambda: list(decode_cells(np.arange(3), [[1, None], [1, None]], 2, 2, "cols")), "cols: column 1 has two entries"),
    (lambda: list(decode_cells(np.arange(3), [[0]], 2, 2, "cols")), "cols: expected entries of 2 items"),
    (lambda: list(decode_cells(np.arange(3), 5, 2, 2, "cols")), "cols: expected an array of column entries"),
    (lambda: list(decode_cells(np.arange(9), [[0, b"\x01"]], 2, 2, "cols")), "cols selection: expected a bitmask of 2 bytes"),
    (lambda: array_from("text", "<i2", None, "values"), "values: expected bin, got str"),
    (lambda: array_from(b"\x00" * 6, "<i4", 2, "values"), "values: 6 bytes is not 2 x int32"),
])
def test_bytes_that_are_not_a_row_set_raise_a_row_set_error_naming_the_field(call: Any, message: str) -> None:
    with pytest.raises(RowSetError) as info:
        call()
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)  # each user maps it to its own error

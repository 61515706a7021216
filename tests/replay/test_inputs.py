"""The input track and its per-tick codec: the smallest storage dtype, changes as row sets, whole tables."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from game.rules import InputBatch, get_ruleset
from server.protocol.rowset import ROWS_MASK, ROWS_U16
from server.replay.format import Header, ReplayEncoder, parse_replay
from server.replay.inputs import INPUTS_DELTA, INPUTS_FULL, InputTrack, apply_inputs, encode_inputs, input_dtype
from tests.replay.helpers import batch, drift_header


@pytest.mark.parametrize("lo, hi, dtype", [(-1, 1, "i1"), (0, 255, "u1"), (-128, 127, "i1"), (0, 1000, "<i2"), (-200, 5, "<i2")])
def test_input_fields_are_stored_in_the_smallest_dtype_holding_their_range(lo: int, hi: int, dtype: str) -> None:
    assert input_dtype(lo, hi) == np.dtype(dtype)


tables = st.lists(
    st.tuples(
        st.sets(st.integers(1, 40), max_size=3),  # players leaving (those present)
        st.sets(st.integers(1, 40), max_size=3),  # players joining (those absent)
        st.integers(0, 2**32 - 1),  # seed of the new values
        st.floats(0, 1),  # share of cells that change
    ),
    max_size=25,
)


@given(tables)
@settings(max_examples=150, deadline=None)
def test_input_deltas_reproduce_any_sequence_of_tables(steps: list[tuple[set[int], set[int], int, float]]) -> None:
    h = Header.for_spec(get_ruleset("arena").spec, match="m", seed=1, options={}, tick_rate=30, start_time="")
    enc = ReplayEncoder(h)
    data = enc.start()
    players: list[int] = []
    values = np.zeros((0, 4), np.int16)
    expected = []
    for tick, (leave, join, seed, share) in enumerate(steps, start=1):
        leaves = sorted(p for p in leave if p in players)
        joins = sorted(p for p in join if p not in players and p not in leaves)
        keep = [i for i, p in enumerate(players) if p not in leaves]
        players = [players[i] for i in keep]
        values = values[keep]
        for p in joins:
            at = int(np.searchsorted(players, p))
            players.insert(at, p)
            values = np.insert(values, at, 0, axis=0)
        rng = np.random.default_rng(seed)
        new = np.stack([rng.integers(-1, 2, len(players)), rng.integers(-1, 2, len(players)),
                        rng.integers(0, 256, len(players)), rng.integers(0, 2, len(players))], axis=1).astype(np.int16)
        mask = rng.random(new.shape) < share
        values = np.where(mask, new, values).astype(np.int16)
        expected.append((list(players), values.copy()))
        data += enc.step(tick, leaves, [(p, f"n{p}") for p in joins], InputBatch(np.array(players, np.int32), values.reshape(len(players), 4)))
    r = parse_replay(data)
    track = InputTrack(4)
    for rec, (want_players, want_values) in zip(r.ticks, expected):
        track.membership(rec.leaves, rec.joins)
        apply_inputs(h.input_dtypes, track, rec.inputs)
        assert track.players.tolist() == want_players
        assert np.array_equal(track.values, want_values.reshape(len(want_players), 4))


def test_a_table_whose_players_differ_from_the_prediction_is_recorded_whole() -> None:
    enc = ReplayEncoder(drift_header())
    data = enc.start() + enc.step(1, [], [], batch([4, 9], [[1, 1], [-1, 0]]))  # no joins, yet two players
    r = parse_replay(data)
    assert r.ticks[0].inputs[0] == 1
    track = InputTrack(2)
    apply_inputs(r.header.input_dtypes, track, r.ticks[0].inputs)
    assert track.players.tolist() == [4, 9] and track.values.tolist() == [[1, 1], [-1, 0]]


# -- the codec at the byte level ------------------------------------------------------------


DRIFT_DTYPES = drift_header().input_dtypes


def track_of(players: list[int], values: list[list[int]]) -> InputTrack:
    track = InputTrack(2)
    track.players = np.array(players, np.int32)
    track.values = np.array(values, np.int16).reshape(len(players), 2)
    return track


def test_unchanged_inputs_are_no_change_at_all() -> None:
    assert encode_inputs(DRIFT_DTYPES, track_of([1, 2], [[1, 0], [0, -1]]), batch([1, 2], [[1, 0], [0, -1]])) is None


def test_changed_cells_are_a_row_set_of_players_and_a_selection_per_field() -> None:
    track = track_of([1, 2, 3], [[0, 0], [0, 0], [0, 0]])
    change = encode_inputs(DRIFT_DTYPES, track, batch([1, 2, 3], [[0, 0], [1, 0], [-1, 1]]))
    # Rows 1 and 2 changed: a 1-byte bitmask beats two uint16 indices. dx changed in both (no
    # selection), dy only in the second of them; values in the field's storage dtype, int8.
    assert change == [INPUTS_DELTA, [ROWS_MASK, b"\x06"], [[0, None, b"\x01\xff"], [1, b"\x02", b"\x01"]]]
    apply_inputs(DRIFT_DTYPES, track, change)
    assert track.values.tolist() == [[0, 0], [1, 0], [-1, 1]]


def test_a_few_changes_in_a_large_table_name_their_rows_by_index() -> None:
    players = list(range(100))
    track = track_of(players, [[0, 0]] * 100)
    values = [[0, 0]] * 100
    values[70] = [1, 1]
    change = encode_inputs(DRIFT_DTYPES, track, batch(players, values))
    assert change == [INPUTS_DELTA, [ROWS_U16, b"\x46\x00"], [[0, None, b"\x01"], [1, None, b"\x01"]]]


def test_other_players_are_the_whole_table_as_int32_ids_and_int16_values() -> None:
    change = encode_inputs(DRIFT_DTYPES, track_of([1], [[0, 0]]), batch([1, 5], [[1, 0], [0, -1]]))
    assert change == [INPUTS_FULL, np.array([1, 5], "<i4").tobytes(), np.array([1, 0, 0, -1], "<i2").tobytes()]


@pytest.mark.parametrize("change, message", [
    ("nonsense", "inputs: expected an array"),
    ([7, [ROWS_MASK, b"\x01"], []], "inputs: unknown form"),
    ([INPUTS_DELTA, [9, b""], []], "inputs rows: unknown format 9"),
    ([INPUTS_DELTA, [ROWS_MASK, b"\x01\x00"], []], "inputs rows: expected a bitmask of 1 bytes"),
    ([INPUTS_DELTA, [ROWS_U16, b"\x05\x00"], []], "inputs rows: indices out of range"),
    ([INPUTS_DELTA, [ROWS_MASK, b"\x01"], [[2, None, b"\x01"]]], "inputs: column index 2 out of range"),
    ([INPUTS_DELTA, [ROWS_MASK, b"\x01"], [[0, None]]], "inputs: expected entries of 3 items"),
    ([INPUTS_DELTA, [ROWS_MASK, b"\x03"], [[0, None, b"\x01"]]], "inputs field 0: 1 bytes is not 2 x int8"),
    ([INPUTS_DELTA, [ROWS_MASK, b"\x03"], [[0, b"\x01\x00", b"\x01"]]], "inputs selection: expected a bitmask of 1 bytes"),
    ([INPUTS_FULL, np.array([3, 1], "<i4").tobytes(), bytes(8)], "inputs: players must ascend"),
    ([INPUTS_FULL, np.array([1], "<i4").tobytes(), bytes(2)], "inputs values: 2 bytes is not 2 x int16"),
])
def test_a_malformed_change_is_a_value_error_naming_what_is_wrong(change: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        apply_inputs(DRIFT_DTYPES, track_of([1, 2], [[0, 0], [0, 0]]), change)


def test_a_table_with_a_lag_column_records_each_players_lag_after_its_fields() -> None:
    h = drift_header(lag_max=8)
    assert h.input_dtypes == (np.dtype("i1"), np.dtype("i1"), np.dtype("i1"))  # the lag: 0..8, int8
    enc = ReplayEncoder(h)
    data = enc.start()
    data += enc.step(1, [], [(1, "a"), (2, "b")], InputBatch(np.array([1, 2], np.int32), np.array([[1, 0], [0, 1]], np.int16), [0, 0]))
    data += enc.step(2, [], [], InputBatch(np.array([1, 2], np.int32), np.array([[1, 0], [0, 1]], np.int16), [5, 0]))
    r = parse_replay(data)
    assert r.header.lag_max == 8
    assert r.ticks[1].inputs == [INPUTS_DELTA, [ROWS_MASK, b"\x01"], [[2, None, b"\x05"]]]  # only the lag changed
    track = r.header.new_track()
    for rec in r.ticks:
        track.membership(rec.leaves, rec.joins)
        apply_inputs(h.input_dtypes, track, rec.inputs)
    applied = track.batch()
    assert applied.values.tolist() == [[1, 0], [0, 1]] and applied.lag.tolist() == [5, 0]


def test_joins_add_rows_of_zeros_in_player_order_and_leaves_remove_them() -> None:
    track = track_of([2, 8], [[1, 1], [-1, -1]])
    track.membership([8], [(5, "five"), (1, "one")])
    assert track.players.tolist() == [1, 2, 5] and track.values.tolist() == [[0, 0], [1, 1], [0, 0]]
    copy = track.copy()
    copy.values[0, 0] = 1
    assert track.values[0, 0] == 0 and copy.batch().values.tolist() == [[1, 0], [1, 1], [0, 0]]

"""Column deltas: property-based round trips, byte sharing, and bad deltas."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from game.motion import extrapolate
from game.schema import Axis
from server.protocol.codec import decode_server, encode_update_prefix, finish_update
from server.protocol.delta import (
    ENC_ABS,
    ENC_D8,
    ENC_D16,
    ROWS_MASK,
    ROWS_U16,
    ROWS_U32,
    Snapshot,
    WireColumn,
    WireSchema,
    apply_body,
    checksum,
    encode_body,
)
from server.protocol.errors import InvalidField

DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32"]
SCHEMA = WireSchema(
    tuple(WireColumn(n, np.dtype(d).newbyteorder("<")) for n, d in [
        ("kind", "uint8"), ("x", "int16"), ("y", "int16"), ("vx", "int8"), ("vy", "int8"),
        ("hp", "uint16"), ("score", "int32"), ("flags", "uint32"),
    ]),
    (Axis("x", "vx", 0, 32000), Axis("y", "vy", 0, 32000)),
)
NAMES = SCHEMA.names()


def random_rows(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    cols = []
    for c in SCHEMA.columns:
        if c.name in ("x", "y"):
            cols.append(rng.integers(0, 32001, n).astype(c.dtype))
        elif c.name in ("vx", "vy"):
            cols.append(rng.integers(-40, 41, n).astype(c.dtype))
        else:
            info = np.iinfo(c.dtype)
            cols.append(rng.integers(int(info.min), int(info.max) + 1, n, dtype=np.int64).astype(c.dtype))
    return cols


def evolve(rng: np.random.Generator, snap: Snapshot, next_id: int) -> tuple[Snapshot, int]:
    """One tick of random change: motion for everyone, then despawns, column edits and spawns."""
    moved = extrapolate(SCHEMA.motion, dict(zip(NAMES, snap.cols)), 1)
    cols = [moved[n].copy() for n in NAMES]
    ids = snap.ids
    if len(ids):
        keep = rng.random(len(ids)) > rng.choice([0.0, 0.05, 0.5])
        ids, cols = ids[keep], [c[keep] for c in cols]
    for ci, c in enumerate(cols):
        if len(c) and rng.random() < 0.6:
            which = rng.random(len(c)) < rng.choice([0.01, 0.2, 1.0])
            fresh = random_rows(rng, len(c))[ci]
            if rng.random() < 0.5:  # small changes, to exercise the difference encodings
                info = np.iinfo(c.dtype)
                step = rng.integers(-100, 101, len(c))
                fresh = np.clip(c.astype(np.int64) + step, info.min, info.max).astype(c.dtype)
            c[which] = fresh[which]
    n_new = int(rng.choice([0, 0, 1, 5, 40]))
    if n_new:
        new_ids = np.arange(next_id, next_id + n_new, dtype=np.uint32)
        next_id += n_new + int(rng.integers(0, 3))  # ids may skip (entities spawned and gone between ticks)
        ids = np.concatenate([ids, new_ids])
        cols = [np.concatenate([c, f]) for c, f in zip(cols, random_rows(rng, n_new))]
    return Snapshot.of(snap.tick + 1, ids, tuple(cols)), next_id


def roundtrip(base: Snapshot | None, cur: Snapshot) -> Snapshot:
    """Encode base -> cur into a real update frame, decode it, apply it to base."""
    body = encode_body(SCHEMA, base, cur)
    frame = finish_update(encode_update_prefix(cur.tick, None if base is None else base.tick, body, cur.checksum, []), 7)
    msg = decode_server(frame)
    return apply_body(SCHEMA, base, msg.tick, msg.body)


def assert_same(a: Snapshot, b: Snapshot) -> None:
    assert a.tick == b.tick
    np.testing.assert_array_equal(a.ids, b.ids)
    for x, y in zip(a.cols, b.cols):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    assert a.checksum == b.checksum


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), start=st.sampled_from([0, 1, 50, 300]), ticks=st.integers(1, 25))
def test_applying_deltas_from_any_held_base_reproduces_the_server_state(seed: int, start: int, ticks: int) -> None:
    rng = np.random.default_rng(seed)
    snap = Snapshot.of(0, np.arange(start, dtype=np.uint32), tuple(random_rows(rng, start)))
    history = [snap]
    next_id = start
    mirror = {0: roundtrip(None, snap)}
    assert_same(mirror[0], snap)
    for _ in range(ticks):
        snap, next_id = evolve(rng, snap, next_id)
        history.append(snap)
        base = history[int(rng.integers(max(0, len(history) - 8), len(history) - 1))] if len(history) > 1 else None
        got = roundtrip(mirror[base.tick] if base is not None else None, snap)
        assert_same(got, snap)
        mirror[snap.tick] = got


def test_keyframe_of_the_empty_state_is_empty_with_checksum_zero() -> None:
    empty = Snapshot.empty(SCHEMA, tick=3)
    assert encode_body(SCHEMA, None, empty) == {}
    assert empty.checksum == 0
    assert_same(roundtrip(None, empty), empty)


def test_checksum_is_crc32_of_ids_then_columns_little_endian() -> None:
    import zlib

    ids = np.array([1, 2], dtype=np.uint32)
    cols = [np.array([1, 2], "<i2"), np.array([255, 0], "u1")]
    expected = zlib.crc32(b"\x01\x00\x00\x00\x02\x00\x00\x00" + b"\x01\x00\x02\x00" + b"\xff\x00")
    assert checksum(ids, cols) == expected


def _steady(n: int) -> Snapshot:
    rng = np.random.default_rng(1)
    return Snapshot.of(10, np.arange(n, dtype=np.uint32), tuple(random_rows(rng, n)))


def test_entities_moving_by_the_motion_rule_cost_nothing() -> None:
    base = _steady(500)
    moved = extrapolate(SCHEMA.motion, dict(zip(NAMES, base.cols)), 3)
    cur = Snapshot.of(13, base.ids, tuple(moved[n] for n in NAMES))
    assert encode_body(SCHEMA, base, cur) == {}


def test_small_position_corrections_travel_as_int8_differences() -> None:
    base = _steady(100)
    cols = [c.copy() for c in base.cols]
    x = NAMES.index("x")
    moved = extrapolate(SCHEMA.motion, dict(zip(NAMES, base.cols)), 1)
    cols = [moved[n].copy() for n in NAMES]
    cols[x][[3, 50]] += 5
    cur = Snapshot.of(11, base.ids, tuple(cols))
    body = encode_body(SCHEMA, base, cur)
    assert body["rows"][0] == ROWS_U16 and np.frombuffer(body["rows"][1], "<u2").tolist() == [3, 50]
    [(ci, sel, enc, data)] = body["cols"]
    assert (ci, sel, enc) == (x, None, ENC_D8) and np.frombuffer(data, "i1").tolist() == [5, 5]


def test_many_changed_rows_use_a_bitmask_and_large_changes_absolute_values() -> None:
    base = _steady(64)
    moved = extrapolate(SCHEMA.motion, dict(zip(NAMES, base.cols)), 1)
    cols = [moved[n].copy() for n in NAMES]
    flags = NAMES.index("flags")
    cols[flags] ^= np.uint32(0x80000000)
    body = encode_body(SCHEMA, base, Snapshot.of(11, base.ids, tuple(cols)))
    assert body["rows"] == [ROWS_MASK, b"\xff" * 8]
    assert body["cols"][0][2] == ENC_ABS


def test_medium_changes_to_32_bit_columns_use_int16_differences() -> None:
    base = _steady(10)
    moved = extrapolate(SCHEMA.motion, dict(zip(NAMES, base.cols)), 1)
    cols = [moved[n].copy() for n in NAMES]
    score = NAMES.index("score")
    cols[score][0] += 1000
    body = encode_body(SCHEMA, base, Snapshot.of(11, base.ids, tuple(cols)))
    assert body["cols"][0][:3] == [score, None, ENC_D16]


def test_row_indices_past_65536_kept_rows_are_uint32() -> None:
    base = _steady(70_000)
    moved = extrapolate(SCHEMA.motion, dict(zip(NAMES, base.cols)), 1)
    cols = [moved[n].copy() for n in NAMES]
    cols[0][[1, 69_999]] += 1
    cur = Snapshot.of(11, base.ids, tuple(cols))
    body = encode_body(SCHEMA, base, cur)
    assert body["rows"][0] == ROWS_U32
    assert_same(roundtrip(base, cur), cur)


def test_a_delta_with_only_some_rows_of_a_column_selects_them_with_a_bitmask() -> None:
    base = _steady(40)
    moved = extrapolate(SCHEMA.motion, dict(zip(NAMES, base.cols)), 1)
    cols = [moved[n].copy() for n in NAMES]
    cols[NAMES.index("hp")][[2, 9]] += 1
    cols[NAMES.index("kind")][[9]] += 1
    cur = Snapshot.of(11, base.ids, tuple(cols))
    body = encode_body(SCHEMA, base, cur)
    kind_entry = next(e for e in body["cols"] if e[0] == NAMES.index("kind"))
    assert kind_entry[1] == b"\x02"  # row 9 is the second of the changed rows [2, 9]
    assert_same(roundtrip(base, cur), cur)


# -- bad deltas -----------------------------------------------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        ({"gone": b"\x63\x00\x00\x00"}, "gone"),
        ({"gone": b"\x01\x00"}, "gone"),
        ({"rows": [9, b"\x00"], "cols": []}, "rows"),
        ({"rows": [ROWS_U16, b"\xff\x00"], "cols": []}, "rows"),
        ({"rows": [ROWS_MASK, b"\x01\x00\x00"], "cols": []}, "bitmask"),
        ({"rows": [ROWS_U16, b"\x00\x00"], "cols": [[99, None, 0, b"\x00"]]}, "column index"),
        ({"rows": [ROWS_U16, b"\x00\x00"], "cols": [[0, None, 7, b"\x00"]]}, "encoding"),
        ({"rows": [ROWS_U16, b"\x00\x00"], "cols": [[1, None, 0, b"\x00"]]}, "column 1"),
        ({"cols": [[0, None, 0, b"\x00"]]}, "cols without rows"),
        ({"new": [b"\x01\x00\x00\x00", []]}, "new"),
        ({"new": [b"\x00\x00\x00\x00", [b"\x00"] * 8]}, "ascend"),
        ({"new": "nonsense"}, "new"),
    ],
)
def test_a_delta_that_does_not_fit_its_base_raises_invalid_field(body: dict[str, Any], message: str) -> None:
    base = _steady(10)
    with pytest.raises(InvalidField, match=message) as info:
        apply_body(SCHEMA, base, 11, body)
    assert info.value.code == 1007


def test_schema_from_wire_round_trips_the_ruleset_description() -> None:
    from game.drift import SPEC

    schema = WireSchema.from_wire(msgpack.unpackb(msgpack.packb(SPEC.to_wire())))
    assert schema == WireSchema.from_spec(SPEC)


def test_schema_from_wire_rejects_unknown_dtypes_and_axes() -> None:
    with pytest.raises(InvalidField):
        WireSchema.from_wire({"columns": [{"name": "x", "dtype": "float32"}]})
    with pytest.raises(InvalidField):
        WireSchema.from_wire({"columns": [{"name": "x", "dtype": "int16"}], "motion": [{"pos": "x", "vel": "vx", "lo": 0, "hi": 1}]})
    with pytest.raises(InvalidField):
        WireSchema.from_wire("not a map")

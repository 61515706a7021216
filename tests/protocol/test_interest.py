"""Filtered views: the cell encoder against the per-client reference, round trips, sharing and bad updates."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from game.motion import extrapolate
from game.schema import Axis, Column, InputField, PlayerMove, RulesetSpec
from server.protocol.delta import Snapshot, WireSchema, apply_body
from server.protocol.errors import InvalidField
from server.protocol.history import SnapshotHistory
from server.protocol.interest import (
    ABS,
    D8,
    D16,
    SAME,
    ViewEncoder,
    ViewGrid,
    ViewShape,
    apply_view,
    decode_changes,
    encode_changes,
    entity_hashes,
    record_dtype,
    reference_events,
    reference_frame,
    reference_plain_frame,
    reference_state,
    surprises,
    view_sum,
)

SIDE = 2000  # world units
SPEC = RulesetSpec(
    name="cells", version=1,
    columns=(
        Column("kind", "uint8", "uint8"),
        Column("x", "int32", "int16", 8),
        Column("y", "int32", "int16", 8),
        Column("vx", "int32", "int8", 8),
        Column("vy", "int32", "int8", 8),
        Column("hp", "int32", "uint16"),
        Column("score", "int32", "int32"),
    ),
    inputs=(InputField("dx", -1, 1), InputField("dy", -1, 1)),
    motion=(Axis("x", "vx", 0, SIDE * 8), Axis("y", "vy", 0, SIDE * 8)),
    width=SIDE, height=SIDE,
    kinds=("npc", "player", "flag"),
    player=PlayerMove(40, 28, 0, SIDE * 8),
    always_relevant=("flag",),
    always_relevant_events=("siren",),
)
FLAG = 2


def grid(half_w: int = 300, half_h: int = 0, cell: int = 150) -> ViewGrid:
    return ViewGrid(SPEC, ViewShape(half_w, half_h, cell))


GRID = grid()
SCHEMA = GRID.schema
NAMES = SCHEMA.names()


def world(rng: np.random.Generator, n: int) -> Snapshot:
    ids = np.arange(n, dtype=np.uint32)
    kind = rng.choice([0, 0, 0, 0, 1, FLAG], n).astype(np.uint8)
    cols = [kind, rng.integers(0, SIDE * 8 + 1, n), rng.integers(0, SIDE * 8 + 1, n), rng.integers(-40, 41, n),
            rng.integers(-40, 41, n), rng.integers(0, 65536, n), rng.integers(-(2**31), 2**31, n, dtype=np.int64)]
    return Snapshot.of(0, ids, tuple(c.astype(col.dtype) for c, col in zip(cols, SCHEMA.columns)))


def evolve(rng: np.random.Generator, snap: Snapshot, next_id: int, churn: float = 0.05, come_and_go: bool = True
           ) -> tuple[Snapshot, int]:
    """A tick: motion for everyone, then despawns, teleports, edits of every kind and spawns (``come_and_go``:
    else the same ids)."""
    moved = extrapolate(SCHEMA.motion, dict(zip(NAMES, snap.cols)), 1)
    cols = [moved[n].copy() for n in NAMES]
    n = len(snap.ids)
    for j in range(len(cols)):
        edit = rng.random(n) < churn
        if j in (1, 2):  # small corrections, and some teleports
            cols[j][edit] = np.clip(cols[j][edit].astype(np.int64) + rng.integers(-300, 301, int(edit.sum())),
                                    0, SIDE * 8).astype(cols[j].dtype)
            far = rng.random(n) < churn / 5
            cols[j][far] = rng.integers(0, SIDE * 8 + 1, int(far.sum()))
        elif j == 0:
            cols[j][edit] = rng.choice([0, 1, FLAG], int(edit.sum()))
        else:
            info = np.iinfo(cols[j].dtype)
            cols[j][edit] = rng.integers(int(info.min), int(info.max) + 1, int(edit.sum()), dtype=np.int64)
    if not come_and_go:
        return Snapshot.of(snap.tick + 1, snap.ids, tuple(cols)), next_id
    keep = rng.random(n) >= churn
    ids = snap.ids[keep]
    cols = [c[keep] for c in cols]
    spawn = int(rng.integers(0, max(2, int(n * churn) + 1)))
    if not spawn:
        return Snapshot.of(snap.tick + 1, ids, tuple(cols)), next_id
    fresh = world(rng, spawn)
    ids = np.concatenate([ids, np.arange(next_id, next_id + spawn, dtype=np.uint32)])
    cols = [np.concatenate([c, f]) for c, f in zip(cols, fresh.cols)]
    return Snapshot.of(snap.tick + 1, ids, tuple(cols)), next_id + spawn


def run(seed: int, n: int, ticks: int, g: ViewGrid = GRID, come_and_go: bool = True
        ) -> tuple[SnapshotHistory, list[Snapshot]]:
    rng = np.random.default_rng(seed)
    snap = world(rng, n)
    history = SnapshotHistory()
    history.add(snap)
    snaps = [snap]
    next_id = n
    for _ in range(ticks):
        snap, next_id = evolve(rng, snap, next_id, come_and_go=come_and_go)
        history.add(snap)
        snaps.append(snap)
    return history, snaps


def clients(rng: np.random.Generator, snaps: list[Snapshot], count: int) -> tuple[list[int | None], list[int | None]]:
    """Entities (some absent: None, or gone from the world) and bases (some keyframes) for ``count`` clients."""
    cur = snaps[-1]
    entities: list[int | None] = []
    bases: list[int | None] = []
    for _ in range(count):
        r = rng.random()
        if r < 0.1:
            entities.append(None)
        elif r < 0.3 or not len(cur.ids):
            entities.append(int(rng.integers(0, int(cur.ids[-1]) + 2 if len(cur.ids) else 5)))
        else:
            entities.append(int(rng.choice(cur.ids)))
        bases.append(None if rng.random() < 0.2 else int(rng.integers(snaps[0].tick, cur.tick)))
    return entities, bases


# -- the cell encoder is the reference, byte for byte -------------------------------------------------


Places = list[tuple[tuple[int, int], ...]]


def some_events(rng: np.random.Generator, count: int) -> tuple[list[Any], Places]:
    """``count`` events: most at one to three positions (some outside the arena), a few always relevant
    (``siren``), a few placed nowhere."""
    events: list[Any] = []
    places: Places = []
    for i in range(count):
        r = rng.random()
        kind = "siren" if r < 0.15 else "boom"
        events.append([kind, i, int(rng.integers(0, 1000))])
        k = 0 if 0.15 <= r < 0.25 else int(rng.integers(1, 4))
        places.append(tuple((int(rng.integers(-100, SIDE * 8 + 200)), int(rng.integers(-100, SIDE * 8 + 200)))
                            for _ in range(k)))
    return events, places


def frames_and_references(seed: int, n: int, ticks: int, count: int, g: ViewGrid = GRID, events: int = 0
                          ) -> tuple[list[bytes], list[bytes]]:
    history, snaps = run(seed, n, ticks, g)
    rng = np.random.default_rng(seed + 1)
    entities, bases = clients(rng, snaps, count)
    evs, places = some_events(rng, events)
    acks = list(range(count))
    enc = ViewEncoder(g, history)
    enc.begin(snaps[-1], evs, places)
    got = enc.frames(entities, bases, acks)
    want = [reference_frame(g, history.get(b), snaps[-1], e, a, evs, places) for e, b, a in zip(entities, bases, acks)]
    return got, want


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 400), ticks=st.integers(1, 6), count=st.integers(1, 12),
       events=st.sampled_from([0, 0, 1, 5, 40]))
def test_cell_encoded_frames_are_the_per_client_references_byte_for_byte(seed, n, ticks, count, events):
    got, want = frames_and_references(seed, n, ticks, count, events=events)
    assert got == want


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), come_and_go=st.booleans())
def test_an_encoder_running_tick_after_tick_matches_the_reference_for_bases_many_ticks_old(seed, n, come_and_go):
    """From the second tick on the encoder compares only the entities that surprised it since the base; with
    the same ids from tick to tick it takes the movers from the cells it compared when binning."""
    history, snaps = run(seed, n, 12, come_and_go=come_and_go)
    rng = np.random.default_rng(seed)
    enc = ViewEncoder(GRID, history)
    for i, snap in enumerate(snaps[1:], 1):
        enc.begin(snap, [])
        entities, _ = clients(rng, snaps[: i + 1], 6)
        bases = [None, *(snaps[max(0, i - k)].tick for k in (1, 2, 3, 5, 11))]
        got = enc.frames(entities, bases, [0] * 6)
        assert got == [reference_frame(GRID, history.get(b), snap, e, 0, []) for e, b in zip(entities, bases)]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), lo=st.sampled_from([0, -700, 300, -(2**31) + 256]),
       width=st.sampled_from([1, 2000, 30000]))
def test_surprises_are_exactly_the_entities_that_differ_from_the_tick_before_extrapolated(seed, n, lo, width):
    """Walls anywhere (below zero too), entities on, past or far past them (wrapping int32): the quick test
    of the motion rule misses no entity the exact rule would."""
    hi = min(lo + width, 2**31 - 256)
    spec = RulesetSpec(name="walls", version=1, columns=(
        Column("x", "int32", "int32"), Column("vx", "int32", "int8"), Column("hp", "int32", "uint8")),
        inputs=(), motion=(Axis("x", "vx", lo, hi),), width=100, height=100)
    schema = WireSchema.from_spec(spec)
    rng = np.random.default_rng(seed)
    near = rng.integers(lo - 200, hi + 201, n)
    x = np.where(rng.random(n) < 0.1, rng.integers(-(2**31), 2**31, n), near).astype(np.int64)
    x = np.clip(x, -(2**31), 2**31 - 1).astype(np.int32)
    vx = rng.integers(-128, 128, n).astype(np.int8)
    hp = rng.integers(0, 256, n).astype(np.uint8)
    ids = np.arange(n, dtype=np.uint32)
    prev = Snapshot.of(5, ids, (x, vx, hp))
    moved = extrapolate(schema.motion, {"x": x, "vx": vx, "hp": hp}, 1)
    cols = [moved["x"].copy(), moved["vx"].copy(), hp.copy()]
    for c in cols:
        edit = rng.random(n) < 0.1
        c[edit] = rng.integers(0, 100, int(edit.sum())).astype(c.dtype)
    straight = rng.random(n) < 0.2  # moved on as if there were no wall: past it, a surprise
    cols[0][straight] = (x[straight].astype(np.int64) + vx[straight]).astype(np.int32)
    cur = Snapshot.of(6, ids, tuple(cols))
    differ = np.zeros(n, dtype=np.bool_)
    for name, c in zip(("x", "vx", "hp"), cols):
        differ |= moved[name] != c
    assert surprises(schema, prev, cur).tolist() == ids[differ].tolist()


@pytest.mark.parametrize("shape", [(300, 0, 150), (300, 0, 1000), (500, 200, 128), (100, 0, 37), (5000, 0, 400)])
def test_cell_encoding_matches_the_reference_for_circles_rectangles_and_any_cell_size(shape):
    got, want = frames_and_references(11, 600, 3, 20, grid(*shape), events=30)
    assert got == want


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), ticks=st.integers(1, 5), count=st.integers(1, 6))
def test_ordinary_updates_of_views_are_the_per_client_references_and_apply_to_the_view(seed, n, ticks, count):
    """A client that cannot apply filtered updates gets its view in ordinary ones (a keyframe when an older id
    comes into view)."""
    history, snaps = run(seed, n, ticks)
    rng = np.random.default_rng(seed + 3)
    entities, bases = clients(rng, snaps, count)
    evs, places = some_events(rng, 6)
    enc = ViewEncoder(GRID, history)
    enc.begin(snaps[-1], evs, places)
    for (frame, key), e, b, a in zip(enc.plain_frames(entities, bases, list(range(count))), entities, bases,
                                     range(count)):
        assert frame == reference_plain_frame(GRID, history.get(b), snaps[-1], e, a, evs, places)
        msg = msgpack.unpackb(frame)
        assert key == (msg["base"] is None) and (b is not None or key)
        held = None if msg["base"] is None else reference_state(GRID, history.get(msg["base"]), e)
        got = apply_body(SCHEMA, None if held is None else Snapshot.of(held.tick, held.ids, held.cols), msg["tick"], msg)
        assert got.checksum == msg["sum"]
        assert np.array_equal(got.ids, reference_state(GRID, snaps[-1], e).ids)
        assert msg.get("ev", []) == reference_events(GRID, snaps[-1], e, evs, places)


# -- events -------------------------------------------------------------------------------------------


def test_a_client_receives_the_events_placed_in_its_view_once_and_the_always_relevant_ones_in_order():
    history, snaps = run(4, 300, 1)
    cur = snaps[-1]
    me = int(cur.ids[7])
    x, y = (int(c[7]) for c in (cur.cols[1], cur.cols[2]))
    far = ((x + 1000 * 8) % (SIDE * 8), (y + 1000 * 8) % (SIDE * 8))
    events = [["boom", 0], ["boom", 1], ["siren", 2], ["boom", 3], ["boom", 4], ["boom", 5]]
    places: Places = [((x, y),), (far,), (), ((x, y), (x + 1, y), far), (), (far, (x, y))]
    enc = ViewEncoder(GRID, history)
    enc.begin(cur, events, places)
    mine, nobody = enc.frames([me, None], [None, None], [0, 0])
    # At my position; not far away; always relevant; in my cell twice (once); placed nowhere (never); far or here.
    assert msgpack.unpackb(mine)["ev"] == [["boom", 0], ["siren", 2], ["boom", 3], ["boom", 5]]
    assert msgpack.unpackb(nobody)["ev"] == [["siren", 2]]
    assert reference_events(GRID, cur, me, events, places) == msgpack.unpackb(mine)["ev"]


def test_a_client_whose_view_holds_no_event_gets_no_ev_key():
    history, snaps = run(4, 300, 1)
    enc = ViewEncoder(GRID, history)
    enc.begin(snaps[-1], [["boom", 1]], [((0, 0),)])
    me = int(snaps[-1].ids[np.argmax(snaps[-1].cols[1].astype(np.int64) + snaps[-1].cols[2])])  # far from (0, 0)
    (frame,) = enc.frames([me], [None], [0])
    assert "ev" not in msgpack.unpackb(frame)


def test_many_events_take_msgpacks_longer_array_headers():
    history, snaps = run(4, 50, 1)
    events = [["siren", i] for i in range(70_000)]
    enc = ViewEncoder(GRID, history)
    enc.begin(snaps[-1], events[:20])
    assert msgpack.unpackb(enc.frames([None], [None], [0])[0])["ev"] == events[:20]
    enc.begin(snaps[-1], events)
    assert msgpack.unpackb(enc.frames([None], [None], [0])[0])["ev"] == events


def test_clients_with_the_same_base_and_view_get_the_same_bytes_apart_from_ack():
    history, snaps = run(3, 300, 2)
    enc = ViewEncoder(GRID, history)
    enc.begin(snaps[-1], [])
    e = int(snaps[-1].ids[5])
    a, b = enc.frames([e, e], [snaps[-2].tick, snaps[-2].tick], [1, 2])
    assert a[:-1] == b[:-1] and a != b


def test_a_frame_holds_only_the_view_and_leaves_out_empty_parts():
    history, snaps = run(5, 300, 1)
    enc = ViewEncoder(GRID, history)
    enc.begin(snaps[-1], [])
    (frame,) = enc.frames([None], [None], [0])
    msg = msgpack.unpackb(frame)
    assert list(msg) == ["t", "tick", "base", "add", "sum", "ack"]
    flags = reference_state(GRID, snaps[-1], None)
    assert len(flags.ids) == int(np.count_nonzero(snaps[-1].cols[0] == FLAG))  # only the always-relevant kind
    assert msg["sum"] == flags.checksum


# -- round trips: what a client builds is its view -----------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), ticks=st.integers(1, 5), count=st.integers(1, 6))
def test_a_client_applying_its_frame_to_its_base_view_holds_its_view_now_with_the_sum(seed, n, ticks, count):
    history, snaps = run(seed, n, ticks)
    entities, bases = clients(np.random.default_rng(seed + 7), snaps, count)
    enc = ViewEncoder(GRID, history)
    enc.begin(snaps[-1], [])
    for frame, e, b in zip(enc.frames(entities, bases, [0] * count), entities, bases):
        msg = msgpack.unpackb(frame)
        held = None if b is None else reference_state(GRID, history.get(b), e)
        got = apply_view(SCHEMA, held, msg["tick"], msg)
        want = reference_state(GRID, snaps[-1], e)
        assert got.checksum == msg["sum"] == want.checksum
        assert np.array_equal(got.ids, want.ids)
        for g, w in zip(got.cols, want.cols):
            assert np.array_equal(g, w)


def test_a_client_following_a_walking_player_tick_by_tick_never_desyncs():
    history, snaps = run(9, 800, 25)
    enc = ViewEncoder(GRID, history)
    me = int(snaps[-1].ids[3])
    held = None
    for snap in snaps[1:]:
        enc.begin(snap, [])
        (frame,) = enc.frames([me], [None if held is None else held.tick], [0])
        msg = msgpack.unpackb(frame)
        held = apply_view(SCHEMA, held, snap.tick, msg)
        assert held.checksum == msg["sum"]
    assert np.array_equal(held.ids, reference_state(GRID, snaps[-1], me).ids)


# -- views --------------------------------------------------------------------------------------------


def brute_view(g: ViewGrid, x: int, y: int) -> set[int]:
    """Cells whose nearest position to (x, y) is within the view, checked one by one."""
    out = {g.always}
    for cy in range(g.ncy):
        for cx in range(g.ncx):
            nx = min(max(x, cx * g.csx), (cx + 1) * g.csx - 1)
            ny = min(max(y, cy * g.csy), (cy + 1) * g.csy - 1)
            dx, dy = abs(nx - x), abs(ny - y)
            if (dx * dx + dy * dy <= g.rx * g.rx) if g.shape.round else (dx <= g.rx and dy <= g.ry):
                out.add(cy * g.ncx + cx)
    return out


@pytest.mark.parametrize("shape", [(300, 0, 150), (500, 200, 128), (90, 0, 400)])
def test_a_view_is_every_cell_its_shape_touches_and_the_always_cell(shape):
    g = grid(*shape)
    rng = np.random.default_rng(1)
    xs = np.append(rng.integers(0, SIDE * 8 + 1, 30), [0, SIDE * 8, 150 * 8, 150 * 8 - 1])
    ys = np.append(rng.integers(0, SIDE * 8 + 1, 30), [0, SIDE * 8, 150 * 8 - 1, 150 * 8])
    q, c = g.view_pairs(xs.astype(np.int64), ys.astype(np.int64), np.ones(len(xs), dtype=np.bool_))
    for i, (x, y) in enumerate(zip(xs.tolist(), ys.tolist())):
        mine = c[q == i]
        assert list(mine) == sorted(mine)
        assert set(mine.tolist()) == brute_view(g, x, y)


def test_view_shape_comes_from_the_options_with_a_cell_of_half_the_view_by_default():
    assert ViewShape.from_options({"view": 0}) is None
    assert ViewShape.from_options({}) is None
    assert ViewShape.from_options({"view": 600}) == ViewShape(600, 0, 300)
    assert ViewShape.from_options({"view": 800, "view_h": 450, "view_cell": 200}) == ViewShape(800, 450, 200)
    assert ViewShape(600, 0, 300).to_wire() == {"shape": "circle", "radius": 600, "cell": 300}
    assert ViewShape(800, 450, 200).to_wire() == {"shape": "rect", "half_w": 800, "half_h": 450, "cell": 200}


def test_a_ruleset_without_positions_cannot_filter_views():
    spec = RulesetSpec("flat", 1, (Column("hp", "int32", "uint8"),), ())
    with pytest.raises(ValueError, match="position columns"):
        ViewGrid(spec, ViewShape(100, 0, 50))


# -- the parts ----------------------------------------------------------------------------------------


def test_the_view_sum_is_the_sum_of_entity_hashes_mod_2_32_written_out():
    ids = np.array([0, 7, 2**32 - 1], dtype=np.uint32)
    cols = [np.array([1, 2, 3], np.uint8), np.array([-1, 5, -32768], np.int16)]

    def fmix(h: int) -> int:
        h ^= h >> 16
        h = (h * 0x85EBCA6B) & 0xFFFFFFFF
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & 0xFFFFFFFF
        return h ^ (h >> 16)

    want = []
    for i in range(3):
        h = int(ids[i])
        for c in cols:
            h = ((h ^ (int(c[i]) & 0xFFFFFFFF)) * 0x01000193) & 0xFFFFFFFF
        want.append(fmix(h))
    assert entity_hashes(ids, cols).tolist() == want
    assert view_sum(ids, cols) == sum(want) % 2**32
    assert view_sum(ids[:0], [c[:0] for c in cols]) == 0


def test_change_records_pick_the_shortest_code_per_value_and_decode_back():
    actual = [np.array([5, 5, 9], np.uint8), np.array([100, -30000, 7], np.int16), np.array([0, 30000, -2**31], np.int32)]
    predicted = [np.array([5, 6, 9], np.uint8), np.array([90, 30000, 7], np.int16), np.array([3, 0, 2**31 - 1], np.int32)]
    from server.protocol.delta import WireColumn, WireSchema
    schema = WireSchema(tuple(WireColumn(n, a.dtype.newbyteorder("<")) for n, a in zip("abc", actual)))
    masks, values, sizes = encode_changes(schema, actual, predicted)
    codes, got = decode_changes(schema, 3, masks.tobytes(), values.tobytes())
    assert codes.tolist() == [[SAME, D8, D8], [ABS, ABS, D16], [SAME, SAME, ABS]]
    assert sizes.tolist() == [2, 5, 4] and len(values) == 11
    for r in range(3):
        for j in range(3):
            code = int(codes[r, j])
            want = 0 if code == SAME else int(actual[j][r]) if code == ABS else int(actual[j][r]) - int(predicted[j][r])
            assert int(got[r, j]) == want, (r, j)


@pytest.mark.parametrize("body, match", [
    ({"gone": b"\x07\x00\x00\x00"}, "does not hold"),
    ({"gone": b"\x00\x00\x00\x00" * 2}, "twice"),
    ({"gone": b"\x00\x00"}, "gone"),
    ({"chg": [b"\x09\x00\x00\x00", b"\x00\x00", b""]}, "does not hold"),
    ({"chg": [b"\x00\x00\x00\x00", b"\x04\x00", b""]}, "values"),
    ({"chg": [b"\x00\x00\x00\x00", b"\x00\x40", b"\x01"]}, "past the last column"),
    ({"chg": "nope"}, "chg"),
    ({"add": b"\x00" * (record_dtype(SCHEMA).itemsize - 1)}, "add"),
])
def test_a_filtered_update_that_does_not_fit_is_invalid_field(body, match):
    base = Snapshot.of(1, np.array([0, 1], np.uint32), tuple(np.zeros(2, c.dtype) for c in SCHEMA.columns))
    with pytest.raises(InvalidField, match=match):
        apply_view(SCHEMA, base, 2, body)


def test_adding_an_entity_the_client_holds_is_invalid_field():
    base = Snapshot.of(1, np.array([0, 1], np.uint32), tuple(np.zeros(2, c.dtype) for c in SCHEMA.columns))
    rec = np.zeros(1, record_dtype(SCHEMA))
    rec["id"] = 1
    with pytest.raises(InvalidField, match="add"):
        apply_view(SCHEMA, base, 2, {"add": rec.tobytes()})


def test_applying_changes_leaves_the_base_state_untouched():
    history, snaps = run(2, 200, 3)
    e = int(snaps[-1].ids[0])
    held = reference_state(GRID, history.get(snaps[-2].tick), e)
    before = [c.copy() for c in held.cols]
    enc = ViewEncoder(GRID, history)
    enc.begin(snaps[-1], [])
    (frame,) = enc.frames([e], [held.tick], [0])
    apply_view(SCHEMA, held, snaps[-1].tick, msgpack.unpackb(frame))
    assert all(np.array_equal(a, b) for a, b in zip(before, held.cols))

"""The SoA world: deferred spawns and despawns, ascending never-reused ids,
rows kept in id order through compaction and growth, and a stable state hash."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from game.errors import GameError
from game.schema import Column, InputField, RulesetSpec
from game.world import World, state_hash

SPEC = RulesetSpec(
    name="tiny",
    version=1,
    columns=(
        Column("a", "int32", "int16"),
        Column("b", "uint8", "uint8"),
        Column("secret", "int32", None),
        Column("c", "int16", "int32"),
    ),
    inputs=(InputField("dx", -1, 1),),
)


def make_world(capacity: int = 8, seed: int = 1) -> World:
    return World(SPEC, seed=seed, capacity=capacity)


def live_ids(world: World) -> list[int]:
    return world.ids[world.active()].tolist()


def tiny_world() -> World:
    world = make_world(capacity=4, seed=7)
    world.spawn(3, a=[10, -20, 30], b=[1, 2, 3], secret=[-1, 5, 9], c=[100, 200, 300])
    world.commit()
    world.tick = 5
    return world


# -- deferral ----------------------------------------------------------------


def test_world_starts_empty_at_tick_zero():
    world = make_world()
    assert world.tick == 0
    assert world.count() == 0
    assert world.high == 0
    assert world.active().size == 0
    assert set(world.cols) == {"a", "b", "secret", "c"}
    for c in SPEC.columns:
        assert world.cols[c.name].dtype == np.dtype(c.dtype)
        assert world.cols[c.name].shape == (8,)


def test_spawned_entities_appear_only_at_commit():
    world = make_world()
    ids = world.spawn(3, a=7)
    assert ids.dtype == np.uint32
    assert ids.tolist() == [0, 1, 2]
    assert world.count() == 0
    assert world.active().size == 0
    assert world.slots_of(ids).tolist() == [-1, -1, -1]
    world.commit()
    assert world.count() == 3
    assert live_ids(world) == [0, 1, 2]
    assert world.cols["a"][world.active()].tolist() == [7, 7, 7]


def test_despawned_entities_stay_alive_until_commit():
    world = make_world()
    world.spawn(4)
    world.commit()
    world.despawn(world.slots_of([1, 3]))
    assert world.count() == 4
    assert live_ids(world) == [0, 1, 2, 3]
    world.commit()
    assert world.count() == 2
    assert live_ids(world) == [0, 2]


def test_commit_applies_despawns_before_spawns_queued_in_the_same_tick():
    world = make_world(capacity=4)
    world.spawn(4, a=[1, 2, 3, 4])
    world.commit()
    world.despawn([0, 1, 2])
    world.spawn(2, a=[5, 6])
    world.commit()
    assert live_ids(world) == [3, 4, 5]
    assert world.cols["a"][world.active()].tolist() == [4, 5, 6]


def test_spawn_gives_columns_not_named_zero_and_takes_scalars_and_arrays():
    world = make_world()
    world.spawn(3, a=np.array([1, -2, 3]), b=9)
    world.commit()
    s = world.active()
    assert world.cols["a"][s].tolist() == [1, -2, 3]
    assert world.cols["b"][s].tolist() == [9, 9, 9]
    assert world.cols["secret"][s].tolist() == [0, 0, 0]
    assert world.cols["c"][s].tolist() == [0, 0, 0]


def test_spawns_queued_separately_commit_in_the_order_queued():
    world = make_world()
    first = world.spawn(2, a=1)
    second = world.spawn(1, a=2)
    third = world.spawn(2, a=3)
    world.commit()
    assert np.concatenate([first, second, third]).tolist() == [0, 1, 2, 3, 4]
    assert world.cols["a"][world.active()].tolist() == [1, 1, 2, 3, 3]


def test_spawn_rejects_unknown_columns_without_using_ids():
    world = make_world()
    with pytest.raises(GameError, match="unknown column.*nope"):
        world.spawn(2, a=1, nope=3)
    assert world.next_id == 0
    world.commit()
    assert world.count() == 0


def test_spawn_of_no_entities_queues_nothing_and_uses_no_ids():
    world = make_world()
    assert world.spawn(0).size == 0
    assert world.spawn(-3).size == 0
    world.commit()
    assert world.next_id == 0
    assert world.count() == 0


def test_despawn_of_no_slots_is_a_no_op():
    world = make_world()
    world.spawn(2)
    world.commit()
    world.despawn([])
    world.despawn(np.zeros(0, dtype=np.intp))
    world.commit()
    assert live_ids(world) == [0, 1]


# -- ids and row order -----------------------------------------------------------


def test_ids_ascend_and_are_never_reused_after_despawns():
    world = make_world()
    world.spawn(3)
    world.commit()
    world.despawn(world.slots_of([2]))
    world.commit()
    (new,) = world.spawn(1)
    world.commit()
    assert new == 3
    assert live_ids(world) == [0, 1, 3]


def test_ids_are_never_reused_after_compaction_empties_the_world():
    world = make_world(capacity=4)
    world.spawn(4)
    world.commit()
    world.despawn(world.active())
    world.commit()
    assert world.count() == 0
    again = world.spawn(6)
    world.commit()
    assert again.tolist() == [4, 5, 6, 7, 8, 9]
    assert live_ids(world) == [4, 5, 6, 7, 8, 9]


def test_compaction_drops_dead_rows_and_keeps_live_rows_in_id_order():
    world = make_world(capacity=8)
    world.spawn(8, a=np.arange(8) * 10, secret=np.arange(8) + 100)
    world.commit()
    world.despawn(world.slots_of([0, 2, 3, 6]))
    world.commit()
    assert world.high == 8
    world.spawn(3, a=[80, 90, 100], secret=[108, 109, 110])
    world.commit()  # 8 + 3 rows do not fit in 8: compacts
    assert world.capacity == 8
    assert world.high == 7
    assert world.ids[: world.high].tolist() == [1, 4, 5, 7, 8, 9, 10]
    assert world.alive[: world.high].all()
    assert not world.alive[world.high :].any()
    assert world.cols["a"][: world.high].tolist() == [10, 40, 50, 70, 80, 90, 100]
    assert world.cols["secret"][: world.high].tolist() == [101, 104, 105, 107, 108, 109, 110]


def test_world_grows_past_its_capacity_keeping_rows_and_values_in_id_order():
    world = make_world(capacity=4)
    world.spawn(3, a=[1, 2, 3], b=[4, 5, 6], c=[-1, -2, -3])
    world.commit()
    world.despawn(world.slots_of([1]))
    world.commit()
    world.spawn(10, a=np.arange(10) + 10, b=7, c=-9)
    world.commit()
    assert world.capacity >= 12
    assert len(world.ids) == len(world.alive) == world.capacity
    assert all(len(v) == world.capacity for v in world.cols.values())
    assert all(world.cols[c.name].dtype == np.dtype(c.dtype) for c in SPEC.columns)
    assert world.ids[: world.high].tolist() == [0, 2, *range(3, 13)]
    assert world.alive[: world.high].all()
    s = world.active()
    assert world.cols["a"][s].tolist() == [1, 3, *range(10, 20)]
    assert world.cols["b"][s].tolist() == [4, 6] + [7] * 10
    assert world.cols["c"][s].tolist() == [-1, -3] + [-9] * 10


ops = st.lists(
    st.tuples(st.integers(0, 12), st.lists(st.integers(0, 10_000), max_size=12)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(ops, st.integers(1, 16))
def test_world_agrees_with_a_dict_model_under_any_spawns_and_despawns(steps, capacity):
    world = make_world(capacity=capacity)
    model: dict[int, int] = {}
    handed_out: list[int] = []
    for n_spawn, picks in steps:
        live = sorted(model)
        doomed = {live[p % len(live)] for p in picks} if live else set()
        world.despawn(world.slots_of(sorted(doomed)))
        ids = world.spawn(n_spawn, a=np.arange(n_spawn) + world.next_id, secret=-7)
        handed_out += ids.tolist()
        for i in doomed:
            del model[i]
        for i in ids.tolist():
            model[i] = i
        world.commit()

        assert handed_out == sorted(set(handed_out))  # ascending, never reused
        rows = world.ids[: world.high].astype(np.int64)
        assert np.all(np.diff(rows) > 0)
        assert live_ids(world) == sorted(model)
        assert world.count() == len(model)
        s = world.active()
        assert world.cols["a"][s].tolist() == [model[i] for i in sorted(model)]
        assert np.all(world.cols["secret"][s] == -7)
        assert world.slots_of(sorted(model)).tolist() == s.tolist()
        dead = sorted(set(handed_out) - set(model))
        assert np.all(world.slots_of(dead) == -1)


# -- slots_of ----------------------------------------------------------------


def test_slots_of_finds_live_ids_in_any_order():
    world = make_world()
    world.spawn(5)
    world.commit()
    world.despawn(world.slots_of([0]))
    world.commit()
    slots = world.slots_of([4, 1, 3])
    assert slots.dtype == np.intp
    assert world.ids[slots].tolist() == [4, 1, 3]


def test_slots_of_gives_minus_one_for_dead_unknown_and_negative_ids():
    world = make_world()
    world.spawn(4)
    world.commit()
    world.despawn(world.slots_of([2]))
    world.commit()
    assert world.slots_of([2, 4, 99, -1, 2**32 + 1]).tolist() == [-1, -1, -1, -1, -1]
    assert world.slots_of([1, 2, 3]).tolist() == [1, -1, 3]


def test_slots_of_on_an_empty_world_is_all_minus_one():
    world = make_world()
    assert world.slots_of([0, 1]).tolist() == [-1, -1]
    assert world.slots_of([]).shape == (0,)


# -- replicated --------------------------------------------------------------


def test_replicated_gives_ids_and_wire_columns_little_endian_in_id_order():
    world = tiny_world()
    world.despawn(world.slots_of([1]))
    world.spawn(1, a=40, b=4, secret=77, c=400)
    world.commit()
    ids, cols = world.replicated()
    assert ids.dtype == np.uint32
    assert ids.tolist() == [0, 2, 3]
    assert [c.name for c in SPEC.replicated] == ["a", "b", "c"]
    assert len(cols) == 3
    for arr, wire in zip(cols, ("<i2", "u1", "<i4")):
        assert arr.dtype == np.dtype(wire)
        assert arr.dtype.byteorder in "<|="
    assert cols[0].tolist() == [10, 30, 40]
    assert cols[1].tolist() == [1, 3, 4]
    assert cols[2].tolist() == [100, 300, 400]
    assert cols[0].tobytes() == b"\x0a\x00\x1e\x00\x28\x00"
    assert cols[2].tobytes() == bytes.fromhex("64000000" "2c010000" "90010000")


def test_replicated_of_an_empty_world_is_empty_columns():
    ids, cols = make_world().replicated()
    assert ids.size == 0
    assert [c.size for c in cols] == [0, 0, 0]


# -- state_hash ----------------------------------------------------------------


def test_state_hash_of_a_tiny_world_is_pinned():
    assert state_hash(tiny_world()) == "b3154d10519e1cd54b23bddfbc05c25a"


def test_state_hash_digests_tick_next_id_count_ids_and_columns_little_endian():
    h = hashlib.blake2b(digest_size=16)
    h.update(struct.pack("<qqq", 5, 3, 3))  # tick, next_id, live count
    h.update(struct.pack("<3I", 0, 1, 2))  # ids
    h.update(struct.pack("<3i", 10, -20, 30))  # a (state dtype int32)
    h.update(bytes([1, 2, 3]))  # b
    h.update(struct.pack("<3i", -1, 5, 9))  # secret (private columns count too)
    h.update(struct.pack("<3h", 100, 200, 300))  # c (state dtype int16)
    assert state_hash(tiny_world()) == h.hexdigest()


def test_state_hash_is_32_hex_chars_and_repeatable():
    world = tiny_world()
    h = state_hash(world)
    assert len(h) == 32
    int(h, 16)
    assert state_hash(world) == h


def test_equal_worlds_have_equal_hashes_whatever_their_capacity_or_seed():
    assert state_hash(tiny_world()) == state_hash(tiny_world())
    other = make_world(capacity=64, seed=999)
    other.spawn(3, a=[10, -20, 30], b=[1, 2, 3], secret=[-1, 5, 9], c=[100, 200, 300])
    other.commit()
    other.tick = 5
    assert state_hash(other) == state_hash(tiny_world())


def test_state_hash_ignores_dead_rows_awaiting_compaction():
    fresh = make_world(capacity=16)
    fresh.spawn(4, a=[1, 2, 3, 4])
    fresh.commit()
    fresh.despawn(fresh.slots_of([1, 2]))
    fresh.commit()
    assert fresh.high == 4  # dead rows still there
    compacted = make_world(capacity=2)
    compacted.spawn(4, a=[1, 2, 3, 4])
    compacted.commit()
    compacted.despawn(compacted.slots_of([1, 2]))
    compacted.commit()
    compacted.spawn(3)
    compacted.commit()  # forces compaction and growth
    fresh.spawn(3)
    fresh.commit()
    assert compacted.high == 5
    assert state_hash(compacted) == state_hash(fresh)


def test_state_hash_changes_with_the_tick():
    world = tiny_world()
    before = state_hash(world)
    world.tick += 1
    assert state_hash(world) != before


@pytest.mark.parametrize("name", [c.name for c in SPEC.columns])
@pytest.mark.parametrize("row", [0, 1, 2])
def test_state_hash_changes_with_any_column_of_any_entity(name, row):
    world = tiny_world()
    before = state_hash(world)
    world.cols[name][world.active()[row]] += 1
    assert state_hash(world) != before


def test_state_hash_changes_when_an_entity_is_despawned_or_spawned():
    world = tiny_world()
    hashes = {state_hash(world)}
    world.despawn(world.slots_of([1]))
    world.commit()
    hashes.add(state_hash(world))
    world.spawn(1)
    world.commit()
    hashes.add(state_hash(world))
    assert len(hashes) == 3


def test_state_hash_tells_apart_worlds_with_the_same_values_under_other_ids():
    a = make_world()
    a.spawn(2, a=5)
    a.commit()
    b = make_world()
    b.spawn(3, a=5)
    b.commit()
    b.despawn(b.slots_of([0]))
    b.commit()
    assert a.cols["a"][a.active()].tolist() == b.cols["a"][b.active()].tolist()
    assert state_hash(a) != state_hash(b)

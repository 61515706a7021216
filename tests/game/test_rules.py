"""The ruleset interface: input batches, events, the registry, player lookups, players joined at once."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from game.errors import GameError
from game.rules import (
    RULESET_NAMES,
    RULESETS,
    Event,
    InputBatch,
    get_ruleset,
    join_players,
    leave_players,
    player_slots,
    scores_from_column,
)
from game.schema import Column, InputField, RulesetSpec
from game.world import EntityId, PlayerId, World, state_hash

SPEC = RulesetSpec(
    name="owned",
    version=1,
    columns=(Column("x", "int32", "int16"), Column("score", "int32", "int32"), Column("player", "int32")),
    inputs=(InputField("dx", -1, 1),),
)


# -- InputBatch ----------------------------------------------------------------


def test_input_batch_holds_int32_players_and_int16_rows():
    batch = InputBatch([1, 4, 9], [[1, 0], [0, -1], [-1, 1]])
    assert batch.players.dtype == np.int32
    assert batch.values.dtype == np.int16
    assert batch.players.tolist() == [1, 4, 9]
    assert batch.values.shape == (3, 2)
    assert batch.column(0).tolist() == [1, 0, -1]
    assert batch.column(1).tolist() == [0, -1, 1]


def test_input_batch_accepts_a_single_player():
    batch = InputBatch([7], [[1, -1]])
    assert batch.column(1).tolist() == [-1]


def test_empty_input_batch_has_no_players_and_empty_columns():
    batch = InputBatch.empty(2)
    assert batch.players.shape == (0,)
    assert batch.values.shape == (0, 2)
    assert batch.column(0).shape == (0,)
    assert batch.column(1).dtype == np.int16


@pytest.mark.parametrize("players", [[3, 1, 2], [1, 1, 2], [2, 1], [5, 5]])
def test_input_batch_rejects_players_that_are_not_strictly_ascending(players):
    values = [[0, 0]] * len(players)
    with pytest.raises(GameError, match="strictly ascending"):
        InputBatch(players, values)


@pytest.mark.parametrize(
    "players,values",
    [([1, 2], [[0, 0]]), ([1], [[0, 0], [1, 1]]), ([1, 2, 3], [[0, 0], [1, 1]])],
)
def test_input_batch_rejects_a_row_count_other_than_one_per_player(players, values):
    with pytest.raises(GameError, match="one row of values per player"):
        InputBatch(players, values)


def test_input_batch_rejects_rows_without_players():
    with pytest.raises(GameError, match="one row of values per player"):
        InputBatch([], [[1, 0]])


def test_input_batches_are_frozen():
    batch = InputBatch([1], [[0, 0]])
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        batch.players = np.zeros(0, np.int32)  # type: ignore[misc]


# -- events ------------------------------------------------------------------------


def test_event_goes_on_the_wire_as_its_kind_then_its_args():
    assert Event("hit", (3, 4, 25)).to_wire() == ["hit", 3, 4, 25]
    assert Event("start").to_wire() == ["start"]


# -- the registry --------------------------------------------------------------


def test_registry_names_are_sorted_and_include_drift():
    assert list(RULESET_NAMES) == sorted(RULESETS)
    assert "drift" in RULESET_NAMES


def test_get_ruleset_returns_the_drift_ruleset():
    ruleset = get_ruleset("drift")
    assert ruleset.spec.name == "drift"
    assert type(ruleset).__name__ == "DriftRuleset"


@pytest.mark.parametrize("name", RULESET_NAMES)
def test_every_registered_ruleset_loads_under_its_own_name(name):
    assert get_ruleset(name).spec.name == name


@pytest.mark.parametrize("name", ["nope", "", "Drift", "game.drift"])
def test_get_ruleset_rejects_an_unknown_name_listing_the_known_ones(name):
    with pytest.raises(GameError) as e:
        get_ruleset(name)
    msg = str(e.value)
    assert f"unknown ruleset {name!r}" in msg
    for known in RULESET_NAMES:
        assert known in msg


# -- player_slots and scores ---------------------------------------------------------


def owned_world(capacity: int = 16) -> World:
    """NPCs (player -1) mixed with players 7, 3 and 12, spawned in that order."""
    world = World(SPEC, seed=0, capacity=capacity)
    world.spawn(2, player=-1)
    world.spawn(1, player=7, score=70)
    world.spawn(1, player=-1)
    world.spawn(1, player=3, score=30)
    world.spawn(1, player=12, score=120)
    world.commit()
    return world


def owner_of(world: World, slots) -> list[int]:
    return [int(world.cols["player"][s]) if s >= 0 else None for s in slots]


def test_player_slots_maps_players_to_their_entities_slots():
    world = owned_world()
    players = np.array([3, 7, 12], dtype=np.int32)
    slots = player_slots(world, players)
    assert slots.dtype == np.intp
    assert slots.tolist() == [4, 2, 5]
    assert owner_of(world, slots) == [3, 7, 12]


def test_player_slots_answers_in_the_order_asked():
    world = owned_world()
    slots = player_slots(world, np.array([12, 3, 7, 3], dtype=np.int32))
    assert owner_of(world, slots) == [12, 3, 7, 3]


def test_player_slots_gives_minus_one_for_players_without_an_entity():
    world = owned_world()
    slots = player_slots(world, np.array([0, 3, 5, 13, -1, 100], dtype=np.int32))
    assert slots.tolist() == [-1, 4, -1, -1, -1, -1]


def test_player_slots_forgets_a_despawned_player_and_finds_it_after_compaction():
    world = owned_world(capacity=6)
    world.despawn(player_slots(world, np.array([7], dtype=np.int32)))
    world.commit()
    assert player_slots(world, np.array([7], dtype=np.int32)).tolist() == [-1]
    world.spawn(2, player=[20, 21])
    world.commit()  # does not fit: compacts and grows
    slots = player_slots(world, np.array([3, 7, 12, 20, 21], dtype=np.int32))
    assert owner_of(world, slots) == [3, None, 12, 20, 21]


def test_player_slots_in_a_world_without_players_is_all_minus_one():
    world = World(SPEC, seed=0, capacity=4)
    assert player_slots(world, np.array([1, 2], dtype=np.int32)).tolist() == [-1, -1]
    world.spawn(3, player=-1)
    world.commit()
    assert player_slots(world, np.array([0, 1], dtype=np.int32)).tolist() == [-1, -1]
    assert player_slots(world, np.zeros(0, dtype=np.int32)).shape == (0,)


def test_scores_from_column_maps_each_player_to_its_score():
    world = owned_world()
    assert scores_from_column(world) == {7: 70, 3: 30, 12: 120}
    world.despawn(player_slots(world, np.array([3], dtype=np.int32)))
    world.commit()
    assert scores_from_column(world) == {7: 70, 12: 120}


# -- several players at once (join_players, leave_players) --------------------------------


class OneByOne:
    """A ruleset with only ``join`` and ``leave`` (a user's, say): ``join_players`` calls them in turn."""

    def __init__(self, name: str) -> None:
        self.inner = get_ruleset(name)
        self.spec = self.inner.spec

    def create(self, seed: int, options: dict[str, int]) -> World:
        return self.inner.create(seed, options)

    def join(self, world: World, player: PlayerId) -> EntityId:
        return self.inner.join(world, player)

    def leave(self, world: World, player: PlayerId) -> None:
        self.inner.leave(world, player)

    def step(self, world: World, inputs: InputBatch) -> list[Event]:
        return self.inner.step(world, inputs)

    def scores(self, world: World) -> dict[int, int]:
        return self.inner.scores(world)


SMALL = {"arena": {"npcs": 30, "pellets": 40}, "drift": {"npcs": 200}}


def batch_of(players: list[int], fields: int, tick: int) -> InputBatch:
    """Every player moving right and down (a column of ones), so the players' entities go somewhere."""
    values = np.zeros((len(players), fields), dtype=np.int16)
    values[:, :2] = 1 if tick % 2 else -1
    return InputBatch(np.array(sorted(players), dtype=np.int32), values)


def play(ruleset, name: str, seed: int, rounds: list[tuple[list[int], list[int]]]) -> tuple[list[str], list[list[int]]]:
    """Rounds of (leaves, joins) through ``leave_players``/``join_players``, three ticks after each: the state hash
    after every tick, and each round's new entity ids."""
    world = ruleset.create(seed, SMALL[name])
    fields = len(ruleset.spec.inputs)
    present: set[int] = set()
    hashes, entities = [], []
    for leaves, joins in rounds:
        leave_players(ruleset, world, [PlayerId(p) for p in leaves])
        present -= set(leaves)
        entities.append([int(e) for e in join_players(ruleset, world, [PlayerId(p) for p in joins])])
        present |= set(joins)
        for _ in range(3):
            ruleset.step(world, batch_of(sorted(present), fields, world.tick))
            hashes.append(state_hash(world))
    return hashes, entities


@st.composite
def membership(draw: st.DrawFn) -> list[tuple[list[int], list[int]]]:
    """Up to 6 rounds of leaves (some of those present, some never there) and joins (new ids, in ascending order)."""
    rounds, present, next_id = [], [], 0
    for _ in range(draw(st.integers(1, 6))):
        leaves = draw(st.lists(st.sampled_from(present), unique=True)) if present else []
        leaves += draw(st.lists(st.integers(10_000, 10_005), max_size=1, unique=True))  # not there: harmless
        joins = list(range(next_id, next_id + draw(st.integers(0, 20))))
        next_id += len(joins) + draw(st.integers(0, 3))
        present = [p for p in present if p not in leaves] + joins
        rounds.append((sorted(leaves), joins))
    return rounds


@pytest.mark.parametrize("name", sorted(SMALL))
@settings(max_examples=25, deadline=None)
@given(rounds=membership(), seed=st.integers(0, 2**32 - 1))
def test_players_joined_and_removed_at_once_make_the_world_of_one_at_a_time(name, rounds, seed):
    assert play(get_ruleset(name), name, seed, rounds) == play(OneByOne(name), name, seed, rounds)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_join_many_gives_each_player_its_entity_in_the_order_asked(name):
    ruleset = get_ruleset(name)
    world = ruleset.create(3, SMALL[name])
    first = world.next_id
    entities = join_players(ruleset, world, [PlayerId(p) for p in (9, 2, 5)])
    assert entities == [first, first + 1, first + 2]
    slots = player_slots(world, np.array([9, 2, 5], dtype=np.int32))
    assert world.ids[slots].tolist() == entities
    assert join_players(ruleset, world, []) == []
    leave_players(ruleset, world, [PlayerId(2), PlayerId(9)])
    assert player_slots(world, np.array([9, 2, 5], dtype=np.int32)).tolist()[:2] == [-1, -1]


@pytest.mark.parametrize("players", [[4, 1, 4], [1, 7]])
def test_the_arena_refuses_a_batch_with_a_player_already_joined_and_joins_none_of_it(players):
    ruleset = get_ruleset("arena")
    world = ruleset.create(3, SMALL["arena"])
    ruleset.join(world, PlayerId(7))
    before = state_hash(world)
    with pytest.raises(GameError, match=f"arena: player {4 if 4 in players else 7} has already joined"):
        join_players(ruleset, world, [PlayerId(p) for p in players])
    assert state_hash(world) == before

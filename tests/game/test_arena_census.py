"""The arena's census: the live slots by kind at the start of a step, and the ones removed during it."""

from __future__ import annotations

import numpy as np

from game.arena import spec as S
from game.arena.census import Census
from game.arena.ruleset import ArenaRuleset
from game.world import PlayerId, World

R = ArenaRuleset()


def world_with(*kinds: int) -> World:
    world = R.create(1, {"npcs": 0, "pellets": 0})
    for kind in kinds:
        world.spawn(1, kind=kind, x=0, y=0, player=-1, owner=-1, target=-1, hp=1)
    world.commit()
    return world


def test_a_census_sorts_the_live_slots_by_kind_in_ascending_order() -> None:
    world = world_with(S.PELLET, S.DRONE, S.BULLET, S.PELLET, S.DRONE)
    census = Census.of(world)
    assert census.players.size == 0
    assert census.drones.tolist() == [1, 4]
    assert census.bullets.tolist() == [2]
    assert census.pellets.tolist() == [0, 3]
    assert not census.removed.any()


def test_a_slot_removed_during_the_step_is_hidden_at_once_and_despawned_at_commit() -> None:
    world = world_with(S.DRONE, S.DRONE, S.DRONE)
    census = Census.of(world)
    census.remove(world, np.array([1], dtype=np.intp))
    assert census.present(census.drones).tolist() == [0, 2]
    assert world.count() == 3  # the row stays until the end of the step
    world.commit()
    assert world.count() == 2


def test_targets_are_living_players_without_spawn_protection() -> None:
    world = world_with()
    slots = [int(world.slots_of([R.join(world, PlayerId(p))])[0]) for p in (1, 2, 3)]
    world.cols["shield"][slots] = [5, 0, 0]  # a joining player is protected: keep it for the first only
    world.cols["hp"][slots[1]] = 0
    census = Census.of(world)
    assert census.living_players(world).tolist() == [slots[0], slots[2]]
    assert census.targets(world).tolist() == [slots[2]]

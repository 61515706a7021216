"""Lag compensation in the arena: the recent past of every body, and bullets judged where their shooter saw it."""

from __future__ import annotations

import numpy as np
import pytest

from game.arena import spec as S
from game.arena.rewind import positions_ago
from game.rules import InputBatch
from game.world import World, state_hash
from tests.game.test_arena import R, U, empty_world, get, join_at, put


def step(world: World, inputs: dict[int, list[int]], lag: dict[int, int] | None = None) -> None:
    players = sorted(inputs)
    lag = lag or {}
    R.step(world, InputBatch(np.array(players, np.int32), np.array([inputs[p] for p in players], np.int16).reshape(-1, 4),
                             [lag.get(p, 0) for p in players]))


def test_the_world_keeps_every_bodys_position_of_the_last_rewind_ticks() -> None:
    world = empty_world()
    me = join_at(world, 1, 1000 * U, 1000 * U)
    xs = {world.tick: get(world, me, "x")}
    for _ in range(12):
        step(world, {1: [1, 0, 0, 0]})
        xs[world.tick] = get(world, me, "x")
    slot = world.slots_of([me])
    for ago in range(1, S.REWIND + 1):
        x, y = positions_ago(world, slot, ago)
        assert int(x[0]) == xs[world.tick - ago] and int(y[0]) == 1000 * U


def test_a_body_is_never_rewound_to_before_it_was_born_or_respawned() -> None:
    world = empty_world()
    step(world, {})
    step(world, {})
    me = join_at(world, 1, 500 * U, 500 * U)  # born at tick 2
    for _ in range(3):
        step(world, {1: [0, 1, 0, 0]})
    slot = world.slots_of([me])
    x, y = positions_ago(world, slot, S.REWIND)
    assert (int(x[0]), int(y[0])) == (500 * U, 500 * U)  # where it was when it came
    put(world, me, hp=0, respawn=1)
    step(world, {1: [0, 0, 0, 0]})  # respawns elsewhere: its past starts again there
    x, y = positions_ago(world, slot, 1)
    assert (int(x[0]), int(y[0])) == (get(world, me, "x"), get(world, me, "y"))


def crossing(lag: int, *, shooter_lag: int | None = None) -> int:
    """A target walks down across the line of a bullet fired along +x that reaches it 18 ticks later;
    it crosses the line 8 ticks before the bullet arrives. The shooter fires with ``shooter_lag`` (default
    ``lag``), and sends ``lag`` afterwards. Returns the target's hp."""
    world = empty_world()
    join_at(world, 1, 1000 * U, 1000 * U)
    target = join_at(world, 2, 1300 * U, (1000 - 6 * 11) * U)
    step(world, {1: [0, 0, 0, 1], 2: [0, 1, 0, 0]}, {1: lag if shooter_lag is None else shooter_lag})
    for _ in range(24):
        step(world, {1: [0, 0, 0, 0], 2: [0, 1, 0, 0]}, {1: lag})
    return get(world, target, "hp")


def test_a_bullet_fired_with_lag_hits_the_target_where_its_shooter_saw_it() -> None:
    assert crossing(0) == S.PLAYER_HP  # judged on the present: the target has walked on
    assert crossing(S.REWIND) == S.PLAYER_HP - S.BULLET_DAMAGE  # 8 ticks back: where the shooter aimed


def test_the_bullet_keeps_the_lag_it_was_fired_with_and_lags_beyond_rewind_count_as_rewind() -> None:
    assert crossing(0, shooter_lag=S.REWIND) == S.PLAYER_HP - S.BULLET_DAMAGE  # later inputs' lag: not the bullet's
    assert crossing(S.REWIND, shooter_lag=0) == S.PLAYER_HP
    assert crossing(40) == S.PLAYER_HP - S.BULLET_DAMAGE


@pytest.mark.parametrize("lag", [0, 3, S.REWIND])
def test_lag_compensation_is_deterministic(lag: int) -> None:
    def run() -> str:
        world = R.create(5, {"npcs": 30, "pellets": 20})
        for p in (1, 2, 3):
            R.join(world, p)  # type: ignore[arg-type]
        for t in range(120):
            values = [[(t // 9 + p) % 3 - 1, (t // 5 + p) % 3 - 1, (t * 7 + p * 40) % 256, 1] for p in (1, 2, 3)]
            R.step(world, InputBatch(np.array([1, 2, 3], np.int32), np.array(values, np.int16), [lag, 0, lag]))
        return state_hash(world)

    assert run() == run()

"""The arena's rules, one at a time, on small hand-built worlds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from game.arena import spec as S
from game.arena.ruleset import ArenaRuleset
from game.errors import GameError
from game.fixed import DIRECTIONS
from game.rules import Event, InputBatch, get_ruleset, player_slots
from game.world import PlayerId, World

R = ArenaRuleset()
U = S.SCALE  # one world unit in fixed point


def empty_world(seed: int = 1) -> World:
    return R.create(seed, {"npcs": 0, "pellets": 0})


def add(world: World, kind: int, x: int, y: int, **cols: Any) -> int:
    """Spawn one entity at (x, y) (fixed point), committed; returns its id."""
    values: dict[str, Any] = {"player": -1, "owner": -1, "target": -1}
    values["hp"] = {S.DRONE: S.DRONE_HP}.get(kind, 0)
    values.update(cols)
    (eid,) = world.spawn(1, kind=kind, x=x, y=y, **values)
    world.commit()
    return int(eid)


def join_at(world: World, player: int, x: int, y: int, shield: int = 0) -> int:
    eid = int(R.join(world, PlayerId(player)))
    put(world, eid, x=x, y=y, shield=shield)
    return eid


def get(world: World, eid: int, name: str) -> int:
    slot = int(world.slots_of([eid])[0])
    assert slot >= 0, f"entity {eid} is gone"
    return int(world.cols[name][slot])


def put(world: World, eid: int, **values: int) -> None:
    slot = int(world.slots_of([eid])[0])
    for name, v in values.items():
        world.cols[name][slot] = v


def exists(world: World, eid: int) -> bool:
    return bool(world.slots_of([eid])[0] >= 0)


def of_kind(world: World, kind: int) -> np.ndarray:
    slots = world.active()
    return world.ids[slots[world.cols["kind"][slots] == kind]]


def play(world: World, inputs: dict[int, list[int]] | None = None, ticks: int = 1, pin: tuple[int, ...] = ()) -> list[Event]:
    """Step ``ticks`` times with the same inputs; ``pin`` drones are held still after each step."""
    inputs = inputs or {}
    players = sorted(inputs)
    batch = InputBatch(np.array(players, np.int32), np.array([inputs[p] for p in players], np.int16).reshape(-1, 4))
    events: list[Event] = []
    for _ in range(ticks):
        events += R.step(world, batch)
        for eid in pin:
            if exists(world, eid):
                put(world, eid, vx=0, vy=0)
    return events


# -- the interface ---------------------------------------------------------------


def test_the_registry_gives_the_arena_ruleset():
    r = get_ruleset("arena")
    assert isinstance(r, ArenaRuleset)
    assert r.spec.kinds == ("player", "drone", "bullet", "pellet")
    assert [f.name for f in r.spec.inputs] == ["dx", "dy", "aim", "fire"]


def test_positions_fit_int16_and_motion_axes_cover_the_arena():
    assert S.SIZE <= np.iinfo(np.int16).max
    assert [(a.pos, a.vel, a.lo, a.hi) for a in S.SPEC.motion] == [("x", "vx", 0, S.SIZE), ("y", "vy", 0, S.SIZE)]
    replicated = [c.name for c in S.SPEC.replicated]
    assert replicated == ["kind", "x", "y", "vx", "vy", "aim", "hp", "score"]


def test_create_spawns_the_requested_drones_and_pellets_at_tick_zero():
    w = R.create(3, {"npcs": 12, "pellets": 7})
    assert w.tick == 0
    assert len(of_kind(w, S.DRONE)) == 12
    assert len(of_kind(w, S.PELLET)) == 7
    assert len(of_kind(w, S.PLAYER)) == 0
    slots = w.active()
    assert np.all(w.cols["player"][slots] == -1)
    assert np.all((w.cols["x"][slots] >= 0) & (w.cols["x"][slots] <= S.SIZE))


def test_create_uses_defaults_and_rejects_bad_options():
    w = R.create(1, {})
    assert len(of_kind(w, S.DRONE)) == 40 and len(of_kind(w, S.PELLET)) == 150
    with pytest.raises(GameError):
        R.create(1, {"npcs": -1})
    with pytest.raises(GameError):
        R.create(1, {"bananas": 3})


def test_join_spawns_a_shielded_full_health_player_and_leave_removes_it():
    w = empty_world()
    eid = int(R.join(w, PlayerId(5)))
    assert get(w, eid, "kind") == S.PLAYER
    assert get(w, eid, "player") == 5
    assert get(w, eid, "hp") == S.PLAYER_HP
    assert get(w, eid, "shield") == S.SHIELD_TICKS
    assert player_slots(w, np.array([5], np.int32))[0] >= 0
    R.leave(w, PlayerId(5))
    assert not exists(w, eid)
    R.leave(w, PlayerId(5))  # leaving twice is harmless


def test_joining_twice_is_refused():
    w = empty_world()
    R.join(w, PlayerId(1))
    with pytest.raises(GameError):
        R.join(w, PlayerId(1))


def test_scores_report_each_players_score():
    w = empty_world()
    a = join_at(w, 1, 1000, 1000)
    join_at(w, 2, 2000, 2000)
    put(w, a, score=42)
    assert R.scores(w) == {1: 42, 2: 0}


def test_an_empty_world_steps():
    w = empty_world()
    assert play(w, ticks=3) == []
    assert w.tick == 3 and w.count() == 0


# -- movement --------------------------------------------------------------------


def test_player_moves_at_a_fixed_speed_and_its_velocity_is_the_step_taken():
    w = empty_world()
    eid = join_at(w, 0, 10000, 10000)
    play(w, {0: [1, 0, 0, 0]})
    assert (get(w, eid, "x"), get(w, eid, "y")) == (10000 + S.PLAYER_SPEED, 10000)
    assert (get(w, eid, "vx"), get(w, eid, "vy")) == (S.PLAYER_SPEED, 0)
    play(w, {0: [0, -1, 0, 0]})
    assert (get(w, eid, "vx"), get(w, eid, "vy")) == (0, -S.PLAYER_SPEED)


def test_diagonal_moves_are_normalized():
    w = empty_world()
    eid = join_at(w, 0, 10000, 10000)
    play(w, {0: [-1, 1, 0, 0]})
    assert (get(w, eid, "vx"), get(w, eid, "vy")) == (-S.DIAGONAL, S.DIAGONAL)
    # Diagonal speed is within one fixed-point unit of the straight speed.
    assert abs(2 * S.DIAGONAL**2 - S.PLAYER_SPEED**2) <= 2 * S.PLAYER_SPEED


def test_player_is_clamped_to_the_arena():
    w = empty_world()
    eid = join_at(w, 0, 10, S.SIZE - 5)
    play(w, {0: [-1, 1, 0, 0]})
    assert (get(w, eid, "x"), get(w, eid, "y")) == (0, S.SIZE)
    assert (get(w, eid, "vx"), get(w, eid, "vy")) == (-10, 5)
    play(w, {0: [-1, 1, 0, 0]})
    assert (get(w, eid, "vx"), get(w, eid, "vy")) == (0, 0)


def test_a_player_without_input_stands_still():
    w = empty_world()
    eid = join_at(w, 0, 10000, 10000)
    play(w, {0: [1, 1, 0, 0]})
    play(w, {})
    assert (get(w, eid, "vx"), get(w, eid, "vy")) == (0, 0)
    assert get(w, eid, "x") == 10000 + S.DIAGONAL


def test_out_of_range_inputs_are_clamped():
    w = empty_world()
    eid = join_at(w, 0, 10000, 10000)
    play(w, {0: [5, -9, 300, 7]})
    assert (get(w, eid, "vx"), get(w, eid, "vy")) == (S.DIAGONAL, -S.DIAGONAL)
    assert get(w, eid, "aim") == 300 & 0xFF


def test_player_turns_to_its_aim():
    w = empty_world()
    eid = join_at(w, 0, 10000, 10000)
    play(w, {0: [0, 0, 200, 0]})
    assert get(w, eid, "aim") == 200


# -- shooting --------------------------------------------------------------------


def test_fire_spawns_a_bullet_along_the_aim_with_a_cooldown():
    w = empty_world()
    eid = join_at(w, 0, 10000, 10000)
    play(w, {0: [0, 0, 64, 1]})  # aim 64 = +y
    bullets = of_kind(w, S.BULLET)
    assert len(bullets) == 1
    b = int(bullets[0])
    assert get(w, b, "owner") == eid
    assert (get(w, b, "x"), get(w, b, "y")) == (10000, 10000 + S.MUZZLE)
    assert (get(w, b, "vx"), get(w, b, "vy")) == (0, S.BULLET_SPEED)
    assert get(w, b, "life") == S.BULLET_LIFE
    play(w, {0: [0, 0, 64, 1]}, ticks=S.FIRE_COOLDOWN - 1)
    assert len(of_kind(w, S.BULLET)) == 1
    play(w, {0: [0, 0, 64, 1]})
    assert len(of_kind(w, S.BULLET)) == 2


def test_bullet_velocity_follows_the_direction_table():
    w = empty_world()
    join_at(w, 0, 10000, 10000)
    play(w, {0: [0, 0, 37, 1]})
    b = int(of_kind(w, S.BULLET)[0])
    want = (DIRECTIONS[37].astype(np.int64) * S.BULLET_SPEED + 2048) >> 12
    assert (get(w, b, "vx"), get(w, b, "vy")) == tuple(want)


def test_bullets_fly_straight_and_expire_after_their_lifetime():
    w = empty_world()
    join_at(w, 0, 4000, 12000)
    play(w, {0: [0, 0, 0, 1]})
    b = int(of_kind(w, S.BULLET)[0])
    x0 = get(w, b, "x")
    play(w, {0: [0, 0, 0, 0]}, ticks=S.BULLET_LIFE - 1)
    assert get(w, b, "x") == x0 + (S.BULLET_LIFE - 1) * S.BULLET_SPEED
    play(w, {0: [0, 0, 0, 0]})
    assert not exists(w, b)


def test_a_bullet_vanishes_at_the_wall():
    w = empty_world()
    join_at(w, 0, S.SIZE - S.MUZZLE - 2 * S.BULLET_SPEED, 12000)
    play(w, {0: [0, 0, 0, 1]})
    b = int(of_kind(w, S.BULLET)[0])
    play(w, ticks=2)
    assert get(w, b, "x") == S.SIZE
    play(w)
    assert not exists(w, b)


def test_dead_players_and_idle_players_do_not_shoot():
    w = empty_world()
    eid = join_at(w, 0, 10000, 10000)
    put(w, eid, hp=0, respawn=50)
    play(w, {0: [1, 0, 0, 1]}, ticks=3)
    assert len(of_kind(w, S.BULLET)) == 0
    assert get(w, eid, "x") == 10000 and get(w, eid, "vx") == 0


# -- hits, deaths, scores ----------------------------------------------------------


def test_bullet_damages_drone_and_scores_for_owner():
    w = empty_world()
    shooter = join_at(w, 0, 10000, 10000, shield=1000)
    drone = add(w, S.DRONE, 10000 + 100 * U, 10000)
    events = play(w, {0: [0, 0, 0, 1]}, ticks=6, pin=(drone,))
    assert get(w, drone, "hp") == S.DRONE_HP - S.BULLET_DAMAGE
    assert get(w, shooter, "score") == 0
    events += play(w, {0: [0, 0, 0, 1]}, ticks=6, pin=(drone,))
    assert not exists(w, drone)
    assert get(w, shooter, "score") == S.DRONE_SCORE
    assert Event("drone_kill", (shooter, drone), ((10000 + 100 * U, 10000),)) in events  # where the drone was
    assert len(of_kind(w, S.DRONE)) == 1  # replaced
    assert len(of_kind(w, S.BULLET)) == 0 or all(get(w, int(b), "owner") == shooter for b in of_kind(w, S.BULLET))


def test_a_bullet_does_not_hit_its_own_shooter():
    w = empty_world()
    shooter = join_at(w, 0, 10000, 10000)
    play(w, {0: [0, 0, 0, 1]})
    # Run after the bullet: it stays ahead, but make the shooter step onto it.
    b = int(of_kind(w, S.BULLET)[0])
    put(w, shooter, x=get(w, b, "x") + S.BULLET_SPEED)
    play(w)
    assert exists(w, b)
    assert get(w, shooter, "hp") == S.PLAYER_HP


def test_bullets_kill_a_player_who_respawns_later_with_full_health():
    w = empty_world()
    shooter = join_at(w, 0, 10000, 10000, shield=1000)
    victim = join_at(w, 1, 10000 + 100 * U, 10000)
    put(w, victim, hp=S.BULLET_DAMAGE)
    events = play(w, {0: [0, 0, 0, 1]}, ticks=4)
    assert get(w, victim, "hp") == S.BULLET_DAMAGE
    events = play(w, {0: [0, 0, 0, 1]})  # the bullet from tick 1 arrives on tick 5
    assert Event("kill", (shooter, victim), ((get(w, victim, "x"), get(w, victim, "y")),)) in events
    assert get(w, victim, "hp") == 0
    assert get(w, shooter, "score") == S.PLAYER_SCORE
    dead_at = (get(w, victim, "x"), get(w, victim, "y"))
    # Dead: doesn't move, shoot, or get hit; the same entity comes back.
    events = play(w, {1: [1, 1, 0, 1]}, ticks=S.RESPAWN_TICKS - 1)
    assert (get(w, victim, "x"), get(w, victim, "y")) == dead_at
    assert get(w, victim, "hp") == 0
    assert len(of_kind(w, S.BULLET)) == 0
    events = play(w, {1: [0, 0, 0, 0]})
    assert Event("respawn", (victim,)) in events
    assert get(w, victim, "hp") == S.PLAYER_HP
    assert get(w, victim, "shield") == S.SHIELD_TICKS
    assert (get(w, victim, "x"), get(w, victim, "y")) != dead_at


def test_simultaneous_hits_add_up_and_the_earliest_bullet_gets_the_kill():
    w = empty_world()
    left = join_at(w, 0, 10000 - 100 * U, 10000, shield=1000)
    right = join_at(w, 1, 10000 + 100 * U, 10000, shield=1000)
    victim = join_at(w, 2, 10000, 10000)
    put(w, victim, hp=2 * S.BULLET_DAMAGE)
    events = play(w, {0: [0, 0, 0, 1], 1: [0, 0, 128, 1]}, ticks=6)
    kills = [e for e in events if e.kind == "kill"]
    assert kills == [Event("kill", (left, victim), ((10000, 10000),))]  # left's bullet has the lower id
    assert get(w, left, "score") == S.PLAYER_SCORE and get(w, right, "score") == 0


def test_a_bullet_hits_only_the_nearest_target():
    w = empty_world()
    join_at(w, 0, 10000, 10000, shield=1000)
    near = add(w, S.DRONE, 10000 + 94 * U, 10000 + 10 * U)
    far = add(w, S.DRONE, 10000 + 94 * U, 10000 - 15 * U)
    play(w, {0: [0, 0, 0, 1]}, ticks=5, pin=(near, far))
    assert get(w, near, "hp") == S.DRONE_HP - S.BULLET_DAMAGE
    assert get(w, far, "hp") == S.DRONE_HP


def test_shielded_players_are_not_hit():
    w = empty_world()
    join_at(w, 0, 10000, 10000, shield=1000)
    target = join_at(w, 1, 10000 + 100 * U, 10000, shield=S.SHIELD_TICKS)
    play(w, {0: [0, 0, 0, 1]}, ticks=6)
    assert get(w, target, "hp") == S.PLAYER_HP


def test_a_drone_explodes_on_contact_damaging_the_player():
    w = empty_world()
    player = join_at(w, 0, 10000, 10000)
    drone = add(w, S.DRONE, 10000 + 30 * U, 10000)
    events = play(w)
    assert not exists(w, drone)
    assert get(w, player, "hp") == S.PLAYER_HP - S.DRONE_DAMAGE
    assert get(w, player, "score") == 0
    assert len(of_kind(w, S.DRONE)) == 1
    assert not [e for e in events if e.kind in ("kill", "drone_kill")]


def test_drones_that_kill_a_player_are_credited_with_it():
    w = empty_world()
    player = join_at(w, 0, 10000, 10000)
    put(w, player, hp=S.DRONE_DAMAGE)
    drone = add(w, S.DRONE, 10000, 10000 + 30 * U)
    events = play(w)
    assert Event("kill", (drone, player), ((10000, 10000),)) in events
    assert get(w, player, "hp") == 0 and get(w, player, "respawn") == S.RESPAWN_TICKS


def test_scores_saturate_at_the_wire_limit():
    w = empty_world()
    shooter = join_at(w, 0, 10000, 10000, shield=1000)
    put(w, shooter, score=S.SCORE_MAX - 1)
    drone = add(w, S.DRONE, 10000 + 100 * U, 10000, hp=1)
    play(w, {0: [0, 0, 0, 1]}, ticks=6, pin=(drone,))
    assert not exists(w, drone)
    assert get(w, shooter, "score") == S.SCORE_MAX


# -- pellets ---------------------------------------------------------------------


def test_pellet_scores_heals_and_reappears_elsewhere():
    w = R.create(2, {"npcs": 0, "pellets": 5})
    pellet = int(of_kind(w, S.PELLET)[0])
    px, py = get(w, pellet, "x"), get(w, pellet, "y")
    player = join_at(w, 0, px + 20 * U, py)
    put(w, player, hp=50)
    events = play(w)
    assert Event("pickup", (player, pellet), ((px, py),)) in events  # where the pellet was
    assert not exists(w, pellet)
    assert get(w, player, "score") == S.PELLET_SCORE
    assert get(w, player, "hp") == 50 + S.PELLET_HEAL
    pellets = of_kind(w, S.PELLET)
    assert len(pellets) == 5 and int(pellets.max()) > pellet


def test_healing_stops_at_full_health():
    w = empty_world()
    player = join_at(w, 0, 10000, 10000)
    put(w, player, hp=S.PLAYER_HP - 1)
    add(w, S.PELLET, 10000, 10000)
    play(w)
    assert get(w, player, "hp") == S.PLAYER_HP


def test_a_pellet_goes_to_the_nearest_of_two_players():
    w = empty_world()
    far = join_at(w, 0, 10000 - 25 * U, 10000)
    near = join_at(w, 1, 10000 + 10 * U, 10000)
    add(w, S.PELLET, 10000, 10000)
    play(w)
    assert get(w, near, "score") == S.PELLET_SCORE and get(w, far, "score") == 0


def test_dead_players_do_not_eat():
    w = empty_world()
    player = join_at(w, 0, 10000, 10000)
    put(w, player, hp=0, respawn=50)
    pellet = add(w, S.PELLET, 10000, 10000)
    play(w)
    assert exists(w, pellet)


# -- drones ----------------------------------------------------------------------


def test_drones_hunt_the_nearest_living_player_in_range():
    w = empty_world()
    prey = join_at(w, 0, 10000, 10000)
    join_at(w, 1, 10000 + 400 * U, 10000)
    drone = add(w, S.DRONE, 10000 + 150 * U, 10000 + 10 * U)
    play(w, ticks=S.HUNT_PERIOD)
    assert get(w, drone, "target") == prey
    assert get(w, drone, "vx") < 0 and abs(get(w, drone, "vy")) < S.HUNT_SPEED // 4
    assert get(w, drone, "vx") ** 2 + get(w, drone, "vy") ** 2 <= (S.HUNT_SPEED + 1) ** 2
    x0 = get(w, drone, "x")
    play(w, ticks=10)
    assert get(w, drone, "x") < x0 - 20 * U


def test_drones_ignore_players_out_of_range_dead_or_shielded():
    w = empty_world()
    join_at(w, 0, 2000, 2000)
    dead = join_at(w, 1, 12000, 12000)
    put(w, dead, hp=0, respawn=500)
    join_at(w, 2, 12000, 14000, shield=500)
    drone = add(w, S.DRONE, 12000 + 100 * U, 13000, vx=5, vy=0)
    play(w, ticks=S.HUNT_PERIOD)
    assert get(w, drone, "target") == -1


def test_a_hunting_drone_gives_up_when_its_prey_leaves():
    w = empty_world()
    join_at(w, 0, 10000, 10000)
    drone = add(w, S.DRONE, 10000 + 300 * U, 10000)
    play(w, ticks=S.HUNT_PERIOD)
    assert get(w, drone, "target") >= 0
    R.leave(w, PlayerId(0))
    play(w, ticks=S.HUNT_PERIOD)
    assert get(w, drone, "target") == -1
    assert get(w, drone, "vx") ** 2 + get(w, drone, "vy") ** 2 <= (S.WANDER_SPEED + 1) ** 2


def test_wandering_drones_change_heading_now_and_then():
    w = R.create(4, {"npcs": 200, "pellets": 0})
    before = {c: w.cols[c][w.active()].copy() for c in ("vx", "vy")}
    play(w, ticks=S.WANDER_PERIOD)
    changed = (w.cols["vx"][w.active()] != before["vx"]) | (w.cols["vy"][w.active()] != before["vy"])
    # Walls flip a sign too; most changes come from the periodic redraw.
    assert changed.mean() > 0.8


def test_drones_bounce_off_the_walls():
    w = empty_world()
    drone = add(w, S.DRONE, 5, 12000, vx=-16, vy=0)
    play(w)
    assert (get(w, drone, "x"), get(w, drone, "vx")) == (11, 16)

"""Drones: the arena's NPCs, which wander and hunt players.

A drone flies in a straight line at ``WANDER_SPEED``, bouncing off the
walls, and picks a random new heading every ``WANDER_PERIOD`` ticks. Every
``HUNT_PERIOD`` ticks (staggered by id, so the work and the wire changes
spread evenly) it looks for the nearest living player within
``HUNT_RADIUS`` (not under spawn protection) and, if there is one, heads for it at ``HUNT_SPEED``
(``target`` = that player's entity id); when the prey is gone, dead or out
of reach, it goes back to wandering. Headings are uint8 angles through the
fixed direction table, so a hunt keeps the same velocity until the prey
moves noticeably, and only velocities change (positions follow the motion
rule clients extrapolate with). Velocities change after this tick's motion.

Touching a living player makes a drone explode (see ``game.arena.combat``).
The number of drones is constant: each destroyed drone is replaced at once
by a new one (a new id) at a random spot.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from game import rng
from game.arena.census import I64, Census, Idx, random_positions
from game.arena.spec import (
    DRONE,
    DRONE_HP,
    HUNT_PERIOD,
    HUNT_RADIUS,
    HUNT_SPEED,
    STREAM_DRONE_HEADING,
    STREAM_DRONE_SPAWN,
    STREAM_DRONE_SPAWN_HEADING,
    WANDER_PERIOD,
    WANDER_SPEED,
)
from game.fixed import DIR_ONE, angle_of, direction
from game.spatial import Grid
from game.world import World


def velocity(angles: npt.ArrayLike, speed: int) -> tuple[I64, I64]:
    """Velocity of ``speed`` (fixed point per tick) along uint8 ``angles``, rounded, int64 (N,) each."""
    d = direction(np.asarray(angles, dtype=np.int64)).astype(np.int64)
    v = (d * speed + DIR_ONE // 2) >> 12
    return v[:, 0], v[:, 1]


def spawn_drones(world: World, tick: int, keys: npt.ArrayLike) -> None:
    """Queue one new wandering drone per key (distinct ints), placed at random."""
    k = np.asarray(keys, dtype=np.int64)
    x, y = random_positions(world.seed, tick, STREAM_DRONE_SPAWN, k)
    vx, vy = velocity(rng.integers(world.seed, tick, STREAM_DRONE_SPAWN_HEADING, k, 0, 255), WANDER_SPEED)
    world.spawn(k.size, kind=DRONE, x=x, y=y, vx=vx, vy=vy, hp=DRONE_HP, player=-1, owner=-1, target=-1, born=tick)


def replace_drones(world: World, census: Census, slots: Idx) -> None:
    """Remove the drones in ``slots`` (unique) and queue as many new ones."""
    if slots.size:
        census.remove(world, slots)
        spawn_drones(world, world.tick, world.ids[slots])


def steer_drones(world: World, census: Census) -> None:
    """Hunting and wandering decisions for the drones due this tick (see module docstring)."""
    cols = world.cols
    drones = census.present(census.drones)
    ids = world.ids[drones].astype(np.int64)
    tick = world.tick

    due = drones[(ids + tick) % HUNT_PERIOD == 0]
    prey = census.targets(world)
    grid = Grid.build(cols["x"][prey], cols["y"][prey], HUNT_RADIUS)
    near, _ = grid.nearest(cols["x"][due], cols["y"][due], HUNT_RADIUS)
    found = near >= 0
    hunters, chased = due[found], prey[near[found]]
    dx = cols["x"][chased].astype(np.int64) - cols["x"][hunters]
    dy = cols["y"][chased].astype(np.int64) - cols["y"][hunters]
    vx, vy = velocity(angle_of(dx, dy), HUNT_SPEED)
    cols["vx"][hunters], cols["vy"][hunters] = vx, vy
    cols["target"][hunters] = world.ids[chased]

    lost = due[~found & (cols["target"][due] >= 0)]
    cols["target"][lost] = -1
    bored = drones[((ids + tick) % WANDER_PERIOD == 0) & (cols["target"][drones] < 0)]
    wander = np.union1d(lost, bored)
    if wander.size == 0:
        return
    heading = rng.integers(world.seed, tick, STREAM_DRONE_HEADING, world.ids[wander], 0, 255)
    cols["vx"][wander], cols["vy"][wander] = velocity(heading, WANDER_SPEED)

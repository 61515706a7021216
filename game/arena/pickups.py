"""Pellets: static food that scores and heals.

A living player touching a pellet eats it: ``PELLET_SCORE`` points and
``PELLET_HEAL`` hit points (up to ``PLAYER_HP``). When several players touch
the same pellet in one tick, the nearest gets it (ties: the lower entity id).
The eaten pellet is replaced at once by a new one (a new id) at a random
spot, so the number of pellets is constant. Event:
``("pickup", player_entity, pellet_entity)``, by pellet id, at the pellet's position.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from game.arena.census import Census, random_positions
from game.arena.spec import (
    PELLET,
    PELLET_HEAL,
    PELLET_RADIUS,
    PELLET_SCORE,
    PLAYER_HP,
    PLAYER_RADIUS,
    SCORE_MAX,
    STREAM_PELLET_SPAWN,
)
from game.rules import Event
from game.spatial import Grid, nearest_of_pairs
from game.world import World


def spawn_pellets(world: World, tick: int, keys: npt.ArrayLike) -> None:
    """Queue one pellet per key (distinct ints), placed at random."""
    k = np.asarray(keys, dtype=np.int64)
    x, y = random_positions(world.seed, tick, STREAM_PELLET_SPAWN, k)
    world.spawn(k.size, kind=PELLET, x=x, y=y, player=-1, owner=-1, target=-1)


def eat_pellets(world: World, census: Census) -> list[Event]:
    """Living players eat the pellets they touch; eaten pellets reappear elsewhere."""
    cols = world.cols
    eaters = census.living_players(world)
    pellets = census.present(census.pellets)
    reach = PLAYER_RADIUS + PELLET_RADIUS
    grid = Grid.build(cols["x"][eaters], cols["y"][eaters], reach)
    ip, ie, d2 = grid.pairs(cols["x"][pellets], cols["y"][pellets], reach)
    if ip.size == 0:  # most ticks nobody eats
        return []
    best, _ = nearest_of_pairs(pellets.size, ip, ie, d2)
    eaten = np.flatnonzero(best >= 0)
    pslots, who = pellets[eaten], eaters[best[eaten]]
    fed, n = np.unique(who, return_counts=True)
    cols["score"][fed] = np.minimum(cols["score"][fed].astype(np.int64) + n * PELLET_SCORE, SCORE_MAX)
    cols["hp"][fed] = np.minimum(cols["hp"][fed].astype(np.int64) + n * PELLET_HEAL, PLAYER_HP)
    where = zip(cols["x"][pslots].tolist(), cols["y"][pslots].tolist())
    census.remove(world, pslots)
    spawn_pellets(world, world.tick, world.ids[pslots])
    return [Event("pickup", (int(p), int(e)), ((x, y),)) for p, e, (x, y) in zip(world.ids[who], world.ids[pslots], where)]

"""Combat: shooting, hits, explosions, deaths and the kill score.

Shooting: a living player holding ``fire`` shoots when its cooldown is 0:
a bullet appears ``MUZZLE`` ahead of it along its aim, flying at
``BULLET_SPEED`` for ``BULLET_LIFE`` ticks, and the cooldown restarts at
``FIRE_COOLDOWN`` (it counts down one per tick). Bullets fired this tick
move from the next one.

Hits, all found on the positions after this tick's motion and resolved at
once (so the order of entities never matters):

- a bullet hits the nearest living player (not its shooter) or drone it
  touches (ties: the lower id), deals ``BULLET_DAMAGE`` and disappears.
  Lag compensation: a bullet fired with lag ``L`` (its shooter's, kept in
  its ``lag`` column) meets the players and drones where they were ``L``
  ticks ago (``game.arena.rewind``): where its shooter saw them;
- a drone touching a living player explodes on the nearest one it touches,
  dealing ``DRONE_DAMAGE``, and disappears.

Players under spawn protection (``game.arena.respawn``) are not hit at all.

Damage adds up; hit points stop at 0. A player at 0 dies (see
``game.arena.respawn``); a drone at 0 is destroyed and replaced. The kill is
credited to the earliest hit of the tick on the victim (lowest bullet or
drone id): the bullet's shooter, or the exploding drone. A shooter still in
the game scores ``PLAYER_SCORE`` for a player and ``DRONE_SCORE`` for a drone.

Events, by victim id: ``("kill", killer_entity, victim_player_entity)``
(the killer is a player or a drone) and
``("drone_kill", shooter_entity, drone_entity)``, each at the victim's position.
"""

from __future__ import annotations

import numpy as np
from attrs import frozen

from game.arena.census import I64, Census, Idx, Intent
from game.arena.drones import replace_drones, velocity
from game.arena.respawn import kill_players
from game.arena.rewind import positions_ago
from game.arena.spec import (
    BULLET,
    BULLET_DAMAGE,
    BULLET_LIFE,
    BULLET_RADIUS,
    BULLET_SPEED,
    CONTACT_CELL,
    DRONE,
    DRONE_DAMAGE,
    DRONE_RADIUS,
    DRONE_SCORE,
    FIRE_COOLDOWN,
    MUZZLE,
    PLAYER,
    PLAYER_RADIUS,
    PLAYER_SCORE,
    SCORE_MAX,
    SIZE,
)
from game.fixed import DIR_ONE, direction
from game.rules import Event
from game.spatial import Grid, nearest_of_pairs
from game.world import World


@frozen
class Hits:
    """Every hit of one tick, one row per hit.

    Attributes:
        victims: intp (K,), slots of the players and drones hit.
        damage: int64 (K,).
        source: int64 (K,), entity id of the bullet or drone that hit.
        credit: int64 (K,), entity id credited with a kill: the shooter, or the drone.
        bullets: intp, slots of the bullets that hit something.
        exploded: intp, slots of the drones that touched a player.
    """

    victims: Idx
    damage: I64
    source: I64
    credit: I64
    bullets: Idx
    exploded: Idx


def _bullet_pairs(world: World, bullets: Idx, drones: Idx, players: Idx, drone_grid: Grid,
                  player_grid: Grid) -> tuple[Idx, Idx, I64]:
    """Bullets touching drones or players (not their shooter) on the grids given: bullet index
    into ``bullets``, target slot, squared distance."""
    cols = world.cols
    bx, by = cols["x"][bullets], cols["y"][bullets]
    ib_d, jd, d2_d = drone_grid.pairs(bx, by, BULLET_RADIUS + DRONE_RADIUS)
    ib_p, jp, d2_p = player_grid.pairs(bx, by, BULLET_RADIUS + PLAYER_RADIUS)
    other = cols["owner"][bullets[ib_p]].astype(np.int64) != world.ids[players[jp]]
    return (np.concatenate([ib_d, ib_p[other]]), np.concatenate([drones[jd], players[jp[other]]]),
            np.concatenate([d2_d, d2_p[other]]))


def find_hits(world: World, census: Census, flying: Idx) -> Hits:
    """Bullets against players and drones (rewound by each bullet's lag), drones against players (see module docstring)."""
    cols = world.cols
    x, y = cols["x"], cols["y"]
    drones = census.present(census.drones)
    players = census.targets(world)
    drone_grid = Grid.build(x[drones], y[drones], CONTACT_CELL)
    player_grid = Grid.build(x[players], y[players], CONTACT_CELL)

    lag = cols["lag"][flying]
    parts = []
    # One pass per distinct lag (at most REWIND + 1 of them), never one per bullet.
    for ago in np.unique(lag).tolist():
        group = np.flatnonzero(lag == ago)
        grids = (drone_grid, player_grid)
        if ago > 0:
            grids = (Grid.build(*positions_ago(world, drones, ago), CONTACT_CELL),
                     Grid.build(*positions_ago(world, players, ago), CONTACT_CELL))
        ib, target, d2 = _bullet_pairs(world, flying[group], drones, players, *grids)
        parts.append((group[ib], target, d2))
    ib = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.intp)
    target = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.intp)
    d2 = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int64)
    struck, _ = nearest_of_pairs(flying.size, ib, target, d2)
    hit = struck >= 0
    bullets, bullet_victims = flying[hit], struck[hit]

    # The drones query the players' grid (tens of drones, up to hundreds of players: the fewer queries). The
    # pairs are those the players would find in the drones' grid, and nearest_of_pairs picks the same one of
    # each drone's (the smallest d2, then the lowest player index) in whatever order they come.
    jd_c, jp_c, d2_c = player_grid.pairs(x[drones], y[drones], PLAYER_RADIUS + DRONE_RADIUS)
    touched, _ = nearest_of_pairs(drones.size, jd_c, jp_c, d2_c)
    boom = touched >= 0
    exploded, drone_victims = drones[boom], players[touched[boom]]

    return Hits(
        victims=np.concatenate([bullet_victims, drone_victims]),
        damage=np.concatenate(
            [np.full(bullets.size, BULLET_DAMAGE, np.int64), np.full(exploded.size, DRONE_DAMAGE, np.int64)]
        ),
        source=np.concatenate([world.ids[bullets], world.ids[exploded]]).astype(np.int64),
        credit=np.concatenate([cols["owner"][bullets].astype(np.int64), world.ids[exploded].astype(np.int64)]),
        bullets=bullets,
        exploded=exploded,
    )


def resolve_hits(world: World, census: Census, hits: Hits) -> list[Event]:
    """Apply the damage; kill, destroy, replace and score (see module docstring)."""
    cols = world.cols
    census.remove(world, hits.bullets)
    if hits.victims.size == 0:  # most ticks: skip the bookkeeping below
        return []
    victims, inv = np.unique(hits.victims, return_inverse=True)
    total = np.zeros(victims.size, dtype=np.int64)
    np.add.at(total, inv, hits.damage)
    first = np.lexsort((hits.source, inv))
    lead = np.ones(first.size, dtype=np.bool_)
    lead[1:] = inv[first][1:] != inv[first][:-1]
    killer = hits.credit[first[lead]]

    hp = np.maximum(cols["hp"][victims].astype(np.int64) - total, 0)
    cols["hp"][victims] = hp
    dead = hp == 0
    died, killer = victims[dead], killer[dead]
    kind = cols["kind"][died]
    where = zip(cols["x"][died].tolist(), cols["y"][died].tolist())  # before a destroyed drone is replaced
    kill_players(world, died[kind == PLAYER])
    replace_drones(world, census, np.union1d(died[kind == DRONE], hits.exploded))

    scorer = world.slots_of(killer)
    scores = scorer >= 0
    scores[scores] = cols["kind"][scorer[scores]] == PLAYER
    winners, inv_w = np.unique(scorer[scores], return_inverse=True)
    gain = np.zeros(winners.size, dtype=np.int64)
    np.add.at(gain, inv_w, np.where(kind[scores] == PLAYER, PLAYER_SCORE, DRONE_SCORE))
    cols["score"][winners] = np.minimum(cols["score"][winners].astype(np.int64) + gain, SCORE_MAX)

    names = np.where(kind == PLAYER, "kill", "drone_kill")
    return [Event(str(n), (int(k), int(v)), ((x, y),)) for n, k, v, (x, y) in zip(names, killer, world.ids[died], where)]


def fire(world: World, census: Census, intent: Intent) -> None:
    """Count cooldowns down; living players holding fire with a ready gun shoot."""
    cols = world.cols
    players = census.players
    cols["cooldown"][players] = np.maximum(cols["cooldown"][players].astype(np.int64) - 1, 0)
    ready = intent.fire & (cols["hp"][intent.slots] > 0) & (cols["cooldown"][intent.slots] == 0)
    shooters, aim = intent.slots[ready], intent.aim[ready]
    d = direction(aim).astype(np.int64)
    x = np.clip(cols["x"][shooters] + ((d[:, 0] * MUZZLE + DIR_ONE // 2) >> 12), 0, SIZE)
    y = np.clip(cols["y"][shooters] + ((d[:, 1] * MUZZLE + DIR_ONE // 2) >> 12), 0, SIZE)
    vx, vy = velocity(aim, BULLET_SPEED)
    world.spawn(
        shooters.size,
        kind=BULLET,
        x=x,
        y=y,
        vx=vx,
        vy=vy,
        life=BULLET_LIFE,
        owner=world.ids[shooters],
        player=-1,
        target=-1,
        born=world.tick,
        lag=intent.lag[ready],
    )
    cols["cooldown"][shooters] = FIRE_COOLDOWN

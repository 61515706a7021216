"""``arena``: players shoot drones and each other and eat pellets in a 3000 x 3000 box.

The rules, in the order a tick applies them (constants in ``game.arena.spec``):

1. **Respawn** (``respawn``): dead players count down ``RESPAWN_TICKS`` (3 s)
   and come back at a random spot with full hp (100), keeping their score.
   Joined or respawned players are untouchable (and not hunted) for
   ``SHIELD_TICKS`` (1.5 s).
2. **Move** (``movement``): living players move 6 units per tick along their
   input (``dx, dy`` in -1..1, diagonals normalized), clamped to the arena,
   and turn to their input ``aim``; drones (2 units per tick wandering,
   3 hunting) bounce off the walls; bullets (14 units per tick) vanish at the
   walls and after 40 ticks.
3. **Hit** (``combat``): a bullet hits the nearest player (not its shooter)
   or drone it touches: 15 damage. Lag-compensated (``rewind``): a bullet
   meets the bodies where they were its shooter's ``lag`` ticks ago, where
   the shooter saw them. A drone touching a player explodes on it:
   25 damage. Players (100 hp) and drones (30 hp) at 0 hp die; the shooter
   scores 25 for a player, 5 for a drone. Destroyed drones are replaced
   elsewhere at once.
4. **Eat** (``pickups``): a player touching a pellet eats it: +1 score, +5 hp;
   the pellet reappears elsewhere.
5. **Shoot** (``combat``): a living player holding ``fire`` shoots along its
   aim at most once per 6 ticks.
6. **Steer** (``drones``): drones due to re-think (staggered by id) head for
   the nearest living player within 450 units, or wander.

Options: ``npcs`` drones (default 40) and ``pellets`` (default 150); both
counts stay constant. Events: ``respawn``, ``kill``, ``drone_kill``,
``pickup`` (see the system modules). Randomness comes from ``game.rng``
keyed by the match seed, the tick, a per-site stream and an entity id, so a
match is a pure function of its seed and its inputs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from game.arena.census import Census, Intent, random_positions
from game.arena.combat import find_hits, fire, resolve_hits
from game.arena.drones import spawn_drones, steer_drones
from game.arena.movement import move_bodies, move_players
from game.arena.pickups import eat_pellets, spawn_pellets
from game.arena.respawn import respawn_players
from game.arena.rewind import remember
from game.arena.spec import PLAYER, PLAYER_HP, SHIELD_TICKS, SPEC, STREAM_PLAYER_SPAWN
from game.errors import GameError
from game.rules import (
    Event,
    InputBatch,
    player_slots,
    remove_player,
    remove_players,
    scores_from_column,
)
from game.world import EntityId, PlayerId, World


def _twice(players: npt.NDArray[np.int32]) -> int:
    """A player id that ``players`` holds more than once."""
    ids, counts = np.unique(players, return_counts=True)
    return int(ids[counts > 1][0])


class ArenaRuleset:
    """The arena rules; see the module docstring."""

    spec = SPEC

    def create(self, seed: int, options: dict[str, int]) -> World:
        opts = SPEC.resolve_options(options)
        drones, pellets = opts["npcs"], opts["pellets"]
        base = drones + pellets
        world = World(SPEC, seed=seed, capacity=max(256, base + base // 4 + 256))
        spawn_drones(world, 0, np.arange(drones, dtype=np.int64))
        spawn_pellets(world, 0, np.arange(pellets, dtype=np.int64))
        world.commit()
        return world

    def join(self, world: World, player: PlayerId) -> EntityId:
        return EntityId(int(self.join_many(world, np.array([player], dtype=np.int32))[0]))

    def join_many(self, world: World, players: npt.NDArray[np.int32]) -> npt.NDArray[np.uint32]:
        """Every player's entity at once: the same world as ``join`` of each in turn (one draw, one commit)."""
        if players.size and int(players.min()) < 0:
            raise GameError(f"arena: player ids are >= 0, not {int(players.min())}")
        again = players[player_slots(world, players) >= 0]
        if again.size or np.unique(players).size != players.size:
            raise GameError(f"arena: player {int(again[0]) if again.size else _twice(players)} has already joined")
        x, y = random_positions(world.seed, world.tick, STREAM_PLAYER_SPAWN, -1 - players.astype(np.int64))
        eids = world.spawn(
            len(players), kind=PLAYER, x=x, y=y, hp=PLAYER_HP, shield=SHIELD_TICKS, player=players, owner=-1,
            target=-1, born=world.tick,
        )
        world.commit()
        return eids

    def leave(self, world: World, player: PlayerId) -> None:
        remove_player(world, player)

    def leave_many(self, world: World, players: npt.NDArray[np.int32]) -> None:
        remove_players(world, players)

    def step(self, world: World, inputs: InputBatch) -> list[Event]:
        world.tick += 1
        remember(world)
        census = Census.of(world)
        intent = Intent.of(world, inputs)
        events = respawn_players(world, census)
        move_players(world, census, intent)
        flying = move_bodies(world, census)
        events += resolve_hits(world, census, find_hits(world, census, flying))
        events += eat_pellets(world, census)
        fire(world, census, intent)
        steer_drones(world, census)
        world.commit()
        return events

    def scores(self, world: World) -> dict[int, int]:
        return scores_from_column(world)

"""Death, respawn and spawn protection of players.

A player is never despawned by dying: its entity stays, with ``hp = 0``,
where it fell, and neither moves, shoots, picks up nor can be hit or hunted.
``RESPAWN_TICKS`` later it reappears at a random spot with full hit points
and a ready gun, keeping its score. Event: ``("respawn", player_entity)``.

A player who just joined or respawned is protected for ``SHIELD_TICKS``:
bullets and drones pass through it and drones don't hunt it (it can move,
shoot and eat). Where drones are dense this is what lets it get going.
"""

from __future__ import annotations

import numpy as np

from game.arena.census import Census, Idx, random_positions
from game.arena.spec import PLAYER_HP, RESPAWN_TICKS, SHIELD_TICKS, STREAM_PLAYER_SPAWN
from game.rules import Event
from game.world import World


def kill_players(world: World, slots: Idx) -> None:
    """Mark the players in ``slots`` dead (hp 0) and start their respawn countdown."""
    cols = world.cols
    cols["hp"][slots] = 0
    cols["vx"][slots] = 0
    cols["vy"][slots] = 0
    cols["respawn"][slots] = RESPAWN_TICKS


def respawn_players(world: World, census: Census) -> list[Event]:
    """Count shields and dead players down; those done reappear at a random spot with full hp."""
    cols = world.cols
    cols["shield"][census.players] = np.maximum(cols["shield"][census.players].astype(np.int64) - 1, 0)
    dead = census.players[cols["hp"][census.players] == 0]
    left = cols["respawn"][dead].astype(np.int64) - 1
    cols["respawn"][dead] = np.maximum(left, 0)
    back = dead[left <= 0]
    ids = world.ids[back]
    x, y = random_positions(world.seed, world.tick, STREAM_PLAYER_SPAWN, ids)
    cols["x"][back] = x
    cols["y"][back] = y
    cols["vx"][back] = 0
    cols["vy"][back] = 0
    cols["hp"][back] = PLAYER_HP
    cols["cooldown"][back] = 0
    cols["shield"][back] = SHIELD_TICKS
    cols["born"][back] = world.tick  # its past before here is not where it is (lag compensation)
    return [Event("respawn", (int(i),)) for i in ids]

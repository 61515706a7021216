"""Movement: players steered by their input, drones and bullets by the motion rule.

Players move ``PLAYER_SPEED`` along their input direction (``DIAGONAL`` per
axis on diagonals) and are clamped to the arena; their ``vx, vy`` are set to
the step actually taken, so a client extrapolating them with the motion rule
is right as long as they keep going. Dead players and players without input
stand still (``vx = vy = 0``).

Drones and bullets advance by ``game.motion.step_axis``, exactly the rule
clients extrapolate with, so steadily moving bodies cost nothing on the wire.
Drones bounce off the walls; a bullet that reaches a wall (the rule reflected
it) is removed instead, and so is one whose lifetime ran out.
"""

from __future__ import annotations

import numpy as np

from game.arena.census import Census, Idx, Intent
from game.arena.spec import DIAGONAL, PLAYER_SPEED, SIZE, SPEC
from game.motion import advance, steer
from game.world import World


def move_players(world: World, census: Census, intent: Intent) -> None:
    """Apply each living player's move and aim; everyone else's step is zero."""
    cols = world.cols
    cols["vx"][census.players] = 0
    cols["vy"][census.players] = 0
    alive = cols["hp"][intent.slots] > 0
    slots = intent.slots[alive]
    dx, dy = intent.dx[alive], intent.dy[alive]
    steer(cols, slots, dx, dy, PLAYER_SPEED, DIAGONAL, 0, SIZE)
    cols["aim"][slots] = intent.aim[alive]


def move_bodies(world: World, census: Census) -> Idx:
    """Advance drones and bullets one tick; remove bullets that hit a wall or expired.

    Returns:
        intp (B,), the bullets that may still hit something this tick: all
        but those that reached a wall (an expiring bullet gets a last chance).
    """
    cols = world.cols
    movers = np.concatenate([census.drones, census.bullets])
    reflected = advance(cols, movers, SPEC.motion)[census.drones.size :]
    bullets = census.bullets
    life = cols["life"][bullets] - 1
    cols["life"][bullets] = life
    census.remove(world, bullets[reflected | (life <= 0)])
    flying: Idx = bullets[~reflected]
    return flying

"""Lag compensation: where every body was in the last ``REWIND`` ticks.

A client draws others where they were a few ticks ago (it interpolates)
while it predicts its own player ahead, so a player aims at the past. Each
input carries the player's ``lag`` (``InputBatch.lag``, ticks; PROTOCOL.md,
*Lag compensation*); a bullet keeps its shooter's lag, and at tick ``t`` it
is tested against the players and drones where they were at tick ``t -
lag``, Source's rewind for a projectile: what the shooter saw, its own shot
flying from where it predicted itself. Damage lands on them now, and only
on bodies that can be hit now.

The past lives in the world, so keyframes restore it and replays verify:
private columns ``hx0`` ... ``hx{REWIND-1}`` and ``hy...`` hold each row's
position at the ticks congruent to their index modulo ``REWIND``, written
at the start of every step (``remember``: two array copies, whatever the
number of entities); ``born`` is the tick from which a body's past is its
own (spawned then, or a player respawned elsewhere then): rewound to before
it, a body stands where it was at ``born``.
"""

from __future__ import annotations

import numpy as np

from game.arena.census import I64, Idx
from game.arena.spec import HX, HY, REWIND
from game.world import World


def remember(world: World) -> None:
    """At the start of step ``t`` (``world.tick == t``): keep the positions after tick ``t - 1``."""
    k = (world.tick - 1) % REWIND
    h = world.high
    cols = world.cols
    cols[HX[k]][:h] = cols["x"][:h]
    cols[HY[k]][:h] = cols["y"][:h]


def positions_ago(world: World, slots: Idx, lag: int) -> tuple[I64, I64]:
    """Where the bodies in ``slots`` were ``lag`` ticks before this one (1..``REWIND``), int64 (N,) each.

    A body born within those ticks is where it was when born (a body born this tick: where it is now).
    """
    cols = world.cols
    t = world.tick
    x = cols["x"][slots].astype(np.int64)
    y = cols["y"][slots].astype(np.int64)
    then = np.maximum(t - lag, cols["born"][slots].astype(np.int64))
    past = then < t
    if past.any():
        some = slots[past]
        k = then[past] % REWIND
        ring_x = np.stack([cols[name][some] for name in HX])
        ring_y = np.stack([cols[name][some] for name in HY])
        at = np.arange(some.size)
        x[past] = ring_x[k, at]
        y[past] = ring_y[k, at]
    return x, y

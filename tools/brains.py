"""Bot AI: pick a player's next input from what a client sees.

Pure and deterministic: a brain's answer is a function of its arguments
(randomness from ``game.rng`` keyed by the seed, the tick and the bot), with
no I/O, so a load generator, a replay and a test all get the same bots.

- ``arena_brain`` really plays ``arena``: it aims (with a little lead and
  jitter) at the nearest enemy in range and shoots, runs from drones that
  get close, goes for the nearest pellet, chases players, or wanders.
- ``drift_brain`` is the random walk of WORKLOAD.md: it keeps its direction
  and now and then draws a new one.

``brain_for(name)`` gives one calling convention for both (keyword
arguments, see ``Brain``).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from game import rng
from game.arena.spec import BULLET_SPEED, DRONE, PELLET, PLAYER, SCALE
from game.fixed import angle_of

# Ranges, fixed point (1/8 unit) like the wire positions.
FIRE_RANGE = 500 * SCALE
FLEE_RANGE = 110 * SCALE
SEEK_RANGE = 900 * SCALE
CHASE_RANGE = 900 * SCALE
#: Stay this far from a chased player rather than ramming it.
CHASE_GAP = 250 * SCALE
#: Ticks between a wandering bot's changes of heading (staggered per bot).
WANDER_TICKS = 45
#: Aim error, in uint8 angle steps (a bot that never misses is no fun).
AIM_JITTER = 3
#: Ticks a bot keeps the same aim error.
JITTER_TICKS = 15
#: On average, ticks between two changes of direction of a drift bot.
DRIFT_TURN_ODDS = 40

_STREAM_WANDER, _STREAM_JITTER, _STREAM_DRIFT, _STREAM_DRIFT_DIR = 201, 202, 203, 204

#: (dx, dy) for each eighth of a turn, starting at +x and turning towards +y.
OCTANTS = np.array([(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)], dtype=np.int64)

#: Replicated column name -> array (N,) in wire units; each column has its own dtype.
State = dict[str, npt.NDArray[Any]]
#: uint32 (N,), entity ids, ascending.
Ids = npt.NDArray[np.uint32]


def _octant_step(dx: int, dy: int) -> tuple[int, int]:
    """The 8-way input (each in -1..1) closest to the direction (dx, dy)."""
    if dx == 0 and dy == 0:
        return 0, 0
    angle = int(angle_of(np.array([dx]), np.array([dy]))[0])
    o = ((angle + 16) >> 5) & 7
    return int(OCTANTS[o, 0]), int(OCTANTS[o, 1])


def _nearest(mask: npt.NDArray[np.bool_], d2: npt.NDArray[np.int64], limit: int) -> int:
    """Index of the smallest d2 among ``mask`` within ``limit`` (ties: lower index), or -1."""
    ok = mask & (d2 <= limit * limit)
    if not ok.any():
        return -1
    return int(np.flatnonzero(ok)[np.argmin(d2[ok])])


def arena_brain(state: State, ids: Ids, me: int, tick: int, seed: int) -> list[int]:
    """The next ``[dx, dy, aim, fire]`` for the player entity ``me``.

    Args:
        state: replicated column name -> array (N,) in wire units (positions
            1/8 unit), entities in ``ids`` order.
        ids: uint32 (N,), the entity ids, ascending.
        me: the bot's own entity id.
        tick: the tick the input is for.
        seed: a per-bot or per-run seed.
    """
    ids = np.asarray(ids)
    i = int(np.searchsorted(ids, me))
    if i >= ids.size or int(ids[i]) != me:
        return [0, 0, 0, 0]
    kind = np.asarray(state["kind"]).astype(np.int64)
    hp = np.asarray(state["hp"]).astype(np.int64)
    aim = int(state["aim"][i])
    if hp[i] == 0:
        return [0, 0, aim, 0]
    x = np.asarray(state["x"]).astype(np.int64)
    y = np.asarray(state["y"]).astype(np.int64)
    dx, dy = x - x[i], y - y[i]
    d2 = dx * dx + dy * dy
    others = np.arange(ids.size) != i
    players = (kind == PLAYER) & (hp > 0) & others
    enemies = players | (kind == DRONE)

    fire = 0
    foe = _nearest(enemies, d2, FIRE_RANGE)
    if foe >= 0:
        # Lead the target by its velocity over the bullet's flight time.
        flight = math.isqrt(int(d2[foe])) // BULLET_SPEED
        tx = int(dx[foe]) + int(state["vx"][foe]) * flight
        ty = int(dy[foe]) + int(state["vy"][foe]) * flight
        jitter = int(rng.integers(seed, tick // JITTER_TICKS, _STREAM_JITTER, [me], -AIM_JITTER, AIM_JITTER)[0])
        aim = (int(angle_of(np.array([tx]), np.array([ty]))[0]) + jitter) & 0xFF
        fire = 1

    threat = _nearest(kind == DRONE, d2, FLEE_RANGE)
    pellet = _nearest(kind == PELLET, d2, SEEK_RANGE)
    prey = _nearest(players, d2, CHASE_RANGE)
    if threat >= 0:
        mx, my = _octant_step(-int(dx[threat]), -int(dy[threat]))
    elif pellet >= 0:
        mx, my = _octant_step(int(dx[pellet]), int(dy[pellet]))
    elif prey >= 0 and d2[prey] > CHASE_GAP * CHASE_GAP:
        mx, my = _octant_step(int(dx[prey]), int(dy[prey]))
    else:
        phase = (tick + me * 7) // WANDER_TICKS
        o = int(rng.integers(seed, phase, _STREAM_WANDER, [me], 0, 7)[0])
        mx, my = int(OCTANTS[o, 0]), int(OCTANTS[o, 1])
    return [mx, my, aim, fire]


def drift_brain(prev: list[int], tick: int, seed: int, bot_index: int) -> list[int]:
    """The next ``[dx, dy]`` of a drift bot: ``prev`` kept, or now and then a new direction."""
    valid = len(prev) == 2 and all(v in (-1, 0, 1) for v in prev) and any(prev)
    key = [bot_index]
    if valid and not rng.chance(seed, tick, _STREAM_DRIFT, key, 1, DRIFT_TURN_ODDS)[0]:
        return [int(prev[0]), int(prev[1])]
    o = int(rng.integers(seed, tick, _STREAM_DRIFT_DIR, key, 0, 7)[0])
    return [int(OCTANTS[o, 0]), int(OCTANTS[o, 1])]


class Brain(Protocol):
    """One calling convention for every ruleset's brain (keyword arguments).

    ``state``, ``ids`` and ``me`` describe the mirrored world and the bot's
    entity (may be ignored); ``prev`` is the bot's previous input (``[]`` at
    first); ``bot_index`` numbers the bots of one run.
    """

    def __call__(
        self, *, state: State, ids: Ids, me: int, prev: list[int], tick: int, seed: int, bot_index: int
    ) -> list[int]: ...


def _arena(
    *, state: State, ids: Ids, me: int, prev: list[int], tick: int, seed: int, bot_index: int
) -> list[int]:
    return arena_brain(state, ids, me, tick, seed)


def _drift(
    *, state: State, ids: Ids, me: int, prev: list[int], tick: int, seed: int, bot_index: int
) -> list[int]:
    return drift_brain(prev, tick, seed, bot_index)


_BRAINS: dict[str, Brain] = {"arena": _arena, "drift": _drift}


def brain_for(ruleset_name: str) -> Brain:
    """The brain for a ruleset; ValueError naming the known ones otherwise."""
    try:
        return _BRAINS[ruleset_name]
    except KeyError:
        raise ValueError(f"no brain for ruleset {ruleset_name!r}; known: {', '.join(sorted(_BRAINS))}") from None

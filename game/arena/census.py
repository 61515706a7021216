"""What every arena system shares within one tick: who is who, and the inputs.

``Census`` sorts the live slots by kind once per step and records the slots
despawned during the step (their rows stay alive until ``world.commit()``, so
later systems must skip them). ``Intent`` is the input batch resolved to
player slots.

(Not a "frame": in this project a frame is a WebSocket frame in the transport
or a length+CRC record in a replay file.)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from attrs import define, frozen

from game import rng
from game.arena.spec import (
    BULLET,
    DRONE,
    IN_AIM,
    IN_DX,
    IN_DY,
    IN_FIRE,
    PELLET,
    PLAYER,
    REWIND,
    SIZE,
    SPAWN_MARGIN,
)
from game.rules import InputBatch, player_slots
from game.world import World

Idx = npt.NDArray[np.intp]
I64 = npt.NDArray[np.int64]


@define
class Census:
    """The live slots of each kind at the start of a step, ascending (= id order).

    Attributes:
        players, drones, bullets, pellets: intp (N,) slots.
        removed: bool (high,), slots despawned during this step.
    """

    players: Idx
    drones: Idx
    bullets: Idx
    pellets: Idx
    removed: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, world: World) -> Census:
        slots = world.active()
        kind = world.cols["kind"][slots]
        return cls(
            players=slots[kind == PLAYER],
            drones=slots[kind == DRONE],
            bullets=slots[kind == BULLET],
            pellets=slots[kind == PELLET],
            removed=np.zeros(world.high, dtype=np.bool_),
        )

    def remove(self, world: World, slots: Idx) -> None:
        """Despawn ``slots`` at the end of the step and hide them from later systems."""
        if slots.size:
            world.despawn(slots)
            self.removed[slots] = True

    def present(self, slots: Idx) -> Idx:
        """``slots`` without the ones removed during this step."""
        return slots[~self.removed[slots]]

    def living_players(self, world: World) -> Idx:
        """Players present and alive (hp > 0), ascending slots."""
        players = self.present(self.players)
        return players[world.cols["hp"][players] > 0]

    def targets(self, world: World) -> Idx:
        """Living players without spawn protection: those bullets and drones can hit or hunt."""
        players = self.living_players(world)
        bare: npt.NDArray[np.bool_] = world.cols["shield"][players] == 0
        return players[bare]


@frozen
class Intent:
    """This tick's inputs, for the players that have an entity.

    Attributes:
        slots: intp (P,), the players' entity slots (ascending player id).
        dx, dy: int64 (P,), each in -1..1.
        aim: int64 (P,), uint8 angle 0..255.
        fire: bool (P,).
        lag: int64 (P,), 0..``REWIND``: ticks in the past the player saw the world (lag compensation).
    """

    slots: Idx
    dx: I64
    dy: I64
    aim: I64
    fire: npt.NDArray[np.bool_]
    lag: I64

    @classmethod
    def of(cls, world: World, inputs: InputBatch) -> Intent:
        slots = player_slots(world, inputs.players)
        have = slots >= 0

        def field(index: int) -> I64:
            values: I64 = inputs.column(index)[have].astype(np.int64)
            return values

        # Clamp defensively: the server validates ranges, but the rules must not trust it.
        return cls(
            slots=slots[have],
            dx=np.clip(field(IN_DX), -1, 1),
            dy=np.clip(field(IN_DY), -1, 1),
            aim=field(IN_AIM) & 0xFF,
            fire=field(IN_FIRE) > 0,
            lag=np.clip(inputs.lag[have].astype(np.int64), 0, REWIND),
        )


def random_positions(seed: int, tick: int, stream: int, keys: npt.ArrayLike) -> tuple[I64, I64]:
    """Uniform positions inside the arena's spawn margin, one per key, int64 (N,) each."""
    k = np.asarray(keys, dtype=np.int64) * 2
    lo, hi = SPAWN_MARGIN, SIZE - SPAWN_MARGIN
    return rng.integers(seed, tick, stream, k, lo, hi), rng.integers(seed, tick, stream, k + 1, lo, hi)

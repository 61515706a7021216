"""``drift``: the standard benchmark workload of WORKLOAD.md, exactly.

E NPCs bounce around a 4000 x 4000 arena at constant velocity; every 30
ticks a tenth of them (``id % 10 == (tick // 30) % 10``) draw a new
velocity. Players move 5 units per tick along their latest input and are
clamped to the arena. Positions and velocities are fixed-point: 1/8 world
unit (``SCALE``). NPC ``n`` is entity id ``n`` (they are spawned first and
never removed), so "index" in WORKLOAD.md is the entity id.

The arena is WORKLOAD's 4000 x 4000 unless the ``size`` option says
otherwise (the ``interest`` benchmark keeps the density constant as E grows:
``tools.bench``); the world's spec (``SPEC.resolve``) carries its size.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from game import rng
from game.motion import step_axis_in_place, steer
from game.rules import (
    Event,
    InputBatch,
    player_slots,
    remove_player,
    remove_players,
    scores_from_column,
)
from game.schema import AXIS, VIEW_OPTIONS, Axis, Column, InputField, Option, PlayerMove, RulesetSpec
from game.world import EntityId, PlayerId, World

SCALE = 8
SIZE = 4000 * SCALE
PLAYER_KIND = 4
SPEED = 5 * SCALE
#: Per-axis step for a diagonal input: 5 units / sqrt(2) = 3.54 units = 28/8.
DIAGONAL = 28
REDRAW_PERIOD = 30

_STREAM_SPAWN, _STREAM_VEL, _STREAM_PLAYER = 1, 2, 3

SPEC = RulesetSpec(
    name="drift",
    version=1,
    columns=(
        Column("kind", "uint8", "uint8", doc="NPC: id % 4 (0-3); player: 4"),
        Column("x", "int32", "int32", SCALE, "position, 1/8 world unit, 0..8 * size"),
        Column("y", "int32", "int32", SCALE, "position, 1/8 world unit, 0..8 * size"),
        Column("vx", "int32", "int8", SCALE, "velocity, 1/8 unit per tick (players: last step taken)"),
        Column("vy", "int32", "int8", SCALE, "velocity, 1/8 unit per tick (players: last step taken)"),
        Column("hp", "uint8", "uint8", doc="hit points, always 100"),
        Column("score", "int32", "int32", doc="players' score, always 0"),
        Column("player", "int32", None, doc="owning player id, -1 for NPCs"),
    ),
    inputs=(
        InputField("dx", -1, 1, "horizontal direction", AXIS),
        InputField("dy", -1, 1, "vertical direction (+1 = down, larger y)", AXIS),
    ),
    motion=(Axis("x", "vx", 0, SIZE), Axis("y", "vy", 0, SIZE)),
    width=4000,
    height=4000,
    options=(Option("npcs", 2000, 0, 1_000_000, "number of NPCs (E)"),
             Option("size", 4000, 100, 200_000, "side of the square arena, world units"), *VIEW_OPTIONS),
    kinds=("npc0", "npc1", "npc2", "npc3", "player"),
    player=PlayerMove(SPEED, DIAGONAL, 0, SIZE),
    size_option="size",
)


def _velocities(seed: int, tick: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each component uniform in [-4, -0.5] u [0.5, 4] units: magnitude 4..32 eighths, random sign."""
    out = []
    for axis in (0, 1):
        keys = ids.astype(np.int64) * 2 + axis
        mag = rng.integers(seed, tick, _STREAM_VEL, keys, 4, 32)
        sign = np.where(rng.chance(seed, tick, _STREAM_VEL + 16, keys, 1, 2), -1, 1)
        out.append((mag * sign).astype(np.int32))
    return out[0], out[1]


def _npc_slots(world: World) -> tuple[slice | np.ndarray, np.ndarray]:
    """The NPCs' slots, and the other live slots (the players').

    NPCs are spawned first and never removed, and compaction keeps the slots'
    order, so they hold the first slots: a slice, which the motion updates in
    place (views), not index arrays gathered and scattered. (Index arrays in
    a world where that does not hold, which this ruleset never makes.)
    """
    high = world.high
    player = world.cols["player"][:high]
    # Where the NPCs' slots end if they come first: a binary search (``player`` is -1 in them and >= 0 after
    # them), which the ids then confirm, not a pass over every slot. Slots 0..n-1 hold ids 0..n-1 (ascending
    # and distinct), the NPCs' when the last is one (NPCs hold the first ids); the one after is a player's,
    # so every later one is.
    n = int(np.searchsorted(player, player.dtype.type(0)))  # a key of its dtype: no copy of the column
    if ((n == 0 or int(world.ids[n - 1]) == n - 1 and player[n - 1] < 0) and (n == high or player[n] >= 0)
            and world.alive[:n].all()):
        return slice(0, n), n + np.flatnonzero(world.alive[n:high])
    npc = player < 0
    alive = world.alive[:high]
    return np.flatnonzero(npc & alive), np.flatnonzero(~npc & alive)


def _side(world: World) -> int:
    """The arena's side in fixed point (``SIZE`` at the default size)."""
    return world.spec.width * SCALE


class DriftRuleset:
    """The WORKLOAD.md rules; see the module docstring."""

    spec = SPEC

    def create(self, seed: int, options: dict[str, int]) -> World:
        opts = SPEC.resolve_options(options)
        n = opts["npcs"]
        spec = SPEC.resolve(opts)
        world = World(spec, seed=seed, capacity=max(64, n + n // 4 + 64))
        side = _side(world)
        ids = np.arange(n, dtype=np.int64)
        vx, vy = _velocities(seed, 0, ids)
        world.spawn(
            n,
            kind=(ids % 4).astype(np.uint8),
            x=rng.integers(seed, 0, _STREAM_SPAWN, ids * 2, 0, side),
            y=rng.integers(seed, 0, _STREAM_SPAWN, ids * 2 + 1, 0, side),
            vx=vx,
            vy=vy,
            hp=100,
            player=-1,
        )
        world.commit()
        return world

    def join(self, world: World, player: PlayerId) -> EntityId:
        return EntityId(int(self.join_many(world, np.array([player], dtype=np.int32))[0]))

    def join_many(self, world: World, players: npt.NDArray[np.int32]) -> npt.NDArray[np.uint32]:
        """Every player's entity at once: the same world as ``join`` of each in turn (one draw, one commit)."""
        key = (players.astype(np.int64)[:, None] * 2 + np.arange(2)).reshape(-1)
        pos = rng.integers(world.seed, world.tick, _STREAM_PLAYER, key, 0, _side(world)).reshape(-1, 2)
        eids = world.spawn(len(players), kind=PLAYER_KIND, x=pos[:, 0], y=pos[:, 1], hp=100, player=players)
        world.commit()
        return eids

    def leave(self, world: World, player: PlayerId) -> None:
        remove_player(world, player)

    def leave_many(self, world: World, players: npt.NDArray[np.int32]) -> None:
        remove_players(world, players)

    def step(self, world: World, inputs: InputBatch) -> list[Event]:
        world.tick += 1
        tick = world.tick
        cols = world.cols
        npcs, others = _npc_slots(world)

        # Players: 5 units along the input direction, clamped to the arena.
        ps = player_slots(world, inputs.players, others)
        have = ps >= 0
        ps = ps[have]
        dx, dy = inputs.column(0)[have], inputs.column(1)[have]
        steer(cols, ps, dx, dy, SPEED, DIAGONAL, 0, _side(world))

        # NPCs: constant velocity with reflection (in place: |x| <= 8 * 200000 and |vx| < 128 cannot
        # overflow the int32 columns), then the periodic redraw.
        for axis in world.spec.motion:
            pos, vel = cols[axis.pos][npcs], cols[axis.vel][npcs]
            step_axis_in_place(pos, vel, axis.lo, axis.hi)
            if not isinstance(npcs, slice):  # copies, not views: write them back
                cols[axis.pos][npcs], cols[axis.vel][npcs] = pos, vel
        if tick % REDRAW_PERIOD == 0:
            group = (tick // REDRAW_PERIOD) % 10
            chosen: slice | np.ndarray
            if isinstance(npcs, slice) and (npcs.stop == 0 or int(world.ids[npcs.stop - 1]) == npcs.stop - 1):
                chosen = slice(group, npcs.stop, 10)  # ascending distinct ids 0..n-1 in slots 0..n-1: id = slot
            else:
                ids = world.ids[npcs].astype(np.int64)
                chosen = np.arange(world.high)[npcs][ids % 10 == group]
            vx, vy = _velocities(world.seed, tick, world.ids[chosen])
            cols["vx"][chosen], cols["vy"][chosen] = vx, vy

        world.commit()
        return []

    def scores(self, world: World) -> dict[int, int]:
        return scores_from_column(world)

"""The interface a ruleset implements, and the registry of rulesets.

The engine never interprets game state: it creates a world through the
ruleset, adds and removes players, and calls ``step`` once per tick with
every player's current input. Everything else is the ruleset's business.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from attrs import field, frozen

from game.errors import GameError
from game.schema import RulesetSpec
from game.world import EntityId, PlayerId, World


def _as_players(v: npt.ArrayLike) -> npt.NDArray[np.int32]:
    return np.asarray(v, dtype=np.int32).reshape(-1)


def _as_values(v: npt.ArrayLike) -> npt.NDArray[np.int16]:
    a = np.asarray(v, dtype=np.int16)
    if a.ndim != 2:
        if a.size:
            raise GameError(f"input batch: values must be 2-D (players, fields), got shape {a.shape}")
        a = a.reshape(0, 0)
    return a


def _as_lag(v: npt.ArrayLike | None) -> npt.NDArray[np.int16] | None:
    return None if v is None else np.asarray(v, dtype=np.int16).reshape(-1)


@frozen
class InputBatch:
    """Every player's current input for one tick, in ascending player-id order.

    Attributes:
        players: int32 (P,), ascending player ids.
        values: int16 (P, F), one row per player, fields in the spec's order.
        lag: int16 (P,), ticks, >= 0: how far in the past each player saw the
            world when it sampled this input (the server's ``lag =
            clamp(tick - view, 0, max)``, PROTOCOL.md). A ruleset with lag
            compensation judges the player's shots against the world as it
            was ``lag`` ticks ago; zeros when not given.
    """

    players: npt.NDArray[np.int32] = field(converter=_as_players)
    values: npt.NDArray[np.int16] = field(converter=_as_values)
    lag: npt.NDArray[np.int16] = field(default=None, converter=_as_lag)

    def __attrs_post_init__(self) -> None:
        if self.values.shape[0] != len(self.players):
            raise GameError("input batch: one row of values per player")
        if len(self.players) > 1 and not np.all(np.diff(self.players) > 0):
            raise GameError("input batch: players must be strictly ascending")
        if self.lag is None:
            object.__setattr__(self, "lag", np.zeros(len(self.players), np.int16))
        elif len(self.lag) != len(self.players) or (self.lag.size and int(self.lag.min()) < 0):
            raise GameError("input batch: one lag >= 0 per player")

    @classmethod
    def empty(cls, fields: int) -> InputBatch:
        return cls(np.zeros(0, np.int32), np.zeros((0, fields), np.int16))

    def column(self, index: int) -> npt.NDArray[np.int16]:
        if self.values.size == 0:
            return np.zeros(0, dtype=np.int16)
        return self.values[:, index]


@frozen
class Event:
    """Something that happened in a tick, for feeds and sounds: ``kind`` and integer args.

    ``at``: where it happened, as ``(x, y)`` positions in the units of the
    ruleset's position columns (``RulesetSpec.player.x``/``y``, else ``x``
    and ``y``): with filtered views a client receives the event when one of
    them lies in its view, unless the ruleset marks its kind always relevant
    (``RulesetSpec.always_relevant_events``). Not sent on the wire.
    """

    kind: str
    args: tuple[int, ...] = ()
    at: tuple[tuple[int, int], ...] = ()

    def to_wire(self) -> list[Any]:
        return [self.kind, *self.args]


class Ruleset(Protocol):
    """What the server, codec, recorder and clients need from a ruleset."""

    spec: RulesetSpec

    def create(self, seed: int, options: dict[str, int]) -> World:
        """A new world for a match, at tick 0, with its initial entities committed."""
        ...

    def join(self, world: World, player: PlayerId) -> EntityId:
        """Spawn ``player``'s entity (committed at once); returns its id."""
        ...

    def leave(self, world: World, player: PlayerId) -> None:
        """Remove ``player``'s entity (committed at once)."""
        ...

    def step(self, world: World, inputs: InputBatch) -> list[Event]:
        """Advance ``world`` by one tick (``world.tick`` += 1) and commit."""
        ...

    def scores(self, world: World) -> dict[int, int]:
        """Score per player id, for scoreboards and replay end records."""
        ...


class BatchMembership(Protocol):
    """What a ruleset may add to ``Ruleset``: several players joined, or removed, at once.

    The world after ``join_many(world, players)`` must be the one ``join`` of
    each player in turn would make (the same ids, columns and draws), so a
    replay re-simulates it either way; the batch only saves the per-call
    work (one draw, one spawn, one commit for a tick's joins).
    """

    def join_many(self, world: World, players: npt.NDArray[np.int32]) -> npt.NDArray[np.uint32]:
        """Spawn the entities of ``players`` (int32 (P,), distinct), committed at once; their ids, in that order."""
        ...

    def leave_many(self, world: World, players: npt.NDArray[np.int32]) -> None:
        """Remove the entities of ``players`` (int32 (P,)), committed at once."""
        ...


def join_players(ruleset: Ruleset, world: World, players: Sequence[PlayerId]) -> list[EntityId]:
    """``ruleset.join`` of each of ``players`` in turn, or its ``join_many`` of them all (``BatchMembership``)."""
    many = getattr(ruleset, "join_many", None)
    if many is None or not players:
        return [ruleset.join(world, p) for p in players]
    return [EntityId(int(e)) for e in many(world, np.asarray(players, dtype=np.int32).reshape(-1))]


def leave_players(ruleset: Ruleset, world: World, players: Sequence[PlayerId]) -> None:
    """``ruleset.leave`` of each of ``players`` in turn, or its ``leave_many`` of them all (``BatchMembership``)."""
    many = getattr(ruleset, "leave_many", None)
    if many is None:
        for p in players:
            ruleset.leave(world, p)
    elif players:
        many(world, np.asarray(players, dtype=np.int32).reshape(-1))


def player_slots(world: World, players: npt.NDArray[np.int32],
                 among: npt.NDArray[np.intp] | None = None) -> npt.NDArray[np.intp]:
    """Slot of each player's entity (-1 when it has none), via the private ``player`` column.

    ``among``: the live slots that may hold players' entities (all of them when None).
    """
    slots = world.active() if among is None else among
    owner = world.cols["player"][slots]
    mine = owner >= 0
    pslots, powner = slots[mine], owner[mine]
    order = np.argsort(powner, kind="stable")
    powner, pslots = powner[order], pslots[order]
    if powner.size == 0:
        return np.full(len(players), -1, dtype=np.intp)
    pos = np.minimum(np.searchsorted(powner, players), powner.size - 1)
    return np.where(powner[pos] == players, pslots[pos], -1).astype(np.intp)


def remove_player(world: World, player: PlayerId) -> None:
    """Despawn ``player``'s entity, if it has one, and commit."""
    remove_players(world, np.array([player], dtype=np.int32))


def remove_players(world: World, players: npt.NDArray[np.int32]) -> None:
    """Despawn the entities of ``players`` (int32 (P,)), those that have one, and commit."""
    slots = player_slots(world, players)
    world.despawn(slots[slots >= 0])
    world.commit()


def scores_from_column(world: World) -> dict[int, int]:
    """``{player id: score}`` from the ``player`` and ``score`` columns."""
    slots = world.active()
    owner = world.cols["player"][slots]
    mine = owner >= 0
    return {int(p): int(s) for p, s in zip(owner[mine], world.cols["score"][slots][mine])}


#: Registered rulesets: name -> (module, class).
RULESETS = {"arena": ("game.arena.ruleset", "ArenaRuleset"), "drift": ("game.drift", "DriftRuleset")}
RULESET_NAMES = tuple(sorted(RULESETS))


def get_ruleset(name: str) -> Ruleset:
    """The registered ruleset called ``name``; GameError naming the known ones otherwise."""
    if name not in RULESETS:
        raise GameError(f"unknown ruleset {name!r}; known: {', '.join(RULESET_NAMES)}")
    module, cls = RULESETS[name]
    ruleset: Ruleset = getattr(importlib.import_module(module), cls)()
    return ruleset

"""The world: entities as a structure of numpy arrays.

One array per column (``World.cols``), capacity-based, with an ``alive`` mask.
Slots are handed out append-only and compacted stably, so the rows of
``[0, high)`` are always in ascending entity-id order: live entities in slot
order *are* the entities in id order, which is the order the wire uses.
Entity ids increase and are never reused within a match. Spawns and despawns
requested during a step are deferred to ``commit()`` at the end of the tick.
"""

from __future__ import annotations

import hashlib
from typing import Any, NewType

import numpy as np
import numpy.typing as npt
from attrs import define, field

from game.errors import GameError
from game.schema import RulesetSpec

EntityId = NewType("EntityId", int)
PlayerId = NewType("PlayerId", int)
Tick = NewType("Tick", int)

IntArray = npt.NDArray[np.int64]
SlotArray = npt.NDArray[np.intp]


@define
class World:
    """Mutable state of one match.

    Attributes:
        spec: the ruleset's description (columns, bounds).
        seed: match seed; every random draw is keyed by it.
        tick: the last completed tick (0 before the first step).
        high: rows [0, high) are in use (alive or awaiting compaction).
        next_id: the id the next spawned entity gets.
        ids: uint32 (capacity,): entity id per slot, ascending over [0, high).
        alive: bool (capacity,).
        cols: one array (capacity,) per column, in the column's state dtype.
    """

    spec: RulesetSpec
    seed: int
    capacity: int
    tick: int = 0
    high: int = 0
    next_id: int = 0
    ids: npt.NDArray[np.uint32] = field(init=False)
    alive: npt.NDArray[np.bool_] = field(init=False)
    cols: dict[str, npt.NDArray[Any]] = field(init=False)
    _spawns: list[tuple[npt.NDArray[np.uint32], dict[str, Any]]] = field(init=False, factory=list)
    _despawns: list[SlotArray] = field(init=False, factory=list)
    #: The live ids as ``replicated`` last returned them (read-only), while no commit changed who is alive.
    _live_ids: npt.NDArray[np.uint32] | None = field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self.ids = np.zeros(self.capacity, dtype=np.uint32)
        self.alive = np.zeros(self.capacity, dtype=np.bool_)
        self.cols = {c.name: np.zeros(self.capacity, dtype=c.dtype) for c in self.spec.columns}

    # -- reading ---------------------------------------------------------

    def active(self) -> SlotArray:
        """Slots of live entities, in ascending id order, intp (N,)."""
        return np.flatnonzero(self.alive[: self.high])

    def count(self) -> int:
        return int(np.count_nonzero(self.alive[: self.high]))

    def slots_of(self, ids: npt.ArrayLike) -> SlotArray:
        """Slots of the given entity ids; -1 where the id is not alive. intp (N,)."""
        want = np.asarray(ids, dtype=np.int64)
        if self.high == 0:
            return np.full(want.shape, -1, dtype=np.intp)
        have = self.ids[: self.high].astype(np.int64)
        pos = np.minimum(np.searchsorted(have, want), self.high - 1)
        ok = (have[pos] == want) & self.alive[pos]
        return np.where(ok, pos, -1).astype(np.intp)

    # -- deferred changes --------------------------------------------------

    def spawn(self, count: int, **values: Any) -> npt.NDArray[np.uint32]:
        """Queue ``count`` new entities; returns their ids, uint32 (count,).

        Each keyword names a column and gives a scalar or an array (count,);
        columns not given start at 0. The rows appear at ``commit()``.
        """
        unknown = set(values) - set(self.cols)
        if unknown:
            raise GameError(f"spawn: unknown column(s) {sorted(unknown)}")
        if count <= 0:
            return np.zeros(0, dtype=np.uint32)
        if self.next_id + count > 0xFFFFFFFF:
            raise GameError("entity ids exhausted")
        new_ids = np.arange(self.next_id, self.next_id + count, dtype=np.uint32)
        self.next_id += count
        self._spawns.append((new_ids, values))
        return new_ids

    def despawn(self, slots: npt.ArrayLike) -> None:
        """Queue the entities in ``slots`` (intp array) for removal at ``commit()``."""
        s = np.asarray(slots, dtype=np.intp).ravel()
        if s.size:
            self._despawns.append(s)

    def commit(self) -> None:
        """Apply queued despawns, then queued spawns (in the order queued)."""
        if self._despawns or self._spawns:
            self._live_ids = None
        if self._despawns:
            self.alive[np.concatenate(self._despawns)] = False
            self._despawns.clear()
        if not self._spawns:
            return
        total = sum(len(ids) for ids, _ in self._spawns)
        self._make_room(total)
        for new_ids, values in self._spawns:
            n = len(new_ids)
            lo, hi = self.high, self.high + n
            self.ids[lo:hi] = new_ids
            self.alive[lo:hi] = True
            for name, col in self.cols.items():
                col[lo:hi] = values.get(name, 0)
            self.high = hi
        self._spawns.clear()

    def _make_room(self, extra: int) -> None:
        live = self.count()
        dead = self.high - live
        if self.high + extra <= self.capacity and dead <= max(64, self.high // 2):
            return
        keep = self.active()
        self.ids[:live] = self.ids[keep]
        for col in self.cols.values():
            col[:live] = col[keep]
        self.alive[:live] = True
        self.alive[live:] = False
        self.high = live
        if live + extra > self.capacity:
            cap = max(self.capacity * 2, live + extra)
            self.ids = np.resize(self.ids, cap)
            self.alive = np.concatenate([self.alive, np.zeros(cap - self.capacity, bool)])
            self.cols = {k: np.concatenate([v, np.zeros(cap - self.capacity, v.dtype)]) for k, v in self.cols.items()}
            self.capacity = cap

    # -- digests -----------------------------------------------------------

    def replicated(self) -> tuple[npt.NDArray[np.uint32], list[npt.NDArray[Any]]]:
        """Live ids (uint32 (N,)) and every replicated column in its wire dtype, id order (new arrays).

        The ids array is read-only, and the same one from call to call until a commit spawns or despawns
        (most ticks nobody comes or goes: a snapshot's ids compare with the tick before's by ``is``, no pass).
        """
        high = self.high
        wire = [(self.cols[c.name][:high], np.dtype(c.wire).newbyteorder("<")) for c in self.spec.replicated]
        if self._live_ids is not None and len(self._live_ids) == high:  # nobody came or went: no holes either
            return self._live_ids, [col.astype(dt) for col, dt in wire]
        alive = self.alive[:high]
        if int(np.count_nonzero(alive)) == high:  # no holes (the usual case): copy slices
            ids = self.ids[:high].copy()
            ids.flags.writeable = False
            self._live_ids = ids
            return ids, [col.astype(dt) for col, dt in wire]
        # Holes (after a despawn, until the next compaction): the live rows picked by the mask, which makes new
        # arrays already (a boolean mask over the slots costs a third of a gather by their indices).
        return self.ids[:high][alive], [col[alive].astype(dt, copy=False) for col, dt in wire]


def state_hash(world: World) -> str:
    """A stable digest (32 hex chars) of the world: tick, ids and every column.

    Covers the replicated columns and the private ones, in little-endian
    bytes and schema order, so two worlds with equal hashes evolve equally.
    """
    slots = world.active()
    h = hashlib.blake2b(digest_size=16)
    h.update(np.array([world.tick, world.next_id, slots.size], dtype="<i8").tobytes())
    h.update(world.ids[slots].astype("<u4").tobytes())
    for c in world.spec.columns:
        h.update(world.cols[c.name][slots].astype(np.dtype(c.dtype).newbyteorder("<")).tobytes())
    return h.hexdigest()

"""The ring of recent snapshots, and update encoding once per (tick, base).

Clients acknowledge the last tick they hold; each new update is a delta
against that tick while it is still in the ring, and a keyframe otherwise.
Every client with the same base gets the very same bytes: the encoder keeps
the encoded prefix per base for the current tick.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from server.protocol.codec import encode_update_prefix
from server.protocol.delta import Snapshot, WireSchema, encode_body

#: Snapshots kept for delta bases (Quake 3 keeps 32): about a second at 30 Hz.
HISTORY_SIZE = 32


class SnapshotHistory:
    """The last ``size`` snapshots, by tick."""

    def __init__(self, size: int = HISTORY_SIZE) -> None:
        self.size = size
        self._ring: OrderedDict[int, Snapshot] = OrderedDict()

    def add(self, snapshot: Snapshot) -> None:
        self._ring[snapshot.tick] = snapshot
        while len(self._ring) > self.size:
            self._ring.popitem(last=False)

    def get(self, tick: int | None) -> Snapshot | None:
        return None if tick is None else self._ring.get(tick)

    @property
    def latest(self) -> Snapshot | None:
        return next(reversed(self._ring.values())) if self._ring else None

    def __len__(self) -> int:
        return len(self._ring)


class UpdateEncoder:
    """Encodes the current tick's update once per base and hands out the shared prefix."""

    def __init__(self, schema: WireSchema, history: SnapshotHistory) -> None:
        self.schema = schema
        self.history = history
        self._current: Snapshot | None = None
        self._events: list[Any] = []
        self._cache: dict[int | None, bytes] = {}
        #: Encodes done for the current tick (one per distinct base).
        self.encodes = 0

    def begin(self, snapshot: Snapshot, events: list[Any]) -> None:
        """Start a new tick: ``snapshot`` is the state every update of this tick brings clients to."""
        self._current = snapshot
        self._events = events
        self._cache.clear()
        self.encodes = 0

    def base_for(self, acked: int | None) -> int | None:
        """The base an update can use for a client that acknowledged ``acked``: it, or None (keyframe)."""
        if acked is None or self._current is None or acked >= self._current.tick:
            return None
        return acked if self.history.get(acked) is not None else None

    def prefix(self, base_tick: int | None) -> bytes:
        """The update prefix from ``base_tick`` (None: keyframe) to the current snapshot."""
        cached = self._cache.get(base_tick)
        if cached is not None:
            return cached
        cur = self._current
        if cur is None:
            raise RuntimeError("prefix() before begin()")
        base = self.history.get(base_tick)
        body = encode_body(self.schema, base, cur)
        data = encode_update_prefix(cur.tick, None if base is None else base.tick, body, cur.checksum, self._events)
        self._cache[base_tick] = data
        self.encodes += 1
        return data

"""The ring of recent snapshots, and update encoding once per (tick, base), for a bounded set of bases.

Clients acknowledge the last tick they hold; each new update is a delta
against a state the client acknowledged, while the server still has it, and
a keyframe otherwise. Every client with the same base gets the very same
bytes: the encoder keeps the encoded prefix per base for the current tick.

**Bounded work per tick.** Clients may acknowledge any recent tick, so the
bases are not left to them: an update may start only from one of the
``RECENT`` states sent just before it, or from an *anchor*: the ``ANCHORS``
newest older ticks on the grid of ``SNAP``, and the ``FAR_ANCHORS`` newest
older still on the coarser grid of ``FAR_SNAP`` (a feed whose ticks skip, a
playback at speed, may have fewer). A client gets a delta from the newest of
these it holds (``ServerSession.holds``: ticks it was sent and acknowledged):
a client that lags a few ticks, whose own ack is off the grid, still holds an
anchor. Of these, a tick encodes at most ``MAX_DELTAS``: when clients
would use more, the most used are kept, and the oldest, and the other
clients take the newest kept base they hold (``cap_bases``): bigger deltas
for a few, never more work. So at most ``MAX_DELTAS`` deltas and one
keyframe are encoded per tick, however many clients acknowledge however many
ticks, and each is cheap: a base's prediction (its state extrapolated by the
motion rule) is carried from tick to tick, one step at a time, not redone
from the base.

**Keyframes.** A client with none of those bases gets a keyframe: at once
for its first update (after its ``welcome``); otherwise only on a grid tick
(so that, once acknowledged, the keyframe is an anchor), and, while it has
not acknowledged the last keyframe it was sent and its acknowledgements have
not advanced for ``KEYFRAME_GAP`` ticks, no sooner than ``KEYFRAME_GAP``
ticks after it, and then only on a tick of its own (its ``slot``, the player
id): one of each ``KEYFRAME_GAP`` ticks for a client that never acknowledged
any (300 clients that joined together and never acknowledge get about 10
keyframes a tick, not 150 every 32 ticks), its own grid tick of each
``KEYFRAME_GAP`` for one that did. A client that never acknowledged any
waits twice as long for each keyframe as for the one before
(``SILENT_DOUBLINGS``): 32, 64, 128 ticks, then 256.
A client that never acknowledges gets a few keyframes, not one a tick;
one that lags further than the anchors reach, one every grid tick; meanwhile
they get nothing (``NO_UPDATE``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from server.protocol.codec import encode_update_prefix
from server.protocol.delta import Snapshot, WireSchema, encode_body, predict

#: Snapshots kept for delta bases (Quake 3 keeps 32): room for the far anchor, 20 to 35 ticks back.
HISTORY_SIZE = 40

#: Delta bases of an update: the ``RECENT`` states before it, the ``ANCHORS`` newest older ones whose tick is a
#: multiple of ``SNAP``, and the ``FAR_ANCHORS`` newest older still on the grid of ``FAR_SNAP``. At 30 Hz a
#: client whose acks take up to 3 ticks (100 ms) gets a delta from the tick it acknowledged; one that lags up
#: to 19 ticks (630 ms), from at most 3 ticks before; up to 35 ticks (1.2 s), from at most 15 before.
RECENT = 3
SNAP = 4
ANCHORS = 4
FAR_SNAP = 16
FAR_ANCHORS = 1
MAX_BASES = RECENT + ANCHORS + FAR_ANCHORS

#: Delta bases encoded per tick at most (``cap_bases``): past them, clients take an older base they hold.
MAX_DELTAS = 3

#: A client that has not acknowledged its last keyframe, and whose acknowledgements have not advanced for this
#: many ticks, gets the next keyframe this many ticks after the last one at the earliest.
KEYFRAME_GAP = 32

#: A client that never acknowledged any tick waits twice as long for each keyframe as for the one before (from
#: ``KEYFRAME_GAP`` after its first), up to ``KEYFRAME_GAP << SILENT_DOUBLINGS`` ticks (256: 8.5 s at 30 Hz).
SILENT_DOUBLINGS = 3

#: ``UpdateEncoder.choose``'s answer for a client that gets no update this tick.
NO_UPDATE = -1


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

    def ticks(self) -> list[int]:
        """The ticks held, newest first."""
        return list(reversed(self._ring))

    def __len__(self) -> int:
        return len(self._ring)


def delta_bases(ticks: list[int], current: int) -> tuple[int, ...]:
    """The ticks an update of ``current`` may start from, newest first, among ``ticks`` (a history's,
    newest first): the ``RECENT`` before ``current``, then the ``ANCHORS`` newest older ones on the grid, then
    the ``FAR_ANCHORS`` newest older ones on the far grid."""
    older = [t for t in ticks if t < current]
    bases = older[:RECENT]
    rest = older[RECENT:]
    for snap, count in ((SNAP, ANCHORS), (FAR_SNAP, FAR_ANCHORS)):
        anchors = [t for t in rest if t % snap == 0][:count]
        bases += anchors
        if anchors:
            rest = [t for t in rest if t < anchors[-1]]
    return tuple(bases)


def cap_bases(used: dict[int, int], bases: list[int | None], holds: list[Callable[[int], bool]]) -> None:
    """Leave at most ``MAX_DELTAS`` distinct delta bases in ``bases`` (one per client, in place).

    ``used`` counts the clients of each base. Kept: the ``MAX_DELTAS - 1`` most used (the newer on a tie),
    and the oldest, which most clients hold too. A client whose base is not kept takes the newest kept base
    it ``holds`` (its own ``holds``), or ``NO_UPDATE`` for this tick.
    """
    if len(used) <= MAX_DELTAS:
        return
    popular = sorted(used, key=lambda t: (used[t], t), reverse=True)[:MAX_DELTAS - 1]
    kept = sorted({*popular, min(used)}, reverse=True)
    keep = frozenset(kept)
    for i, base in enumerate(bases):
        if base is not None and base not in keep:
            bases[i] = next((t for t in kept if holds[i](t)), NO_UPDATE)


class UpdateEncoder:
    """Encodes the current tick's update once per base and hands out the shared prefix.

    Args:
        grid: recovery keyframes only on ticks that are multiples of ``SNAP`` (a match, whose every tick is
            sent); False for a feed whose sent ticks may never land on the grid (a playback at speed).
        keyframe_gap: ``KEYFRAME_GAP``.
    """

    def __init__(self, schema: WireSchema, history: SnapshotHistory, *, grid: bool = True,
                 keyframe_gap: int = KEYFRAME_GAP) -> None:
        self.schema = schema
        self.history = history
        self.grid = grid
        self.keyframe_gap = keyframe_gap
        self._current: Snapshot | None = None
        self._events: list[Any] = []
        self._cache: dict[int | None, bytes] = {}
        #: The allowed delta bases of the current tick, newest first, and as a set.
        self.bases: tuple[int, ...] = ()
        self.base_set: frozenset[int] = frozenset()
        #: Each base's state extrapolated to the tick it was last encoded for (ids and predicted columns).
        self._predicted: dict[int, Snapshot] = {}
        #: Encodes done for the current tick (one per distinct base).
        self.encodes = 0

    def begin(self, snapshot: Snapshot, events: list[Any]) -> None:
        """Start a new tick: ``snapshot`` is the state every update of this tick brings clients to."""
        self._current = snapshot
        self._events = events
        self._cache.clear()
        self.encodes = 0
        self.bases = delta_bases(self.history.ticks(), snapshot.tick)
        self.base_set = frozenset(self.bases)
        predicted = self._predicted
        for tick in [t for t in predicted if t not in self.base_set]:
            del predicted[tick]

    def choose(self, holds: Callable[[int], bool] | None, last_keyframe: int | None, first: bool = False,
               last_ack: int | None = None, slot: int = 0, sent: int = 1) -> int | None:
        """The base of a client's update: the newest allowed base it ``holds`` (a tick), None for a keyframe,
        or ``NO_UPDATE`` (nothing for it this tick; see the module docstring).

        Args:
            holds: whether the client holds a tick's state (``ServerSession.holds``); None: it holds none (it
                never acknowledged one: a silent client, asked about at every tick, skips the bases at once).
            last_keyframe: the tick of the keyframe it was sent last and has not acknowledged (None: none).
            first: its first update (a welcome goes with it): a keyframe now if it holds no base.
            last_ack: the feed's tick when the client's acknowledgements last advanced (None: never).
            slot: which grid tick of each ``keyframe_gap`` ticks is its own (any integer: the player id), for a
                client whose acknowledgements do not advance.
            sent: the keyframes a client that never acknowledged was sent (``ServerSession.silent_keyframes``):
                it waits ``silent_wait(sent)`` ticks after the last.
        """
        if holds is not None:
            for tick in self.bases:
                if holds(tick):
                    return tick
        cur = self._current
        if cur is None:
            raise RuntimeError("choose() before begin()")
        if first:
            return None
        gap = self.keyframe_gap
        if last_keyframe is not None and (last_ack is None or not 0 <= cur.tick - last_ack < gap):
            # Silent: a keyframe every ``gap`` ticks (longer and longer for one that never acknowledged any), on a
            # tick of its own (clients that came together are spread).
            if 0 <= cur.tick - last_keyframe < (gap if last_ack is not None else self.silent_wait(sent)):
                return NO_UPDATE
            if last_ack is None:  # it never acknowledged one: no use waiting for the grid, any tick of its own
                return None if self._own_tick(cur.tick, slot) else NO_UPDATE
            if self.grid and (cur.tick % SNAP or (cur.tick // SNAP + slot) % max(1, gap // SNAP)):
                return NO_UPDATE
            return None
        if self.grid and cur.tick % SNAP:
            return NO_UPDATE
        return None

    def _own_tick(self, tick: int, slot: int) -> bool:
        """Whether ``tick`` is one of ``slot``'s for a client that never acknowledged a keyframe."""
        return not self.grid or (tick + slot) % self.keyframe_gap == 0

    def silent_wait(self, sent: int) -> int:
        """Ticks a client that never acknowledged any waits after the last of the ``sent`` keyframes it was sent
        before the next: ``keyframe_gap`` after the first, twice as long after each one more, at most
        ``keyframe_gap << SILENT_DOUBLINGS`` (a client slow to start gets the world again within a second;
        one that never acknowledges costs a few keyframes before ``--ack-timeout`` closes it, not one a second)."""
        return self.keyframe_gap << min(max(0, sent - 1), SILENT_DOUBLINGS)

    def next_keyframe(self, tick: int, last_keyframe: int, slot: int, sent: int = 1) -> int:
        """For a client that never acknowledged any tick, sent its last keyframe at ``last_keyframe`` (``sent``
        in all): the first tick after ``tick`` at which ``choose`` gives it one (None); on the ticks between,
        it gives it nothing (``NO_UPDATE``). For a feed whose ticks only go forward (a match): a tick may skip
        such a client until then, unless something changes (a message from it)."""
        t = max(tick + 1, last_keyframe + self.silent_wait(sent))
        return t + (-(t + slot)) % self.keyframe_gap if self.grid else t

    def base_for(self, acked: int | None) -> int | None:
        """The base for a client that acknowledged only ``acked``: it if it is an allowed base, else None."""
        return acked if acked in self.base_set else None

    def prefix(self, base_tick: int | None) -> bytes:
        """The update prefix from ``base_tick`` (None: keyframe) to the current snapshot."""
        cached = self._cache.get(base_tick)
        if cached is not None:
            return cached
        cur = self._current
        if cur is None:
            raise RuntimeError("prefix() before begin()")
        base = self.history.get(base_tick)
        predicted = None
        if base is not None and base_tick is not None:
            # One step from last tick's prediction of this base, rather than all the steps from the base.
            start = self._predicted.get(base_tick)
            if start is None or not base.tick <= start.tick <= cur.tick:
                start = base
            predicted = Snapshot(cur.tick, base.ids, predict(self.schema, start, cur.tick), 0)
            self._predicted[base_tick] = predicted
        body = encode_body(self.schema, base, cur, predicted=None if predicted is None else predicted.cols)
        data = encode_update_prefix(cur.tick, None if base is None else base.tick, body, cur.checksum, self._events)
        self._cache[base_tick] = data
        self.encodes += 1
        return data

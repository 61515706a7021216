"""Auditing what players were sent: a recorded match re-simulated rebuilds every update, byte for byte.

With interest management (PROTOCOL.md, *Filtered views*) a player receives
only its view, so what it could know is a fact to prove, not to trust: the
recording (seed, options, joins, leaves, inputs) determines every state and
every event, and an update is a pure function of the states at its tick and
base, the tick's events, the player's entity and the match's view
(``server.protocol.interest.reference_frame`` for a client that applies
filtered updates, ``reference_plain_frame`` for one that did not say it can:
ordinary updates of the same view), so ``ViewAudit.rebuild`` gives the very
bytes the server sent from the recording alone: every player's, whatever its
hello said, and every spectator's. The update's ``ack`` (the player's own
input sequence number, which the recording does not keep) is taken from the
frame itself, and so is its ``surplus`` when it has one. In a match without a
view (or a spectator's, when the match's ``view_spectators`` gives them the
world) the updates are rebuilt with the ordinary delta encoder.

Nothing here does I/O: the replay comes in parsed, frames come in as bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import msgpack

from game.rules import Event, Ruleset
from server.protocol.codec import encode_update_prefix, finish_update, with_surplus
from server.protocol.delta import Snapshot, WireSchema, encode_body
from server.protocol.interest import ViewGrid, ViewShape, reference_frame, reference_plain_frame, reference_state
from server.replay.format import Replay, ReplayUsageError
from server.replay.resim import Replayer

#: Re-simulated states kept for rebuilding deltas (a delta's base is at most this many ticks old).
KEEP = 64


class ViewAudit:
    """Re-simulates ``replay`` tick by tick and rebuilds the updates of its players.

    Ask in ascending tick order (states are kept for the last ``KEEP`` ticks).

    Raises:
        BadReplay: (from the re-simulation) a recording that does not re-simulate.
    """

    def __init__(self, replay: Replay, ruleset: Ruleset) -> None:
        self.sim = Replayer(replay, ruleset)
        options = dict(replay.header.options)
        self.spec = ruleset.spec.resolve(options)
        self.schema = WireSchema.from_spec(self.spec)
        shape = ViewShape.from_options(options)
        #: The match's view grid, or None when it did not filter views.
        self.grid = None if shape is None else ViewGrid(self.spec, shape)
        #: Spectators received the whole world (``view_spectators``), not a view.
        self.spectators_see_world = bool(options.get("view_spectators", 0))
        self._states: OrderedDict[int, tuple[Snapshot, list[Event], dict[int, int | None]]] = OrderedDict()
        self._keep(self.sim.tick, [])

    def _keep(self, tick: int, events: list[Event]) -> None:
        entities = {p: e for p, (_, e) in self.sim.players.items()}
        self._states[tick] = (Snapshot.capture(self.sim.world), events, entities)
        while len(self._states) > KEEP:
            self._states.popitem(last=False)

    def state(self, tick: int) -> Snapshot:
        """The re-simulated replicated state after ``tick``."""
        return self._at(tick)[0]

    def _at(self, tick: int) -> tuple[Snapshot, list[Event], dict[int, int | None]]:
        while self.sim.tick < tick:
            _, events = self.sim.step()
            self._keep(self.sim.tick, events)
        got = self._states.get(tick)
        if got is None:
            raise ReplayUsageError(f"tick {tick} is not among the last {KEEP} ticks re-simulated (ask in order)")
        return got

    def entity(self, player: int, tick: int) -> int | None:
        """``player``'s entity at ``tick`` (None: none)."""
        return self._at(tick)[2].get(player)

    def view(self, player: int, tick: int) -> Snapshot:
        """What ``player`` could know after ``tick``: the entities of its view, with their values and view sum."""
        if self.grid is None:
            raise ReplayUsageError("this match did not filter views: every player could see the whole world")
        return reference_state(self.grid, self.state(tick), self.entity(player, tick))

    def rebuild(self, frame: bytes, player: int, *, interest: bool, spectator: bool = False) -> bytes:
        """The update ``frame`` (as ``player`` received it) rebuilt from the recording: the same bytes, if the
        server sent what the recording says it had to. ``interest``: the connection's hello said it can apply
        filtered views; ``spectator``: it watched (its view has no centre)."""
        msg = msgpack.unpackb(frame, raw=False)
        tick, base, ack = msg["tick"], msg["base"], msg["ack"]
        rebuilt = self._rebuild(tick, base, ack, player, interest=interest, spectator=spectator)
        surplus = msg.get("surplus")  # the player's queue, which the recording does not keep either: the frame's
        return rebuilt if surplus is None else with_surplus(rebuilt, surplus)

    def _rebuild(self, tick: int, base: int | None, ack: int, player: int, *, interest: bool, spectator: bool) -> bytes:
        cur, events, entities = self._at(tick)
        before = None if base is None else self._at(base)[0]
        wire = [e.to_wire() for e in events]
        if self.grid is not None and not (spectator and self.spectators_see_world):
            entity = None if spectator else entities.get(player)
            build = reference_frame if interest else reference_plain_frame
            return build(self.grid, before, cur, entity, ack, wire, [e.at for e in events])
        prefix = encode_update_prefix(tick, base, encode_body(self.schema, before, cur), cur.checksum, wire)
        return finish_update(prefix, ack)

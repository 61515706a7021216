"""The playback core, sans I/O: a replay served to spectators through the live protocol; a feed (``server/feed.py``).

A ``Playback`` is a replay dressed as a match: it re-simulates the replay
(``Replayer``) and sends its viewers exactly what a live match sends a
spectator (``welcome``, ``roster`` and ``roster_delta``, ``update`` deltas against what each one
acknowledged, with checksums), plus two replay messages (``replay_info``
once, ``replay`` whenever the playback state changes) and takes one more
client message, ``control`` (pause, speed, seek). REPLAY.md documents the
extension. Every viewer of a replay sees the same playback: a control from
one applies to all.

No sockets, no event loop, no clock: the game server's shell hosts it like a
match (``server/app.py``): each viewer's connection has the one session of
the protocol (``ServerSession.for_viewer``: its state table decodes and
checks every message, ``control`` included, and keeps the viewer's acks), the
shell hands the playback the messages (``on_message``) and ticks it at the
replay's tick rate (``tick(now)``), and each viewer has a client object to
send to (``send(bytes)``, ``close(code, reason)``).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from attrs import define, field

from game.rules import Ruleset
from server.feed import Client
from server.protocol import PROTOCOL_MINOR, PROTOCOL_VERSION
from server.protocol.codec import encode_server, finish_update
from server.protocol.delta import Snapshot, WireSchema
from server.protocol.errors import CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_POLICY, PolicyViolation
from server.protocol.history import HISTORY_SIZE, MAX_DELTAS, NO_UPDATE, SnapshotHistory, UpdateEncoder, cap_bases
from server.protocol.messages import (
    ClientMessage,
    Control,
    Hello,
    Leave,
    Ping,
    Pong,
    ReplayInfo,
    ReplayStatus,
    Resync,
    Roster,
    RosterEntry,
    Welcome,
)
from server.protocol.roster import RosterLog
from server.protocol.session import RATE_PER_S, ServerSession
from server.replay.format import Replay, ReplayError
from server.replay.resim import Replayer
from server.ticker import Ticker

log = logging.getLogger("server.replay.playback")

#: Real ticks between two ``replay`` status messages while playing.
STATUS_EVERY = 10
#: A playback nobody watches is dropped after this many seconds.
IDLE_S = 60.0
#: Viewer ids start here, far from recorded player ids.
FIRST_VIEWER = 1_000_000


def viewer_session(rate: float = RATE_PER_S) -> ServerSession:
    """The session of a playback's viewer: ``rate`` messages a second sustained, bursts of twice that."""
    return ServerSession.for_viewer(rate=rate, burst=2 * rate)


@define(eq=False)
class Viewer:
    """One spectator of a playback."""

    player: int
    name: str
    session: ServerSession
    client: Client
    token: str = field(factory=lambda: secrets.token_urlsafe(18))
    needs_welcome: bool = True
    sent_tick: int | None = None
    #: It asked for a keyframe (``resync``): send its state again even if unchanged.
    lost: bool = False
    #: It asked for a ``resync``: the next tick sends it the whole roster (it may have missed a delta).
    needs_roster: bool = False
    #: Its hello asked for ``roster_delta``s (else it gets the whole roster at every change).
    roster_deltas: bool = False


class Playback:
    """One replay played to its viewers: a ``Feed`` of ``Viewer``s. Drive it with ``tick(now)`` at the replay's tick rate.

    Args:
        name: the replay's name (its file name), for the viewers.
        replay: the parsed replay.
        ruleset: its ruleset (``check_ruleset`` passes).
        msg_rate: messages a second a viewer may send, sustained (bursts of twice that).
    """

    def __init__(self, name: str, replay: Replay, ruleset: Ruleset, *, history: int = HISTORY_SIZE,
                 msg_rate: float = RATE_PER_S) -> None:
        self.name = name
        self.msg_rate = msg_rate
        self.replay = replay
        self.sim = Replayer(replay, ruleset)
        self.header = replay.header
        self.tick_rate = replay.header.tick_rate
        spec = ruleset.spec.resolve(replay.header.options)
        self.schema = WireSchema.from_spec(spec)
        self.ruleset_wire = spec.to_wire()
        self._history_size = history
        self.history = SnapshotHistory(history)
        self.encoder = UpdateEncoder(self.schema, self.history, grid=False)
        self.viewers: dict[int, Viewer] = {}
        self.paused = False
        self.speed = 1.0
        self.updates_sent = 0
        self._progress = 0.0
        self._hold = False
        #: The seek to apply at the next tick (the last one asked for), if any.
        self._seek_to: int | None = None
        #: Seeks applied (re-simulations), and why the playback failed (None while it plays).
        self.seeks = 0
        self.failed: str | None = None
        self._next_viewer = FIRST_VIEWER
        self._ticks = 0
        self._status_dirty = True
        self._roster_key: tuple[Any, ...] | None = None
        #: The roster viewers hold: the replay's players at the playback's tick.
        self.roster_log = RosterLog()
        self._events: list[Any] = []
        self._snapshot = self._capture()
        #: The ``replay_info`` frame, encoded once.
        self._info_frame: bytes | None = None
        #: Its tick schedule, set by its driver (``server.loop.run_feed``).
        self.ticker: Ticker | None = None
        #: Since when (``now`` of a tick) nobody has watched; None while someone does.
        self.idle_since: float | None = None

    # -- viewers -----------------------------------------------------------------

    @property
    def tick_count(self) -> int:
        """The playback's tick: viewers' acks ahead of it are of a timeline a seek left behind (ignored)."""
        return self.sim.tick

    @property
    def finished(self) -> bool:
        """It failed (``fail``): it never plays again; a new viewer opens the file anew."""
        return self.failed is not None

    def new_session(self) -> ServerSession:
        return viewer_session(self.msg_rate)

    def connect(self, hello: Hello, session: ServerSession, client: Client, now: float) -> Viewer:
        """Everyone is a spectator here; the welcome goes out at the next ``tick()``.

        Raises:
            PolicyViolation: (1008) the playback failed while this viewer was connecting.
        """
        if self.failed is not None:
            raise PolicyViolation(self.failed)
        viewer = Viewer(self._next_viewer, hello.name, session, client, roster_deltas=hello.roster_deltas)
        self._next_viewer += 1
        self.viewers[viewer.player] = viewer
        self.idle_since = None
        return viewer

    def on_message(self, viewer: Viewer, msg: ClientMessage) -> None:
        """A message the viewer's session accepted: a control, a ping (answered at once), a resync."""
        if isinstance(msg, Control):
            self.control(msg)
        elif isinstance(msg, Ping):
            viewer.client.send(encode_server(Pong(msg.id, msg.time, self.sim.tick)))
        elif isinstance(msg, Resync):
            viewer.lost = True  # its session forgot its acks: the next update is a keyframe, even if paused
            viewer.needs_roster = True
        elif isinstance(msg, Leave):
            viewer.client.close(CLOSE_NORMAL, "left the playback")

    def on_input(self, viewer: Viewer, seq: int, values: tuple[int, ...], view: int | None) -> None:
        """Never called: a viewer's session refuses inputs (``receive_input`` reads a player's only)."""

    def disconnect(self, viewer: Viewer, client: Client, now: float, *, left: bool = False) -> None:
        if self.viewers.get(viewer.player) is not viewer:
            return  # closed by ``fail``
        viewer.session.close()
        del self.viewers[viewer.player]

    # -- controls ----------------------------------------------------------------

    def control(self, c: Control) -> None:
        """Apply a viewer's control. A seek waits for the next ``tick()``: of several seeks
        between two ticks only the last is applied (each one re-simulates up to a keyframe
        period), so a viewer cannot make the playback re-simulate faster than it ticks."""
        if self.failed is not None:
            return
        if c.pause is not None and c.pause != self.paused:
            self.paused = c.pause
            self._progress = 0.0
            if not self.paused and self.sim.tick >= self.sim.last_tick:
                self._seek_to = self.replay.first_tick  # play again from the start
        if c.speed is not None:
            self.speed = c.speed
        if c.seek is not None:
            self._seek_to = c.seek
        self._status_dirty = True

    def seek(self, tick: int) -> None:
        """Go to ``tick`` (clamped to the replay) now: nearest keyframe at or before it, then re-simulate.

        Raises:
            ReplayError: the replay cannot be re-simulated there (a corrupt keyframe or record).
        """
        tick = min(max(tick, self.replay.first_tick), self.sim.last_tick)
        if tick == self.sim.tick:
            return
        self.seeks += 1
        self._events = [e.to_wire() for e in self.sim.seek(tick)]
        self._progress = 0.0
        # A new timeline of ticks: fresh bases, and acks only from here on.
        self.history = SnapshotHistory(self._history_size)
        self.encoder = UpdateEncoder(self.schema, self.history, grid=False)
        for v in self.viewers.values():
            v.session.restart_acks(tick)
        self._snapshot = self._capture()
        self._status_dirty = True
        self._hold = True  # the next tick shows the target itself

    def fail(self, reason: str) -> None:
        """The replay cannot go on: tell every viewer why and close them (1008). The playback is dead."""
        if self.failed is None:
            self.failed = reason
            log.warning("playback of %s failed: %s", self.name, reason)
        for v in list(self.viewers.values()):
            v.client.tell_and_close(CLOSE_POLICY, reason)
        self.viewers.clear()

    # -- the tick ------------------------------------------------------------------

    def tick(self, now: float = 0.0) -> None:
        """Apply the pending seek, or advance by ``speed`` replay ticks (fractions carry over); send what changed.

        A replay that fails re-simulation (``ReplayError``) fails the playback
        (``fail()``: its viewers get ``error`` and 1008) instead of raising.
        """
        if self.viewers:
            self.idle_since = None
        elif self.idle_since is None:
            self.idle_since = now
        if self.failed is not None:
            return
        try:
            self._advance()
        except ReplayError as exc:
            self.fail(f"cannot play {self.name}: {exc}")
            return
        self._send(now)

    def _advance(self) -> None:
        self._ticks += 1
        sim = self.sim
        if self._seek_to is not None:
            target, self._seek_to = self._seek_to, None
            self.seek(target)
        if self._hold:
            self._hold = False
        elif not self.paused and sim.tick < sim.last_tick:
            self._progress += self.speed
            steps = min(int(self._progress), sim.last_tick - sim.tick)
            self._progress -= int(self._progress)
            for _ in range(steps):
                self._events.extend(e.to_wire() for e in sim.step()[1])
            if steps:
                del self._events[:-256]
                self._snapshot = self._capture()
        if sim.tick >= sim.last_tick and not self.paused:
            self.paused = True  # the end
            self._status_dirty = True
        if self._ticks % STATUS_EVERY == 0 and not self.paused:
            self._status_dirty = True

    def _capture(self) -> Snapshot:
        snap = Snapshot.capture(self.sim.world)
        self.history.add(snap)
        self.encoder.begin(snap, self._events)
        return snap

    def roster(self) -> Roster:
        """The roster as of the last tick (``roster_log``'s)."""
        return self.roster_log.roster()

    def replay_info(self) -> ReplayInfo:
        """What the replay is (the ``replay_info`` message; static for a playback)."""
        r, h = self.replay, self.header
        return ReplayInfo(
            self.name, h.match, h.ruleset, h.ruleset_version, h.seed, h.options, h.tick_rate, h.start_time,
            r.first_tick, r.last_tick, r.complete, r.warnings(), [k.tick for k in r.keyframes],
            [(c.tick, c.checksum) for c in r.checkpoints],
            None if r.end is None else sorted(r.end.scores.items()), sorted(r.players().items()))

    def status(self) -> ReplayStatus:
        """Where the playback stands (the ``replay`` message)."""
        return ReplayStatus(self.sim.tick, self.replay.first_tick, self.sim.last_tick, self.paused, self.speed)

    def info(self) -> dict[str, Any]:
        """A summary for the server's HTTP API."""
        return {
            "replay": self.name, "match": self.header.match, "ruleset": self.header.ruleset,
            "tick": self.sim.tick, "first": self.replay.first_tick, "last": self.sim.last_tick,
            "tick_rate": self.tick_rate, "paused": self.paused, "speed": self.speed, "viewers": len(self.viewers),
            "ticks_dropped": self.ticker.dropped if self.ticker is not None else 0, "failed": self.failed,
        }

    def _send(self, now: float) -> None:
        snap = self._snapshot
        key = tuple(sorted(self.sim.players.items()))
        log = self.roster_log
        if key != self._roster_key:
            log.replace(RosterEntry(p, e, n, True) for p, (n, e) in key)
        self._roster_key = key
        delta = log.commit()
        status = encode_server(self.status()) if self._status_dirty else None
        self._status_dirty = False
        encoder = self.encoder
        plan: list[tuple[Viewer, int | None]] = []
        used: dict[int, int] = {}
        for v in list(self.viewers.values()):
            client = v.client
            if v.needs_welcome:
                v.needs_welcome = False
                client.send(encode_server(Welcome(PROTOCOL_VERSION, self.header.match, v.player, None, self.tick_rate,
                                                  snap.tick, v.token, self.ruleset_wire, False, 0.0,
                                                  minor=PROTOCOL_MINOR)))
                if self._info_frame is None:
                    self._info_frame = encode_server(self.replay_info())
                client.send(self._info_frame)
                client.send(log.full())
                client.send(status or encode_server(self.status()))
            else:
                if v.needs_roster:
                    v.needs_roster = False
                    client.send(log.full())
                elif delta is not None:
                    client.send(delta if v.roster_deltas else log.full())
                if status is not None:
                    client.send(status)
            if v.sent_tick == snap.tick and not v.lost:
                continue  # paused, or slower than 1x: nothing new for it
            # Its session keeps its acks (and forgets them at a resync or a seek): the base it holds, if any.
            session = v.session
            if session.waiting:
                continue  # it owes acknowledgements for --max-unacked bytes already
            base = encoder.choose(session.holds, session.last_keyframe, v.lost or v.sent_tick is None, session.last_ack)
            if base != NO_UPDATE:
                plan.append((v, base))
                if base is not None:
                    used[base] = used.get(base, 0) + 1
        if len(used) > MAX_DELTAS:
            bases = [base for _, base in plan]
            cap_bases(used, bases, [v.session.holds for v, _ in plan])
            plan = list(zip([v for v, _ in plan], bases))
        for v, base in plan:
            if base == NO_UPDATE:
                continue
            frame = finish_update(encoder.prefix(base), 0)
            v.client.send(frame)
            v.session.sent_update(snap.tick, len(frame), now, base is None)
            v.sent_tick = snap.tick
            v.lost = False
            self.updates_sent += 1

    def close(self, reason: str = "server shutting down") -> None:
        """Close every viewer (1001, ``reason``)."""
        for v in list(self.viewers.values()):
            v.client.close(CLOSE_GOING_AWAY, reason)

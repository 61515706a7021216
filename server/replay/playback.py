"""The playback core, sans I/O: a replay served to spectators through the live protocol.

A ``Playback`` is a replay dressed as a match: it re-simulates the replay
(``Replayer``) and sends its viewers exactly what a live match sends a
spectator (``welcome``, ``roster``, ``update`` deltas against what each one
acknowledged, with checksums), plus two replay messages (``replay_info``
once, ``replay`` whenever the playback state changes) and accepts one more
client message, ``control`` (pause, speed, seek). REPLAY.md documents the
extension. Every viewer of a replay sees the same playback: a control from
one applies to all.

No sockets, no event loop, no clock: the shell feeds it frames with the
time (``receive``), calls ``tick()`` at the replay's tick rate, and gives
each viewer a client object to send to (``send(bytes)``, ``close(code,
reason)``). ``server/playback.py`` is that shell today.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import msgpack
from attrs import define, field, frozen

from game.rules import Ruleset
from server.protocol import PROTOCOL_VERSION
from server.protocol.codec import MAX_CLIENT_MESSAGE, encode_server, finish_update
from server.protocol.delta import Snapshot, WireSchema
from server.protocol.errors import (
    CLOSE_POLICY,
    InvalidField,
    PolicyViolation,
)
from server.protocol.history import HISTORY_SIZE, SnapshotHistory, UpdateEncoder
from server.protocol.messages import (
    Ack,
    Error,
    Hello,
    Input,
    Ping,
    Pong,
    Resync,
    Roster,
    RosterEntry,
    Welcome,
)
from server.protocol.session import ServerSession
from server.replay.format import Replay, ReplayError
from server.replay.resim import Replayer

log = logging.getLogger("server.replay.playback")

#: Playback speeds a viewer may ask for.
MIN_SPEED, MAX_SPEED = 0.25, 8.0
#: Control messages a viewer may send per second, sustained (the burst is twice that).
CONTROL_RATE = 30.0
#: Real ticks between two ``replay`` status messages while playing.
STATUS_EVERY = 10
#: A playback nobody watches is dropped after this many seconds.
IDLE_S = 60.0
#: Viewer ids start here, far from recorded player ids.
FIRST_VIEWER = 1_000_000
_U32 = 0xFFFFFFFF
_CONTROL_KEYS = {"t", "pause", "speed", "seek"}


@frozen
class Control:
    """A viewer's ``control`` message: any of pause (bool), speed (0.25..8), seek (a tick)."""

    pause: bool | None = None
    speed: float | None = None
    seek: int | None = None


def decode_control(data: bytes | str) -> Control | None:
    """The ``control`` message in ``data``, or None when it is another message (for ``ServerSession``).

    Raises:
        InvalidField (1007) for a control message with a bad field.
    """
    if isinstance(data, str) or len(data) > MAX_CLIENT_MESSAGE:
        return None
    try:
        obj = msgpack.unpackb(data, raw=False, max_str_len=256, max_bin_len=0, max_array_len=32, max_map_len=16)
    except Exception:  # noqa: BLE001 - msgpack raises several unrelated types; the session reports it
        return None
    if not isinstance(obj, dict) or obj.get("t") != "control":
        return None
    extra = set(obj) - _CONTROL_KEYS
    if extra:
        raise InvalidField(f"control: unknown field(s) {', '.join(sorted(map(str, extra)))}")
    pause, speed, seek = obj.get("pause"), obj.get("speed"), obj.get("seek")
    if pause is not None and not isinstance(pause, bool):
        raise InvalidField("control: pause must be true or false")
    if speed is not None and (isinstance(speed, bool) or not isinstance(speed, (int, float))
                              or not MIN_SPEED <= speed <= MAX_SPEED):
        raise InvalidField(f"control: speed must be a number in [{MIN_SPEED}, {MAX_SPEED}]")
    if seek is not None and (isinstance(seek, bool) or not isinstance(seek, int) or not 0 <= seek <= _U32):
        raise InvalidField("control: seek must be a tick (uint32)")
    return Control(pause, None if speed is None else float(speed), seek)


class PlaybackSession:
    """A viewer connection's protocol state: ``ServerSession`` for the live messages, plus controls.

    Acknowledgements are kept here, not in the inner session: after a seek
    the playback's ticks jump (even backwards), so only acks of ticks sent
    since the last seek (``lo..hi``) count, and acks from before it are
    ignored rather than treated as errors.
    """

    def __init__(self, session: ServerSession) -> None:
        self.inner = session
        self.acked: int | None = None
        #: The viewer asked for a keyframe (``resync``): send its state again even if unchanged.
        self.lost = False
        self._tokens = 2 * CONTROL_RATE
        self._last: float | None = None

    def receive(self, data: bytes | str, now: float, lo: int, hi: int) -> Hello | Control | Ping | None:
        """Decode and check one frame; returns what the playback must act on (None: nothing).

        Raises:
            ProtocolError: with the close code to use.
        """
        control = decode_control(data)
        if control is not None:
            if self.inner.state.value != "active":
                raise PolicyViolation("control before hello")
            self._charge(now)
            return control
        msg = self.inner.receive(data, now, _U32)
        inner = self.inner
        inner.acked, inner.ack_floor = None, -1
        tick = msg.tick if isinstance(msg, Ack) else msg.ack if isinstance(msg, Input) else None
        if tick is not None and lo <= tick <= hi and (self.acked is None or tick > self.acked):
            self.acked = tick
        if isinstance(msg, Resync):
            self.acked = None
            self.lost = True
        return msg if isinstance(msg, (Hello, Ping)) else None

    def _charge(self, now: float) -> None:
        if self._last is not None:
            self._tokens = min(2 * CONTROL_RATE, self._tokens + (now - self._last) * CONTROL_RATE)
        self._last = now
        if self._tokens < 1:
            raise PolicyViolation(f"more than {CONTROL_RATE:g} control messages per second")
        self._tokens -= 1

    def close(self) -> None:
        self.inner.close()


@define(eq=False)
class Viewer:
    """One spectator of a playback."""

    player: int
    name: str
    session: PlaybackSession
    client: Any  # server.match.Client: send(bytes), close(code, reason)
    token: str = field(factory=lambda: secrets.token_urlsafe(18))
    needs_welcome: bool = True
    sent_tick: int | None = None


class Playback:
    """One replay played to its viewers. Drive it with ``tick()`` at the replay's tick rate.

    Args:
        name: the replay's name (its file name), for the viewers.
        replay: the parsed replay.
        ruleset: its ruleset (``check_ruleset`` passes).
    """

    def __init__(self, name: str, replay: Replay, ruleset: Ruleset, *, history: int = HISTORY_SIZE) -> None:
        self.name = name
        self.replay = replay
        self.sim = Replayer(replay, ruleset)
        self.header = replay.header
        self.tick_rate = replay.header.tick_rate
        spec = ruleset.spec
        self.schema = WireSchema.from_spec(spec)
        self.ruleset_wire = spec.to_wire()
        self._history_size = history
        self.history = SnapshotHistory(history)
        self.encoder = UpdateEncoder(self.schema, self.history)
        self.viewers: dict[int, Viewer] = {}
        self.paused = False
        self.speed = 1.0
        #: Acks count from this tick on (the last seek); ``hi`` is the current tick.
        self.epoch_start = self.sim.tick
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
        self._events: list[Any] = []
        self._snapshot = self._capture()

    # -- viewers -----------------------------------------------------------------

    def new_session(self) -> PlaybackSession:
        return PlaybackSession(ServerSession(self.sim.ruleset.spec.inputs))

    def receive(self, viewer: Viewer | None, session: PlaybackSession, data: bytes | str, now: float) -> Hello | None:
        """A frame from a connection; returns its ``hello`` (the caller then ``connect``s)."""
        msg = session.receive(data, now, self.epoch_start, self.sim.tick)
        if isinstance(msg, Hello):
            return msg
        if isinstance(msg, Control):
            self.control(msg)
        elif isinstance(msg, Ping) and viewer is not None:
            viewer.client.send(encode_server(Pong(msg.id, msg.time, self.sim.tick)))
        return None

    def connect(self, hello: Hello, session: PlaybackSession, client: Any) -> Viewer:
        """Everyone is a spectator here; the welcome goes out at the next ``tick()``."""
        viewer = Viewer(self._next_viewer, hello.name, session, client)
        self._next_viewer += 1
        self.viewers[viewer.player] = viewer
        if self.failed is not None:
            self.fail(self.failed)  # too late: it failed while this viewer was connecting
        return viewer

    def disconnect(self, viewer: Viewer) -> None:
        viewer.session.close()
        self.viewers.pop(viewer.player, None)

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
        self.encoder = UpdateEncoder(self.schema, self.history)
        self.epoch_start = tick
        for v in self.viewers.values():
            v.session.acked = None
        self._snapshot = self._capture()
        self._status_dirty = True
        self._hold = True  # the next tick shows the target itself

    def fail(self, reason: str) -> None:
        """The replay cannot go on: tell every viewer why and close them (1008). The playback is dead."""
        if self.failed is None:
            self.failed = reason
            log.warning("playback of %s failed: %s", self.name, reason)
        for v in list(self.viewers.values()):
            v.client.send(encode_server(Error(CLOSE_POLICY, reason)))
            v.client.close(CLOSE_POLICY, reason)
        self.viewers.clear()

    # -- the tick ------------------------------------------------------------------

    def tick(self, now: float = 0.0) -> None:
        """Apply the pending seek, or advance by ``speed`` replay ticks (fractions carry over); send what changed.

        A replay that fails re-simulation (``ReplayError``) fails the playback
        (``fail()``: its viewers get ``error`` and 1008) instead of raising.
        """
        if self.failed is not None:
            return
        try:
            self._advance()
        except ReplayError as exc:
            self.fail(f"cannot play {self.name}: {exc}")
            return
        self._send()

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
        return Roster(tuple(RosterEntry(p, e, n, True) for p, (n, e) in sorted(self.sim.players.items())))

    def info(self) -> dict[str, Any]:
        """The ``replay_info`` message's fields (static for a playback)."""
        r, h = self.replay, self.header
        return {
            "name": self.name, "match": h.match, "ruleset": h.ruleset, "ruleset_version": h.ruleset_version,
            "seed": h.seed, "options": h.options, "tick_rate": h.tick_rate, "start_time": h.start_time,
            "first": r.first_tick, "last": r.last_tick, "complete": r.complete, "warnings": r.warnings(),
            "keyframes": [k.tick for k in r.keyframes],
            "checkpoints": [[c.tick, c.checksum] for c in r.checkpoints],
            "scores": None if r.end is None else [[p, s] for p, s in sorted(r.end.scores.items())],
            "players": [[p, n] for p, n in sorted(r.players().items())],
        }

    def status(self) -> dict[str, Any]:
        return {"t": "replay", "tick": self.sim.tick, "first": self.replay.first_tick, "last": self.sim.last_tick,
                "paused": self.paused, "speed": self.speed}

    def _send(self) -> None:
        snap = self._snapshot
        key = tuple(sorted(self.sim.players.items()))
        roster = encode_server(self.roster()) if key != self._roster_key else None
        self._roster_key = key
        status: bytes = msgpack.packb(self.status()) if self._status_dirty else b""
        self._status_dirty = False
        for v in list(self.viewers.values()):
            client = v.client
            if v.needs_welcome:
                v.needs_welcome = False
                client.send(encode_server(Welcome(PROTOCOL_VERSION, self.header.match, v.player, None, self.tick_rate,
                                                  snap.tick, v.token, self.ruleset_wire, False, 0.0)))
                client.send(msgpack.packb({"t": "replay_info", **self.info()}))
                client.send(roster or encode_server(self.roster()))
                client.send(status or msgpack.packb(self.status()))
            else:
                if roster is not None:
                    client.send(roster)
                if status:
                    client.send(status)
            if v.sent_tick == snap.tick and not v.session.lost:
                continue  # paused, or slower than 1x: nothing new for it
            base = self.encoder.base_for(v.session.acked)
            client.send(finish_update(self.encoder.prefix(base), 0))
            v.sent_tick = snap.tick
            v.session.lost = False
            self.updates_sent += 1

    def close(self, code: int = 1001, reason: str = "replay server shutting down") -> None:
        for v in list(self.viewers.values()):
            v.client.close(code, reason)

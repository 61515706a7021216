"""Playback: a replay served to spectators through the live protocol, with pause, speed and seek."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import pytest

from game.rules import get_ruleset
from server.playback import Control, Playback, Viewer, decode_control, load_playback
from server.protocol.codec import decode_server, encode_client
from server.protocol.delta import Snapshot, WireSchema, apply_body
from server.protocol.errors import InvalidField, PolicyViolation
from server.protocol.messages import (
    Ack,
    Hello,
    Ping,
    Pong,
    Resync,
    Roster,
    Update,
    Welcome,
)
from server.replayfile import Replayer, UnknownRuleset, parse_replay
from tests.replay.helpers import record_match


class FakeClient:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.frames.append(data)

    def close(self, code: int, reason: str) -> None:
        pass

    def take(self) -> list[Any]:
        out = []
        for f in self.frames:
            obj = msgpack.unpackb(f, raw=False)
            out.append(obj if obj["t"] in ("replay", "replay_info") else decode_server(f))
        self.frames.clear()
        return out


class Watcher:
    """A viewer and its mirror: applies updates like a client, acks them."""

    def __init__(self, pb: Playback, name: str = "eve") -> None:
        self.pb = pb
        self.client = FakeClient()
        self.session = pb.new_session()
        hello = pb.receive(None, self.session, encode_client(Hello(1, name, True)), 0.0)
        assert isinstance(hello, Hello)
        self.viewer: Viewer = pb.connect(hello, self.session, self.client)
        self.schema: WireSchema | None = None
        self.states: dict[int, Snapshot] = {}
        self.tick: int | None = None
        self.keyframes = 0
        self.status: dict[str, Any] | None = None
        self.info: dict[str, Any] | None = None
        self.roster: Roster | None = None

    def send(self, msg: Any) -> None:
        data = msg if isinstance(msg, bytes) else encode_client(msg)
        self.pb.receive(self.viewer, self.session, data, 0.0)

    def control(self, **kw: Any) -> None:
        self.send(msgpack.packb({"t": "control", **kw}))

    def pump(self, ack: bool = True) -> list[Update]:
        updates = []
        for m in self.client.take():
            if isinstance(m, Welcome):
                self.schema = WireSchema.from_wire(m.ruleset)
            elif isinstance(m, Roster):
                self.roster = m
            elif isinstance(m, dict):
                if m["t"] == "replay":
                    self.status = m
                else:
                    self.info = m
            elif isinstance(m, Update):
                assert self.schema is not None
                base = None if m.base is None else self.states[m.base]
                snap = apply_body(self.schema, base, m.tick, m.body)
                assert snap.checksum == m.checksum
                self.states[m.tick] = snap
                self.tick = m.tick
                self.keyframes += m.base is None
                updates.append(m)
        if ack and self.tick is not None:
            self.send(Ack(self.tick))
        return updates


@pytest.fixture(scope="module")
def replay_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _, _ = record_match(tmp_path_factory.mktemp("pb"), "arena", ticks=660, players=3, leave_at=250)
    return path


@pytest.fixture
def pb(replay_path: Path) -> Playback:
    return load_playback(replay_path)


def checkpoints(pb: Playback) -> dict[int, int]:
    return {c.tick: c.checksum for c in pb.replay.checkpoints}


def test_a_viewer_gets_welcome_info_roster_status_and_a_keyframe(pb: Playback) -> None:
    w = Watcher(pb)
    pb.tick()
    msgs = w.client.take()
    kinds = [m["t"] if isinstance(m, dict) else type(m).__name__ for m in msgs]
    assert kinds == ["Welcome", "replay_info", "Roster", "replay", "Update"]
    welcome, info, _, status, update = msgs
    assert welcome.entity is None and welcome.ruleset["name"] == "arena" and welcome.tick_rate == 30
    assert info["first"] == 0 and info["last"] == 660 and info["complete"] is True
    assert info["keyframes"] == [300, 600] and [0, 0] not in info["checkpoints"]
    assert [t for t, _ in info["checkpoints"]] == list(range(30, 661, 30))
    assert status == {"t": "replay", "tick": 1, "first": 0, "last": 660, "paused": False, "speed": 1.0}
    assert update.base is None and update.tick == 1


def test_playing_at_1x_brings_every_checkpoint_with_its_recorded_checksum(pb: Playback) -> None:
    w = Watcher(pb)
    want = checkpoints(pb)
    seen = {}
    for _ in range(200):
        pb.tick()
        for u in w.pump():
            if u.tick in want:
                seen[u.tick] = u.checksum
    assert w.tick == 200 and w.keyframes == 1  # one keyframe, deltas ever after
    assert seen == {t: s for t, s in want.items() if t <= 200}
    assert w.roster is not None and len(w.roster.players) == 3


def test_pause_stops_the_updates_and_play_resumes_them(pb: Playback) -> None:
    w = Watcher(pb)
    for _ in range(5):
        pb.tick()
        w.pump()
    w.control(pause=True)
    pb.tick()
    w.pump()
    assert w.status is not None and w.status["paused"] is True
    for _ in range(20):
        pb.tick()
        assert w.pump() == []
    assert pb.sim.tick == 5
    w.control(pause=False)
    pb.tick()
    assert [u.tick for u in w.pump()] == [6]


@pytest.mark.parametrize("speed, ticks, expected", [(4, 10, 40), (8, 10, 80), (0.25, 20, 5), (0.5, 9, 4)])
def test_speed_sets_replay_ticks_per_real_tick(pb: Playback, speed: float, ticks: int, expected: int) -> None:
    w = Watcher(pb)
    w.control(speed=speed)
    sent = []
    for _ in range(ticks):
        pb.tick()
        sent += [u.tick for u in w.pump()]
    assert pb.sim.tick == expected
    if speed >= 1:  # one update per real tick, ``speed`` ticks apart
        assert sent == [int(speed) * k for k in range(1, ticks + 1)]
    else:  # the start, then an update whenever a tick passed: none while nothing moved
        assert sent == list(range(expected + 1))
    assert w.status is not None and w.status["speed"] == speed


def test_seeking_sends_a_keyframe_of_the_target_tick_with_the_recorded_checksum(pb: Playback) -> None:
    w = Watcher(pb)
    want = checkpoints(pb)
    pb.tick()
    w.pump()
    w.control(pause=True)
    for target in (450, 90, 600, 630, 30):
        w.control(seek=target)
        pb.tick()
        (u,) = w.pump()
        assert u.tick == target and u.base is None and u.checksum == want[target]
    # And off the checkpoints, what the re-simulation from the start says.
    w.control(seek=451)
    pb.tick()
    (u,) = w.pump()
    sim = Replayer(pb.replay, get_ruleset("arena"))
    while sim.tick < 451:
        sim.step()
    assert u.checksum == Snapshot.capture(sim.world).checksum


def test_after_a_seek_deltas_resume_against_acks_from_the_new_position(pb: Playback) -> None:
    w = Watcher(pb)
    for _ in range(10):
        pb.tick()
        w.pump()
    stale = w.tick
    assert stale is not None
    w.control(seek=500)
    pb.tick()
    w.pump(ack=False)
    w.send(Ack(stale))  # an ack of a tick from before the seek, still in flight: ignored, not an error
    w.send(Ack(500))
    pb.tick()
    (u,) = w.pump()
    assert u.base == 500 and u.tick == 501
    w.control(seek=100)  # backwards: acks of ticks above 100 from before are ignored too
    w.send(Ack(501))
    pb.tick()
    (u,) = w.pump()
    assert u.base is None and u.tick == 100


def test_seeks_are_clamped_to_the_replay_and_the_end_pauses(pb: Playback) -> None:
    w = Watcher(pb)
    w.control(seek=10**6)
    pb.tick()
    w.pump()
    assert pb.sim.tick == 660 and pb.paused and w.status is not None and w.status["paused"]
    w.control(pause=False)  # at the end, play starts over
    pb.tick()
    assert [u.tick for u in w.pump()] == [0]
    pb.tick()
    assert [u.tick for u in w.pump()] == [1]


def test_a_resync_gets_a_keyframe_even_while_paused(pb: Playback) -> None:
    w = Watcher(pb)
    pb.tick()
    w.pump()
    w.control(pause=True)
    pb.tick()
    w.pump()
    w.send(Resync())
    pb.tick()
    (u,) = w.pump()
    assert u.base is None and u.tick == 1


def test_two_viewers_share_one_playback(pb: Playback) -> None:
    a, b = Watcher(pb, "a"), Watcher(pb, "b")
    pb.tick()
    a.pump(), b.pump()
    a.control(seek=300)
    pb.tick()
    assert a.pump()[0].tick == b.pump()[0].tick == 300
    assert a.viewer.player != b.viewer.player


def test_pings_are_answered_with_the_playback_tick(pb: Playback) -> None:
    w = Watcher(pb)
    pb.tick()
    w.client.take()
    w.send(Ping(7, 1.5))
    (pong,) = w.client.take()
    assert isinstance(pong, Pong) and pong.id == 7 and pong.tick == 1


@pytest.mark.parametrize("fields, error", [
    ({"speed": 9}, InvalidField), ({"speed": 0.1}, InvalidField), ({"speed": True}, InvalidField),
    ({"seek": -1}, InvalidField), ({"seek": 1.5}, InvalidField), ({"pause": 1}, InvalidField),
    ({"rewind": True}, InvalidField),
])
def test_bad_controls_are_invalid_fields(fields: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        decode_control(msgpack.packb({"t": "control", **fields}))


def test_controls_decode_and_other_messages_pass_through() -> None:
    assert decode_control(msgpack.packb({"t": "control", "pause": True, "speed": 2, "seek": 30})) == Control(True, 2.0, 30)
    assert decode_control(encode_client(Ack(3))) is None
    assert decode_control(b"\xc1") is None


def test_a_control_before_hello_is_a_policy_violation(pb: Playback) -> None:
    session = pb.new_session()
    with pytest.raises(PolicyViolation):
        pb.receive(None, session, msgpack.packb({"t": "control", "pause": True}), 0.0)


def test_a_replay_of_an_unknown_ruleset_cannot_be_loaded(tmp_path: Path, replay_path: Path) -> None:
    data = replay_path.read_bytes().replace(b"\xa5arena", b"\xa5xxxxx", 1)
    from server.replayfile import PREAMBLE, frame
    from tests.replay.helpers import frames_of

    fixed = data[: PREAMBLE.size] + b"".join(frame(p) for _, p in frames_of(data))
    (tmp_path / "x.replay").write_bytes(fixed)
    assert parse_replay(fixed).header.ruleset == "xxxxx"
    with pytest.raises(UnknownRuleset, match="xxxxx"):
        load_playback(tmp_path / "x.replay")

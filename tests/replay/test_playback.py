"""The playback core: a replay served to spectators through the live protocol, with pause, speed and seek.

Each viewer here is what the shell makes of a connection: the playback's
session (``new_session``, the protocol's one session table) decodes every
frame, and the playback gets the hello (``connect``) and every later message
(``on_message``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from game.rules import get_ruleset
from server.protocol.codec import decode_server, encode_client, encode_server
from server.protocol.delta import Snapshot, WireSchema, apply_body
from server.protocol.errors import MalformedMessage, PolicyViolation
from server.protocol.messages import (
    Ack,
    ClientMessage,
    Control,
    Error,
    Hello,
    Input,
    Ping,
    Pong,
    ReplayInfo,
    ReplayStatus,
    Resync,
    Roster,
    RosterDelta,
    Update,
    Welcome,
)
from server.protocol.roster import RosterMirror
from server.replay.format import PREAMBLE, UnknownRuleset, frame, parse_replay
from server.replay.listing import ReplayLibrary
from server.replay.playback import Playback, Viewer
from server.replay.resim import Replayer
from tests.replay.helpers import edit_keyframe, edit_tick, record_match


def load_playback(path: Path) -> Playback:
    """The playback of the replay at ``path``, as a server loads it."""
    loaded = ReplayLibrary(path.parent).load(path.name)
    return Playback(loaded.name, loaded.replay, loaded.ruleset)


class FakeClient:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    def send(self, data: bytes) -> None:
        self.frames.append(data)

    def send_many(self, frames: Sequence[bytes]) -> None:
        for data in frames:
            self.send(data)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def tell_and_close(self, code: int, reason: str) -> None:
        self.send(encode_server(Error(code, reason)))
        self.close(code, reason)

    def take(self) -> list[Any]:
        out = [decode_server(f) for f in self.frames]
        self.frames.clear()
        return out


class Watcher:
    """A viewer as the shell connects it, and its mirror: applies updates like a client, acks them.

    Its messages are a tenth of a second apart, well within the rate limit.
    """

    def __init__(self, pb: Playback, name: str = "eve", *, roster_deltas: bool = False) -> None:
        self.pb = pb
        self.client = FakeClient()
        self.session = pb.new_session()
        self.now = 0.0
        hello = self.session.receive(encode_client(Hello(1, name, True, roster_deltas=roster_deltas)), self.now,
                                     pb.tick_count)
        assert isinstance(hello, Hello)
        self.viewer: Viewer = pb.connect(hello, self.session, self.client, self.now)
        self.schema: WireSchema | None = None
        self.states: dict[int, Snapshot] = {}
        self.tick: int | None = None
        self.keyframes = 0
        self.status: ReplayStatus | None = None
        self.info: ReplayInfo | None = None
        self.roster: Roster | None = None
        self.rosters = RosterMirror()
        self.roster_frames: list[Roster | RosterDelta] = []

    def send(self, msg: ClientMessage) -> None:
        self.now += 0.1
        got = self.session.receive(encode_client(msg), self.now, self.pb.tick_count)
        if got is not None:
            self.pb.on_message(self.viewer, got)

    def control(self, **kw: Any) -> None:
        self.send(Control(**kw))

    def pump(self, ack: bool = True) -> list[Update]:
        updates = []
        for m in self.client.take():
            if isinstance(m, Welcome):
                self.schema = WireSchema.from_wire(m.ruleset)
            elif isinstance(m, (Roster, RosterDelta)):
                self.roster_frames.append(m)
                assert self.rosters.apply(m)
                self.roster = self.rosters.roster
            elif isinstance(m, ReplayStatus):
                self.status = m
            elif isinstance(m, ReplayInfo):
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
    assert [type(m) for m in msgs] == [Welcome, ReplayInfo, Roster, ReplayStatus, Update]
    welcome, info, _, status, update = msgs
    assert welcome.entity is None and welcome.ruleset["name"] == "arena" and welcome.tick_rate == 30
    assert info.first == 0 and info.last == 660 and info.complete is True and info.name == pb.name
    assert info.keyframes == (300, 600) and (0, 0) not in info.checkpoints
    assert [t for t, _ in info.checkpoints] == list(range(30, 661, 30))
    assert status == ReplayStatus(tick=1, first=0, last=660, paused=False, speed=1.0)
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


def test_a_viewer_taking_roster_deltas_holds_the_roster_of_a_viewer_taking_whole_ones(pb: Playback) -> None:
    deltas, whole = Watcher(pb, "d", roster_deltas=True), Watcher(pb, "w")
    for _ in range(270):  # past the leave at 250 and the join after it
        pb.tick()
        deltas.pump(), whole.pump()
    assert deltas.roster == whole.roster == pb.roster()
    assert [p.name for p in pb.roster().players] == ["p2", "p3", "p3"]  # the third joiner took the name again
    changes = len(whole.roster_frames)
    assert [type(m) for m in deltas.roster_frames] == [Roster] + [RosterDelta] * (changes - 1)
    for w in (deltas, whole):
        w.control(seek=100)  # back before the leave
    pb.tick()
    deltas.pump(), whole.pump()
    assert deltas.roster == whole.roster == pb.roster()
    assert [p.name for p in pb.roster().players] == ["p1", "p2", "p3"]
    assert type(deltas.roster_frames[-1]) is RosterDelta and len(whole.roster_frames) == changes + 1


def test_pause_stops_the_updates_and_play_resumes_them(pb: Playback) -> None:
    w = Watcher(pb)
    for _ in range(5):
        pb.tick()
        w.pump()
    w.control(pause=True)
    pb.tick()
    w.pump()
    assert w.status is not None and w.status.paused is True
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
    assert w.status is not None and w.status.speed == speed


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
    assert pb.sim.tick == 660 and pb.paused and w.status is not None and w.status.paused
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


def test_a_control_before_hello_is_a_protocol_error(pb: Playback) -> None:
    session = pb.new_session()  # a viewer's: its state table has no control before the hello
    with pytest.raises(MalformedMessage, match="control is not allowed in state viewer handshake") as info:
        session.receive(encode_client(Control(pause=True)), 0.0, pb.tick_count)
    assert info.value.code == 1002


def test_a_viewer_cannot_send_input(pb: Playback) -> None:
    w = Watcher(pb)
    with pytest.raises(MalformedMessage, match="input is not allowed in state watching"):
        w.send(Input(1, (0, 0)))


def test_a_replay_of_an_unknown_ruleset_cannot_be_loaded(tmp_path: Path, replay_path: Path) -> None:
    data = replay_path.read_bytes().replace(b"\xa5arena", b"\xa5xxxxx", 1)
    from tests.replay.helpers import frames_of

    fixed = data[: PREAMBLE.size] + b"".join(frame(p) for _, p in frames_of(data))
    (tmp_path / "x.replay").write_bytes(fixed)
    assert parse_replay(fixed).header.ruleset == "xxxxx"
    with pytest.raises(UnknownRuleset, match="xxxxx"):
        load_playback(tmp_path / "x.replay")


def _broken(tmp_path: Path, replay_path: Path, data: bytes) -> Playback:
    path = tmp_path / "broken.replay"
    path.write_bytes(data)
    return load_playback(path)


def _assert_failed_with_1008(pb: Playback, w: Watcher, reason: str) -> None:
    errors = [m for m in w.client.take() if isinstance(m, Error)]
    assert len(errors) == 1 and errors[0].code == 1008 and reason in errors[0].reason
    assert w.client.closed is not None and w.client.closed[0] == 1008 and reason in w.client.closed[1]
    assert pb.failed is not None and reason in pb.failed and pb.viewers == {}


def test_a_replay_that_fails_re_simulation_closes_its_viewers_with_an_error_and_1008(tmp_path: Path, replay_path: Path) -> None:
    # Tick 20's input change has a field entry with too few values: valid frames, but it cannot be applied.
    pb = _broken(tmp_path, replay_path, edit_tick(replay_path.read_bytes(), 20, [1, 20, [], [], [0, [1, b""], [[0, None, b"\x01"]]]]))
    a, b = Watcher(pb, "a"), Watcher(pb, "b")
    for _ in range(19):
        pb.tick()
        a.pump(), b.pump()
    assert pb.failed is None and pb.sim.tick == 19
    pb.tick()  # raises nothing
    for w in (a, b):
        _assert_failed_with_1008(pb, w, "tick 20")
    pb.tick()  # a dead playback stays quiet
    assert a.client.frames == [] and pb.sim.tick == 19 and pb.finished
    with pytest.raises(PolicyViolation, match="tick 20") as info:  # one connecting while it was failing
        Watcher(pb, "late")
    assert info.value.code == 1008


def test_a_corrupt_keyframe_met_on_a_seek_closes_the_viewers_with_an_error_and_1008(tmp_path: Path, replay_path: Path) -> None:
    pb = _broken(tmp_path, replay_path, edit_keyframe(replay_path.read_bytes(), 300, body=zlib.compress(b"\x00" * 10)))
    w = Watcher(pb)
    pb.tick()
    w.pump()
    w.control(seek=450)
    pb.tick()
    _assert_failed_with_1008(pb, w, "keyframe at tick 300")


def test_seeks_between_two_ticks_are_coalesced_into_the_last_one(pb: Playback) -> None:
    w = Watcher(pb)
    pb.tick()
    w.pump()
    for target in range(400, 460):  # two seconds' worth of controls, all before the next tick
        w.control(seek=target)
    assert pb.seeks == 0 and pb.sim.tick == 1  # nothing re-simulated yet
    pb.tick()
    (u,) = w.pump()
    assert pb.seeks == 1 and u.tick == 459 and u.base is None
    w.control(seek=30, pause=True)
    w.control(seek=600)
    pb.tick()
    (u,) = w.pump()
    assert pb.seeks == 2 and u.tick == 600 and pb.paused


def test_a_playback_is_idle_from_the_tick_after_its_last_viewer_left(pb: Playback) -> None:
    pb.tick(1.0)
    assert pb.idle_since == 1.0  # loaded, and nobody came yet
    w = Watcher(pb)
    assert pb.idle_since is None
    pb.tick(2.0)
    pb.disconnect(w.viewer, w.client, 2.5)
    pb.tick(3.0)
    pb.tick(4.0)
    assert pb.idle_since == 3.0 and pb.viewers == {} and not pb.finished

"""The recorder: a match observer that streams a replay without blocking the tick."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest

from game.rules import get_ruleset
from server.match import Match
from server.replay.format import parse_replay
from server.replay.listing import read_header
from server.replay.recorder import Recorder, default_match_id, open_new
from server.replay.resim import Replayer
from tests.replay.helpers import NullClient, record_match


@pytest.mark.parametrize("name", ["drift", "arena"])
def test_a_recorded_match_replays_to_the_very_state_the_match_ended_in(tmp_path: Path, name: str) -> None:
    path, match, rec = record_match(tmp_path, name, ticks=320, players=3, leave_at=150)
    r = parse_replay(path.read_bytes())
    assert r.complete and r.last_tick == 320 == match.world.tick
    assert r.end is not None and r.end.hash == match.state_hash() == rec.final_hash
    assert r.end.scores == match.ruleset.scores(match.world)
    assert r.end.checksum == match.snapshot.checksum
    assert [c.tick for c in r.checkpoints] == list(range(30, 321, 30))
    assert [k.tick for k in r.keyframes] == [300]
    assert any(t.leaves for t in r.ticks) and len(r.players()) == 4  # one left, another took its place
    sim = Replayer(r, get_ruleset(name))
    cps = {c.tick: c for c in r.checkpoints}
    while sim.tick < r.last_tick:
        sim.step()
        if sim.tick in cps:
            assert sim.hash() == cps[sim.tick].hash
    assert sim.hash() == r.end.hash


def test_the_header_holds_everything_needed_to_recreate_the_world(tmp_path: Path) -> None:
    path, match, _ = record_match(tmp_path, "drift", ticks=5, players=1, options={"npcs": 33}, seed=42)
    h = read_header(path)
    assert (h.ruleset, h.ruleset_version, h.seed, h.options["npcs"], h.tick_rate) == ("drift", 1, 42, 33, 30)
    assert h.options == match.options  # every option, resolved
    assert h.match == match.match_id and h.start_time.endswith("Z") and h.start_tick == 0
    assert h.inputs == (("dx", -1, 1), ("dy", -1, 1))
    assert ("player", "int32", None) in h.columns


def test_the_writer_flushes_on_its_own_while_the_match_runs(tmp_path: Path) -> None:
    match = Match(get_ruleset("drift"), match_id="live", options={"npcs": 20})
    rec = Recorder.create(match, tmp_path, flush_interval=0.05)
    match.observers.append(rec)
    for t in range(40):
        match.tick(float(t))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = parse_replay((tmp_path / "live.replay").read_bytes())
        if r.last_tick == 40:
            break
        time.sleep(0.02)
    assert r.last_tick == 40 and r.end is None  # all there, though the match is not over
    assert "no end record" in r.warnings()[0]
    match.close()
    assert parse_replay((tmp_path / "live.replay").read_bytes()).complete


def test_the_tick_only_appends_to_memory(tmp_path: Path) -> None:
    class SlowFile(io.BytesIO):
        def write(self, data: Any) -> int:
            time.sleep(0.5)  # a disk that takes half a second per write
            return super().write(data)

    match = Match(get_ruleset("drift"), match_id="slow", options={"npcs": 50})
    rec = Recorder(match, SlowFile(), flush_interval=0.01)
    match.observers.append(rec)
    t0 = time.perf_counter()
    for t in range(60):
        match.tick(float(t))
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.5, "a tick waited for the disk"
    assert rec.ticks == 60 and rec.mean_tick_us < 2000
    rec.close()


def test_a_failing_disk_stops_the_recording_not_the_match(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class FullDisk(io.BytesIO):
        def write(self, data: Any) -> int:
            if self.tell():
                raise OSError(28, "No space left on device")
            return super().write(data)  # the header fits

    match = Match(get_ruleset("drift"), match_id="full", options={"npcs": 20})
    rec = Recorder(match, FullDisk(), flush_interval=0.01)
    match.observers.append(rec)
    for t in range(10):
        match.tick(float(t))
    deadline = time.monotonic() + 5
    while rec.failed is None and time.monotonic() < deadline:
        time.sleep(0.01)
    for t in range(10, 20):
        match.tick(float(t))  # still ticking
    match.close()
    assert rec.failed is not None and "No space left" in rec.failed
    assert match.world.tick == 20
    assert any("recording stopped" in m for m in caplog.messages)


def test_a_recorder_attached_mid_match_starts_with_a_keyframe(tmp_path: Path) -> None:
    match = Match(get_ruleset("arena"), match_id="late", seed=3, options={"npcs": 8, "pellets": 10}, hold_s=0.0)
    session = match.new_session()
    from server.protocol.codec import encode_client
    from server.protocol.messages import Hello

    hello = session.receive(encode_client(Hello(1, "early")), 0.0, 0)
    assert isinstance(hello, Hello)
    match.connect(hello, session, NullClient(), 0.0)
    for t in range(45):
        match.tick(float(t))
    rec = Recorder.create(match, tmp_path)
    match.observers.append(rec)
    for t in range(45, 120):
        match.tick(float(t))
    match.close()
    r = parse_replay((tmp_path / "late.replay").read_bytes())
    assert r.header.start_tick == 45 and r.keyframes[0].tick == 45 and r.ticks[0].tick == 46
    sim = Replayer(r, get_ruleset("arena"))
    assert sim.players == {1: ("early", match.members[1].entity)}  # type: ignore[index]
    assert r.players() == {1: "early"}  # from the start keyframe: "early" joined before the recording
    sim.seek(r.last_tick)
    assert sim.hash() == r.end.hash == match.state_hash()  # type: ignore[union-attr]


def test_more_header_keys_and_end_keys_are_written_and_read_back(tmp_path: Path) -> None:
    match = Match(get_ruleset("drift"), match_id="moved", options={"npcs": 5})
    rec = Recorder.create(match, tmp_path, extra={"previous": {"node": "a", "replay": "m.replay", "tick": 0}})
    match.observers.append(rec)
    match.tick(0.0)
    rec.end_extra = {"handed_over": {"node": "b", "url": "ws://b/ws/moved", "replay": None, "tick": 1}}
    match.close()
    r = parse_replay((tmp_path / "moved.replay").read_bytes())
    assert r.header.extra == {"writer": "tickserver", "previous": {"node": "a", "replay": "m.replay", "tick": 0}}
    assert r.end is not None and r.end.extra == {"handed_over": {"node": "b", "url": "ws://b/ws/moved", "replay": None,
                                                                 "tick": 1}}


def test_new_replays_never_overwrite_old_ones(tmp_path: Path) -> None:
    paths = []
    for _ in range(3):
        path, f = open_new(tmp_path, "same")
        f.close()
        paths.append(path.name)
    assert paths == ["same.replay", "same-2.replay", "same-3.replay"]


def test_default_match_ids_name_the_ruleset_the_utc_time_the_node_and_the_seed() -> None:
    assert default_match_id("drift", 7, 1738324800.5, "1f0c9a2b") == "drift-20250131T120000.500Z-1f0c9a2b-7"

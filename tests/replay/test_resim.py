"""Re-simulation and the verify engine: seeking, the ruleset check, and ``verify`` in one process or several."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import attrs
import pytest

from game.rules import get_ruleset
from server.replay.format import CorruptReplay, Replay, ReplayUsageError, UnknownRuleset, parse_replay
from server.replay.resim import Replayer, Verification, check_segment, default_jobs, ruleset_for, segments, verify
from tests.replay.helpers import edit_keyframe, edit_records, record_match, tamper_input

DRIFT = get_ruleset("drift")


@pytest.fixture(scope="module")
def pieces(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """An arena replay in four keyframe-to-keyframe pieces: 0..100, 100..200, 200..300, 300..350."""
    path, _, _ = record_match(tmp_path_factory.mktemp("pieces"), "arena", ticks=350, players=3, leave_at=150,
                              keyframe_every=100, change=0.3)
    return path.read_bytes()


@pytest.mark.parametrize("name", ["drift", "arena"])
def test_seeking_anywhere_gives_the_state_stepping_from_the_start_gives(tmp_path: Path, name: str) -> None:
    path, match, _ = record_match(tmp_path, name, ticks=650, players=3, leave_at=320, keyframe_every=100)
    r = parse_replay(path.read_bytes())
    assert [k.tick for k in r.keyframes] == [100, 200, 300, 400, 500, 600]
    linear = Replayer(r, get_ruleset(name))
    hashes = {}
    while linear.tick < r.last_tick:
        linear.step()
        hashes[linear.tick] = linear.hash()
    assert hashes[r.last_tick] == match.state_hash() == r.end.hash  # type: ignore[union-attr]
    seeker = Replayer(r, get_ruleset(name))
    for target in (450, 120, 600, 599, 0, 333, 650, 301):
        seeker.seek(target)
        assert seeker.tick == target
        assert target == 0 or seeker.hash() == hashes[target]
    with pytest.raises(ReplayUsageError):
        seeker.seek(651)


def test_replaying_with_another_ruleset_version_is_refused(recorded: bytes) -> None:
    r = parse_replay(recorded)
    r.header = attrs.evolve(r.header, ruleset_version=r.header.ruleset_version + 1)
    with pytest.raises(UnknownRuleset, match="version"):
        Replayer(r, DRIFT)
    with pytest.raises(UnknownRuleset):
        Replayer(parse_replay(recorded), get_ruleset("arena"))


def test_the_ruleset_for_a_replay_is_the_recorded_one_or_an_unknown_ruleset(recorded: bytes) -> None:
    r = parse_replay(recorded)
    assert ruleset_for(r.header).spec.name == "drift"
    with pytest.raises(UnknownRuleset, match="cannot replay ruleset 'chess' version 1: this build knows"):
        ruleset_for(attrs.evolve(r.header, ruleset="chess"))


def test_the_ruleset_for_a_replay_may_be_given_by_reference_and_must_be_the_one_it_names(recorded: bytes) -> None:
    header = parse_replay(recorded).header
    assert ruleset_for(header, "game.drift:DriftRuleset").spec.name == "drift"
    with pytest.raises(UnknownRuleset, match="the replay is of ruleset 'drift', but 'arena' is ruleset 'arena'"):
        ruleset_for(header, "arena")
    with pytest.raises(UnknownRuleset, match=r"for a ruleset of your own, name it: --ruleset package.module:Attr"):
        ruleset_for(attrs.evolve(header, ruleset="chess"))


# -- verify -----------------------------------------------------------------------------------


def test_a_replay_is_cut_into_pieces_at_its_keyframes_for_several_jobs(pieces: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    r = parse_replay(pieces)
    assert segments(r, 1) == [(0, 350)]
    assert segments(r, 3) == [(0, 100), (100, 200), (200, 300), (300, 350)]
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert default_jobs(r) == 2
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert default_jobs(r) == 4


def test_a_piece_re_simulated_from_its_keyframe_ends_where_the_whole_replay_does(pieces: bytes) -> None:
    r = parse_replay(pieces)
    whole = check_segment(r, 0, 350)
    last = check_segment(r, 300, 350)
    assert whole.divergence is None and last.divergence is None
    assert last.final_hash == whole.final_hash == r.end.hash and last.scores == whole.scores == r.end.scores  # type: ignore[union-attr]
    assert (whole.checkpoints_checked, whole.keyframes_checked) == (11, 3)
    assert check_segment(r, 100, 200).final_hash is None  # not the last tick


@pytest.mark.parametrize("jobs", [1, 3])
def test_verify_passes_a_faithful_replay_and_reports_progress_tick_by_tick_or_piece_by_piece(pieces: bytes, jobs: int) -> None:
    r = parse_replay(pieces)
    done: list[int] = []
    v = verify(r, jobs=jobs, progress=done.append)
    assert isinstance(v, Verification) and v.ok and v.jobs == jobs
    assert (v.checkpoints_checked, v.checkpoints, v.keyframes_checked) == (11, 11, 3)
    assert v.final_match and v.scores_match and v.final_hash == v.final_hash_recorded == r.end.hash  # type: ignore[union-attr]
    assert (v.diverged_at, v.reason, v.last_good, v.complete, v.truncated, v.warnings) == (None, None, 330, True, False, ())
    assert sum(done) == 350 and len(done) == (350 if jobs == 1 else 4)


@pytest.mark.parametrize("jobs", [1, 3])
def test_verify_names_the_first_diverging_checkpoint_and_the_last_good_one(pieces: bytes, jobs: int) -> None:
    data, tick = tamper_input(pieces, 120)
    v = verify(parse_replay(data), jobs=jobs)
    first_checkpoint = -(-tick // 30) * 30
    assert not v.ok and v.diverged_at == first_checkpoint and v.last_good == first_checkpoint - 30
    assert v.reason == "checkpoint state_hash differs" and v.expected != v.got
    assert v.final_hash is None and v.final_match is None and v.scores_match is None


def test_verify_compares_the_final_state_with_the_end_record(pieces: bytes) -> None:
    def wrong_end(rec: list[Any]) -> list[Any] | None:
        return [4, {**rec[1], "hash": b"\0" * 16}] if rec[0] == 4 else None

    v = verify(parse_replay(edit_records(pieces, wrong_end)))
    assert not v.ok and v.diverged_at == 350 and v.reason == "final state_hash differs from the end record"
    assert v.expected == "00" * 16 and v.final_match is False and v.checkpoints_checked == 11


def test_verify_result_is_replay_md_s_json_object_in_its_order(pieces: bytes) -> None:
    d = verify(parse_replay(pieces)).as_dict()
    assert list(d) == ["ok", "ruleset", "first_tick", "last_tick", "ticks", "jobs", "checkpoints", "checkpoints_checked",
                       "keyframes_checked", "diverged_at", "last_good", "reason", "expected", "got", "final_hash",
                       "final_hash_recorded", "final_match", "scores_match", "complete", "truncated", "warnings",
                       "seconds", "ticks_per_s", "speedup"]
    assert d["warnings"] == [] and d["speedup"] > 1


@pytest.mark.parametrize("jobs", [1, 3])
def test_a_corrupt_keyframe_found_by_a_worker_is_raised_in_the_caller_as_itself(pieces: bytes, jobs: int) -> None:
    r: Replay = parse_replay(edit_keyframe(pieces, 200, body=zlib.compress(b"\xc1")))
    with pytest.raises(CorruptReplay) as info:
        verify(r, jobs=jobs)
    assert info.value.offset == r.keyframes[1].offset and "keyframe at tick 200" in info.value.reason


def test_verify_refuses_an_unknown_ruleset_before_re_simulating(recorded: bytes) -> None:
    r = parse_replay(recorded)
    r.header = attrs.evolve(r.header, ruleset="chess")
    done: list[int] = []
    with pytest.raises(UnknownRuleset):
        verify(r, jobs=2, progress=done.append)
    assert done == []


# -- lag compensation and the lag column -----------------------------------------------------


def test_a_replay_of_lag_compensated_hits_verifies_and_records_each_lag(tmp_path: Path) -> None:
    from game.arena import spec as S
    from server.match import Match
    from server.protocol.codec import encode_client
    from server.protocol.messages import Hello, Input
    from server.replay.recorder import Recorder
    from tests.replay.helpers import NullClient

    U = S.SCALE
    match = Match(get_ruleset("arena"), match_id="lagged", seed=3, options={"npcs": 0, "pellets": 0})
    members = []
    for name in ("shooter", "target"):
        session = match.new_session()
        hello = session.receive(encode_client(Hello(1, name)), 0.0, 0)
        members.append(match.connect(hello, session, NullClient(), 0.0))  # type: ignore[arg-type]
    for _ in range(20):
        match.tick(0.0)
    world = match.world
    # The target walks down across the shooter's line of fire and crosses it 8 ticks before the bullet gets there.
    for m, (x, y) in zip(members, ((1000 * U, 1000 * U), (1300 * U, (1000 - 6 * 11) * U))):
        slot = world.slots_of([m.entity])[0]
        world.cols["x"][slot], world.cols["y"][slot], world.cols["shield"][slot] = x, y, 0
        world.cols["born"][slot] = world.tick
    rec = Recorder.create(match, tmp_path)  # from here: a keyframe of the placed bodies first
    match.observers.append(rec)
    shooter, target = members
    for seq in range(1, 26):
        view = match.tick_count + 1 - 8  # the shooter saw the world 8 ticks before the tick applying its input
        for m, values in ((shooter, (0, 0, 0, int(seq == 1))), (target, (0, 1, 0, 0))):
            msg = m.session.receive(encode_client(Input(seq, values, view=view)), 0.0, match.tick_count)
            match.on_message(m, msg)
        match.tick(0.0)
    hp = int(world.cols["hp"][world.slots_of([target.entity])[0]])
    match.close()
    assert hp == S.PLAYER_HP - S.BULLET_DAMAGE  # hit where the shooter saw the target, not where it was
    assert rec.path is not None
    replay = parse_replay(rec.path.read_bytes())
    assert replay.header.lag_max == 8
    sim = Replayer(replay, get_ruleset("arena"))
    batch, _ = sim.step()
    assert batch.lag.tolist() == [8, 8]
    result = verify(replay)
    assert result.ok and result.complete and result.final_match


def test_a_format_1_replay_without_a_lag_column_still_reads_and_verifies() -> None:
    import numpy as np

    from game.rules import InputBatch
    from game.world import PlayerId, state_hash
    from server.protocol.delta import Snapshot
    from server.replay.format import EndRecord, Header, ReplayEncoder, pack_record, preamble

    options = {"npcs": 20}
    h = Header.for_spec(DRIFT.spec, match="old", seed=3, options=options, tick_rate=30,
                        start_time="2025-01-01T00:00:00.000Z")
    assert h.lag_max is None
    enc = ReplayEncoder(h)
    data = preamble(1) + pack_record(h.to_record())  # what a version-1 writer wrote
    world = DRIFT.create(3, options)
    for t in range(1, 61):
        joins = [(1, "old")] if t == 1 else []
        if joins:
            DRIFT.join(world, PlayerId(1))
        batch = InputBatch(np.array([1], np.int32), np.array([[t // 10 % 3 - 1, 1]], np.int16))
        data += enc.step(t, [], joins, batch)
        DRIFT.step(world, batch)
        if t % 30 == 0:
            data += enc.checkpoint(t, state_hash(world), Snapshot.capture(world).checksum)
    data += enc.end(EndRecord(60, state_hash(world), Snapshot.capture(world).checksum, DRIFT.scores(world)))
    replay = parse_replay(data)
    assert replay.version == 1 and replay.header.lag_max is None
    result = verify(replay)
    assert result.ok and result.complete and result.checkpoints_checked == 2

"""The replay file format, sans I/O: frames, records, the encoder and the parser, keyframes, the error tree."""

from __future__ import annotations

import pickle
import struct
import zlib

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from game.rules import InputBatch, get_ruleset
from game.world import state_hash
from server.replay.format import (
    FORMAT_VERSION,
    MAGIC,
    MAX_FRAME,
    PREAMBLE,
    BadReplay,
    CorruptReplay,
    EndRecord,
    Header,
    KeyframeData,
    NoSuchReplay,
    NotAReplay,
    ReplayEncoder,
    ReplayError,
    ReplayUsageError,
    TruncatedReplay,
    UnknownRuleset,
    UnsupportedFormat,
    frame,
    pack_record,
    parse_replay,
    preamble,
    utc_iso,
)
from server.replay.inputs import InputTrack, apply_inputs
from tests.replay.helpers import batch, drift_header, frames_of


# -- frames and records ------------------------------------------------------------


def test_a_replay_starts_with_the_magic_and_the_format_version() -> None:
    enc = ReplayEncoder(drift_header())
    data = enc.start()
    assert data[:8] == MAGIC == b"TICKRPLY"
    assert struct.unpack_from("<I", data, 8)[0] == FORMAT_VERSION
    length, crc = struct.unpack_from("<II", data, PREAMBLE.size)
    payload = data[PREAMBLE.size + 8 :]
    assert length == len(payload) and crc == zlib.crc32(payload)
    assert msgpack.unpackb(payload)[0] == 0


def test_records_round_trip_through_the_parser() -> None:
    h = drift_header(extra={"writer": "test"})
    enc = ReplayEncoder(h)
    data = enc.start()
    data += enc.step(1, [], [(1, "ann"), (2, "bob")], batch([1, 2], [[0, 0], [1, -1]]))
    data += enc.step(2, [], [], batch([1, 2], [[0, 0], [1, -1]]))
    data += enc.checkpoint(2, "ab" * 16, 12345)
    data += enc.step(3, [1], [(3, "cy")], batch([2, 3], [[1, 1], [0, 0]]))
    data += enc.end(EndRecord(3, "cd" * 16, 99, {2: 5, 3: 0}, "2025-01-01T00:01:00.000Z"))
    r = parse_replay(data)
    assert r.header == h
    assert [t.tick for t in r.ticks] == [1, 2, 3]
    assert r.ticks[0].joins == ((1, "ann"), (2, "bob")) and r.ticks[2].leaves == (1,)
    assert r.ticks[1].inputs is None  # nothing changed: the record is just [1, 2]
    assert r.checkpoints[0].hash == "ab" * 16 and r.checkpoints[0].checksum == 12345
    assert r.end is not None and r.end.scores == {2: 5, 3: 0} and r.end.tick == 3
    assert r.complete and r.warnings() == [] and r.players() == {1: "ann", 2: "bob", 3: "cy"}
    track = InputTrack(2)
    for t in r.ticks:
        track.membership(t.leaves, t.joins)
        apply_inputs(h.input_dtypes, track, t.inputs)
    assert track.players.tolist() == [2, 3] and track.values.tolist() == [[1, 1], [0, 0]]


def test_a_tick_where_nothing_changed_costs_a_dozen_bytes() -> None:
    enc = ReplayEncoder(drift_header())
    enc.start()
    enc.step(1, [], [(1, "ann")], batch([1], [[1, 0]]))
    assert len(enc.step(2, [], [], batch([1], [[1, 0]]))) <= 13


def test_the_encoder_refuses_ticks_out_of_order() -> None:
    enc = ReplayEncoder(drift_header())
    enc.step(1, [], [], InputBatch.empty(2))
    with pytest.raises(ReplayUsageError):
        enc.step(3, [], [], InputBatch.empty(2))


# -- damage ----------------------------------------------------------------------------


def test_a_file_with_the_wrong_magic_is_not_a_replay() -> None:
    with pytest.raises(NotAReplay):
        parse_replay(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(NotAReplay):
        parse_replay(b"")
    with pytest.raises(NotAReplay):
        parse_replay(b"TICX")


def test_a_short_prefix_of_the_magic_is_a_truncated_replay() -> None:
    with pytest.raises(TruncatedReplay):
        parse_replay(MAGIC[:5])


def test_a_newer_format_version_is_refused_with_both_versions_named() -> None:
    data = bytearray(ReplayEncoder(drift_header()).start())
    struct.pack_into("<I", data, 8, FORMAT_VERSION + 1)
    with pytest.raises(UnsupportedFormat) as e:
        parse_replay(bytes(data))
    assert f"version {FORMAT_VERSION + 1}" in str(e.value) and e.value.supported == FORMAT_VERSION


def test_a_frame_with_a_bad_crc_is_corrupt_and_says_where(recorded: bytes) -> None:
    offset, payload = frames_of(recorded)[50]
    data = bytearray(recorded)
    data[offset + 8 + len(payload) // 2] ^= 0x40
    with pytest.raises(CorruptReplay) as e:
        parse_replay(bytes(data))
    assert e.value.offset == offset and "CRC" in str(e.value)


def test_an_impossible_frame_length_is_corrupt(recorded: bytes) -> None:
    offset, _ = frames_of(recorded)[10]
    data = bytearray(recorded)
    struct.pack_into("<I", data, offset, MAX_FRAME + 1)
    with pytest.raises(CorruptReplay, match="length"):
        parse_replay(bytes(data))


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_no_flipped_byte_goes_unnoticed(recorded: bytes, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(recorded) - 1))
    bit = data.draw(st.integers(0, 7))
    damaged = bytearray(recorded)
    damaged[pos] ^= 1 << bit
    try:
        r = parse_replay(bytes(damaged))
    except ReplayError:
        return
    # Only a length field grown past the end of the file can pass, and then as a torn (incomplete) replay.
    assert r.torn is not None and not r.complete


def test_truncation_anywhere_keeps_every_complete_frame(recorded: bytes) -> None:
    full = parse_replay(recorded)
    header_end = PREAMBLE.size + 8 + len(frames_of(recorded)[0][1])
    for cut in list(range(header_end + 40)) + list(range(header_end + 40, len(recorded), 97)):
        data = recorded[:cut]
        if cut < header_end:
            with pytest.raises((TruncatedReplay, NotAReplay)):
                parse_replay(data)
            continue
        r = parse_replay(data)
        assert r.ticks == full.ticks[: len(r.ticks)]
        assert r.checkpoints == full.checkpoints[: len(r.checkpoints)]
        assert not r.complete and r.warnings()
        assert (r.torn is None) == (cut in {off for off, _ in frames_of(recorded)})


def test_records_out_of_order_are_corrupt() -> None:
    enc = ReplayEncoder(drift_header())
    start = enc.start()
    t1 = enc.step(1, [], [], InputBatch.empty(2))
    t2 = enc.step(2, [], [], InputBatch.empty(2))
    with pytest.raises(CorruptReplay, match="tick 2 where tick 1"):
        parse_replay(start + t2 + t1)
    with pytest.raises(CorruptReplay, match="checkpoint"):
        parse_replay(start + t1 + ReplayEncoder.checkpoint(5, "00" * 16, 0))
    end = pack_record([4, {"tick": 1, "hash": b"\0" * 16, "checksum": 0, "scores": []}])
    with pytest.raises(CorruptReplay, match="after the end"):
        parse_replay(start + t1 + end + t2)
    with pytest.raises(CorruptReplay, match="not a header"):
        parse_replay(preamble() + t1)


def test_a_frame_that_is_not_msgpack_is_corrupt() -> None:
    with pytest.raises(CorruptReplay, match="msgpack"):
        parse_replay(ReplayEncoder(drift_header()).start() + frame(b"\xc1\xc1"))


def test_unknown_record_kinds_are_skipped() -> None:
    enc = ReplayEncoder(drift_header())
    data = enc.start() + pack_record([99, "a later addition"]) + enc.step(1, [], [], InputBatch.empty(2))
    assert len(parse_replay(data).ticks) == 1


# -- keyframes ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["drift", "arena"])
def test_a_keyframe_restores_the_world_slot_for_slot_and_it_evolves_the_same(name: str) -> None:
    ruleset = get_ruleset(name)
    world = ruleset.create(11, {"npcs": 30} if name == "drift" else {"npcs": 10, "pellets": 20})
    for p in (1, 2, 3):
        ruleset.join(world, p)  # type: ignore[arg-type]
    ruleset.leave(world, 2)  # type: ignore[arg-type]  # a dead row in the middle
    nf = len(ruleset.spec.inputs)
    rng = np.random.default_rng(1)
    inputs = [InputBatch(np.array([1, 3], np.int32), rng.integers(0, 2, (2, nf)).astype(np.int16)) for _ in range(60)]
    for b in inputs[:30]:
        ruleset.step(world, b)
    h = Header.for_spec(ruleset.spec, match="m", seed=11, options={}, tick_rate=30, start_time="", lag_max=8)
    track = h.new_track()
    track.players = np.array([1, 3], np.int32)
    track.values = np.column_stack([inputs[29].values, [3, 8]]).astype(np.int16)  # the fields, then the lag
    kf = KeyframeData.capture(world, track, [(1, "a", 30), (3, "c", 32)])
    rec = kf.to_record()
    back = KeyframeData.decode(h, rec[1], rec[2])
    twin = back.world(ruleset.spec, 11)
    assert twin.high == world.high and np.array_equal(twin.alive[: twin.high], world.alive[: world.high])
    assert state_hash(twin) == state_hash(world)
    assert back.players == ((1, "a", 30), (3, "c", 32)) and back.inputs.values.tolist() == track.values.tolist()
    for b in inputs[30:]:
        ruleset.step(world, b)
        ruleset.step(twin, b)
    assert state_hash(twin) == state_hash(world)


def test_state_goes_to_the_wire_by_a_wrapping_cast_as_replay_md_says() -> None:
    from server.protocol.delta import Snapshot

    ruleset = get_ruleset("arena")
    world = ruleset.create(1, {"npcs": 2, "pellets": 0})
    slots = world.active()
    world.cols["score"][slots[:2]] = (70000, -1)  # int32 in state, uint16 on the wire
    world.cols["x"][slots[0]] = 40000  # int32 in state, int16 on the wire
    snap = Snapshot.capture(world)
    names = [c.name for c in ruleset.spec.replicated]
    assert snap.cols[names.index("score")][:2].tolist() == [4464, 65535]
    assert snap.cols[names.index("x")][0] == 40000 - 65536


# -- the error tree ----------------------------------------------------------------------------


BAD_FILES = [
    (NotAReplay(), "not a replay file (wrong magic bytes)"),
    (UnsupportedFormat(7), "replay format version 7 is not supported; this reader reads versions 1 to 2"),
    (TruncatedReplay(30), "truncated replay: 30 bytes end before the header is complete"),
    (CorruptReplay(120, "frame CRC mismatch"), "corrupt replay at byte 120: frame CRC mismatch"),
    (CorruptReplay(None, "tick 5: no such player"), "corrupt replay: tick 5: no such player"),
    (UnknownRuleset("chess", 2, "this build knows drift, arena"), "cannot replay ruleset 'chess' version 2: this build knows drift, arena"),
    (NoSuchReplay("x.replay", "no replay 'x.replay' here"), "no replay 'x.replay' here"),
]


@pytest.mark.parametrize("error, text", BAD_FILES)
def test_a_bad_file_is_a_bad_replay_that_formats_its_fields_in_one_line(error: ReplayError, text: str) -> None:
    assert isinstance(error, BadReplay) and not isinstance(error, ReplayUsageError)
    assert str(error) == text


@pytest.mark.parametrize("error, text", [*BAD_FILES, (ReplayUsageError("tick 3 recorded after tick 1"), "tick 3 recorded after tick 1")])
def test_every_replay_error_pickles_with_its_class_and_fields(error: ReplayError, text: str) -> None:
    back = pickle.loads(pickle.dumps(error))  # verify's workers send them back to the parent
    assert type(back) is type(error) and vars(back) == vars(error) and str(back) == text


def test_our_misuse_is_a_usage_error_not_a_bad_replay() -> None:
    enc = ReplayEncoder(drift_header())
    enc.step(1, [], [], InputBatch.empty(2))
    with pytest.raises(ReplayUsageError) as info:
        enc.step(3, [], [], InputBatch.empty(2))
    assert isinstance(info.value, ReplayError) and not isinstance(info.value, BadReplay)
    assert str(info.value) == "tick 3 recorded after tick 1"


def test_every_way_a_file_can_be_bad_raises_a_bad_replay(recorded: bytes) -> None:
    for data in (b"", b"PK\x03\x04", MAGIC[:5], recorded[:40], recorded[:100] + b"\xff" + recorded[101:]):
        with pytest.raises(BadReplay):
            parse_replay(data)


# -- the rest of the format ------------------------------------------------------------------------


def test_times_are_utc_iso_8601_with_milliseconds() -> None:
    assert utc_iso(1738324800.123) == "2025-01-31T12:00:00.123Z"


def test_player_ticks_count_each_players_time_in_the_match() -> None:
    enc = ReplayEncoder(drift_header())
    data = enc.start() + enc.step(1, [], [(1, "a"), (2, "b")], batch([1, 2], [[0, 0], [0, 0]]))
    data += enc.step(2, [], [], batch([1, 2], [[0, 0], [0, 0]])) + enc.step(3, [1], [], batch([2], [[0, 0]]))
    data += enc.step(4, [], [], batch([2], [[0, 0]]))
    assert parse_replay(data).player_ticks() == (3 - 1) + (4 - 1)

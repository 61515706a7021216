"""The benchmark, its lean load generator and the ceiling server."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import msgpack
import pytest

from server.app import default_max_connections
from server.protocol.codec import decode_client, encode_update_prefix, finish_update
from server.protocol.messages import Input
from tests.conftest import ROOT
from tools import bench, ceiling
from tools.brains import drift_brain
from tools.bench import nofile_for
from tools.loadgen import FrameError, FrameReader, input_payload, mask_frame, peek_type, peek_update, walk_step


def server_frame(payload: bytes, opcode: int = 2, fin: bool = True) -> bytes:
    """An unmasked server frame, with the shortest length encoding (as RFC 6455 requires)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = bytes((b0, n))
    elif n < 1 << 16:
        head = bytes((b0, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, 127)) + n.to_bytes(8, "big")
    return head + payload


class Collector:
    def __init__(self) -> None:
        self.frames: list[tuple[int, bool, bytes, int]] = []

    def __call__(self, opcode: int, fin: bool, payload: bytes, length: int) -> None:
        self.frames.append((opcode, fin, bytes(payload), length))


def feed_in_pieces(reader: FrameReader, data: bytes, sizes: list[int]) -> None:
    pos = 0
    i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        reader.feed(data[pos:pos + n])
        pos += n
        i += 1


# -- the frame parser --------------------------------------------------------------


PAYLOADS = [b"", b"a" * 125, b"b" * 126, bytes(range(256)) * 40, b"c" * 65535, b"d" * 65536, b"e" * 70000]


@pytest.mark.parametrize("sizes", [[1], [2, 3], [7, 1, 100], [4096], [10**9]])
def test_frame_reader_gives_whole_frames_of_every_length_fed_in_any_pieces(sizes: list[int]) -> None:
    got = Collector()
    reader = FrameReader(got, full=True)
    stream = b"".join(server_frame(p) for p in PAYLOADS) + server_frame(b"hi", opcode=9)
    feed_in_pieces(reader, stream, sizes)
    assert [(op, fin, p, n) for op, fin, p, n in got.frames] == (
        [(2, True, p, len(p)) for p in PAYLOADS] + [(9, True, b"hi", 2)]
    )


@pytest.mark.parametrize("sizes", [[1], [3, 5], [60, 1000], [10**9]])
def test_frame_reader_peeks_at_large_frames_and_skips_their_rest(sizes: list[int]) -> None:
    got = Collector()
    reader = FrameReader(got, full=False, peek=48)
    stream = b"".join(server_frame(p) for p in PAYLOADS) + server_frame(b"pong", opcode=10)
    feed_in_pieces(reader, stream, sizes)
    assert got.frames == [(2, True, p[:48], len(p)) for p in PAYLOADS] + [(10, True, b"pong", 4)]


def test_frame_reader_uses_16_and_64_bit_lengths_split_inside_the_header() -> None:
    got = Collector()
    reader = FrameReader(got)
    big = server_frame(b"x" * 70000)
    assert big[1] == 127
    reader.feed(big[:1])
    reader.feed(big[1:5])  # in the middle of the 8 length bytes
    reader.feed(big[5:20])
    reader.feed(big[20:])
    mid = server_frame(b"y" * 300)
    assert mid[1] == 126
    reader.feed(mid[:3])
    reader.feed(mid[3:])
    assert [(n, p[:1]) for _, _, p, n in got.frames] == [(70000, b"x"), (300, b"y")]


def test_frame_reader_hands_over_fragments_with_their_fin_bit() -> None:
    got = Collector()
    reader = FrameReader(got)
    reader.feed(server_frame(b"ab", fin=False) + server_frame(b"cd", opcode=0, fin=False) + server_frame(b"e", opcode=0))
    assert got.frames == [(2, False, b"ab", 2), (0, False, b"cd", 2), (0, True, b"e", 1)]


def test_frame_reader_refuses_masked_frames_and_reserved_bits() -> None:
    with pytest.raises(FrameError, match="masked"):
        FrameReader(Collector()).feed(b"\x82\x81abcdx")
    with pytest.raises(FrameError, match="reserved"):
        FrameReader(Collector()).feed(b"\xc2\x01x")


# -- client frames and messages ----------------------------------------------------


def unmask(frame: bytes) -> tuple[int, bytes]:
    assert frame[1] & 0x80
    n = frame[1] & 0x7F
    at = 2
    if n == 126:
        n, at = int.from_bytes(frame[2:4], "big"), 4
    elif n == 127:
        n, at = int.from_bytes(frame[2:10], "big"), 10
    key, data = frame[at:at + 4], frame[at + 4:]
    assert len(data) == n
    return frame[0], bytes(b ^ key[i % 4] for i, b in enumerate(data))


@pytest.mark.parametrize("size", [0, 1, 33, 125, 126, 1000, 65536])
def test_mask_frame_masks_with_the_key_and_the_right_length_encoding(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    b0, data = unmask(mask_frame(2, payload, b"\x01\x80\xfe\x33"))
    assert (b0, data) == (0x82, payload)


def test_input_payload_is_an_input_the_server_accepts() -> None:
    for seq, dx, dy, ack in [(1, -1, 0, 0), (70000, 1, 1, 123456), (2**32 - 1, 0, -1, 2**32 - 1)]:
        payload = input_payload(seq, dx, dy, ack)
        assert len(payload) == 33
        assert msgpack.unpackb(payload) == {"t": "input", "seq": seq, "in": [dx, dy], "ack": ack}
        assert decode_client(payload) == Input(seq, (dx, dy), ack)


@pytest.mark.parametrize("tick", [5, 127, 128, 255, 256, 65535, 65536, 2**32 - 1])
@pytest.mark.parametrize("base", [None, 3])
def test_peek_update_reads_tick_and_keyframe_from_the_servers_encoding(tick: int, base: int | None) -> None:
    frame = finish_update(encode_update_prefix(tick, base, {"gone": b"\x01\x00\x00\x00"}, 77, []), 9)
    assert peek_update(frame[:48]) == (tick, base is None)
    assert peek_type(frame[:48]) == "update"
    assert peek_update(msgpack.packb({"tick": tick, "t": "update"})) is None
    assert peek_type(msgpack.packb({"t": "roster", "players": []})) == "roster"


def test_walk_step_makes_the_same_draws_as_drift_brain() -> None:
    for bot in range(6):
        prev = (0, 0)
        for tick in range(1, 400):
            want = drift_brain(list(prev) if any(prev) else [], tick, 7, bot)
            prev = walk_step(prev[0], prev[1], tick, 7, bot)
            assert list(prev) == want


# -- the ceiling -------------------------------------------------------------------


@pytest.mark.parametrize("size", [ceiling.min_frame_bytes(), 100, 300, 70000])
def test_ceiling_frame_has_the_size_asked_and_a_tick_the_load_generator_reads(size: int) -> None:
    frame = ceiling.update_frame(size)
    frame[ceiling.TICK_OFFSET:ceiling.TICK_OFFSET + 4] = (4242).to_bytes(4, "big")
    assert len(frame) == size
    assert msgpack.unpackb(bytes(frame))["tick"] == 4242
    assert peek_update(bytes(frame[:48])) == (4242, True)
    with pytest.raises(ValueError):
        ceiling.update_frame(ceiling.min_frame_bytes() - 1)


# -- the whole benchmark -----------------------------------------------------------


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "tools.bench", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_bench_measures_a_small_real_run_and_its_ceiling_as_one_json_line() -> None:
    res = run_cli("--npcs", "200", "--players", "20", "--duration", "2", "--warmup", "1", "--no-pin", "--ceiling", "--json")
    assert res.returncode == 0, res.stderr + res.stdout
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert list(out) == list(bench.KEYS)
    assert (out["E"], out["P"], out["variant"], out["pinned"]) == (200, 20, "full", False)
    assert out["clients_connected"] == out["clients_still_connected"] == 20
    assert 27 <= out["updates_per_s_min"] <= out["updates_per_s"] <= 33
    assert out["desyncs"] == 0 and out["errors"] == 0, out["error_messages"]
    assert out["bytes_per_update"] > 0 and out["server_cpu_total"] > 0 and out["server_us_per_client_tick"] > 0
    assert out["ticks"] > 40 and out["tick_ms_p99"] > 0 and out["tick_ms_mean"] > 0
    assert out["rtt_ms_p50"] is not None and out["loadgen_cpu_total"] > 0
    assert out["ceiling_clients_still_connected"] == 20 and 27 <= out["ceiling_updates_per_s"] <= 33
    # The ceiling's frames are the server's mean update rounded (59.46 -> 59), which the JSON gives to 0.1 (59.5).
    assert out["ceiling_frame_bytes"] >= math.floor(out["bytes_per_update"]) and out["server_to_ceiling"] > 0


def test_bench_compares_several_e_of_the_interest_variant_each_window_and_each_e_pooled() -> None:
    res = run_cli("--variant", "interest", "--npcs", "300,1200,1200,300", "--players", "10", "--duration", "1",
                  "--warmup", "0.5", "--no-pin", "--json", timeout=240)
    assert res.returncode == 0, res.stderr + res.stdout
    *windows, summary = (json.loads(line) for line in res.stdout.strip().splitlines())
    assert [w["E"] for w in windows] == [300, 1200, 1200, 300]
    # The arena grows with E (WORKLOAD.md's density), and every window's views were checked by its clients.
    assert windows[1]["arena"] == 2 * windows[0]["arena"]
    assert all(w["variant"] == "interest" and w["desyncs"] == 0 and w["errors"] == 0 for w in windows)
    assert [v["E"] for v in summary["vs_first"]] == [300, 1200, 1200, 300]
    assert summary["vs_first"][0]["server_us_per_client_tick"] == 1.0
    assert [(v["E"], v["runs"]) for v in summary["by_E"]] == [(300, 2), (1200, 2)]
    pooled = {v["E"]: v for v in summary["by_E"]}
    mean = sum(w["server_us_per_client_tick"] for w in windows if w["E"] == 1200) / 2
    assert pooled[1200]["mean"]["server_us_per_client_tick"] == pytest.approx(mean, abs=1e-3)
    assert pooled[1200]["server_us_per_client_tick"] == pytest.approx(
        mean / pooled[300]["mean"]["server_us_per_client_tick"], abs=2e-3)
    assert pooled[300]["server_us_per_client_tick"] == 1.0


def test_compare_pools_each_e_over_its_runs_and_divides_by_the_first_e() -> None:
    def window(e: int, us: float, size: float) -> dict[str, object]:
        return {"variant": "interest", "P": 500, "E": e, "bytes_per_update": size, "server_us_per_client_tick": us,
                "tick_ms_mean": us / 2, "tick_ms_p99": None, "server_cpu_total": us / 50}

    summary = bench.compare([window(10, 20.0, 100.0), window(100, 30.0, 99.0), window(100, 26.0, 101.0),
                             window(10, 24.0, 100.0)])
    assert [v["server_us_per_client_tick"] for v in summary["vs_first"]] == [1.0, 1.5, 1.3, 1.2]
    ten, hundred = summary["by_E"]
    assert (ten["E"], ten["runs"], hundred["E"], hundred["runs"]) == (10, 2, 100, 2)
    assert hundred["mean"]["server_us_per_client_tick"] == 28.0 and hundred["server_us_per_client_tick"] == 1.273
    assert hundred["bytes_per_update"] == 1.0 and ten["server_us_per_client_tick"] == 1.0
    assert hundred["tick_ms_p99"] is None  # a figure a window lacks is not pooled


@pytest.mark.parametrize("args, message", [
    (["--players", "0"], "--players: '0' must be at least 1"),
    (["--duration", "soon"], "--duration: 'soon' is not a number"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--variant", "everything"], "--variant: invalid choice"),
    (["--npcs", "10,x"], "--npcs: 'x' is not an integer"),
])
def test_bench_rejects_bad_flags_with_one_line_and_exit_2(args: list[str], message: str) -> None:
    res = run_cli(*args, timeout=20)
    assert res.returncode == 2
    assert res.stdout == "" and res.stderr.count("\n") == 1 and message in res.stderr, res.stderr


@pytest.mark.parametrize("connections", [16, 100, 1016, 2716, 3016, 4016, 20016])
def test_nofile_for_gives_the_smallest_limit_whose_server_admits_the_connections(connections: int) -> None:
    # The sweep's server at P=3,000 had players + 1024 open files, and refused its last 48 clients with 503.
    files = nofile_for(connections)
    assert default_max_connections(files) >= connections
    assert default_max_connections(files - 1) < connections

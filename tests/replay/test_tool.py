"""``python -m tools.replay``: info, verify, and one clear line with exit 2 for every bad file."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import msgpack
import pytest

from server.replay.format import (
    FORMAT_VERSION,
    FRAME_HEAD,
    KEYFRAME,
    MAX_KEYFRAME_BODY,
    PREAMBLE,
    frame,
    parse_replay,
)
from tests.conftest import ROOT
from tests.replay.helpers import (
    edit_keyframe,
    edit_tick,
    frames_of,
    record_match,
    tamper_input,
)
from tools import replay as tool


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _, _ = record_match(tmp_path_factory.mktemp("tool"), "drift", ticks=400, players=3, leave_at=220, change=0.3)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = tool.main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_info_shows_header_duration_players_scores_checkpoints_and_size(capsys: pytest.CaptureFixture[str], good: Path) -> None:
    code, out, err = run(capsys, "info", str(good))
    assert code == 0 and err == ""
    for text in ("format version 2, complete", "drift v1, seed 7", "ticks 0..400", "13.3 s at 30 Hz", "players:     4", "p1",
                 "checkpoints: 13 (every 30 ticks), keyframes: 1 (every 300 ticks)", "bytes per player-minute"):
        assert text in out
    replay = parse_replay(good.read_bytes())
    end, names = replay.end, replay.players()
    assert end is not None and len(end.scores) == 3  # one left
    best = sorted(end.scores.items(), key=lambda ps: (-ps[1], ps[0]))
    assert "scores:      " + ", ".join(f"{names[p]} ({p}): {s}" for p, s in best) + "\n" in out
    code, out, _ = run(capsys, "info", str(good), "--json")
    d = json.loads(out)
    assert d["ticks"] == 400 and d["complete"] and d["size"] == good.stat().st_size and len(d["players"]) == 4
    assert d["format_version"] == 2 and d["scores"] == {str(p): s for p, s in end.scores.items()}
    assert d["score_table"] == [{"player": p, "name": names[p], "score": s} for p, s in best]
    assert d["final_hash"] == parse_replay(good.read_bytes()).end.hash  # type: ignore[union-attr]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_verify_passes_a_faithful_replay(capsys: pytest.CaptureFixture[str], good: Path, jobs: str) -> None:
    code, out, err = run(capsys, "verify", str(good), "--json", "--jobs", jobs)
    r = json.loads(out)
    assert code == 0 and err == "" and r["jobs"] == int(jobs)
    assert r["ok"] and r["checkpoints_checked"] == r["checkpoints"] == 13 and r["keyframes_checked"] == 1
    assert r["final_match"] and r["scores_match"] and r["diverged_at"] is None and r["speedup"] > 1
    code, out, _ = run(capsys, "verify", str(good))
    assert code == 0 and out.startswith("OK: 400 ticks re-simulated")


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("min_tick", [100, 305])
def test_changing_one_recorded_input_fails_verify_at_the_first_checkpoint_after_it(
        capsys: pytest.CaptureFixture[str], good: Path, tmp_path: Path, jobs: str, min_tick: int) -> None:
    data, tick = tamper_input(good.read_bytes(), min_tick)
    bad = tmp_path / "tampered.replay"
    bad.write_bytes(data)
    code, out, _ = run(capsys, "verify", str(bad), "--json", "--jobs", jobs)
    r = json.loads(out)
    first_checkpoint = -(-tick // 30) * 30
    assert code == 1 and not r["ok"]
    assert r["diverged_at"] == first_checkpoint and r["last_good"] == first_checkpoint - 30
    assert "state_hash" in r["reason"]
    code, out, _ = run(capsys, "verify", str(bad))
    assert code == 1 and out.startswith(f"DIVERGED at tick {first_checkpoint}")


def test_a_replay_cut_short_verifies_up_to_its_last_complete_frame_with_a_warning(
        capsys: pytest.CaptureFixture[str], good: Path, tmp_path: Path) -> None:
    offset, _ = frames_of(good.read_bytes())[300]
    cut = tmp_path / "cut.replay"
    cut.write_bytes(good.read_bytes()[: offset + 11])  # in the middle of a frame
    code, out, err = run(capsys, "verify", str(cut), "--json")
    r = json.loads(out)
    assert code == 0 and r["ok"] and r["truncated"] and not r["complete"] and r["final_match"] is None
    assert r["checkpoints_checked"] == r["checkpoints"] > 0
    assert "warning" in err and "truncated at byte" in err and "no end record" in err
    code, _, _ = run(capsys, "verify", str(cut), "--strict")
    assert code == 1


def _with_header(good: Path, edit: dict[str, object]) -> bytes:
    import msgpack

    data = good.read_bytes()
    frames = frames_of(data)
    rec = msgpack.unpackb(frames[0][1], raw=False)
    rec[1].update(edit)
    return data[: PREAMBLE.size] + frame(msgpack.packb(rec)) + b"".join(frame(p) for _, p in frames[1:])


def bad_files(good: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    data = good.read_bytes()
    newer = bytearray(data)
    struct.pack_into("<I", newer, 8, FORMAT_VERSION + 1)
    corrupt = bytearray(data)
    # A byte of the payload of the frame halfway through the file (a length field flipped would read as a torn tail).
    middle = next((at, payload) for at, payload in frames_of(data) if at + len(payload) >= len(data) // 2)
    corrupt[middle[0] + FRAME_HEAD.size + len(middle[1]) // 2] ^= 0xFF
    cases = {
        "missing": (None, "no such file"),
        "not a replay": (b"%PDF-1.7 this is not a replay\n" * 20, "not a replay file"),
        "empty": (b"", "empty file"),
        "newer format": (bytes(newer), f"format version {FORMAT_VERSION + 1} is not supported"),
        "unknown ruleset": (_with_header(good, {"ruleset": "chess"}), "cannot replay ruleset 'chess'"),
        "other ruleset version": (_with_header(good, {"ruleset_version": 99}), "this build has version 1"),
        "truncated header": (data[:30], "truncated replay"),
        "corrupted bytes": (bytes(corrupt), "corrupt replay at byte"),
        "player id over int32": (edit_tick(data, 100, [1, 100, [], [[1 << 31, "x"]]]), "joining player id 2147483648 is not"),
        "negative player id": (edit_tick(data, 100, [1, 100, [-1]]), "leaving player id -1 is not"),
        "a directory": ("dir", "is a directory"),
    }
    out = {}
    for name, (content, message) in cases.items():
        path = tmp / (name.replace(" ", "_") + ".replay")
        if content == "dir":
            path.mkdir()
        elif content is not None:
            assert isinstance(content, bytes)
            path.write_bytes(content)
        out[name] = (path, message)
    return out


def _zlib_bomb(size: int) -> bytes:
    z = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    return b"".join(z.compress(chunk) for _ in range(-(-size // len(chunk)))) + z.flush()


def bad_keyframes(good: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    """Files whose frames are sound but whose keyframe at tick 300 is not: only ``verify`` reads it."""
    data = good.read_bytes()
    (kf,) = [p for _, p in frames_of(data) if p[0] == 0x93 and p[1] == KEYFRAME]
    ids = msgpack.unpackb(zlib.decompress(msgpack.unpackb(kf)[2]))["ids"]
    cases = {
        "ids not ascending": (edit_keyframe(data, 300, ids=ids[4:8] + ids[:4] + ids[8:]), "ids must strictly ascend"),
        "huge capacity": (edit_keyframe(data, 300, capacity=1 << 40), f"capacity {1 << 40} must satisfy"),
        "zlib bomb": (edit_keyframe(data, 300, body=_zlib_bomb(MAX_KEYFRAME_BODY + 1)), f"inflates to over {MAX_KEYFRAME_BODY} bytes"),
        "not msgpack": (edit_keyframe(data, 300, body=zlib.compress(b"\xc1")), "keyframe at tick 300: "),
        "player id over int32": (edit_keyframe(data, 300, players=[[1 << 31, "x", None]]), "player id 2147483648 is not"),
    }
    out = {}
    for name, (content, message) in cases.items():
        path = tmp / ("kf_" + name.replace(" ", "_") + ".replay")
        path.write_bytes(content)
        out[name] = (path, message)
    return out


def assert_one_error_line(code: int, out: str, err: str, message: str, name: str) -> None:
    assert code == 2, (name, out, err)
    assert out == "", name
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m tools.replay: error: ") and message in lines[0], (name, err)
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["info", "verify", "play"])
def test_every_kind_of_bad_file_gets_one_clear_line_and_exit_2(
        capsys: pytest.CaptureFixture[str], good: Path, tmp_path: Path, command: str) -> None:
    for name, (path, message) in bad_files(good, tmp_path).items():
        if command == "play" and name == "a directory":
            continue  # play serves directories
        code, out, err = run(capsys, command, str(path))
        assert_one_error_line(code, out, err, message, name)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_verify_finds_every_kind_of_bad_keyframe_with_one_clear_line_and_exit_2(
        capsys: pytest.CaptureFixture[str], good: Path, tmp_path: Path, jobs: str) -> None:
    for name, (path, message) in bad_keyframes(good, tmp_path).items():
        code, out, err = run(capsys, "verify", str(path), "--jobs", jobs)
        assert_one_error_line(code, out, err, message, name)
        assert err.count("keyframe at tick 300") == 1, err  # said once, not "corrupt keyframe at tick 300: keyframe at tick 300"


def test_an_error_no_check_foresaw_is_still_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str], good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kw: object) -> None:
        raise MemoryError("out of memory")

    monkeypatch.setattr(tool, "verify", boom)
    code, out, err = run(capsys, "verify", str(good))
    assert_one_error_line(code, out, err, f"{good}: MemoryError: out of memory", "unforeseen")


def test_the_real_process_exits_2_without_a_traceback(good: Path, tmp_path: Path) -> None:
    files = bad_files(good, tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    files.update({f"keyframe {k}": v for k, v in bad_keyframes(good, tmp_path).items()})
    for name in ("corrupted bytes", "missing", "player id over int32", "keyframe huge capacity", "keyframe zlib bomb"):
        path, message = files[name]
        p = subprocess.run([sys.executable, "-m", "tools.replay", "verify", str(path), "--json"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60, check=False)
        assert p.returncode == 2 and p.stdout == "" and "Traceback" not in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and message in p.stderr, (name, p.stderr)


def test_a_progress_bar_is_drawn_when_enabled_and_cleared_at_the_end(good: Path) -> None:
    import io

    from tools.progress import Bar

    stream = io.StringIO()
    replay = parse_replay(good.read_bytes())
    tool.verify(replay, good, Bar("verifying", 400, stream, unit="ticks"))
    text = stream.getvalue()
    assert "verifying" in text and "400/400" in text
    assert text.endswith("\x1b[2K")  # the line is wiped at the end
    quiet = io.StringIO()
    tool.verify(replay, good, Bar("verifying", 400, quiet, enabled=False))
    assert quiet.getvalue() == ""


def _stderr_of_verify(good: Path, on_a_terminal: bool, *extra: str) -> str:
    """What ``verify`` writes to its stderr when that is a terminal (a pty) or a pipe."""
    import pty

    if not on_a_terminal:
        p = _run_real("verify", str(good), "--jobs", "1", *extra, capture_output=True)
        assert p.returncode == 0 and p.stdout.startswith("OK:")
        return p.stderr
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "tools.replay", "verify", str(good), "--jobs", "1", *extra], cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out.startswith(b"OK:")
    finally:
        os.close(master)
    return b"".join(chunks).decode()


def test_the_cli_draws_the_progress_bar_only_when_stderr_is_a_terminal(good: Path) -> None:
    assert "verifying" in _stderr_of_verify(good, True)
    assert _stderr_of_verify(good, True, "--no-progress") == ""
    assert _stderr_of_verify(good, False) == ""



def _run_real(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.replay", *args], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          text=True, timeout=60, check=False, **kw)


@pytest.mark.parametrize("args", [("info",), ("info", "--json"), ("verify",)])
def test_output_into_a_closed_pipe_exits_quietly(good: Path, args: tuple[str, ...]) -> None:
    read, write = os.pipe()
    os.close(read)  # like `| head -1` having exited: every write fails with EPIPE
    try:
        p = _run_real(args[0], str(good), *args[1:], stdout=write, stderr=subprocess.PIPE)
    finally:
        os.close(write)
    assert p.returncode == tool.EXIT_PIPE == 141 and p.stderr == ""


@pytest.mark.parametrize("value", ["99999", "-1", "http"])
def test_play_refuses_a_port_out_of_range_with_a_usage_error(value: str) -> None:
    p = _run_real("play", "--port", value, capture_output=True)
    assert p.returncode == 2 and p.stdout == "" and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("python -m tools.replay play: error: argument --port: ")


@pytest.mark.parametrize("cpus, jobs", [(1, 1), (2, 2), (8, 2)])  # the replay has two pieces: 0..300, 300..400
def test_verify_runs_one_process_per_cpu_by_default_but_no_more_than_pieces(
        capsys: pytest.CaptureFixture[str], good: Path, monkeypatch: pytest.MonkeyPatch, cpus: int, jobs: int) -> None:
    monkeypatch.setattr(tool.os, "cpu_count", lambda: cpus)
    code, out, _ = run(capsys, "verify", str(good), "--json")
    r = json.loads(out)
    assert code == 0 and r["ok"] and r["jobs"] == jobs and r["keyframes_checked"] == 1
    code, out, _ = run(capsys, "verify", str(good), "--json", "--jobs", "1")
    assert json.loads(out)["jobs"] == 1
    code, _, err = run(capsys, "verify", str(good), "--jobs", "0")
    assert code == 2 and "--jobs: '0' must be positive" in err

"""``python -m tools.cpusplit``: one real window of the server under the C load generator, an A/B pair, its errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

ENV = dict(os.environ, PYTHONPATH=str(ROOT))
TINY = ["--players", "4", "--npcs", "50", "--warmup", "1", "--duration", "1", "--json"]
PROG = "python -m tools.cpusplit"


def cpusplit(*args: str, env: dict[str, str] = ENV) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.cpusplit", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


@pytest.fixture(scope="module", autouse=True)
def loadgen() -> None:
    subprocess.run(["make", "-s", "loadgen"], cwd=ROOT, check=True, timeout=120)


def assert_window(w: dict[str, Any], root: Path) -> None:
    """A window's figures: correctness strictly, the rates and costs with a busy machine's margin."""
    assert (w["root"], w["P"], w["E"], w["connected"], w["errors"]) == (str(root), 4, 50, 4, 0), w
    assert w["ticks"] >= 10 and w["ticks_skipped"] >= 0 and w["updates_per_s_p1"] > 0
    assert w["cores"] > 0 and w["us_per_client_tick"] > 0
    assert w["cores"] == pytest.approx(w["user_cores"] + w["system_cores"], abs=0.002)
    assert w["us_per_client_tick"] == pytest.approx(w["us_user"] + w["us_system"], abs=0.02)
    assert w["tick_ms"] > 0 and 0 < w["send_ms"] <= w["tick_ms"]
    assert w["loadgen_cpu"] >= 0 and w["bytes_per_update"] > 0


def test_one_window_reports_the_servers_cpu_its_segments_and_its_collections() -> None:
    has_ss = shutil.which("ss") is not None
    out = cpusplit(*TINY, "--gc", *(["--segments"] if has_ss else []))
    assert out.returncode == 0, out.stderr
    w = json.loads(out.stdout)
    assert_window(w, ROOT)
    assert "syscalls_per_client_tick" not in w and "perf_data" not in w
    assert sorted(w["gc"]) == ["0", "1", "2"]
    for gen in w["gc"].values():
        assert gen["collections"] >= 0 and gen["ms_max"] <= gen["ms_total"] + 0.1
        assert gen["run_collections"] >= gen["collections"] and gen["run_ms_max"] >= gen["ms_max"]
    assert w["gc"]["2"]["run_collections"] >= 1  # the server's start-up collects (gc.freeze's collect) before any client
    if has_ss:  # one data segment per update each way (an update out, an input in), hardly any pure ACK
        seg = w["segments_per_update"]
        assert 0.8 <= seg["server_data_out"] <= 1.3 and 0.8 <= seg["loadgen_data_out"] <= 1.3, seg
        assert 0 <= seg["server_pure_acks_out"] < 0.5 and 0 <= seg["loadgen_pure_acks_out"] < 0.5, seg


def test_syscalls_counts_one_read_and_one_write_per_client_per_tick_or_says_what_is_missing() -> None:
    out = cpusplit(*TINY, "--syscalls")
    if shutil.which("perf") is None:
        assert (out.returncode, out.stdout, out.stderr) == (1, "", f"{PROG}: error: --syscalls needs perf, which is not on PATH\n")
        return
    if out.returncode != 0:  # perf is there but may not count here (no tracepoints, perf_event_paranoid)
        assert out.returncode == 1 and out.stderr.startswith(f"{PROG}: error: perf stat failed: "), out.stderr
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
        return
    w = json.loads(out.stdout)
    assert_window(w, ROOT)
    sc = w["syscalls_per_client_tick"]
    assert 0.7 <= sc["read"] <= 1.5 and 0.7 <= sc["write"] <= 1.5, sc
    assert sc["epoll"] >= 0 and sc["all"] >= sc["read"] + sc["write"] + sc["epoll"] - 0.01, sc


def test_perf_records_the_window_and_splits_its_samples_or_says_what_is_missing(tmp_path: Path) -> None:
    data = tmp_path / "server.data"
    out = cpusplit(*TINY, "--perf", str(data))
    if shutil.which("perf") is None:
        assert (out.returncode, out.stdout, out.stderr) == (1, "", f"{PROG}: error: --perf needs perf, which is not on PATH\n")
        return
    if out.returncode != 0:  # perf is there but may not record here (perf_event_paranoid, a container)
        assert out.returncode == 1 and out.stderr.startswith(f"{PROG}: error: perf record failed: "), out.stderr
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
        return
    w = json.loads(out.stdout)
    assert_window(w, ROOT)
    assert w["perf_data"] == str(data) and data.stat().st_size > 0
    split = w["perf_split"]
    assert split["samples"] > 0 and split["user"] > 0, split
    assert abs(sum(v for k, v in split.items() if k != "samples") - 100) < 1, split


def test_a_missing_tool_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    env = dict(ENV, PATH=str(tmp_path))  # no perf, no ss
    for flag, tool in (("--syscalls", "perf"), ("--segments", "ss")):
        out = cpusplit(*TINY, flag, env=env)
        assert (out.returncode, out.stdout, out.stderr) == (1, "", f"{PROG}: error: {flag} needs {tool}, which is not on PATH\n")
    out = cpusplit(*TINY, "--perf", str(tmp_path / "x.data"), env=env)
    assert out.stderr == f"{PROG}: error: --perf needs perf, which is not on PATH\n"


def test_a_pair_alternates_before_and_after_and_divides_them() -> None:
    out = cpusplit(*TINY, "--pairs", "1", "--before", str(ROOT))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["before"], result["after"], result["P"], len(result["pairs"])) == (str(ROOT), str(ROOT), 4, 1)
    pair = result["pairs"][0]
    assert pair["pair"] == 1
    assert_window(pair["before"], ROOT)
    assert_window(pair["after"], ROOT)
    for key, ratio in pair["after_to_before"].items():
        assert ratio == round(pair["after"][key] / pair["before"][key], 3) if pair["before"][key] else ratio is None
    assert result["after_to_before_median"] == pair["after_to_before"]
    assert result["ticks_skipped_before"] == pair["before"]["ticks_skipped"]


@pytest.mark.parametrize(("args", "message"), [
    (["--players", "0"], "argument --players: '0' must be at least 1"),
    (["--duration", "x"], "argument --duration: 'x' is not a number"),
    (["--pairs", "2"], "--pairs needs --before DIR (the checkout to compare with)"),
    (["--pairs", "21", "--before", "."], "--pairs must be at most 20, got 21"),
    (["--root", "/"], "argument --root: '/' is not a checkout of tickserver (no server/__main__.py in it)"),
    (["--before", ".", "--perf", "x"], "--perf records one window: not with --before"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_a_bad_flag_exits_2_with_one_line(args: list[str], message: str) -> None:
    out = cpusplit(*args)
    assert (out.returncode, out.stdout, out.stderr) == (2, "", f"{PROG}: error: {message}\n")


def test_the_gc_probe_records_collections_only_when_asked(tmp_path: Path) -> None:
    probe = tmp_path / "gc.json"
    script = "import gc, time; gc.collect(); time.sleep(0.6)"
    env = dict(ENV, PYTHONPATH=str(ROOT / "tools" / "gcprobe"), TICKSERVER_GCPROBE=str(probe))
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=30)
    seen = json.loads(probe.read_text())
    assert any(gen == 2 and duration >= 0 for _, duration, gen, _ in seen), seen
    env.pop("TICKSERVER_GCPROBE")
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gc.json"]

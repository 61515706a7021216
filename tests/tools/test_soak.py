"""The soak tool, run briefly against the real server: every hostile kind answered as documented, the bots unharmed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tools import soak


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.soak", *args], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_a_short_soak_reports_every_figure_and_the_server_holds(tmp_path: Path) -> None:
    res = run_cli("--duration", "3", "--bots", "2", "--scale", "0.05", "--attack-seconds", "1",
                  "--long-seconds", "1", "--json", "--plot", str(tmp_path / "soak.png"))
    assert res.returncode == 0, res.stderr + res.stdout
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["waves"] >= 1 and set(out["attacks"]) == set(soak.HOSTILE)
    # Every bad frame is answered with its documented close code (PROTOCOL.md, Close codes).
    assert out["bad_frames"] == {"text": {"1003": 1}, "not_msgpack": {"1002": 1}, "oversize": {"1009": 1},
                                 "bad_field": {"1007": 1}, "unknown_type": {"1002": 1}, "fragmented": {"1008": 1}}
    assert out["attacks"]["flood"]["close_codes"] == {"1008": 1}
    assert out["attacks"]["http_probe"]["http_statuses"] == {"403": 1, "404": 2}
    assert out["disconnects"]["1008 by server"] >= 2 and out["disconnects"]["1003 by server"] == 1
    assert out["desyncs"] == 0 and out["bots_still_connected"] == 2 and out["server_tracebacks"] == 0
    assert out["server_exit"] == 0
    assert out["frames_sent"] >= out["updates_sent"] > 0 and out["ticks"] > 0
    assert 0 < out["tick_ms_p50"] <= out["tick_ms_p99"]
    assert 0 < out["rss_mib_start"] <= out["rss_mib_peak"] and out["rss_mib_end"] > 0
    assert (tmp_path / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["--duration", "0"], "argument --duration: '0' must be positive"),
    (["--bots", "x"], "argument --bots: 'x' is not a number"),
    (["--root", "/nonexistent"], "--root /nonexistent: not a checkout of this project (no server/__main__.py)"),
])
def test_bad_flags_get_one_line_and_exit_2(args: list[str], message: str) -> None:
    res = run_cli(*args, timeout=30)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [f"python -m tools.soak: error: {message}"]

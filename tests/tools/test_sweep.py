"""The players-per-core sweep (tools.sweep via ``python -m tools.bench --sweep``) on a tiny range."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_a_tiny_sweep_measures_server_and_ceiling_at_each_p_and_draws_the_curve(tmp_path: Path) -> None:
    subprocess.run(["make", "-s", "loadgen"], cwd=ROOT, check=True, timeout=120)
    png = tmp_path / "sweep.png"
    out = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--sweep", "--sweep-start", "4", "--sweep-step", "4", "--sweep-max", "8", "--sweep-all",
         "--warmup", "1", "--duration", "1", "--verify", "1", "--npcs", "50", "--plot", str(png)],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=240)
    result = json.loads(out.stdout.splitlines()[-1])
    points = result["points"]
    assert {(p["side"], p["players"]) for p in points} == {(s, n) for s in ("server", "ceiling") for n in (4, 8)}
    for p in points:  # correctness is strict; the rates depend on how busy the machine is
        assert (p["connected"], p["errors"], p["desyncs"]) == (p["players"], 0, 0), p
        assert p["verifier_updates_per_s_min"] > 0
        assert p["loadgen_io"] in ("uring", "epoll")
        assert p["holds"] == (p["updates_per_s_p1"] >= 29 and p["verifier_updates_per_s_min"] >= 29
                              and p["ticks_skipped"] == 0)
    assert result["stopped"] == "--sweep-max"
    for side in ("server", "ceiling"):  # the last of an unbroken run of P that held
        held = [p["players"] for p in points if p["side"] == side and p["holds"]]
        assert result[f"largest_P_{side}"] == (8 if 8 in held and 4 in held else 4 if 4 in held else None)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_refuses_a_first_p_below_two() -> None:
    out = subprocess.run([sys.executable, "-m", "tools.bench", "--sweep", "--sweep-start", "1"],
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "--sweep-start: " in out.stderr


def test_the_benchmark_server_takes_every_loopback_client() -> None:
    """Bench and sweep alike start the server with no per-address limit: every client is 127.0.0.1, and the default
    limit (256) refused the sweep's clients past it with 429."""
    from tools.bench import server_command
    cmd = server_command(2000, 1000, 7, ["--no-record"])
    assert cmd[cmd.index("--max-per-address") + 1] == "0"
    assert cmd[cmd.index("--max-players") + 1] == "1010"

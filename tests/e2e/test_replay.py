"""Replays end to end: the real server records bots playing; a fresh process verifies the file."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, ServerProcess

Start = Callable[..., ServerProcess]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def bots(url: str, count: int, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tools.bots", "--url", url, "--count", str(count), "--duration", str(seconds),
                             "--json"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def verify(path: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    p = subprocess.run([sys.executable, "-m", "tools.replay", "verify", str(path), "--json", *extra], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=120, check=False)
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else {}, p.stderr


def log_value(server: ServerProcess, pattern: str) -> re.Match[str]:
    return server.wait_log(pattern)


@pytest.mark.parametrize("ruleset, npcs", [("arena", "40"), ("drift", "500")])
def test_bots_play_a_recorded_match_and_a_fresh_process_verifies_it_to_the_servers_final_state(
        start_server: Start, tmp_path: Path, ruleset: str, npcs: str) -> None:
    server = start_server("--ruleset", ruleset, "--npcs", npcs, "--tick-rate", "60", "--hold", "0.2",
                          "--replay-dir", str(tmp_path))
    path = Path(log_value(server, r"recording to (\S+\.replay)").group(1))
    assert path.parent == tmp_path and path.name.startswith(f"{ruleset}-") and path.name.endswith("-1.replay")
    players = bots(server.url, 4, 5.0)
    out, err = players.communicate(timeout=60)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["connected"] == 4 and summary["desyncs"] == 0, err
    time.sleep(0.5)  # the bots' players are held 0.2 s, then leave: leaves are recorded too
    listing = server.get_json("/api/replays")
    assert listing["playback"] is True  # the game server plays its own recordings (/ws?replay=NAME)
    assert [r["name"] for r in listing["replays"]] == [path.name]
    assert listing["replays"][0]["ruleset"] == ruleset and listing["replays"][0]["seed"] == 1

    assert server.stop(signal.SIGINT) == 0
    final = log_value(server, r"final state_hash ([0-9a-f]{32}) at tick (\d+)")
    code, result, stderr = verify(path)
    assert code == 0, (result, stderr)
    assert result["ok"] and result["complete"] and not result["truncated"] and stderr == ""
    assert result["last_tick"] == int(final.group(2)) >= 250  # a few hundred ticks
    assert result["checkpoints_checked"] == result["checkpoints"] >= 8 and result["keyframes_checked"] >= 1
    assert result["final_hash"] == result["final_hash_recorded"] == final.group(1)  # the live server's own final state
    assert result["final_match"] and result["scores_match"]


def test_a_server_killed_mid_match_leaves_a_replay_that_verifies_up_to_its_last_frame(start_server: Start, tmp_path: Path) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "300", "--tick-rate", "60", "--replay-dir", str(tmp_path))
    path = Path(log_value(server, r"recording to (\S+\.replay)").group(1))
    players = bots(server.url, 3, 6.0)
    try:
        deadline = time.monotonic() + 20
        while server.get_json("/healthz")["tick"] < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        tick_before_kill = server.get_json("/healthz")["tick"]
        server.stop(signal.SIGKILL)
    finally:
        players.kill()
        players.communicate()
    code, result, stderr = verify(path)
    assert code == 0, (result, stderr)
    assert result["ok"] and not result["complete"] and result["final_match"] is None
    assert "no end record" in stderr and "warning" in stderr
    # At most a second lost (the writer flushes every half second).
    assert result["last_tick"] >= tick_before_kill - 60
    assert result["checkpoints_checked"] == result["checkpoints"] >= 4
    assert verify(path, "--strict")[0] == 1


def test_no_record_writes_nothing(start_server: Start, tmp_path: Path) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "10", "--no-record", "--replay-dir", str(tmp_path / "r"))
    assert server.get_json("/api/replays")["replays"] == []
    server.stop()
    assert not (tmp_path / "r").exists()

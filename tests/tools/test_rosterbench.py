"""``tools.rosterbench``: whole rosters against roster deltas, in-process, byte-exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def test_rosterbench_ramps_joins_in_both_modes_and_deltas_send_a_fraction_of_the_roster_bytes() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "tools.rosterbench", "--players", "40", "--ramp", "8", "--npcs", "50",
                          "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    whole, deltas, summary = (json.loads(line) for line in res.stdout.strip().splitlines())
    assert (whole["mode"], deltas["mode"]) == ("whole", "deltas")
    for r in (whole, deltas):  # 39 in 5 ticks, then one more alone: a revision per tick that changed the roster
        assert r["ramp_ticks"] == 5 and r["roster_rev"] == 6 and r["join_roster_bytes"] > 0
    # The join at P: every client gets the whole roster of 40 (13 to 14 bytes an entry), or one entry (a delta of
    # about 40 bytes) and the joiner alone the whole roster.
    assert whole["join_roster_bytes"] >= 40 * 40 * 13
    assert deltas["join_roster_bytes"] <= 40 * 14 + 39 * 50
    assert summary["deltas_vs_whole"]["join_roster_bytes"] < 0.2


def test_rosterbench_e2e_ramps_lean_clients_onto_real_servers_with_plain_then_roster_delta_hellos() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "tools.rosterbench", "--e2e", "--players", "12", "--npcs", "50",
                          "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    whole, deltas, summary = (json.loads(line) for line in res.stdout.strip().splitlines())
    for r, mode in ((whole, "whole"), (deltas, "deltas")):
        assert r["mode"] == mode and r["connected"] == 12 and r["desyncs"] == 0 and r["errors"] == 0
        assert r["server_cpu_s"] > 0 and r["sent_bytes"] > 0 and r["ticks"] > 0
    assert set(summary["deltas_vs_whole"]) == {"seconds", "ticks_dropped", "server_cpu_s", "sent_bytes"}

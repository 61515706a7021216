"""``tools.viewbench``: a filtered-view match's tick, in-process, compared across E."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def test_viewbench_times_each_e_verifies_a_view_and_compares_with_the_first_as_json_lines() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "tools.viewbench", "--npcs", "400,1600", "--players", "12", "--ticks", "6",
                          "--warmup", "6", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    first, second, summary = (json.loads(line) for line in res.stdout.strip().splitlines())
    assert (first["E"], second["E"], first["arena"], second["arena"]) == (400, 1600, 1789, 3578)  # WORKLOAD's density
    for r in (first, second):
        assert r["desyncs"] == 0 and r["verified_updates"] > 0 and r["bytes_per_update"] > 0
        assert r["tick_cpu_ms_p50"] > 0 and r["us_per_client_tick"] > 0 and r["cell"] == 300
    assert summary["baseline_E"] == 400 and summary["vs_first"][0]["us_per_client_tick"] == 1.0



def test_viewbench_refuses_to_count_instructions_outside_valgrind() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), LD_PRELOAD="")
    res = subprocess.run([sys.executable, "-m", "tools.viewbench", "--callgrind"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and "run under valgrind --tool=callgrind --instr-atstart=no" in res.stderr
    assert "Traceback" not in res.stderr


def test_viewbench_with_players_leaving_and_joining_still_verifies_every_update() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "tools.viewbench", "--npcs", "400", "--players", "6", "--ticks", "8",
                          "--warmup", "2", "--churn", "2", "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    first = json.loads(res.stdout.splitlines()[0])
    assert first["desyncs"] == 0 and first["verified_updates"] > 0 and first["tick_cpu_ms_max"] >= first["tick_cpu_ms_p50"]


def test_viewbench_alternating_the_matches_measures_each_e_for_as_many_ticks_and_verifies_them() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "tools.viewbench", "--npcs", "400,1600", "--players", "8", "--ticks", "7",
                          "--warmup", "2", "--alternate", "3", "--churn", "3", "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    first, second, summary = (json.loads(line) for line in res.stdout.strip().splitlines())
    assert (first["E"], second["E"], first["ticks"], second["ticks"]) == (400, 1600, 7, 7)
    for r in (first, second):
        assert r["desyncs"] == 0 and r["verified_updates"] > 0 and r["tick_cpu_ms_p50"] > 0
    assert summary["vs_first"][1]["E"] == 1600


def test_viewbench_counts_instructions_of_one_e_alone_not_alternated() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), LD_PRELOAD="vgpreload_core")
    res = subprocess.run([sys.executable, "-m", "tools.viewbench", "--callgrind", "--alternate", "5"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--callgrind counts one E alone" in res.stderr and "Traceback" not in res.stderr

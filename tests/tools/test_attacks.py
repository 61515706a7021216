"""``python -m tools.attacks`` end to end: a real server, real bots and attackers on loopback, briefly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def test_pinned_the_server_runs_on_one_cpu_and_the_clients_on_another() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tools.attacks", "no_ack", "--count", "3", "--seconds", "1", "--bots", "2",
         "--warmup", "1", "--no-baseline", "--pin", "--json", "--server-arg=--max-per-address",
         "--server-arg=0"], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
        timeout=120)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:  # a one-CPU machine: refused in one line
        assert out.returncode == 1 and out.stderr.strip() == "python -m tools.attacks: error: --pin needs at least 2 CPUs"
        return
    assert out.returncode == 0, out.stderr
    (run,) = json.loads(out.stdout)["runs"]
    assert run["run"] == "attack" and run["server_cpu"] == cpus[0]
    assert run["bots_joined"] == 2 and run["server_tracebacks"] == 0
    assert run["report"]["joined"] == 3  # the silent ones joined (and were sent keyframes) while it lasted

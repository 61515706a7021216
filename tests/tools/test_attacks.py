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


def test_waves_of_silent_clients_alternate_with_baselines_and_the_p99_is_pooled_over_the_pairs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tools.attacks", "no_ack_waves", "--count", "3", "--seconds", "3", "--bots", "2",
         "--warmup", "1", "--pairs", "2", "--json", "--server-arg=--max-per-address", "--server-arg=0",
         "--server-arg=--ack-timeout", "--server-arg=1"], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [r["run"] for r in result["runs"]] == ["baseline", "attack", "baseline", "attack"]
    for run in result["runs"][1::2]:
        report = run["report"]
        assert report["notes"]["waves"] >= 2  # closed by the 1 s ack timeout, they came again
        assert report["connections"] == 3 * report["notes"]["waves"] and report["close_codes"]["1008"] >= 3
    pooled = result["pooled"]
    assert pooled["pairs"] == 2 and len(pooled["pair_ratios"]) == 2 and pooled["ratio"] > 0
    assert set(result["runs"][0]["phase_p99_ms"]) == {"sim", "encode", "send"}


def test_the_kernel_send_queue_of_a_port_is_read_over_netlink_as_from_proc() -> None:
    import socket
    import time

    from tools.attacks import _diag_send_queue, send_queue_mib

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        assert send_queue_mib(port) == 0.0
        with socket.create_connection(("127.0.0.1", port)) as peer:  # never reads
            conn, _ = listener.accept()
            with conn:
                conn.setblocking(False)
                sent = 0
                try:
                    for _ in range(1000):
                        sent += conn.send(b"x" * 65536)
                except BlockingIOError:
                    pass
                time.sleep(0.2)
                queued = _diag_send_queue(port)
                assert 0 < queued <= sent
                assert peer.fileno() >= 0

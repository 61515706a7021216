"""The load generator's own benchmark (tools.genbench) and its feeder (tools/loadgen_c/feeder.c) on a few clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

ENV = dict(os.environ, PYTHONPATH=str(ROOT))


@pytest.mark.parametrize("together", [False, True])
def test_genbench_measures_the_generator_and_its_baseline_against_a_feeder_that_checks_every_input(together: bool) -> None:
    subprocess.run(["make", "-s", "loadgen"], cwd=ROOT, check=True, timeout=120)
    out = subprocess.run(
        [sys.executable, "-m", "tools.genbench", "--clients", "20", "--warmup", "1", "--duration", "2", "--baseline", "HEAD",
         "--no-pin", "--json", *(["--together"] if together else ["--perf"])], cwd=ROOT, env=ENV, capture_output=True, text=True,
        timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [(r["binary"], r["together"]) for r in result["runs"]] == [("loadgen-HEAD", 1 + together), ("loadgen", 1 + together)]
    assert result["runs"][-1]["lg_io"] in ("uring", "epoll") and result["runs"][-1]["lg_updates_per_wait"] > 0
    if not together:  # perf's split of the current generator's samples (or why there is none)
        split = result["runs"][-1]["perf_split"]
        assert "note" in split or (split["samples"] > 0 and abs(sum(v for k, v in split.items() if k != "samples") - 100) < 1)
    for r in result["runs"]:  # correctness is strict; the rates and costs depend on how busy the machine is
        assert (r["connected"], r["errors"], r["bad_inputs"]) == (20, 0, 0), r
        assert r["frame_bytes"] == 1204  # 1200 bytes of update in a 4-byte WebSocket header
        assert 0.8 <= r["inputs_per_update"] <= 1.2  # one input per update (the window's edges cut a few)
        assert r["updates_per_s_p50"] > 0
        assert r["updates"] > 0 and r["lg_us_per_update"] > 0
    assert result["current_to_baseline"] == round(result["current_us_per_update"] / result["baseline_us_per_update"], 3)


def test_the_feeder_answers_a_real_websocket_handshake_and_refuses_bad_flags() -> None:
    subprocess.run(["make", "-s", "loadgen"], cwd=ROOT, check=True, timeout=120)
    bad = subprocess.run([str(ROOT / "build" / "feeder"), "--frame-bytes", "10"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "--frame-bytes: expected a number in [32, 65535], got 10" in bad.stderr
    feeder = subprocess.Popen([str(ROOT / "build" / "feeder"), "--frame-bytes", "300", "--lifetime", "30"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert feeder.stdout is not None
        port = json.loads(feeder.stdout.readline())["port"]
        script = (
            "import asyncio, msgpack\n"
            "from websockets.asyncio.client import connect\n"
            "async def main():\n"
            f"    async with connect('ws://127.0.0.1:{port}/ws') as ws:\n"
            "        await ws.send(msgpack.packb({'t': 'hello', 'v': 1, 'name': 'x'}))\n"
            "        welcome = msgpack.unpackb(await ws.recv())\n"
            "        update = await ws.recv()\n"
            "        u = msgpack.unpackb(update)\n"
            "        await ws.send(msgpack.packb({'t': 'input', 'seq': 1, 'in': [1, 0], 'ack': u['tick']}))\n"
            "        print(welcome['ruleset']['inputs'][0]['name'], len(update), u['t'], u['tick'] > 0)\n"
            "asyncio.run(main())\n")
        client = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=30)
        assert client.stdout.split() == ["dx", "300", "update", "True"], client.stderr
    finally:
        feeder.terminate()
        rest = feeder.communicate(timeout=10)[0]
    final = json.loads(rest.splitlines()[-1])
    assert final["event"] == "exit" and final["accepted"] == 1 and final["inputs"] == 1
    assert final["bad_inputs"] == final["errors"] == 0, final

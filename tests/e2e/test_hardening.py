"""What hostile or broken clients cost the real server (issue 12), one test per kind, with ``tools.attacks``.

Each test starts ``python -m server`` on a loopback port with small limits,
so that each attack shows in a few seconds: bounded counts, bounded waits.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import ServerProcess
from tests.e2e.helpers import drift_server, serving
from tools.attacks import Hostile, Target, close_all, no_ack, non_reader, open_clients, rss_mib, spread_acks, stall
from tools.bench import Scrape, metric_sum, parse_metrics
from tools.client import GameClient

Start = Callable[..., ServerProcess]


def metrics(server: ServerProcess) -> Scrape:
    with urllib.request.urlopen(server.http + "/metrics", timeout=5) as resp:
        return parse_metrics(resp.read().decode())


async def watching(server: ServerProcess, attack: Any) -> tuple[Any, GameClient, float]:
    """Run ``attack`` while a player plays; the attack's report, the player and its updates a second meanwhile."""
    good = GameClient(server.url, "good")
    await good.connect()
    before, start = good.stats.updates, time.monotonic()
    report = await attack
    rate = (good.stats.updates - before) / (time.monotonic() - start)
    await good.close()
    return report, good, rate


def connected(server: ServerProcess) -> int:
    count: int = server.get_json("/healthz")["connected"]
    return count


def test_a_client_that_stalls_and_answers_every_update_that_waited_at_once_plays_on_and_one_stalled_past_the_ack_timeout_finds_an_error_and_1008(
        start_server: Start) -> None:
    # An allowance of 5 messages a second (bursts of 10): a 1 s backlog is 30 answers, 3 times the burst.
    server = start_server("--ruleset", "drift", "--npcs", "100", "--max-msg-rate", "5", "--ack-timeout", "2.5")
    target = Target(port=server.port)

    async def main() -> tuple[Any, Any]:
        short, long = await asyncio.gather(stall(target, 1, 1.5), stall(target, 1, 5.0))
        return short, long

    short, long = asyncio.run(main())
    assert short.notes["survived"] == 1 and short.close_codes == {} and short.errors == []
    assert long.notes["survived"] == 0 and long.close_codes == {1008: 1}  # a close frame, not a bare EOF
    assert len(long.errors) == 1 and "no acknowledgement for 2.5 s" in long.errors[0]


def test_32_clients_acknowledging_32_different_ticks_cost_at_most_four_deltas_and_a_keyframe_a_tick(
        start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "500")
    before = metrics(server)
    report, good, rate = asyncio.run(watching(server, spread_acks(Target(port=server.port), 32, 4.0)))
    after = metrics(server)
    ticks = metric_sum(after, "tickserver_ticks_total") - metric_sum(before, "tickserver_ticks_total")
    encodes = metric_sum(after, "tickserver_encodes_total") - metric_sum(before, "tickserver_encodes_total")
    assert report.joined == 32 and report.close_codes == {}
    assert encodes / ticks <= 5  # RECENT + ANCHORS deltas and a keyframe, at most
    assert good.stats.desyncs == 0 and good.stats.missing_base == 0 and rate > 25  # margin for a busy machine


def test_connections_that_never_acknowledge_get_a_keyframe_a_second_and_are_closed_with_1008_by_the_ack_timeout(
        start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "500", "--ack-timeout", "2")
    report, good, rate = asyncio.run(watching(server, no_ack(Target(port=server.port), 100, 4.0)))
    assert report.joined == 100
    assert report.close_codes == {1008: 100}
    assert any("no acknowledgement for 2 s" in e for e in report.errors)
    # A keyframe at the welcome, then on the grid at most once every 32 ticks, until closed after about 2-3 s.
    assert report.keyframes <= 100 * 4
    assert good.stats.desyncs == 0 and rate > 25


def test_clients_that_never_read_are_closed_by_the_ack_timeout_and_hold_little_memory_meanwhile(
        start_server: Start) -> None:
    # drift with 2,000 NPCs: each keyframe is 32 KB; the kernel holds at most --max-unacked (doubled) per client.
    server = start_server("--ruleset", "drift", "--npcs", "2000", "--ack-timeout", "2")
    rss0 = rss_mib(server.proc.pid) or 0.0
    peak = [rss0]

    async def main() -> Any:
        async def sample() -> None:
            while True:
                peak.append(rss_mib(server.proc.pid) or 0.0)
                await asyncio.sleep(0.2)

        sampler = asyncio.create_task(sample())
        try:
            return await non_reader(Target(port=server.port), 50, 5.0)
        finally:
            sampler.cancel()

    report = asyncio.run(main())
    assert report.upgraded == 50
    assert report.close_codes == {1008: 50}  # reading again, each finds its error and close frame
    assert max(peak) - rss0 < 16  # MiB, for 50 clients sent 32 KB keyframes
    assert connected(server) == 0


def test_the_queues_of_all_clients_together_are_capped_and_a_client_kept_over_it_is_closed_as_too_slow(
        tmp_path: Path) -> None:
    server = drift_server(tmp_path, max_queued=1 << 20, max_buffer=1 << 30, slow_timeout_s=0.5, ack_timeout_s=60)

    async def main() -> int:
        async with serving(server) as port:
            target = Target(port=port)
            clients = await open_clients(target, lambda i: Hostile(target, f"deaf{i}", i, read=False), 10)
            while len([c for c in server.connections if c.feed is not None]) < 10:
                await asyncio.sleep(0.05)
            conns = [c for c in server.connections if c.feed is not None]
            peak = 0
            for _ in range(40):  # 100 KB frames to clients that read nothing: far more than the kernel holds
                for conn in conns:
                    conn.send(bytes(100_000))
                peak = max(peak, server.queued)
                await asyncio.sleep(0.05)
            await close_all(clients, drain_s=2.0)
            return peak

    peak = asyncio.run(main())
    assert peak <= (1 << 20) + 10 * 100_010  # the cap, and at most one frame more per client that was under it
    assert server.stats["frames_dropped"] > 0 and server.stats["slow_closed"] == 10
    assert server.queued == 0

"""What hostile or broken clients cost the real server (issue 12), one test per kind, with ``tools.attacks``.

Each test starts ``python -m server`` on a loopback port with small limits,
so that each attack shows in a few seconds: bounded counts, bounded waits.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import ServerProcess
from tests.e2e.helpers import drift_server, serving
from server.app import default_max_connections
from tools.attacks import (
    Hostile,
    Target,
    close_all,
    fd_flood,
    joined,
    no_ack,
    non_reader,
    open_clients,
    rss_mib,
    seat_hold,
    spread_acks,
    stall,
)
from server.protocol.history import MAX_DELTAS
from tools.bench import Proc
from tools.bench import Scrape, metric_sum, parse_metrics
from tools.client import GameClient, ServerClosed

Start = Callable[..., ServerProcess]


def metrics(server: ServerProcess) -> Scrape:
    with urllib.request.urlopen(server.http + "/metrics", timeout=5) as resp:
        return parse_metrics(resp.read().decode())


async def watching(server: ServerProcess, attack: Any) -> tuple[Any, GameClient, float]:
    """Run ``attack`` while a player plays; the attack's report, the player, and the share of the ticks the
    server ran meanwhile that the player got an update of (1.0: every one; a busy machine's scheduling aside,
    which drops ticks, not updates)."""
    good = GameClient(server.url, "good")
    await good.connect()
    updates, tick = good.stats.updates, good.tick or 0
    report = await attack
    await good.wait_update()
    share = (good.stats.updates - updates) / max(1, (good.tick or 0) - tick)
    await good.close()
    return report, good, share


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


def test_32_clients_acknowledging_32_different_ticks_cost_at_most_three_deltas_and_a_keyframe_a_tick(
        start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "500")
    before = metrics(server)
    report, good, share = asyncio.run(watching(server, spread_acks(Target(port=server.port), 32, 4.0)))
    after = metrics(server)
    ticks = metric_sum(after, "tickserver_ticks_total") - metric_sum(before, "tickserver_ticks_total")
    encodes = metric_sum(after, "tickserver_encodes_total") - metric_sum(before, "tickserver_encodes_total")
    assert report.joined == 32 and report.close_codes == {}
    assert encodes / ticks <= MAX_DELTAS + 1  # deltas and a keyframe, at most
    assert good.stats.desyncs == 0 and good.stats.missing_base == 0 and share >= 0.97


def test_connections_that_never_acknowledge_get_a_keyframe_a_second_and_are_closed_with_1008_by_the_ack_timeout(
        start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "500", "--ack-timeout", "2")
    report, good, share = asyncio.run(watching(server, no_ack(Target(port=server.port), 100, 4.0)))
    assert report.joined == 100
    assert report.close_codes == {1008: 100}
    assert any("no acknowledgement for 2 s" in e for e in report.errors)
    # A keyframe at the welcome, then on the grid at most once every 32 ticks, until closed after about 2-3 s.
    assert report.keyframes <= 100 * 4
    assert good.stats.desyncs == 0 and share >= 0.97


def test_clients_that_never_read_are_closed_by_the_ack_timeout_and_hold_little_memory_meanwhile(
        start_server: Start) -> None:
    # drift with 2,000 NPCs: each keyframe is 32 KB; the kernel holds at most 128 KiB per client.
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


# -- exhaustion ------------------------------------------------------------------------------------


def server_with_files(soft: int, hard: int, *args: str) -> Proc:
    """``python -m server`` (drift) with an open-file limit of ``soft`` (raisable to ``hard``)."""
    return Proc(["-m", "server", "--host", "127.0.0.1", "--port", "0", "--ruleset", "drift", "--npcs", "50",
                 "--no-record", *args], "server", None, nofile=(soft, hard))


def test_the_server_raises_its_open_file_limit_to_the_hard_one_and_logs_both() -> None:
    server = server_with_files(256, 4096)
    try:
        line = next(line for line in server.log if "open files" in line)
    finally:
        server.stop()
    assert "soft limit 256, raised to 4096 (hard limit 4096)" in line
    assert f"at most {default_max_connections(4096)} connections" in line  # 4096 less 1024 and 64


def test_out_of_file_descriptors_connections_are_refused_with_503_and_one_log_line_and_players_join_after() -> None:
    # 256 files, the default --max-connections of 128 below it: a flood of 300 connections does not run them out.
    server = server_with_files(256, 256, "--max-per-address", "0")
    try:
        async def flood_and_look() -> tuple[Any, int]:
            flood = asyncio.create_task(fd_flood(Target(port=server.port), 300, 3.0))
            await asyncio.sleep(2.0)  # all 300 are open: the server is full
            health = await asyncio.to_thread(lambda: server.get("/healthz"))  # an operator still sees it
            return await flood, len(health)

        report, health = asyncio.run(flood_and_look())
        assert health > 0
        # Past the 128 that wait for a request that never comes: a 503 each, but for what a burst brings
        # faster than refused connections close (dropped at once: file descriptors come first).
        assert report.http_statuses[503] >= 20 and report.http_statuses[503] + report.close_codes[1006] == 300 - 128

        async def join_after() -> None:
            player = GameClient(server.url, "after")
            await player.connect()
            await player.close()

        asyncio.run(join_after())
        refusals = [line for line in server.log if "refusing connections" in line]
        assert len(refusals) == 1 and "--max-connections 128" in refusals[0]
        assert server.tracebacks == 0 and not any("out of system resource" in line for line in server.log)
    finally:
        server.stop()


def upgrade_with(port: int, forwarded: str | None = None) -> int:
    """The status of a WebSocket upgrade of ``/ws`` (optionally with ``X-Forwarded-For``); a 101 stays open
    until the test ends (its socket is returned to the caller through ``OPEN``)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(10)
    extra = f"X-Forwarded-For: 192.0.2.1, {forwarded}\r\n" if forwarded else ""
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n" not in head:
        head += sock.recv(4096)
    OPEN.append(sock)
    return int(head.split(b" ", 2)[1])


OPEN: list[socket.socket] = []


def test_one_address_may_open_max_per_address_connections_and_behind_a_proxy_its_forwarded_address_counts(
        start_server: Start) -> None:
    try:
        direct = start_server("--ruleset", "drift", "--npcs", "20", "--max-per-address", "3")
        assert [upgrade_with(direct.port) for _ in range(4)] == [101, 101, 101, 429]
        proxied = start_server("--ruleset", "drift", "--npcs", "20", "--max-per-address", "2",
                               "--trust-forwarded-for")
        statuses = [upgrade_with(proxied.port, f) for f in ("198.51.100.7", "198.51.100.7", "198.51.100.7",
                                                            "203.0.113.9")]
        assert statuses == [101, 101, 429, 101]  # every connection comes from 127.0.0.1: the header decides
    finally:
        for sock in OPEN:
            sock.close()
        OPEN.clear()


def status_of(port: int, path: str, forwarded: str | None = None) -> int:
    """The status of ``GET path`` (optionally with ``X-Forwarded-For``), its connection closed after."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(10)
        extra = f"X-Forwarded-For: {forwarded}\r\n" if forwarded else ""
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        head = b""
        while b"\r\n" not in head:
            head += sock.recv(4096)
        return int(head.split(b" ", 2)[1])


def test_health_and_metrics_are_neither_counted_against_nor_refused_by_max_per_address(start_server: Start) -> None:
    try:
        direct = start_server("--ruleset", "drift", "--npcs", "20", "--max-per-address", "2")
        probes = [socket.create_connection(("127.0.0.1", direct.port)) for _ in range(2)]
        OPEN.extend(probes)
        for probe, path in zip(probes, ("/healthz", "/metrics")):
            probe.sendall(f"GET {path} HTTP/1.1\r\n".encode())  # a probe under way: its head not finished
        assert status_of(direct.port, "/healthz?ready") == 200  # the probes' bytes are read by now
        assert [upgrade_with(direct.port) for _ in range(3)] == [101, 101, 429]  # the probes took no place
        assert [status_of(direct.port, p) for p in ("/healthz", "/metrics", "/healthz?ready", "/api/matches")] == [
            200, 200, 200, 429]
        proxied = start_server("--ruleset", "drift", "--npcs", "20", "--max-per-address", "1", "--trust-forwarded-for")
        assert upgrade_with(proxied.port, "198.51.100.7") == 101
        assert [status_of(proxied.port, p, "198.51.100.7") for p in ("/metrics", "/healthz", "/api/matches")] == [
            200, 200, 429]
    finally:
        for sock in OPEN:
            sock.close()
        OPEN.clear()


def test_players_that_join_and_drop_without_playing_free_their_seats_at_once(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "20", "--max-players", "10", "--hold", "30")
    report = asyncio.run(seat_hold(Target(port=server.port), 10, 0.5))  # fill the match, drop them all, no input
    assert report.joined == 10 and report.notes["newcomer"] == "welcome"  # not 1013 for the 30 s hold


def test_one_address_holds_at_most_max_per_address_players_dropped_ones_held_for_a_resume_included(
        start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "20", "--hold", "30", "--max-per-address", "3")
    target = Target(port=server.port)

    async def main() -> tuple[int, Any]:
        clients = await open_clients(target, lambda i: Hostile(target, f"played{i}", i), 3)
        await joined(clients)
        await asyncio.sleep(0.5)  # each has answered updates with inputs: a real player, held when dropped
        for c in clients:
            if c.transport is not None:
                c.transport.abort()
        await asyncio.sleep(0.3)
        late = GameClient(server.url, "fourth")
        try:
            await late.connect()
        except ServerClosed as exc:
            return len([c for c in clients if c.welcomed.done()]), exc
        await late.close()
        raise AssertionError("a fourth player of the address joined")

    welcomed, refused = asyncio.run(main())
    assert welcomed == 3
    assert refused.code == 1008 and "too many players from 127.0.0.1 (3" in refused.reason
    assert server.get_json("/healthz")["players"] == 3  # the three held for a resume

"""Draining a node: its live matches move to another node, bit for bit, and their players follow.

In one process first (``nodes``: two ``Host``s on free loopback ports sharing
one ``MemoryDirectory``, real WebSocket clients): a hand-over, a refused one,
a receiver that never answers, the admin API. Then with real Redis and real
server processes: SIGTERM, a receiver SIGKILLed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from game.rules import get_ruleset
from server.app import GameServer, binary_frame_header
from server.config import ServerConfig
from server.handover.drain import Drainer
from server.host import Host, RulesetCache, build_catalog
from server.replay import resim
from server.replay.listing import ReplayLibrary, read_replay
from server.rooms import MatchDirectory, MatchId, MemoryDirectory, NodeId, RoomType
from tests.conftest import ServerProcess
from tests.e2e.test_browser import NEEDS_CHROMIUM, Pages, browser, pages, state, wait_until  # noqa: F401 (fixtures)
from tests.e2e.test_browser import join as browser_join
from tests.e2e.test_rooms import get, until
from tests.e2e.test_server_e2e import run_cli
from tests.handover.helpers import scripted_input
from tests.redis_server import RedisServer
from tools.attacks import Hostile, Target, close_all, open_clients, report_of
from tools.client import GameClient
from tools.mmbench import http_request

Start = Callable[..., ServerProcess]

ARENA = (("npcs", 8), ("pellets", 20))


@contextlib.asynccontextmanager
async def node(tmp_path: Path, directory: MatchDirectory, name: str, settings: dict[str, Any] | None = None,
               **drain: Any) -> AsyncIterator[tuple[Host, Drainer]]:
    """A node in this process on a free loopback port, sharing ``directory`` (and ``tmp_path`` for its replays);
    ``settings``: more ``ServerConfig`` fields."""
    config = ServerConfig(port=0, ruleset="arena", options=ARENA, replay_dir=tmp_path, hold_s=10.0, **(settings or {}))
    rulesets = RulesetCache()
    room = RoomType("arena", options=dict(ARENA), tick_rate=30, max_players=8)
    catalog = build_catalog(room, rulesets, tick_rate=30, max_players=8)
    server = GameServer(config, library=ReplayLibrary(config.replay_dir))
    host = Host(server, catalog, "arena", rulesets, directory=directory, heartbeat_s=0.5, tick_s=0.25)
    host.node_id = NodeId(f"node-{name}")
    drainer = Drainer(host, **{"deadline_s": 1.0, **drain})
    host.open_default(seed=5)
    host.install()
    drainer.install()
    port = await server.start()
    tasks = [asyncio.create_task(host.serve(port)), asyncio.create_task(drainer.run())]
    running = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(host.started.wait(), 10)
        yield host, drainer
    finally:
        server.stop()
        await running
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def port_of(host: Host) -> int:
    assert host.url is not None
    return int(host.url.rsplit(":", 1)[1])


async def play(clients: list[GameClient], stop: asyncio.Event) -> None:
    """Each client sends its scripted input after every update until ``stop``."""
    async def one(c: GameClient) -> None:
        while not stop.is_set() and not c.closed:
            try:
                await c.wait_update(timeout=0.5)
            except TimeoutError:
                continue
            if c.welcome is not None and c.welcome.entity is not None:
                await c.send_input(scripted_input("arena", c.welcome.player, c.tick or 0))
    await asyncio.gather(*(one(c) for c in clients))


def test_a_drained_node_hands_its_match_over_and_every_client_follows_as_the_same_player(tmp_path: Path) -> None:
    directory = MemoryDirectory(node_ttl=5.0)

    async def main() -> dict[str, Any]:
        async with node(tmp_path, directory, "a") as (a, drain_a), node(tmp_path, directory, "b") as (b, _):
            assert a.default is not None
            mid = MatchId(a.default.match_id)
            url = f"{a.url}/ws/{mid}"
            players = [GameClient(url, f"p{i}") for i in range(3)]
            watcher = GameClient(url, "eve", spectate=True)
            for c in [*players, watcher]:
                await c.connect()
            stop = asyncio.Event()
            playing = asyncio.create_task(play(players, stop))
            await asyncio.sleep(1.0)
            before = {c.welcome.player: (c.welcome.entity, c.welcome.token) for c in players if c.welcome}
            await drain_a.start("test")
            moved = b.matches.get(mid)
            assert moved is not None and not a.matches
            await asyncio.sleep(1.0)
            stop.set()
            await playing
            info = await directory.get_match(mid, now=b.clock())
            nodes = {n.node_id: n for n in await directory.nodes(now=b.clock())}
            out = {
                "players": [(c.welcome.player, c.welcome.entity, c.welcome.token, c.welcome.resumed, c.url,
                             c.stats.moves, c.stats.desyncs, c.stats.errors, c.closed) for c in players if c.welcome],
                "watcher": (watcher.url, watcher.stats.moves, watcher.closed, watcher.welcome and watcher.welcome.entity),
                "before": before, "b_url": b.url, "mid": mid, "listed_under": info and info.node_id,
                "a_accepting": nodes[a.node_id].accepting, "gaps": [g for c in players for g in c.stats.move_gaps],
                "scores": get_ruleset("arena").scores(moved.world), "ticked_on": moved.tick_count,
                "a_stats": dict(drain_a.stats),
            }
            for c in [*players, watcher]:
                await c.close()
            return out

    got = asyncio.run(main())
    target = f"{got['b_url']}/ws/{got['mid']}"
    for player, entity, token, resumed, url, moves, desyncs, errors, closed in got["players"]:
        assert got["before"][player] == (entity, token)  # the same player, entity and token
        assert resumed and url == target and moves == 1 and desyncs == 0 and errors == [] and not closed
    assert got["watcher"][:3] == (target, 1, False) and got["watcher"][3] is None
    assert got["listed_under"] == "node-b" and got["a_accepting"] is False
    assert len(got["gaps"]) == 3 and max(got["gaps"]) < 2.0
    assert got["a_stats"]["handovers_sent"] == 1 and got["a_stats"]["handovers_failed"] == 0

    # Both recordings verify; they chain at the hand-over tick with the same state hash.
    first, second = tmp_path / f"{got['mid']}.replay", tmp_path / f"{got['mid']}-2.replay"
    ra, rb = read_replay(first), read_replay(second)
    assert ra.end is not None and rb.header.start_tick == ra.last_tick
    handed = ra.end.extra["handed_over"]
    assert handed == {"node": "node-b", "url": target, "replay": second.name, "tick": ra.last_tick}
    assert rb.header.extra["previous"] == {"node": "node-a", "replay": first.name, "tick": ra.last_tick, "hash": ra.end.hash}
    start = rb.keyframes[0]
    assert start.tick == rb.first_tick
    assert resim.Replayer(rb, get_ruleset("arena")).hash() == ra.end.hash
    for replay in (ra, rb):
        assert resim.verify(replay).ok

    # tools.replay verify --chain follows the chain in one directory, and says when a link is missing.
    both = tmp_path / "both"
    both.mkdir()
    shutil.copy(second, both / second.name)
    done = run_cli("-m", "tools.replay", "verify", str(both / second.name), "--chain", "--json")
    assert done.returncode == 2 and f"the recording before it, {first.name}, is not in" in done.stderr
    shutil.copy(first, both / first.name)
    done = run_cli("-m", "tools.replay", "verify", str(both / second.name), "--chain", "--json")
    assert done.returncode == 0, done.stderr
    chained = json.loads(done.stdout)
    assert chained["chain_ok"] and [Path(r["file"]).name for r in chained["chain"]] == [first.name, second.name]
    assert chained["chain"][1]["link"]["ok"] and all(r["ok"] for r in chained["chain"])


def test_a_refused_hand_over_leaves_the_match_playing_where_it_was_with_the_reason_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = MemoryDirectory(node_ttl=5.0)

    async def main() -> tuple[int, int, bool, int, str | None]:
        async with node(tmp_path, directory, "a") as (a, drain_a), node(tmp_path, directory, "b") as (b, drain_b):
            assert a.default is not None
            mid = MatchId(a.default.match_id)
            client = GameClient(f"{a.url}/ws/{mid}", "ann")
            await client.connect()
            drain_b.draining = "a test"  # refuses offers (and still takes matches, as far as A can tell)
            why = await drain_a.hand_over(mid, [n for n in await directory.nodes(now=a.clock()) if n.node_id == b.node_id][0])
            tick = a.default.tick_count
            await asyncio.sleep(0.5)
            info = await directory.get_match(mid, now=a.clock())
            out = (tick, a.default.tick_count, client.closed, client.stats.moves, None if info is None else info.node_id)
            await client.close()
            assert why is not None and "refused" in why
            return out

    with caplog.at_level(logging.WARNING, "server.handover"):
        tick, later, closed, moves, listed = asyncio.run(main())
    assert later > tick + 5 and not closed and moves == 0 and listed == "node-a"
    assert "handover of match" in caplog.text and "refused: node node-b is draining; it goes on here" in caplog.text


def test_a_receiver_that_never_answers_leaves_the_match_where_it_was(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    directory = MemoryDirectory(node_ttl=30.0)

    async def main() -> tuple[int, int, int | None, list[str]]:
        async with node(tmp_path, directory, "a", offer_ttl=0.3, grace=0.3) as (a, drain_a):
            await directory.heartbeat(NodeId("node-dead"), "ws://127.0.0.1:9", 0, now=a.clock())  # reads no mail
            assert a.default is not None
            mid = MatchId(a.default.match_id)
            client = GameClient(f"{a.url}/ws/{mid}", "ann")
            await client.connect()
            await drain_a.start("test")  # tries node-dead, then lets the match play until the deadline
            async with asyncio.timeout(5):
                while not client.closed:
                    await asyncio.sleep(0.05)
            return client.stats.moves, drain_a.stats["handovers_failed"], client.close_code, client.stats.errors

    with caplog.at_level(logging.INFO, "server.handover"):
        moves, failed, code, errors = asyncio.run(main())
    assert moves == 0 and failed == 1
    assert code == 1001 and errors == ["server error 1001: the server is shutting down"]
    assert "to node node-dead failed: no answer within 0.6 s; it goes on here" in caplog.text
    assert "ended by the drain" in caplog.text


#: A node's settings for a client behind on its reading: updates dropped past 64 KiB, no time-out closes it meanwhile.
BEHIND = {"max_buffer": 1 << 16, "slow_timeout_s": 30.0, "ack_timeout_s": 30.0}


async def deaf_player(host: Host) -> tuple[Hostile, Any, int]:
    """A player of ``host``'s default match that reads nothing, with more than ``BEHIND``'s buffer waiting for it
    (the kernel's buffers full first): its client, its connection, and how many frames a plain ``send`` to it
    dropped then."""
    assert host.default is not None
    target = Target(port=port_of(host), path=f"/ws/{host.default.match_id}")
    clients = await open_clients(target, lambda i: Hostile(target, "deaf", i, read=False), 1)

    async def joined() -> bool:
        return any(c.feed is not None for c in host.server.connections)

    await until(joined, 10, "the player joined")
    conn = next(c for c in host.server.connections if c.feed is not None)
    filler = msgpack.packb({"t": "roster", "pad": bytes(100_000)})  # a message the client skips
    limit = BEHIND["max_buffer"]
    for _ in range(200):
        conn.transport.write(binary_frame_header(len(filler)) + filler)
        await asyncio.sleep(0.05)
        if conn.transport.get_write_buffer_size() > limit:
            await asyncio.sleep(0.2)
            if conn.transport.get_write_buffer_size() > limit:
                break
    dropped = host.server.stats["frames_dropped"]
    conn.send(filler)
    return clients[0], conn, int(host.server.stats["frames_dropped"] - dropped)


def test_a_client_behind_on_its_reading_finds_why_the_drain_ended_its_match_before_the_1001(tmp_path: Path) -> None:
    # Its updates are dropped (more than --max-buffer waits for it), but the drain's error is not.
    directory = MemoryDirectory(node_ttl=30.0)

    async def main() -> tuple[int, Any]:
        async with node(tmp_path, directory, "a", settings=BEHIND) as (a, drain_a):
            client, conn, dropped = await deaf_player(a)
            drain = drain_a.start("test")  # no other node: the match plays until the deadline (1 s), then ends
            async with asyncio.timeout(10):
                while not conn.closing:
                    await asyncio.sleep(0.05)
            await close_all([client], drain_s=5.0)  # it reads again
            await drain
            return dropped, report_of("deaf", [client])

    dropped, report = asyncio.run(main())
    assert dropped > 0
    assert report.close_codes == {1001: 1} and report.errors == ["1001: the server is shutting down"]


def test_a_client_behind_on_its_reading_still_finds_where_its_match_moved(tmp_path: Path) -> None:
    # Its updates are dropped (more than --max-buffer waits for it), but the hand-over's ``moved`` is not.
    directory = MemoryDirectory(node_ttl=5.0)

    async def main() -> tuple[int, Hostile, str, str]:
        async with node(tmp_path, directory, "a", settings=BEHIND) as (a, drain_a), node(tmp_path, directory, "b") as (b, _):
            assert a.default is not None and b.url is not None
            mid = a.default.match_id
            client, _, dropped = await deaf_player(a)
            await drain_a.start("test")
            assert b.matches.get(MatchId(mid)) is not None and not a.matches
            await close_all([client], drain_s=5.0)  # it reads again
            return dropped, client, b.url, mid

    dropped, client, b_url, mid = asyncio.run(main())
    assert dropped > 0
    assert client.moved_to == f"{b_url}/ws/{mid}"
    assert client.close_code == 1012 and client.close_reason == f"moved to {b_url}/ws/{mid}"


def test_the_admin_drain_wants_the_right_bearer_token_and_then_drains_and_stays_up(tmp_path: Path) -> None:
    directory = MemoryDirectory(node_ttl=5.0)

    async def main() -> tuple[list[tuple[int, Any]], bool, str | None, Any, int, tuple[int, Any]]:
        async with node(tmp_path, directory, "a", admin_token="s3cret") as (a, drain_a), \
                node(tmp_path, directory, "none") as (other, _):
            port, other_port = port_of(a), port_of(other)
            asks = [
                await http_request("127.0.0.1", other_port, "POST", "/api/admin/drain", b"",
                                   headers={"Authorization": "Bearer s3cret"}),
                await http_request("127.0.0.1", port, "POST", "/api/admin/drain", b""),
                await http_request("127.0.0.1", port, "POST", "/api/admin/drain", b"",
                                   headers={"Authorization": "Bearer wrong"}),
                await http_request("127.0.0.1", port, "POST", "/api/admin/drain", b"",
                                   headers={"Authorization": "Basic czNjcmV0"}),
                await http_request("127.0.0.1", port, "GET", "/api/admin/drain"),
                await http_request("127.0.0.1", port, "POST", "/api/admin/drain", b"",
                                   headers={"Authorization": "Bearer s3cret"}),
            ]
            assert drain_a._drain is not None
            await drain_a._drain
            again = await http_request("127.0.0.1", port, "POST", "/api/admin/drain", b"",
                                       headers={"Authorization": "Bearer s3cret"})
            health = await http_request("127.0.0.1", port, "GET", "/healthz")
            ready = await http_request("127.0.0.1", port, "GET", "/healthz?ready")
            nodes = {n.node_id: n.accepting for n in await directory.nodes(now=a.clock())}
            return ([(r.status, r.json()) for r in asks], nodes[a.node_id], drain_a.draining, again.json(), health.status,
                    (ready.status, ready.json()))

    asks, accepting, draining, again, health, ready = asyncio.run(main())
    (no_api, s0), (missing, s1), (wrong, s2), (basic, s3), (get, _), (ok, s5) = asks
    assert no_api == 404 and "--admin-token" in s0["error"]
    assert (missing, basic) == (401, 401) and "Bearer" in s1["error"]
    assert wrong == 403 and s2 == {"error": "wrong admin token"}
    assert get == 405
    assert ok == 202 and s5["draining"] is True and s5["started"] is True and s5["node"] == "node-a"
    assert again["started"] is False and again["matches"] == 0
    assert accepting is False and draining == "POST /api/admin/drain"
    assert health == 200  # still up and answering, empty, and not ready
    assert ready == (503, {"ready": False, "why": "draining (POST /api/admin/drain)"})


# -- real processes on a real Redis ----------------------------------------------------------


def cluster_node(start_server: Start, redis: RedisServer, replays: Path, *args: str) -> ServerProcess:
    """An arena node on ``redis`` recording to ``replays``; it beats every 0.5 s and expires after 10 s."""
    return start_server("--ruleset", "arena", "--npcs", "8", "--pellets", "20", "--redis", redis.url,
                        "--heartbeat", "0.5", "--node-ttl", "10", "--replay-dir", str(replays), *args)


async def until_ready(*servers: ServerProcess) -> None:
    for server in servers:
        async def answered(server: ServerProcess = server) -> bool:
            return (await get(server, "/healthz?ready")).status == 200
        await until(answered, 20, f"node {server.port} ready")


def test_sigterm_moves_every_player_to_the_other_node_with_its_id_and_score_and_the_replays_chain(
        start_server: Start, own_redis: RedisServer, tmp_path: Path) -> None:
    a = cluster_node(start_server, own_redis, tmp_path, "--admin-token", "s3cret")
    b = cluster_node(start_server, own_redis, tmp_path)
    mid = a.get_json("/api/match")["match"]

    async def main() -> dict[str, Any]:
        await until_ready(a, b)
        wrong = await http_request("127.0.0.1", a.port, "POST", "/api/admin/drain", b"",
                                   headers={"Authorization": "Bearer nope"})
        players = [GameClient(f"{a.url}/{mid}", f"p{i}") for i in range(4)]
        for c in players:
            await c.connect()
        stop = asyncio.Event()
        playing = asyncio.create_task(play(players, stop))
        await asyncio.sleep(2.0)
        before = {c.welcome.player: c.welcome.entity for c in players if c.welcome}
        code = await asyncio.to_thread(a.stop, signal.SIGTERM, 30.0)
        async with asyncio.timeout(20):
            while any(c.stats.moves == 0 or c.moving for c in players):
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        stop.set()
        await playing
        on_b = (await get(b, f"/api/match?id={mid}")).json()
        out = {"wrong": (wrong.status, wrong.json()), "code": code, "before": before, "on_b": on_b,
               "clients": [(c.welcome.player, c.welcome.entity, c.welcome.resumed, c.url, c.stats.desyncs,
                            c.stats.errors, c.closed) for c in players if c.welcome]}
        for c in players:
            await c.close()
        return out

    got = asyncio.run(main())
    assert got["wrong"] == (403, {"error": "wrong admin token"})
    assert got["code"] == 0
    assert any("moved to node" in line for line in a.log), a.log[-5:]
    for player, entity, resumed, url, desyncs, errors, closed in got["clients"]:
        assert got["before"][player] == entity and resumed and not closed
        assert url == f"{b.url}/{mid}" and desyncs == 0 and errors == []
    first, second = tmp_path / f"{mid}.replay", tmp_path / f"{mid}-2.replay"
    ra, rb = read_replay(first), read_replay(second)
    assert ra.end is not None
    on_b = {p["player"]: p for p in got["on_b"]["players"]}
    assert set(on_b) == set(got["before"]) == set(ra.end.scores)
    assert all(on_b[p]["entity"] == got["before"][p] and on_b[p]["score"] >= ra.end.scores[p] for p in on_b)
    start = resim.Replayer(rb, get_ruleset("arena"))
    assert start.hash() == ra.end.hash and get_ruleset("arena").scores(start.world) == ra.end.scores
    done = run_cli("-m", "tools.replay", "verify", str(second), "--chain", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["chain_ok"]


def test_a_hand_over_whose_receiver_is_killed_mid_way_leaves_the_match_playing_on_the_sender(
        start_server: Start, own_redis: RedisServer, tmp_path: Path) -> None:
    a = cluster_node(start_server, own_redis, tmp_path, "--drain-deadline", "7")
    b = cluster_node(start_server, own_redis, tmp_path)
    mid = a.get_json("/api/match")["match"]

    async def main() -> tuple[int, int, int, int | None, list[str], int]:
        await until_ready(a, b)
        client = GameClient(f"{a.url}/{mid}", "ann")
        await client.connect()
        b.proc.send_signal(signal.SIGSTOP)  # alive in the directory, reading nothing
        a.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            while not any("draining (SIGTERM)" in line for line in a.log):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the offer is in B's mailbox
        b.proc.kill()
        async with asyncio.timeout(15):
            while not any("failed: no answer within" in line for line in a.log):
                await asyncio.sleep(0.05)
        frozen_at = client.tick or 0
        await asyncio.sleep(1.0)
        playing_on = client.tick or 0
        code = await asyncio.to_thread(a.wait_exit, 30)  # drained, then stopped: 2 s quiet (20 s once not enough)
        async with asyncio.timeout(5):
            while not client.closed:
                await asyncio.sleep(0.05)
        return frozen_at, playing_on, client.stats.moves, client.close_code, client.stats.errors, code

    frozen_at, playing_on, moves, close_code, errors, code = asyncio.run(main())
    assert playing_on > frozen_at + 10 and moves == 0  # unfrozen: it ticks on here
    line = next(line for line in a.log if "failed: no answer within" in line)
    assert f"handover of match {mid} to node" in line and "it goes on here" in line
    assert close_code == 1001 and errors == ["server error 1001: the server is shutting down"] and code == 0


@NEEDS_CHROMIUM
def test_a_browser_player_follows_its_match_to_the_other_node_as_the_same_player(
        start_server: Start, own_redis: RedisServer, tmp_path: Path, pages: Pages) -> None:
    a = cluster_node(start_server, own_redis, tmp_path)
    b = cluster_node(start_server, own_redis, tmp_path, "--allowed-origin", a.http)  # the page is A's
    for node in (a, b):  # Playwright's sync API runs a loop of its own here: no asyncio.run
        wait_until(lambda node=node: node.get_json("/healthz")["ready"], 20, what=f"node {node.port} ready")
    mid = a.get_json("/api/match")["match"]
    page = pages.open(f"{a.http}/?match={mid}")
    before = browser_join(page, "Phoenix")
    assert before["url"] == f"{a.url}/{mid}"
    assert a.stop(signal.SIGTERM, 30.0) == 0
    after = wait_until(lambda: (s := state(page))["reconnects"] == 1 and s["phase"] == "live" and s, 15,
                       what="the page to follow the match")
    assert after["url"] == f"{b.url}/{mid}" and after["resumed"] is True and after["desyncs"] == 0
    assert (after["me"], after["player"], after["token"]) == (before["me"], before["player"], before["token"])
    players = b.get_json(f"/api/match?id={mid}")["players"]
    assert [(p["name"], p["online"]) for p in players] == [("Phoenix", True)]

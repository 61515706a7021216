"""Several server processes sharing one match directory in a real Redis (``--redis``), on loopback.

Each test starts its own ``redis-server`` (``tests/redis_server.py``) and two
real ``python -m server`` processes on it; clients are real (HTTP through
``tools.client.matchmake`` and ``tools.mmbench.http_request``, WebSockets
through ``tools.client``, bot players through ``python -m tools.bots``).
Where a node dies or Redis goes, the nodes beat every 0.5 s and expire
after 2 s of silence (``--heartbeat``, ``--node-ttl``), so that a dead node
goes quickly; under the load of 200 bots they keep the defaults (2 s and
6 s): a loop that busy may miss 2 s. Waits for what the machine's load decides have wide margins; what
they wait for is checked strictly.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from server.protocol.messages import Error
from tests.conftest import ROOT, ServerProcess
from tests.e2e.test_rooms import get, hello, listed, post, refused, until
from tests.redis_server import RedisServer
from tools.client import GameClient, matchmake

Start = Callable[..., ServerProcess]

pytestmark = pytest.mark.timeout(240)

#: A node's heartbeat and time to live in these tests, seconds.
BEAT, TTL = 0.5, 2.0


@pytest.fixture
def redis_later() -> Iterator[RedisServer]:
    """A Redis of this test's own on a free port, not started yet (``start`` it; ``stop`` and start it again)."""
    server = RedisServer()
    yield server
    server.close()


def node(start_server: Start, redis: RedisServer, *args: str, quick: bool = True) -> ServerProcess:
    """A small drift server on ``redis``'s directory (8 players a match, 10 ticks a second); ``quick``: it
    beats every ``BEAT`` and expires after ``TTL``."""
    beats = ["--heartbeat", str(BEAT), "--node-ttl", str(TTL)] if quick else []
    return start_server("--ruleset", "drift", "--npcs", "0", "--max-players", "8", "--tick-rate", "10",
                        "--redis", redis.url, *beats, *args)


async def ready(server: ServerProcess, timeout: float = 15.0) -> None:
    async def answered() -> bool:
        return (await get(server, "/healthz?ready")).status == 200
    await until(answered, timeout, f"node {server.port} ready")


def port_of(url: str) -> int:
    """The port of a WebSocket URL ``ws://127.0.0.1:PORT/ws/...``."""
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


def bots(server: ServerProcess, count: int, duration: float) -> subprocess.Popen[str]:
    """``count`` bots matchmaking drift at ``server``, a quarter of them verifying every update."""
    return subprocess.Popen(
        [sys.executable, "-m", "tools.bots", "--matchmake", "drift", "--url", server.http, "--count", str(count),
         "--duration", str(duration), "--verify", str(count // 4), "--connect-rate", "0", "--json"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def test_200_bots_matchmaking_through_either_node_all_play_in_matches_spread_over_both_with_no_desync(
        start_server: Start, own_redis: RedisServer) -> None:
    a, b = node(start_server, own_redis, quick=False), node(start_server, own_redis, quick=False)
    asyncio.run(ready(a))
    asyncio.run(ready(b))
    defaults = {a.get_json("/api/match")["match"], b.get_json("/api/match")["match"]}
    runs = [bots(a, 100, 4), bots(b, 100, 4)]
    summaries = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err[-2000:] + out[-2000:]
        summaries.append(json.loads(out.strip().splitlines()[-1]))
    for summary in summaries:
        assert (summary["connected"], summary["errors"], summary["desyncs"]) == (100, 0, 0), summary
        assert summary["ticks_received"] > 0

    async def main() -> None:
        seen = [await listed(server, "?limit=1000") for server in (a, b)]
        assert seen[0].keys() == seen[1].keys()
        assert all(seen[0][m]["url"] == seen[1][m]["url"] for m in seen[0])
        made = {m: entry for m, entry in seen[0].items() if m not in defaults}
        # Matches of 8 (the default matches first; seats a bot left free again go to the next): on both nodes.
        per_node = Counter(port_of(e["url"]) for e in made.values())
        assert set(per_node) == {a.port, b.port} and min(per_node.values()) >= 2, (per_node, _notable(a, b))
        assert all(e["players"] + e["reserved"] <= e["max_players"] == 8 for e in seen[0].values())

    asyncio.run(main())
    for server in (a, b):
        assert "Traceback" not in "".join(server.log)


def test_a_killed_node_leaves_the_directory_with_its_matches_within_its_ttl_and_new_matches_go_to_the_survivor(
        start_server: Start, own_redis: RedisServer) -> None:
    a, b = node(start_server, own_redis), node(start_server, own_redis)

    async def main() -> None:
        await ready(a)
        await ready(b)
        seats = [await matchmake(a.http, "drift", mode="create") for _ in range(4)]
        assert {port_of(s.url) for s in seats} == {a.port, b.port}  # spread over both
        mine = next(s for s in seats if port_of(s.url) == a.port)
        theirs = next(s for s in seats if port_of(s.url) == b.port)
        player = GameClient.from_seat(mine, "stays", decode=False)
        doomed = GameClient.from_seat(theirs, "doomed", decode=False)
        await player.connect()
        await doomed.connect()  # b started the match a placed there, at the handshake at the latest
        assert doomed.welcome is not None and doomed.welcome.match == theirs.match
        assert {port_of(e["url"]) for e in (await listed(b)).values()} == {a.port, b.port}

        b.proc.kill()  # SIGKILL: no goodbye
        killed = time.monotonic()

        async def gone() -> bool:
            return all(port_of(e["url"]) == a.port for e in (await listed(a)).values())
        await until(gone, TTL + 5, "the killed node's matches unlisted", every=0.05)
        assert time.monotonic() - killed <= TTL + 2  # its last beat was at most a beat before the kill

        start = player.tick or 0
        await player.wait_tick(start + 10)
        fresh = [await matchmake(a.http, "drift", mode="create") for _ in range(3)]
        assert {port_of(s.url) for s in fresh} == {a.port}
        joined = GameClient.from_seat(fresh[0], "newcomer", decode=False)
        await joined.connect()
        assert joined.welcome is not None and joined.welcome.match == fresh[0].match
        for client in (player, doomed, joined):
            await client.close()

    asyncio.run(main())
    assert "Traceback" not in "".join(a.log)


def test_without_redis_matchmaking_answers_503_and_matches_play_on_and_the_node_registers_again_when_it_returns(
        start_server: Start, redis_later: RedisServer) -> None:
    server = node(start_server, redis_later)  # Redis not there yet: the node starts, not ready

    async def down(why: str) -> None:
        made = await post(server, {"ruleset": "drift"})
        assert made.status == 503 and made.json()["field"] is None, (why, made)
        assert "unavailable" in made.json()["error"] and made.json()["error"].endswith("try again")
        listing = await get(server, "/api/matches")
        assert listing.status == 503 and "unavailable" in listing.json()["error"], (why, listing)
        readiness = await get(server, "/healthz?ready")
        assert readiness.status == 503 and readiness.json()["ready"] is False, (why, readiness)
        assert redis_later.url in readiness.json()["why"]
        assert (await get(server, "/healthz")).json()["status"] == "ok"

    async def main() -> None:
        await until(lambda: _answers(server, "/healthz?ready", 503), 10, "not ready")
        await down("Redis never started")
        redis_later.start()
        await ready(server)
        seat = await matchmake(server.http, "drift", mode="create")
        player = GameClient.from_seat(seat, "plays-on", decode=False)
        await player.connect()
        await player.wait_tick((player.tick or 0) + 5)

        redis_later.stop()  # gone, as a crash
        await until(lambda: _answers(server, "/healthz?ready", 503), 10, "not ready")
        await down("Redis stopped")
        got, code = await refused(server.url, hello(name="newcomer"))
        assert code == 1013 and isinstance(got[0], Error) and got[0].reason == "directory unavailable, try again"
        start = player.tick or 0
        await player.wait_tick(start + 15)  # 1.5 s of play, the heartbeat failing 3 times meanwhile
        assert not player.closed

        redis_later.start()  # the same port, nothing stored
        await ready(server)
        entries = await listed(server)
        assert seat.match in entries and entries[seat.match]["players"] == 1
        assert server.get_json("/api/match")["match"] in entries
        again = await matchmake(server.http, "drift", mode="join", match_id=seat.match)
        other = GameClient.from_seat(again, "after", decode=False)
        await other.connect()
        await until(lambda: _players(server, seat.match, 2), 10, "both players counted")
        for client in (player, other):
            await client.close()

    asyncio.run(main())
    log = "".join(server.log)
    assert "Traceback" not in log
    # One line when each outage starts and one when it ends, not one per failed heartbeat.
    assert log.count("unavailable: ") == 2 and log.count("match directory reachable again") == 2, log


def _notable(*servers: ServerProcess) -> str:
    """The servers' log lines but for matches made and started (what to read when a count is off)."""
    return "".join(line for s in servers for line in s.log
                   if not any(word in line for word in ("created:", "placed here", "started:", "joined", "left")))


async def _answers(server: ServerProcess, path: str, status: int) -> bool:
    return (await get(server, path)).status == status


async def _players(server: ServerProcess, match: str, players: int) -> bool:
    entry: dict[str, Any] = (await listed(server)).get(match, {})
    return entry.get("players") == players


def test_a_bad_redis_url_is_one_line_and_exit_code_2() -> None:
    run = subprocess.run([sys.executable, "-m", "server", "--redis", "http://127.0.0.1:6379"], cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "argument --redis: expected redis://HOST:PORT/DB" in run.stderr
    assert "Traceback" not in run.stderr

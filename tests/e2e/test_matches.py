"""One process, several matches: each ticks on its own loop and keeps its players to itself."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from game.rules import get_ruleset
from server.app import GameServer
from server.config import ServerConfig
from server.match import Match
from tests.e2e.helpers import serving
from tools.client import GameClient


def get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return json.loads(resp.read())


def test_a_server_hosts_two_matches_each_with_its_own_loop_and_players(tmp_path: Any) -> None:
    drift, arena = get_ruleset("drift"), get_ruleset("arena")
    first = Match(drift, match_id="first", seed=1, options={"npcs": 50})
    second = Match(arena, match_id="second", seed=2, options={"npcs": 5}, tick_rate=20)
    server = GameServer(ServerConfig(port=0, record=False, replay_dir=tmp_path), [first, second])

    async def main() -> tuple[GameClient, GameClient, Any, Any]:
        async with serving(server) as port:
            a = GameClient(f"ws://127.0.0.1:{port}/ws", "ann")  # the default match
            b = GameClient(f"ws://127.0.0.1:{port}/ws/second", "bob")
            await a.connect()
            await b.connect()
            with pytest.raises(InvalidStatus) as info:
                await GameClient(f"ws://127.0.0.1:{port}/ws/third", "cat").connect()
            assert info.value.response.status_code == 404
            await a.wait_tick((a.tick or 0) + 30)
            await b.wait_tick((b.tick or 0) + 20)
            listing = await asyncio.to_thread(get_json, port, "/api/matches")
            one = await asyncio.to_thread(get_json, port, "/api/match?id=second")
            health = await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/healthz", None, 5)
            assert health.headers["Access-Control-Allow-Origin"] == "*"  # a page on another origin may ask
            assert json.loads(health.read())["matches"] == 2
            await a.close()
            await b.close()
            return a, b, listing, one

    a, b, listing, one = asyncio.run(main())
    assert a.welcome is not None and a.welcome.match == "first" and a.welcome.ruleset["name"] == "drift"
    assert b.welcome is not None and b.welcome.match == "second" and b.welcome.tick_rate == 20
    assert a.stats.desyncs == 0 and b.stats.desyncs == 0
    assert [m["match"] for m in listing["matches"]] == ["first", "second"]
    assert [p["name"] for p in one["players"]] == ["bob"]
    # Each match ran on its own schedule: 30 Hz and 20 Hz.
    assert first.tick_count > second.tick_count > 0
    # Ticks run plus ticks skipped are the deadlines each schedule passed: 30 a second and 20 a
    # second over the same time. A busy machine makes a loop skip ticks (the Ticker drops, never
    # bunches), which moves ticks from one count to the other, not the ratio of the schedules.
    first_deadlines = first.tick_count + first.ticks_dropped
    second_deadlines = second.tick_count + second.ticks_dropped
    assert 1.25 <= first_deadlines / second_deadlines <= 1.75, (first_deadlines, second_deadlines)


def test_a_game_server_refuses_two_matches_with_one_id() -> None:
    drift = get_ruleset("drift")
    with pytest.raises(ValueError, match="two feeds with the id"):
        GameServer(ServerConfig(), [Match(drift, match_id="x"), Match(drift, match_id="x")])

"""Rooms end to end: matchmaking over real HTTP, seats in real WebSocket hellos, matches made and disposed of.

The real server runs as a subprocess (``start_server``: the command line's
flags) or, where a test checks the server's own state on every tick, in this
process (``hosting``: ``Host.build`` on a free loopback port). Clients are
real: HTTP over asyncio streams (``tools.mmbench.http_request``) or urllib
(``tools.client.matchmake``), WebSockets through ``tools.client``.
Timing-based waits have wide margins (the machine is shared); what they
wait for is checked strictly.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from game.drift import DriftRuleset
from game.errors import GameError
from game.rules import Event, InputBatch
from game.world import World
from server.config import ServerConfig
from server.host import Host, RoomsConfig
from server.match import Match
from server.protocol import PROTOCOL_VERSION
from server.protocol.codec import encode_client
from server.protocol.messages import Error, Hello
from server.replay import resim
from server.replay.listing import read_replay
from server.rooms import MatchId, NodeId
from tests.conftest import ROOT, ServerProcess
from tests.e2e.helpers import messages_until_closed
from tests.userpkg.conftest import USERPKG
from tools.client import GameClient, Seat, ServerClosed, matchmake
from tools.mmbench import HttpAnswer, http_request, post_json

Start = Callable[..., ServerProcess]

pytestmark = pytest.mark.timeout(180)


class Explosive(DriftRuleset):
    """drift with a bug: a tick where any player's input is (1, 1) raises (a user's ruleset gone wrong)."""

    spec = attrs.evolve(DriftRuleset.spec, name="explosive")

    def step(self, world: World, inputs: InputBatch) -> list[Event]:
        if ((inputs.values[:, 0] == 1) & (inputs.values[:, 1] == 1)).any():
            raise ZeroDivisionError("the user's bug")
        return super().step(world, inputs)


EXPLOSIVE = f"{__name__}:Explosive"


# -- helpers ---------------------------------------------------------------------------


def drift(*args: str) -> list[str]:
    """A small drift server's flags, then ``args``."""
    return ["--ruleset", "drift", "--npcs", "0", *args]


async def post(server: ServerProcess | int, body: Any) -> HttpAnswer:
    port = server if isinstance(server, int) else server.port
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await http_request("127.0.0.1", port, "POST", "/api/matchmake", data)


async def get(server: ServerProcess | int, path: str) -> HttpAnswer:
    return await http_request("127.0.0.1", server if isinstance(server, int) else server.port, "GET", path)


async def seat(server: ServerProcess | int, **body: Any) -> Seat:
    answer = await post(server, {"ruleset": "drift", **body})
    assert answer.status == 200, answer
    return _seat(answer)


async def refused(url: str, hello: Hello) -> tuple[list[Any], int | None]:
    """Say ``hello`` on a new connection to ``url``: every message until the server closes it, and the close code."""
    async with connect(url, open_timeout=10) as ws:
        await ws.send(encode_client(hello))
        got = await messages_until_closed(ws)
        return got, ws.close_code


def hello(seat: str | None = None, name: str = "p", spectate: bool = False) -> Hello:
    return Hello(PROTOCOL_VERSION, name, spectate, seat=seat)


async def listed(server: ServerProcess | int, query: str = "") -> dict[str, dict[str, Any]]:
    answer = await get(server, f"/api/matches{query}")
    assert answer.status == 200, answer
    return {m["match"]: m for m in answer.json()["matches"]}


async def until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Await ``check()`` (a coroutine function) until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what} (last: {got!r})")
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def hosting(tmp_path: Path, rooms: RoomsConfig = RoomsConfig(), **config: Any) -> AsyncIterator[Host]:
    """A server and its rooms in this process, on a free loopback port (``host.url``), until the block ends."""
    settings = {"port": 0, "ruleset": "drift", "options": (("npcs", 0),), "record": False, "replay_dir": tmp_path,
                **config}
    host = Host.build(ServerConfig(**settings), rooms)
    host.open_default(seed=1)
    host.install()
    server = host.server
    port = await server.start()
    rooms_task = asyncio.create_task(host.serve(port))
    running = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(host.started.wait(), 10)
        yield host
    finally:
        server.stop()
        await running
        rooms_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rooms_task


def port_of(host: Host) -> int:
    assert host.url is not None
    return int(host.url.rsplit(":", 1)[1])


# -- matchmaking modes -----------------------------------------------------------------


def test_join_or_create_create_and_join_give_seats_that_seat_players_in_those_matches(start_server: Start) -> None:
    server = start_server(*drift("--max-players", "2", "--label", "mode=duel"))
    default = server.get_json("/api/match")["match"]

    async def main() -> None:
        a = await matchmake(server.http, "drift")  # join_or_create: the open default match
        b = await matchmake(server.http, "drift", mode="create", labels={"region": "eu"})
        c = await matchmake(server.http, "drift", mode="join", match_id=b.match)
        d = await matchmake(server.http, "drift", mode="join")  # the fullest open match: the default
        assert (a.match, d.match) == (default, default) and b.match == c.match != default
        assert b.url == f"ws://127.0.0.1:{server.port}/ws/{b.match}" and 0 < b.expires_in <= 15
        entries = await listed(server)
        assert entries[default]["labels"] == {"mode": "duel"} and entries[b.match]["labels"] == {"mode": "duel", "region": "eu"}
        assert [(entries[m]["players"], entries[m]["reserved"], entries[m]["max_players"]) for m in (default, b.match)] \
            == [(0, 2, 2), (0, 2, 2)]
        # Both matches are full of seats: a join finds none, a join of b is a conflict.
        none = await post(server, {"ruleset": "drift", "mode": "join"})
        full = await post(server, {"ruleset": "drift", "mode": "join", "match_id": b.match})
        assert (none.status, full.status, full.json()["field"]) == (404, 409, "match_id")

        clients = [GameClient.from_seat(s, f"p{i}", decode=False) for i, s in enumerate((a, b, c, d))]
        for client in clients:
            await client.connect()
        assert [cl.welcome.match for cl in clients if cl.welcome] == [default, b.match, b.match, default]
        entries = await listed(server)
        assert [(entries[m]["players"], entries[m]["reserved"]) for m in (default, b.match)] == [(2, 0), (2, 0)]
        assert entries[default]["tick"] > 0 and entries[default]["default"] is True
        for client in clients:
            await client.close()

    asyncio.run(main())


def test_ws_joins_the_default_room_and_goes_on_to_another_match_of_it_when_the_default_match_is_full(
        start_server: Start) -> None:
    server = start_server(*drift("--max-players", "1"))
    default = server.get_json("/api/match")["match"]

    async def main() -> None:
        first = GameClient(server.url, "first", decode=False)
        second = GameClient(server.url, "second", decode=False)
        await first.connect()
        await second.connect()
        assert first.welcome is not None and second.welcome is not None
        other = second.welcome.match
        assert first.welcome.match == default != other
        entries = await listed(server, "?ruleset=drift")
        assert entries[other]["players"] == 1 and entries[other]["default"] is False
        # A given match full: 1013, as ever; a spectator of /ws watches the default match.
        for path in (f"/ws/{default}", f"/ws/{other}"):
            got, code = await refused(f"ws://127.0.0.1:{server.port}{path}", hello())
            assert code == 1013 and isinstance(got[0], Error) and got[0].code == 1013 and "full" in got[0].reason
        watcher = GameClient(server.url, "watcher", spectate=True, decode=False)
        await watcher.connect()
        assert watcher.welcome is not None and watcher.welcome.match == default
        for client in (first, second, watcher):
            await client.close()

    asyncio.run(main())


# -- seats -----------------------------------------------------------------------------


def test_a_bad_seat_is_told_with_an_error_then_closed_with_its_code(start_server: Start) -> None:
    server = start_server(*drift())
    default = server.get_json("/api/match")["match"]
    at = f"ws://127.0.0.1:{server.port}/ws/"

    async def main() -> dict[str, tuple[list[Any], int | None]]:
        unknown = await refused(at + default, hello("no-such-seat"))
        elsewhere = await seat(server, mode="create")
        other = await refused(at + default, hello(elsewhere.token))
        mine = await seat(server, mode="join", match_id=default)
        player = GameClient.from_seat(mine, "first", decode=False)
        await player.connect()
        taken = await refused(mine.url, hello(mine.token, "second"))
        await player.close()
        # The seat for the other match is still good where it belongs.
        good = GameClient.from_seat(elsewhere, "third", decode=False)
        await good.connect()
        await good.close()
        return {"unknown": unknown, "other": other, "taken": taken}

    for what, ((first, *_), code) in asyncio.run(main()).items():
        expected = {"unknown": 4401, "other": 4403, "taken": 4409}[what]
        assert code == expected and isinstance(first, Error) and first.code == expected, (what, first, code)
    log = "".join(server.log)
    assert "Traceback" not in log


def test_a_seat_not_taken_in_time_expires_4410_and_frees_its_place(start_server: Start) -> None:
    server = start_server(*drift("--max-players", "1", "--seat-ttl", "1"))
    default = server.get_json("/api/match")["match"]

    async def main() -> None:
        late = await seat(server)
        assert late.match == default
        full = await post(server, {"ruleset": "drift", "mode": "join", "match_id": default})
        assert full.status == 409
        await asyncio.sleep(1.5)
        got, code = await refused(late.url, hello(late.token))
        assert code == 4410 and isinstance(got[0], Error) and got[0].code == 4410 and "expired" in got[0].reason

        async def free() -> bool:
            entry = (await listed(server))[default]
            return entry["reserved"] == 0 and entry["players"] == 0
        await until(free, 10, "the lapsed seat freed")
        again = await seat(server, mode="join", match_id=default)
        player = GameClient.from_seat(again, "on-time", decode=False)
        await player.connect()
        await player.close()

    asyncio.run(main())


# -- the race --------------------------------------------------------------------------


def test_200_concurrent_joins_for_the_last_3_seats_give_3_seats_and_197_conflicts_never_over_filling(
        tmp_path: Path) -> None:
    async def main() -> None:
        async with hosting(tmp_path, max_players=8) as host:
            port, match = port_of(host), host.default
            assert match is not None
            most = [0]
            match.observers.append(_Peak(most))
            direct = [GameClient(f"ws://127.0.0.1:{port}/ws/{match.match_id}", f"p{i}", decode=False) for i in range(5)]
            for client in direct:
                await client.connect()
            body = {"ruleset": "drift", "mode": "join", "match_id": match.match_id}
            answers = await asyncio.gather(*(post_json("127.0.0.1", port, "/api/matchmake", body) for _ in range(200)))
            by_status = collections.Counter(a.status for a in answers)
            assert by_status == {200: 3, 409: 197}
            assert all(a.json()["field"] == "match_id" and "full" in a.json()["error"] for a in answers if a.status == 409)
            seated = [GameClient.from_seat(_seat(a), f"s{i}", decode=False)
                      for i, a in enumerate(x for x in answers if x.status == 200)]
            for client in seated:
                await client.connect()
            got, code = await refused(f"ws://127.0.0.1:{port}/ws/{match.match_id}", hello(name="ninth"))
            assert code == 1013 and isinstance(got[0], Error)
            await asyncio.sleep(0.2)
            info = await host.directory.get_match(MatchId(match.match_id), now=time.time())
            assert info is not None and (info.players, info.reserved) == (8, 0) == (match.player_count(), 0)
            for client in direct + seated:
                await client.close()
            assert 0 < most[0] <= 8

    asyncio.run(main())


def test_200_concurrent_join_or_creates_seat_every_player_by_a_real_connection_and_never_over_fill(
        tmp_path: Path) -> None:
    async def main() -> None:
        async with hosting(tmp_path, max_players=8, tick_rate=10) as host:
            port = port_of(host)
            peaks: dict[str, list[int]] = {}
            made = host.new_match

            def watched(*args: Any, **kwargs: Any) -> Match:
                match = made(*args, **kwargs)
                match.observers.append(_Peak(peaks.setdefault(match.match_id, [0])))
                return match

            host.new_match = watched  # type: ignore[method-assign]
            assert host.default is not None
            peaks[host.default.match_id] = [0]
            host.default.observers.append(_Peak(peaks[host.default.match_id]))
            direct = [GameClient(f"ws://127.0.0.1:{port}/ws/{host.default.match_id}", f"p{i}", decode=False)
                      for i in range(5)]
            for client in direct:
                await client.connect()
            answers = await asyncio.gather(*(post_json("127.0.0.1", port, "/api/matchmake", {"ruleset": "drift"})
                                             for _ in range(200)))
            assert collections.Counter(a.status for a in answers) == {200: 200}
            seats = [_seat(a) for a in answers]
            per_match = collections.Counter(s.match for s in seats)
            assert per_match[host.default.match_id] == 3 and max(per_match.values()) <= 8
            assert len(per_match) == 1 + -(-197 // 8)  # the others shared their new matches
            players = [GameClient.from_seat(s, f"s{i}", decode=False) for i, s in enumerate(seats)]
            await asyncio.gather(*(p.connect(timeout=30) for p in players))
            assert all(p.welcome is not None and p.welcome.match == s.match for p, s in zip(players, seats))
            await asyncio.sleep(0.5)
            for info in await host.directory.list_matches(now=time.time(), limit=1000):
                assert info.players <= info.max_players and info.reserved == 0
                assert info.players == host.matches[info.match_id].player_count()
            await asyncio.gather(*(p.close() for p in direct + players))
        assert all(0 < peak[0] <= 8 for peak in peaks.values()), peaks

    asyncio.run(main())


@attrs.define
class _Peak:
    """A match observer: the most players the match has had at a tick."""

    most: list[int]

    def on_tick(self, match: Match, *args: Any) -> None:
        self.most[0] = max(self.most[0], match.player_count())

    def on_close(self, match: Match) -> None:
        pass


def _seat(answer: HttpAnswer) -> Seat:
    d = answer.json()
    return Seat(d["match"], d["url"], d["seat"], d["expires_in"])


# -- the HTTP API ----------------------------------------------------------------------


def test_bad_matchmake_requests_get_400_with_a_json_reason_naming_what_is_wrong(start_server: Start) -> None:
    server = start_server(*drift())

    async def main() -> dict[str, HttpAnswer]:
        return {
            "not json": await post(server, b"{ruleset: drift"),
            "not an object": await post(server, [1, 2]),
            "no ruleset": await post(server, {"mode": "create"}),
            "unknown ruleset": await post(server, {"ruleset": "chess"}),
            "unknown option": await post(server, {"ruleset": "drift", "options": {"bogus": 1}}),
            "option out of range": await post(server, {"ruleset": "drift", "options": {"npcs": -1}}),
            "bad label": await post(server, {"ruleset": "drift", "labels": {"Mode": "x"}}),
            "unknown mode": await post(server, {"ruleset": "drift", "mode": "steal"}),
            "no such match": await post(server, {"ruleset": "drift", "mode": "join", "match_id": "nope"}),
            "get": await get(server, "/api/matchmake"),
            "bad listing": await get(server, "/api/matches?label=mode"),
        }

    got = asyncio.run(main())
    expected = {
        "not json": (400, None, "not JSON"), "not an object": (400, None, "JSON object"),
        "no ruleset": (400, "ruleset", "missing"), "unknown ruleset": (400, "ruleset", "'chess'"),
        "unknown option": (400, "options.bogus", "'bogus'"), "option out of range": (400, "options.npcs", "npcs=-1"),
        "bad label": (400, "labels.Mode", "'Mode'"), "unknown mode": (400, "mode", "'steal'"),
        "no such match": (404, "match_id", "'nope'"), "bad listing": (400, "label", "key:value"),
    }
    for what, (status, field, words) in expected.items():
        answer = got[what]
        body = answer.json()
        assert (answer.status, body["field"]) == (status, field) and words in body["error"], (what, answer)
        assert answer.headers["content-type"] == "application/json"
    assert got["get"].status == 405 and got["get"].headers["allow"] == "POST"
    assert "Traceback" not in "".join(server.log)


def test_the_listing_and_the_catalog_are_readable_from_any_origin(start_server: Start) -> None:
    server = start_server("--ruleset", "arena", "--npcs", "3", "--label", "mode=ffa", "--max-players", "6")

    async def main() -> tuple[HttpAnswer, HttpAnswer, HttpAnswer, HttpAnswer]:
        await seat(server, mode="create", labels={"region": "eu"})
        return (await get(server, "/api/matches?ruleset=drift&label=region:eu&open=1"), await get(server, "/api/matches"),
                await get(server, "/api/matches?ruleset=arena&label=mode:ffa"), await get(server, "/api/rulesets"))

    drift_eu, everything, arena, catalog = asyncio.run(main())
    for answer in (drift_eu, everything, arena, catalog):
        assert answer.status == 200 and answer.headers["access-control-allow-origin"] == "*"
    (entry,) = drift_eu.json()["matches"]
    assert entry["ruleset"] == "drift" and entry["labels"] == {"region": "eu"} and entry["reserved"] == 1
    assert set(entry) >= {"match", "url", "players", "reserved", "max_players", "tick", "tick_rate"}
    assert len(everything.json()["matches"]) == 2
    (default,) = arena.json()["matches"]
    assert default["default"] and default["max_players"] == 6 and default["labels"] == {"mode": "ffa"}
    rulesets = {r["name"]: r for r in catalog.json()["rulesets"]}
    assert catalog.json()["default"] == "arena" and set(rulesets) == {"arena", "drift"}
    assert rulesets["arena"]["default"] and rulesets["arena"]["labels"] == {"mode": "ffa"}
    npcs = next(o for o in rulesets["arena"]["options"] if o["name"] == "npcs")
    assert npcs["default"] == 3 and npcs["lo"] <= 3 <= npcs["hi"]


# -- a match's life --------------------------------------------------------------------


def test_an_empty_match_is_disposed_of_after_the_grace_and_its_replay_verifies(start_server: Start, tmp_path: Path) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "20", "--empty-grace", "1", "--replay-dir", str(tmp_path))

    async def main() -> tuple[str, int]:
        s = await seat(server, mode="create")
        player = GameClient.from_seat(s, "mover", decode=False)
        await player.connect()
        assert player.welcome is not None
        for i in range(40):
            await player.send_input([i // 10 % 3 - 1, 1])
            await player.wait_update()
        last = player.tick or 0
        await player.close()  # a close with 1000 is a leave: gone at the next tick; the grace starts then

        async def gone() -> bool:
            return s.match not in await listed(server)
        await until(gone, 40, f"match {s.match} unlisted")
        with pytest.raises(InvalidStatus) as late:
            await refused(s.url, hello(name="late"))
        assert late.value.response.status_code == 404
        return s.match, last

    match_id, last = asyncio.run(main())
    path = tmp_path / f"{match_id}.replay"

    def closed() -> bool:
        return path.exists() and read_replay(path).complete
    deadline = time.monotonic() + 10
    while not closed():
        assert time.monotonic() < deadline, f"{path} has no end record"
        time.sleep(0.1)
    replay = read_replay(path)
    result = resim.verify(replay)
    assert result.ok and result.complete and result.final_match and replay.last_tick >= last
    server.wait_log(f"match {match_id} disposed of")  # logged after the end record is written: may come a moment later
    assert "Traceback" not in "".join(server.log)


def test_a_ruleset_that_raises_ends_its_match_alone_with_1011_and_a_replay_closed_at_its_last_tick(
        start_server: Start, tmp_path: Path) -> None:
    server = start_server("--ruleset", EXPLOSIVE, "--npcs", "5", "--replay-dir", str(tmp_path))

    async def main() -> tuple[str, str]:
        a = await seat(server, ruleset="explosive", mode="create")
        b = await seat(server, ruleset="explosive", mode="create")
        doomed = GameClient.from_seat(a, "doomed", decode=False)
        fine = GameClient.from_seat(b, "fine", decode=False)
        await doomed.connect()
        await fine.connect()
        await doomed.send_input([1, 0])
        await doomed.wait_update()
        await doomed.send_input([1, 1])
        await doomed.wait_tick((doomed.tick or 0) + 60)  # ends at the close
        assert doomed.closed and doomed.close_code == 1011
        assert any("server error 1011" in e for e in doomed.stats.errors), doomed.stats.errors
        start = fine.tick or 0
        await fine.wait_tick(start + 30)
        assert not fine.closed and (fine.tick or 0) >= start + 30
        health = (await get(server, "/healthz")).json()
        assert health["status"] == "ok"

        async def unlisted() -> bool:
            entries = await listed(server)
            return a.match not in entries and b.match in entries
        await until(unlisted, 10, "the failed match unlisted, the other listed")
        await fine.close()
        return a.match, b.match

    failed, other = asyncio.run(main())
    log = "".join(server.log)
    assert log.count("Traceback") == 1 and "ZeroDivisionError: the user's bug" in log
    assert f"match {failed} ended at tick" in log
    replay = read_replay(tmp_path / f"{failed}.replay")
    assert not replay.complete  # no end record: the world after the exception is not a state to record
    result = resim.verify(replay, ruleset=Explosive())
    assert result.ok and result.ticks > 0
    assert server.stop() == 0
    # The other match ended with the server, with its end record.
    assert read_replay(tmp_path / f"{other}.replay").complete


# -- a user's ruleset, end to end ------------------------------------------------------


def test_a_user_ruleset_plays_with_matchmaking_bots_and_its_replay_verifies_with_the_replay_tool(
        start_server: Start, tmp_path: Path) -> None:
    server = start_server("--ruleset", "tagarena:TagRuleset", "--npcs", "10", "--replay-dir", str(tmp_path),
                          pythonpath=[USERPKG])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(USERPKG)]))
    bots = subprocess.run(
        [sys.executable, "-m", "tools.bots", "--matchmake", "tagarena", "--url", server.http, "--count", "3",
         "--duration", "3", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert bots.returncode == 0, bots.stderr + bots.stdout
    summary = json.loads(bots.stdout.strip().splitlines()[-1])
    assert summary["desyncs"] == 0, summary
    listing = server.get_json("/api/matches?ruleset=tagarena")
    assert listing["matches"] and all(m["ruleset"] == "tagarena" for m in listing["matches"])
    assert server.stop() == 0
    replays = sorted(tmp_path.glob("*.replay"))
    assert replays
    for path in replays:
        assert read_replay(path).header.ruleset == "tagarena"
        verified = subprocess.run(
            [sys.executable, "-m", "tools.replay", "verify", str(path), "--ruleset", "tagarena:TagRuleset", "--json"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert verified.returncode == 0, verified.stderr + verified.stdout
        result = json.loads(verified.stdout)
        assert result["ok"] and result["complete"] and result["final_match"], result
    unknown = subprocess.run([sys.executable, "-m", "tools.replay", "verify", str(replays[0])], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "--ruleset package.module:Attr" in unknown.stderr, unknown.stderr


def test_a_failed_default_match_is_replaced_so_ws_keeps_joining_the_default_room(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("server.host.DEFAULT_RETRY_S", 0.5)

    async def main() -> None:
        async with hosting(tmp_path, ruleset=EXPLOSIVE) as host:
            url = f"ws://127.0.0.1:{port_of(host)}/ws"
            first = host.default
            assert first is not None
            doomed = GameClient(url, "doomed", decode=False)
            await doomed.connect()
            await doomed.send_input([1, 1])
            await doomed.wait_tick((doomed.tick or 0) + 60)
            assert doomed.close_code == 1011 and host.default is None

            async def replaced() -> bool:
                return host.default is not None and host.server.default_id == host.default.match_id
            await until(replaced, 10, "a new default match")
            assert host.default is not first and first.match_id not in host.matches
            player = GameClient(url, "next", decode=False)
            await player.connect()
            assert player.welcome is not None and player.welcome.match == host.default.match_id
            entries = await listed(port_of(host))
            assert first.match_id not in entries and entries[player.welcome.match]["players"] == 1
            await player.close()

    asyncio.run(main())


def test_a_node_the_directory_forgot_lists_its_matches_again_at_its_next_heartbeat(tmp_path: Path) -> None:
    async def main() -> None:
        async with hosting(tmp_path) as host:
            port = port_of(host)
            s = await seat(port, mode="create")
            player = GameClient.from_seat(s, "stays", decode=False)
            await player.connect()
            await host.directory.remove_node(host.node_id, now=time.time())
            assert await listed(port) == {}
            await host.heartbeat(time.time())
            entries = await listed(port)
            assert set(entries) == {s.match, host.default.match_id if host.default else ""}
            assert entries[s.match]["players"] == 1
            await player.close()

    asyncio.run(main())


def test_ws_on_a_full_default_match_goes_on_to_a_new_match_on_the_same_node_though_another_is_less_loaded(
        tmp_path: Path) -> None:
    async def main() -> None:
        async with hosting(tmp_path, max_players=1) as host:
            port = port_of(host)
            first = GameClient(f"ws://127.0.0.1:{port}/ws", "first", decode=False)
            await first.connect()
            # Another node, idle: a matchmake would place a new match there; a WebSocket cannot follow it.
            await host.directory.heartbeat(NodeId("node-idle"), "ws://127.0.0.1:9", 0, now=time.time())
            second = GameClient(f"ws://127.0.0.1:{port}/ws", "second", decode=False)
            await second.connect()
            assert first.welcome is not None and second.welcome is not None
            assert second.welcome.match != first.welcome.match and second.welcome.match in host.matches
            assert await host.directory.node_matches(NodeId("node-idle"), now=time.time()) == []
            for client in (first, second):
                await client.close()

    asyncio.run(main())

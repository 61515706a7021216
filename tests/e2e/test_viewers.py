"""Replay viewers on the game server: playbacks opened on first use, shared, dropped when idle or failing.

The hardening that viewers share with players (handshake limits, the rate
limit with pings, ``error`` before close, the hello timeout) is tested for
both in ``test_connection.py``; this file is about the playbacks as feeds of
the server.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from game.rules import get_ruleset
from server.app import REPLAY_PREFIX, GameServer
from server.config import ServerConfig
from server.match import Match
from server.protocol.codec import decode_server, encode_client
from server.protocol.messages import Ack, Error, Hello, ReplayInfo, ReplayStatus, Roster, Update, Welcome
from server.replay.listing import ReplayLibrary
from server.replay.playback import Playback
from server.replay.recorder import Recorder
from tests.e2e.helpers import drift_server, messages_until_closed, serving
from tests.replay.helpers import edit_tick, record_match


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with one recorded drift match (its ``.replay`` the only file)."""
    directory = tmp_path_factory.mktemp("viewers")
    record_match(directory, "drift", ticks=400, players=3, options={"npcs": 30})
    return directory


def replay_name(directory: Path) -> str:
    (path,) = directory.glob("*.replay")
    return path.name


async def watch(port: int, path: str, until_tick: int | None = None) -> tuple[list[Any], int | None]:
    """A viewer of ``path``: hello, then an ack per update; what it got and the close code (None: it left
    at ``until_tick``)."""
    got: list[Any] = []
    async with connect(f"ws://127.0.0.1:{port}{path}") as ws:
        await ws.send(encode_client(Hello(1, "v", True)))
        try:
            async for data in ws:
                msg = decode_server(data)
                got.append(msg)
                if isinstance(msg, Update):
                    await ws.send(encode_client(Ack(msg.tick)))
                    if until_tick is not None and msg.tick >= until_tick:
                        return got, None
        except ConnectionClosed:
            pass
        return got, ws.close_code


def test_the_game_server_plays_a_replay_of_its_directory_beside_its_match(recorded: Path) -> None:
    server = drift_server(recorded)
    name = replay_name(recorded)

    async def main() -> tuple[list[Any], int]:
        async with serving(server) as port:
            got, _ = await asyncio.wait_for(watch(port, f"/ws?replay={name}", until_tick=40), 20)
            return got, server.match.tick_count

    got, match_tick = asyncio.run(main())
    assert [type(m) for m in got[:4]] == [Welcome, ReplayInfo, Roster, ReplayStatus]
    info = got[1]
    assert isinstance(info, ReplayInfo) and info.name == name and info.last == 400 and info.complete
    updates = [m for m in got if isinstance(m, Update)]
    assert updates[0].base is None and updates[-1].tick == 40 and all(u.base is not None for u in updates[1:])
    assert match_tick > 0  # the live match ticked meanwhile, on its own loop


def test_the_game_server_plays_its_own_match_while_it_records_it(tmp_path: Path) -> None:
    match = Match(get_ruleset("drift"), match_id="live", options={"npcs": 30})
    recorder = Recorder.create(match, tmp_path)
    match.observers.append(recorder)
    server = GameServer(ServerConfig(port=0, record=False, replay_dir=tmp_path), match)
    assert recorder.path is not None

    async def main() -> list[Any]:
        async with serving(server) as port:
            await asyncio.sleep(1.5)  # some ticks, flushed (every 0.5 s), a checkpoint at tick 30
            got, _ = await asyncio.wait_for(watch(port, f"/ws?replay={recorder.path.name}", until_tick=20), 20)
            return got

    got = asyncio.run(main())
    info = next(m for m in got if isinstance(m, ReplayInfo))
    assert info.match == "live" and not info.complete and info.last >= 30  # cut where the writer had got to
    assert max(m.tick for m in got if isinstance(m, Update)) == 20


@pytest.mark.parametrize("name, reason", [
    ("nope.replay", "no replay 'nope.replay' here"),
    ("../escape.replay", "no replay '../escape.replay' here"),
    ("", "name a replay: /ws?replay=NAME"),
])
def test_a_replay_that_cannot_be_opened_gets_an_error_and_1008_after_the_hello(
        recorded: Path, name: str, reason: str) -> None:
    server = drift_server(recorded)

    async def main() -> tuple[list[Any], int | None]:
        async with serving(server) as port:
            return await asyncio.wait_for(watch(port, f"/ws?replay={name}"), 10)

    got, code = asyncio.run(main())
    assert code == 1008 and len(got) == 1
    assert isinstance(got[0], Error) and got[0].code == 1008 and reason in got[0].reason


def test_a_replay_server_plays_its_one_file_at_ws_and_asks_for_a_name_when_it_has_a_directory(recorded: Path) -> None:
    config = ServerConfig(port=0, record=False, replay_dir=recorded)
    one = GameServer(config, library=ReplayLibrary(recorded, replay_name(recorded)))
    every = GameServer(config, library=ReplayLibrary(recorded))

    async def main() -> tuple[list[Any], list[Any], int | None]:
        async with serving(one) as port:
            played, _ = await asyncio.wait_for(watch(port, "/ws", until_tick=3), 10)
        async with serving(every) as port:
            refused, code = await asyncio.wait_for(watch(port, "/ws"), 10)
        return played, refused, code

    played, refused, code = asyncio.run(main())
    assert isinstance(played[0], Welcome) and any(isinstance(m, Update) for m in played)
    assert code == 1008 and isinstance(refused[0], Error) and "name a replay" in refused[0].reason


def test_a_playback_is_loaded_once_on_a_worker_thread_while_the_match_ticks(
        recorded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = drift_server(recorded)
    loads: list[str] = []
    real = GameServer._load

    def slow_load(self: GameServer, name: str) -> Playback:
        loads.append(threading.current_thread().name)
        time.sleep(0.5)  # a large replay: the match must tick on meanwhile
        return real(self, name)

    monkeypatch.setattr(GameServer, "_load", slow_load)
    path = f"/ws?replay={replay_name(recorded)}"

    async def main() -> tuple[list[tuple[list[Any], int | None]], int, int]:
        async with serving(server) as port:
            await asyncio.sleep(0.1)
            before = server.match.tick_count
            viewers = [asyncio.create_task(watch(port, path, until_tick=10)) for _ in range(3)]
            await asyncio.sleep(0.4)
            during = server.match.tick_count - before
            return await asyncio.wait_for(asyncio.gather(*viewers), 20), during, len(server.feeds)

    results, ticked, feeds = asyncio.run(main())
    assert len(loads) == 1 and loads[0] != threading.main_thread().name
    assert ticked >= 6  # some 12 ticks in 0.4 s at 30 Hz, under load: the loop was never blocked
    assert feeds == 2  # the match and one playback, shared by the three viewers
    for got, code in results:
        assert code is None and isinstance(got[0], Welcome)
        assert max(m.tick for m in got if isinstance(m, Update)) >= 10


def test_a_playback_nobody_watches_is_dropped_and_opened_again_for_the_next_viewer(recorded: Path) -> None:
    server = drift_server(recorded)
    server.idle_s = 0.3
    feed_id = REPLAY_PREFIX + replay_name(recorded)
    path = f"/ws?replay={replay_name(recorded)}"

    async def main() -> tuple[Any, bool, Any, list[Any]]:
        async with serving(server) as port:
            await asyncio.wait_for(watch(port, path, until_tick=5), 10)
            first = server.feeds.get(feed_id)
            for _ in range(50):  # the sweep runs every idle_s / 2
                await asyncio.sleep(0.1)
                if feed_id not in server.feeds:
                    break
            dropped = feed_id not in server.feeds
            got, _ = await asyncio.wait_for(watch(port, path, until_tick=5), 10)
            return first, dropped, server.feeds.get(feed_id), got

    first, dropped, second, got = asyncio.run(main())
    assert isinstance(first, Playback) and dropped
    assert isinstance(second, Playback) and second is not first
    assert [m.tick for m in got if isinstance(m, Update)][0] == 1  # a new playback, from the start


def test_the_server_drops_a_failing_playback_and_keeps_serving_the_others(tmp_path: Path, recorded: Path) -> None:
    data = (recorded / replay_name(recorded)).read_bytes()
    (tmp_path / "good.replay").write_bytes(data)
    (tmp_path / "bad.replay").write_bytes(edit_tick(data, 15, [1, 15, [], [], [0, [1, b""], [[0, None, b"\x01"]]]]))
    server = GameServer(ServerConfig(port=0, record=False, replay_dir=tmp_path), library=ReplayLibrary(tmp_path))

    async def main() -> None:
        async with serving(server) as port:
            good = asyncio.create_task(watch(port, "/ws?replay=good.replay", until_tick=45))
            bad_msgs, code = await asyncio.wait_for(watch(port, "/ws?replay=bad.replay"), 10)
            assert code == 1008
            (error,) = [m for m in bad_msgs if isinstance(m, Error)]
            assert error.code == 1008 and "tick 15" in error.reason
            assert max(m.tick for m in bad_msgs if isinstance(m, Update)) == 14
            good_msgs, good_code = await asyncio.wait_for(good, 10)  # still playing, past the other's failure
            assert good_code is None and not [m for m in good_msgs if isinstance(m, Error)]
            for _ in range(30):  # the sweep drops a failed playback within a second
                if REPLAY_PREFIX + "bad.replay" not in server.feeds:
                    break
                await asyncio.sleep(0.1)
            assert REPLAY_PREFIX + "bad.replay" not in server.feeds
            assert REPLAY_PREFIX + "good.replay" in server.feeds

    asyncio.run(main())


def test_stopping_the_server_closes_viewers_with_1001(recorded: Path) -> None:
    server = drift_server(recorded)

    async def main() -> tuple[list[Any], int | None]:
        port = await server.start()
        running = asyncio.create_task(server.run())
        async with connect(f"ws://127.0.0.1:{port}/ws?replay={replay_name(recorded)}") as ws:
            await ws.send(encode_client(Hello(1, "v", True)))
            assert isinstance(decode_server(await asyncio.wait_for(ws.recv(), 10)), Welcome)
            server.stop()
            got = await messages_until_closed(ws)
            await asyncio.wait_for(running, 10)
            return got, ws.close_code

    got, code = asyncio.run(main())
    assert code == 1001 and not [m for m in got if isinstance(m, Error)]

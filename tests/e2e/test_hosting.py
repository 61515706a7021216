"""The game server's registry of feeds and its admission hook: what a rooms layer builds on.

``add_feed`` hosts a feed (ticking at once if the server runs), ``remove_feed``
stops it and closes its connections (1001 and a reason), a feed whose tick
raises goes alone (1011), and ``admit`` is awaited between a valid hello and
the feed's ``connect``, with the messages that come meanwhile held in order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from game.rules import get_ruleset
from server.app import EARLY_MESSAGES, Connection
from server.match import Match
from server.protocol.codec import decode_server, encode_client
from server.protocol.errors import PolicyViolation
from server.protocol.messages import Error, Hello, Ping, Pong, Welcome
from tests.e2e.helpers import drift_server, messages_until_closed, serving


def small_match(match_id: str) -> Match:
    return Match(get_ruleset("drift"), match_id=match_id, options={"npcs": 10})


async def joined(port: int, path: str, name: str = "p") -> ClientConnection:
    """A connection to ``path`` that said hello and got its welcome."""
    ws = await connect(f"ws://127.0.0.1:{port}{path}")
    await ws.send(encode_client(Hello(1, name)))
    while not isinstance(decode_server(await asyncio.wait_for(ws.recv(), 10)), Welcome):
        pass
    return ws


def test_a_feed_added_to_a_running_server_ticks_and_takes_connections_at_once(tmp_path: Path) -> None:
    server = drift_server(tmp_path)
    extra = small_match("extra")

    async def main() -> tuple[int, list[str]]:
        async with serving(server) as port:
            await asyncio.sleep(0.1)
            server.add_feed("extra", extra)
            ws = await joined(port, "/ws/extra")
            await asyncio.sleep(0.3)
            await ws.close()
            return extra.tick_count, list(server.matches)

    ticks, matches = asyncio.run(main())
    assert ticks >= 5 and matches == ["m", "extra"]
    assert server.default_id == "m"  # the first match stays the default


def test_removing_a_feed_stops_it_and_closes_its_connections_with_1001_and_the_reason(tmp_path: Path) -> None:
    server = drift_server(tmp_path)
    extra = small_match("extra")
    server.add_feed("extra", extra)
    closed: list[str] = []

    class Observer:
        def on_tick(self, *args: Any) -> None:
            pass

        def on_close(self, match: Match) -> None:
            closed.append(match.match_id)

    extra.observers.append(Observer())

    async def main() -> tuple[list[Any], int | None, int, int, int | None]:
        async with serving(server) as port:
            ws = await joined(port, "/ws/extra")
            other = await joined(port, "/ws")
            assert server.remove_feed("extra", "the match is over: 3 to 2") is extra
            got = await messages_until_closed(ws)
            stopped_at = extra.tick_count
            await asyncio.sleep(0.2)
            ticked_after = extra.tick_count - stopped_at
            try:
                await joined(port, "/ws/extra")
                status = None
            except Exception as exc:  # the handshake is refused
                status = getattr(getattr(exc, "response", None), "status_code", None)
            still = other.close_code
            await other.close()
            return got, ws.close_code, ticked_after, still is None, status

    got, code, ticked_after, other_open, status = asyncio.run(main())
    assert code == 1001 and not [m for m in got if isinstance(m, Error)]
    assert ticked_after == 0 and other_open and status == 404
    assert closed == ["extra"] and server.remove_feed("extra") is None


def test_a_feed_whose_tick_raises_goes_alone_with_an_error_and_1011(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = drift_server(tmp_path)
    broken = small_match("broken")
    server.add_feed("broken", broken)

    async def main() -> tuple[list[Any], int | None, int, int]:
        async with serving(server) as port:
            ws = await joined(port, "/ws/broken")
            good = await joined(port, "/ws")

            def boom(now: float) -> None:
                raise RuntimeError("a bug in the ruleset")

            broken.tick = boom  # type: ignore[method-assign]
            got = await messages_until_closed(ws)
            before = server.match.tick_count
            await asyncio.sleep(0.3)
            after = server.match.tick_count
            await good.close()
            return got, ws.close_code, before, after

    got, code, before, after = asyncio.run(main())
    assert code == 1011 and isinstance(got[-1], Error) and got[-1].code == 1011
    assert "broken" not in server.feeds and after > before  # the other match went on
    assert "a bug in the ruleset" in caplog.text


def test_the_admission_hook_runs_between_the_hello_and_the_join_and_messages_wait_in_order(tmp_path: Path) -> None:
    server = drift_server(tmp_path)
    seen: list[tuple[str, str, bool]] = []

    async def admit(feed_id: str, hello: Hello, conn: Connection) -> None:
        seen.append((feed_id, hello.name, server.match.members == {}))
        await asyncio.sleep(0.3)  # an asynchronous directory

    server.admit = admit

    async def main() -> list[Any]:
        async with serving(server) as port:
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(encode_client(Hello(1, "seated")))
                for i in range(1, 6):
                    await ws.send(encode_client(Ping(i)))
                got: list[Any] = []
                while sum(isinstance(m, Pong) for m in got) < 5 or not any(isinstance(m, Welcome) for m in got):
                    got.append(decode_server(await asyncio.wait_for(ws.recv(), 10)))
                return got

    got = asyncio.run(main())
    assert seen == [("m", "seated", True)]  # before the match knew the connection
    assert [m.id for m in got if isinstance(m, Pong)] == [1, 2, 3, 4, 5]


def test_an_admission_refused_with_a_protocol_error_gets_its_error_and_close_code(tmp_path: Path) -> None:
    server = drift_server(tmp_path)

    async def admit(feed_id: str, hello: Hello, conn: Connection) -> None:
        await asyncio.sleep(0.05)
        raise PolicyViolation("that seat is not yours", 4403)

    server.admit = admit

    async def main() -> tuple[list[Any], int | None]:
        async with serving(server) as port:
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(encode_client(Hello(1, "intruder")))
                return await messages_until_closed(ws), ws.close_code

    got, code = asyncio.run(main())
    assert code == 4403 and got == [Error(4403, "that seat is not yours")]
    assert server.match.members == {}


def test_messages_waiting_for_an_admission_are_bounded(tmp_path: Path) -> None:
    server = drift_server(tmp_path)
    release = asyncio.Event()

    async def admit(feed_id: str, hello: Hello, conn: Connection) -> None:
        await release.wait()

    server.admit = admit

    async def main() -> tuple[list[Any], int | None]:
        async with serving(server) as port:
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(encode_client(Hello(1, "pushy")))
                for i in range(EARLY_MESSAGES + 1):
                    await ws.send(encode_client(Ping(i)))
                got = await messages_until_closed(ws)
                release.set()
                return got, ws.close_code

    got, code = asyncio.run(main())
    assert code == 1008 and len(got) == 1 and isinstance(got[0], Error)
    assert f"more than {EARLY_MESSAGES} messages before the hello was admitted" in got[0].reason
    assert server.match.members == {}


def test_a_connection_gone_during_its_admission_cancels_it_and_never_joins(tmp_path: Path) -> None:
    server = drift_server(tmp_path)
    cancelled = asyncio.Event()

    async def admit(feed_id: str, hello: Hello, conn: Connection) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server.admit = admit

    async def main() -> None:
        async with serving(server) as port:
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(encode_client(Hello(1, "leaver")))
                await asyncio.sleep(0.1)
            await asyncio.wait_for(cancelled.wait(), 5)
            await asyncio.sleep(0.1)
            assert server.match.members == {} and server.connections == set()

    asyncio.run(main())


def test_a_game_server_refuses_a_feed_id_a_path_cannot_name(tmp_path: Path) -> None:
    server = drift_server(tmp_path)
    for bad in ("", "a/b", "a?b"):
        with pytest.raises(ValueError, match="no '/' or '?'"):
            server.add_feed(bad, small_match("x"))
    assert list(server.feeds) == ["m"]

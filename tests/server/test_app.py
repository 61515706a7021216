"""The asyncio shell's own byte handling, checked against the websockets library, and its router."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from game.rules import get_ruleset
from server.app import REPLAY_PREFIX, GameServer, SlowReader, Target, binary_frame_header, outgoing_close
from server.config import ServerConfig
from server.match import Match
from server.replay.listing import ReplayLibrary
from server.web import HttpRequest


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_frame_header_matches_what_websockets_writes(size: int) -> None:
    payload = bytes(size)
    assert binary_frame_header(size) + payload == Frame(Opcode.BINARY, payload).serialize(mask=False, extensions=[])


@pytest.mark.parametrize("code", [1002, 1007, 1009, 1011])
def test_the_close_frame_the_library_fails_with_is_read_back_from_its_output(code: int) -> None:
    protocol = ServerProtocol(state=State.OPEN)
    protocol.send_ping(b"before")  # frames ahead of the close frame are skipped
    protocol.fail(code, "why it failed")
    close = outgoing_close(protocol.data_to_send())
    assert close is not None and (close.code, close.reason) == (code, "why it failed")


def test_output_without_a_close_frame_has_no_close() -> None:
    protocol = ServerProtocol(state=State.OPEN)
    protocol.send_pong(b"\x88\x88")  # a payload that looks like a close frame's first byte
    assert outgoing_close(protocol.data_to_send()) is None


def test_a_slow_reader_is_given_up_on_only_after_its_queue_stays_full_for_the_timeout() -> None:
    stats = {"frames_dropped": 0, "slow_closed": 0}
    slow = SlowReader(max_buffer=1000, timeout_s=5.0, stats=stats)
    assert [slow.dropped(t) for t in (100.0, 103.0, 105.0)] == [False, False, False]
    slow.since = None  # an update went out: the queue drained
    assert [slow.dropped(t) for t in (106.0, 110.0, 111.5)] == [False, False, True]
    assert stats == {"frames_dropped": 6, "slow_closed": 1}
    assert "1000 bytes" in slow.reason() and "5 s" in slow.reason()


# -- the router: what a path names, without a socket ------------------------------------


def hosting(tmp_path: Path, *match_ids: str, only: str | None = None) -> GameServer:
    matches = [Match(get_ruleset("drift"), match_id=m, options={"npcs": 5}) for m in match_ids]
    return GameServer(ServerConfig(record=False, replay_dir=tmp_path), matches, library=ReplayLibrary(tmp_path, only))


@pytest.mark.parametrize("path, target", [
    ("/ws", Target("a")),
    ("/ws?token=x", Target("a")),
    ("/ws/b", Target("b")),
    ("/ws?replay=x.replay", Target(REPLAY_PREFIX + "x.replay", "x.replay")),
    ("/ws?replay=", Target(REPLAY_PREFIX, "")),  # told after the hello: name a replay
])
def test_a_websocket_path_names_a_match_or_a_replay(tmp_path: Path, path: str, target: Target) -> None:
    assert hosting(tmp_path, "a", "b").target(path) == target


@pytest.mark.parametrize("path", ["/ws/c", "/ws/", "/ws/b?replay=x.replay", f"/ws/{REPLAY_PREFIX}x.replay"])
def test_a_websocket_path_naming_no_match_is_refused_with_404(tmp_path: Path, path: str) -> None:
    answer = hosting(tmp_path, "a", "b").target(path)
    assert isinstance(answer, Response) and answer.status_code == 404


def test_a_replay_server_plays_its_one_file_or_asks_for_a_name_at_ws(tmp_path: Path) -> None:
    assert hosting(tmp_path, only="one.replay").target("/ws") == Target(REPLAY_PREFIX + "one.replay", "one.replay")
    assert hosting(tmp_path).target("/ws") == Target(REPLAY_PREFIX, "")


def test_the_root_of_a_replay_server_is_the_replay_viewer(tmp_path: Path) -> None:
    request = HttpRequest("GET", "/", Headers())
    replays = hosting(tmp_path).respond(request)
    game = hosting(tmp_path, "a").respond(request)
    assert isinstance(replays, Response) and b"replay.js" in replays.body
    assert isinstance(game, Response) and b"replay.js" not in game.body


def test_a_feed_that_drops_ticks_gets_one_warning_per_sweep_with_the_count(tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    from server.ticker import Ticker

    match = Match(get_ruleset("drift"), match_id="m", options={"npcs": 5})
    server = GameServer(ServerConfig(record=False, replay_dir=tmp_path), match)
    match.ticker = Ticker(30, 0.0)
    server._warn_dropped()
    match.ticker.dropped = 7
    with caplog.at_level("WARNING", logger="server"):
        server._warn_dropped()
        server._warn_dropped()  # nothing new
    [record] = caplog.records
    assert record.getMessage() == "m dropped 7 ticks (7 in all): its loop fell behind"
    assert (record.event, record.match, record.dropped) == ("ticks_dropped", "m", 7)


class GoneTransport:
    """A transport whose client reset the connection while we waited for its request: it is closing."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def test_a_refused_client_that_is_gone_already_is_dropped_without_an_exception(tmp_path: Path) -> None:
    import asyncio

    from server.app import Connection

    async def refuse() -> GoneTransport:
        server = GameServer(ServerConfig(record=False, replay_dir=tmp_path))
        conn = Connection(server)
        transport = GoneTransport()
        conn.transport = transport
        conn._until_request(429, "too many connections from 127.0.0.1")
        assert server.refusing == 1
        conn._refuse_pending()  # no request came in time
        assert server.stats["address_refused"] == 1 and server.refusing == 0
        return transport

    transport = asyncio.run(refuse())
    assert transport.written == []

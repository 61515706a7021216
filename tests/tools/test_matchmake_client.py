"""The client side of matchmaking (``tools.client.matchmake``, ``GameClient.from_seat``, ``tools.bots --matchmake``).

Our client against real HTTP: a tiny ``http.server`` on 127.0.0.1, started
by each test, serves canned answers and records what it was sent. It stands
for no game server; the game server's own matchmaking is tested in
``tests/rooms`` and end to end in ``tests/e2e``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgpack
import pytest
from websockets.asyncio.server import ServerConnection, serve

from server.rooms.errors import MatchmakeError
from tools import bots
from tools.client import (
    GameClient,
    NoMatchmakeAnswer,
    Seat,
    ServerClosed,
    matchmake,
    matchmake_request,
    parse_seat,
)

SEAT = {"match": "m1", "url": "ws://127.0.0.1:9/ws/m1", "seat": "tok-1", "expires_in": 15.0}


class Canned:
    """An HTTP server on a free loopback port answering every request with ``status`` and ``body``.

    Attributes:
        requests: (method, path, headers, body) of each request received.
    """

    def __init__(self) -> None:
        self.status = 200
        self.body: bytes = json.dumps(SEAT).encode()
        self.content_type = "application/json"
        self.delay = 0.0
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                canned.requests.append(("POST", self.path, dict(self.headers.items()), body))
                time.sleep(canned.delay)
                self.send_response(canned.status)
                self.send_header("Content-Type", canned.content_type)
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                try:
                    self.wfile.write(canned.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def answer(self, status: int, body: Any, content_type: str = "application/json") -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.content_type = content_type

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def canned() -> Iterator[Canned]:
    server = Canned()
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- the request -------------------------------------------------------------------


def test_matchmake_posts_the_request_as_json_and_returns_the_seat(canned: Canned) -> None:
    seat = asyncio.run(matchmake(canned.url + "/", "arena", mode="create", labels={"mode": "ffa", "region": "eu"},
                                 options={"npcs": 40}))
    assert seat == Seat("m1", "ws://127.0.0.1:9/ws/m1", "tok-1", 15.0)
    [(method, path, headers, body)] = canned.requests
    assert (method, path) == ("POST", "/api/matchmake")
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"ruleset": "arena", "mode": "create", "labels": {"mode": "ffa", "region": "eu"},
                                "options": {"npcs": 40}}


def test_matchmake_sends_only_what_is_given(canned: Canned) -> None:
    asyncio.run(matchmake(canned.url, "tagarena"))
    asyncio.run(matchmake(canned.url, "tagarena", mode="join", match_id="m7"))
    assert [json.loads(r[3]) for r in canned.requests] == [
        {"ruleset": "tagarena", "mode": "join_or_create"},
        {"ruleset": "tagarena", "mode": "join", "match_id": "m7"},
    ]


@pytest.mark.parametrize(
    "url, kwargs, words",
    [
        ("ws://127.0.0.1:1/ws", {}, "HTTP address"),
        ("http://h", {"mode": "joinOrCreate"}, "unknown matchmake mode"),
        ("http://h", {"mode": "create", "match_id": "m1"}, "match_id goes with mode join"),
        ("http://h", {"mode": "join", "options": {"npcs": 1}}, "options go with a mode that may create"),
    ],
)
def test_a_request_the_server_would_refuse_anyway_is_our_misuse(url: str, kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        matchmake_request(url, "arena", **kwargs)


# -- the answer --------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404, 409, 413, 503])
def test_a_refusal_is_the_servers_error_with_its_status_reason_and_field(canned: Canned, status: int) -> None:
    canned.answer(status, {"error": "unknown option 'gravity' of ruleset 'arena'; known: npcs, pellets", "field": "options.gravity"})
    with pytest.raises(MatchmakeError) as info:
        asyncio.run(matchmake(canned.url, "arena", options={"gravity": 3}))
    assert (info.value.status, info.value.field) == (status, "options.gravity")
    assert info.value.reason == "unknown option 'gravity' of ruleset 'arena'; known: npcs, pellets"
    assert str(info.value) == f"options.gravity: {info.value.reason} (HTTP {status})"


def test_a_refusal_without_a_field_says_only_the_reason(canned: Canned) -> None:
    canned.answer(503, {"error": "no live node accepts new matches", "field": None})
    with pytest.raises(MatchmakeError, match=r"^no live node accepts new matches \(HTTP 503\)$") as info:
        asyncio.run(matchmake(canned.url, "arena"))
    assert info.value.field is None


def test_a_refusal_that_is_not_the_servers_json_names_the_status(canned: Canned) -> None:
    canned.answer(502, b"<html>Bad Gateway</html>", "text/html")
    with pytest.raises(MatchmakeError) as info:
        asyncio.run(matchmake(canned.url, "arena"))
    assert info.value.status == 502 and "without saying why" in info.value.reason


@pytest.mark.parametrize(
    "body, missing",
    [
        (b"not json", "not a JSON object"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({**SEAT, "seat": None}).encode(), "'seat'"),
        (json.dumps({k: v for k, v in SEAT.items() if k != "url"}).encode(), "'url'"),
        (json.dumps({**SEAT, "expires_in": True}).encode(), "'expires_in'"),
    ],
)
def test_an_answer_without_a_seat_in_it_is_no_answer(body: bytes, missing: str) -> None:
    with pytest.raises(NoMatchmakeAnswer, match=missing) as info:
        parse_seat("http://h/api/matchmake", 200, body)
    assert str(info.value).startswith("no seat from http://h/api/matchmake: the answer")


def test_a_whole_number_of_seconds_is_a_seat_too() -> None:
    assert parse_seat("http://h/api/matchmake", 200, json.dumps({**SEAT, "expires_in": 15}).encode()).expires_in == 15.0


def test_no_server_is_no_answer() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(NoMatchmakeAnswer, match="cannot reach it") as info:
        asyncio.run(matchmake(url, "arena"))
    assert isinstance(info.value, OSError) and info.value.url == url + "/api/matchmake"


def test_a_server_that_answers_too_late_is_no_answer(canned: Canned) -> None:
    canned.delay = 1.0
    started = time.monotonic()
    with pytest.raises(NoMatchmakeAnswer, match="timed out"):
        asyncio.run(matchmake(canned.url, "arena", timeout=0.2))
    assert time.monotonic() - started < 1.0


def test_matchmake_does_not_block_the_event_loop(canned: Canned) -> None:
    canned.delay = 0.3

    async def main() -> int:
        ticks = 0

        async def count() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        counter = asyncio.create_task(count())
        await matchmake(canned.url, "arena")
        counter.cancel()
        return ticks

    assert asyncio.run(main()) >= 10


# -- connecting with the seat ---------------------------------------------------------


def test_a_client_from_a_seat_connects_to_the_seats_url_and_presents_it_in_hello() -> None:
    """Needs ``Hello.seat`` in server/protocol (issue 9, being added): fails with a TypeError until it lands."""
    got: list[tuple[str, dict[str, Any]]] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        got.append((ws.request.path, msgpack.unpackb(await ws.recv(), raw=False)))
        await ws.close(4410, "seat expired (seats are held 15 s): matchmake again")

    async def main() -> ServerClosed:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            seat = Seat("m1", f"ws://127.0.0.1:{port}/ws/m1", "tok-1", 15.0)
            client = GameClient.from_seat(seat, "ann")
            with pytest.raises(ServerClosed) as info:
                await client.connect(timeout=5)
            return info.value

    closed = asyncio.run(main())
    # This server announces no minor version (no Tickserver-Protocol header): a 1.0 server gets a plain hello.
    assert got == [("/ws/m1", {"t": "hello", "v": 1, "name": "ann", "seat": "tok-1"})]
    assert closed.code == 4410 and "seat expired" in closed.reason


def test_a_client_presents_a_resume_token_or_a_seat_never_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        GameClient("ws://h/ws/m1", "ann", token="resume", seat="tok-1")
    client = GameClient("ws://h/ws/m1", "ann", token="resume")
    with pytest.raises(ValueError, match="not both"):
        client.take_seat(Seat("m1", "ws://h/ws/m1", "tok-1", 15.0))
    assert client.hello().token == "resume"


# -- tools.bots --matchmake -------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--url", "http://127.0.0.1:8765"], "is an HTTP address: add --matchmake RULESET"),
        (["--matchmake", "arena", "--url", "ws://127.0.0.1:8765/ws"], "give --url http://HOST:PORT, not the WebSocket URL"),
        (["--matchmake", "arena", "--url", "127.0.0.1:8765"], "must start with http:// or https://"),
        (["--url", "tcp://127.0.0.1:8765"], "must start with ws:// or wss://"),
        (["--mode", "join"], "--mode and --labels go with --matchmake"),
        (["--labels", "mode=ffa"], "--mode and --labels go with --matchmake"),
        (["--matchmake", "arena", "--labels", "mode"], "expected KEY=VALUE"),
        (["--matchmake", "arena", "--mode", "any"], "invalid choice"),
    ],
)
def test_bots_refuse_a_combination_that_cannot_work_as_a_usage_error(argv: list[str], words: str,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        bots.main(argv)
    assert info.value.code == 2
    assert words in capsys.readouterr().err


def test_bots_matchmake_with_the_labels_and_mode_given_and_report_a_refusal(canned: Canned,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    canned.answer(404, {"error": "no open match of ruleset 'arena' with labels {'mode': 'duel'}", "field": None})
    code = bots.main(["--matchmake", "arena", "--url", canned.url, "--mode", "join", "--labels", "mode=duel", "region=eu",
                      "--count", "2", "--duration", "1", "--connect-rate", "0", "--json"])
    assert code == 1
    assert [json.loads(r[3]) for r in canned.requests] == 2 * [
        {"ruleset": "arena", "mode": "join", "labels": {"mode": "duel", "region": "eu"}}]
    out = capsys.readouterr()
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert summary["connected"] == 0 and summary["matches"] == 0
    assert summary["error_messages"][0] == "bot 0: no seat: no open match of ruleset 'arena' with labels {'mode': 'duel'} (HTTP 404)"


def test_bots_connect_where_the_seat_says(canned: Canned, capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    canned.answer(200, {**SEAT, "url": f"ws://127.0.0.1:{port}/ws/m1"})
    code = bots.main(["--matchmake", "arena", "--url", canned.url, "--count", "1", "--duration", "1"])
    assert code == 1 and len(canned.requests) == 1
    out = capsys.readouterr()
    [line] = out.err.splitlines()  # one line, no summary of nothing
    assert line.startswith("python -m tools.bots: error: no bot could join") and out.out == ""
    assert f"nothing listens at 127.0.0.1:{port}" in line  # the seat's node, not --url


def test_bots_without_a_server_to_matchmake_at_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    assert bots.main(["--matchmake", "arena", "--url", url, "--count", "1", "--duration", "1"]) == 1
    out = capsys.readouterr()
    assert f"bot 0: no seat from {url}/api/matchmake: cannot reach it" in out.err
    assert "Traceback" not in out.err and len(out.err.splitlines()) == 1

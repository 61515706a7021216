"""The one HTTP router of the game port: routes by (method, path), POST bodies read by us, and the refusals.

A GET is parsed by the websockets library; any other method by the server
(``server.web.parse_head``): a ``Content-Length`` body of at most 4 KiB,
no chunked body, and 405 with ``Allow`` for a known path asked with another
method. Every answer closes the connection.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.http11 import Response

from server.app import GameServer
from server.loop import loop_factory
from server.web import MAX_BODY, HttpRequest, json_response
from tests.e2e.helpers import drift_server, serving


def echo_routes(server: GameServer) -> list[HttpRequest]:
    """Add ``POST /api/echo`` (answers now) and ``POST /api/later`` (answers after a wait); returns what they got."""
    got: list[HttpRequest] = []

    def echo(request: HttpRequest) -> Response:
        got.append(request)
        return json_response({"method": request.method, "path": request.path, "body": request.body.decode()})

    async def later(request: HttpRequest) -> Response:
        got.append(request)
        await asyncio.sleep(0.05)
        return json_response({"later": json.loads(request.body)}, 201)

    def broken(request: HttpRequest) -> Response:
        raise RuntimeError("a bug in a route")

    server.add_route("POST", "/api/echo", echo)
    server.add_route("POST", "/api/later", later)
    server.add_route("POST", "/api/broken", broken)
    return got


async def exchange(port: int, *pieces: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``pieces`` (one write each, a little apart); the status, headers and body of the answer, read
    to the server's end of the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.01)
    try:
        raw = await asyncio.wait_for(reader.read(), 10)  # to EOF: every answer closes the connection
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert raw.count(b"\r\nServer: tickserver\r\n") == 1, raw  # one answer
    return int(lines[0].split()[1]), headers, body


def post(path: str, body: bytes, **headers: str) -> bytes:
    fields = {"Host": "x", "Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
    return (f"POST {path} HTTP/1.1\r\n" + "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in fields.items())
            + "\r\n").encode() + body


def run(server: GameServer, *pieces: bytes) -> tuple[int, dict[str, str], Any]:
    async def main() -> tuple[int, dict[str, str], bytes]:
        async with serving(server) as port:
            return await exchange(port, *pieces)

    status, headers, body = asyncio.run(main())
    return status, headers, json.loads(body) if headers.get("Content-Type") == "application/json" else body


def test_a_post_route_gets_the_body_and_answers_once(tmp_path: Path) -> None:
    server = drift_server(tmp_path)
    got = echo_routes(server)
    status, headers, body = run(server, post("/api/echo?x=1", b'{"ruleset": "drift"}'))
    assert status == 200 and headers["Server"] == "tickserver"
    assert body == {"method": "POST", "path": "/api/echo?x=1", "body": '{"ruleset": "drift"}'}
    assert got[0].headers["Content-Type"] == "application/json"


def test_a_post_that_comes_a_few_bytes_at_a_time_is_read_whole(tmp_path: Path) -> None:
    server = drift_server(tmp_path)
    echo_routes(server)
    whole = post("/api/later", b'{"mode": "join_or_create"}')
    status, _, body = run(server, *(whole[i:i + 7] for i in range(0, len(whole), 7)))
    assert status == 201 and body == {"later": {"mode": "join_or_create"}}


def test_a_post_without_a_body_is_routed_with_an_empty_one(tmp_path: Path) -> None:
    server = drift_server(tmp_path)
    echo_routes(server)
    status, _, body = run(server, b"POST /api/echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and body["body"] == ""


@pytest.mark.parametrize("request_bytes, status, reason", [
    (post("/api/echo", b"x" * (MAX_BODY + 1)), 413, f"over the limit of {MAX_BODY}"),
    (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411,
     "Content-Length"),
    (post("/api/echo", b"{}", Content_Length="two"), 400, "invalid Content-Length"),
    (b"POST /api/echo HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400, "invalid Content-Length"),
    (b"POST api/echo HTTP/1.1\r\n\r\n", 400, "invalid request line"),
    (b"POST /api/echo HTTP/2.0\r\n\r\n", 505, "HTTP/1.1"),
    (b"POST /api/echo HTTP/1.1\r\nX-Long: " + b"y" * (17 << 10) + b"\r\n\r\n", 431, "request head over"),
])
def test_a_bad_post_is_answered_with_its_status_and_a_json_reason(
        tmp_path: Path, request_bytes: bytes, status: int, reason: str) -> None:
    server = drift_server(tmp_path)
    got = echo_routes(server)
    answer, _, body = run(server, request_bytes)
    assert answer == status and reason in body["error"]
    assert got == []  # the route never saw it


@pytest.mark.parametrize("request_bytes, allow", [
    (post("/healthz", b"{}"), "GET"),
    (post("/ws", b""), "GET"),
    (post("/index.html", b""), "GET"),
    (b"GET /api/echo HTTP/1.1\r\nHost: x\r\n\r\n", "POST"),
    (b"DELETE /api/later HTTP/1.1\r\nHost: x\r\n\r\n", "POST"),
])
def test_a_known_path_asked_with_another_method_is_405_with_allow(tmp_path: Path, request_bytes: bytes, allow: str) -> None:
    server = drift_server(tmp_path)
    echo_routes(server)
    status, headers, body = run(server, request_bytes)
    assert status == 405 and headers["Allow"] == allow and allow in body["error"]


def test_a_post_to_a_path_nobody_serves_is_404(tmp_path: Path) -> None:
    server = drift_server(tmp_path)
    status, _, body = run(server, post("/api/nothing", b"{}"))
    assert status == 404 and "no POST /api/nothing here" in body["error"]


def test_a_route_that_raises_is_a_500_and_the_server_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = drift_server(tmp_path)
    echo_routes(server)

    async def main() -> tuple[int, int]:
        async with serving(server) as port:
            broken, _, _ = await exchange(port, post("/api/broken", b"{}"))
            fine, _, _ = await exchange(port, post("/api/echo", b"{}"))
            return broken, fine

    assert asyncio.run(main()) == (500, 200)
    assert "a bug in a route" in caplog.text


@pytest.mark.parametrize("path, key", [
    ("/healthz", "status"), ("/api/match", "players"), ("/api/matches", "matches"), ("/api/replays", "replays")])
def test_the_get_routes_are_as_they_were(tmp_path: Path, path: str, key: str) -> None:
    status, _, body = run(drift_server(tmp_path), f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 200 and key in body


@pytest.mark.parametrize("path", ["/a%00b.js", "/" + "a" * 300 + ".js", "/" + "b" * 5000 + "/c.js", "/%2e%2e/README.md"])
def test_a_path_the_static_files_do_not_serve_is_404_never_500(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, path: str) -> None:
    status, _, _ = run(drift_server(tmp_path), f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 404
    assert "Traceback" not in caplog.text and "answering" not in caplog.text


@pytest.mark.parametrize("path", ["/healthz", "/api/match", "/api/matches", "/api/replays", "/nothing.js", "/index.html"])
def test_every_answer_says_nosniff(tmp_path: Path, path: str) -> None:
    _, headers, _ = run(drift_server(tmp_path), f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert headers["X-Content-Type-Options"] == "nosniff"


def upgrade(origin: str | None, host: str = "127.0.0.1:8765") -> bytes:
    lines = [f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             "Sec-WebSocket-Version: 13"] + ([f"Origin: {origin}"] if origin is not None else [])
    return ("GET /ws HTTP/1.1\r\n" + "".join(line + "\r\n" for line in lines) + "\r\n").encode()


async def status_of(port: int, request: bytes) -> int:
    """The status of the answer to ``request`` (a 101 leaves the WebSocket open: we read only its head)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    return int(head.split()[1])


@pytest.mark.parametrize("allowed, origin, status", [
    ((), None, 101),  # a bot: no Origin
    ((), "http://127.0.0.1:8765", 101),  # the server's own page
    ((), "http://evil.example", 403),
    ((), "null", 403),
    ((), "https://127.0.0.1:8765", 403),  # another scheme is another origin
    (("https://lobby.example",), "https://lobby.example", 101),
    (("https://lobby.example",), "http://evil.example", 403),
    (("*",), "http://anyone.example", 101),
])
def test_a_websocket_upgrade_from_another_origin_is_refused_with_403_unless_allowed(
        tmp_path: Path, allowed: tuple[str, ...], origin: str | None, status: int) -> None:
    server = drift_server(tmp_path, allowed_origins=allowed)

    async def main() -> int:
        async with serving(server) as port:
            return await status_of(port, upgrade(origin))

    assert asyncio.run(main()) == status


def test_a_health_probe_behind_a_burst_of_connections_is_answered_within_a_few_turns_of_a_busy_loop(
        tmp_path: Path) -> None:
    # On the event loop the server runs on (uvloop when installed: it accepts one connection per turn of the
    # loop, libuv's way) every turn takes 20 ms here, as a tick or three do at saturation. The probe comes
    # behind 150 connections that have not sent their requests yet: it is answered in a few turns, not 150.
    server = drift_server(tmp_path, max_per_address=0)
    turns_taken: list[int] = []

    def probe(port: int) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as resp:
            return int(resp.status)

    async def main() -> int:
        async with serving(server) as port:
            burst = [socket.create_connection(("127.0.0.1", port)) for _ in range(150)]
            try:
                answer = asyncio.ensure_future(asyncio.to_thread(probe, port))
                turns = 0
                while not answer.done() and turns < 400:
                    time.sleep(0.02)  # the loop is busy
                    await asyncio.sleep(0)
                    turns += 1
                turns_taken.append(turns)
                return await answer
            finally:
                for sock in burst:
                    sock.close()

    with asyncio.Runner(loop_factory=loop_factory("auto").factory) as runner:
        assert runner.run(main()) == 200
    assert turns_taken[0] < 40, turns_taken  # 150 and more when each turn accepts one connection

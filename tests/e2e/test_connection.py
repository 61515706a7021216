"""How the game server takes frames off a connection: early, fragmented, flooding, or hitting a bug.

Every hostile test runs twice (``endpoint``): against a player of the live
match (``/ws``) and against a viewer of a replay's playback on the same
server (``/ws?replay=NAME``): one connection class serves both, so every
hardening behaviour must hold for both.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from game.rules import get_ruleset
from server.app import GameServer
from server.config import ServerConfig
from server.match import Match, Member
from server.protocol.codec import decode_server, encode_client
from server.protocol.messages import (
    ClientMessage,
    Error,
    Hello,
    Input,
    Ping,
    Pong,
    Welcome,
)
from tests.e2e.helpers import drift_server, messages_until_closed, serving
from tests.replay.helpers import record_match
from tools.client import GameClient


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with one recorded drift match in it: what the servers here play at ``/ws?replay=NAME``."""
    directory = tmp_path_factory.mktemp("recorded")
    record_match(directory, "drift", ticks=120, players=2, options={"npcs": 20})
    return directory


@pytest.fixture(params=["player", "viewer"])
def endpoint(request: pytest.FixtureRequest, recorded: Path) -> str:
    """The WebSocket path of a hostile test's connection: the live match, or the playback of ``recorded``'s replay."""
    if request.param == "player":
        return "/ws"
    (replay,) = recorded.glob("*.replay")
    return f"/ws?replay={replay.name}"


def game_server(start_server: Any, recorded: Path, *args: str) -> Any:
    """``python -m server`` with ``args`` (a drift match), playing the replays of ``recorded``."""
    return start_server("--ruleset", "drift", *args, "--replay-dir", str(recorded), "--no-record")


def masked(payload: bytes, opcode: int = 0x2, fin: bool = True) -> bytes:
    """A client frame (RFC 6455 5.2) with a zero mask, payload under 126 bytes."""
    assert len(payload) < 126
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + b"\x00\x00\x00\x00" + payload


class RawClient:
    """A WebSocket client on a bare socket: it sends what the test says, whatever the server said."""

    def __init__(self, port: int, *pipelined: bytes, path: str = "/ws") -> None:
        """Connect and send the upgrade request of ``path``, with ``pipelined`` frames right behind it."""
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.settimeout(10.0)
        self.sock.sendall(upgrade_request(path) + b"".join(pipelined))
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def frames(self, want: int | None = None) -> list[bytes]:
        """The payloads of the next ``want`` data frames (None: all until the server closes)."""
        out: list[bytes] = []
        while want is None or len(out) < want:
            while len(self.buf) < 2 or len(self.buf) < frame_end(self.buf):
                chunk = self.sock.recv(65536)
                if not chunk:
                    return out
                self.buf += chunk
            end = frame_end(self.buf)
            if self.buf[0] & 0x0F in (0x1, 0x2):
                out.append(self.buf[end - payload_len(self.buf):end])
            self.buf = self.buf[end:]
        return out

    def close(self) -> None:
        self.sock.close()


def payload_len(buf: bytes) -> int:
    n = buf[1] & 0x7F
    return n if n < 126 else int.from_bytes(buf[2:4] if n == 126 else buf[2:10], "big")


def frame_end(buf: bytes) -> int:
    n = buf[1] & 0x7F
    head = 2 if n < 126 else 4 if n == 126 else 10
    return head + payload_len(buf) if len(buf) >= head else 1 << 30


def test_a_hello_sent_with_the_handshake_request_is_not_lost(start_server: Any, recorded: Path, endpoint: str) -> None:
    server = game_server(start_server, recorded, "--npcs", "10")
    # One write: the upgrade request, the hello and a ping, before any answer.
    raw = RawClient(server.port, masked(encode_client(Hello(1, "eager"))), masked(encode_client(Ping(7))), path=endpoint)
    messages = [decode_server(f) for f in raw.frames(2)]
    raw.close()
    assert {type(m) for m in messages} == {Welcome, Pong}


class BuggyMatch(Match):
    """A match with a bug on one message: a ping from a player named ``buggy``."""

    def on_message(self, member: Member, msg: ClientMessage) -> None:
        if member.name == "buggy" and isinstance(msg, Ping):
            raise RuntimeError("a bug in the match")
        super().on_message(member, msg)


def test_a_bug_on_one_message_closes_that_connection_with_1011_and_nothing_else(
        tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    match = BuggyMatch(get_ruleset("drift"), match_id="m", options={"npcs": 20})
    server = GameServer(ServerConfig(port=0, record=False, replay_dir=tmp_path), match)

    async def main() -> tuple[int | None, list[Any], GameClient, int]:
        async with serving(server) as port:
            good = GameClient(f"ws://127.0.0.1:{port}/ws", "good")
            await good.connect()
            async with connect(f"ws://127.0.0.1:{port}/ws") as bad:
                await bad.send(encode_client(Hello(1, "buggy")))
                await bad.send(encode_client(Ping(1)))
                errors = await messages_until_closed(bad)
                code = bad.close_code
            before = good.tick or 0
            await good.wait_tick(before + 15)
            await good.close()
            return code, errors, good, before

    code, errors, good, before = asyncio.run(main())
    assert code == 1011
    assert isinstance(errors[-1], Error) and errors[-1].code == 1011
    assert (good.tick or 0) >= before + 15 and good.stats.desyncs == 0
    assert "internal error on a message" in caplog.text and "a bug in the match" in caplog.text
    assert match.ticks_dropped == 0


def test_a_client_flooding_messages_is_closed_with_1008_while_another_keeps_30_updates_a_second(
        start_server: Any, recorded: Path, endpoint: str) -> None:
    server = game_server(start_server, recorded, "--npcs", "200")

    async def main() -> tuple[int | None, list[Any], GameClient, float]:
        good = GameClient(server.url, "good")
        await good.connect()
        start_tick, start = good.tick or 0, asyncio.get_running_loop().time()
        async with connect(server.http.replace("http", "ws") + endpoint) as flood:
            await flood.send(encode_client(Hello(1, "flood")))
            assert isinstance(decode_server(await asyncio.wait_for(flood.recv(), 10)), Welcome)  # joined: now flood
            ping = encode_client(Ping(1))
            try:
                for _ in range(5000):  # far past the burst of 240: bounded, never endless
                    await flood.send(ping)
            except ConnectionClosed:
                pass
            got = await messages_until_closed(flood)
            code = flood.close_code
        await good.wait_tick(start_tick + 60)
        rate = ((good.tick or 0) - start_tick) / (asyncio.get_running_loop().time() - start)
        await good.close()
        return code, got, good, rate

    code, got, good, rate = asyncio.run(main())
    assert code == 1008
    errors = [m for m in got if isinstance(m, Error)]
    assert errors and "messages per second" in errors[-1].reason
    assert good.stats.desyncs == 0 and rate > 27
    assert server.get_json("/healthz")["ticks_dropped"] == 0


def test_websocket_pings_between_messages_are_answered_and_messages_after_them_still_arrive(
        start_server: Any, recorded: Path, endpoint: str) -> None:
    server = game_server(start_server, recorded, "--npcs", "10")

    async def main() -> tuple[float, list[Any]]:
        async with connect(server.http.replace("http", "ws") + endpoint) as ws:
            await ws.send(encode_client(Hello(1, "pinger")))
            latency = await asyncio.wait_for(await ws.ping(b"are you there"), 5)  # a control frame, the library's
            await ws.send(encode_client(Ping(42)))  # a message again, read by the server itself
            got: list[Any] = []
            while not (any(isinstance(m, Pong) and m.id == 42 for m in got) and any(isinstance(m, Welcome) for m in got)):
                got.append(decode_server(await asyncio.wait_for(ws.recv(), 5)))
            return latency, got

    latency, got = asyncio.run(main())
    assert 0 <= latency < 5  # the library answered the ping
    assert [m.id for m in got if isinstance(m, Pong)] == [42]  # and the message after it was read
    assert sum(isinstance(m, Welcome) for m in got) == 1


def upgrade_request(path: str = "/ws") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def test_a_flood_of_frames_behind_the_request_is_cut_off_and_costs_others_nothing(
        start_server: Any, recorded: Path, endpoint: str) -> None:
    server = game_server(start_server, recorded, "--npcs", "50")

    async def main() -> tuple[bytes, GameClient, int]:
        good = GameClient(server.url, "good")
        await good.connect()
        before = good.tick or 0
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(upgrade_request(endpoint) + masked(encode_client(Hello(1, "eager"))) + masked(encode_client(Ping(1))) * 500)
        received = b""
        try:
            while chunk := await asyncio.wait_for(reader.read(65536), 5):
                received += chunk
        except ConnectionError:
            pass  # aborted: a reset is what the flood gets
        writer.close()
        await good.wait_tick(before + 30)
        await good.close()
        return received, good, before

    received, good, before = asyncio.run(main())
    assert received.count(b"\x82") < 100  # cut off long before 500 pongs
    assert (good.tick or 0) >= before + 30 and good.stats.desyncs == 0
    for _ in range(50):  # the server's log reaches us through a pipe
        if "before the handshake completed" in "".join(server.log):
            break
        time.sleep(0.1)
    assert "before the handshake completed" in "".join(server.log)


def test_a_connection_replaced_by_a_resume_steers_nothing_any_more(start_server: Any) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "50", "--hold", "30")
    old = RawClient(server.port)
    old.sock.sendall(masked(encode_client(Hello(1, "twice"))))
    welcome = decode_server(old.frames(1)[0])
    assert isinstance(welcome, Welcome)

    async def main() -> list[int]:
        acks: list[int] = []
        new = GameClient(server.url, "twice", token=welcome.token, on_update=lambda c: acks.append(c.acked_input))
        await new.connect()
        # The old connection ignores the close it was sent and keeps sending inputs with its own numbers.
        for i in range(30):
            await new.send_input([0, 1])
            await asyncio.sleep(0.005)
            try:  # the last input before the tick is the one applied: the old one's, if it still counted
                old.sock.sendall(masked(encode_client(Input(100_001 + i, (1, 0)))))
            except OSError:
                break
            await asyncio.sleep(1 / 60)
        await new.wait_tick((new.tick or 0) + 10)
        await new.close()
        return acks

    acks = asyncio.run(main())
    old.close()
    assert acks and max(acks) <= 30  # only the new connection's own sequence numbers


def test_nothing_but_the_error_follows_a_protocol_error(start_server: Any, recorded: Path, endpoint: str) -> None:
    server = game_server(start_server, recorded, "--npcs", "50")
    raw = RawClient(server.port, path=endpoint)
    # The hello and a bad frame in one write: the member joins, then must hear nothing more.
    raw.sock.sendall(masked(encode_client(Hello(1, "rude"))) + masked(b"\xc1"))
    messages = [decode_server(f) for f in raw.frames()]
    raw.close()
    assert isinstance(messages[-1], Error) and messages[-1].code == 1002
    assert [m for m in messages if not isinstance(m, Error)] == []  # no welcome, no update after the error


def test_websocket_pings_count_against_the_rate_limit(start_server: Any, recorded: Path, endpoint: str) -> None:
    server = game_server(start_server, recorded, "--npcs", "10")
    raw = RawClient(server.port, path=endpoint)
    pings = masked(b"p", opcode=0x9) * 3000
    try:
        raw.sock.sendall(masked(encode_client(Hello(1, "pingy"))) + pings)
    except OSError:
        pass  # closed before it read them all: what we want
    messages = [decode_server(f) for f in raw.frames()]
    raw.close()
    assert isinstance(messages[-1], Error) and messages[-1].code == 1008
    assert "messages per second" in messages[-1].reason


@pytest.mark.parametrize("who, frame, code, reason", [
    ("player", {"t": "ack", "tick": "soon"}, 1007, "tick"),
    ("player", {"t": "control", "pause": True}, 1002, "control is not allowed in state active"),
    ("viewer", {"t": "control", "speed": 9}, 1007, "speed"),
    ("viewer", {"t": "input", "seq": 1, "in": [0, 0]}, 1002, "input is not allowed in state watching"),
])
def test_a_bad_message_after_the_welcome_gets_its_error_right_before_the_close(
        recorded: Path, who: str, frame: dict[str, Any], code: int, reason: str) -> None:
    server = drift_server(recorded)
    path = "/ws" if who == "player" else f"/ws?replay={next(recorded.glob('*.replay')).name}"

    async def main() -> list[tuple[int, bytes, float]]:
        async with serving(server) as port:
            reader, writer = await raw_upgrade(port, masked(encode_client(Hello(1, "odd"))), path=path)
            assert isinstance(decode_server(await read_frame(reader)), Welcome)  # joined
            writer.write(masked(msgpack.packb(frame)))
            frames, _ = await frames_until_eof(reader)
            writer.close()
            return frames

    frames = asyncio.run(main())
    assert close_code(frames) == code
    assert [opcode for opcode, _, _ in frames[-2:]] == [0x2, 0x8]  # the error, then the close: nothing between
    error = decode_server(frames[-2][1])
    assert isinstance(error, Error) and error.code == code and reason in error.reason


# -- the transport's own timers and answers, on a server in this process ---------------


async def raw_upgrade(port: int, *pipelined: bytes, path: str = "/ws") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An asyncio socket through the opening handshake of ``path`` (``pipelined`` sent right behind the request)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request(path) + b"".join(pipelined))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """The payload of the next frame the server sends (within 10 s)."""
    head = await asyncio.wait_for(reader.readexactly(2), 10)
    extra = {126: 2, 127: 8}.get(head[1] & 0x7F, 0)
    size = int.from_bytes(await reader.readexactly(extra), "big") if extra else head[1] & 0x7F
    return await reader.readexactly(size)


async def frames_until_eof(reader: asyncio.StreamReader, limit_s: float = 5.0) -> tuple[list[tuple[int, bytes, float]], float]:
    """Every frame the server sends until its end of the TCP connection, as (opcode, payload, arrival
    time on the loop's clock), and the time of that end. Fails if it does not come within ``limit_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    frames: list[tuple[int, bytes, float]] = []
    buf = b""
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), max(0.0, deadline - loop.time()))
        except ConnectionError:
            chunk = b""
        except TimeoutError:
            raise AssertionError(f"the server did not close within {limit_s} s (frames: {frames})") from None
        if not chunk:
            return frames, loop.time()
        buf += chunk
        while len(buf) >= 2 and len(buf) >= frame_end(buf):
            end = frame_end(buf)
            frames.append((buf[0] & 0x0F, buf[end - payload_len(buf):end], loop.time()))
            buf = buf[end:]


def close_code(frames: list[tuple[int, bytes, float]]) -> int:
    closes = [payload for opcode, payload, _ in frames if opcode == 0x8]
    assert len(closes) == 1, frames
    return int.from_bytes(closes[0][:2], "big")


def test_a_client_that_never_answers_pings_fails_with_1011_after_the_pong_timeout(recorded: Path, endpoint: str) -> None:
    server = drift_server(recorded, ping_interval_s=0.2, ping_timeout_s=0.3)

    async def main() -> list[tuple[int, bytes, float]]:
        async with serving(server) as port:
            reader, writer = await raw_upgrade(port, masked(encode_client(Hello(1, "deaf"))), path=endpoint)
            frames, _ = await frames_until_eof(reader)
            writer.close()
            return frames

    frames = asyncio.run(main())
    pings = [f for f in frames if f[0] == 0x9]
    assert len(pings) == 1  # one keepalive ping, never answered
    assert close_code(frames) == 1011


def test_a_client_that_answers_pings_keeps_playing(tmp_path: Any) -> None:
    server = drift_server(tmp_path, ping_interval_s=0.1, ping_timeout_s=0.3)

    async def main() -> GameClient:
        async with serving(server) as port:
            c = GameClient(f"ws://127.0.0.1:{port}/ws", "awake")  # websockets answers our pings
            await c.connect()
            await c.wait_tick((c.tick or 0) + 45)  # 1.5 s: some fifteen pings
            await c.close()
            return c

    c = asyncio.run(main())
    assert c.stats.desyncs == 0 and c.stats.updates >= 45 and c.close_code == 1000


def test_a_request_that_never_ends_is_dropped_after_the_open_timeout(tmp_path: Any) -> None:
    server = drift_server(tmp_path, open_timeout_s=0.3)

    async def main() -> tuple[bytes, float]:
        async with serving(server) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            start = asyncio.get_running_loop().time()
            writer.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the empty line
            try:
                got = await asyncio.wait_for(reader.read(), 5)
            except ConnectionError:
                got = b""
            writer.close()
            return got, asyncio.get_running_loop().time() - start

    got, waited = asyncio.run(main())
    assert got == b"" and 0.25 < waited < 3


def test_a_client_that_ignores_our_close_frame_is_dropped_after_the_close_timeout(recorded: Path, endpoint: str) -> None:
    server = drift_server(recorded, hello_timeout_s=0.2, close_timeout_s=0.5)

    async def main() -> tuple[list[tuple[int, bytes, float]], float]:
        async with serving(server) as port:
            reader, writer = await raw_upgrade(port, path=endpoint)  # no hello, and no answer to the close that follows
            frames, end = await frames_until_eof(reader)
            writer.close()
            return frames, end

    frames, end = asyncio.run(main())
    assert close_code(frames) == 1008
    error = decode_server(frames[0][1])
    assert isinstance(error, Error) and "no hello" in error.reason
    closed_at = next(t for opcode, _, t in frames if opcode == 0x8)
    assert 0.4 < end - closed_at < 3  # the close timeout, then the server drops the connection


def test_a_frame_the_library_refuses_is_explained_by_an_error_right_before_its_close(recorded: Path, endpoint: str) -> None:
    server = drift_server(recorded)
    reserved_bit = bytes([0xC2, 0x81]) + b"\x00" * 4 + b"x"  # RSV1 without an extension: websockets fails it (1002)

    async def main() -> list[tuple[int, bytes, float]]:
        async with serving(server) as port:
            reader, writer = await raw_upgrade(port, masked(encode_client(Hello(1, "odd"))), path=endpoint)
            assert isinstance(decode_server(await read_frame(reader)), Welcome)  # joined
            writer.write(reserved_bit)
            frames, _ = await frames_until_eof(reader)
            writer.close()
            return frames

    frames = asyncio.run(main())
    assert close_code(frames) == 1002
    assert [opcode for opcode, _, _ in frames[-2:]] == [0x2, 0x8]  # the error, then the close: nothing between
    error = decode_server(frames[-2][1])
    assert isinstance(error, Error) and error.code == 1002 and "reserved bits" in error.reason
    assert server.stats["protocol_errors"] == 1


def test_an_http_request_is_answered_once_and_what_follows_it_is_ignored(tmp_path: Any) -> None:
    server = drift_server(tmp_path)

    async def main() -> bytes:
        async with serving(server) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # A close frame and a second request behind the first: neither is read.
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + masked(b"\x03\xe8", opcode=0x8)
                         + b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            got = await asyncio.wait_for(reader.read(), 5)  # to the server's end of the connection
            writer.close()
            return got

    got = asyncio.run(main())
    head, body = got.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"Server: tickserver" in head
    assert b"Access-Control-Allow-Origin: *" in head
    assert json.loads(body)["status"] == "ok" and got.count(b"HTTP/1.1") == 1


def test_stopping_the_server_closes_websockets_with_1001_and_drops_unanswered_requests(tmp_path: Any) -> None:
    server = drift_server(tmp_path)

    async def main() -> tuple[int | None, bytes, float]:
        port = await server.start()
        running = asyncio.create_task(server.run())
        c = GameClient(f"ws://127.0.0.1:{port}/ws", "stayer")
        await c.connect()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ws HTTP/1.1\r\n")  # a request still coming
        await asyncio.sleep(0.1)
        start = asyncio.get_running_loop().time()
        server.stop()
        await asyncio.wait_for(running, 5)
        took = asyncio.get_running_loop().time() - start
        try:
            rest = await asyncio.wait_for(reader.read(), 5)
        except ConnectionError:
            rest = b""
        writer.close()
        await asyncio.wait_for(c._reader, 5) if c._reader else None
        return c.close_code, rest, took

    code, rest, took = asyncio.run(main())
    assert code == 1001 and rest == b"" and took < 3
    assert server.connections == set()


# -- versions (PROTOCOL.md, *Versions*) --------------------------------------------------------


def test_the_server_announces_its_minor_version_ignores_and_counts_keys_it_does_not_know_and_checks_known_ones(
        tmp_path: Path) -> None:
    server = drift_server(tmp_path)

    async def main() -> tuple[str | None, Welcome, int, int | None, str, GameClient]:
        async with serving(server) as port:
            async with connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
                assert ws.response is not None
                announced = ws.response.headers.get("Tickserver-Protocol")
                # A newer client's keys: the hello's and an input's are ignored, the player plays on.
                await ws.send(msgpack.packb({"t": "hello", "v": 1, "name": "newer", "later": {"x": 1}}))
                welcome = decode_server(await ws.recv())
                assert isinstance(welcome, Welcome)
                first = msgpack.unpackb(await ws.recv())
                while first.get("t") != "update":
                    first = msgpack.unpackb(await ws.recv())
                await ws.send(msgpack.packb({"t": "input", "seq": 1, "in": [1, 0], "ack": first["tick"],
                                             "redundant": [], "also": 2}))
                updates = 0
                while updates < 5:
                    updates += msgpack.unpackb(await ws.recv()).get("t") == "update"
                # A known key's bad value beside an unknown key: refused as ever.
                await ws.send(msgpack.packb({"t": "input", "seq": 2, "in": [1.0, 0], "later": 1}))
                with pytest.raises(ConnectionClosed):
                    while True:
                        await ws.recv()
                ignored = server.stats["ignored_keys"]
                code, reason = ws.close_code, ws.close_reason or ""
            client = GameClient(f"ws://127.0.0.1:{port}/ws", "reader")
            await client.connect()
            await client.close()
            return announced, welcome, ignored, code, reason, client

    announced, welcome, ignored, code, reason, client = asyncio.run(main())
    assert announced == "1.2" and welcome.minor == 2
    assert ignored == 3
    assert code == 1007 and "in[0]: expected an integer" in reason
    # The Python client read the announcement: it speaks minor 1 (interest, roster deltas, view, leave) and
    # reads minor 2's update.surplus.
    assert client.minor == 2 and client.hello().interest and client.hello().roster_deltas


def test_the_python_client_sends_a_10_server_nothing_minor_1_added() -> None:
    client = GameClient("ws://127.0.0.1:1/ws", "old")
    assert client.minor == 0  # no announcement (yet): a 1.0 server
    hello = client.hello()
    assert not hello.interest and not hello.roster_deltas
    assert set(msgpack.unpackb(encode_client(hello))) == {"t", "v", "name"}
    client.minor = 1
    assert client.hello().interest and client.hello().roster_deltas

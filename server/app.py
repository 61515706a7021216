"""The asyncio shell: HTTP and WebSocket on one port, for the matches it hosts.

``/ws`` (and ``/ws/<match id>``) is the game endpoint; ``/healthz``,
``/metrics`` and ``/api/...`` report on the matches; everything else is a
file of ``client_web/``. This module only moves bytes: the frame splitter
and the library frame them, sessions decode and validate, the match decides
(and runs its own tick loop).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event
from websockets.protocol import State as WsState
from websockets.server import ServerProtocol

from server.config import ServerConfig
from server.frames import FrameSplitter, RequestEnd
from server.match import Match, Member
from server.protocol.codec import encode_server
from server.protocol.errors import (
    CLOSE_POLICY,
    InvalidField,
    PolicyViolation,
    ProtocolError,
)
from server.protocol.messages import Error, Hello
from server.recorder import list_replays
from server.web import http_response, json_response, static_file

log = logging.getLogger("server")

#: The WebSocket library's own frame limit; our codec's 1 KiB limit comes first.
WS_MAX_SIZE = 64 * 1024

Route = Callable[[Request], Response | Awaitable[Response]]


def binary_frame_header(size: int) -> bytes:
    """The header of an unmasked, final, binary WebSocket frame of ``size`` bytes (RFC 6455 5.2)."""
    if size < 126:
        return bytes((0x82, size))
    if size < 1 << 16:
        return b"\x82\x7e" + size.to_bytes(2, "big")
    return b"\x82\x7f" + size.to_bytes(8, "big")


#: Close codes the websockets library itself fails a connection with for the peer's fault.
_PEER_FAULTS = frozenset({CloseCode.PROTOCOL_ERROR, CloseCode.INVALID_DATA, CloseCode.MESSAGE_TOO_BIG})


class GameProtocol(ServerProtocol):
    """websockets' sans-I/O server protocol, telling the peer why before the library fails it.

    The library closes by itself on what it catches in frame parsing (a frame
    over ``WS_MAX_SIZE``: 1009; bad framing: 1002; invalid UTF-8: 1007). Our own
    errors are preceded by an ``error`` message; this makes the library's too.
    """

    def fail(self, code: CloseCode | int, reason: str = "") -> None:
        if self.state is WsState.OPEN and code in _PEER_FAULTS:
            self.send_frame(Frame(Opcode.BINARY, encode_server(Error(int(code), reason))))
        super().fail(code, reason)


_DATA_OPCODES = frozenset({Opcode.BINARY, Opcode.TEXT, Opcode.CONT})
_PING_PONG = frozenset({Opcode.PING, Opcode.PONG})

#: A frame's payload (websockets >= 15 calls it ``BytesLike``; 14 has no name for it).
BytesLike = bytes | bytearray | memoryview

#: Messages a connection may send behind its opening request, before the server takes them.
EARLY_MESSAGES = 64

#: A data message, as the connection hands it on: a payload we split off
#: ourselves (``FrameSplitter``), or a frame the library parsed.
Incoming = bytes | Frame


class GameConnection(ServerConnection):
    """A websockets server connection whose protocol is a ``GameProtocol``, and
    whose data messages go straight to a handler.

    During the opening handshake the library gets the request and nothing
    else (``RequestEnd``); bytes a client sends behind it wait for the
    handshake to end. From then on a ``FrameSplitter`` reads the client's
    simple binary frames itself and hands everything else (control frames,
    anything unusual) to the library, always as whole frames; frames the
    library parses come back through ``process_event``. Either way each data
    message goes to ``on_message``, called from ``data_received``, instead of
    being queued for ``recv()`` and waking the connection's task: no frame
    parser generator, no queue, no future, no task switch per message, which
    is most of what a client's 30 inputs a second would cost the server in
    the library. Messages that come before a handler is attached
    (``take_messages``) wait in a list, within bounds; ``stop_messages()``
    drops every later one (the connection is closing). Ping and pong frames
    go to ``on_control`` (the rate limit) on their way to the library.
    """

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        # serve() builds a plain ServerProtocol and has no hook for its class;
        # GameProtocol only overrides a method, so the instance can adopt it.
        protocol.__class__ = GameProtocol
        super().__init__(protocol, *args, **kwargs)
        self._early: list[Incoming] = []
        self._early_bytes = 0
        self.on_message: Callable[[Incoming], None] | None = self._hold_early
        #: Called for each ping or pong frame the client sends (the library answers pings).
        self.on_control: Callable[[], None] | None = None
        self.splitter: FrameSplitter | None = None
        self._request = RequestEnd()
        #: Bytes the client sent behind its request before the handshake ended.
        self._held = bytearray()

    def _hold_early(self, item: Incoming) -> None:
        """A message before anyone takes them (pipelined behind the request): kept, within bounds."""
        self._early.append(item)
        self._early_bytes += len(item) if isinstance(item, bytes) else len(item.data)
        if len(self._early) > EARLY_MESSAGES or self._early_bytes > WS_MAX_SIZE:
            # No client needs this many messages before its handshake completes.
            self._abort(f"{len(self._early)} messages ({self._early_bytes} bytes) before the handshake completed")

    def _abort(self, why: str) -> None:
        """Drop a connection that abuses the time before its handshake ends: no close handshake."""
        log.info("closing %s: %s", self.remote_address, why)
        self.stop_messages()
        self._early.clear()
        self._held.clear()
        if self.transport is not None:
            self.transport.abort()

    def take_messages(self, handler: Callable[[Incoming], None]) -> None:
        """Send every data message to ``handler`` from now on, those already received first."""
        early, self._early = self._early, []
        self.on_message = handler
        for item in early:
            if self.on_message is handler:  # it may have let go (an error) on the way
                handler(item)

    def stop_messages(self) -> None:
        """Drop every data message from now on."""
        self.on_message = None
        self.on_control = None

    def data_received(self, data: bytes) -> None:
        if self.splitter is None:
            if self.protocol.state is not WsState.OPEN:
                self._opening(data)
                return
            self._start_splitting()
        self._split(data)

    def _opening(self, data: bytes) -> None:
        """Bytes while the library runs the opening handshake: it gets the request, and
        only the request; whatever the client sent behind it waits for the handshake to
        end (then it goes through the splitter like the rest of the stream)."""
        if self.protocol.state is not WsState.CONNECTING:
            super().data_received(data)  # refused or closed: the library discards it
            return
        used = self._request.feed(data)
        if used:
            super().data_received(data[:used])
        if used < len(data):
            self._held += data[used:]
            if len(self._held) > WS_MAX_SIZE + 14:  # more than one largest frame
                self._abort(f"{len(self._held)} bytes sent before the handshake completed")

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        await super().handshake(*args, **kwargs)
        if self.protocol.state is WsState.OPEN:
            if self.splitter is None:
                self._start_splitting()
        else:
            self._held.clear()  # frames behind a request that got an HTTP response: nobody's

    def _start_splitting(self) -> None:
        self.splitter = FrameSplitter(WS_MAX_SIZE)
        held, self._held = bytes(self._held), bytearray()
        if held:
            self._split(held)

    def _split(self, data: bytes) -> None:
        assert self.splitter is not None
        for is_message, piece in self.splitter.feed(data):
            if not is_message:
                super().data_received(piece)
            elif self.on_message is not None:
                self.on_message(piece)

    def process_event(self, event: Event) -> None:
        handler = self.on_message
        if isinstance(event, Frame) and event.opcode in _DATA_OPCODES:
            if handler is not None:
                handler(event)
            return
        if isinstance(event, Frame) and event.opcode in _PING_PONG and self.on_control is not None:
            self.on_control()  # the library answers pings by itself: they count against the rate limit
        super().process_event(event)


class WsClient:
    """A match ``Client`` over a websockets connection: fire-and-forget, bounded buffering."""

    def __init__(self, ws: ServerConnection, max_buffer: int, slow_timeout_s: float, stats: dict[str, int]) -> None:
        self.ws = ws
        self.max_buffer = max_buffer
        self.slow_timeout_s = slow_timeout_s
        self.stats = stats
        self.slow_since: float | None = None
        self._closing: asyncio.Task[None] | None = None

    def send(self, data: bytes) -> None:
        ws = self.ws
        if self._closing is not None or ws.protocol.state is not WsState.OPEN:
            return  # nothing after a close we started (an error message goes first, in fail())
        transport = ws.transport
        if transport is not None and transport.get_write_buffer_size() > self.max_buffer:
            # A slow reader: drop this frame (the next delta is against its last ack, so
            # nothing is lost for good), and give up on it if it stays slow.
            self.stats["frames_dropped"] += 1
            now = time.monotonic()
            if self.slow_since is None:
                self.slow_since = now
            elif now - self.slow_since > self.slow_timeout_s:
                self.stats["slow_closed"] += 1
                self.close(CLOSE_POLICY, f"too slow: over {self.max_buffer} bytes queued for {self.slow_timeout_s:g} s")
            return
        self.slow_since = None
        if transport is not None:
            # The frame written straight to the transport: what websockets'
            # broadcast() does (serialize, then write) minus its per-call
            # framing machinery, which is a third of the send cost per client.
            # Safe because the library never holds data frames back: its own
            # writes (pings, close) go out whole, so frames never interleave.
            transport.write(binary_frame_header(len(data)) + data)

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; from now on nothing is sent and no message is taken."""
        if self._closing is None:
            if isinstance(self.ws, GameConnection):
                self.ws.stop_messages()  # a replaced, slow or shut-down connection steers nothing
            self._closing = asyncio.ensure_future(self.ws.close(code, reason.encode()[:120].decode(errors="ignore")))

    def fail(self, exc: ProtocolError) -> None:
        """Tell the peer what was wrong, then close with the error's code."""
        self.send(encode_server(Error(exc.code, exc.reason)))
        self.close(exc.code, exc.reason)

    async def closed(self) -> None:
        """Wait for a close started here (the handler must not return first: that closes with 1000)."""
        if self._closing is not None:
            await self._closing


class GameServer:
    """One port, the matches it hosts (each ticking on its own loop), HTTP and WebSocket.

    ``/ws`` joins the default match (the first one); ``/ws/<match id>`` any
    hosted match. ``/healthz``, ``/metrics`` and ``/api/match`` describe the
    default match (``/api/match?id=<match id>`` another); ``/api/matches``
    lists them all.
    """

    def __init__(self, config: ServerConfig, matches: Match | list[Match]) -> None:
        self.config = config
        hosted = [matches] if isinstance(matches, Match) else list(matches)
        if not hosted:
            raise ValueError("a game server hosts at least one match")
        self.matches: dict[str, Match] = {}
        for m in hosted:
            if m.match_id in self.matches:
                raise ValueError(f"two matches with the id {m.match_id!r}")
            self.matches[m.match_id] = m
        #: The match ``/ws`` joins.
        self.match = hosted[0]
        self.routes: dict[str, Route] = {"/healthz": self._healthz, "/metrics": self._metrics, "/api/match": self._api_match}
        self.routes["/api/matches"] = self._api_matches
        self.routes["/api/replays"] = self._api_replays
        self.stats = {"connections": 0, "frames_dropped": 0, "slow_closed": 0, "protocol_errors": 0}
        self._server: Server | None = None
        self._stop = asyncio.Event()
        self._static = config.static_dir.resolve()
        self._clock = time.monotonic

    # -- lifecycle -------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.config.tls_cert is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        return ctx

    async def start(self) -> int:
        """Listen; returns the bound port."""
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            max_size=WS_MAX_SIZE,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=2,
            compression=None,
            server_header="tickserver",
            create_connection=GameConnection,
            ssl=self.ssl_context(),
        )
        sock = next(iter(self._server.sockets))
        port: int = sock.getsockname()[1]
        return port

    async def run(self) -> None:
        """Tick every match until ``stop()``; then close every connection (1001) and the listener."""
        try:
            async with asyncio.TaskGroup() as group:
                for m in self.matches.values():
                    group.create_task(m.run(self._clock, self._stop))
        finally:
            for m in self.matches.values():
                m.close()
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

    def stop(self) -> None:
        self._stop.set()

    # -- HTTP ------------------------------------------------------------------

    def match_for(self, path: str) -> Match | None:
        """The match a WebSocket path names: ``/ws`` the default one, ``/ws/<match id>`` that one."""
        path = path.split("?", 1)[0]
        if path == "/ws":
            return self.match
        if path.startswith("/ws/"):
            return self.matches.get(path[4:])
        return None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | Awaitable[Response] | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws" or path.startswith("/ws/"):
            if self.match_for(path) is None:
                return json_response({"error": f"no match {path[4:]!r} here", "matches": list(self.matches)}, 404)
            return None
        route = self.routes.get(path)
        if route is not None:
            return route(request)
        return self._file(path)

    def _file(self, path: str) -> Response:
        return static_file(self._static, path)

    def _healthz(self, request: Request) -> Response:
        # Readable from any origin: a page served elsewhere shows this server's status before joining.
        return json_response({"status": "ok", **self.match.info(), "matches": len(self.matches)},
                             extra={"Access-Control-Allow-Origin": "*"})

    def _api_match(self, request: Request) -> Response:
        """A match's info and every player's entity state (world units are column / scale):
        the default match, or ``?id=<match id>``."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        match = self.matches.get(query["id"][0]) if "id" in query else self.match
        if match is None:
            return json_response({"error": f"no match {query['id'][0]!r} here", "matches": list(self.matches)}, 404)
        return json_response({**match.info(), "players": match.player_states()})

    def _api_matches(self, request: Request) -> Response:
        """Every hosted match's info, the default one first."""
        return json_response({"matches": [m.info() for m in self.matches.values()]})

    async def _api_replays(self, request: Request) -> Response:
        """The recorded replays of ``--replay-dir``, newest first (REPLAY.md); ``tools.replay play`` plays them.

        Listed on a worker thread (the disk must not stall the tick), each header read once (``ReplayIndex``).
        """
        replays = await asyncio.to_thread(list_replays, self.config.replay_dir)
        return json_response({"playback": False, "dir": str(self.config.replay_dir), "replays": replays})

    def _metrics(self, request: Request) -> Response:
        m = self.match
        s = m.stats
        lines = [
            f"tickserver_ticks_total {s.ticks}",
            f"tickserver_ticks_dropped_total {m.ticks_dropped}",
            f"tickserver_players {m.player_count()}",
            f"tickserver_entities {m.world.count()}",
            f"tickserver_frames_sent_total {s.frames_sent}",
            f"tickserver_bytes_sent_total {s.bytes_sent}",
            f"tickserver_keyframes_sent_total {s.keyframes_sent}",
            f"tickserver_encodes_total {s.encodes}",
        ]
        lines += [f"tickserver_{k}_total {v}" for k, v in self.stats.items()]
        lines += [f"tickserver_tick_{k.replace('_ms', '')}_ms {v:.4f}" for k, v in s.times.summary().items()]
        return http_response(200, ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4")

    # -- WebSocket -------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert isinstance(ws, GameConnection)  # serve(create_connection=GameConnection)
        self.stats["connections"] += 1
        client = WsClient(ws, self.config.max_buffer, self.config.slow_timeout_s, self.stats)
        match = self.match_for(ws.request.path if ws.request is not None else "/ws")
        assert match is not None  # _process_request refused the handshake otherwise
        talk = Conversation(ws, client, match, self._clock, self.stats)
        closed = asyncio.ensure_future(ws.wait_closed())
        try:
            ws.on_control = talk.on_control
            ws.take_messages(talk.on_message)
            # Everything else happens in talk.on_message, as messages arrive; here we
            # only wait for the hello (or give up on it), then for the end.
            await asyncio.wait({talk.said_hello, closed}, timeout=self.config.hello_timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
            if not talk.said_hello.done() and not closed.done():
                talk.fail(PolicyViolation(f"no hello within {self.config.hello_timeout_s:g} s"))
            await closed
        finally:
            closed.cancel()
            talk.end()
        await client.closed()


class Conversation:
    """One connection to a match after the WebSocket handshake, frame by frame.

    ``on_message`` runs inside the connection's ``data_received``: the session
    decodes and checks each message (the first must be the hello), the match
    takes it. A protocol error tells the peer and closes with its code; it
    never reaches the tick or another connection.
    """

    def __init__(self, ws: GameConnection, client: WsClient, match: Match, clock: Callable[[], float],
                 stats: dict[str, int]) -> None:
        self.ws = ws
        self.client = client
        self.match = match
        self.clock = clock
        self.stats = stats
        self.session = match.new_session()
        self.member: Member | None = None
        #: Done once the hello was taken (the member exists).
        self.said_hello: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_message(self, item: Incoming) -> None:
        match = self.match
        try:
            data = item if isinstance(item, bytes) else self._payload(item)
            msg = self.session.receive(data, self.clock(), match.tick_count)
            if self.member is None:
                assert isinstance(msg, Hello)  # the session's table allows nothing else first
                self.member = match.connect(msg, self.session, self.client, self.clock())
                self.said_hello.set_result(None)
            elif msg is not None:
                match.on_message(self.member, msg)
        except ProtocolError as exc:
            self.fail(exc)
        except Exception:
            # Our bug, not the peer's: say so in the log, close this connection only.
            log.exception("closing %s: internal error on a message", self.ws.remote_address)
            self.ws.stop_messages()
            self.client.fail(ProtocolError("internal server error", CloseCode.INTERNAL_ERROR))

    def on_control(self) -> None:
        """A ping or pong frame: it counts against the message rate limit like a message."""
        try:
            self.session.charge(self.clock())
        except ProtocolError as exc:
            self.fail(exc)

    @staticmethod
    def _payload(frame: Frame) -> BytesLike | str:
        """A data frame the library parsed: its payload, unless it cannot be a message of ours."""
        if not frame.fin or frame.opcode is Opcode.CONT:
            raise PolicyViolation("fragmented message: send each message as one frame")
        if frame.opcode is Opcode.TEXT:
            try:
                return bytes(frame.data).decode()  # the session refuses text (1003), once it is text
            except UnicodeDecodeError as exc:
                raise InvalidField(f"text frame is not UTF-8: {exc.reason} at byte {exc.start}") from None
        return frame.data

    def fail(self, exc: ProtocolError) -> None:
        """The peer broke the protocol: tell it, close with the error's code, hear nothing more."""
        self.ws.stop_messages()
        self.stats["protocol_errors"] += 1
        log.info("closing %s: %s", self.ws.remote_address, exc)
        self.client.fail(exc)

    def end(self) -> None:
        """The connection is gone: the match holds or forgets the member."""
        self.ws.stop_messages()
        if self.member is not None:
            self.match.disconnect(self.member, self.client, self.clock())

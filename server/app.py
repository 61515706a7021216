"""The asyncio shell: HTTP and WebSocket on one port, for the matches it hosts.

``/ws`` (and ``/ws/<match id>``) is the game endpoint; ``/healthz``,
``/metrics`` and ``/api/...`` report on the matches; everything else is a
file of ``client_web/``.

The shell is the I/O layer under websockets' sans-I/O ``ServerProtocol``, on
its documented API only (``receive_data``, ``receive_eof``,
``events_received``, ``data_to_send``, ``accept``, ``send_response``,
``send_close``, ``send_ping``, ``fail``, ``state``, ``close_expected``): the
library parses the HTTP request and runs the WebSocket protocol; we own the
socket, so the timers (opening handshake, keepalive, closing) are ours, as
they are the asyncio layer's inside websockets. Names:

- ``GameServer``: the listener, the HTTP router and the hosted matches.
- ``Connection``: one TCP (or TLS) connection: its HTTP request, then its
  WebSocket and session; it is the ``Client`` the match sends to.

This module only moves bytes: the frame splitter and the library frame them,
sessions decode and validate, the match decides (and runs its own tick loop).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, cast

from attrs import define
from websockets.asyncio.server import ServerConnection
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from server.config import ServerConfig
from server.frames import FrameSplitter, RequestEnd
from server.match import Match, Member
from server.protocol.codec import encode_server
from server.protocol.errors import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    InvalidField,
    PolicyViolation,
    ProtocolError,
)
from server.protocol.messages import Error, Hello
from server.protocol.session import ServerSession
from server.recorder import list_replays
from server.web import http_response, json_response, static_file

log = logging.getLogger("server")

#: The WebSocket library's own frame limit; our codec's 1 KiB limit comes first.
WS_MAX_SIZE = 64 * 1024

#: The ``Server`` header of every response.
SERVER_HEADER = "tickserver"

#: Messages (and control frames) a connection may send behind its opening request, before the server takes them.
EARLY_MESSAGES = 64

Route = Callable[[Request], Response | Awaitable[Response]]

#: A frame's payload (websockets calls it ``BytesLike``).
BytesLike = bytes | bytearray | memoryview


def binary_frame_header(size: int) -> bytes:
    """The header of an unmasked, final, binary WebSocket frame of ``size`` bytes (RFC 6455 5.2)."""
    if size < 126:
        return bytes((0x82, size))
    if size < 1 << 16:
        return b"\x82\x7e" + size.to_bytes(2, "big")
    return b"\x82\x7f" + size.to_bytes(8, "big")


#: Close codes the websockets library fails a connection with for the peer's fault: told first with an ``error``.
PEER_FAULTS = frozenset({CloseCode.PROTOCOL_ERROR, CloseCode.INVALID_DATA, CloseCode.MESSAGE_TOO_BIG})

_DATA_OPCODES = frozenset({Opcode.BINARY, Opcode.TEXT, Opcode.CONT})
_PING_PONG = frozenset({Opcode.PING, Opcode.PONG})
_CLOSE_FRAME = b"\x88"  # the first byte of a close frame (FIN, opcode 8)


def outgoing_close(out: list[bytes]) -> Close | None:
    """The close frame among ``out`` (a server's frames, as ``data_to_send`` returns them), parsed; or None."""
    for data in out:
        if data[:1] == _CLOSE_FRAME:
            # A server's frames are unmasked and a control frame's payload is under 126 bytes: one length byte.
            return Close.parse(data[2:2 + data[1]])
    return None


@define
class SlowReader:
    """When a client that does not read its updates is given up on. Sans-I/O: the time is passed in.

    Attributes:
        max_buffer: bytes queued to the client past which updates to it are dropped.
        timeout_s: how long its queue may stay over ``max_buffer`` before it is closed.
        stats: the server's counters (``frames_dropped``, ``slow_closed``).
        since: when its queue went over, or None.
    """

    max_buffer: int
    timeout_s: float
    stats: dict[str, int]
    since: float | None = None

    def dropped(self, now: float) -> bool:
        """An update was dropped for a full queue at ``now``. Returns True when it is time to close the client.

        The next delta is against the client's last ack, so nothing is lost for good.
        """
        self.stats["frames_dropped"] += 1
        if self.since is None:
            self.since = now
        elif now - self.since > self.timeout_s:
            self.stats["slow_closed"] += 1
            return True
        return False

    def reason(self) -> str:
        return f"too slow: over {self.max_buffer} bytes queued for {self.timeout_s:g} s"


class Connection(asyncio.Protocol):
    """One client's connection: its HTTP request, then (on a game path) its WebSocket, session and member.

    It owns the websockets ``ServerProtocol`` and is its I/O layer: bytes
    received go to ``receive_data`` (or ``receive_eof``), and after every call
    into the protocol whatever ``data_to_send`` returns is written at once, so
    the protocol never holds output while we write ours.

    - **Opening.** The library gets the request and only the request
      (``RequestEnd`` finds its end in constant memory); bytes behind it wait
      (at most one largest frame, and ``EARLY_MESSAGES`` frames) until the
      handshake completes. A game path is accepted (``accept``); any other
      goes through ``GameServer.respond`` and its answer is sent with
      ``send_response``, after which the connection closes.
    - **Receiving.** A ``FrameSplitter`` reads the client's small binary
      frames itself: each payload goes straight to the session and the
      match, no ``Frame`` object, event or queue per message. Every other
      frame goes to the library whole; the data frames it parses come back as
      events and take the same way (fragments are refused, 1008). Ping and
      pong frames count against the session's message rate limit.
    - **Sending.** ``send`` writes an update frame (``binary_frame_header``
      and payload) to the transport itself, only while the protocol is OPEN:
      the protocol's own output has always been written by then, so frames
      never interleave. A slow reader's updates are dropped and it is closed
      (1008) if it stays slow (``SlowReader``).
    - **Closing.** ``close`` sends the close frame through the protocol; the
      peer's close frame, its EOF or the close timeout ends the connection.
      After a close we start, nothing is sent and no message is taken.
      ``connection_lost`` ends the session: the match holds or forgets the
      member.
    - **Errors.** The peer's: an ``error`` message, then a close with its
      code. Ours on one message: logged, ``error`` and 1011 for this
      connection only.
    """

    def __init__(self, server: GameServer) -> None:
        config = server.config
        self.server = server
        self.config = config
        self.clock = server.clock
        self.loop = asyncio.get_running_loop()
        self.protocol = ServerProtocol(max_size=WS_MAX_SIZE)
        self.transport: asyncio.Transport
        self.peer: Any = None
        #: The match a game path names, the session and (after the hello) the member.
        self.match: Match
        self.session: ServerSession
        self.member: Member | None = None
        #: Whether data messages still go to the session (not after an error or a close).
        self.taking = False
        #: Whether we started the close.
        self.closing = False
        self.slow = SlowReader(config.max_buffer, config.slow_timeout_s, server.stats)
        #: Done when the connection is gone.
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self._request_end = RequestEnd()
        #: Bytes the client sent behind its request before the handshake completed.
        self._held = bytearray()
        self._responded = False
        self._splitter: FrameSplitter | None = None
        self._answering: asyncio.Future[None] | None = None
        #: The opening handshake's deadline, then the hello's.
        self._deadline: asyncio.TimerHandle | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        self._closer: asyncio.TimerHandle | None = None
        self._ping_data: bytes | None = None
        self._ping_sent = 0.0

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.peer = transport.get_extra_info("peername")
        self.server.connections.add(self)
        # Browsers open spare connections they may never use: dropping one is routine (debug, not info).
        self._deadline = self.loop.call_later(self.config.open_timeout_s, self._abort, "no request answered in time",
                                              logging.DEBUG)

    def data_received(self, data: bytes) -> None:
        splitter = self._splitter
        if splitter is None:
            self._opening(data)
        else:
            self._pieces(splitter.feed(data))

    def eof_received(self) -> bool | None:
        self.taking = False
        self.protocol.receive_eof()
        self.protocol.events_received()  # a server gets no event from an EOF
        self._flush()
        return None  # the transport closes: nothing is written after the peer's EOF but the protocol's own

    def connection_lost(self, exc: Exception | None) -> None:
        self.taking = False
        self.protocol.receive_eof()  # idempotent: its state is CLOSED from here
        self.protocol.data_to_send()  # nowhere to write it
        for timer in (self._deadline, self._keepalive, self._closer):
            if timer is not None:
                timer.cancel()
        if self._answering is not None:
            self._answering.cancel()
        self._held.clear()
        self.server.connections.discard(self)
        if self.member is not None:
            self.match.disconnect(self.member, self, self.clock())
        self.lost.set_result(None)

    # -- the match's Client ----------------------------------------------------

    def send(self, data: bytes) -> None:
        """Write ``data`` as one binary frame; never blocks; dropped for a slow reader, or when not open."""
        if self.protocol.state is not State.OPEN:
            return  # not before the handshake, nothing after a close (ours or the library's)
        transport = self.transport
        if transport.get_write_buffer_size() > self.slow.max_buffer:
            if self.slow.dropped(self.clock()):
                self.close(CLOSE_POLICY, self.slow.reason())
            return
        self.slow.since = None
        # Legitimate now that we are the I/O layer: everything the protocol had
        # to send is written (_flush after each call into it), and it is OPEN.
        transport.write(binary_frame_header(len(data)) + data)

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; from now on nothing is sent and no message is taken."""
        if self.closing:
            return
        self.closing = True
        self.taking = False
        state = self.protocol.state
        if state is State.OPEN:
            # A close frame's payload is at most 125 bytes, 2 of them the code.
            self.protocol.send_close(code, reason.encode()[:120].decode(errors="ignore"))
            self._flush()
        elif state is State.CONNECTING:
            self.transport.abort()  # shutting down while the request is answered: no response
        # CLOSING or CLOSED: the library already closes (its close frame went out with a deadline).

    def fail(self, exc: ProtocolError) -> None:
        """The peer broke the protocol: tell it why, close with the error's code, take nothing more."""
        self.taking = False
        self.server.stats["protocol_errors"] += 1
        log.info("closing %s: %s", self.peer, exc)
        self._tell_and_close(exc.code, exc.reason)

    # -- opening ---------------------------------------------------------------

    def _opening(self, data: bytes) -> None:
        """Bytes before the WebSocket is open: the request goes to the library, what follows it waits."""
        if self._responded:
            return  # answered over HTTP: the rest is nobody's
        used = self._request_end.feed(data)
        if used < len(data):
            self._held += data[used:]
            if len(self._held) > WS_MAX_SIZE + 14:  # more than one largest frame
                self._abort(f"{len(self._held)} bytes sent before the handshake completed")
                return
        if used:
            protocol = self.protocol
            protocol.receive_data(data if used == len(data) else data[:used])
            events = protocol.events_received()
            self._flush()  # an invalid request: the library closes (no response)
            for event in events:
                if isinstance(event, Request):
                    self._request(event)

    def _request(self, request: Request) -> None:
        """The opening request: the WebSocket handshake on a game path, the router's answer on any other."""
        try:
            answer = self.server.respond(request)
        except Exception:
            log.exception("answering %s %s", request.path, self.peer)
            answer = self._internal_error()
        if answer is None:
            match = self.server.match_for(request.path)
            assert match is not None  # respond() answers 404 otherwise
            self.match = match
            self._respond(self.protocol.accept(request))
        elif isinstance(answer, Response):
            self._respond(answer)
        else:
            self._answering = asyncio.ensure_future(self._respond_later(request, answer))

    async def _respond_later(self, request: Request, answer: Awaitable[Response]) -> None:
        try:
            response = await answer
        except Exception:
            log.exception("answering %s %s", request.path, self.peer)
            response = self._internal_error()
        self._respond(response)

    def _internal_error(self) -> Response:
        return self.protocol.reject(500, "Internal server error; see the server's log.\n")

    def _respond(self, response: Response) -> None:
        """Send the response to the opening request; a 101 opens the WebSocket, any other ends the connection."""
        if self._responded or self.transport.is_closing():
            return  # gone while an answer was computed
        self._responded = True
        response.headers["Server"] = SERVER_HEADER
        self.protocol.send_response(response)
        self._flush()
        if self.protocol.state is State.OPEN:
            self._opened()
        else:
            self._held.clear()
            self._expect_close()

    def _opened(self) -> None:
        """The WebSocket is open: a session, the hello's deadline, keepalive, and the bytes that waited."""
        config = self.config
        self.server.stats["connections"] += 1
        self.session = self.match.new_session()
        self.taking = True
        self._set_deadline(config.hello_timeout_s, self._no_hello)
        self._keepalive = self.loop.call_later(config.ping_interval_s, self._ping)
        splitter = self._splitter = FrameSplitter(WS_MAX_SIZE)
        held, self._held = bytes(self._held), bytearray()
        if held:
            pieces = splitter.feed(held)
            if len(pieces) > EARLY_MESSAGES:
                # No client needs this many messages before its handshake completes.
                self._abort(f"{len(pieces)} frames before the handshake completed")
                return
            self._pieces(pieces)

    def _no_hello(self) -> None:
        self._deadline = None
        if self.member is None and self.taking:
            self.fail(PolicyViolation(f"no hello within {self.config.hello_timeout_s:g} s"))

    def _abort(self, why: str, level: int = logging.INFO) -> None:
        """Drop a connection that abuses the time before its handshake ends (or overruns it): no close handshake."""
        log.log(level, "closing %s: %s", self.peer, why)
        self.taking = False
        self._held.clear()
        self.transport.abort()

    # -- receiving -------------------------------------------------------------

    def _pieces(self, pieces: list[tuple[bool, bytes]]) -> None:
        for is_message, piece in pieces:
            if not is_message:
                self._to_library(piece)
            elif self.taking:
                self._take(piece)

    def _to_library(self, raw: bytes) -> None:
        """Whole frames the splitter leaves to the library: it answers pings, closes, or fails the connection.

        When the library fails the connection for the peer's fault (1002, 1007,
        1009), it does so inside ``receive_data``: its close frame is among the
        bytes ``data_to_send`` hands us, not yet written. We write an ``error``
        message ahead of them, as ``send_binary`` would have put it had it been
        called just before the failure. That is not writing behind the
        library's back: we are its I/O layer, its output goes out unchanged and
        in order, and on the wire a data frame before a close frame is what RFC
        6455 allows.
        """
        protocol = self.protocol
        was_open = protocol.state is State.OPEN
        protocol.receive_data(raw)
        events = protocol.events_received()
        out = protocol.data_to_send()
        if was_open and protocol.state is not State.OPEN:
            close = outgoing_close(out)
            peer_closed = any(isinstance(e, Frame) and e.opcode is Opcode.CLOSE for e in events)
            if close is not None and close.code in PEER_FAULTS and not peer_closed:
                self.server.stats["protocol_errors"] += 1
                log.info("closing %s: %s (close code %d)", self.peer, close.reason, close.code)
                payload = encode_server(Error(close.code, close.reason))
                self.transport.write(binary_frame_header(len(payload)) + payload)
        self._write(out)
        for event in events:
            if isinstance(event, Frame):
                self._frame(event)
        if protocol.state is not State.OPEN:
            self.taking = False

    def _frame(self, frame: Frame) -> None:
        """A frame the library parsed."""
        opcode = frame.opcode
        if opcode is Opcode.PONG:
            self._pong(bytes(frame.data))
        if not self.taking:
            return
        if opcode in _DATA_OPCODES:
            self._take(frame)
        elif opcode in _PING_PONG:
            try:  # the library answered a ping by itself: it still counts against the rate limit
                self.session.charge(self.clock())
            except ProtocolError as exc:
                self.fail(exc)

    def _take(self, item: bytes | Frame) -> None:
        """One data message: the session decodes and checks it (the first must be the hello), the match takes it."""
        match = self.match
        try:
            data = item if isinstance(item, bytes) else self._payload(item)
            now = self.clock()
            msg = self.session.receive(data, now, match.tick_count)
            member = self.member
            if member is None:
                assert isinstance(msg, Hello)  # the session's table allows nothing else first
                self.member = match.connect(msg, self.session, self, now)
                self._set_deadline(None, None)
            elif msg is not None:
                match.on_message(member, msg)
        except ProtocolError as exc:
            self.fail(exc)
        except Exception:
            # Our bug, not the peer's: say so in the log, close this connection only.
            log.exception("closing %s: internal error on a message", self.peer)
            self.taking = False
            self._tell_and_close(CloseCode.INTERNAL_ERROR, "internal server error")

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

    # -- keepalive -------------------------------------------------------------

    def _ping(self) -> None:
        """Ping the client; it has ``ping_timeout_s`` to answer."""
        self._keepalive = None
        if self.protocol.state is not State.OPEN:
            return
        self._ping_data = random.getrandbits(32).to_bytes(4, "big")
        self._ping_sent = self.loop.time()
        self.protocol.send_ping(self._ping_data)
        self._flush()
        self._keepalive = self.loop.call_later(self.config.ping_timeout_s, self._pong_overdue)

    def _pong(self, data: bytes) -> None:
        if self._ping_data is None or data != self._ping_data:
            return  # unsolicited, or an old ping's
        self._ping_data = None
        if self._keepalive is not None:
            self._keepalive.cancel()
        latency = self.loop.time() - self._ping_sent
        self._keepalive = self.loop.call_later(max(0.0, self.config.ping_interval_s - latency), self._ping)

    def _pong_overdue(self) -> None:
        self._keepalive = None
        if self.protocol.state is not State.OPEN:
            return
        log.info("closing %s: no pong within %g s", self.peer, self.config.ping_timeout_s)
        self.taking = False
        self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        self._flush()

    # -- writing and closing ---------------------------------------------------

    def _tell_and_close(self, code: int, reason: str) -> None:
        self.send(encode_server(Error(code, reason)))
        self.close(code, reason)

    def _flush(self) -> None:
        """Write what the protocol has to send; it always comes right after a call into the protocol."""
        self._write(self.protocol.data_to_send())

    def _write(self, out: list[bytes]) -> None:
        transport = self.transport
        for data in out:
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()  # the protocol's end of stream: half-close
            else:
                transport.close()  # TLS cannot half-close
        if out and self.protocol.close_expected():
            self._expect_close()

    def _expect_close(self) -> None:
        """The protocol expects the TCP connection to close: give the peer ``close_timeout_s`` to do its part."""
        if self._closer is None:
            self._set_deadline(None, None)
            if self._keepalive is not None:
                self._keepalive.cancel()
                self._keepalive = None
            self._closer = self.loop.call_later(self.config.close_timeout_s, self.transport.abort)

    def _set_deadline(self, seconds: float | None, callback: Callable[[], None] | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None if seconds is None or callback is None else self.loop.call_later(seconds, callback)


class WsClient:
    """A match ``Client`` over a websockets asyncio ``ServerConnection``, for ``server/playback.py`` only.

    Kept while the playback server still runs its own websockets server; it
    goes when playback becomes a feed of ``GameServer`` (issue 8). It writes
    update frames to the library's transport as the live server used to.
    """

    def __init__(self, ws: ServerConnection, max_buffer: int, slow_timeout_s: float, stats: dict[str, int]) -> None:
        self.ws = ws
        self.slow = SlowReader(max_buffer, slow_timeout_s, stats)
        self._closing: asyncio.Task[None] | None = None

    def send(self, data: bytes) -> None:
        ws = self.ws
        if self._closing is not None or ws.protocol.state is not State.OPEN:
            return
        if ws.transport.get_write_buffer_size() > self.slow.max_buffer:
            if self.slow.dropped(time.monotonic()):
                self.close(CLOSE_POLICY, self.slow.reason())
            return
        self.slow.since = None
        ws.transport.write(binary_frame_header(len(data)) + data)

    def close(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = asyncio.ensure_future(self.ws.close(code, reason.encode()[:120].decode(errors="ignore")))

    def fail(self, exc: ProtocolError) -> None:
        self.send(encode_server(Error(exc.code, exc.reason)))
        self.close(exc.code, exc.reason)

    async def closed(self) -> None:
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
        #: Every open connection, HTTP or WebSocket.
        self.connections: set[Connection] = set()
        #: Monotonic seconds: the matches' clock and the sessions' (rate limits).
        self.clock: Callable[[], float] = time.monotonic
        self._listener: asyncio.Server | None = None
        self._stop = asyncio.Event()
        self._static = config.static_dir.resolve()

    # -- lifecycle -------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.config.tls_cert is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        return ctx

    async def start(self) -> int:
        """Listen; returns the bound port."""
        config = self.config
        ctx = self.ssl_context()
        tls: dict[str, Any] = {} if ctx is None else {
            "ssl": ctx, "ssl_handshake_timeout": config.open_timeout_s, "ssl_shutdown_timeout": config.close_timeout_s}
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(lambda: Connection(self), config.host, config.port, **tls)
        port: int = self._listener.sockets[0].getsockname()[1]
        return port

    async def run(self) -> None:
        """Tick every match until ``stop()``; then close every connection (1001) and the listener."""
        try:
            async with asyncio.TaskGroup() as group:
                for m in self.matches.values():
                    group.create_task(m.run(self.clock, self._stop))
        finally:
            for m in self.matches.values():
                m.close()
            if self._listener is not None:
                self._listener.close()
                await self._close_connections()
                await self._listener.wait_closed()

    async def _close_connections(self) -> None:
        """Close every connection (1001) and wait until each is gone: the close timeout bounds the wait."""
        for conn in list(self.connections):
            conn.close(CLOSE_GOING_AWAY, "server shutting down")
        waiting = [conn.lost for conn in self.connections]
        if waiting:
            await asyncio.wait(waiting, timeout=self.config.close_timeout_s + 1)
        for conn in list(self.connections):
            conn.transport.abort()

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

    def respond(self, request: Request) -> Response | Awaitable[Response] | None:
        """The one HTTP router: None opens the WebSocket (a game path naming a hosted match);
        anything else is the response (some routes answer later: an awaitable)."""
        path = request.path.split("?", 1)[0]
        if path == "/ws" or path.startswith("/ws/"):
            if self.match_for(path) is None:
                return json_response({"error": f"no match {path[4:]!r} here", "matches": list(self.matches)}, 404)
            return None
        route = self.routes.get(path)
        if route is not None:
            return route(request)
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

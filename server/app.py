"""The asyncio shell: HTTP and WebSocket on one port, for the feeds it hosts.

A **feed** is what a WebSocket joins (``server/feed.py``): a live match, or
the playback of a recorded one. ``/ws`` joins the default match,
``/ws/<match id>`` any hosted match, and ``/ws?replay=NAME`` the playback
of a replay of the server's ``ReplayLibrary`` (opened on first use, dropped
when idle). ``/healthz``, ``/metrics`` and ``/api/...`` report on them;
other routes may be added per (method, path) (``add_route``), POST
included; everything else is a file of ``client_web/``.

The shell is the I/O layer under websockets' sans-I/O ``ServerProtocol``, on
its documented API only (``receive_data``, ``receive_eof``,
``events_received``, ``data_to_send``, ``accept``, ``send_response``,
``send_close``, ``send_ping``, ``fail``, ``state``, ``close_expected``): the
library parses the HTTP request and runs the WebSocket protocol; we own the
socket, so the timers (opening handshake, keepalive, closing) are ours, as
they are the asyncio layer's inside websockets. Names:

- ``GameServer``: the listener, the HTTP router and the registry of feeds
  (``add_feed``, ``remove_feed``), each ticked on its own loop
  (``server.loop.run_feed``), the admission hook (``admit``) and the locating hook (``locate``).
- ``Connection``: one TCP (or TLS) connection: its HTTP request, then its
  WebSocket and session; it is the ``Client`` the feed sends to.
- ``Target``: what a WebSocket path names (a feed id, and a replay to open).
- ``serve``: run a server until SIGINT or SIGTERM (the one signal handler; SIGTERM may drain first).

This module only moves bytes: the frame splitter and the library frame them,
sessions decode and validate, the feed decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import json
import logging
import random
import resource
import signal
import socket
import ssl
import struct
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from http import HTTPStatus
from typing import Any, cast

from attrs import define, field, frozen
from websockets.datastructures import Headers
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from server.config import ServerConfig
from server.feed import Feed
from server.frames import FrameSplitter, RequestEnd
from server.loop import run_feed
from server.logs import fields
from server.match import Match, Member
from server.metrics import CONTENT_TYPE, ServerMetrics, Traffic
from server.protocol import PROTOCOL_HEADER, PROTOCOL_MINOR, PROTOCOL_VERSION
from server.protocol.codec import encode_server
from server.protocol.errors import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    InvalidField,
    PolicyViolation,
    ProtocolError,
)
from server.protocol.messages import Error, Hello, Resync
from server.protocol.session import RATE_PER_S, ServerSession
from server.replay.format import NoSuchReplay, ReplayError
from server.replay.listing import ReplayLibrary
from server.replay.playback import IDLE_S, Playback, viewer_session
from server.web import (
    MAX_HEAD,
    HttpError,
    HttpRequest,
    body_length,
    http_response,
    json_response,
    not_allowed,
    origin_allowed,
    parse_head,
    servable,
    static_file,
)

log = logging.getLogger("server")

#: The WebSocket library's own frame limit; our codec's 1 KiB limit comes first.
WS_MAX_SIZE = 64 * 1024

#: The ``Server`` header of every response.
SERVER_HEADER = "tickserver"

#: Messages (and control frames) a connection may send behind its opening request, before the server takes them;
#: and messages it may send after its hello while it is admitted, before the feed takes them.
EARLY_MESSAGES = 64

#: Headers of the GET /api/* answers (and /healthz): a page served by another node reads them.
CORS = {"Access-Control-Allow-Origin": "*"}

#: The ids of playbacks in the registry start with this (a match id cannot: ``/ws/<match id>`` never names one).
REPLAY_PREFIX = "replay:"

#: An HTTP route: the request (its body too), and the response, now or later.
Route = Callable[[HttpRequest], Response | Awaitable[Response]]

#: The admission hook: ``(feed id, hello, connection)``, awaited after a valid hello and before the feed's
#: ``connect``; a ``ProtocolError`` it raises refuses the connection (``error`` and its close code). It may
#: return the id of another match for the connection to join instead (the rooms layer sends ``/ws`` on to
#: another match of the default room when the default match is full): one of the same room type, whose
#: session the connection's already is. None: the feed asked for.
Admit = Callable[[str, Hello, "Connection"], Awaitable[str | None]]

#: Called with a feed's id when its tick raised, before the feed is closed (the rooms layer closes the
#: match's replay without an end record: the world is whatever the exception left).
FeedFailed = Callable[[str], None]

#: The locating hook: awaited with the match id of a ``/ws/<match id>`` opening request when no such match
#: is hosted; True if it is hosted now (the rooms layer starts a match another node listed under this one).
#: An ``HttpError`` it raises is the answer (503: the match directory cannot be reached).
Locate = Callable[[str], Awaitable[bool]]

#: The readiness hook: why this server should get no new players now (its match directory is unreachable,
#: it is draining), or None when it is ready. ``GET /healthz?ready`` answers 503 with it.
Unready = Callable[[], str | None]

#: The garbage collector's thresholds while serving (``gc.set_threshold``; Python's are 700, 10, 10). A full
#: collection walks every connection's objects: 40-90 ms at 1,200 clients, two or three ticks skipped, and a
#: ramp of joins set off one or two. Ten times fewer allocations between collections make those rare (the
#: cyclic garbage of connections that left, some 27 objects each, waits up to ten times as long).
GC_THRESHOLDS = (7000, 10, 10)

#: Connections the kernel queues for ``accept``: a lobby's burst of matchmakes (hundreds at once) must not
#: overflow it (asyncio's default is 100; past it, connections wait for SYN retransmits, a second or more).
BACKLOG = 1024

#: Each connection's kernel send buffer, bytes (``SO_SNDBUF``; the kernel doubles it): room for a keyframe and
#: the updates of a round trip, not the megabytes of autotuning a client that stops reading would hold.
SEND_BUFFER = 64 << 10

#: File descriptors kept free below the open-file limit by ``--max-connections``' default for everything but
#: connections (replays, Redis, logs), on top of a burst of accepts (``accept_batch``).
FD_RESERVE = 64

#: How long a connection refused before its request (503, 429) waits for the request to arrive, seconds; and
#: how many may wait at once (more are dropped without an answer: within ``FD_RESERVE``).
REFUSED_LINGER_S = 0.25
MAX_REFUSING = FD_RESERVE // 2

#: Requests still answered past ``--max-connections`` and never counted against ``--max-per-address`` (their
#: first bytes): an operator's view of a flood, and probes from a shared address (a kubelet, a Prometheus).
MONITORING = (b"GET /healthz ", b"GET /healthz?", b"GET /metrics ", b"GET /metrics?")
#: The paths of ``MONITORING``.
MONITORING_PATHS = frozenset({"/healthz", "/metrics"})

#: How often, at most, the refusals of ``--max-connections`` are logged, seconds.
REFUSAL_LOG_S = 10.0

#: A frame's payload (websockets calls it ``BytesLike``).
BytesLike = bytes | bytearray | memoryview


#: The headers of the binary frames of under 126 bytes, by size.
_SHORT_HEADERS = tuple(bytes((0x82, size)) for size in range(126))
#: The header of a binary frame of 126 to 65,535 bytes (most updates): 0x82, 126, the size in 16 bits.
_MEDIUM_HEADER = struct.Struct(">HH")
_MEDIUM_MARK = 0x827E


def binary_frame_header(size: int) -> bytes:
    """The header of an unmasked, final, binary WebSocket frame of ``size`` bytes (RFC 6455 5.2)."""
    if size < 126:
        return _SHORT_HEADERS[size]
    if size < 1 << 16:
        return _MEDIUM_HEADER.pack(_MEDIUM_MARK, size)
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


def peer_text(peer: Any) -> str:
    """A peer address as ``host:port`` (``[host]:port`` for IPv6), for the log."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host}:{peer[1]}"
    return str(peer)


@frozen
class Target:
    """What a WebSocket path names, found at its opening request (no I/O): the feed its connection joins.

    Attributes:
        feed_id: the feed's id in the registry (a playback's: ``REPLAY_PREFIX`` and its replay's name).
        replay: for a playback, the replay's name ("": none named), opened on first use; None for a match.
    """

    feed_id: str
    replay: str | None = None


@define
class SlowReader:
    """When a client that does not read its updates is given up on. Sans-I/O: the time is passed in.

    Attributes:
        max_buffer: bytes queued to the client past which updates to it are dropped (so are they while the
            server's queues hold more than ``--max-queued`` in all and its own is not empty).
        timeout_s: how long its updates may keep being dropped before it is closed.
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
        return (f"too slow: updates dropped for {self.timeout_s:g} s (over {self.max_buffer} bytes queued, "
                "or all clients' queues full)")


@define
class AddressLimits:
    """Connections and player seats per client address, against ``--max-per-address``. Sans-I/O: the time is
    passed in.

    A player's seat counts from its join until its connection is gone, and while its match holds it for a
    resume after that (``held_until``): one address cannot fill a match with players it drops.

    Attributes:
        limit: the most connections, and the most seats, of one address (0: no limit).
    """

    limit: int
    connections: Counter[str] = field(factory=Counter)
    players: Counter[str] = field(factory=Counter)
    held: dict[str, list[float]] = field(factory=dict)

    def connect(self, address: str) -> bool:
        """Count a connection from ``address``; False (not counted) when it has ``limit`` already."""
        if self.limit and self.connections[address] >= self.limit:
            return False
        self.connections[address] += 1
        return True

    def disconnect(self, address: str) -> None:
        self.connections[address] -= 1
        if self.connections[address] <= 0:
            del self.connections[address]

    def seats(self, address: str, now: float) -> int:
        """The players of ``address``: connected, or held for a resume at ``now``."""
        held = self.held.get(address)
        if held:
            held[:] = [t for t in held if t > now]
            if not held:
                del self.held[address]
        return self.players[address] + len(self.held.get(address, ()))

    def may_join(self, address: str, now: float) -> bool:
        return not self.limit or self.seats(address, now) < self.limit

    def joined(self, address: str) -> None:
        self.players[address] += 1

    def left(self, address: str, now: float, held_until: float | None) -> None:
        """A player of ``address`` is gone; its match holds it until ``held_until`` (None: not held)."""
        self.players[address] -= 1
        if self.players[address] <= 0:
            del self.players[address]
        if held_until is not None and held_until > now:
            self.held.setdefault(address, []).append(held_until)
        self.seats(address, now)  # drop what expired


def forwarded_for(headers: Headers) -> str | None:
    """The client address a trusted proxy put last in ``X-Forwarded-For`` (None: no such header)."""
    values = headers.get_all("X-Forwarded-For")
    if not values:
        return None
    last = values[-1].split(",")[-1].strip()
    return last or None


def refusal(status: int, reason: str, retry_after: int | None = None) -> bytes:
    """A whole HTTP answer refusing a connection before any request is read (JSON ``{"error": reason}``)."""
    body = json.dumps({"error": reason}).encode()
    retry = f"Retry-After: {retry_after}\r\n" if retry_after is not None else ""
    return (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nServer: {SERVER_HEADER}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(body)}\r\n{retry}Connection: close\r\n\r\n").encode() + body


def raise_open_files() -> tuple[int, int, int]:
    """Raise this process's soft limit of open files to its hard limit; returns (soft before, soft now, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard


def open_files() -> int:
    """This process's soft limit of open files (an unlimited one counts as 2**20)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def accept_batch(files: int) -> int:
    """How many connections the listener may accept at once with ``files`` open files: ``BACKLOG``, at most a
    quarter of them. (asyncio accepts up to its backlog per wake-up, each a file descriptor, before the
    server sees any: a burst must fit below the limit, or accept fails on every one of them.)"""
    return max(8, min(BACKLOG, files // 4))


#: Seconds the listener stops accepting after ``accept`` failed for lack of file descriptors (or memory), as
#: asyncio's own does: the connections wait in the kernel's queue meanwhile, or are refused at its end.
ACCEPT_RETRY_S = 1.0
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Listener:
    """The listening sockets of ``host``:``port``: each turn of the loop accepts every connection waiting, up to
    ``batch``, and hands each to the loop as a transport with ``protocol`` (``connect_accepted_socket``).

    Not the loop's own server, because uvloop (libuv 1.45 on) accepts one connection per turn of the loop:
    a server whose turns take a few ticks under load then takes a burst of N connections in N turns, and
    an HTTP probe that came behind them waits as long (``GET /healthz`` took 13 s behind 120 WebSocket
    connections at P = 1,000; BENCHMARKS.md, *Hostile clients*). asyncio's loop accepts its backlog at
    once; this does so on either loop.
    """

    def __init__(self, protocol: Callable[[], asyncio.Protocol], host: str | None, port: int, batch: int,
                 tls: dict[str, Any]) -> None:
        self.protocol = protocol
        self.batch = batch
        self.tls = tls
        self.loop = asyncio.get_running_loop()
        self.sockets: list[socket.socket] = []
        self._setting_up: set[asyncio.Task[None]] = set()
        try:
            seen: set[tuple[int, Any]] = set()
            for family, kind, proto, _, address in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                                      flags=socket.AI_PASSIVE):
                if (family, address) in seen:
                    continue
                seen.add((family, address))
                sock = socket.socket(family, kind, proto)
                self.sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(batch)
                sock.setblocking(False)
        except OSError:
            self.close()
            raise
        for sock in self.sockets:
            self.loop.add_reader(sock.fileno(), self._accept, sock)

    @property
    def port(self) -> int:
        """The port bound (the first socket's: with port 0, each address may get another)."""
        return int(self.sockets[0].getsockname()[1])

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(self.batch):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    log.error("socket.accept() out of system resource: %s; accepting again in %g s", exc,
                              ACCEPT_RETRY_S)
                    self.loop.remove_reader(sock.fileno())
                    self.loop.call_later(ACCEPT_RETRY_S, self._resume, sock)
                    return
                continue  # that connection is gone already (ECONNABORTED): the next
            conn.setblocking(False)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self.loop.create_task(self._set_up(conn))
            self._setting_up.add(task)
            task.add_done_callback(self._setting_up.discard)

    def _resume(self, sock: socket.socket) -> None:
        if sock in self.sockets and sock.fileno() >= 0:
            self.loop.add_reader(sock.fileno(), self._accept, sock)

    async def _set_up(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.protocol, conn, **self.tls)
        except (OSError, ssl.SSLError, TimeoutError) as exc:  # gone already, or a failed TLS handshake
            log.debug("a connection could not be set up: %s", exc)
            conn.close()

    def close(self) -> None:
        """Accept no more; connections set up or under way are not touched (a TLS handshake under way ends)."""
        for sock in self.sockets:
            if sock.fileno() >= 0:
                self.loop.remove_reader(sock.fileno())
                sock.close()
        self.sockets = []
        for task in list(self._setting_up):
            task.cancel()


def default_max_connections(files: int | None = None) -> int:
    """``--max-connections``' default with ``files`` open files (this process's limit): less a burst of accepts
    (``accept_batch``) and ``FD_RESERVE`` for everything else."""
    files = open_files() if files is None else files
    return max(1, files - accept_batch(files) - FD_RESERVE)


class Connection(asyncio.Protocol):
    """One client's connection: its HTTP request, then (on a WebSocket path) its WebSocket, session and member.

    It owns the websockets ``ServerProtocol`` and is its I/O layer: bytes
    received go to ``receive_data`` (or ``receive_eof``), and after every call
    into the protocol whatever ``data_to_send`` returns is written at once, so
    the protocol never holds output while we write ours.

    - **Opening.** A GET goes to the library, the request and only the
      request (``RequestEnd`` finds its end in constant memory); bytes behind
      it wait (at most one largest frame, and ``EARLY_MESSAGES`` frames)
      until the handshake completes. Any other method is parsed here
      (``server.web.parse_head``, a body of up to ``MAX_BODY`` bytes). A
      WebSocket path is accepted (``accept``), which names the ``Target``;
      every other request goes to ``GameServer.respond`` and its answer is
      sent with ``send_response``, after which the connection closes.
    - **Joining.** The session is the target feed's (``new_session``); the
      first message must be the hello. Then the feed is found (a playback
      is loaded on first use, on a worker thread), the server's ``admit``
      hook is awaited, and the feed ``connect``s the client; messages that
      come meanwhile wait, in order (at most ``EARLY_MESSAGES``). A hosted
      feed and no hook: all at once, on the hello.
    - **Receiving.** A ``FrameSplitter`` reads the client's small binary
      frames itself: each payload goes straight to the session and the
      feed, no ``Frame`` object, event or queue per message. Every other
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
      ``connection_lost`` ends the session: the feed holds or forgets the
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
        #: The request's path (with its query), and what it names when it opens a WebSocket.
        self.path = ""
        self.target: Target | None = None
        #: The WebSocket's session, and (once joined) the feed and the feed's member for it.
        self.session: ServerSession
        self.feed: Feed[Any] | None = None
        self.member: Any = None
        #: Whether data messages still go to the session (not after an error or a close).
        self.taking = False
        #: Whether we started the close.
        self.closing = False
        #: Whether the protocol's state is OPEN, as of the last call into it (each is followed by ``_write``, which
        #: sets this): ``send``'s check, without the library's property per update.
        self._open = False
        self.slow = SlowReader(config.max_buffer, config.slow_timeout_s, server.stats)
        #: How long the peer has to do its part of a close before the connection is dropped (``close_timeout_s``;
        #: longer for a client told where its match moved: it must get to read that first).
        self.close_timeout = config.close_timeout_s
        #: The server's traffic counters (``/metrics``).
        self.traffic = server.traffic
        #: The close code we closed with (or the library did, for the peer's fault), once we did.
        self.closed_with: int | None = None
        #: Bytes in the transport's queue when we last looked (their sum over connections: ``GameServer.queued``).
        self._queued = 0
        #: Refused (``_refuse_read``): whatever still comes is read and ends the connection.
        self._refused = False
        #: Past ``--max-connections`` (503) or its address's ``--max-per-address`` (429): the refusal its first
        #: bytes get unless they are ``MONITORING`` (answered), with its reason; None: neither.
        self._pending: tuple[int, str] | None = None
        #: The client's address as ``--max-per-address`` counts it (None: not counted, or not yet).
        self.address: str | None = None
        #: The match whose seat this connection's player holds, and the address it counts against.
        self._seat: Match | None = None
        self._seat_address = ""
        #: Done when the connection is gone.
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self._request_end = RequestEnd()
        #: The first bytes, until they say whether the request is a GET (the library's) or not (ours); then None.
        self._probe: bytes | None = b""
        #: A request we parse ourselves: its head so far, then its method, path, headers and body length.
        self._head: bytearray | None = None
        self._own: tuple[str, str, Headers, int] | None = None
        #: A GET the library parsed (accepted once its target is known).
        self._opening_request: Request | None = None
        #: Bytes the client sent behind its request before the handshake completed (or a body).
        self._held = bytearray()
        #: A request we parsed was handed to the router; the response was sent.
        self._dispatched = False
        self._responded = False
        #: After the hello until the feed connected the client: the join under way, and the messages that wait.
        self._joining: asyncio.Future[None] | None = None
        self._waiting: list[bytes | Frame] | None = None
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
        server = self.server
        if len(server.connections) >= server.max_connections:
            # Full: a 503, unless it asks for /healthz or /metrics (an operator's view of the flood).
            server.refused(len(server.connections))
            self._until_request(503, f"the server is full ({server.max_connections} connections): try again later")
            return
        self._admitted()

    def _until_request(self, status: int, reason: str) -> None:
        """Refuse with ``status`` and ``reason`` unless the first bytes ask for ``MONITORING``: they are waited for
        ``REFUSED_LINGER_S`` at most, and the connection is closed once they are read (nothing resets our
        answer then)."""
        server = self.server
        if server.refusing >= MAX_REFUSING:
            self.transport.abort()  # a burst: file descriptors first, answers second
            return
        server.refusing += 1
        self._pending = status, reason
        self._closer = self.loop.call_later(REFUSED_LINGER_S, self._refuse_pending)

    def _admitted(self, monitoring: bool = False) -> None:
        """Count the connection in and start its timers. ``--max-per-address`` counts it against its address
        unless it is an operator's ``/healthz`` or ``/metrics`` (``monitoring``): an address at its limit waits
        for its first bytes to tell (``_until_request``)."""
        server, transport = self.server, self.transport
        if not monitoring and not self.config.trust_forwarded_for and isinstance(self.peer, tuple):
            address = str(self.peer[0])
            if not server.addresses.connect(address):
                self._until_request(429, f"too many connections from {address} ({server.addresses.limit}, "
                                         "--max-per-address)")
                return
            self.address = address
        server.connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # What the kernel queues for the client: SEND_BUFFER (the kernel doubles it), not the megabytes
            # autotuning allows; what does not fit waits in our queue, where we count it.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        # Browsers open spare connections they may never use: dropping one is routine (debug, not info).
        self._deadline = self.loop.call_later(self.config.open_timeout_s, self._abort, "no request answered in time",
                                              logging.DEBUG)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self.transport.close()  # its request is read: our answer is out, nothing to reset it
            return
        if self._pending is not None:
            status, reason = self._pending
            self._stop_waiting()
            if not data.startswith(MONITORING):
                self._refuse_read(status, reason)
                return
            self._admitted(monitoring=True)  # an operator's /healthz or /metrics: answered past the limits
        elif self.address is not None and self._probe == b"" and data.startswith(MONITORING):
            # Counted in before its first bytes said it is an operator's: not against its address after all.
            self.server.addresses.disconnect(self.address)
            self.address = None
        self.traffic.bytes_in += len(data)
        splitter = self._splitter
        if splitter is None:
            self._opening(data)
            return
        message = splitter.one(data)
        if message is None:
            self._pieces(splitter.feed(data))
        elif self.taking:
            self._take(message)

    def eof_received(self) -> bool | None:
        if self._pending is not None or self._refused:
            return None  # refused, and gone before its answer mattered: the transport closes
        self.taking = False
        self.protocol.receive_eof()
        self.protocol.events_received()  # a server gets no event from an EOF
        self._flush()
        return None  # the transport closes: nothing is written after the peer's EOF but the protocol's own

    def connection_lost(self, exc: Exception | None) -> None:
        if self._pending is not None:
            self._stop_waiting()
        if self._refused:
            self.lost.set_result(None)
            return
        self.taking = False
        self.protocol.receive_eof()  # idempotent: its state is CLOSED from here
        self.protocol.data_to_send()  # nowhere to write it
        self._open = False
        for timer in (self._deadline, self._keepalive, self._closer):
            if timer is not None:
                timer.cancel()
        for task in (self._answering, self._joining):
            if task is not None:
                task.cancel()
        self._held.clear()
        self._waiting = None
        server = self.server
        server.connections.discard(self)
        server.queued -= self._queued
        self._queued = 0
        if self.address is not None:
            server.addresses.disconnect(self.address)
        if self._splitter is not None:
            self._gone()
        if self.feed is not None:
            # The client's own close with 1000 is a leave: its player goes at once. Anything else
            # (no close frame, another code) is a dropped connection: the player is held.
            close = self.protocol.close_rcvd
            left = close is not None and close.code == CloseCode.NORMAL_CLOSURE
            now = self.clock()
            self.feed.disconnect(self.member, self, now, left=left)
            member, match = self.member, self._seat
            if match is not None and isinstance(member, Member):
                held = match.members.get(member.player) is member and member.left_at is not None
                until = member.left_at + match.hold_s if held and member.left_at is not None else None
                server.addresses.left(self._seat_address, now, until)
        self.lost.set_result(None)

    def _gone(self) -> None:
        """The WebSocket is gone: count its close code; a member's connection says it left."""
        by = "server" if self.closed_with is not None else "client"
        code = self.closed_with if self.closed_with is not None else self.protocol.close_code
        self.server.metrics.disconnect(code, by)
        if self.feed is not None:
            reason = self.protocol.close_reason if by == "client" else ""
            log.info("%s: %s left (close code %s by the %s%s)", self.feed_id, self.who(), code, by,
                     f": {reason}" if reason else "",
                     extra=fields("leave", match=self.feed_id, player=self.player, peer=peer_text(self.peer),
                                  code=code, by=by))

    # -- for the log -------------------------------------------------------------

    @property
    def feed_id(self) -> str | None:
        return self.target.feed_id if self.target is not None else None

    @property
    def player(self) -> int | None:
        return getattr(self.member, "player", None)

    def who(self) -> str:
        """The connection as the log names it: ``player 3 'ann' (127.0.0.1:5000)``, or its address alone."""
        m = self.member
        if m is None:
            return peer_text(self.peer)
        kind = ("spectator" if m.spectator else "player") if isinstance(m, Member) else "viewer"
        return f"{kind} {m.player} {m.name!r} ({peer_text(self.peer)})"

    # -- the feed's Client -----------------------------------------------------

    def send(self, data: bytes) -> None:
        """Write ``data`` as one binary frame; never blocks; dropped for a slow reader, or when not open.

        A slow reader: more than ``--max-buffer`` bytes wait in its queue, or the queues of all clients
        hold more than ``--max-queued`` and its own is not empty. An ``error`` is never dropped."""
        if not self._open:
            return  # not before the handshake, nothing after a close (ours or the library's)
        transport = self.transport
        queued = transport.get_write_buffer_size()
        if (queued or self._queued) and self._backlog(queued):
            return
        # Legitimate now that we are the I/O layer: everything the protocol had
        # to send is written (_flush after each call into it), and it is OPEN.
        size = len(data)
        if size < 126:
            frame = _SHORT_HEADERS[size] + data
        elif size < 1 << 16:
            frame = _MEDIUM_HEADER.pack(_MEDIUM_MARK, size) + data
        else:
            frame = binary_frame_header(size) + data
        traffic = self.traffic
        traffic.messages_out += 1
        traffic.bytes_out += len(frame)
        transport.write(frame)

    def send_many(self, frames: Sequence[bytes]) -> None:
        """Write each of ``frames`` as one binary frame, all in one write (a joiner's welcome, roster and first
        update: one system call, not three); dropped together where ``send`` would drop one."""
        if not self._open:
            return
        transport = self.transport
        queued = transport.get_write_buffer_size()
        if (queued or self._queued) and self._backlog(queued):
            return
        out = b"".join(part for data in frames for part in (binary_frame_header(len(data)), data))
        traffic = self.traffic
        traffic.messages_out += len(frames)
        traffic.bytes_out += len(out)
        transport.write(out)

    def _backlog(self, queued: int) -> bool:
        """``send`` found ``queued`` bytes in the transport's queue, or found some there the last time: count
        them in the server's total; True when the update is dropped for a slow reader (which may close it).
        (With nothing queued now or then, the reader is not slow: ``SlowReader.since`` is only set here.)"""
        server = self.server
        server.queued += queued - self._queued
        self._queued = queued
        slow = self.slow
        if queued and (queued > slow.max_buffer or server.queued > self.config.max_queued) and self.taking:
            if slow.since is None:
                log.warning("%s: %s is slow: %d bytes queued (%d for all clients), its updates are dropped "
                            "(closed after %g s)", self.feed_id, self.who(), queued, server.queued, slow.timeout_s,
                            extra=fields("slow_client", match=self.feed_id, player=self.player,
                                         peer=peer_text(self.peer)))
            if slow.dropped(self.clock()):
                self.tell_and_close(CLOSE_POLICY, slow.reason())
            return True
        slow.since = None
        return False

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; from now on nothing is sent and no message is taken."""
        if self.closing:
            return
        self.closing = True
        self.taking = False
        state = self.protocol.state
        if state is State.OPEN:
            self.closed_with = code
            if code not in (CloseCode.NORMAL_CLOSURE, CLOSE_GOING_AWAY):
                self._kicked(code, reason)
            # A close frame's payload is at most 125 bytes, 2 of them the code.
            self.protocol.send_close(code, reason.encode()[:120].decode(errors="ignore"))
            self._flush()
        elif state is State.CONNECTING:
            self.transport.abort()  # shutting down while the request is answered: no response
        # CLOSING or CLOSED: the library already closes (its close frame went out with a deadline).

    def fail(self, exc: ProtocolError) -> None:
        """The peer broke the protocol (or is refused): tell it why, close with the error's code, take nothing more."""
        self.taking = False
        self.server.stats["protocol_errors"] += 1
        self.tell_and_close(exc.code, exc.reason)

    def _kicked(self, code: int, reason: str) -> None:
        """The log's line for a connection we close with an error code: who, why, the code."""
        log.info("%s: kicked %s: %s (close code %d)", self.feed_id or self.path, self.who(), reason, code,
                 extra=fields("kick", match=self.feed_id, player=self.player, peer=peer_text(self.peer),
                              code=code, reason=reason))

    def tell_and_close(self, code: int, reason: str) -> None:
        """Send an ``error`` with ``code`` and ``reason``, then close with them; take nothing more."""
        self.send_last(encode_server(Error(code, reason)), code, reason)

    def send_last(self, data: bytes, code: int, reason: str) -> None:
        """Send ``data`` (never dropped, however slow the reader: it is the last), then close with ``code`` and
        ``reason``; take nothing more."""
        self.taking = False  # ``send`` drops nothing for a connection no longer taking
        self.send(data)
        self.close(code, reason)

    def _stop_waiting(self) -> None:
        """The first bytes of a connection held by ``_until_request`` came, or it is gone: it waits no more."""
        self._pending = None
        self.server.refusing -= 1
        if self._closer is not None:
            self._closer.cancel()
            self._closer = None

    def _refuse_pending(self) -> None:
        """``_until_request``'s wait is over and no request came: its refusal, then close."""
        assert self._pending is not None
        status, reason = self._pending
        self._closer = None
        self._stop_waiting()
        self._refuse_read(status, reason)

    def _refuse_read(self, status: int, reason: str) -> None:
        """Refuse a connection whose request was read, or never came (503 or 429, ``Retry-After: 5``); close."""
        self._refused = True
        self._responded = True
        if status == 429:
            self.server.stats["address_refused"] += 1
        if self.transport.is_closing():
            return
        self.transport.write(refusal(status, reason, 5))
        self.transport.close()

    # -- opening ---------------------------------------------------------------

    def _opening(self, data: bytes) -> None:
        """Bytes before the WebSocket is open: a GET's request goes to the library (what follows it waits);
        any other request is read here."""
        if self._responded or self._dispatched:
            return  # answered over HTTP (or being answered): the rest is nobody's
        probe = self._probe
        if probe is not None:
            probe += data
            if len(probe) < 4:
                self._probe = probe
                return
            data, self._probe = probe, None
            if not data.startswith(b"GET "):
                self._head = bytearray()
        if self._head is not None:
            self._own_request(data)
            return
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

    def _own_request(self, data: bytes) -> None:
        """Bytes of a request that is not a GET: its head (``parse_head``), then its body (``body_length``)."""
        head = self._head
        assert head is not None
        used = self._request_end.feed(data)
        head += data[:used]
        self._held += data[used:]
        try:
            if len(head) > MAX_HEAD:
                raise HttpError(431, f"a request head over {MAX_HEAD} bytes")
            if not self._request_end.done:
                return
            if self._own is None:
                method, path, headers = parse_head(bytes(head))
                self._own = method, path, headers, body_length(headers)
                self.path = path
        except HttpError as exc:
            log.info("answering %s: %s", self.peer, exc)
            self._dispatched = True
            self._respond(exc.response())
            return
        method, path, headers, length = self._own
        if len(self._held) >= length:
            body, self._held = bytes(self._held[:length]), bytearray()
            self._dispatched = True
            self._answer(HttpRequest(method, path, headers, body))

    def _request(self, request: Request) -> None:
        """A GET the library parsed: the WebSocket handshake on a WebSocket path, the router's answer on any other."""
        self.path = request.path
        self._opening_request = request
        answer = self._answer(HttpRequest.of(request))
        if answer is not None:
            self.target = answer
            self._respond(self.protocol.accept(request))

    def _answer(self, request: HttpRequest) -> Target | None:
        """Send the router's answer to ``request`` (now, or once computed); a ``Target`` is returned, not sent."""
        if self.config.trust_forwarded_for and self.address is None and not (
                request.method == "GET" and request.path.partition("?")[0] in MONITORING_PATHS):
            # Behind a proxy: the client is who it says it forwarded, counted from its request on.
            address = forwarded_for(request.headers) or (str(self.peer[0]) if isinstance(self.peer, tuple) else "?")
            if not self.server.addresses.connect(address):
                self.server.stats["address_refused"] += 1
                self._respond(json_response({"error": f"too many connections from {address} "
                                                      f"({self.server.addresses.limit}, --max-per-address)"}, 429))
                return None
            self.address = address
        try:
            answer = self.server.respond(request)
        except Exception:
            log.exception("answering %s %s %s", request.method, request.path, self.peer)
            answer = self._internal_error()
        if isinstance(answer, Target):
            return answer
        if isinstance(answer, Response):
            self._respond(answer)
        else:
            self._answering = asyncio.ensure_future(self._respond_later(request, answer))
        return None

    async def _respond_later(self, request: HttpRequest, answer: Awaitable[Response | Target]) -> None:
        try:
            response = await answer
        except Exception:
            log.exception("answering %s %s %s", request.method, request.path, self.peer)
            response = self._internal_error()
        if isinstance(response, Target):  # a WebSocket path whose feed was found meanwhile (``GameServer.locate``)
            assert self._opening_request is not None
            self.target = response
            response = self.protocol.accept(self._opening_request)
        self._respond(response)

    def _internal_error(self) -> Response:
        return self.protocol.reject(500, "Internal server error; see the server's log.\n")

    def _respond(self, response: Response) -> None:
        """Send the response to the opening request; a 101 opens the WebSocket, any other ends the connection."""
        if self._responded or self.transport.is_closing():
            return  # gone while an answer was computed
        self._responded = True
        response.headers["Server"] = SERVER_HEADER
        if response.status_code == 101:
            response.headers[PROTOCOL_HEADER] = f"{PROTOCOL_VERSION}.{PROTOCOL_MINOR}"
        self.protocol.send_response(response)
        self._flush()
        if self.protocol.state is State.OPEN:
            self._opened()
        else:
            self._held.clear()
            self._expect_close()

    def _ignored(self, tag: str, keys: list[str]) -> None:
        """The client sent keys its message does not have (a newer minor version's): counted, logged once."""
        self.server.stats["ignored_keys"] += len(keys)
        if self.session is not None and self.session.ignored_keys == len(keys):
            log.info("ignoring unknown keys from %s: %s %s", self.peer, tag, ", ".join(keys)[:120],
                     extra=fields("ignored_keys", tag=tag, keys=keys[:16], peer=peer_text(self.peer)))

    def _opened(self) -> None:
        """The WebSocket is open: a session, the hello's deadline, keepalive, and the bytes that waited."""
        config = self.config
        self.server.stats["connections"] += 1
        assert self.target is not None
        self.session = self.server.session_for(self.target)
        self.session.max_unacked = config.max_unacked
        self.session.on_ignored = self._ignored
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
        if self.feed is None and self.taking:
            said = "the hello was not admitted" if self._joining is not None else "no hello"
            self.fail(PolicyViolation(f"{said} within {self.config.hello_timeout_s:g} s"))

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
                self.closed_with = close.code
                self._kicked(close.code, close.reason)
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
        """One data message: the session decodes and checks it (the first must be the hello), the feed takes it."""
        waiting = self._waiting
        if waiting is not None:  # joining: in order, once the feed has the client
            if len(waiting) >= EARLY_MESSAGES:
                self.fail(PolicyViolation(f"more than {EARLY_MESSAGES} messages before the hello was admitted"))
            else:
                waiting.append(item)
            return
        feed = self.feed
        self.traffic.messages_in += 1
        try:
            now = self.clock()
            if feed is not None and item.__class__ is bytes:
                # A player's input as clients pack it: read, checked and queued with no message object.
                fields = self.session.receive_input(item, now, feed.tick_count)
                if fields is not None:
                    feed.on_input(self.member, *fields)
                    return
            data = item if isinstance(item, bytes) else self._payload(item)
            if feed is not None:
                msg = self.session.receive(data, now, feed.tick_count)
                if msg is not None:
                    feed.on_message(self.member, msg)
                    if msg.__class__ is Resync:
                        self.server.stats["resyncs"] += 1
            else:
                hello = self.session.receive(data, now, 0)
                assert isinstance(hello, Hello)  # the session's table allows nothing else first
                self._hello(hello, now)
        except ProtocolError as exc:
            self.fail(exc)
        except Exception:
            # Our bug, not the peer's: say so in the log, close this connection only.
            log.exception("closing %s: internal error on a message", self.peer)
            self.tell_and_close(CloseCode.INTERNAL_ERROR, "internal server error")

    # -- joining ---------------------------------------------------------------

    def _hello(self, hello: Hello, now: float) -> None:
        """A valid hello: join the target feed now if it is hosted and nothing is to be awaited, else later."""
        server = self.server
        assert self.target is not None
        feed = server.hosted(self.target)
        if feed is not None and server.admit is None:
            self._connect(feed, hello, now)
        else:
            self._waiting = []
            self._joining = asyncio.ensure_future(self._join(hello))

    async def _join(self, hello: Hello) -> None:
        """Open the target feed (a playback: loaded on first use), await the admission hook, connect."""
        server = self.server
        assert self.target is not None
        try:
            feed = await server.open_feed(self.target)
            if server.admit is not None and self.taking:
                instead = await server.admit(self.target.feed_id, hello, self)
                if instead is not None and instead != self.target.feed_id and self.taking:
                    self.target = Target(instead)
                    feed = await server.open_feed(self.target)
            if not self.taking:
                return  # closed meanwhile
            if server.feeds.get(self.target.feed_id) is not feed:
                raise PolicyViolation(f"{self.target.feed_id} ended while this connection was joining", CLOSE_GOING_AWAY)
            self._connect(feed, hello, self.clock())
        except ProtocolError as exc:
            if self.taking:
                self.fail(exc)
            return
        except Exception:
            log.exception("closing %s: internal error while joining %s", self.peer, self.target.feed_id)
            if self.taking:
                self.tell_and_close(CloseCode.INTERNAL_ERROR, "internal server error")
            return
        waiting, self._waiting = self._waiting or [], None
        for item in waiting:
            if not self.taking:
                break
            self._take(item)

    def _connect(self, feed: Feed[Any], hello: Hello, now: float) -> None:
        """The feed takes the client (it may refuse with a ``ProtocolError``); the hello's deadline is over.

        Raises:
            PolicyViolation: (1008) a new player from an address that has ``--max-per-address`` seats already.
        """
        addresses = self.server.addresses
        player = isinstance(feed, Match) and not hello.spectate
        address = self.address or (str(self.peer[0]) if isinstance(self.peer, tuple) else "?")
        if player and not addresses.may_join(address, now):
            raise PolicyViolation(f"too many players from {address} ({addresses.limit}, connected or held for a "
                                  "resume; --max-per-address)")
        self.member = feed.connect(hello, self.session, self, now)
        self.feed = feed
        if player and isinstance(feed, Match):
            self._seat, self._seat_address = feed, address
            addresses.joined(address)
        self._set_deadline(None, None)
        event = "resume" if getattr(self.member, "resumed", False) else "join"
        log.info("%s: %s %s", self.feed_id, self.who(), "resumed" if event == "resume" else "joined",
                 extra=fields(event, match=self.feed_id, player=self.player, player_name=hello.name,
                              spectator=hello.spectate, peer=peer_text(self.peer)))

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
        self.taking = False
        self.closed_with = CloseCode.INTERNAL_ERROR
        self._kicked(CloseCode.INTERNAL_ERROR, f"no pong within {self.config.ping_timeout_s:g} s")
        self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        self._flush()

    # -- writing and closing ---------------------------------------------------

    def _flush(self) -> None:
        """Write what the protocol has to send; it always comes right after a call into the protocol."""
        self._write(self.protocol.data_to_send())

    def _write(self, out: list[bytes]) -> None:
        self._open = self.protocol.state is State.OPEN
        transport = self.transport
        for data in out:
            if data:
                self.traffic.bytes_out += len(data)
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()  # the protocol's end of stream: half-close
            else:
                transport.close()  # TLS cannot half-close
        if out and self.protocol.close_expected():
            self._expect_close()

    def _expect_close(self) -> None:
        """The protocol expects the TCP connection to close: give the peer ``close_timeout`` to do its part."""
        if self._closer is None:
            self._set_deadline(None, None)
            if self._keepalive is not None:
                self._keepalive.cancel()
                self._keepalive = None
            self._closer = self.loop.call_later(self.close_timeout, self.transport.abort)

    def _set_deadline(self, seconds: float | None, callback: Callable[[], None] | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None if seconds is None or callback is None else self.loop.call_later(seconds, callback)


class GameServer:
    """One port, the feeds it hosts (each ticking on its own loop), HTTP and WebSocket.

    The registry holds feeds by id: live matches (the constructor's, and
    any ``add_feed`` adds) and playbacks of the replay library, opened on
    first use (a worker thread reads the file) and dropped when nobody has
    watched them for ``idle_s`` seconds or when they fail.

    WebSocket paths: ``/ws`` joins the default match (the first one; on a
    server without a match: the library's only replay, if it serves one
    file), ``/ws/<match id>`` any hosted match (an unknown id: HTTP 404,
    once the ``locate`` hook, if any, did not find it),
    ``/ws?replay=NAME`` the playback of replay NAME (an unknown or bad
    replay: ``error`` and 1008 after the hello). HTTP: ``/healthz``
    (``?ready``: readiness, from the ``unready`` hook),
    ``/metrics`` and ``/api/match`` describe the default match
    (``/api/match?id=<match id>`` another), ``/api/matches`` lists the
    matches, ``/api/replays`` the library; routes are added per (method,
    path) with ``add_route``; ``/`` on a server without a match is the
    replay viewer.

    Attributes:
        admit: the admission hook (``Admit``), or None: awaited after each
            valid hello, before the feed's ``connect``, with the feed id, the
            hello and the connection; a ``ProtocolError`` it raises refuses
            the connection (``error`` and its close code); it is cancelled if
            the connection goes away meanwhile. It may name another match to
            join instead (``Admit``).
        feed_failed: called with a feed's id when its tick raised, before
            the feed is closed (``FeedFailed``), or None.
        locate: looks for a match named by ``/ws/<match id>`` that is not
            hosted (``Locate``), or None: such a path is a 404 at once.
        unready: says why the server is not ready (``Unready``), or None:
            always ready.
        idle_s: how long a playback nobody watches is kept.
        clock: monotonic seconds: the feeds' clock and the sessions' (rate limits).
    """

    def __init__(self, config: ServerConfig, matches: Match | Iterable[Match] = (), *,
                 library: ReplayLibrary | None = None) -> None:
        self.config = config
        #: The registry: every hosted feed by id.
        self.feeds: dict[str, Feed[Any]] = {}
        #: The id of the match ``/ws`` joins (None: none).
        self.default_id: str | None = None
        #: The replays this server plays (default: those of ``config.replay_dir``).
        self.library = library if library is not None else ReplayLibrary(config.replay_dir)
        #: Messages a second a replay viewer may send (bursts of twice that).
        self.viewer_rate = config.msg_rate or RATE_PER_S
        self.admit: Admit | None = None
        self.feed_failed: FeedFailed | None = None
        self.locate: Locate | None = None
        self.unready: Unready | None = None
        self.idle_s = IDLE_S
        self.routes: dict[tuple[str, str], Route] = {}
        for path, route in (("/healthz", self._healthz), ("/metrics", self._metrics), ("/api/match", self._api_match),
                            ("/api/matches", self._api_matches), ("/api/replays", self._api_replays)):
            self.add_route("GET", path, route)
        self.stats = {"connections": 0, "frames_dropped": 0, "slow_closed": 0, "ack_closed": 0, "protocol_errors": 0,
                      "resyncs": 0, "connections_refused": 0, "address_refused": 0, "ignored_keys": 0}
        #: Messages and bytes over every connection, and the registry ``/metrics`` serves (``server.metrics``).
        self.traffic = Traffic()
        self.metrics = ServerMetrics(self)
        #: Each feed's dropped ticks when the last sweep looked (a warning when they grow).
        self._dropped_seen: dict[str, int] = {}
        #: Every open connection, HTTP or WebSocket, and the bytes waiting in their queues (as last seen).
        self.connections: set[Connection] = set()
        self.queued = 0
        #: Connections past which new ones are refused (503); set from the open-file limit at ``start``.
        self.max_connections = config.max_connections or default_max_connections()
        #: Connections and seats per client address (``--max-per-address``).
        self.addresses = AddressLimits(config.max_per_address)
        #: Connections refused that wait for their request (``Connection._refuse``).
        self.refusing = 0
        #: Refusals for ``max_connections`` not logged yet, and when the last line was.
        self._refusals = 0
        self._refusal_logged = -REFUSAL_LOG_S
        self.clock: Callable[[], float] = time.monotonic
        self._listener: Listener | None = None
        self._stop = asyncio.Event()
        self._running = False
        #: Each ticking feed's loop, and the feeds opened on demand (dropped when idle).
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._on_demand: set[str] = set()
        #: Playbacks being loaded, by feed id: every viewer that asks meanwhile waits for the same one.
        self._loading: dict[str, asyncio.Future[Playback]] = {}
        self._static = config.static_dir.resolve()
        for m in [matches] if isinstance(matches, Match) else matches:
            self.add_feed(m.match_id, m)

    # -- the registry ----------------------------------------------------------

    @property
    def matches(self) -> dict[str, Match]:
        """The live matches, by id, the default one first."""
        return {fid: f for fid, f in self.feeds.items() if isinstance(f, Match)}

    @property
    def match(self) -> Match:
        """The default match (``/ws``). LookupError on a server without one."""
        feed = self.feeds.get(self.default_id) if self.default_id is not None else None
        if not isinstance(feed, Match):
            raise LookupError("this server hosts no default match")
        return feed

    def add_feed(self, feed_id: str, feed: Feed[Any], *, default: bool = False) -> None:
        """Host ``feed`` as ``feed_id``; it ticks from now on if the server runs (else from ``run()``).

        The first match added is the default one (``/ws``), unless ``default`` names another.

        Raises:
            ValueError: an id already hosted, or a match id a ``/ws/<id>`` path cannot name.
        """
        if feed_id in self.feeds:
            raise ValueError(f"two feeds with the id {feed_id!r}")
        if not feed_id or "/" in feed_id or "?" in feed_id:
            raise ValueError(f"a feed id is not empty and has no '/' or '?': {feed_id!r}")
        self.feeds[feed_id] = feed
        if default or (self.default_id is None and isinstance(feed, Match)):
            self.default_id = feed_id
        if isinstance(feed, Match):
            self.metrics.host(feed)
            log.info("match %s started: %s, %d Hz, at most %d players, seed %d", feed_id, feed.ruleset.spec.name,
                     feed.tick_rate, feed.max_players, feed.seed,
                     extra=fields("match_start", match=feed_id, ruleset=feed.ruleset.spec.name))
        if self._running:
            self._start_feed(feed_id, feed)

    def remove_feed(self, feed_id: str, reason: str = "the match is over") -> Feed[Any] | None:
        """Stop ``feed_id`` ticking, close it (``feed.close(reason)``) and every connection to it (1001, ``reason``).

        Returns the feed, or None if it was not hosted.
        """
        return self._drop(feed_id, CLOSE_GOING_AWAY, reason)

    def _drop(self, feed_id: str, code: int, reason: str) -> Feed[Any] | None:
        """Unhost ``feed_id`` and close its connections with ``code`` (an ``error`` first unless it is 1001):
        those it has, and those on their way to a match (a replay's are left to open it again)."""
        feed = self._unhost(feed_id)
        if feed is None:
            return None
        for conn in list(self.connections):
            target = conn.target
            if conn.feed is feed or (conn.feed is None and target is not None and target.feed_id == feed_id
                                     and target.replay is None):
                if code == CLOSE_GOING_AWAY:
                    conn.close(code, reason)
                else:
                    conn.tell_and_close(code, reason)
        feed.close(reason)
        if isinstance(feed, Match):
            self._ended(feed, reason)
        return feed

    @staticmethod
    def _ended(match: Match, reason: str) -> None:
        log.info("match %s ended: %s, after %d ticks (%d dropped)", match.match_id, reason, match.tick_count,
                 match.ticks_dropped, extra=fields("match_end", match=match.match_id, reason=reason))

    def _unhost(self, feed_id: str) -> Feed[Any] | None:
        feed = self.feeds.pop(feed_id, None)
        if feed is None:
            return None
        task = self._loops.pop(feed_id, None)
        if task is not None:
            task.cancel()  # it waits for its next tick: none runs
        self._on_demand.discard(feed_id)
        self._dropped_seen.pop(feed_id, None)
        if self.default_id == feed_id:
            self.default_id = None
        if isinstance(feed, Match):
            self.metrics.retire(feed)
        return feed

    def _start_feed(self, feed_id: str, feed: Feed[Any]) -> None:
        task = asyncio.create_task(run_feed(feed, self.clock), name=f"feed {feed_id}")
        self._loops[feed_id] = task
        task.add_done_callback(lambda t: self._feed_stopped(feed_id, t))

    def _feed_stopped(self, feed_id: str, task: asyncio.Task[None]) -> None:
        """A feed's loop ended: by ``_drop`` (cancelled), or by a bug in its tick: then only that feed goes (1011)."""
        if task.cancelled() or self._loops.get(feed_id) is not task:
            return
        exc = task.exception()
        if exc is not None:
            log.error("%s failed; closing its connections", feed_id, exc_info=exc)
            if self.feed_failed is not None:
                try:
                    self.feed_failed(feed_id)
                except Exception:
                    log.exception("the feed_failed hook of %s", feed_id)
            self._drop(feed_id, CloseCode.INTERNAL_ERROR, "internal server error")

    def hosted(self, target: Target) -> Feed[Any] | None:
        """The feed ``target`` names, if it is hosted and playing."""
        feed = self.feeds.get(target.feed_id)
        return feed if feed is not None and not feed.finished else None

    def session_for(self, target: Target) -> ServerSession:
        """The session of a new connection to ``target``: its feed's kind, even before a playback is loaded."""
        feed = self.feeds.get(target.feed_id)
        if feed is not None:
            return feed.new_session()
        return viewer_session(self.viewer_rate)

    async def open_feed(self, target: Target) -> Feed[Any]:
        """The feed ``target`` names; a playback is loaded on first use, on a worker thread.

        Raises:
            PolicyViolation: (1008) no such match, no replay named, or the replay cannot be played.
        """
        feed = self.hosted(target)
        if feed is not None:
            return feed
        name = target.replay
        if name is None:
            raise PolicyViolation(f"no match {target.feed_id!r} here")
        if not name:
            raise PolicyViolation("name a replay: /ws?replay=NAME (see /api/replays)")
        feed_id = target.feed_id
        loading = self._loading.get(feed_id)
        if loading is None:
            loading = self._loading[feed_id] = asyncio.ensure_future(asyncio.to_thread(self._load, name))
            loading.add_done_callback(lambda _: self._loading.pop(feed_id, None))
        try:
            playback = await asyncio.shield(loading)
        except NoSuchReplay as exc:
            raise PolicyViolation(str(exc)) from None
        except (OSError, ReplayError) as exc:
            raise PolicyViolation(f"cannot play {name}: {exc}") from None
        current = self.hosted(target)
        if current is not None:
            return current  # another viewer's wait ended first
        self._unhost(feed_id)  # a failed one, if any: its viewers are closed already
        self.add_feed(feed_id, playback)
        self._on_demand.add(feed_id)
        log.info("playing %s (%s, ticks %d..%d)", name, playback.header.ruleset, playback.replay.first_tick,
                 playback.sim.last_tick)
        return playback

    def _load(self, name: str) -> Playback:
        """Read, parse and check replay ``name`` of the library and make its playback (blocking: a worker thread)."""
        loaded = self.library.load(name)
        return Playback(loaded.name, loaded.replay, loaded.ruleset, msg_rate=self.viewer_rate)

    def _sweep(self) -> None:
        """Drop the feeds opened on demand that nobody uses (for ``idle_s``), and every finished feed; close
        the clients whose acknowledgements stopped (``--ack-timeout``)."""
        now = self.clock()
        timeout = self.config.ack_timeout_s
        for conn in list(self.connections):
            if conn.feed is not None and conn.taking and conn.session.ack_overdue(now, timeout):
                self.stats["ack_closed"] += 1
                conn.tell_and_close(CLOSE_POLICY, f"no acknowledgement for {timeout:g} s: read the updates and "
                                                  "acknowledge them (ack, or input.ack)")
        self._warn_dropped()
        for feed_id, feed in list(self.feeds.items()):
            if feed.finished:
                self._drop(feed_id, CLOSE_GOING_AWAY, f"{feed_id} ended")
            elif feed_id in self._on_demand and feed.idle_since is not None and now - feed.idle_since >= self.idle_s:
                log.info("dropping %s: nobody in it for %g s", feed_id, self.idle_s)
                self._drop(feed_id, CLOSE_GOING_AWAY, "idle")

    def _warn_dropped(self) -> None:
        """A warning for each feed that dropped ticks since the last sweep (its loop fell behind)."""
        for feed_id, feed in self.feeds.items():
            dropped = feed.ticker.dropped if feed.ticker is not None else 0
            seen = self._dropped_seen.get(feed_id, 0)
            if dropped > seen:
                log.warning("%s dropped %d ticks (%d in all): its loop fell behind", feed_id, dropped - seen, dropped,
                            extra=fields("ticks_dropped", match=feed_id, dropped=dropped - seen, total=dropped))
            self._dropped_seen[feed_id] = dropped

    # -- lifecycle -------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.config.tls_cert is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        return ctx

    def refused(self, open_now: int) -> None:
        """A connection was refused for ``max_connections``: one log line every ``REFUSAL_LOG_S`` at most."""
        self._refusals += 1
        self.stats["connections_refused"] += 1
        now = self.clock()
        if now - self._refusal_logged >= REFUSAL_LOG_S:
            log.warning("refusing connections (HTTP 503): %d open, --max-connections %d; %d refused since the last "
                        "line like this", open_now, self.max_connections, self._refusals,
                        extra=fields("refusing", open=open_now, max_connections=self.max_connections,
                                     refused=self._refusals))
            self._refusals = 0
            self._refusal_logged = now

    async def start(self) -> int:
        """Listen; returns the bound port."""
        config = self.config
        self.max_connections = config.max_connections or default_max_connections()
        ctx = self.ssl_context()
        tls: dict[str, Any] = {} if ctx is None else {
            "ssl": ctx, "ssl_handshake_timeout": config.open_timeout_s, "ssl_shutdown_timeout": config.close_timeout_s}
        self._listener = Listener(lambda: Connection(self), config.host, config.port, accept_batch(open_files()), tls)
        return self._listener.port

    async def run(self) -> None:
        """Tick every feed (each on its own loop) until ``stop()``; then close every feed, every connection
        (1001) and the listener."""
        self._running = True
        try:
            for feed_id, feed in self.feeds.items():
                self._start_feed(feed_id, feed)
            sweep = min(1.0, self.idle_s / 2)
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._stop.wait(), sweep)
                except TimeoutError:
                    self._sweep()
        finally:
            self._running = False
            loops = list(self._loops.values())
            self._loops.clear()
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            for feed in self.feeds.values():  # they stay in the registry, stopped
                feed.close("server shutting down")
                if isinstance(feed, Match):
                    self._ended(feed, "server shutting down")
            if self._listener is not None:
                self._listener.close()
                await self._close_connections()

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

    def add_route(self, method: str, path: str, route: Route) -> None:
        """Answer ``method`` requests for ``path`` (no query) with ``route`` (which gets the body too)."""
        self.routes[(method, path)] = route

    def respond(self, request: HttpRequest) -> Response | Awaitable[Response | Target] | Target:
        """The one HTTP router: a ``Target`` opens a WebSocket (a GET of a WebSocket path naming a feed);
        anything else is the response (some routes answer later: an awaitable; so does a WebSocket path
        naming a match the ``locate`` hook looks for).

        Routes are found by (method, path); a path served with other methods only is 405 with ``Allow``.
        """
        method, path = request.method, request.path.split("?", 1)[0]
        route = self.routes.get((method, path))
        if route is not None:
            return route(request)
        allowed = [m for m, p in self.routes if p == path]
        websocket = path == "/ws" or path.startswith("/ws/")
        if method == "GET":
            if websocket:
                if not origin_allowed(request.headers, self.config.allowed_origins, self.config.tls_cert is not None):
                    return json_response({"error": f"WebSocket connections from {request.headers.get('Origin')} are "
                                                   "not allowed here (--allowed-origin)"}, 403)
                return self.target(request.path)
            if allowed:
                return not_allowed(allowed)
            if path == "/" and self.default_id is None:
                path = "/replay.html"  # a replay server: the viewer is its page
            return static_file(self._static, path)
        if websocket or servable(self._static, path if not path.endswith("/") else path + "index.html"):
            allowed.append("GET")
        if allowed:
            return not_allowed(allowed)
        return json_response({"error": f"no {method} {path} here"}, 404)

    def target(self, path: str) -> Target | Response | Awaitable[Target | Response]:
        """What a WebSocket path names (see the class docstring), or the 404 answer to it; for a match not
        hosted, with a ``locate`` hook, the same once the hook has looked for it."""
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        if "replay" in query:
            if url.path != "/ws":
                return json_response({"error": "a replay plays at /ws?replay=NAME"}, 404)
            name = query["replay"][0]
            return Target(REPLAY_PREFIX + name, name)
        if url.path == "/ws":
            if self.default_id is not None:
                return Target(self.default_id)
            only = self.library.only or ""
            return Target(REPLAY_PREFIX + only, only)  # a replay server: its one replay, or an error after the hello
        match_id = url.path[4:]
        if not isinstance(self.feeds.get(match_id), Match):
            if self.locate is not None:
                return self._located(match_id)
            return self._no_match(match_id)
        return Target(match_id)

    async def _located(self, match_id: str) -> Target | Response:
        """The target of ``/ws/<match_id>`` once the ``locate`` hook looked for the match, or the 404
        (or the hook's ``HttpError``)."""
        assert self.locate is not None
        try:
            found = await self.locate(match_id)
        except HttpError as exc:
            return exc.response()
        if found and isinstance(self.feeds.get(match_id), Match):
            return Target(match_id)
        return self._no_match(match_id)

    def _no_match(self, match_id: str) -> Response:
        return json_response({"error": f"no match {match_id!r} here", "matches": list(self.matches)}, 404)

    def _healthz(self, request: HttpRequest) -> Response:
        """Liveness (always 200, with the default match's info), or with ``?ready`` readiness: 200
        ``{"ready": true}``, or 503 ``{"ready": false, "why": ...}`` while the ``unready`` hook says why not."""
        # Readable from any origin: a page served elsewhere shows this server's status before joining.
        why = self.unready() if self.unready is not None else None
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query, keep_blank_values=True)
        if "ready" in query:
            return json_response({"ready": why is None} if why is None else {"ready": False, "why": why},
                                 200 if why is None else 503, extra=CORS)
        default = self.feeds.get(self.default_id) if self.default_id is not None else None
        return json_response({"status": "ok", **(default.info() if default is not None else {}),
                              "matches": len(self.matches), "playbacks": len(self.feeds) - len(self.matches),
                              "ready": why is None}, extra=CORS)

    def _api_match(self, request: HttpRequest) -> Response:
        """A match's info and every player's entity state (world units are column / scale):
        the default match, or ``?id=<match id>``."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        match_id = query["id"][0] if "id" in query else self.default_id
        match = self.feeds.get(match_id) if match_id is not None else None
        if not isinstance(match, Match):
            return json_response({"error": f"no match {match_id!r} here", "matches": list(self.matches)}, 404)
        return json_response({**match.info(), "players": match.player_states()}, extra=CORS)

    def _api_matches(self, request: HttpRequest) -> Response:
        """Every hosted match's info, the default one first."""
        matches = self.matches
        first = [matches.pop(self.default_id)] if self.default_id in matches else []
        return json_response({"matches": [m.info() for m in first + list(matches.values())]})

    async def _api_replays(self, request: HttpRequest) -> Response:
        """The replays of the library, newest first (REPLAY.md); ``/ws?replay=NAME`` plays them.

        Listed on a worker thread (the disk must not stall the tick), each header read once (``ReplayIndex``).
        """
        replays = await asyncio.to_thread(self.library.list)
        return json_response({"playback": True, "dir": str(self.library.directory), "replays": replays}, extra=CORS)

    def _metrics(self, request: HttpRequest) -> Response:
        """Prometheus' text format: every match's counts and tick durations, the connections (``server.metrics``)."""
        return http_response(200, self.metrics.render(), CONTENT_TYPE)


async def serve(server: GameServer, on_ready: Callable[[int], None],
                on_sigterm: Callable[[], None] | None = None) -> None:
    """Start ``server``, tell ``on_ready`` its port, and run it until SIGINT or SIGTERM (or ``stop()``).

    ``on_sigterm``: what SIGTERM does instead of stopping at once (a node's drain, which stops the server when
    it is done). The one place a server is run until a signal: ``python -m server`` and ``tools.replay play``
    both use it.
    """
    soft, raised, hard = raise_open_files()
    port = await server.start()
    # What the process holds before its first client (modules, the matches) lives as long as it does: frozen,
    # the garbage collector's full collections (tens of ms at a thousand clients) no longer look at it.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    log.info("open files: soft limit %d%s (hard limit %d); at most %d connections (--max-connections)", soft,
             f", raised to {raised}" if raised != soft else "", hard, server.max_connections,
             extra=fields("limits", open_files=raised, open_files_hard=hard, max_connections=server.max_connections))
    on_ready(port)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    loop.add_signal_handler(signal.SIGINT, server.stop)
    loop.add_signal_handler(signal.SIGTERM, on_sigterm or server.stop)
    try:
        await server.run()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)

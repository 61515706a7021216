"""The asyncio client library: get a seat, connect, handshake, mirror the world, send inputs.

``GameClient`` keeps a mirror of the replicated state built from the
server's deltas (a ring of recent snapshots, since each delta names its
base), verifies every update's checksum (a mismatch counts as a desync and
asks for a keyframe), acknowledges what it holds, and measures round trips.
It says it can apply filtered views (``interest``, on by default): in a match
that filters them (interest management, PROTOCOL.md *Filtered views*) its
mirror is its view, entities entering and leaving it, verified by the view
sum. It takes the roster's changes (``roster_deltas``, on by default) and
keeps the whole roster from them (``server.protocol.roster.RosterMirror``; a
missed change asks for a ``resync``, which brings the whole roster again).
A player predicts its own entity (``tools.predict``: the server's movement
rule over the inputs not applied yet, corrections counted) and *sees* the
others ``interp_ticks`` behind the newest update, as a page interpolating
them would: ``seen()`` is that world, and each input's ``view`` says which
tick it was, so the server's lag compensation judges its shots against it.
It sends one message per batch of updates it processes: the player's input
(``send_input``), or an ``ack`` when it sent none. When an update says the
player's queue on the server holds more inputs than it needs (``surplus``,
protocol minor 2) it leaves that many out (``Skips``: a gap in its ``seq``;
the server applies every input it sent, only sooner, so the prediction stays
exact, where an overflowing queue would drop one).
With ``decode=False`` it only reads each update's tick and acknowledges it:
the cheap mode a load generator uses for most of its clients. When the
server moves the match to another node (``moved``, then close 1012) the
client follows: it reconnects to the new URL with its token, as the same
player, and its mirror, checks and counters go on (inputs sent meanwhile
are dropped).

``matchmake`` asks a server for a seat (``POST /api/matchmake``); the
``Seat`` names the match's WebSocket URL (possibly another node's) and the
token a client presents in its ``hello`` (``GameClient.from_seat``). The
request and the answer are built and read by pure functions
(``matchmake_request``, ``parse_seat``); only ``matchmake`` does I/O, with
the standard library's HTTP client in a worker thread.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import time
import urllib.error
import urllib.request
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt
from attrs import define, field, frozen
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from server.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from server.protocol.codec import decode_server, encode_client
from server.protocol.delta import Array, Snapshot, WireSchema, apply_body
from server.protocol.errors import ProtocolError
from server.protocol.interest import apply_view
from server.protocol.roster import RosterMirror
from server.protocol.messages import (
    Ack,
    Error,
    Hello,
    Input,
    Leave,
    Moved,
    Ping,
    Pong,
    Resync,
    Roster,
    RosterDelta,
    Update,
    Welcome,
)
from server.rooms.errors import MatchmakeError
from tools.predict import Predictor

#: Snapshots a client keeps as possible delta bases (the server keeps 32).
KEEP_STATES = 64
#: A backlog of up to this many updates is answered with one input each, sent together (the server
#: applies one input per tick, so an update left unanswered is a tick that starves: the player stands still); a
#: longer one is a stall, answered with one input (PROTOCOL.md, *The input queue*). 4: the deepest the
#: server's queue aims to be.
CATCH_UP = 4
#: Ticks behind the newest update a client sees others at (``GameClient.seen``): this client does
#: not draw, so it needs no margin for frame pacing; two ticks cover an update arriving late.
INTERP_TICKS = 2
#: Matchmake modes (``server.rooms.requests``): join an open match or create one; always create; only join.
MATCHMAKE_MODES = ("join_or_create", "create", "join")
#: Seconds a matchmake request may take before it is given up.
MATCHMAKE_TIMEOUT = 10.0


# -- matchmaking -------------------------------------------------------------------


@frozen
class Seat:
    """A seat reserved by ``POST /api/matchmake``.

    Attributes:
        match: the match id.
        url: the WebSocket URL to connect to (``ws://host:port/ws/<match>``, possibly another node).
        token: the seat token to present in ``hello``.
        expires_in: seconds the server holds the seat untaken, from its answer.
    """

    match: str
    url: str
    token: str
    expires_in: float


class NoMatchmakeAnswer(ConnectionError):
    """A matchmake request that got no usable answer: the server is unreachable, too slow, not
    speaking HTTP, or answered 200 without a seat. (A refusal is the server's ``MatchmakeError``.)"""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"no seat from {url}: {reason}")
        self.url = url
        self.reason = reason


def matchmake_request(http_url: str, ruleset: str, *, mode: str = "join_or_create",
                      labels: Mapping[str, str] | None = None, options: Mapping[str, int] | None = None,
                      match_id: str | None = None) -> urllib.request.Request:
    """The ``POST <http_url>/api/matchmake`` request: a JSON body with only what is given.

    Raises:
        ValueError: our misuse: not an ``http(s)://`` URL, an unknown mode, a
            ``match_id`` without mode ``join``, options with ``join``.
    """
    if not http_url.startswith(("http://", "https://")):
        raise ValueError(f"matchmake asks the server's HTTP address (http://HOST:PORT), not {http_url!r}")
    if mode not in MATCHMAKE_MODES:
        raise ValueError(f"unknown matchmake mode {mode!r}; expected one of {', '.join(MATCHMAKE_MODES)}")
    if match_id is not None and mode != "join":
        raise ValueError("a match_id goes with mode join only")
    if options and mode == "join":
        raise ValueError("options go with a mode that may create a match")
    body: dict[str, Any] = {"ruleset": ruleset, "mode": mode}
    if labels:
        body["labels"] = dict(labels)
    if options:
        body["options"] = dict(options)
    if match_id is not None:
        body["match_id"] = match_id
    return urllib.request.Request(
        http_url.rstrip("/") + "/api/matchmake", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"})


def parse_seat(url: str, status: int, body: bytes) -> Seat:
    """The seat in the answer to a matchmake request to ``url``.

    Raises:
        MatchmakeError: a refusal, as the server raised it: its status, and
            the reason and field of its ``{"error", "field"}`` body (or just
            the status when the body is not that).
        NoMatchmakeAnswer: a 200 answer without a seat in it.
    """
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        data = None
    if status != 200:
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            field = data.get("field")
            raise MatchmakeError(status, data["error"], field if isinstance(field, str) else None)
        raise MatchmakeError(status, "the server refused the request without saying why")
    if not isinstance(data, dict):
        raise NoMatchmakeAnswer(url, "the answer is not a JSON object")
    for key, kind in (("match", str), ("url", str), ("seat", str), ("expires_in", (int, float))):
        value = data.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise NoMatchmakeAnswer(url, f"the answer has no valid {key!r}")
    return Seat(data["match"], data["url"], data["seat"], float(data["expires_in"]))


async def matchmake(http_url: str, ruleset: str, *, mode: str = "join_or_create", labels: Mapping[str, str] | None = None,
                    options: Mapping[str, int] | None = None, match_id: str | None = None,
                    timeout: float = MATCHMAKE_TIMEOUT) -> Seat:
    """A seat in a match of ``ruleset`` from the server at ``http_url`` (``http://host:port``).

    ``mode``: ``join_or_create`` (an open match with ``labels``, or a new one
    with them and ``options``), ``create`` or ``join`` (``match_id``, or any
    open match with ``labels``). Connect with ``GameClient.from_seat`` before
    ``seat.expires_in`` runs out.

    Raises:
        MatchmakeError: the server refused (``server.rooms.errors``: its HTTP
            ``status``, one-line ``reason`` and the ``field`` at fault).
        NoMatchmakeAnswer: no usable answer within ``timeout`` seconds.
        ValueError: our misuse (``matchmake_request``).
    """
    request = matchmake_request(http_url, ruleset, mode=mode, labels=labels, options=options, match_id=match_id)
    status, body = await asyncio.to_thread(_post, request, timeout)
    return parse_seat(request.full_url, status, body)


def _post(request: urllib.request.Request, timeout: float) -> tuple[int, bytes]:
    """Send ``request``; its status and body, refusals included. Blocking: run it in a worker thread."""
    try:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as refusal:  # a 4xx or 5xx answer: its body says why
            with refusal:
                return refusal.code, refusal.read()
    except urllib.error.URLError as exc:  # before any answer: refused, unresolvable, timed out connecting
        raise NoMatchmakeAnswer(request.full_url, f"cannot reach it: {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:  # during the answer: a timeout, a reset, not HTTP
        raise NoMatchmakeAnswer(request.full_url, str(exc) or type(exc).__name__) from None


# -- the game connection -------------------------------------------------------------


@define
class Skips:
    """Sends left out because the server's queue of our inputs is deeper than it needs (PROTOCOL.md, *The input
    queue*, *When to send*; pure).

    An update's ``surplus`` (minor 2) says how many inputs the player's queue holds beyond its target depth at
    that tick. A skip already made after the input the update applied (``ack``) went out may not show in it yet,
    so those are taken off: ``owed = surplus - skips with seq > ack``. (One made long enough before shows in a
    lower surplus; counting it again only skips later, never too many.) A skip numbers an input and never sends
    it: the next one sent leaves a gap in ``seq``, which the server counts as arrived (its depth does not grow).

    Attributes:
        owed: sends to leave out from now on.
        pending: the seqs skipped that no update's ``ack`` has passed yet.
        skipped: skips so far.
    """

    owed: int = 0
    pending: deque[int] = field(factory=deque)
    skipped: int = 0

    def observe(self, ack: int, surplus: int) -> None:
        """An update: the server applied our inputs up to ``ack`` and holds ``surplus`` more than it needs."""
        while self.pending and self.pending[0] <= ack:
            self.pending.popleft()
        self.owed = max(0, surplus - len(self.pending))

    def skip(self, seq: int) -> bool:
        """Whether input ``seq``, about to go out, is to be left out (and it is then counted as skipped)."""
        if self.owed <= 0:
            return False
        self.owed -= 1
        self.pending.append(seq)
        self.skipped += 1
        return True

    def reset(self) -> None:
        """A new connection: its seq numbering starts again."""
        self.owed = 0
        self.pending.clear()


@define
class ClientStats:
    updates: int = 0
    keyframes: int = 0
    bytes: int = 0
    desyncs: int = 0
    missing_base: int = 0
    resyncs: int = 0
    errors: list[str] = field(factory=list)
    rtts: list[float] = field(factory=list)
    first_update: float | None = None
    last_update: float | None = None
    #: Moves followed (a ``moved`` message: the match went to another server), and for each the time
    #: without updates, seconds: from the last update before it to the first one after.
    moves: int = 0
    move_gaps: list[float] = field(factory=list)
    #: Updates checked against the prediction of our own entity, and those that corrected it.
    predicted: int = 0
    corrections: int = 0
    #: Updates a player left without an input of their own (``answer`` after a stall longer than
    #: ``CATCH_UP``: their ticks starve on the server, the player standing still).
    unanswered: int = 0
    #: Inputs left out because the server said its queue of ours was too deep (``Skips``).
    skipped: int = 0


class ServerClosed(Exception):
    """The server closed the connection (code and reason, and its error message if any)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed by server: {code} {reason}")
        self.code = code
        self.reason = reason


class GameClient:
    """One connection to a game server.

    Args:
        url: ``ws://host:port/ws`` (the default match) or ``ws://host:port/ws/<match id>``.
        name: player name (1-24 printable characters).
        spectate: join as a spectator (no entity, no input).
        token: a reconnect token from an earlier ``welcome``, to resume that player.
        seat: a seat token from ``matchmake`` to present in ``hello`` (not with ``token``).
        decode: build and verify the mirror (False: only acknowledge ticks).
        on_update: called after each update with this client.
        ssl_context: for ``wss://`` URLs with a certificate the system does not trust.
        interest: say it can apply filtered views (a match that filters views then sends only this
            player's view; False: the whole world, as to a client that cannot).
        interp_ticks: how far behind the newest update the client sees others (``seen``, ``view``).
        lag_compensation: inputs name their ``view`` (False: they do not, as for a server that predates it).
        roster_deltas: ask for the roster's changes (``roster_delta``; False: the whole roster at every
            change, as a client that predates them gets).
        on_frame: called with every frame the server sends, as received (an audit keeps them).
        assume_minor: the server's minor protocol version when it announces none (None: 0, as PROTOCOL.md
            says: such a server is 1.0; a benchmark's baseline known to be newer may say 1).

    What a minor version added (PROTOCOL.md, *Versions*: ``interest``, ``roster_deltas``, ``view``,
    ``leave``) is sent only to a server that announces that minor, in its upgrade response's
    ``Tickserver-Protocol`` header (``minor``) or its ``welcome``; a 1.0 server would refuse it (1007).
    """

    def __init__(self, url: str, name: str, *, spectate: bool = False, token: str | None = None,
                 seat: str | None = None, decode: bool = True, on_update: Callable[[GameClient], None] | None = None,
                 ssl_context: ssl.SSLContext | None = None, interest: bool = True, interp_ticks: int = INTERP_TICKS,
                 lag_compensation: bool = True, on_frame: Callable[[bytes], None] | None = None,
                 roster_deltas: bool = True, assume_minor: int | None = None) -> None:
        if token is not None and seat is not None:
            raise ValueError("a hello presents a resume token or a seat token, not both")
        self.url = url
        self.name = name
        self.spectate = spectate
        self.token = token
        #: The seat token to present; spent (None) once welcomed: the welcome's token resumes from then on.
        self.seat = seat
        self.decode = decode
        self.on_update = on_update
        self.ssl_context = ssl_context
        self.interest = interest
        self.on_frame = on_frame
        self.interp_ticks = interp_ticks
        self.lag_compensation = lag_compensation
        #: The prediction of our own entity (None: a spectator, or a ruleset that describes no movement rule).
        self.predictor: Predictor | None = None
        self.ws: ClientConnection | None = None
        self.welcome: Welcome | None = None
        self.schema: WireSchema | None = None
        self.roster_deltas = roster_deltas
        self.assume_minor = assume_minor
        #: The server's minor protocol version, from its upgrade response (0 before it, or when it announces none).
        self.minor = 0
        #: The roster held: full rosters and the deltas after them.
        self.rosters = RosterMirror()
        self._got_roster = False
        self.states: OrderedDict[int, Snapshot] = OrderedDict()
        self.tick: int | None = None
        self.acked_input = 0
        self.seq = 0
        #: Sends to leave out, from the updates' ``surplus``.
        self.skips = Skips()
        self.events: list[Any] = []
        self.stats = ClientStats()
        self.close_code: int | None = None
        self.close_reason = ""
        self._pings: dict[int, float] = {}
        self._ping_id = 0
        self._reader: asyncio.Task[None] | None = None
        self._update_event = asyncio.Event()
        self._sent_input = False
        self._ack_due = False
        #: A delta came since the last keyframe (the welcome's, or one we asked for): updates flow every tick.
        self.flowing = False
        #: Where a ``moved`` message sent us (until the old connection closes), and since when we follow it.
        self._moved_to: str | None = None
        self._moving_since: float | None = None
        self._leaving = False
        self._closing_old: asyncio.Future[None] | None = None
        #: A resync was sent and its keyframe has not come yet.
        self._resync_sent = False

    @classmethod
    def from_seat(cls, seat: Seat, name: str, **kwargs: Any) -> GameClient:
        """A client of the seat's match, at the seat's URL, that presents the seat in its hello."""
        client = cls(seat.url, name, **kwargs)
        client.take_seat(seat)
        return client

    def take_seat(self, seat: Seat) -> None:
        """Connect to the seat's match and present its token (before ``connect``)."""
        if self.token is not None:
            raise ValueError("a hello presents a resume token or a seat token, not both")
        self.url = seat.url
        self.seat = seat.token

    # -- connection ------------------------------------------------------------

    def hello(self) -> Hello:
        """The ``hello`` this client sends: the resume token if it has one, else the seat if it has one; what
        minor version 1 added only to a server that has it."""
        new = self.minor >= 1
        if self.seat is None:
            return Hello(PROTOCOL_VERSION, self.name, self.spectate, self.token, interest=self.interest and new,
                         roster_deltas=self.roster_deltas and new)
        return Hello(PROTOCOL_VERSION, self.name, self.spectate, seat=self.seat, interest=self.interest and new,
                     roster_deltas=self.roster_deltas and new)

    def _announced(self, ws: ClientConnection) -> None:
        """The server's minor version from the upgrade's ``Tickserver-Protocol`` header (``1.1``)."""
        value = ws.response.headers.get(PROTOCOL_HEADER, "") if ws.response is not None else ""
        major, _, minor = value.partition(".")
        if major == str(PROTOCOL_VERSION) and minor.isdigit():
            self.minor = int(minor)
        else:
            self.minor = self.assume_minor or 0

    async def connect(self, timeout: float = 10.0) -> Welcome:
        """Open the connection, say hello, wait for the welcome and the first update; then read in the background."""
        # ssl only when given: connect() refuses ssl=None for wss:// and any ssl for ws://.
        extra: dict[str, Any] = {"ssl": self.ssl_context} if self.ssl_context is not None else {}
        self.ws = await connect(self.url, max_size=None, compression=None, open_timeout=timeout, close_timeout=2, **extra)
        self._announced(self.ws)
        await self.ws.send(encode_client(self.hello()))
        async with asyncio.timeout(timeout):
            while self.welcome is None or self.stats.updates == 0:
                try:
                    data = await self.ws.recv()
                except ConnectionClosed as exc:
                    raise ServerClosed(exc.rcvd.code if exc.rcvd else None, self._error_reason(exc)) from None
                self._handle(data)
        self._reader = asyncio.create_task(self._read())
        return self.welcome

    def _error_reason(self, exc: ConnectionClosed) -> str:
        return self.close_reason or (exc.rcvd.reason if exc.rcvd else "")

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            while True:
                try:
                    async for data in self.ws:
                        self._handle(data)
                        if self._moved_to is not None:
                            break  # follow at once; the old connection closes on its own (1012)
                except ConnectionClosed:
                    pass
                target, self._moved_to = self._moved_to, None
                if target is None or self._leaving or not await self._follow(target):
                    break
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.close_reason or (self.ws.close_reason or "")
            self._update_event.set()

    async def _follow(self, url: str, timeout: float = 10.0) -> bool:
        """Reconnect to ``url`` (a ``moved`` message's) with our token; False (an error noted) if that fails."""
        self.stats.moves += 1
        self.url = url
        extra: dict[str, Any] = {"ssl": self.ssl_context} if self.ssl_context is not None else {}
        old = self.ws
        try:
            ws = await connect(url, max_size=None, compression=None, open_timeout=timeout, close_timeout=2, **extra)
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            self.stats.errors.append(f"could not follow the match to {url}: {exc}")
            return False
        self.ws = ws
        if old is not None:
            self._closing_old = asyncio.ensure_future(old.wait_closed())  # the server closes it (1012)
        self._announced(ws)
        try:
            await ws.send(encode_client(self.hello()))
        except ConnectionClosed:
            pass  # the reader sees the close
        return True

    async def close(self, code: int = 1000) -> None:
        """Close the connection. With 1000 (the default) the server removes the player at once (a leave);
        any other code (1001: going away) leaves it held for ``welcome.hold_s`` for a resume with the token."""
        self._leaving = True
        if self.ws is not None:
            await self.ws.close(code)
        if self._reader is not None:
            await self._reader

    async def leave(self) -> None:
        """Leave the match for good: send ``leave`` and wait for the server's close (1000); to a 1.0 server,
        which does not know ``leave``, close with 1000 (the same for it)."""
        self._leaving = True
        if self.ws is not None and self.minor < 1:
            await self.ws.close(1000)
        elif self.ws is not None:
            await self._send_quietly(encode_client(Leave()))
        if self._reader is not None:
            await self._reader

    @property
    def closed(self) -> bool:
        return self._reader is not None and self._reader.done()

    # -- sending ---------------------------------------------------------------

    @property
    def moving(self) -> bool:
        """Following a ``moved`` message: between it and the first update from the new server."""
        return self._moving_since is not None

    async def send_input(self, values: list[int] | tuple[int, ...], *, view: int | None = -1) -> int:
        """Send an input (with the newest tick held as ack); returns its sequence number.

        Send one per batch of updates processed (PROTOCOL.md, *The input queue*). ``view``: the tick
        the input was chosen seeing (default: ``self.view`` with ``lag_compensation``, else None: no
        lag compensation). While
        following a move the input is dropped (the new server applies the next one).
        """
        assert self.ws is not None
        self.seq += 1
        self._sent_input = True
        values = tuple(values)
        if self.predictor is not None:
            self.predictor.sent(self.seq, values)
        if view == -1:
            view = self.view if self.lag_compensation else None
        if self.minor < 1:
            view = None  # a 1.0 server refuses the key
        await self._send(encode_client(Input(self.seq, values, self.tick, view)))
        return self.seq

    async def answer(self, values: list[int] | tuple[int, ...], updates: int) -> int:
        """Answer a batch of ``updates`` new updates with ``values``: one input each, sent together, for a
        batch of up to ``CATCH_UP``; one input for a longer one (a stall); less the sends the server said to
        skip (``Skips``), an ``ack`` when none is left. Returns the last ``seq``.

        Until the first delta comes (the server has heard our ack and sends an update every tick; before
        that it sends keyframes only now and then), the answer is an ``ack``: inputs sent only every few
        ticks would leave the player standing still on the ticks between them.
        """
        if not self.flowing:
            assert self.ws is not None and self.tick is not None
            self._sent_input = True
            await self._send(encode_client(Ack(self.tick)))
            return self.seq
        count = updates if 1 <= updates <= CATCH_UP else 1
        self.stats.unanswered += max(0, updates - count)
        sent = 0
        for _ in range(count):
            if self.skips.skip(self.seq + 1):  # the server holds more of ours than it needs: numbered, not sent
                self.seq += 1
                self.stats.skipped += 1
                continue
            await self.send_input(values)
            sent += 1
        if not sent:
            assert self.ws is not None and self.tick is not None
            self._sent_input = True
            await self._send(encode_client(Ack(self.tick)))
        return self.seq

    async def ping(self) -> None:
        assert self.ws is not None
        self._ping_id += 1
        self._pings[self._ping_id] = time.perf_counter()
        await self._send(encode_client(Ping(self._ping_id, 0)))

    async def _send(self, data: bytes) -> None:
        assert self.ws is not None
        try:
            await self.ws.send(data)
        except ConnectionClosed:
            if not self.moving:
                raise

    async def send_raw(self, data: bytes | str) -> None:
        assert self.ws is not None
        await self.ws.send(data)

    async def wait_update(self, timeout: float = 5.0) -> None:
        """Wait for the next update (or the connection's end)."""
        self._update_event.clear()
        async with asyncio.timeout(timeout):
            await self._update_event.wait()

    async def wait_updates(self, after: int, timeout: float = 5.0) -> int:
        """Wait until more than ``after`` updates have come (or the connection's end); returns how many
        have. A player answers each batch: ``n = await c.wait_updates(n)``, then ``answer(values, new)``:
        updates that came while it was busy are answered at once, never skipped."""
        async with asyncio.timeout(timeout):
            while self.stats.updates <= after and not self.closed:
                self._update_event.clear()
                await self._update_event.wait()
        return self.stats.updates

    async def wait_tick(self, tick: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while (self.tick or 0) < tick and not self.closed:
                await self.wait_update(timeout)

    # -- receiving -------------------------------------------------------------

    def _handle(self, data: bytes | str) -> None:
        self.stats.bytes += len(data)
        if self.on_frame is not None and isinstance(data, bytes):
            self.on_frame(data)
        if not self.decode and isinstance(data, bytes) and self.welcome is not None:
            obj = msgpack.unpackb(data, raw=False)
            if obj.get("t") == "update":
                self._lean_update(obj)
                return
        try:
            msg = decode_server(data)
        except ProtocolError as exc:
            self.stats.errors.append(f"undecodable server message: {exc}")
            return
        if isinstance(msg, Update):
            self._update(msg)
        elif isinstance(msg, Welcome):
            self.welcome = msg
            self.token = msg.token
            self.seat = None
            self.minor = max(self.minor, msg.minor)  # the welcome says it too (a proxy may drop the header)
            self.schema = WireSchema.from_wire(msg.ruleset)
            self.skips.reset()
            if self.predictor is not None:
                self.predictor.reset()  # a resume: the new connection numbers its inputs again
            elif msg.entity is not None:
                self.predictor = Predictor.for_welcome(msg.ruleset)
        elif isinstance(msg, (Roster, RosterDelta)):
            self._got_roster = True
            if not self.rosters.apply(msg):
                self._ask_resync()  # a change missed: the resync brings the whole roster
        elif isinstance(msg, Pong):
            sent = self._pings.pop(msg.id, None)
            if sent is not None:
                self.stats.rtts.append((time.perf_counter() - sent) * 1000)
        elif isinstance(msg, Error):
            self.close_reason = msg.reason
            self.stats.errors.append(f"server error {msg.code}: {msg.reason}")
        elif isinstance(msg, Moved):
            self._moved_to = msg.url
            if self._moving_since is None:
                self._moving_since = self.stats.last_update or time.perf_counter()

    def _count_update(self, tick: int, keyframe: bool) -> None:
        now = time.perf_counter()
        s = self.stats
        s.updates += 1
        s.keyframes += keyframe
        s.first_update = s.first_update or now
        s.last_update = now
        if self._moving_since is not None:
            s.move_gaps.append(now - self._moving_since)
            self._moving_since = None
        self.tick = tick
        # Inputs carry the ack; a client that sends none after this batch of updates acks on its own,
        # once for the batch (or it would get a keyframe every tick).
        self._sent_input = False
        self._update_event.set()
        if not self._ack_due and self.ws is not None:
            self._ack_due = True
            asyncio.get_running_loop().call_soon(self._ack_unless_answered)
        if self.on_update is not None:
            self.on_update(self)

    def _ack_unless_answered(self) -> None:
        """After a batch of updates: an ``ack`` of the newest, unless an input went out since."""
        self._ack_due = False
        if not self._sent_input and self.tick is not None and self.ws is not None:
            self._sent_input = True
            asyncio.ensure_future(self._send_quietly(encode_client(Ack(self.tick))))

    def _lean_update(self, obj: dict[str, Any]) -> None:
        self.acked_input = int(obj.get("ack", 0))
        self.skips.observe(self.acked_input, int(obj.get("surplus", 0)))
        self.flowing = obj.get("base") is not None
        if not self.flowing:
            self._resync_sent = False
        self._count_update(int(obj["tick"]), obj.get("base") is None)

    def _update(self, msg: Update) -> None:
        assert self.schema is not None
        self.acked_input = msg.ack
        self.skips.observe(msg.ack, msg.surplus)
        self.events.extend(msg.events)
        del self.events[:-256]
        if msg.base is None:
            base = None
            self._resync_sent = False
            self.flowing = False
        else:
            base = self.states.get(msg.base)
            if base is None:
                # Deltas already in flight when we asked for a keyframe find no base:
                # drop them without asking again (each resync would cost another keyframe).
                self.stats.missing_base += 1
                self._resync()
                return
        try:
            if self.filtered:
                snap = apply_view(self.schema, base, msg.tick, msg.body)
            else:
                snap = apply_body(self.schema, base, msg.tick, msg.body)
        except ProtocolError as exc:
            self.stats.errors.append(f"bad update for tick {msg.tick}: {exc}")
            self._resync()
            return
        if snap.checksum != msg.checksum:
            self.stats.desyncs += 1
            self._resync()
            return
        self.states[msg.tick] = snap
        while len(self.states) > KEEP_STATES:
            self.states.popitem(last=False)
        self.flowing = msg.base is not None
        self._predict(snap, msg.ack)
        self._count_update(msg.tick, msg.base is None)

    def _predict(self, snap: Snapshot, ack: int) -> None:
        p, welcome = self.predictor, self.welcome
        if p is None or welcome is None or welcome.entity is None:
            return
        i = int(np.searchsorted(snap.ids, welcome.entity))
        if i >= len(snap.ids) or int(snap.ids[i]) != welcome.entity:
            return
        cols = snap.cols
        row = (int(cols[p.x][i]), int(cols[p.y][i]), None if p.hp is None else int(cols[p.hp][i]))
        if p.observe(row, ack):
            self.stats.corrections += 1
        self.stats.predicted = p.compared

    @property
    def roster(self) -> Roster | None:
        """The roster held (every player: spectators are not in it), or None before the first."""
        return self.rosters.roster if self._got_roster else None

    def _resync(self) -> None:
        """Forget every state and ask for one keyframe (once, until it arrives)."""
        self.states.clear()
        self.tick = None
        self._ask_resync()

    def _ask_resync(self) -> None:
        """Send one ``resync`` (until its keyframe arrives): it brings keyframes and the whole roster."""
        if self._resync_sent:
            return
        self._resync_sent = True
        self.stats.resyncs += 1
        if self.ws is not None:
            asyncio.ensure_future(self._send_quietly(encode_client(Resync())))

    async def _send_quietly(self, data: bytes) -> None:
        try:
            assert self.ws is not None
            await self.ws.send(data)
        except ConnectionClosed:
            pass

    # -- the mirror ------------------------------------------------------------

    @property
    def filtered(self) -> bool:
        """Whether this connection receives filtered views (its welcome said so)."""
        return self.welcome is not None and self.welcome.interest is not None

    @property
    def state(self) -> Snapshot | None:
        """The newest verified snapshot."""
        return self.states[self.tick] if self.tick is not None and self.tick in self.states else None

    def columns(self) -> tuple[npt.NDArray[np.uint32], dict[str, Array]]:
        """Ids and ``{column name: array}`` of the newest verified snapshot (wire units)."""
        snap = self.state
        assert snap is not None and self.schema is not None
        return snap.ids, dict(zip(self.schema.names(), snap.cols))

    @property
    def view(self) -> int | None:
        """The tick the client sees others at: ``interp_ticks`` behind the newest update (None before one)."""
        return None if self.tick is None else max(0, self.tick - self.interp_ticks)

    def seen(self) -> tuple[int, npt.NDArray[np.uint32], dict[str, Array]] | None:
        """What the player sees: the held state at ``view`` (or the newest before it), with our own entity
        where we predict it. ``(tick, ids, columns)`` in wire units; None before the first update."""
        view = self.view
        if view is None or self.schema is None:
            return None
        tick = max((t for t in self.states if t <= view), default=None)
        if tick is None:
            tick = self.tick
        if tick is None or tick not in self.states:
            return None
        snap = self.states[tick]
        cols = dict(zip(self.schema.names(), snap.cols))
        p, welcome = self.predictor, self.welcome
        if p is not None and p.px is not None and p.py is not None and welcome is not None and welcome.entity is not None:
            i = int(np.searchsorted(snap.ids, welcome.entity))
            if i < len(snap.ids) and int(snap.ids[i]) == welcome.entity:
                names = self.schema.names()
                for name, value in ((names[p.x], p.px), (names[p.y], p.py)):
                    col = cols[name].copy()
                    col[i] = value
                    cols[name] = col
        return tick, snap.ids, cols

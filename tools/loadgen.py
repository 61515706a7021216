"""``python -m tools.loadgen``: a lean WebSocket load generator for the benchmark.

Most clients are ``LeanClient``: a raw ``asyncio.Protocol`` that does the
HTTP upgrade itself, parses server frames with ``FrameReader`` (a sans-I/O
parser that hands over only the first bytes of a large frame and skips the
rest without copying it), reads each update's ``tick`` from the first bytes
of the msgpack map, and answers with one pre-masked ``input`` frame built by
byte concatenation: no websockets library, no msgpack decode on the hot path.
A few clients (``--verify``) are ``tools.client.GameClient`` and decode and
verify every update (desyncs) and measure round trips with ``ping``.

Inputs are the random walk of WORKLOAD.md, the same draws as
``tools.brains.drift_brain`` (``walk_step``), in pure integer Python.

``LoadGen`` runs the clients in ``procs`` worker processes and talks to them
over pipes: ``start()`` connects everyone, ``mark()`` snapshots every
client's counters and the workers' own CPU time, ``stop()`` closes and
collects errors. The benchmark (``tools.bench``) measures between two marks.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from typing import Any, TypedDict
from urllib.parse import urlsplit

import msgpack
from attrs import define, field, frozen
from websockets.exceptions import ConnectionClosed

from server.cli import positive, seed_int
from tools.cli import Parser
from tools.client import GameClient

# -- the random walk ---------------------------------------------------------------

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
#: Same streams and odds as ``tools.brains`` (checked by a test against ``drift_brain``).
_STREAM_DRIFT, _STREAM_DRIFT_DIR = 203, 204
DRIFT_TURN_ODDS = 40
OCTANTS = ((1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1))


def _mix(x: int) -> int:
    x &= _MASK64
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


_bases: dict[tuple[int, int, int], int] = {}


def _base(seed: int, tick: int, stream: int) -> int:
    key = (seed, tick, stream)
    b = _bases.get(key)
    if b is None:
        if len(_bases) > 4096:  # one entry per (tick, stream): bounded by clearing
            _bases.clear()
        b = _bases[key] = _mix(_mix(seed) ^ _mix(tick * _GOLDEN + stream))
    return b


def _draw(seed: int, tick: int, stream: int, key: int, n: int) -> int:
    """``game.rng.integers(seed, tick, stream, [key], 0, n - 1)[0]`` in plain ints."""
    top = _mix(key * _GOLDEN + _base(seed, tick, stream)) >> 32
    return (top * n) >> 32


def walk_step(dx: int, dy: int, tick: int, seed: int, bot: int) -> tuple[int, int]:
    """The next ``(dx, dy)`` of bot ``bot``: ``tools.brains.drift_brain`` without numpy."""
    if (dx or dy) and -1 <= dx <= 1 and -1 <= dy <= 1 and _draw(seed, tick, _STREAM_DRIFT, bot, DRIFT_TURN_ODDS) >= 1:
        return dx, dy
    return OCTANTS[_draw(seed, tick, _STREAM_DRIFT_DIR, bot, 8)]


# -- frames ------------------------------------------------------------------------

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
#: Bytes of a large data frame handed over when only its beginning is wanted (enough for
#: an update's tick and a whole ``error``, whose reason is at most 120 bytes).
PEEK = 256
#: Largest frame accepted (the server's updates are far smaller).
MAX_FRAME = 64 * 1024 * 1024
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class FrameError(Exception):
    """The server sent something that is not a valid WebSocket frame for us."""


OnFrame = Callable[[int, bool, bytes, int], None]


class FrameReader:
    """Server-to-client WebSocket frames from a byte stream (sans I/O).

    ``feed(data)`` calls ``on_frame(opcode, fin, payload, length)`` for each
    frame. With ``full`` false, a data frame longer than ``peek`` is handed
    over as its first ``peek`` bytes (``length`` is the real size) as soon as
    they are in, and the rest is skipped as it arrives, never buffered.
    Control frames, frames of at most ``peek`` bytes, and every frame while
    ``full`` is true come whole. ``on_frame`` may change ``full``; it applies
    from the next frame.
    """

    __slots__ = ("_buf", "_skip", "full", "on_frame", "peek")

    def __init__(self, on_frame: OnFrame, *, full: bool = True, peek: int = PEEK) -> None:
        self.on_frame = on_frame
        self.full = full
        self.peek = peek
        self._buf = b""
        self._skip = 0

    def feed(self, data: bytes) -> None:
        skip = self._skip
        if skip:
            if len(data) <= skip:
                self._skip = skip - len(data)
                return
            data = data[skip:]
            self._skip = 0
        if self._buf:
            data = self._buf + data
            self._buf = b""
        pos = 0
        end = len(data)
        while end - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            if b0 & 0x70:
                raise FrameError(f"reserved bits set in frame header 0x{b0:02x}")
            if b1 & 0x80:
                raise FrameError("the server sent a masked frame")
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(data[start:start + 2], "big")
                start += 2
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(data[start:start + 8], "big")
                start += 8
                if length > MAX_FRAME:
                    raise FrameError(f"frame of {length} bytes is over {MAX_FRAME}")
            opcode = b0 & 0x0F
            avail = end - start
            if opcode < 8 and not self.full and length > self.peek:
                if avail < self.peek:
                    break
                pos = start + length
                if avail < length:
                    self._skip = length - avail
                self.on_frame(opcode, bool(b0 & 0x80), data[start:start + self.peek], length)
                if avail < length:
                    return
                continue
            if avail >= length:
                pos = start + length
                self.on_frame(opcode, bool(b0 & 0x80), data[start:pos], length)
                continue
            break
        if pos < end:
            self._buf = data[pos:]


def mask_frame(opcode: int, payload: bytes, key: bytes) -> bytes:
    """One final client frame (``opcode``) of ``payload``, masked with the 4-byte ``key``."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    if not n:
        return head + key
    m = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return head + key + (int.from_bytes(payload, "big") ^ m).to_bytes(n, "big")


def peek_update(payload: bytes) -> tuple[int, bool] | None:
    """``(tick, keyframe)`` of an ``update`` whose map starts ``t: update, tick: N, base: B``
    (how the server writes it), from its first bytes; None for anything else."""
    if payload[1:15] != b"\xa1t\xa6update\xa4tick" or not 0x80 <= payload[0] <= 0x8F:
        return None
    b = payload[15]
    if b < 0x80:
        tick, end = b, 16
    elif b == 0xCC:
        tick, end = payload[16], 17
    elif b == 0xCD:
        tick, end = int.from_bytes(payload[16:18], "big"), 18
    elif b == 0xCE:
        tick, end = int.from_bytes(payload[16:20], "big"), 20
    else:
        return None
    return tick, payload[end:end + 6] == b"\xa4base\xc0"


def peek_type(payload: bytes) -> str | None:
    """The ``t`` of a map that starts with it (as the server writes every message); else None."""
    if len(payload) >= 4 and 0x80 <= payload[0] <= 0x8F and payload[1:3] == b"\xa1t" and 0xA0 <= payload[3] <= 0xBF:
        n = payload[3] & 0x1F
        if len(payload) >= 4 + n:
            return payload[4:4 + n].decode("ascii", "replace")
    return None


#: ``{"t": "input", "seq": u32, "in": [dx, dy], "ack": u32}`` around the variable parts.
_IN_HEAD = b"\x84\xa1t\xa5input\xa3seq\xce"
_IN_MID = b"\xa2in\x92"
_IN_ACK = b"\xa3ack\xce"
_FIXINT = {-1: b"\xff", 0: b"\x00", 1: b"\x01"}


def input_payload(seq: int, dx: int, dy: int, ack: int) -> bytes:
    """The msgpack ``input`` message (uint32 seq and ack, so its length never changes: 33 bytes)."""
    return _IN_HEAD + seq.to_bytes(4, "big") + _IN_MID + _FIXINT[dx] + _FIXINT[dy] + _IN_ACK + ack.to_bytes(4, "big")


# -- the lean client ---------------------------------------------------------------


@define
class LeanStats:
    updates: int = 0
    keyframes: int = 0
    bytes: int = 0
    first_update: float | None = None
    last_update: float | None = None
    errors: list[str] = field(factory=list)


class LeanClient(asyncio.Protocol):
    """One cheap player: handshake, hello, then per update read the tick and send one input."""

    def __init__(self, host: str, port: int, path: str, name: str, index: int, seed: int, inputs: bool = True) -> None:
        self.host, self.port, self.path = host, port, path
        self.inputs = inputs
        #: Whether its hello asks for filtered views (False: a plain hello, which servers before them take too).
        self.interest = True
        #: Whether its hello asks for the roster's changes rather than whole rosters (False: as for ``interest``).
        self.roster_deltas = True
        self.name = name
        self.index = index
        self.seed = seed
        self.stats = LeanStats()
        self.transport: asyncio.Transport | None = None
        self.welcomed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.close_reason = ""
        #: The URL of a ``moved`` message (its match went to another node), if one came.
        self.moved_to: str | None = None
        self.open = False
        self.seq = 0
        self.dx = self.dy = 0
        self.n_inputs = 2
        key = os.urandom(4)
        self._key = key
        self._mask33 = int.from_bytes((key * 9)[:33], "big")
        self._head33 = bytes((0x82, 0x80 | 33)) + key
        self._ws_key = base64.b64encode(os.urandom(16))
        self._http = b""
        self._handshaking = True
        self._message: bytes | None = None  # a fragmented data message being assembled
        self._message_len = 0
        self.reader = FrameReader(self._on_frame, full=True)

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(
            b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (self.path.encode(), self.host.encode(), self.port, self._ws_key)
        )

    def data_received(self, data: bytes) -> None:
        try:
            if self._handshaking:
                data = self._handshake(data)
                if not data:
                    return
            self.reader.feed(data)
        except (FrameError, ValueError, KeyError, TypeError, IndexError) as exc:
            self._fail(f"{type(exc).__name__}: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError(
                f"connection lost before welcome (close code {self.close_code} {self.close_reason})".replace(" )", ")")))
        if not self.closed.done():
            self.closed.set_result(None)

    # the protocol

    def _handshake(self, data: bytes) -> bytes:
        self._http += data
        end = self._http.find(b"\r\n\r\n")
        if end < 0:
            if len(self._http) > 16384:
                raise ValueError("HTTP response header too long")
            return b""
        head, rest = self._http[:end].decode("latin-1"), self._http[end + 4:]
        self._http = b""
        lines = head.split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise ValueError(f"upgrade refused: {lines[0]!r}")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        accept = base64.b64encode(hashlib.sha1(self._ws_key + _WS_GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise ValueError("bad Sec-WebSocket-Accept")
        self._handshaking = False
        self.open = True
        # "interest": in a match that filters views (the interest variant), only each player's view.
        # "roster_deltas": a join costs every client one roster entry, not the whole roster (PROTOCOL.md).
        hello = {"t": "hello", "v": 1, "name": self.name, **({"interest": True} if self.interest else {}),
                 **({"roster_deltas": True} if self.roster_deltas else {})}
        self.send(msgpack.packb(hello))
        return rest

    def send(self, payload: bytes, opcode: int = OP_BINARY) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(mask_frame(opcode, payload, self._key))

    def _on_frame(self, opcode: int, fin: bool, payload: bytes, length: int) -> None:
        if opcode == OP_BINARY:
            if fin:
                self._on_message(payload, length)
            else:
                self._message, self._message_len = payload, length
        elif opcode == OP_CONT:
            if self._message is None:
                raise FrameError("continuation frame without a message")
            self._message_len += length
            if self.reader.full:
                self._message += payload
            if fin:
                message, self._message = self._message, None
                self._on_message(message, self._message_len)
        elif opcode == OP_PING:
            self.send(payload, OP_PONG)
        elif opcode == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.close_reason = bytes(payload[2:]).decode(errors="replace")
            if self.open:
                self.open = False
                self.send(payload[:2], OP_CLOSE)
            if self.close_code not in (1000, 1001):
                self.stats.errors.append(f"{self.name}: closed by server {self.close_code} {self.close_reason}")
            if self.transport is not None:
                self.transport.close()
        elif opcode == OP_TEXT:
            raise FrameError("the server sent a text frame")
        elif opcode != OP_PONG:
            raise FrameError(f"unknown opcode {opcode}")

    def _on_message(self, payload: bytes, length: int) -> None:
        self.stats.bytes += length
        peeked = peek_update(payload)
        if peeked is not None:
            self._on_update(*peeked)
            return
        kind = peek_type(payload)
        if kind in ("roster", "roster_delta", "pong"):
            return
        if length > len(payload):
            raise FrameError(f"cannot read a truncated {kind or 'unknown'} message")
        obj = msgpack.unpackb(payload, raw=False)
        kind = obj.get("t")
        if kind == "update":  # keys in another order than ours: still fine
            self._on_update(int(obj["tick"]), obj.get("base") is None)
        elif kind == "welcome":
            self.n_inputs = len(obj["ruleset"]["inputs"])
            self.reader.full = False
            if not self.welcomed.done():
                self.welcomed.set_result(None)
        elif kind == "error":
            self.stats.errors.append(f"{self.name}: server error {obj.get('code')}: {obj.get('reason')}")
        elif kind == "moved":
            self.moved_to = str(obj.get("url"))

    def _on_update(self, tick: int, keyframe: bool) -> None:
        s = self.stats
        now = time.monotonic()
        s.updates += 1
        s.keyframes += keyframe
        if s.first_update is None:
            s.first_update = now
        s.last_update = now
        if not self.open or not self.inputs:
            return
        self.dx, self.dy = dx, dy = walk_step(self.dx, self.dy, tick, self.seed, self.index)
        self.seq += 1
        if self.n_inputs == 2:
            payload = _IN_HEAD + self.seq.to_bytes(4, "big") + _IN_MID + _FIXINT[dx] + _FIXINT[dy] + _IN_ACK + tick.to_bytes(4, "big")
            assert self.transport is not None
            self.transport.write(self._head33 + (int.from_bytes(payload, "big") ^ self._mask33).to_bytes(33, "big"))
        else:  # another ruleset: the walk on the first two fields, zeros after
            values = ([dx, dy] + [0] * self.n_inputs)[: self.n_inputs]
            self.send(msgpack.packb({"t": "input", "seq": self.seq, "in": values, "ack": tick}))

    def _fail(self, reason: str) -> None:
        self.stats.errors.append(f"{self.name}: {reason}")
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError(reason))
        self.open = False
        if self.transport is not None:
            self.transport.abort()

    async def close(self, timeout: float = 2.0) -> None:
        """Send a close frame and wait (bounded) for the server to close."""
        if self.open:
            self.open = False
            self.send((1000).to_bytes(2, "big"), OP_CLOSE)
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()


# -- a worker: some clients in one process -----------------------------------------


@frozen
class WorkerSpec:
    """Clients ``first .. first + count - 1`` of a run; the first ``verify`` of them decode and verify."""

    url: str
    first: int
    count: int
    verify: int
    seed: int = 1
    connect_rate: float = 500.0
    connect_timeout: float = 30.0
    #: Upper bound on the worker's life, whatever the parent does.
    lifetime: float = 3600.0
    ping_interval: float = 1.0
    name: str = "lg"
    #: False: lean clients send nothing after hello (to measure the send path alone; the server
    #: then encodes keyframes, as nobody acknowledges).
    inputs: bool = True
    #: False: every client's hello is without ``roster_deltas`` (whole rosters at every join, as before them).
    roster_deltas: bool = True


def _cpu_self() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


class _Verifier:
    """A ``GameClient`` that decodes and verifies everything, plays the walk and pings."""

    def __init__(self, url: str, name: str, index: int, seed: int) -> None:
        self.client = GameClient(url, name, decode=True, on_update=self._on_update)
        self.index = index
        self.seed = seed
        self.dx = self.dy = 0
        self.n_inputs = 2
        self.errors: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._pinger: asyncio.Task[None] | None = None

    async def connect(self, timeout: float, ping_interval: float) -> None:
        welcome = await self.client.connect(timeout)
        self.n_inputs = len(welcome.ruleset["inputs"])
        self._pinger = asyncio.create_task(self._ping(ping_interval))

    def _on_update(self, c: GameClient) -> None:
        self.dx, self.dy = walk_step(self.dx, self.dy, c.tick or 0, self.seed, self.index)
        values = ([self.dx, self.dy] + [0] * self.n_inputs)[: self.n_inputs]
        task = asyncio.ensure_future(self._send(values))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, values: list[int]) -> None:
        try:
            await self.client.send_input(values)
        except ConnectionClosed:
            pass

    async def _ping(self, interval: float) -> None:
        try:
            while not self.client.closed:
                await self.client.ping()
                await asyncio.sleep(interval)
        except ConnectionClosed:
            pass

    @property
    def open(self) -> bool:
        return self.client.ws is not None and not self.client.closed

    async def close(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
        c = self.client
        if c.closed and c.close_code not in (None, 1000, 1001):
            self.errors.append(f"{c.name}: closed by server {c.close_code} {c.close_reason}")
        try:
            await asyncio.wait_for(c.close(), 3.0)
        except (TimeoutError, OSError):
            pass


async def _connect_lean(spec: WorkerSpec, index: int) -> LeanClient:
    u = urlsplit(spec.url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    loop = asyncio.get_running_loop()

    def lean() -> LeanClient:
        c = LeanClient(host, port, u.path or "/", f"{spec.name}{index + 1}", index, spec.seed, spec.inputs)
        c.roster_deltas = spec.roster_deltas
        return c

    _, client = await loop.create_connection(lean, host, port)
    await asyncio.wait_for(asyncio.shield(client.welcomed), spec.connect_timeout)
    return client


#: One client's counters: (index, updates, bytes, keyframes, open, first_update, last_update).
ClientCounters = tuple[int, int, int, int, bool, float | None, float | None]


class WorkerReady(TypedDict):
    """A worker's first message: how many of its clients joined, and why the others did not."""

    connected: int
    errors: list[str]


class WorkerMark(TypedDict):
    """A worker's answer to ``mark``: its clients' counters and its own CPU time (seconds)."""

    time: float
    cpu_user: float
    cpu_system: float
    clients: list[ClientCounters]


class WorkerFinal(WorkerMark):
    """A worker's answer to ``stop``: a last mark, and what went wrong."""

    errors: list[str]
    desyncs: int
    missing_base: int
    rtts_ms: list[float]
    connected: int
    verifying: int


class Worker:
    """The clients of one process and the answers to the parent's commands."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.lean: list[LeanClient] = []
        self.verifiers: list[_Verifier] = []
        self.connect_errors: list[str] = []

    async def connect(self) -> None:
        spec = self.spec
        pending: list[asyncio.Task[None]] = []
        for k in range(spec.count):
            index = spec.first + k
            if k < spec.verify:
                v = _Verifier(spec.url, f"{spec.name}{index + 1}", index, spec.seed)
                v.client.roster_deltas = spec.roster_deltas
                pending.append(asyncio.create_task(self._add_verifier(v)))
            else:
                pending.append(asyncio.create_task(self._add_lean(index)))
            if spec.connect_rate > 0 and k + 1 < spec.count:
                await asyncio.sleep(1.0 / spec.connect_rate)
        if pending:
            await asyncio.wait(pending, timeout=spec.connect_timeout + 5)
        for t in pending:
            t.cancel()

    async def _add_lean(self, index: int) -> None:
        try:
            self.lean.append(await _connect_lean(self.spec, index))
        except (OSError, ConnectionError, TimeoutError) as exc:
            self.connect_errors.append(f"{self.spec.name}{index + 1}: could not join: {type(exc).__name__}: {exc}")

    async def _add_verifier(self, v: _Verifier) -> None:
        try:
            await v.connect(self.spec.connect_timeout, self.spec.ping_interval)
            self.verifiers.append(v)
        except Exception as exc:  # noqa: BLE001 - any failure to join is reported, never fatal
            self.connect_errors.append(f"{v.client.name}: could not join: {type(exc).__name__}: {exc}")

    def snapshot(self) -> WorkerMark:
        """Every client's counters now, and this process's CPU time."""
        user, system = _cpu_self()
        clients: list[ClientCounters] = []
        for c in self.lean:
            s = c.stats
            clients.append((c.index, s.updates, s.bytes, s.keyframes, c.open, s.first_update, s.last_update))
        for v in self.verifiers:
            s2 = v.client.stats
            clients.append((v.index, s2.updates, s2.bytes, s2.keyframes, v.open, s2.first_update, s2.last_update))
        return {"time": time.monotonic(), "cpu_user": user, "cpu_system": system, "clients": clients}

    async def finish(self) -> WorkerFinal:
        """Close everyone; the final counters, errors, desyncs and round trips."""
        snap = self.snapshot()
        await asyncio.gather(*(c.close() for c in self.lean), *(v.close() for v in self.verifiers))
        errors = list(self.connect_errors)
        for c in self.lean:
            errors.extend(c.stats.errors)
        rtts: list[float] = []
        desyncs = missing_base = 0
        for v in self.verifiers:
            s = v.client.stats
            errors.extend(v.errors)
            errors.extend(s.errors)
            desyncs += s.desyncs
            missing_base += s.missing_base
            rtts.extend(s.rtts)
        return {**snap, "errors": errors, "desyncs": desyncs, "missing_base": missing_base, "rtts_ms": rtts,
                "connected": len(self.lean) + len(self.verifiers), "verifying": len(self.verifiers)}


async def _serve_parent(spec: WorkerSpec, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()

    def readable() -> None:
        try:
            commands.put_nowait(conn.recv())
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            commands.put_nowait("eof")

    loop.add_reader(conn.fileno(), readable)
    worker = Worker(spec)
    await worker.connect()
    ready: WorkerReady = {"connected": len(worker.lean) + len(worker.verifiers), "errors": worker.connect_errors[:20]}
    conn.send(("ready", ready))
    deadline = loop.time() + spec.lifetime
    while True:
        try:
            cmd = await asyncio.wait_for(commands.get(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            break
        if cmd == "mark":
            conn.send(("mark", worker.snapshot()))
        else:
            break
    final = await worker.finish()
    try:
        conn.send(("done", final))
    except (BrokenPipeError, OSError):
        pass


def _worker_main(spec: WorkerSpec, conn: Connection) -> None:
    try:
        asyncio.run(_serve_parent(spec, conn))
    except KeyboardInterrupt:
        pass


# -- the parent --------------------------------------------------------------------


class LoadGenError(Exception):
    """The load generator could not do what was asked (workers dead, no answer in time)."""


@frozen
class Mark:
    """All workers' counters at one moment (``time`` is the mean of the workers' clocks)."""

    time: float
    cpu_user: float
    cpu_system: float
    #: index -> (updates, bytes, keyframes, open, first_update, last_update)
    clients: dict[int, tuple[int, int, int, bool, float | None, float | None]]


class Final(TypedDict):
    """What ``LoadGen.stop`` returns: the last mark of every client, and what went wrong."""

    mark: Mark
    errors: list[str]
    desyncs: int
    missing_base: int
    rtts_ms: list[float]
    verifying: int


def _merge(snaps: Sequence[WorkerMark]) -> Mark:
    clients = {c[0]: c[1:] for s in snaps for c in s["clients"]}
    return Mark(sum(s["time"] for s in snaps) / len(snaps), sum(s["cpu_user"] for s in snaps),
                sum(s["cpu_system"] for s in snaps), clients)


def window_stats(a: Mark, b: Mark) -> dict[str, float]:
    """Per-client rates between two marks (clients present and open at both)."""
    dt = b.time - a.time
    rates, bps, per_update = [], [], []
    for i, cb in b.clients.items():
        ca = a.clients.get(i)
        if ca is None or not ca[3] or not cb[3] or dt <= 0:
            continue
        du, db = cb[0] - ca[0], cb[1] - ca[1]
        rates.append(du / dt)
        bps.append(db / dt)
        if du:
            per_update.append(db / du)
    cpu = (b.cpu_user - a.cpu_user) + (b.cpu_system - a.cpu_system)
    return {
        "window_s": dt,
        "clients_measured": len(rates),
        "updates_per_s": sum(rates) / len(rates) if rates else 0.0,
        "updates_per_s_min": min(rates) if rates else 0.0,
        "bytes_per_s": sum(bps) / len(bps) if bps else 0.0,
        "bytes_per_update": sum(per_update) / len(per_update) if per_update else 0.0,
        "loadgen_cpu_user_s": b.cpu_user - a.cpu_user,
        "loadgen_cpu_system_s": b.cpu_system - a.cpu_system,
        "loadgen_cpu_per_s": cpu / dt if dt > 0 else 0.0,
    }


class LoadGen:
    """``clients`` clients of ``url`` in ``procs`` worker processes; the first ``verify`` decode and verify.

    ``cpus``: pin the workers to these CPUs (``os.sched_setaffinity``).

    Use as a context manager: leaving it stops (and if need be kills) every worker.
    """

    def __init__(self, url: str, clients: int, *, procs: int = 1, verify: int = 2, seed: int = 1,
                 connect_rate: float = 500.0, connect_timeout: float = 30.0, lifetime: float = 3600.0,
                 name: str = "lg", cpus: set[int] | None = None, inputs: bool = True, roster_deltas: bool = True) -> None:
        if clients < 1 or procs < 1:
            raise ValueError("clients and procs must be positive")
        procs = min(procs, clients)
        self.url = url
        self.clients = clients
        self.verify = min(max(verify, 0), clients)
        self.specs: list[WorkerSpec] = []
        first = 0
        for k in range(procs):
            count = clients // procs + (k < clients % procs)
            v = max(0, min(count, self.verify - first))
            self.specs.append(WorkerSpec(url, first, count, v, seed, connect_rate / procs, connect_timeout, lifetime,
                                         name=name, inputs=inputs, roster_deltas=roster_deltas))
            first += count
        self.cpus = cpus
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[SpawnProcess] = []
        self._conns: list[Connection] = []
        self.connected = 0
        self.connect_errors: list[str] = []

    def __enter__(self) -> LoadGen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def start(self, timeout: float = 60.0) -> int:
        """Start the workers and connect every client; returns how many joined."""
        for spec in self.specs:
            parent, child = self._ctx.Pipe()
            p = self._ctx.Process(target=_worker_main, args=(spec, child), daemon=True, name=f"loadgen-{spec.first}")
            p.start()
            child.close()
            if self.cpus and p.pid is not None:
                os.sched_setaffinity(p.pid, self.cpus)
            self._procs.append(p)
            self._conns.append(parent)
        readies: list[WorkerReady] = self._ask_all(None, timeout, "ready")
        for msg in readies:
            self.connected += msg["connected"]
            self.connect_errors.extend(msg["errors"])
        return self.connected

    def _ask_all(self, cmd: str | None, timeout: float, expect: str) -> list[Any]:
        """Each worker's answer ``expect`` (unpickled, so untyped: the caller names its type)."""
        if cmd is not None:
            for c in self._conns:
                try:
                    c.send(cmd)
                except (BrokenPipeError, OSError) as exc:
                    raise LoadGenError(f"a load generator worker is gone: {exc}") from None
        deadline = time.monotonic() + timeout
        out = []
        for c, p in zip(self._conns, self._procs):
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LoadGenError(f"no {expect!r} from load generator worker {p.name} within {timeout:g} s")
                if c.poll(min(left, 0.5)):
                    try:
                        kind, body = c.recv()
                    except (EOFError, OSError):
                        raise LoadGenError(f"load generator worker {p.name} died (exit code {p.exitcode})") from None
                    if kind == expect:
                        out.append(body)
                        break
                elif not p.is_alive():
                    raise LoadGenError(f"load generator worker {p.name} died (exit code {p.exitcode})")
        return out

    def mark(self, timeout: float = 10.0) -> Mark:
        """Every client's counters and the workers' CPU time, now."""
        marks: list[WorkerMark] = self._ask_all("mark", timeout, "mark")
        return _merge(marks)

    def stop(self, timeout: float = 30.0) -> Final:
        """Close every client; the final mark, errors, desyncs, round trips."""
        finals: list[WorkerFinal] = self._ask_all("stop", timeout, "done")
        mark = _merge(finals)
        rtts = [r for f in finals for r in f["rtts_ms"]]
        self.kill()
        return {
            "mark": mark,
            "errors": [e for f in finals for e in f["errors"]],
            "desyncs": sum(f["desyncs"] for f in finals),
            "missing_base": sum(f["missing_base"] for f in finals),
            "rtts_ms": rtts,
            "verifying": sum(f["verifying"] for f in finals),
        }

    def kill(self) -> None:
        """Stop every worker (a polite EOF, then terminate, then kill), bounded in time."""
        for c in self._conns:
            c.close()
        self._conns = []
        deadline = time.monotonic() + 5.0
        for p in self._procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self._procs:
            if p.is_alive():
                p.terminate()
                p.join(2.0)
            if p.is_alive():
                p.kill()
                p.join(2.0)
        self._procs = []


# -- the CLI -----------------------------------------------------------------------


def summarize(start: Mark, end: Mark, final: Final, clients: int, connected: int) -> dict[str, Any]:
    w = window_stats(start, end)
    rtts = sorted(final["rtts_ms"])
    still = sum(1 for c in end.clients.values() if c[3])
    return {
        "clients": clients, "connected": connected, "still_connected": still,
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in w.items()},
        "rtt_ms_p50": round(rtts[len(rtts) // 2], 3) if rtts else None,
        "rtt_ms_p99": round(rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))], 3) if rtts else None,
        "desyncs": final["desyncs"], "errors": len(final["errors"]), "error_messages": final["errors"][:5],
    }


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tools.loadgen",
                description="Connect lean clients (and a few verifying ones) to a server, measure, print a summary.")
    p.add_argument("--url", default="ws://127.0.0.1:8765/ws", help="server WebSocket URL (default ws://127.0.0.1:8765/ws)")
    p.add_argument("--clients", type=positive(int), default=100, help="number of clients (default 100)")
    p.add_argument("--verify", type=int, default=2, metavar="N", help="clients that decode and verify every update (default 2)")
    p.add_argument("--procs", type=positive(int), default=1, metavar="K", help="worker processes (default 1)")
    p.add_argument("--duration", type=positive(float), default=10.0, metavar="SECONDS", help="measured time (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, metavar="SECONDS", help="time before measuring (default 2)")
    p.add_argument("--seed", type=seed_int, default=1, help="seed of the random walks, 0 to 2**63-1 (default 1)")
    p.add_argument("--connect-rate", type=positive(float), default=500.0, metavar="PER_S", help="connections per second (default 500)")
    p.add_argument("--no-inputs", dest="inputs", action="store_false",
                   help="lean clients send nothing after hello (measures a server's send path alone)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    u = urlsplit(args.url)
    if u.scheme != "ws" or not u.hostname:
        parser.error(f"--url must be ws://HOST:PORT/PATH (no TLS), got {args.url!r}")
    if args.verify < 0 or args.warmup < 0:
        parser.error("--verify and --warmup must not be negative")
    try:
        with LoadGen(args.url, args.clients, procs=args.procs, verify=args.verify, seed=args.seed,
                     connect_rate=args.connect_rate, lifetime=args.warmup + args.duration + 600, inputs=args.inputs) as lg:
            connected = lg.start()
            if connected == 0:
                print(f"{parser.prog}: error: no client could join {args.url}: {lg.connect_errors[:1]}", file=sys.stderr)
                return 1
            time.sleep(args.warmup)
            start = lg.mark()
            time.sleep(args.duration)
            end = lg.mark()
            final = lg.stop()
    except LoadGenError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    summary = summarize(start, end, final, args.clients, connected)
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:>22}: {v}")
    return 0 if summary["desyncs"] == 0 and summary["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

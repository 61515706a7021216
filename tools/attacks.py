"""``python -m tools.attacks``: the hostile clients of issue 12 against a live server, measured.

Each attack is an async function (``ATTACKS``, by kind) that a soak or a test
calls on its own: ``await ATTACKS[kind](target, count, seconds)`` opens at
most ``count`` loopback connections, misbehaves for about ``seconds`` (every
wait is bounded), closes everything it opened and returns an
``AttackReport``: what it sent and received, and how the server answered
(HTTP statuses before an upgrade, close codes after it, 1006 for a
connection that ended without a close frame, and the ``error`` reasons).

- ``stall``: players that stop reading for ``seconds`` (a frozen tab, a bot
  under SIGSTOP), then answer every update that waited with one input each:
  the most a client may send. ``notes.survived`` counts those that kept
  playing afterwards.
- ``spread_acks``: valid players that each acknowledge a different recent
  tick (one lags 1 tick, the next 2, ... up to 31): a delta base each.
- ``no_ack``: connections that say ``hello``, read everything and never
  acknowledge a tick.
- ``no_ack_waves``: ``no_ack`` again as soon as the server has closed a
  wave (its ack timeout), until ``seconds``: every tick of the window has
  silent clients arriving, present or leaving (``no_ack``'s one wave leaves
  the window's last seconds without them).
- ``non_reader``: players that say ``hello`` and never read a byte.
- ``fd_flood``: TCP connections opened and held without a request.
- ``seat_hold``: players that join and drop at once, ``count`` of them;
  then one newcomer tries to join (``notes.newcomer``: "welcome" or its
  close code).
- ``http_probe``: paths the static files cannot serve (a NUL, a 300-character
  name) and a WebSocket upgrade from another site's ``Origin``.

The command line measures one attack: two runs of a server it starts
(``python -m server --ruleset R --no-record`` plus ``--server-arg``s, from
``--root``, another checkout for a "before" figure), each with ``--bots``
bots playing; the first run is the baseline, the second runs the attack
meanwhile; with ``--control`` a third run has as many more well-behaved bots
instead of the attackers (what the same number of honest clients costs, to
tell the attack's own cost from that of more clients); ``--pairs N`` runs
them N times, alternated. For each it prints the bots' updates a second over
the attack's window (mean and min), the server's tick p99 over that window
(and its phases') and its CPU per tick (each also as a ratio to its pair's
baseline), ticks dropped, the server's RSS (start, peak, end) and the peak
of its kernel send queues; over several pairs, also the tick p99 of all the
baselines' ticks together against all the attacks'. The samplers of RSS and
send queues run at the lowest priority (``SCHED_IDLE``): the instrument must
not take the measured server's CPU. Loopback only; every count and wait is
bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import msgpack
from attrs import define, evolve, field, frozen

from server.cli import positive
from tools.bench import (ROOT, BenchError, Proc, Scrape, cpus_for, histogram_window, metric_sum, parse_metrics, quantile,
                         status_mib, window_ms)
from tools.cli import Parser
from tools.client import GameClient, ServerClosed
from tools.loadgen import LeanClient

#: The only hosts an attack may target.
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})

#: Seconds any one wait of an attack may take (a connection, a handshake, a welcome, a close).
WAIT_S = 10.0

#: Error reasons kept per report.
KEEP_ERRORS = 8


@frozen
class Target:
    """Where an attack goes: a loopback server and the WebSocket path of its match."""

    host: str = "127.0.0.1"
    port: int = 8765
    path: str = "/ws"

    def __attrs_post_init__(self) -> None:
        if self.host not in LOOPBACK:
            raise ValueError(f"attacks run against loopback only, not {self.host!r}")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}{self.path}"


@define
class AttackReport:
    """What one attack did and how the server answered.

    Attributes:
        kind: the attack (a key of ``ATTACKS``).
        connections: TCP connections opened.
        upgraded: WebSocket handshakes completed.
        joined: welcomes received.
        messages_sent: WebSocket messages sent after the hellos (inputs, acks).
        updates, keyframes: updates received (keyframes among them).
        bytes_received: payload bytes of the server's messages.
        http_statuses: statuses of answers other than 101.
        close_codes: how the server ended each connection that ended: its close code, 1006 without one.
        errors: the first ``error`` reasons the server sent.
        notes: what is particular to the attack.
    """

    kind: str
    connections: int = 0
    upgraded: int = 0
    joined: int = 0
    messages_sent: int = 0
    updates: int = 0
    keyframes: int = 0
    bytes_received: int = 0
    http_statuses: Counter[int] = field(factory=Counter)
    close_codes: Counter[int] = field(factory=Counter)
    errors: list[str] = field(factory=list)
    notes: dict[str, Any] = field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "connections": self.connections, "upgraded": self.upgraded, "joined": self.joined,
            "messages_sent": self.messages_sent, "updates": self.updates, "keyframes": self.keyframes,
            "bytes_received": self.bytes_received,
            "http_statuses": {str(k): v for k, v in sorted(self.http_statuses.items())},
            "close_codes": {str(k): v for k, v in sorted(self.close_codes.items())},
            "errors": self.errors, "notes": self.notes,
        }


class Hostile(LeanClient):
    """A lean client (``tools.loadgen``) that misbehaves on purpose.

    Args:
        answer: what it sends per update: ``input`` (one input, acking the update), ``ack`` (an ``ack`` of
            the update's tick minus ``ack_lag``) or ``none``.
        read: False: it stops reading as soon as its upgrade is answered (right after its hello).
    """

    def __init__(self, target: Target, name: str, index: int, *, answer: str = "input", ack_lag: int = 0,
                 read: bool = True) -> None:
        super().__init__(target.host, target.port, target.path, name, index, seed=index + 1, inputs=answer == "input")
        self.answer = answer
        self.ack_lag = ack_lag
        self.read = read
        self.sent = 0
        self.http_status: int | None = None
        self.interest = False  # a plain hello: the whole world, from any server (an older checkout's too)
        self.roster_deltas = False
        self.upgraded: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        # A client refused or dropped before its welcome fails this future: nobody need wait for it.
        self.welcomed.add_done_callback(lambda f: f.cancelled() or f.exception())

    def _handshake(self, data: bytes) -> bytes:
        if self.http_status is None and b"\r\n" in self._http + data:
            status = (self._http + data).split(b" ", 2)[1:2]
            self.http_status = int(status[0]) if status and status[0].isdigit() else 0
        rest = super()._handshake(data)
        if not self._handshaking and not self.upgraded.done():
            self.upgraded.set_result(True)
            if not self.read and self.transport is not None:
                self.transport.pause_reading()
        return rest

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_result(False)
        super().connection_lost(exc)

    def _on_update(self, tick: int, keyframe: bool) -> None:
        super()._on_update(tick, keyframe)
        if not self.open:
            return
        if self.answer == "input":
            self.sent += 1
        elif self.answer == "ack":
            self.send(msgpack.packb({"t": "ack", "tick": max(0, tick - self.ack_lag)}))
            self.sent += 1

    def stall(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


async def open_clients(target: Target, make: Callable[[int], Hostile], count: int) -> list[Hostile]:
    """``count`` clients made by ``make(i)``, connected one after another; waits (bounded) for their upgrades."""
    loop = asyncio.get_running_loop()
    clients: list[Hostile] = []
    for i in range(count):
        client = make(i)
        try:
            await asyncio.wait_for(loop.create_connection(lambda: client, target.host, target.port), WAIT_S)
        except (OSError, TimeoutError):
            continue
        clients.append(client)
    if clients:
        await asyncio.wait([c.upgraded for c in clients], timeout=WAIT_S)
    return clients


async def joined(clients: Iterable[Hostile]) -> None:
    """Wait (bounded) until every client that reads is welcomed, or gone."""
    waiting = [c.welcomed for c in clients if c.read and c.upgraded.done() and c.upgraded.result()]
    if waiting:
        await asyncio.wait(waiting, timeout=WAIT_S)


async def close_all(clients: Iterable[Hostile], drain_s: float = 0.0) -> None:
    """Read what the server still sends for up to ``drain_s`` (non-readers read again), then close the rest."""
    clients = list(clients)
    for c in clients:
        c.resume()
    if drain_s > 0:
        await asyncio.wait([c.closed for c in clients], timeout=drain_s)
    await asyncio.gather(*(c.close(timeout=2.0) for c in clients if not c.closed.done()))


def report_of(kind: str, clients: list[Hostile], connections: int | None = None) -> AttackReport:
    """Tally what ``clients`` saw (after ``close_all``)."""
    r = AttackReport(kind, connections=len(clients) if connections is None else connections)
    for c in clients:
        s = c.stats
        if c.upgraded.done() and c.upgraded.result():
            r.upgraded += 1
        elif c.http_status not in (None, 101):
            r.http_statuses[c.http_status or 0] += 1
        if c.welcomed.done() and c.welcomed.exception() is None:  # exception(): retrieved, never warned about
            r.joined += 1
        r.messages_sent += c.sent
        r.updates += s.updates
        r.keyframes += s.keyframes
        r.bytes_received += s.bytes
        if c.close_code is not None and c.close_code != 1000 or c.upgraded.done() and c.upgraded.result() \
                and c.close_code is None:
            r.close_codes[c.close_code or 1006] += 1
        for e in s.errors:
            if "server error" in e and len(r.errors) < KEEP_ERRORS:
                r.errors.append(e.split("server error ", 1)[1])
    return r


# -- the attacks -----------------------------------------------------------------


async def stall(target: Target, count: int = 1, seconds: float = 20.0) -> AttackReport:
    """Players play 2 s, stop reading for ``seconds``, then answer the backlog one input per update for 5 s."""
    clients = await open_clients(target, lambda i: Hostile(target, f"stall{i + 1}", i), count)
    await joined(clients)
    await asyncio.sleep(2.0)
    for c in clients:
        c.stall()
    await asyncio.sleep(seconds)
    for c in clients:
        c.resume()
    await asyncio.sleep(5.0)
    now = time.monotonic()
    survived = sum(1 for c in clients if not c.closed.done() and now - (c.stats.last_update or 0.0) < 1.0)
    await close_all(clients)
    report = report_of("stall", clients)
    report.notes.update(stalled_s=seconds, survived=survived)
    return report


async def spread_acks(target: Target, count: int = 32, seconds: float = 15.0) -> AttackReport:
    """Players that each ack a different recent tick (lags 1..31 ticks) for ``seconds``."""
    clients = await open_clients(target, lambda i: Hostile(target, f"spread{i + 1}", i, answer="ack",
                                                           ack_lag=1 + i % 31), count)
    await joined(clients)
    await asyncio.sleep(seconds)
    await close_all(clients)
    return report_of("spread_acks", clients)


async def no_ack(target: Target, count: int = 300, seconds: float = 15.0) -> AttackReport:
    """Connections that say hello, read everything and never ack, for ``seconds``."""
    clients = await open_clients(target, lambda i: Hostile(target, f"silent{i + 1}", i, answer="none"), count)
    await joined(clients)
    await asyncio.sleep(seconds)
    await close_all(clients)
    report = report_of("no_ack", clients)
    report.notes["bytes_per_client_per_s"] = round(report.bytes_received / max(1, len(clients)) / seconds)
    return report


async def no_ack_waves(target: Target, count: int = 300, seconds: float = 15.0) -> AttackReport:
    """``no_ack``'s ``count`` connections, and as many again each time the server has closed them all, until
    ``seconds``: then those still open are closed. A wave refused at once waits a second: at most ``count``
    connections a second."""
    deadline = time.monotonic() + seconds
    everyone: list[Hostile] = []
    waves = 0
    while deadline - time.monotonic() > 0:
        wave, started = waves + 1, time.monotonic()
        clients = await open_clients(target, lambda i: Hostile(target, f"silent{wave}.{i + 1}", i, answer="none"),
                                     count)
        everyone += clients
        waves = wave
        await joined(clients)
        if clients:
            await asyncio.wait([c.closed for c in clients], timeout=max(0.0, deadline - time.monotonic()))
        await asyncio.sleep(min(max(0.0, started + 1.0 - time.monotonic()), max(0.0, deadline - time.monotonic())))
    await close_all(everyone)
    report = report_of("no_ack_waves", everyone)
    report.notes.update(waves=waves, bytes_per_client_per_s=round(report.bytes_received / max(1, len(everyone))
                                                                  / seconds))
    return report


async def non_reader(target: Target, count: int = 100, seconds: float = 15.0) -> AttackReport:
    """Players that say hello and read nothing for ``seconds``; then they read what is left (2 s at most)."""
    clients = await open_clients(target, lambda i: Hostile(target, f"deaf{i + 1}", i, read=False), count)
    await asyncio.sleep(seconds)
    await close_all(clients, drain_s=2.0)
    return report_of("non_reader", clients)


async def fd_flood(target: Target, count: int = 1400, seconds: float = 15.0) -> AttackReport:
    """``count`` TCP connections opened (200 a second at most) and held without a request for ``seconds``."""
    report = AttackReport("fd_flood")
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    answers: list[bytes] = []

    async def hold(reader: asyncio.StreamReader) -> None:
        try:
            answers.append(await reader.read(256))
        except OSError:
            answers.append(b"")

    readers: list[asyncio.Task[None]] = []
    start = time.monotonic()
    for i in range(count):
        try:
            conn = await asyncio.wait_for(asyncio.open_connection(target.host, target.port), WAIT_S)
        except (OSError, TimeoutError):
            report.notes["connect_failed"] = report.notes.get("connect_failed", 0) + 1
            continue
        conns.append(conn)
        readers.append(asyncio.create_task(hold(conn[0])))
        if i % 20 == 19:
            await asyncio.sleep(max(0.0, start + (i + 1) / 200 - time.monotonic()))
    report.connections = len(conns)
    await asyncio.sleep(max(0.0, start + seconds - time.monotonic()))
    for _, writer in conns:
        writer.close()
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for data in answers:
        parts = data.split(b" ", 2)
        if data.startswith(b"HTTP/") and len(parts) > 1 and parts[1].isdigit():
            report.http_statuses[int(parts[1])] += 1
        else:
            report.close_codes[1006] += 1  # dropped without an answer
    return report


async def seat_hold(target: Target, count: int = 80, seconds: float = 2.0) -> AttackReport:
    """``count`` players join and drop at once (no input); ``seconds`` later a newcomer tries to join that very
    match (``/ws/<match id>``: ``/ws`` would go on to another match of its room when it is full)."""
    clients = await open_clients(target, lambda i: Hostile(target, f"holder{i + 1}", i, answer="none"), count)
    await joined(clients)
    for c in clients:
        if c.transport is not None:
            c.transport.abort()
    await asyncio.sleep(seconds)
    url = target.url
    if target.path == "/ws":
        health = await asyncio.to_thread(_get_json, f"http://{target.host}:{target.port}/healthz")
        url = f"{url}/{health['match']}" if "match" in health else url
    newcomer = GameClient(url, "newcomer", decode=False, interest=False, roster_deltas=False)  # a plain hello: any server
    try:
        await newcomer.connect(timeout=WAIT_S)
        outcome: str | int | None = "welcome"
    except ServerClosed as exc:
        outcome = exc.code
    except (OSError, TimeoutError) as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    finally:
        if newcomer.ws is not None:
            await newcomer.close()
    await close_all(clients)
    report = report_of("seat_hold", clients)
    report.close_codes.clear()  # we dropped them
    report.notes["newcomer"] = outcome
    return report


def _get_json(url: str) -> dict[str, Any]:
    """A JSON answer over HTTP ({} when there is none)."""
    try:
        with urllib.request.urlopen(url, timeout=WAIT_S) as resp:
            obj: dict[str, Any] = json.loads(resp.read())
            return obj
    except (OSError, ValueError):
        return {}


async def http_probe(target: Target, count: int = 1, seconds: float = 0.0) -> AttackReport:
    """GET paths the static files cannot serve, and a WebSocket upgrade from another site's page."""
    report = AttackReport("http_probe")
    upgrade = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\n")
    probes = {"nul": ("/a%00b.js", ""), "long_name": ("/" + "a" * 300 + ".js", ""),
              "other_origin": (target.path, upgrade)}
    for name, (path, extra) in probes.items():
        for _ in range(count):
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port), WAIT_S)
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n{extra}\r\n".encode())
                head = await asyncio.wait_for(reader.readuntil(b"\r\n"), WAIT_S)
                writer.close()
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                report.close_codes[1006] += 1
                continue
            report.connections += 1
            status = int(head.split(b" ", 2)[1])
            report.http_statuses[status] += 1
            report.notes[name] = status
    return report


#: Every attack, by kind: ``await ATTACKS[kind](target, count, seconds)``.
ATTACKS: dict[str, Callable[[Target, int, float], Awaitable[AttackReport]]] = {
    "stall": stall, "spread_acks": spread_acks, "no_ack": no_ack, "no_ack_waves": no_ack_waves,
    "non_reader": non_reader,
    "fd_flood": fd_flood, "seat_hold": seat_hold, "http_probe": http_probe,
}

#: The issue's count and seconds of each attack (``--count`` and ``--seconds`` override them).
DEFAULTS: dict[str, tuple[int, float]] = {
    "stall": (1, 20.0), "spread_acks": (32, 15.0), "no_ack": (300, 15.0), "no_ack_waves": (300, 15.0),
    "non_reader": (100, 15.0),
    "fd_flood": (1400, 15.0), "seat_hold": (80, 2.0), "http_probe": (1, 0.0),
}


# -- measuring a server under attack -----------------------------------------------


class Sampler:
    """Samples a process's RSS and the kernel send queues of its port, every ``period`` s, on a thread
    (``times``: when each sample was taken, seconds from the start; reading thousands of sockets takes a while)."""

    def __init__(self, pid: int, port: int, period: float = 0.25) -> None:
        self.pid, self.port, self.period = pid, port, period
        self.times: list[float] = []
        self.rss: list[float] = []
        self.sendq: list[float] = []
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # The lowest priority there is: reading /proc/net/tcp takes milliseconds once the machine holds hundreds of
        # sockets (an attack's, and their TIME_WAITs for a minute after), and at normal priority this thread, woken
        # every period, preempted the measured server in the middle of a tick (perf sched: 4 ms inside 5 of the 9
        # slowest ticks of a no_ack run), which is the measurement's cost, not the attack's.
        if hasattr(os, "SCHED_IDLE"):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: this thread (Linux)
        while not self._stop.wait(self.period):
            rss = rss_mib(self.pid)
            if rss is None:
                continue  # the process is gone
            sendq = send_queue_mib(self.port)
            self.times.append(time.monotonic() - self._start)
            self.rss.append(rss)
            self.sendq.append(sendq)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def rss_mib(pid: int) -> float | None:
    """The resident memory of process ``pid``, MiB."""
    return status_mib(pid, "VmRSS")


def send_queue_mib(port: int) -> float:
    """Bytes queued in the kernel to send from local TCP port ``port`` (every connection's unacknowledged bytes, as
    ``tx_queue`` in ``/proc/net/tcp``), MiB: asked of the kernel's socket diagnostics over netlink, which costs a
    fifth of formatting and parsing ``/proc/net/tcp`` (2.4 against 11 ms with 600 sockets) and gives the CPU back
    between its reads; ``/proc/net/tcp`` where netlink is refused."""
    try:
        return _diag_send_queue(port) / (1 << 20)
    except OSError:
        pass
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 4 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                total += int(fields[4].split(":")[0], 16)
    return total / (1 << 20)


#: ``linux/sock_diag.h``, ``inet_diag.h``, ``netlink.h``: the request of a dump of TCP sockets, and its answer.
NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, NLM_F_DUMP, NLMSG_ERROR, NLMSG_DONE = 4, 20, 1, 0x300, 2, 3
#: Every TCP state but TIME_WAIT (6: nothing queued) and LISTEN (10: its "queue" is the accept backlog).
DIAG_STATES = 0xFFF & ~(1 << 6) & ~(1 << 10)
#: Offsets in an answer (after its 16-byte header): the local port (big-endian), the send queue (``idiag_wqueue``).
DIAG_SPORT, DIAG_WQUEUE = 16 + 4, 16 + 4 + 48 + 8


def _diag_send_queue(port: int) -> int:
    """``send_queue_mib``'s bytes over netlink (``NETLINK_SOCK_DIAG``), IPv4 and IPv6; every read bounded."""
    import socket
    import struct

    total = 0
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(WAIT_S)
        for family in (socket.AF_INET, socket.AF_INET6):
            request = struct.pack("=BBBBI48x", family, socket.IPPROTO_TCP, 0, 0, DIAG_STATES)
            sock.send(struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
                      + request)
            for _ in range(1 << 16):  # each read is a chunk of the dump; far more reads than any socket table needs
                data, offset, done = sock.recv(1 << 16), 0, False
                while offset + 16 <= len(data) and not done:
                    length, kind = struct.unpack_from("=IH", data, offset)
                    done = kind in (NLMSG_DONE, NLMSG_ERROR) or length < 16
                    if not done and struct.unpack_from(">H", data, offset + DIAG_SPORT)[0] == port:
                        total += struct.unpack_from("=I", data, offset + DIAG_WQUEUE)[0]
                    offset += (length + 3) & ~3
                if done or not data:
                    break
    return total


def tick_p99_ms(before: Scrape, after: Scrape) -> float | None:
    """The tick duration p99 between two /metrics scrapes, ms: from the tick histogram's buckets (``window_ms``);
    from a server without them (an older checkout), its own p99 over its last ticks."""
    p99 = window_ms(before, after, "total")[1]
    return p99 if p99 is not None else metric_sum(after, "tickserver_tick_total_p99_ms") or None


@frozen
class Options:
    """One measured run's settings (the command line's)."""

    kind: str
    count: int
    seconds: float
    bots: int
    ruleset: str
    warmup: float
    after: float
    root: Path
    nofile: int | None
    server_args: tuple[str, ...]
    #: The CPU the server is pinned to (``--pin``), or None.
    server_cpu: int | None = None


def measure(opts: Options, attack: bool, bots_asked: int | None = None) -> dict[str, Any]:
    """Start a server, play ``opts.bots`` bots, and (``attack``) run the attack; the run's figures (``bots_asked``:
    see ``_measure``)."""
    args = ["-m", "server", "--host", "127.0.0.1", "--port", "0", "--ruleset", opts.ruleset, "--no-record",
            *opts.server_args]
    server = Proc(args, "server", opts.server_cpu, root=opts.root, nofile=opts.nofile)
    try:
        return asyncio.run(_measure(server, opts, attack, bots_asked))
    finally:
        server.stop()


async def _measure(server: Proc, opts: Options, attack: bool, bots_asked: int | None = None) -> dict[str, Any]:
    """One run (``measure``); ``bots_asked``: the command line's ``--bots`` (fewer than ``opts.bots``: a control run)."""
    bots_asked = opts.bots if bots_asked is None else bots_asked
    target = Target(port=server.port)
    start = time.perf_counter()
    # The bots: lean players (tools.loadgen) that answer every update with an input, the protocol's plainest
    # form, which any server, an older checkout's too, speaks.
    bots = await open_clients(target, lambda i: Hostile(target, f"bot{i + 1}", i), opts.bots)
    await joined(bots)
    sampler = Sampler(server.pid, server.port)
    try:
        await asyncio.sleep(opts.warmup)
        rss0 = rss_mib(server.pid)
        health0, metrics0 = _health(server), _metrics(server)
        updates0 = [b.stats.updates for b in bots]
        lines0, tracebacks0, cpu0 = server.log_lines, server.tracebacks, sum(server.cpu())
        probes: Counter[str] = Counter()
        prober = asyncio.create_task(_probe(server, probes))
        t0 = time.perf_counter()
        report = None
        try:
            if attack:
                report = await ATTACKS[opts.kind](target, opts.count, opts.seconds)
            else:
                await asyncio.sleep(opts.seconds + (5 if opts.kind == "stall" else 0))
        finally:
            prober.cancel()
        window = time.perf_counter() - t0
        updates1 = [b.stats.updates for b in bots]
        health1, metrics1 = _health(server), _metrics(server)
        lines1, tracebacks1, cpu1 = server.log_lines, server.tracebacks, sum(server.cpu())
        await asyncio.sleep(opts.after)
        health2 = _health(server)
        rss_end = rss_mib(server.pid)
    finally:
        sampler.stop()
        errors = [e for b in bots for e in b.stats.errors][:3]
        await close_all(bots)
    rates = [(b - a) / window for a, b in zip(updates0, updates1)]
    return {
        "run": "attack" if attack else "baseline" if opts.bots == bots_asked else "control",
        "server_cpu": opts.server_cpu,
        "attack": opts.kind if attack else None,
        "window_s": round(window, 1),
        "bots": opts.bots,
        "bots_updates_per_s": round(sum(rates) / len(rates), 2) if rates else None,
        "bots_updates_per_s_min": round(min(rates), 2) if rates else None,
        "bots_joined": sum(1 for b in bots if b.welcomed.done() and b.welcomed.exception() is None),
        "bot_errors": errors,
        "tick_p99_ms": _r(tick_p99_ms(metrics0, metrics1)),
        # The phases' p99 (where a slow tick's time went) and the window's tick histogram (to pool runs: --pairs).
        "phase_p99_ms": {ph: _r(window_ms(metrics0, metrics1, ph)[1]) for ph in ("sim", "encode", "send")},
        "tick_buckets": [[repr(le), n] for le, n in histogram_window(metrics0, metrics1, "total")[2]],
        # The server's CPU (all of it: ticks, reading clients, HTTP) per tick it ran: steadier than wall-clock tick
        # durations on a machine others use too.
        "server_cpu_ms_per_tick": _r((cpu1 - cpu0) * 1000 / ticks) if (ticks := _ticks(metrics0, metrics1)) else None,
        "load_avg": round(os.getloadavg()[0], 1),
        "ticks_dropped": health1.get("ticks_dropped", 0) - health0.get("ticks_dropped", 0),
        "rss_mib_start": _r(rss0), "rss_mib_peak": _r(max(sampler.rss, default=None)), "rss_mib_end": _r(rss_end),
        "kernel_send_queue_mib_peak": _r(max(sampler.sendq, default=None)),
        "connected_after": health2.get("connected"),
        "server_log_lines": lines1 - lines0, "server_tracebacks": tracebacks1 - tracebacks0,
        "healthz_during": dict(probes),
        "report": None if report is None else report.to_json(),
    }


def pooled_p99_ms(runs: list[dict[str, Any]]) -> float | None:
    """The tick p99 over every tick of ``runs``' windows together (their histograms summed), ms; None without
    ticks or buckets (an older checkout's server)."""
    total: dict[float, float] = {}
    for r in runs:
        for le, n in r.get("tick_buckets", []):
            total[float(le)] = total.get(float(le), 0.0) + n
    p99 = quantile(0.99, sorted(total.items()))
    return None if p99 is None else round(p99 * 1000, 2)


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Baselines against attacks over all the pairs of a command: the pooled tick p99 of each, their ratio, and
    each pair's own ratio (an attack to the baseline run just before it)."""
    base = [r for r in runs if r["run"] == "baseline"]
    attack = [r for r in runs if r["run"] == "attack"]
    b, a = pooled_p99_ms(base), pooled_p99_ms(attack)
    pairs = [round(y["tick_p99_ms"] / x["tick_p99_ms"], 2) for x, y in zip(base, attack)
             if x["tick_p99_ms"] and y["tick_p99_ms"] is not None]
    return {"pairs": min(len(base), len(attack)), "baseline_tick_p99_ms": b, "attack_tick_p99_ms": a,
            "ratio": round(a / b, 2) if a is not None and b else None, "pair_ratios": pairs}


def _ticks(before: Scrape, after: Scrape) -> float:
    """Ticks the server ran between two scrapes (an older checkout's /metrics names them alike)."""
    return metric_sum(after, "tickserver_ticks_total") - metric_sum(before, "tickserver_ticks_total")


def _health(server: Proc) -> dict[str, Any]:
    """``/healthz``, or {} when the server does not answer it (refusing connections, say)."""
    try:
        return server.get_json("/healthz")
    except BenchError:
        return {}


def _metrics(server: Proc) -> Scrape:
    try:
        return parse_metrics(server.get("/metrics").decode())
    except BenchError:
        return {}


async def _probe(server: Proc, probes: Counter[str]) -> None:
    """Ask ``/healthz`` once a second (on a thread) while the attack runs: how often it answers."""
    while True:
        answered = await asyncio.to_thread(_health, server)
        probes["ok" if answered else "failed"] += 1
        await asyncio.sleep(1.0)


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def print_table(runs: list[dict[str, Any]]) -> None:
    #: Each run's baseline: the last one before it (its pair's).
    bases: dict[int, dict[str, Any]] = {}
    last: dict[str, Any] | None = None
    for r in runs:
        last = r if r["run"] == "baseline" else last
        if last is not None:
            bases[id(r)] = last

    def ratio(r: dict[str, Any], key: str) -> str:
        base = bases.get(id(r))
        b = None if base is None else base[key]
        return f"{r[key]}" if not b or r[key] is None or r is base else f"{r[key]} ({r[key] / b:.2f}x)"

    rows: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
            ("bots", lambda r: r["bots"]),
            ("bots' updates/s mean (min)", lambda r: f"{r['bots_updates_per_s']} ({r['bots_updates_per_s_min']})"),
            ("tick p99, ms", lambda r: ratio(r, "tick_p99_ms")),
            ("p99 ms: sim / encode / send", lambda r: " / ".join(str(v) for v in r["phase_p99_ms"].values())),
            ("server CPU per tick, ms", lambda r: ratio(r, "server_cpu_ms_per_tick")),
            ("load average", lambda r: r["load_avg"]), ("ticks dropped", lambda r: r["ticks_dropped"]),
            ("RSS MiB start / peak / end", lambda r: f"{r['rss_mib_start']} / {r['rss_mib_peak']} / {r['rss_mib_end']}"),
            ("kernel send queues MiB, peak", lambda r: r["kernel_send_queue_mib_peak"]),
            ("connected at the end", lambda r: r["connected_after"]),
            ("server log lines (tracebacks)", lambda r: f"{r['server_log_lines']} ({r['server_tracebacks']})"),
            ("/healthz during the attack", lambda r: r["healthz_during"])]
    print(f"{'':32} " + " ".join(f"{r['run']:>24}" for r in runs))
    for label, get in rows:
        print(f"{label:32} " + " ".join(f"{str(get(r)):>24}" for r in runs))
    report = next((r["report"] for r in runs if r["report"] is not None), None)
    if report is not None:
        print("attack:", json.dumps(report))
    for r in runs:
        for e in r["bot_errors"]:
            print("  bot error:", e)
    pool = pooled(runs)
    if pool["pairs"] > 1:
        print(f"pooled over {pool['pairs']} pairs: tick p99 {pool['baseline_tick_p99_ms']} ms baseline, "
              f"{pool['attack_tick_p99_ms']} ms attack ({pool['ratio']}x); each pair: {pool['pair_ratios']}")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tools.attacks", description=__doc__.split("\n\n", 1)[0] + " Runs a server twice "
               "(baseline, then under the attack) with bots playing; loopback only.")
    p.add_argument("kind", choices=sorted(ATTACKS), help="the attack")
    p.add_argument("--count", type=positive(int), default=None, help="hostile connections (default: the issue's)")
    p.add_argument("--seconds", type=positive(float), default=None, help="how long the attack lasts (default: the issue's)")
    p.add_argument("--bots", type=int, default=20, help="bots playing meanwhile (default 20)")
    p.add_argument("--ruleset", default="arena", help="the server's ruleset (default arena)")
    p.add_argument("--warmup", type=positive(float), default=3.0, help="seconds before the window (default 3)")
    p.add_argument("--after", type=float, default=0.0, help="seconds after the attack before the end figures (default 0)")
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout whose server runs (default this one)")
    p.add_argument("--nofile", type=positive(int), default=None, help="the server's open-file limit, soft and hard")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="one more argument of python -m server (repeat; --server-arg=--max-players --server-arg=100)")
    p.add_argument("--no-baseline", action="store_true", help="only the run under attack")
    p.add_argument("--control", action="store_true", help="a third run: --bots plus --count well-behaved bots and no "
                   "attack (what as many honest clients cost)")
    p.add_argument("--pin", action="store_true", help="pin the server to the first CPU this process may use and this "
                   "process (bots and attackers) to the second, as tools.bench does: what the attackers' own clients "
                   "spend does not take the server's core (needs 2 CPUs)")
    p.add_argument("--pairs", type=positive(int), default=1, help="baseline and attack (and control) this many "
                   "times, alternated, each run a fresh server; the tick p99 is also pooled over all of each kind "
                   "(default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    count, seconds = DEFAULTS[args.kind]
    try:
        server_cpu, clients_cpus = cpus_for(args.pin)
    except BenchError as exc:
        print(f"python -m tools.attacks: error: {exc}", file=sys.stderr)
        return 1
    if clients_cpus is not None:
        os.sched_setaffinity(0, clients_cpus)
    opts = Options(args.kind, args.count or count, args.seconds if args.seconds is not None else seconds, args.bots,
                   args.ruleset, args.warmup, args.after, args.root.resolve(), args.nofile, tuple(args.server_arg),
                   server_cpu)
    try:
        runs: list[dict[str, Any]] = []
        for _ in range(args.pairs):
            runs += ([] if args.no_baseline else [measure(opts, False)]) + [measure(opts, True)]
            if args.control:
                runs.append(measure(evolve(opts, bots=opts.bots + opts.count), False, bots_asked=opts.bots))
    except BenchError as exc:
        print(f"python -m tools.attacks: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"kind": opts.kind, "count": opts.count, "seconds": opts.seconds, "runs": runs,
                          "pooled": pooled(runs)}))
    else:
        print_table(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m tools.ceiling``: the ceiling of WORKLOAD.md, a server with no game.

The same websockets library and settings as ``server.app``, the same
handshake as far as a client can tell: it reads ``hello``, answers with a
``welcome`` whose ruleset has the drift inputs (so clients play on), then at
every tick (30 per second, scheduled by ``server.ticker``) pushes one
pre-encoded ``update``-shaped frame of ``--frame-bytes`` bytes to every
client with ``websockets.broadcast``. Only the 4-byte tick in the frame
changes. Inputs and everything else clients send are read and discarded.
``/healthz`` gives the tick, ticks skipped and clients, like the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from http import HTTPStatus

import msgpack
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from server.app import WS_MAX_SIZE
from server.loop import run_ticker
from server.ticker import Ticker
from tools.cli import Parser

log = logging.getLogger("ceiling")

#: The smallest frame: the update map with an empty pad.
_HEAD = b"\x86\xa1t\xa6update\xa4tick\xce"
_TAIL = b"\xa3sum\x00\xa3ack\x00"
_BASE_PAD = b"\xa4base\xc0\xa3pad"
#: Offset of the tick (uint32, big-endian) in the frame.
TICK_OFFSET = len(_HEAD)

WELCOME_RULESET = {
    "name": "ceiling", "version": 1, "width": 4000, "height": 4000, "columns": [],
    "inputs": [{"name": "dx", "lo": -1, "hi": 1, "doc": ""}, {"name": "dy", "lo": -1, "hi": 1, "doc": ""}],
    "motion": [], "kinds": [],
}


def update_frame(size: int) -> bytearray:
    """An ``update``-shaped msgpack map of exactly ``size`` bytes (at least ``min_frame_bytes()``):
    ``t``, ``tick`` (uint32 at ``TICK_OFFSET``), ``base`` nil, ``pad`` (bin), ``sum`` 0, ``ack`` 0."""
    fixed = len(_HEAD) + 4 + len(_BASE_PAD) + len(_TAIL)
    for header_len, code, width in ((2, 0xC4, 1), (3, 0xC5, 2), (5, 0xC6, 4)):
        n = size - fixed - header_len
        if 0 <= n < 1 << (8 * width):
            pad = bytes((code,)) + n.to_bytes(width, "big") + bytes(n)
            return bytearray(_HEAD + bytes(4) + _BASE_PAD + pad + _TAIL)
    raise ValueError(f"frame size must be at least {min_frame_bytes()} bytes, got {size}")


def min_frame_bytes() -> int:
    return len(_HEAD) + 4 + len(_BASE_PAD) + 2 + len(_TAIL)


class Ceiling:
    """Clients that said hello, and the frame they all get every tick."""

    def __init__(self, frame_bytes: int, tick_rate: int) -> None:
        self.frame = update_frame(frame_bytes)
        self.tick_rate = tick_rate
        self.clients: set[ServerConnection] = set()
        self.tick = 0
        self.next_player = 1
        self.ticker: Ticker | None = None
        self.frames_sent = 0
        self.stop_event = asyncio.Event()

    def on_tick(self) -> None:
        self.tick += 1
        self.frame[TICK_OFFSET:TICK_OFFSET + 4] = self.tick.to_bytes(4, "big")
        frame = bytes(self.frame)
        broadcast(self.clients, frame)
        self.frames_sent += len(self.clients)

    async def handle(self, ws: ServerConnection) -> None:
        try:
            await asyncio.wait_for(ws.recv(), 10.0)  # hello, whatever it says
            player = self.next_player
            self.next_player += 1
            await ws.send(msgpack.packb({
                "t": "welcome", "v": 1, "match": "ceiling", "player": player, "entity": player,
                "tick_rate": self.tick_rate, "tick": self.tick, "token": f"c{player}", "ruleset": WELCOME_RULESET,
                "resumed": False, "hold_s": 0.0,
            }))
            self.clients.add(ws)
            async for _ in ws:
                pass
        except (ConnectionClosed, TimeoutError):
            pass
        finally:
            self.clients.discard(ws)

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            return None
        if path == "/healthz":
            body = json.dumps({"status": "ok", "tick": self.tick, "ticks_dropped": self.ticker.dropped if self.ticker else 0,
                               "players": len(self.clients), "frames_sent": self.frames_sent,
                               "frame_bytes": len(self.frame)}).encode()
            return Response(200, "OK", Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))]), body)
        return Response(404, HTTPStatus(404).phrase, Headers([("Content-Length", "0")]), b"")


async def run(host: str, port: int, frame_bytes: int, tick_rate: int) -> None:
    ceiling = Ceiling(frame_bytes, tick_rate)
    # The game server's settings (server.app.GameServer.start), so the library does the same work.
    async with serve(ceiling.handle, host, port, process_request=ceiling.process_request, max_size=WS_MAX_SIZE,
                     ping_interval=20, ping_timeout=20, close_timeout=2, compression=None,
                     server_header="tickserver") as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        log.info("listening on ws://%s:%d/ws frame_bytes=%d tick_rate=%d", host, bound, len(ceiling.frame), tick_rate)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, ceiling.stop_event.set)
        ceiling.ticker = Ticker(tick_rate, time.monotonic())
        await run_ticker(ceiling.ticker, ceiling.on_tick, time.monotonic, stop=ceiling.stop_event)
        log.info("stopped after %d ticks", ceiling.tick)


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m tools.ceiling",
                description="A websockets server with no game: one pre-encoded update-shaped frame per tick to every client.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8766, help="port; 0 picks a free one (default 8766)")
    p.add_argument("--frame-bytes", type=int, default=1000, metavar="N", help="size of each update frame's payload (default 1000)")
    p.add_argument("--tick-rate", type=int, default=30, help="frames per second to each client (default 30)")
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error(f"--port must be in 0..65535, got {args.port}")
    if not min_frame_bytes() <= args.frame_bytes <= 1 << 24:
        p.error(f"--frame-bytes must be in {min_frame_bytes()}..{1 << 24}, got {args.frame_bytes}")
    if args.tick_rate <= 0:
        p.error(f"--tick-rate must be positive, got {args.tick_rate}")
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        asyncio.run(run(args.host, args.port, args.frame_bytes, args.tick_rate))
    except OSError as exc:
        p.exit(2, f"{p.prog}: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

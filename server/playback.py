"""Serving replays to browser spectators: the asyncio shell over the playback core.

``PlaybackServer`` serves ``client_web/``, lists the replays of one
directory at ``/api/replays``, and opens the replay a WebSocket names
(``/ws?replay=NAME``) on first use, as a ``Playback``
(``server/replay/playback.py``, the sans-I/O core) ticked at its rate.
The replays come from a ``ReplayLibrary`` (``server/replay/listing.py``).

Temporary: playback becomes a feed of the live server (issue 8), and this
second server shell goes away.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from server.app import WS_MAX_SIZE, WsClient
from server.config import ROOT
from server.protocol.errors import PolicyViolation, ProtocolError
from server.replay.format import ReplayError
from server.replay.listing import ReplayLibrary
from server.replay.playback import IDLE_S, Playback, Viewer
from server.ticker import Ticker
from server.web import json_response, static_file

log = logging.getLogger("server.playback")


# -- the server ------------------------------------------------------------------


class PlaybackServer:
    """Serves ``client_web/`` and the replays of ``directory`` on one port.

    Args:
        directory: where the replays are (``/api/replays`` lists it).
        only: serve just this file name of ``directory`` (``tools.replay play FILE``).
    """

    def __init__(self, directory: Path, *, only: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 static_dir: Path = ROOT / "client_web", max_buffer: int = 4 << 20, slow_timeout_s: float = 10.0,
                 hello_timeout_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
        self.only = only
        self.library = ReplayLibrary(directory, only)
        self.host = host
        self.port = port
        self.max_buffer = max_buffer
        self.slow_timeout_s = slow_timeout_s
        self.hello_timeout_s = hello_timeout_s
        self.playbacks: dict[str, Playback] = {}
        self.tickers: dict[str, Ticker] = {}
        self.stats = {"connections": 0, "frames_dropped": 0, "slow_closed": 0, "protocol_errors": 0}
        self._static = static_dir.resolve()
        self._clock = clock
        self._server: Server | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._loading: dict[str, asyncio.Future[Playback]] = {}
        self._idle_since: dict[str, float] = {}

    async def start(self) -> int:
        self._server = await serve(
            self._handle, self.host, self.port, process_request=self._process_request, max_size=WS_MAX_SIZE,
            ping_interval=20, ping_timeout=20, close_timeout=2, compression=None, server_header="tickserver-replay",
        )
        port: int = next(iter(self._server.sockets)).getsockname()[1]
        self.port = port
        return port

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        """Tick every open playback at its rate until ``stop()``."""
        try:
            while not self._stop.is_set():
                now = self._clock()
                for name, pb in list(self.playbacks.items()):
                    ticker = self.tickers[name]
                    try:
                        for _ in range(ticker.poll(now)):
                            pb.tick(now)
                    except Exception as exc:  # one broken playback must not stop the others
                        log.exception("playback of %s", name)
                        pb.fail(f"cannot play {name}: internal error ({type(exc).__name__})")
                    if pb.failed is not None:
                        self._drop(name)  # its viewers are closed; a new viewer reloads it
                    elif pb.viewers:
                        self._idle_since.pop(name, None)
                    elif now - self._idle_since.setdefault(name, now) > IDLE_S:
                        # Nobody watching for a while: forget it (a new viewer reloads it).
                        self._drop(name)
                deadlines = [t.next_deadline() for t in self.tickers.values()]
                delay = max(0.0, min(deadlines) - self._clock()) if deadlines else 1.0
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
        finally:
            for pb in self.playbacks.values():
                pb.close()
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

    def _drop(self, name: str) -> None:
        self.playbacks.pop(name, None)
        self.tickers.pop(name, None)
        self._idle_since.pop(name, None)

    # -- HTTP ------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | Awaitable[Response] | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            return None
        if path == "/api/replays":
            return self._api_replays()
        if path == "/healthz":
            return json_response({"status": "ok", "playing": {n: p.sim.tick for n, p in self.playbacks.items()}})
        if path == "/":
            path = "/replay.html"
        return self._file(path)

    async def _api_replays(self) -> Response:
        """The listing, read on a worker thread (the disk must not stall the playbacks), headers cached."""
        replays = await asyncio.to_thread(self.library.list)
        return json_response({"playback": True, "dir": str(self.directory), "replays": replays})

    def _file(self, path: str) -> Response:
        return static_file(self._static, path)

    # -- WebSocket -------------------------------------------------------------

    async def open(self, name: str | None) -> Playback:
        """The playback of replay ``name``, loading it on first use. PolicyViolation if it cannot be played."""
        if not (name or self.only):
            raise PolicyViolation("name a replay: /ws?replay=NAME (see /api/replays)")
        try:
            key = self.library.resolve(name).name
        except ReplayError as exc:
            raise PolicyViolation(str(exc)) from None
        pb = self.playbacks.get(key)
        if pb is not None and pb.failed is None:
            return pb
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.get_running_loop().run_in_executor(None, self._load, key)
            self._loading[key] = loading
        try:
            pb = await asyncio.shield(loading)
        except (OSError, ReplayError) as exc:
            raise PolicyViolation(f"cannot play {key}: {exc}") from None
        finally:
            self._loading.pop(key, None)
        if key not in self.playbacks or self.playbacks[key].failed is not None:
            self.playbacks[key] = pb
            self.tickers[key] = Ticker(pb.tick_rate, self._clock())
            self._wake.set()
            log.info("playing %s (%s, ticks %d..%d)", key, pb.header.ruleset, pb.replay.first_tick, pb.sim.last_tick)
        return self.playbacks[key]

    def _load(self, name: str) -> Playback:
        """Read and parse replay ``name`` and make its playback (blocking: on a worker thread)."""
        loaded = self.library.load(name)
        return Playback(loaded.name, loaded.replay, loaded.ruleset)

    async def _handle(self, ws: ServerConnection) -> None:
        self.stats["connections"] += 1
        client = WsClient(ws, self.max_buffer, self.slow_timeout_s, self.stats)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(ws.request.path if ws.request else "").query)
        viewer: Viewer | None = None
        pb: Playback | None = None
        try:
            try:
                first = await asyncio.wait_for(ws.recv(), self.hello_timeout_s)
            except TimeoutError:
                raise PolicyViolation(f"no hello within {self.hello_timeout_s:g} s") from None
            names = query.get("replay")
            pb = await self.open(names[0] if names else None)
            session = pb.new_session()
            hello = pb.receive(None, session, first, self._clock())
            if hello is None:
                raise PolicyViolation("hello first")
            viewer = pb.connect(hello, session, client)
            async for data in ws:
                pb.receive(viewer, session, data, self._clock())
        except ProtocolError as exc:
            self.stats["protocol_errors"] += 1
            log.info("closing %s: %s", ws.remote_address, exc)
            client.fail(exc)
        except ConnectionClosed:
            pass
        finally:
            if viewer is not None and pb is not None:
                pb.disconnect(viewer)
        await client.closed()


async def serve_replays(server: PlaybackServer, on_ready: Callable[[int], None]) -> None:
    """Start ``server``, report its port, run until stopped (SIGINT/SIGTERM)."""
    port = await server.start()
    on_ready(port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    await server.run()


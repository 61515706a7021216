"""A loopback TCP proxy that delays every byte, with jitter, and can cut its connections.

``DelayProxy`` stands between a client and a server on 127.0.0.1 (the tests'
and ``tools.netbench``'s model of a real network): each chunk read from one
side is written to the other ``delay`` seconds later, plus a uniform
``jitter`` of up to that many seconds either way, never before the chunk
ahead of it (TCP keeps order, so a late chunk holds back the ones behind
it). The jitter is drawn from a seeded generator, so a run is repeatable
as far as the scheduler allows.
"""

from __future__ import annotations

import asyncio
import random
import time


class DelayProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream_port``, ``delay`` ± ``jitter`` seconds late each way
    (a round trip of RTT + 2 x delay on average).

    Runs in the event loop that calls ``start()``; ``cut()`` drops every
    connection at once, as a network failure would (no WebSocket close).
    """

    def __init__(self, upstream_port: int, delay: float, jitter: float = 0.0, seed: int = 1) -> None:
        if not 0 <= jitter <= delay:
            raise ValueError(f"jitter must be 0 to the delay ({delay}), got {jitter}")
        self.upstream_port = upstream_port
        self.delay = delay
        self.jitter = jitter
        self.port = 0
        self._rng = random.Random(seed)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> DelayProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _late(self) -> float:
        return self.delay + (self._rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def later() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.ensure_future(later())
        due = 0.0
        try:
            while data := await reader.read(65536):
                due = max(due, time.monotonic() + self._late())  # in order, as TCP delivers
                queue.put_nowait((due, data))
        except (ConnectionError, OSError):
            pass
        queue.put_nowait((0.0, b""))
        try:
            await sender
        except (ConnectionError, OSError):
            pass

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_w}
        try:
            await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer), return_exceptions=True)
        except asyncio.CancelledError:
            pass  # the proxy closed: nothing more to forward
        finally:
            self._writers -= {writer, up_w}

    def cut(self) -> None:
        """Abort every proxied connection, both sides, without a close handshake."""
        for w in list(self._writers):
            w.transport.abort()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

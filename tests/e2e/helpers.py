"""What several end-to-end tests do alike: read a connection to its end, run a server in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from server.app import GameServer
from server.protocol.codec import decode_server


async def messages_until_closed(ws: ClientConnection) -> list[Any]:
    """Every server message left on ``ws``, decoded, until the server closes it."""
    got = []
    try:
        async for data in ws:
            got.append(decode_server(data))
    except ConnectionClosed:
        pass
    return got


@asynccontextmanager
async def serving(server: GameServer) -> AsyncIterator[int]:
    """``server`` listening on a free loopback port (yielded) and ticking its matches; stopped after."""
    port = await server.start()
    loop = asyncio.create_task(server.run())
    try:
        yield port
    finally:
        server.stop()
        await loop

"""What several end-to-end tests do alike: read a connection to its end, run a server in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from game.rules import get_ruleset
from server.app import GameServer
from server.config import ServerConfig
from server.match import Match
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


def drift_server(tmp_path: Path, **config: Any) -> GameServer:
    """A game server on a free loopback port hosting one small drift match, with ``config``'s settings."""
    match = Match(get_ruleset("drift"), match_id="m", options={"npcs": 20})
    return GameServer(ServerConfig(port=0, record=False, replay_dir=tmp_path, **config), match)

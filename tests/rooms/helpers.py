"""What the rooms tests share: driving the in-memory directory, a networked-like directory, a shell's match factory."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from server.rooms import Catalog, MatchId, NodeId, NodeInfo, RoomType
from server.rulesets import load_ruleset

T = TypeVar("T")


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (every ``MemoryDirectory`` method) to its result, without a loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the coroutine suspended: it awaited something")


class Networked:
    """A directory whose every call yields to the event loop before and after it, as a network round trip does.

    Wraps a real directory: what runs is the real thing, only interleaved the
    way a remote directory's calls would be, so races between concurrent
    requests actually happen.
    """

    def __init__(self, directory: Any) -> None:
        self.directory = directory
        self.calls = 0

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.directory, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            await asyncio.sleep(0)
            result = await method(*args, **kwargs)
            await asyncio.sleep(0)
            return result

        return call


class Shell:
    """The shell's side of matchmaking: ``create_match`` makes ids ``m1``, ``m2``... and remembers what it made."""

    def __init__(self, yields: int = 1) -> None:
        self.created: list[tuple[MatchId, RoomType, NodeInfo]] = []
        self.yields = yields
        self._ids = itertools.count(1)

    async def create_match(self, room: RoomType, node: NodeInfo) -> MatchId:
        for _ in range(self.yields):  # starting a match takes a while
            await asyncio.sleep(0)
        match_id = MatchId(f"m{next(self._ids)}")
        self.created.append((match_id, room, node))
        return match_id


NODE = NodeId("node-a")
URL = "ws://127.0.0.1:8765"


def catalog(*room_types: RoomType) -> Catalog:
    return Catalog.load(room_types or (RoomType("drift", {"npcs": 10}, max_players=8), RoomType("arena")), load_ruleset)

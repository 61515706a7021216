"""The mailbox loop (``Drainer.run``) ends when cancelled, even when the directory turns the cancellation of its
blocked read into an error of its own (as a client library may: a read cut short looks like a lost connection)."""
from __future__ import annotations

import asyncio
import types
from typing import cast

import pytest

from server.handover.drain import Drainer
from server.host import Host
from server.rooms.directory import NodeId
from server.rooms.errors import DirectoryUnavailable
from server.rooms.memory import MemoryDirectory


class CancelIntoError(MemoryDirectory):
    """A directory whose blocked ``receive``, cancelled, raises DirectoryUnavailable instead of CancelledError."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def receive(self, node_id: NodeId, *, timeout: float) -> list[bytes]:
        self.reads += 1
        try:
            return await super().receive(node_id, timeout=timeout)
        except asyncio.CancelledError:
            raise DirectoryUnavailable("memory", "connection closed by the cancelled read") from None


def drainer_on(directory: MemoryDirectory) -> Drainer:
    return Drainer(cast(Host, types.SimpleNamespace(directory=directory, node_id=NodeId("node-a"))))


@pytest.mark.parametrize("directory", [MemoryDirectory, CancelIntoError])
def test_the_mailbox_loop_ends_when_cancelled_whatever_the_directory_raises(
        directory: type[MemoryDirectory]) -> None:
    async def main() -> None:
        mailbox = directory()
        task = asyncio.create_task(drainer_on(mailbox).run())
        await asyncio.sleep(0.2)  # blocked in receive
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5.0)
        assert done == {task} and task.cancelled()
        if isinstance(mailbox, CancelIntoError):
            assert mailbox.reads == 1  # not read again after the cancellation

    asyncio.run(main())


def test_a_directory_outage_is_still_retried() -> None:
    class Down(MemoryDirectory):
        reads = 0

        async def receive(self, node_id: NodeId, *, timeout: float) -> list[bytes]:
            self.reads += 1
            raise DirectoryUnavailable("memory", "down")

    async def main() -> None:
        mailbox = Down()
        task = asyncio.create_task(drainer_on(mailbox).run())
        async with asyncio.timeout(10):
            while mailbox.reads < 3:
                await asyncio.sleep(0.05)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5.0)
        assert done == {task} and task.cancelled()

    asyncio.run(main())

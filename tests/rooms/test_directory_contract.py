"""Every ``MatchDirectory`` keeps the rules of ``server/rooms/directory.py``'s docstring, the same way.

One suite, run against each implementation: what a test asserts is what
any directory must do, so a second implementation cannot drift from the
first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from server.rooms import MatchDirectory, MatchId, MemoryDirectory, NodeId, UnknownMatch, UnknownNode
from tests.rooms.helpers import NODE, URL

T = TypeVar("T")
M1, M2, M3 = MatchId("m1"), MatchId("m2"), MatchId("m3")
B, URL_B = NodeId("node-b"), "ws://127.0.0.1:9000"
ROOM = {"ruleset": "drift", "options": {"npcs": 10}, "tick_rate": 30, "max_players": 4, "labels": {"mode": "ffa"},
        "seed": 7}


class Bench:
    """An event loop to run directory calls on, and directories of one kind made on it, closed at the end.

    ``run(d.call(...))`` runs one call to its result, as ``drive`` does for the
    in-memory directory alone.
    """

    def __init__(self, kind: str, make: Callable[..., Awaitable[Any]]) -> None:
        self.kind = kind
        self.make = make
        self.runner = asyncio.Runner()
        self.made: list[Any] = []

    def run(self, aw: Awaitable[T]) -> T:
        async def call() -> T:
            return await aw
        return self.runner.run(call())

    def new(self, **kw: Any) -> MatchDirectory:
        directory: MatchDirectory = self.run(self.make(**kw))
        self.made.append(directory)
        return directory

    def close(self) -> None:
        for directory in self.made:
            aclose = getattr(directory, "aclose", None)
            if aclose is not None:
                self.run(aclose())
        self.runner.close()


async def _memory(**kw: Any) -> MemoryDirectory:
    return MemoryDirectory(**kw)


@pytest.fixture(params=["memory"])
def bench(request: pytest.FixtureRequest) -> Iterator[Bench]:
    b = Bench(request.param, _memory)
    yield b
    b.close()


def with_node(bench: Bench, **kw: Any) -> MatchDirectory:
    """A directory with node ``NODE`` (alive as long as a test, unless ``node_ttl`` says otherwise)."""
    kw.setdefault("node_ttl", 1e9)
    d = bench.new(**kw)
    bench.run(d.heartbeat(NODE, URL, 0, now=0.0))
    return d


def with_two_nodes(bench: Bench, **kw: Any) -> MatchDirectory:
    d = with_node(bench, **kw)
    bench.run(d.heartbeat(B, URL_B, 0, now=0.0))
    return d


# -- matches: their room data, per node, moved ------------------------------------------------


def test_a_match_keeps_the_room_data_it_was_made_from_as_plain_json(bench: Bench) -> None:
    d = with_node(bench)
    added = bench.run(d.add_match(M1, NODE, "drift", {"mode": "ffa"}, 4, now=0.0,
                                  room={**ROOM, "spawn": (1, 2)}))
    bench.run(d.add_match(M2, NODE, "drift", {}, 4, now=0.0))
    expected = {**ROOM, "spawn": [1, 2]}
    assert added.room == expected
    assert bench.run(d.get_match(M1, now=1.0)).room == expected  # type: ignore[union-attr]
    assert [m.room for m in bench.run(d.list_matches(now=1.0))] == [expected, {}]
    assert "room" not in added.to_json()  # the listing API shows where to play, not how to make it


def test_a_node_lists_its_own_matches_oldest_first(bench: Bench) -> None:
    d = with_two_nodes(bench)
    bench.run(d.add_match(M1, NODE, "drift", {}, 4, now=2.0))
    bench.run(d.add_match(M2, B, "drift", {}, 4, now=1.0))
    bench.run(d.add_match(M3, NODE, "arena", {}, 4, now=1.0))
    assert [m.match_id for m in bench.run(d.node_matches(NODE, now=3.0))] == ["m3", "m1"]
    assert [m.match_id for m in bench.run(d.node_matches(B, now=3.0))] == ["m2"]
    assert bench.run(d.node_matches(NodeId("nobody"), now=3.0)) == []
    bench.run(d.remove_match(M3, now=3.0))
    assert [m.match_id for m in bench.run(d.node_matches(NODE, now=3.0))] == ["m1"]


def test_a_moved_match_is_played_at_its_new_node_with_its_players_and_seats(bench: Bench) -> None:
    d = with_two_nodes(bench)
    bench.run(d.add_match(M1, NODE, "drift", {"mode": "ffa"}, 4, now=0.0, players=1, room=ROOM))
    seat = bench.run(d.reserve(M1, ttl=15.0, now=1.0))
    moved = bench.run(d.move_match(M1, B, now=2.0))
    assert (moved.node_id, moved.url, moved.players, moved.reserved, moved.room) == (B, f"{URL_B}/ws/m1", 1, 1, ROOM)
    assert bench.run(d.node_matches(NODE, now=2.0)) == []
    assert [m.match_id for m in bench.run(d.node_matches(B, now=2.0))] == ["m1"]
    assert bench.run(d.take(seat.token, M1, now=3.0)).players == 2  # a seat reserved before the move still seats
    assert bench.run(d.list_matches(now=3.0, labels={"mode": "ffa"}))[0].url == f"{URL_B}/ws/m1"
    assert bench.run(d.remove_node(NODE, now=4.0)) == ()  # the old node no longer takes it along


def test_a_match_moves_only_if_it_is_listed_and_its_new_node_is_alive(bench: Bench) -> None:
    d = with_node(bench)
    bench.run(d.add_match(M1, NODE, "drift", {}, 4, now=0.0))
    with pytest.raises(UnknownMatch):
        bench.run(d.move_match(M2, NODE, now=1.0))
    with pytest.raises(UnknownNode):
        bench.run(d.move_match(M1, B, now=1.0))
    assert bench.run(d.get_match(M1, now=1.0)).node_id == NODE  # type: ignore[union-attr]


def test_a_moved_match_goes_when_its_new_node_dies(bench: Bench) -> None:
    d = with_node(bench, node_ttl=6.0)
    bench.run(d.heartbeat(B, URL_B, 0, now=4.0))
    bench.run(d.add_match(M1, B, "drift", {}, 4, now=4.0))
    bench.run(d.move_match(M1, NODE, now=5.0))
    bench.run(d.heartbeat(B, URL_B, 0, now=5.0))
    assert bench.run(d.get_match(M1, now=7.0)) is None  # NODE died at 6.0, B lives on
    assert [n.node_id for n in bench.run(d.nodes(now=7.0))] == [B]


# -- mailboxes ------------------------------------------------------------------------------


def test_messages_posted_to_a_node_are_received_oldest_first_and_once(bench: Bench) -> None:
    d = with_two_nodes(bench)
    big = bytes(range(256)) * 40_000  # 10 MB
    bench.run(d.post(B, b"one", now=1.0))
    bench.run(d.post(B, big, now=1.0))
    bench.run(d.post(B, b"", now=1.0))
    assert bench.run(d.receive(B, timeout=1.0)) == [b"one", big, b""]
    assert bench.run(d.receive(B, timeout=0.0)) == []
    assert bench.run(d.receive(NODE, timeout=0.0)) == []


def test_a_receive_waits_for_a_message_and_gives_up_at_its_timeout(bench: Bench) -> None:
    d = with_two_nodes(bench)

    async def later() -> None:
        await asyncio.sleep(0.05)
        await d.post(B, b"state", now=1.0)

    async def scenario() -> tuple[list[bytes], list[bytes], float]:
        loop = asyncio.get_running_loop()
        got, _ = await asyncio.gather(d.receive(B, timeout=5.0), later())
        start = loop.time()
        nothing = await d.receive(B, timeout=0.2)
        return got, nothing, loop.time() - start

    got, nothing, waited = bench.run(scenario())
    assert (got, nothing) == ([b"state"], [])
    assert 0.15 <= waited < 2.0  # the timeout, with margin for a busy machine


def test_a_post_needs_a_live_node_whose_mailbox_goes_with_it(bench: Bench) -> None:
    d = with_node(bench, node_ttl=6.0)
    with pytest.raises(UnknownNode):
        bench.run(d.post(B, b"x", now=0.0))
    bench.run(d.post(NODE, b"lost", now=1.0))
    assert bench.run(d.expire(now=6.0)).nodes == (NODE,)
    assert bench.run(d.heartbeat(NODE, URL, 0, now=7.0)) is False
    assert bench.run(d.receive(NODE, timeout=0.0)) == []
    with pytest.raises(UnknownNode):
        bench.run(d.post(B, b"x", now=7.0))

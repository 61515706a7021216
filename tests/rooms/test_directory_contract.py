"""Every ``MatchDirectory`` keeps the rules of ``server/rooms/directory.py``'s docstring, the same way.

One suite, run against each implementation (``MemoryDirectory``, and
``RedisDirectory`` on a real ``redis-server``): what a test asserts is what
any directory must do, so neither can drift from the other. Time is the
fake ``now`` the tests pass; seat tokens are whatever the directory draws.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from server.rooms import (
    DuplicateMatch,
    Expired,
    MatchDirectory,
    MatchFull,
    MatchId,
    MemoryDirectory,
    NodeId,
    SeatExpired,
    SeatForAnotherMatch,
    SeatTaken,
    UnknownMatch,
    UnknownNode,
    UnknownSeat,
)
from server.rooms.errors import CLOSE_SEAT_EXPIRED, CLOSE_SEAT_OTHER_MATCH, CLOSE_SEAT_TAKEN, CLOSE_SEAT_UNKNOWN
from server.rooms.redis_directory import RedisDirectory
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

    def __init__(self, kind: str, make: Callable[..., MatchDirectory]) -> None:
        self.kind = kind
        self.make = make
        self.runner = asyncio.Runner()
        self.made: list[MatchDirectory] = []

    def run(self, aw: Awaitable[T]) -> T:
        async def call() -> T:
            return await aw
        return self.runner.run(call())

    def new(self, **kw: Any) -> MatchDirectory:
        directory = self.make(**kw)
        self.made.append(directory)
        return directory

    def close(self) -> None:
        for directory in self.made:
            if isinstance(directory, RedisDirectory):
                self.run(directory.aclose())
        self.runner.close()


@pytest.fixture(params=["memory", "redis"])
def bench(request: pytest.FixtureRequest) -> Iterator[Bench]:
    if request.param == "memory":
        b = Bench("memory", MemoryDirectory)
    else:
        url, prefix = request.getfixturevalue("redis_server").url, request.getfixturevalue("redis_prefix")
        # A generous timeout: a busy machine is no outage (test_redis_directory.py tests those).
        b = Bench("redis", lambda **kw: RedisDirectory(url, prefix=prefix, timeout=10.0, **kw))
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


def with_match(bench: Bench, max_players: int = 4, players: int = 0, **kw: Any) -> MatchDirectory:
    """``with_node`` and match ``M1`` of ruleset ``drift`` with ``mode: ffa``, added at 0."""
    d = with_node(bench, **kw)
    bench.run(d.add_match(M1, NODE, "drift", {"mode": "ffa"}, max_players, now=0.0, players=players))
    return d


# -- nodes ----------------------------------------------------------------------------------


def test_a_first_heartbeat_registers_a_node_and_later_ones_keep_it_alive(bench: Bench) -> None:
    d = bench.new(node_ttl=6.0)
    assert bench.run(d.heartbeat(NODE, URL, 3, now=0.0)) is False
    assert bench.run(d.heartbeat(NODE, URL, 5, now=5.0, accepting=False)) is True
    bench.run(d.heartbeat(B, URL_B, 1, now=5.5))
    node, b = bench.run(d.nodes(now=10.0))
    assert (node.node_id, node.url, node.load, node.accepting, node.expires) == (NODE, URL, 5, False, 11.0)
    assert (b.node_id, b.url, b.load, b.accepting, b.expires) == (B, URL_B, 1, True, 11.5)


def test_a_node_that_misses_its_heartbeat_disappears_with_its_matches(bench: Bench) -> None:
    d = with_match(bench, node_ttl=6.0)
    bench.run(d.add_match(M2, NODE, "arena", {}, 4, now=0.0))
    bench.run(d.heartbeat(B, URL_B, 0, now=4.0))
    seat = bench.run(d.reserve(M1, ttl=15.0, now=1.0))
    bench.run(d.post(NODE, b"never read", now=1.0))
    assert bench.run(d.expire(now=5.9)) == Expired()
    assert bench.run(d.expire(now=6.0)) == Expired(seats=0, nodes=(NODE,), matches=(M1, M2))
    assert bench.run(d.expire(now=6.0)) == Expired()  # reported once
    assert [n.node_id for n in bench.run(d.nodes(now=6.0))] == ["node-b"]
    assert bench.run(d.get_match(M1, now=6.0)) is None
    assert bench.run(d.list_matches(now=6.0)) == []
    assert bench.run(d.list_matches(now=6.0, ruleset="drift", labels={"mode": "ffa"})) == []
    assert bench.run(d.node_matches(NODE, now=6.0)) == []
    with pytest.raises(UnknownSeat):
        bench.run(d.take(seat.token, M1, now=6.0))
    assert bench.run(d.receive(NODE, timeout=0.0)) == []


def test_an_expired_node_is_gone_even_before_anyone_calls_expire(bench: Bench) -> None:
    d = with_match(bench, node_ttl=6.0)
    assert bench.run(d.get_match(M1, now=7.0)) is None
    assert bench.run(d.heartbeat(NODE, URL, 0, now=7.0)) is False  # back, empty: the shell adds its matches again
    assert bench.run(d.expire(now=7.0)) == Expired(nodes=(NODE,), matches=(M1,))
    bench.run(d.add_match(M1, NODE, "drift", {"mode": "ffa"}, 4, now=7.0))
    assert [m.match_id for m in bench.run(d.list_matches(now=8.0, ruleset="drift"))] == ["m1"]


def test_removing_a_node_removes_its_matches_at_once(bench: Bench) -> None:
    d = with_match(bench)
    bench.run(d.add_match(M3, NODE, "drift", {}, 4, now=0.0))
    bench.run(d.add_match(M2, NODE, "drift", {}, 4, now=0.0))
    assert bench.run(d.remove_node(NODE, now=1.0)) == (M1, M2, M3)
    assert bench.run(d.nodes(now=1.0)) == []
    assert bench.run(d.list_matches(now=1.0)) == []
    assert bench.run(d.remove_node(NODE, now=1.0)) == ()
    assert bench.run(d.expire(now=1.0)) == Expired()  # removed, not lapsed


def test_a_match_needs_a_live_node_and_a_new_id(bench: Bench) -> None:
    d = with_match(bench)
    with pytest.raises(UnknownNode, match="no live node 'elsewhere'"):
        bench.run(d.add_match(M2, NodeId("elsewhere"), "drift", {}, 4, now=0.0))
    with pytest.raises(DuplicateMatch):
        bench.run(d.add_match(M1, NODE, "drift", {}, 4, now=0.0))


# -- matches --------------------------------------------------------------------------------


def test_a_listed_match_says_where_to_connect_and_how_full_it_is(bench: Bench) -> None:
    d = with_match(bench, max_players=4, players=1)
    bench.run(d.reserve(M1, ttl=15.0, now=1.0))
    info = bench.run(d.get_match(M1, now=1.0))
    assert info is not None
    assert (info.url, info.players, info.reserved, info.free, info.created) == (f"{URL}/ws/m1", 1, 1, 2, 0.0)
    assert info.to_json() == {"match": "m1", "url": f"{URL}/ws/m1", "ruleset": "drift", "labels": {"mode": "ffa"},
                              "players": 1, "reserved": 1, "max_players": 4}


def test_player_counts_change_and_never_go_below_zero(bench: Bench) -> None:
    d = with_match(bench)
    assert bench.run(d.change_players(M1, 2, now=0.0)).players == 2
    assert bench.run(d.change_players(M1, -5, now=0.0)).players == 0
    with pytest.raises(UnknownMatch):
        bench.run(d.change_players(M2, 1, now=0.0))


def test_listing_filters_by_ruleset_and_every_label_oldest_first(bench: Bench) -> None:
    d = with_node(bench)
    for i, (ruleset, labels, created) in enumerate([
            ("drift", {"mode": "duel", "region": "eu"}, 10.0), ("drift", {"mode": "duel"}, 9.0),
            ("arena", {"mode": "duel", "region": "eu"}, 8.0), ("drift", {"region": "eu"}, 7.0),
            ("drift", {"region": "eu"}, 7.0)]):
        bench.run(d.add_match(MatchId(f"m{i}"), NODE, ruleset, labels, 4, now=created))

    def ids(**kw: Any) -> list[str]:
        return [m.match_id for m in bench.run(d.list_matches(now=20.0, **kw))]

    assert ids() == ["m3", "m4", "m2", "m1", "m0"]  # equal times: by id
    assert ids(ruleset="drift") == ["m3", "m4", "m1", "m0"]
    assert ids(ruleset="drift", labels={"region": "eu"}) == ["m3", "m4", "m0"]
    assert ids(labels={"mode": "duel", "region": "eu"}) == ["m2", "m0"]
    assert ids(labels={"mode": "duel"}) == ["m2", "m1", "m0"]
    assert ids(ruleset="chess") == []
    assert ids(ruleset="drift", labels={"region": "us"}) == []
    assert ids(ruleset="drift", limit=1) == ["m3"]
    assert ids(limit=2) == ["m3", "m4"]
    assert ids(limit=0) == []


def test_names_with_separators_in_them_are_kept_apart(bench: Bench) -> None:
    d = with_node(bench)
    bench.run(d.add_match(M1, NODE, "a:b", {"c": "d"}, 4, now=0.0))
    bench.run(d.add_match(M2, NODE, "a", {"b:c": "d"}, 4, now=0.0))
    bench.run(d.add_match(M3, NODE, "a", {"b": "c=d", "é": "☃"}, 4, now=0.0))
    assert [m.match_id for m in bench.run(d.list_matches(now=0.0, ruleset="a:b"))] == ["m1"]
    assert [m.match_id for m in bench.run(d.list_matches(now=0.0, ruleset="a", labels={"b:c": "d"}))] == ["m2"]
    assert [m.match_id for m in bench.run(d.list_matches(now=0.0, labels={"b": "c=d"}))] == ["m3"]
    assert bench.run(d.list_matches(now=0.0, labels={"b": "c"})) == []
    assert bench.run(d.get_match(M3, now=0.0)).labels == {"b": "c=d", "é": "☃"}  # type: ignore[union-attr]


def test_listing_by_a_rare_label_reads_only_the_matches_that_have_it(bench: Bench) -> None:
    d = with_node(bench)
    for i in range(300):
        bench.run(d.add_match(MatchId(f"common{i}"), NODE, "drift", {"region": "eu"}, 4, now=0.0))
    for i in range(3):
        bench.run(d.add_match(MatchId(f"rare{i}"), NODE, "drift", {"region": "eu", "mode": "duel"}, 4, now=0.0))
    before = d.examined  # type: ignore[attr-defined]
    found = bench.run(d.list_matches(now=0.0, ruleset="drift", labels={"region": "eu", "mode": "duel"}))
    assert sorted(m.match_id for m in found) == ["rare0", "rare1", "rare2"]
    assert d.examined - before == 3  # type: ignore[attr-defined]


def test_listing_open_matches_leaves_out_full_ones(bench: Bench) -> None:
    d = with_match(bench, max_players=1)
    bench.run(d.add_match(M2, NODE, "drift", {}, 1, now=0.0))
    bench.run(d.add_match(M3, NODE, "drift", {}, 1, now=0.0, players=1))
    bench.run(d.reserve(M1, ttl=15.0, now=0.0))
    assert [m.match_id for m in bench.run(d.list_matches(now=0.0, open_only=True))] == ["m2"]
    assert [m.match_id for m in bench.run(d.list_matches(now=0.0, ruleset="drift", open_only=True))] == ["m2"]


def test_removing_a_match_unlists_it_and_voids_its_seats(bench: Bench) -> None:
    d = with_match(bench)
    seat = bench.run(d.reserve(M1, ttl=15.0, now=0.0))
    bench.run(d.remove_match(M1, now=1.0))
    bench.run(d.remove_match(M1, now=1.0))  # twice is fine
    assert bench.run(d.list_matches(now=1.0, labels={"mode": "ffa"})) == []
    assert bench.run(d.node_matches(NODE, now=1.0)) == []
    with pytest.raises(UnknownSeat):
        bench.run(d.take(seat.token, M1, now=1.0))
    assert bench.run(d.expire(now=20.0)) == Expired()  # its seat went with it, it did not lapse


# -- seats ----------------------------------------------------------------------------------


def test_a_reserved_seat_is_taken_once_and_becomes_a_player(bench: Bench) -> None:
    d = with_match(bench)
    seat = bench.run(d.reserve(M1, ttl=15.0, now=2.0))
    assert (seat.match_id, seat.url, seat.expires) == (M1, f"{URL}/ws/m1", 17.0)
    assert 1 <= len(seat.token) <= 64
    assert seat.to_json(now=7.0) == {"match": "m1", "url": f"{URL}/ws/m1", "seat": seat.token, "expires_in": 10.0}
    info = bench.run(d.take(seat.token, M1, now=16.9))
    assert (info.players, info.reserved) == (1, 0)
    with pytest.raises(SeatTaken) as taken:
        bench.run(d.take(seat.token, M1, now=17.0))
    assert taken.value.code == CLOSE_SEAT_TAKEN
    assert bench.run(d.expire(now=17.0)) == Expired()  # taken, not lapsed


def test_a_match_is_never_over_filled_by_reservations(bench: Bench) -> None:
    d = with_match(bench, max_players=3, players=1)
    tokens = {bench.run(d.reserve(M1, ttl=15.0, now=0.0)).token for _ in range(2)}
    assert len(tokens) == 2
    with pytest.raises(MatchFull, match="match 'm1' is full \\(3 players\\)"):
        bench.run(d.reserve(M1, ttl=15.0, now=0.0))
    with pytest.raises(UnknownMatch):
        bench.run(d.reserve(M2, ttl=15.0, now=0.0))


def test_a_seat_not_taken_in_time_expires_and_frees_its_place(bench: Bench) -> None:
    d = with_match(bench, max_players=1)
    first = bench.run(d.reserve(M1, ttl=15.0, now=0.0))
    with pytest.raises(MatchFull):
        bench.run(d.reserve(M1, ttl=15.0, now=14.9))
    assert bench.run(d.expire(now=15.0)) == Expired(seats=1)
    assert bench.run(d.reserve(M1, ttl=15.0, now=15.0)).token != first.token
    with pytest.raises(SeatExpired, match="seat expired \\(seats are held 15 s\\): matchmake again") as late:
        bench.run(d.take(first.token, M1, now=15.0))
    assert late.value.code == CLOSE_SEAT_EXPIRED


def test_a_seat_lapses_even_before_anyone_calls_expire(bench: Bench) -> None:
    d = with_match(bench, max_players=1)
    bench.run(d.reserve(M1, ttl=5.0, now=0.0))
    assert bench.run(d.get_match(M1, now=5.0)).reserved == 0  # type: ignore[union-attr]
    assert bench.run(d.expire(now=6.0)) == Expired(seats=1)


def test_a_used_or_lapsed_token_is_recognised_for_the_tombstone_time_then_unknown(bench: Bench) -> None:
    d = with_match(bench, tombstone_s=60.0)
    t1 = bench.run(d.reserve(M1, ttl=15.0, now=0.0)).token
    t2 = bench.run(d.reserve(M1, ttl=15.0, now=0.0)).token
    bench.run(d.take(t1, M1, now=1.0))
    with pytest.raises(SeatTaken):
        bench.run(d.take(t1, M1, now=60.9))
    with pytest.raises(SeatExpired):
        bench.run(d.take(t2, M1, now=74.9))
    with pytest.raises(UnknownSeat):
        bench.run(d.take(t1, M1, now=61.0))
    with pytest.raises(UnknownSeat):
        bench.run(d.take(t2, M1, now=75.0))


def test_each_bad_seat_has_its_own_error_and_close_code(bench: Bench) -> None:
    d = with_match(bench)
    bench.run(d.add_match(M2, NODE, "drift", {}, 4, now=0.0))
    seat = bench.run(d.reserve(M1, ttl=15.0, now=0.0))
    with pytest.raises(UnknownSeat) as unknown:
        bench.run(d.take("never-issued", M1, now=1.0))
    with pytest.raises(SeatForAnotherMatch) as other:
        bench.run(d.take(seat.token, M2, now=1.0))
    assert (unknown.value.code, other.value.code) == (CLOSE_SEAT_UNKNOWN, CLOSE_SEAT_OTHER_MATCH)
    assert str(other.value) == "this seat is in match 'm1', not 'm2': connect to its URL (close code 4403)"
    assert bench.run(d.take(seat.token, M1, now=1.0)).players == 1  # asking the wrong match did not spend it


def test_a_seat_must_be_held_for_some_time(bench: Bench) -> None:
    d = with_match(bench)
    with pytest.raises(ValueError):
        bench.run(d.reserve(M1, ttl=0.0, now=0.0))


def test_concurrent_reservations_never_over_fill_a_match(bench: Bench) -> None:
    d = with_match(bench, max_players=50)

    async def one() -> str:
        try:
            return (await d.reserve(M1, ttl=15.0, now=1.0)).token
        except MatchFull:
            return "full"

    async def race() -> list[str]:
        return await asyncio.gather(*(one() for _ in range(80)))

    results = bench.run(race())
    assert len(set(results) - {"full"}) == 50 and results.count("full") == 30
    assert bench.run(d.get_match(M1, now=1.0)).reserved == 50  # type: ignore[union-attr]


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

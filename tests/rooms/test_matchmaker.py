"""``Matchmaker``: requests to seats through a real in-memory directory, races included."""

from __future__ import annotations

import asyncio
import collections
import json
import random

import pytest

from server.rooms import (
    Lifecycle,
    MatchId,
    MatchmakeError,
    Matchmaker,
    MatchmakeRequest,
    MemoryDirectory,
    NodeId,
    RoomType,
    SeatExpired,
)
from server.rooms.requests import CREATE, JOIN
from tests.rooms.helpers import NODE, Networked, Shell, catalog

DRIFT = RoomType("drift", {"npcs": 10}, max_players=8, labels={"mode": "ffa"})


def setup(*nodes: tuple[str, int, bool], room: RoomType = DRIFT, networked: bool = False,
          seat_ttl: float = 15.0) -> tuple[Matchmaker, MemoryDirectory, Shell]:
    directory = MemoryDirectory(node_ttl=1e9)
    for node_id, load, accepting in nodes or ((NODE, 0, True),):
        asyncio.run(directory.heartbeat(NodeId(node_id), f"ws://{node_id}", load, now=0.0, accepting=accepting))
    shell = Shell()
    front = Networked(directory) if networked else directory
    return Matchmaker(front, catalog(room), shell.create_match, seat_ttl=seat_ttl), directory, shell  # type: ignore[arg-type]


def matchmake(mm: Matchmaker, body: dict, now: float = 0.0):
    return asyncio.run(mm.handle(json.dumps(body).encode(), now=now))


def add_match(directory: MemoryDirectory, match_id: str, players: int, max_players: int = 8, **labels: str) -> None:
    asyncio.run(directory.add_match(MatchId(match_id), NODE, "drift", {"mode": "ffa", **labels}, max_players,
                                    now=0.0, players=players))


# -- the modes ------------------------------------------------------------------------------


def test_join_or_create_creates_a_match_from_the_room_type_when_none_is_open() -> None:
    mm, directory, shell = setup()
    seat = matchmake(mm, {"ruleset": "drift"}, now=3.0)
    ((match_id, room, node),) = shell.created
    assert (seat.match_id, seat.url, seat.expires) == (match_id, f"ws://{NODE}/ws/{match_id}", 18.0)
    assert room == DRIFT and node.node_id == NODE
    info = asyncio.run(directory.get_match(match_id, now=3.0))
    assert (info.ruleset, dict(info.labels), info.max_players, info.reserved) == ("drift", {"mode": "ffa"}, 8, 1)


def test_join_or_create_joins_the_fullest_open_match_that_has_the_labels() -> None:
    mm, directory, shell = setup()
    add_match(directory, "half", 4)
    add_match(directory, "almost", 7)
    add_match(directory, "full", 8)
    add_match(directory, "elsewhere", 7, region="us")
    assert matchmake(mm, {"ruleset": "drift", "labels": {"mode": "ffa"}}).match_id == "almost"
    assert matchmake(mm, {"ruleset": "drift", "labels": {"region": "us"}}).match_id == "elsewhere"
    assert matchmake(mm, {"ruleset": "drift"}).match_id == "half"
    assert shell.created == []


def test_create_always_makes_a_new_match_with_the_requests_options_and_labels() -> None:
    mm, directory, shell = setup()
    add_match(directory, "open", 0)
    seat = matchmake(mm, {"ruleset": "drift", "mode": "create", "options": {"npcs": 3}, "labels": {"region": "eu"}})
    ((match_id, room, _),) = shell.created
    assert seat.match_id == match_id != "open"
    assert (dict(room.options), dict(room.labels)) == ({"npcs": 3}, {"mode": "ffa", "region": "eu"})
    info = asyncio.run(directory.get_match(match_id, now=0.0))
    assert dict(info.labels) == {"mode": "ffa", "region": "eu"}


def test_join_takes_a_seat_in_the_match_named() -> None:
    mm, directory, _ = setup()
    add_match(directory, "m7", 3)
    assert matchmake(mm, {"ruleset": "drift", "mode": "join", "match_id": "m7"}).match_id == "m7"


@pytest.mark.parametrize(("body", "status", "field", "reason"), [
    ({"ruleset": "drift", "mode": "join", "match_id": "full"}, 409, "match_id", "match 'full' is full (8 players)"),
    ({"ruleset": "drift", "mode": "join", "match_id": "nope"}, 404, "match_id", "no match 'nope'"),
    ({"ruleset": "arena", "mode": "join", "match_id": "full"}, 400, "ruleset",
     "unknown ruleset 'arena'; this server offers drift"),
    ({"ruleset": "drift", "mode": "join", "match_id": "full", "labels": {"mode": "duel"}}, 409, "labels",
     "match 'full' does not have the labels {'mode': 'duel'}"),
    ({"ruleset": "drift", "mode": "join"}, 404, None, "no open match of ruleset 'drift'"),
    ({"ruleset": "drift", "mode": "join", "labels": {"region": "eu"}}, 404, None,
     "no open match of ruleset 'drift' with labels {'region': 'eu'}"),
    ({"ruleset": "drift", "options": {"pellets": 3}}, 400, "options.pellets",
     "unknown option 'pellets' of ruleset 'drift'; known: npcs, size, view, view_cell, view_h, view_spectators"),
    ({"ruleset": "drift", "options": {"npcs": 10**7}}, 400, "options.npcs", "option npcs=10000000 is outside [0, 1000000]"),
])
def test_a_request_without_a_seat_to_give_gets_a_status_and_a_reason(body, status, field, reason) -> None:
    mm, directory, shell = setup()
    add_match(directory, "full", 8)
    with pytest.raises(MatchmakeError) as info:
        matchmake(mm, body)
    assert (info.value.status, info.value.field, info.value.reason) == (status, field, reason)
    assert shell.created == []


def test_a_match_of_another_ruleset_cannot_be_joined_by_id() -> None:
    mm, directory, _ = setup()
    asyncio.run(directory.add_match(MatchId("a1"), NODE, "arena", {}, 8, now=0.0))
    with pytest.raises(MatchmakeError, match="match 'a1' plays ruleset 'arena'"):
        matchmake(mm, {"ruleset": "drift", "mode": "join", "match_id": "a1"})


# -- where new matches go --------------------------------------------------------------------


def test_a_new_match_goes_to_the_least_loaded_node_that_accepts_matches() -> None:
    mm, _, shell = setup(("busy", 50, True), ("idle", 3, True), ("draining", 0, False), ("quiet", 3, True))
    seat = matchmake(mm, {"ruleset": "drift", "mode": "create"})
    assert shell.created[0][2].node_id == "idle"  # ties go to the lower id
    assert seat.url.startswith("ws://idle/ws/")


def test_with_no_node_accepting_matches_a_creation_is_a_503() -> None:
    mm, _, _ = setup(("draining", 0, False))
    with pytest.raises(MatchmakeError) as info:
        matchmake(mm, {"ruleset": "drift"})
    assert (info.value.status, info.value.reason) == (503, "no live node accepts new matches")


def test_a_new_match_is_listed_under_its_node_with_the_room_type_it_was_made_from() -> None:
    mm, directory, shell = setup(("a", 0, True), ("b", 5, True))
    seat = matchmake(mm, {"ruleset": "drift", "mode": "create", "options": {"npcs": 3}, "labels": {"region": "eu"}})
    (info,) = asyncio.run(directory.node_matches(NodeId("a"), now=0.0))
    assert info.match_id == seat.match_id and RoomType.from_json(info.room) == shell.created[0][1]
    assert dict(info.room["options"]) == {"npcs": 3} and dict(info.room["labels"]) == {"mode": "ffa", "region": "eu"}


def test_the_matches_of_a_burst_spread_over_nodes_alike_counting_the_seats_placed_since_their_heartbeat() -> None:
    mm, directory, shell = setup(("a", 0, True), ("b", 0, True), ("c", 20, True))
    for _ in range(4):
        matchmake(mm, {"ruleset": "drift", "mode": "create"})
    assert [node.node_id for _, _, node in shell.created] == ["a", "b", "a", "b"]
    # A heartbeat reports the node's own count: what was placed on it before is in it (or gone).
    asyncio.run(directory.heartbeat(NodeId("a"), "ws://a", 1, now=0.5))
    matchmake(mm, {"ruleset": "drift", "mode": "create"})
    assert shell.created[-1][2].node_id == "a" and mm.load(asyncio.run(directory.nodes(now=0.5))[0]) == 9


def test_a_request_kept_to_one_node_joins_and_creates_only_there() -> None:
    mm, directory, shell = setup((NODE, 0, True), ("b", 9, True), ("off", 0, False))
    add_match(directory, "almost", 7)  # another node's: not for these requests
    here = asyncio.run(mm.matchmake(MatchmakeRequest("drift"), now=0.0, node=NodeId("b")))
    assert shell.created[-1][2].node_id == "b" and here.url.startswith("ws://b/")
    again = asyncio.run(mm.matchmake(MatchmakeRequest("drift"), now=0.0, node=NodeId("b")))
    assert again.match_id == here.match_id and len(shell.created) == 1
    with pytest.raises(MatchmakeError) as off:
        asyncio.run(mm.matchmake(MatchmakeRequest("drift"), now=0.0, node=NodeId("off")))
    assert (off.value.status, off.value.reason) == (503, "node 'off' accepts no new match")


# -- races ---------------------------------------------------------------------------------------


async def race(mm: Matchmaker, body: dict, n: int) -> list[object]:
    data = json.dumps(body).encode()
    return await asyncio.gather(*(mm.handle(data, now=1.0) for _ in range(n)), return_exceptions=True)


def test_200_concurrent_join_or_creates_for_the_last_seats_never_over_fill_and_the_losers_get_new_matches() -> None:
    mm, directory, shell = setup(networked=True)
    add_match(directory, "last", 5)
    results = asyncio.run(race(mm, {"ruleset": "drift"}, 200))

    assert all(not isinstance(r, BaseException) for r in results), [r for r in results if isinstance(r, BaseException)][:3]
    per_match = collections.Counter(r.match_id for r in results)
    assert per_match["last"] == 3
    assert sum(per_match.values()) == 200
    assert len({r.token for r in results}) == 200
    for info in asyncio.run(directory.list_matches(now=1.0, limit=1000)):
        assert info.players + info.reserved <= info.max_players
        assert info.reserved == per_match[info.match_id]
    # The losers shared their new matches instead of making one each: 197 seats, 8 a match.
    assert len(shell.created) == -(-197 // 8)


def test_200_concurrent_joins_of_a_match_with_3_free_seats_give_3_seats_and_197_conflicts() -> None:
    mm, directory, shell = setup(networked=True)
    add_match(directory, "last", 5)
    results = asyncio.run(race(mm, {"ruleset": "drift", "mode": "join", "match_id": "last"}, 200))

    seats = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(seats) == 3 and {s.match_id for s in seats} == {"last"}
    assert len(errors) == 197 and all(isinstance(e, MatchmakeError) and e.status == 409 for e in errors)
    info = asyncio.run(directory.get_match(MatchId("last"), now=1.0))
    assert (info.players, info.reserved) == (5, 3)
    assert shell.created == []


@pytest.mark.parametrize("seed", range(5))
def test_requests_arriving_while_a_match_is_made_leave_its_claimed_seats_to_the_requests_that_wait_for_it(seed: int) -> None:
    # Over HTTP, requests keep arriving while a match is made: none takes a seat that a waiting request
    # claimed, so nobody loses a round, and the matches fill one after the other.
    mm, directory, shell = setup(networked=True)
    rng = random.Random(seed)
    data = json.dumps({"ruleset": "drift"}).encode()

    async def arriving(delay: int) -> object:
        for _ in range(delay):
            await asyncio.sleep(0)
        return await mm.handle(data, now=1.0)

    async def main() -> list[object]:
        return await asyncio.gather(*(arriving(rng.randrange(60)) for _ in range(200)), return_exceptions=True)

    results = asyncio.run(main())
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert len(shell.created) == 200 // 8
    for info in asyncio.run(directory.list_matches(now=1.0, limit=1000)):
        assert info.reserved == info.max_players
    assert mm._held == {}


def test_concurrent_creates_each_get_a_match_never_over_filled() -> None:
    mm, directory, shell = setup(networked=True, room=RoomType("drift", max_players=2))
    results = asyncio.run(race(mm, {"ruleset": "drift", "mode": "create"}, 20))
    assert all(not isinstance(r, BaseException) for r in results)
    assert len(shell.created) == 10
    for info in asyncio.run(directory.list_matches(now=1.0)):
        assert info.reserved == 2 == info.max_players


def test_when_the_shell_fails_to_create_a_match_every_request_waiting_for_it_gets_the_error() -> None:
    mm, _, _ = setup(networked=True)

    async def broken(room, node):
        await asyncio.sleep(0)
        raise MatchmakeError(503, "out of memory")

    mm.create_match = broken
    results = asyncio.run(race(mm, {"ruleset": "drift"}, 5))
    assert [(type(r), str(r)) for r in results] == [(MatchmakeError, "out of memory (HTTP 503)")] * 5
    assert mm._creating == {}


# -- a match's life, on a fake clock ---------------------------------------------------------


def test_a_match_made_for_a_seat_never_taken_frees_the_seat_then_is_disposed_after_the_grace_period() -> None:
    mm, directory, shell = setup(seat_ttl=15.0)
    life = Lifecycle(grace_s=30.0)
    seat = matchmake(mm, {"ruleset": "drift", "mode": "create"}, now=0.0)
    life.created(seat.match_id, now=0.0)

    assert asyncio.run(directory.expire(now=15.0)).seats == 1
    assert asyncio.run(directory.get_match(seat.match_id, now=15.0)).reserved == 0
    with pytest.raises(SeatExpired):
        asyncio.run(directory.take(seat.token, seat.match_id, now=15.0))
    assert life.poll(now=29.9) == []
    assert life.poll(now=30.0) == [seat.match_id]
    asyncio.run(directory.remove_match(seat.match_id, now=30.0))
    assert asyncio.run(directory.list_matches(now=30.0)) == []


def test_a_match_whose_player_comes_back_within_the_grace_period_is_kept() -> None:
    mm, directory, _ = setup()
    life = Lifecycle(grace_s=30.0)
    first = matchmake(mm, {"ruleset": "drift"}, now=0.0)
    life.created(first.match_id, now=0.0)
    info = asyncio.run(directory.take(first.token, first.match_id, now=2.0))
    life.occupancy(first.match_id, info.players, now=2.0)

    info = asyncio.run(directory.change_players(first.match_id, -1, now=10.0))  # the player leaves
    life.occupancy(first.match_id, info.players, now=10.0)
    again = matchmake(mm, {"ruleset": "drift"}, now=35.0)  # and matchmakes back into the same match
    assert again.match_id == first.match_id
    info = asyncio.run(directory.take(again.token, again.match_id, now=36.0))
    life.occupancy(again.match_id, info.players, now=36.0)
    assert life.poll(now=1000.0) == []


def test_seats_are_held_for_the_configured_time() -> None:
    mm, _, _ = setup(seat_ttl=5.0)
    seat = matchmake(mm, {"ruleset": "drift"}, now=100.0)
    assert seat.expires == 105.0
    assert seat.to_json(now=101.0)["expires_in"] == 4.0
    with pytest.raises(ValueError):
        Matchmaker(MemoryDirectory(), catalog(), Shell().create_match, seat_ttl=0.0)


def test_the_listing_answers_a_query_string() -> None:
    mm, directory, _ = setup()
    add_match(directory, "a", 8)
    add_match(directory, "b", 2, region="eu")
    found = asyncio.run(mm.listing("ruleset=drift&label=region:eu", now=0.0))
    assert [m.match_id for m in found] == ["b"]
    assert [m.match_id for m in asyncio.run(mm.listing("open=1", now=0.0))] == ["b"]


def test_a_parsed_request_can_be_matchmade_directly() -> None:
    mm, _, shell = setup()
    seat = asyncio.run(mm.matchmake(MatchmakeRequest("drift", CREATE), now=0.0))
    assert seat.match_id == shell.created[0][0]
    with pytest.raises(MatchmakeError):
        asyncio.run(mm.matchmake(MatchmakeRequest("drift", JOIN, match_id="zzz"), now=0.0))


def test_concurrent_requests_of_one_matchmaker_do_not_race_each_other_for_the_same_free_seats() -> None:
    mm, directory, _ = setup(networked=True)
    add_match(directory, "open", 5)  # 3 seats free
    results = asyncio.run(race(mm, {"ruleset": "drift", "mode": "join"}, 10))
    seats = [r for r in results if not isinstance(r, BaseException)]
    assert len(seats) == 3 and all(isinstance(r, MatchmakeError) and r.status == 404 for r in results if r not in seats)
    assert mm.directory.calls == 10 + 3  # a listing each, and a reservation for each free seat only

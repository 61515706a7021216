"""``MemoryDirectory``: nodes by heartbeat, matches by index, seats reserved atomically and taken once."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.rooms import (
    DuplicateMatch,
    Expired,
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
from tests.rooms.helpers import NODE, URL, drive

M1, M2 = MatchId("m1"), MatchId("m2")


def directory(**kw) -> MemoryDirectory:
    """A directory with one node (which lives as long as a test, unless ``node_ttl`` says otherwise)."""
    kw.setdefault("node_ttl", 1e9)
    tokens = (f"t{i}" for i in itertools.count(1))
    d = MemoryDirectory(token_factory=lambda: next(tokens), **kw)
    drive(d.heartbeat(NODE, URL, 0, now=0.0))
    return d


def with_match(max_players: int = 4, players: int = 0, **kw) -> MemoryDirectory:
    d = directory(**kw)
    drive(d.add_match(M1, NODE, "drift", {"mode": "ffa"}, max_players, now=0.0, players=players))
    return d


# -- nodes ----------------------------------------------------------------------------------


def test_a_first_heartbeat_registers_a_node_and_later_ones_keep_it_alive() -> None:
    d = MemoryDirectory(node_ttl=6.0)
    assert drive(d.heartbeat(NODE, URL, 3, now=0.0)) is False
    assert drive(d.heartbeat(NODE, URL, 5, now=5.0)) is True
    (node,) = drive(d.nodes(now=10.0))
    assert (node.node_id, node.url, node.load, node.accepting, node.expires) == (NODE, URL, 5, True, 11.0)


def test_a_node_that_misses_its_heartbeat_disappears_with_its_matches() -> None:
    d = with_match(node_ttl=6.0)
    drive(d.heartbeat(NodeId("node-b"), "ws://b", 0, now=4.0))
    seat = drive(d.reserve(M1, ttl=15.0, now=1.0))
    assert drive(d.expire(now=5.9)) == Expired()
    assert drive(d.expire(now=6.0)) == Expired(seats=0, nodes=(NODE,), matches=(M1,))
    assert [n.node_id for n in drive(d.nodes(now=6.0))] == ["node-b"]
    assert drive(d.get_match(M1, now=6.0)) is None
    assert drive(d.list_matches(now=6.0)) == []
    with pytest.raises(UnknownSeat):
        drive(d.take(seat.token, M1, now=6.0))


def test_an_expired_node_is_gone_even_before_anyone_calls_expire() -> None:
    d = with_match(node_ttl=6.0)
    assert drive(d.get_match(M1, now=7.0)) is None
    assert drive(d.heartbeat(NODE, URL, 0, now=7.0)) is False  # back, empty: the shell adds its matches again
    assert drive(d.expire(now=7.0)) == Expired(nodes=(NODE,), matches=(M1,))


def test_removing_a_node_removes_its_matches_at_once() -> None:
    d = with_match()
    assert drive(d.remove_node(NODE, now=1.0)) == (M1,)
    assert drive(d.nodes(now=1.0)) == []
    assert drive(d.remove_node(NODE, now=1.0)) == ()


def test_a_match_needs_a_live_node_and_a_new_id() -> None:
    d = with_match()
    with pytest.raises(UnknownNode, match="no live node 'elsewhere'"):
        drive(d.add_match(M2, NodeId("elsewhere"), "drift", {}, 4, now=0.0))
    with pytest.raises(DuplicateMatch):
        drive(d.add_match(M1, NODE, "drift", {}, 4, now=0.0))


# -- matches ------------------------------------------------------------------------------


def test_a_listed_match_says_where_to_connect_and_how_full_it_is() -> None:
    d = with_match(max_players=4, players=1)
    drive(d.reserve(M1, ttl=15.0, now=1.0))
    info = drive(d.get_match(M1, now=1.0))
    assert info is not None
    assert (info.url, info.players, info.reserved, info.free) == (f"{URL}/ws/m1", 1, 1, 2)
    assert info.to_json() == {"match": "m1", "url": f"{URL}/ws/m1", "ruleset": "drift", "labels": {"mode": "ffa"},
                              "players": 1, "reserved": 1, "max_players": 4}


def test_player_counts_change_and_never_go_below_zero() -> None:
    d = with_match()
    assert drive(d.change_players(M1, 2, now=0.0)).players == 2
    assert drive(d.change_players(M1, -5, now=0.0)).players == 0
    with pytest.raises(UnknownMatch):
        drive(d.change_players(M2, 1, now=0.0))


def test_listing_filters_by_ruleset_and_every_label_oldest_first() -> None:
    d = directory()
    for i, (ruleset, labels) in enumerate([("drift", {"mode": "duel", "region": "eu"}), ("drift", {"mode": "duel"}),
                                           ("arena", {"mode": "duel", "region": "eu"}), ("drift", {"region": "eu"})]):
        drive(d.add_match(MatchId(f"m{i}"), NODE, ruleset, labels, 4, now=float(10 - i)))

    def ids(**kw) -> list[str]:
        return [m.match_id for m in drive(d.list_matches(now=20.0, **kw))]

    assert ids() == ["m3", "m2", "m1", "m0"]
    assert ids(ruleset="drift") == ["m3", "m1", "m0"]
    assert ids(ruleset="drift", labels={"region": "eu"}) == ["m3", "m0"]
    assert ids(labels={"mode": "duel", "region": "eu"}) == ["m2", "m0"]
    assert ids(ruleset="chess") == []
    assert ids(ruleset="drift", limit=1) == ["m3"]


def test_listing_by_a_rare_label_reads_only_the_matches_that_have_it() -> None:
    d = directory()
    for i in range(5000):
        drive(d.add_match(MatchId(f"common{i}"), NODE, "drift", {"region": "eu"}, 4, now=0.0))
    for i in range(3):
        drive(d.add_match(MatchId(f"rare{i}"), NODE, "drift", {"region": "eu", "mode": "duel"}, 4, now=0.0))
    before = d.examined
    found = drive(d.list_matches(now=0.0, ruleset="drift", labels={"region": "eu", "mode": "duel"}))
    assert sorted(m.match_id for m in found) == ["rare0", "rare1", "rare2"]
    assert d.examined - before == 3


def test_listing_open_matches_leaves_out_full_ones() -> None:
    d = with_match(max_players=1)
    drive(d.add_match(M2, NODE, "drift", {}, 1, now=0.0))
    drive(d.reserve(M1, ttl=15.0, now=0.0))
    assert [m.match_id for m in drive(d.list_matches(now=0.0, open_only=True))] == ["m2"]


def test_removing_a_match_unlists_it_and_voids_its_seats() -> None:
    d = with_match()
    seat = drive(d.reserve(M1, ttl=15.0, now=0.0))
    drive(d.remove_match(M1, now=1.0))
    drive(d.remove_match(M1, now=1.0))  # twice is fine
    assert drive(d.list_matches(now=1.0, labels={"mode": "ffa"})) == []
    with pytest.raises(UnknownSeat):
        drive(d.take(seat.token, M1, now=1.0))


# -- seats ----------------------------------------------------------------------------------


def test_a_reserved_seat_is_taken_once_and_becomes_a_player() -> None:
    d = with_match()
    seat = drive(d.reserve(M1, ttl=15.0, now=2.0))
    assert (seat.match_id, seat.url, seat.token, seat.expires) == (M1, f"{URL}/ws/m1", "t1", 17.0)
    assert seat.to_json(now=7.0) == {"match": "m1", "url": f"{URL}/ws/m1", "seat": "t1", "expires_in": 10.0}
    info = drive(d.take("t1", M1, now=16.9))
    assert (info.players, info.reserved) == (1, 0)
    with pytest.raises(SeatTaken) as taken:
        drive(d.take("t1", M1, now=17.0))
    assert taken.value.code == CLOSE_SEAT_TAKEN


def test_a_match_is_never_over_filled_by_reservations() -> None:
    d = with_match(max_players=3, players=1)
    drive(d.reserve(M1, ttl=15.0, now=0.0))
    drive(d.reserve(M1, ttl=15.0, now=0.0))
    with pytest.raises(MatchFull, match="match 'm1' is full \\(3 players\\)"):
        drive(d.reserve(M1, ttl=15.0, now=0.0))
    with pytest.raises(UnknownMatch):
        drive(d.reserve(M2, ttl=15.0, now=0.0))


def test_a_seat_not_taken_in_time_expires_and_frees_its_place() -> None:
    d = with_match(max_players=1)
    drive(d.reserve(M1, ttl=15.0, now=0.0))
    with pytest.raises(MatchFull):
        drive(d.reserve(M1, ttl=15.0, now=14.9))
    assert drive(d.expire(now=15.0)) == Expired(seats=1)
    assert drive(d.reserve(M1, ttl=15.0, now=15.0)).token == "t2"
    with pytest.raises(SeatExpired, match="seat expired \\(seats are held 15 s\\): matchmake again") as late:
        drive(d.take("t1", M1, now=15.0))
    assert late.value.code == CLOSE_SEAT_EXPIRED


def test_a_used_or_lapsed_token_is_recognised_for_the_tombstone_time_then_unknown() -> None:
    d = with_match(tombstone_s=60.0)
    drive(d.reserve(M1, ttl=15.0, now=0.0))
    drive(d.reserve(M1, ttl=15.0, now=0.0))
    drive(d.take("t1", M1, now=1.0))
    with pytest.raises(SeatTaken):
        drive(d.take("t1", M1, now=60.9))
    with pytest.raises(SeatExpired):
        drive(d.take("t2", M1, now=74.9))
    with pytest.raises(UnknownSeat):
        drive(d.take("t1", M1, now=61.0))
    with pytest.raises(UnknownSeat):
        drive(d.take("t2", M1, now=75.0))


def test_each_bad_seat_has_its_own_error_and_close_code() -> None:
    d = with_match()
    drive(d.add_match(M2, NODE, "drift", {}, 4, now=0.0))
    seat = drive(d.reserve(M1, ttl=15.0, now=0.0))
    with pytest.raises(UnknownSeat) as unknown:
        drive(d.take("never-issued", M1, now=1.0))
    with pytest.raises(SeatForAnotherMatch) as other:
        drive(d.take(seat.token, M2, now=1.0))
    assert (unknown.value.code, other.value.code) == (CLOSE_SEAT_UNKNOWN, CLOSE_SEAT_OTHER_MATCH)
    assert str(other.value) == "this seat is in match 'm1', not 'm2': connect to its URL (close code 4403)"
    assert drive(d.take(seat.token, M1, now=1.0)).players == 1  # asking the wrong match did not spend it


def test_tokens_are_unique_even_if_the_factory_repeats_itself() -> None:
    tokens = iter(["a", "a", "b"])
    d = MemoryDirectory(token_factory=lambda: next(tokens))
    drive(d.heartbeat(NODE, URL, 0, now=0.0))
    drive(d.add_match(M1, NODE, "drift", {}, 4, now=0.0))
    assert [drive(d.reserve(M1, ttl=1.0, now=0.0)).token for _ in range(2)] == ["a", "b"]


def test_a_seat_must_be_held_for_some_time() -> None:
    d = with_match()
    with pytest.raises(ValueError):
        drive(d.reserve(M1, ttl=0.0, now=0.0))


# -- any interleaving ---------------------------------------------------------------------

MAX = 3
ops = st.lists(st.one_of(
    st.tuples(st.just("reserve"), st.sampled_from([M1, M2]), st.floats(0.5, 20.0)),
    st.tuples(st.just("take"), st.integers(0, 30), st.sampled_from([M1, M2])),
    st.tuples(st.just("leave"), st.sampled_from([M1, M2])),
    st.tuples(st.just("wait"), st.floats(0.0, 10.0)),
    st.tuples(st.just("expire"),),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_any_interleaving_of_reserve_take_leave_and_expire_keeps_players_plus_reservations_within_the_maximum(ops) -> None:
    d = MemoryDirectory(node_ttl=1e9, tombstone_s=1000.0, token_factory=iter(f"t{i}" for i in itertools.count()).__next__)
    now = 0.0
    drive(d.heartbeat(NODE, URL, 0, now=now))
    for m in (M1, M2):
        drive(d.add_match(m, NODE, "drift", {}, MAX, now=now))
    # The model: each token's match, expiry and whether it was taken; players per match.
    seats: dict[str, tuple[MatchId, float, bool]] = {}
    players = {M1: 0, M2: 0}
    for op in ops:
        live = {m: sum(1 for sm, exp, took in seats.values() if sm == m and not took and exp > now) for m in players}
        if op[0] == "reserve":
            _, m, ttl = op
            if players[m] + live[m] < MAX:
                seat = drive(d.reserve(m, ttl=ttl, now=now))
                seats[seat.token] = (m, now + ttl, False)
            else:
                with pytest.raises(MatchFull):
                    drive(d.reserve(m, ttl=ttl, now=now))
        elif op[0] == "take":
            _, i, m = op
            token = f"t{i}"
            if token not in seats:
                with pytest.raises(UnknownSeat):
                    drive(d.take(token, m, now=now))
            else:
                sm, exp, took = seats[token]
                expected = (SeatForAnotherMatch if sm != m else SeatTaken if took else SeatExpired if exp <= now
                            else None)
                if expected is None:
                    drive(d.take(token, m, now=now))
                    seats[token] = (sm, exp, True)
                    players[m] += 1
                else:
                    with pytest.raises(expected):
                        drive(d.take(token, m, now=now))
        elif op[0] == "leave":
            players[op[1]] = max(0, players[op[1]] - 1)
            drive(d.change_players(op[1], -1, now=now))
        elif op[0] == "wait":
            now += op[1]
        else:
            drive(d.expire(now=now))
        for m in players:
            info = drive(d.get_match(m, now=now))
            live_now = sum(1 for sm, exp, took in seats.values() if sm == m and not took and exp > now)
            assert (info.players, info.reserved) == (players[m], live_now)
            assert info.players + info.reserved <= MAX

"""``MemoryDirectory`` beyond the contract every directory keeps (``test_directory_contract.py``): calls that never
suspend, the token factory, and any interleaving of seat operations against a model."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.rooms import (
    Expired,
    MatchFull,
    MatchId,
    MemoryDirectory,
    NodeId,
    SeatExpired,
    SeatForAnotherMatch,
    SeatTaken,
    UnknownSeat,
)
from tests.rooms.helpers import NODE, URL, drive

M1, M2 = MatchId("m1"), MatchId("m2")


# -- what only the in-memory directory does (the rules of every directory: test_directory_contract.py) --


def test_no_call_suspends_so_each_runs_whole_without_a_lock() -> None:
    d = MemoryDirectory(node_ttl=6.0, token_factory=iter(["t1"]).__next__)
    assert drive(d.heartbeat(NODE, URL, 0, now=0.0)) is False
    drive(d.heartbeat(NodeId("b"), "ws://b", 0, now=0.0))
    drive(d.add_match(M1, NODE, "drift", {"mode": "ffa"}, 4, now=0.0))
    assert drive(d.reserve(M1, ttl=15.0, now=0.0)).token == "t1"
    assert drive(d.take("t1", M1, now=1.0)).players == 1
    assert drive(d.change_players(M1, 1, now=1.0)).players == 2
    assert [m.match_id for m in drive(d.list_matches(now=1.0, ruleset="drift", open_only=True))] == ["m1"]
    assert drive(d.move_match(M1, NodeId("b"), now=1.0)).node_id == "b"
    assert [m.match_id for m in drive(d.node_matches(NodeId("b"), now=1.0))] == ["m1"]
    drive(d.post(NodeId("b"), b"x", now=1.0))
    assert drive(d.receive(NodeId("b"), timeout=5.0)) == [b"x"]  # waiting already: no wait
    assert drive(d.receive(NodeId("b"), timeout=0.0)) == []
    assert drive(d.expire(now=6.0)) == Expired(nodes=(NODE, NodeId("b")), matches=(M1,))
    assert drive(d.remove_node(NODE, now=6.0)) == ()


def test_tokens_are_unique_even_if_the_factory_repeats_itself() -> None:
    tokens = iter(["a", "a", "b"])
    d = MemoryDirectory(token_factory=lambda: next(tokens))
    drive(d.heartbeat(NODE, URL, 0, now=0.0))
    drive(d.add_match(M1, NODE, "drift", {}, 4, now=0.0))
    assert [drive(d.reserve(M1, ttl=1.0, now=0.0)).token for _ in range(2)] == ["a", "b"]


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

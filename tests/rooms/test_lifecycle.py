"""``Lifecycle``: empty matches are disposed after the grace period, on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.rooms import Lifecycle, MatchId

M1, M2 = MatchId("m1"), MatchId("m2")


def test_a_new_match_nobody_joins_is_disposed_after_the_grace_period() -> None:
    life = Lifecycle(grace_s=30.0)
    life.created(M1, now=100.0)
    assert life.next_due() == 130.0
    assert life.poll(now=129.9) == []
    assert life.poll(now=130.0) == [M1]
    assert life.poll(now=200.0) == []
    assert life.next_due() is None


def test_an_occupied_match_is_never_due() -> None:
    life = Lifecycle(grace_s=30.0)
    life.created(M1, now=0.0)
    life.occupancy(M1, 2, now=1.0)
    assert life.next_due() is None
    assert life.poll(now=1e9) == []


def test_a_match_that_empties_is_disposed_a_grace_period_after_it_emptied() -> None:
    life = Lifecycle(grace_s=30.0)
    life.created(M1, now=0.0)
    life.occupancy(M1, 1, now=5.0)
    life.occupancy(M1, 0, now=50.0)
    life.occupancy(M1, 0, now=60.0)  # still empty: the deadline stands
    assert life.poll(now=79.9) == []
    assert life.poll(now=80.0) == [M1]


def test_a_match_that_gets_a_player_back_within_the_grace_period_is_kept() -> None:
    life = Lifecycle(grace_s=30.0)
    life.created(M1, now=0.0)
    life.occupancy(M1, 1, now=10.0)
    life.occupancy(M1, 0, now=20.0)
    life.occupancy(M1, 1, now=49.0)
    assert life.poll(now=1000.0) == []
    life.occupancy(M1, 0, now=1000.0)
    assert life.next_due() == 1030.0
    assert life.poll(now=1030.0) == [M1]


def test_matches_come_due_in_deadline_order_and_forgotten_ones_never() -> None:
    life = Lifecycle(grace_s=10.0)
    life.created(M2, now=0.0)
    life.created(M1, now=1.0)
    life.created(MatchId("m3"), now=2.0)
    life.forget(MatchId("m3"))
    assert life.poll(now=20.0) == [M2, M1]
    life.occupancy(MatchId("unknown"), 0, now=20.0)
    assert life.next_due() is None


def test_a_negative_grace_period_is_refused() -> None:
    with pytest.raises(ValueError):
        Lifecycle(grace_s=-1.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["m1", "m2"]), st.integers(0, 2), st.floats(0.0, 20.0)), max_size=40))
def test_a_match_is_disposed_exactly_when_it_has_been_empty_for_the_whole_grace_period(changes) -> None:
    life = Lifecycle(grace_s=30.0)
    now, empty_since = 0.0, {}
    for m in ("m1", "m2"):
        life.created(MatchId(m), now=now)
        empty_since[m] = now
    for m, players, wait in changes:
        if m not in empty_since and m not in life.deadlines:
            continue
        life.occupancy(MatchId(m), players, now=now)
        if players:
            empty_since.pop(m, None)
        else:
            empty_since.setdefault(m, now)
        now += wait
        due = life.poll(now=now)
        assert sorted(due) == sorted(k for k, since in empty_since.items() if now - since >= 30.0)
        for k in due:
            del empty_since[k]

"""The scale benchmark's search for the most players a configuration holds (pure; the runs are real processes)."""

from __future__ import annotations

from tools.scalebench import Ladder, Search, split


def probes(search: Search | Ladder, capacity: int) -> list[int]:
    """The players tried against a configuration that holds up to ``capacity``."""
    tried = []
    while (p := search.next()) is not None:
        tried.append(p)
        search.record(p, p <= capacity)
    return tried


def test_the_search_grows_while_it_holds_then_halves_the_gap_to_the_resolution() -> None:
    s = Search(start=600, step=400, resolution=100, most=4000)
    assert probes(s, 1750) == [600, 1000, 1400, 1800, 1600, 1700]
    assert (s.held, s.failed) == (1700, 1800)


def test_the_search_goes_down_when_the_first_try_fails_and_stops_at_most() -> None:
    s = Search(start=600, step=400, resolution=100, most=4000)
    assert probes(s, 250) == [600, 300, 100, 200]
    assert s.held == 200
    s = Search(start=600, step=400, resolution=100, most=1000)
    assert probes(s, 5000) == [600, 1000]
    assert (s.held, s.failed) == (1000, None)


def test_players_split_over_workers_as_evenly_as_they_can() -> None:
    assert split(301, 2) == [151, 150]
    assert split(2, 1) == [2]


def test_a_ladder_tries_each_p_in_turn_until_two_in_a_row_fail() -> None:
    assert probes(Ladder([100, 200, 300, 400, 500]), 250) == [100, 200, 300, 400]
    ladder = Ladder([100, 200, 300])
    assert probes(ladder, 1000) == [100, 200, 300] and ladder.held == 300

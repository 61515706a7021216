"""The broad phase agrees with brute force (which only the tests may use)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from game import spatial
from game.errors import GameError
from game.spatial import Grid, nearest, nearest_of_pairs, pairs_within


@pytest.fixture(autouse=True, scope="module")
def walk_cells() -> Iterator[None]:
    """These tests are about the cell walk: no query here is small enough to check pairs directly
    (``test_checking_pairs_directly_gives_what_the_walk_gives`` compares the two)."""
    saved, spatial.DIRECT_PAIRS = spatial.DIRECT_PAIRS, -1
    yield
    spatial.DIRECT_PAIRS = saved


def both_ways(grid: Grid, qx, qy, radius):
    """``grid.pairs`` by the cell walk, then by checking every pair directly."""
    saved = spatial.DIRECT_PAIRS
    try:
        spatial.DIRECT_PAIRS = -1
        walked = grid.pairs(qx, qy, radius)
        spatial.DIRECT_PAIRS = 1 << 40
        direct = grid.pairs(qx, qy, radius)
    finally:
        spatial.DIRECT_PAIRS = saved
    return walked, direct


def brute_pairs(ax, ay, bx, by, radius):
    ax, ay, bx, by = (np.asarray(v, dtype=np.int64) for v in (ax, ay, bx, by))
    d2 = (ax[:, None] - bx[None, :]) ** 2 + (ay[:, None] - by[None, :]) ** 2
    ia, ib = np.nonzero(d2 <= radius * radius)
    return set(zip(ia.tolist(), ib.tolist()))


def brute_nearest(ax, ay, bx, by, radius):
    out = []
    for x, y in zip(ax, ay):
        best = (-1, -1)
        for j, (u, v) in enumerate(zip(bx, by)):
            d2 = (int(x) - int(u)) ** 2 + (int(y) - int(v)) ** 2
            if d2 <= radius * radius and (best[0] < 0 or d2 < best[1]):
                best = (j, d2)
        out.append(best)
    return out


coords = st.lists(st.tuples(st.integers(-500, 500), st.integers(-500, 500)), max_size=60)


def split(points):
    a = np.array(points, dtype=np.int64).reshape(-1, 2)
    return a[:, 0], a[:, 1]


@settings(max_examples=200, deadline=None)
@given(coords, coords, st.integers(0, 300), st.integers(1, 400))
def test_pairs_within_matches_brute_force_for_any_radius_and_cell(a, b, radius, cell):
    ax, ay = split(a)
    bx, by = split(b)
    ia, ib = pairs_within(ax, ay, bx, by, radius, cell)
    got = list(zip(ia.tolist(), ib.tolist()))
    assert len(got) == len(set(got))
    assert set(got) == brute_pairs(ax, ay, bx, by, radius)
    assert np.all(np.diff(ia) >= 0)


@settings(max_examples=100, deadline=None)
@given(coords, coords, st.integers(0, 300))
def test_sparse_grid_finds_the_same_pairs_as_dense(a, b, radius):
    # Spread the b points over a huge area so the grid falls back to searchsorted keys.
    ax, ay = split(a)
    bx, by = split(b)
    bx = bx * 997
    by = by * 991
    grid = Grid.build(bx, by, 7)
    ia, ib, d2 = grid.pairs(ax, ay, radius)
    assert set(zip(ia.tolist(), ib.tolist())) == brute_pairs(ax, ay, bx, by, radius)
    assert np.array_equal(d2, (ax[ia] - bx[ib]) ** 2 + (ay[ia] - by[ib]) ** 2)


def test_sparse_grid_is_used_for_few_points_over_a_huge_area():
    grid = Grid.build([0, 10**8], [0, 10**8], 1)
    assert grid.starts is None and grid.keys is not None
    ia, ib = pairs_within([5, 10**8 + 1], [0, 10**8], [0, 10**8], [0, 10**8], 5, 1)
    assert set(zip(ia.tolist(), ib.tolist())) == {(0, 0), (1, 1)}


@settings(max_examples=150, deadline=None)
@given(coords, coords, st.integers(0, 300))
def test_nearest_matches_brute_force_with_ties_to_the_lower_index(a, b, radius):
    ax, ay = split(a)
    bx, by = split(b)
    ib, d2 = nearest(ax, ay, bx, by, radius)
    want = brute_nearest(ax, ay, bx, by, radius)
    assert list(zip(ib.tolist(), d2.tolist())) == want


def test_empty_inputs_give_no_pairs():
    empty = np.zeros(0, dtype=np.int64)
    for args in ((empty, empty, [1], [1]), ([1], [1], empty, empty), (empty, empty, empty, empty)):
        ia, ib = pairs_within(*args, 10)
        assert ia.size == 0 and ib.size == 0
    ib, d2 = nearest([1, 2], [1, 2], empty, empty, 10)
    assert ib.tolist() == [-1, -1] and d2.tolist() == [-1, -1]


def test_a_grid_refuses_a_bad_cell_or_mismatched_coordinates():
    with pytest.raises(GameError):
        Grid.build([1], [1], 0)
    with pytest.raises(GameError):
        Grid.build([1, 2], [1], 5)


def test_points_on_the_radius_count_and_points_just_beyond_do_not():
    ia, ib = pairs_within([0, 0], [0, 0], [3, 4], [4, 4], 5)
    assert list(zip(ia.tolist(), ib.tolist())) == [(0, 0), (1, 0)]


def test_nearest_of_pairs_picks_the_closest_then_the_lower_index():
    ia = np.array([0, 0, 0, 2], dtype=np.intp)
    ib = np.array([5, 3, 4, 1], dtype=np.intp)
    d2 = np.array([9, 4, 4, 0], dtype=np.int64)
    best, dist = nearest_of_pairs(3, ia, ib, d2)
    assert best.tolist() == [3, -1, 1]
    assert dist.tolist() == [4, -1, 0]


def test_a_large_grid_query_runs_without_all_pairs():
    n = 100_000
    rng = np.random.default_rng(1)
    x = rng.integers(0, 24000, n)
    y = rng.integers(0, 24000, n)
    grid = Grid.build(x, y, 256)
    assert grid.starts is not None
    q = rng.integers(0, 24000, (2, 2000))
    iq, ip, _ = grid.pairs(q[0], q[1], 200)
    sample = np.flatnonzero(iq == iq[0]) if iq.size else np.zeros(0, np.intp)
    if sample.size:
        want = brute_pairs(q[0][:1], q[1][:1], x, y, 200)
        assert {(0, int(j)) for j in ip[sample]} == want


@settings(max_examples=300, deadline=None)
@given(coords, coords, st.integers(0, 300), st.integers(1, 400), st.booleans())
def test_checking_pairs_directly_gives_what_the_walk_gives_in_the_same_order(a, b, radius, cell, spread):
    ax, ay = split(a)
    bx, by = split(b)
    if spread:  # a sparse grid (searchsorted keys) too
        bx, by = bx * 997, by * 991
    walked, direct = both_ways(Grid.build(bx, by, cell), ax, ay, radius)
    for w, d in zip(walked, direct):
        assert w.dtype == d.dtype
        assert w.tolist() == d.tolist()


def test_queries_with_few_combinations_take_the_direct_way_and_many_the_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    grid = Grid.build(np.arange(100), np.zeros(100, np.int64), 10)
    direct = []
    real = Grid._pairs_direct
    monkeypatch.setattr(Grid, "_pairs_direct", lambda self, *args: direct.append(len(args[0])) or real(self, *args))
    monkeypatch.setattr(spatial, "DIRECT_PAIRS", 4096)
    grid.pairs(np.arange(40), np.zeros(40, np.int64), 5)  # 4,000 combinations: direct
    grid.pairs(np.arange(41), np.zeros(41, np.int64), 5)  # 4,100: the walk
    assert direct == [40]

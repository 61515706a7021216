"""Integer math: exact square roots and the 256-step direction table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from game.fixed import ANGLE_STEPS, DIR_ONE, DIRECTIONS, angle_of, direction, isqrt, length

INT64_MAX = 2**63 - 1


def expected_isqrt(values) -> list[int]:
    return [math.isqrt(int(v)) for v in values]


# -- isqrt ---------------------------------------------------------------------


def test_isqrt_of_small_values_is_exact():
    v = np.arange(0, 100_000, dtype=np.int64)
    assert isqrt(v).tolist() == expected_isqrt(v)


def test_isqrt_is_exact_at_perfect_squares_and_their_neighbours():
    roots = np.random.default_rng(1).integers(1, 3_037_000_499, 3000, dtype=np.int64)
    roots = np.concatenate([roots, [1, 2, 3, 46340, 46341, 65535, 65536, 2**31 - 1, 2**31, 3_037_000_499]])
    squares = roots * roots
    v = np.concatenate([squares - 1, squares, squares + 1])
    v = v[(v >= 0)]
    got = isqrt(v)
    assert got.tolist() == expected_isqrt(v)
    assert np.array_equal(isqrt(squares), roots)


def test_isqrt_is_exact_for_random_int64_values_of_every_size():
    gen = np.random.default_rng(2)
    bits = gen.integers(0, 63, 20000)
    v = (gen.integers(0, INT64_MAX, 20000, dtype=np.int64, endpoint=True) >> (62 - bits)).astype(np.int64)
    assert isqrt(v).tolist() == expected_isqrt(v)


def test_isqrt_is_exact_for_huge_values_up_to_the_int64_maximum():
    v = np.array(
        [0, 1, 2**62 - 1, 2**62, 2**62 + 1, 2**62 + 2**31, INT64_MAX - 1, INT64_MAX, 3_037_000_499**2, 3_037_000_499**2 - 1],
        dtype=np.int64,
    )
    assert isqrt(v).tolist() == expected_isqrt(v)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, INT64_MAX), max_size=40))
def test_isqrt_matches_math_isqrt_for_any_int64(values):
    v = np.array(values, dtype=np.int64)
    got = isqrt(v)
    assert got.dtype == np.int64
    assert got.tolist() == expected_isqrt(values)


def test_isqrt_keeps_the_shape_and_handles_empty_input():
    assert isqrt(np.zeros(0, dtype=np.int64)).shape == (0,)
    assert isqrt(np.array([[4, 9], [16, 26]], dtype=np.int64)).tolist() == [[2, 3], [4, 5]]


def test_isqrt_does_not_modify_its_input():
    v = np.array([10, 100, 1000], dtype=np.int64)
    isqrt(v)
    assert v.tolist() == [10, 100, 1000]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-(2**31) + 1, 2**31 - 1), st.integers(-(2**31) + 1, 2**31 - 1)), max_size=30))
def test_length_is_the_floor_of_the_euclidean_norm(pairs):
    # Up to +-(2**31 - 1) per component the sum of squares fits in int64.
    dx = np.array([p[0] for p in pairs], dtype=np.int64)
    dy = np.array([p[1] for p in pairs], dtype=np.int64)
    assert length(dx, dy).tolist() == [math.isqrt(x * x + y * y) for x, y in pairs]


def test_length_of_a_345_triangle_is_5_in_every_quadrant():
    dx = np.array([3, -3, 3, -3, 0], dtype=np.int32)
    dy = np.array([4, 4, -4, -4, 0], dtype=np.int32)
    assert length(dx, dy).tolist() == [5, 5, 5, 5, 0]


# -- the direction table ---------------------------------------------------------


def test_directions_has_256_int32_entries():
    assert ANGLE_STEPS == 256
    assert DIR_ONE == 4096
    assert DIRECTIONS.shape == (256, 2)
    assert DIRECTIONS.dtype == np.int32


def test_every_direction_is_a_unit_vector_within_one_step_of_4096():
    lengths = np.hypot(DIRECTIONS[:, 0].astype(float), DIRECTIONS[:, 1].astype(float))
    assert np.all(np.abs(lengths - DIR_ONE) <= 1), lengths


def test_directions_are_round_of_4096_sin_and_cos_within_one():
    k = np.arange(256)
    cos = np.rint(DIR_ONE * np.cos(2 * np.pi * k / 256))
    sin = np.rint(DIR_ONE * np.sin(2 * np.pi * k / 256))
    assert np.all(np.abs(DIRECTIONS[:, 0] - cos) <= 1)
    assert np.all(np.abs(DIRECTIONS[:, 1] - sin) <= 1)


def test_first_octant_sines_are_exactly_rounded():
    assert DIRECTIONS[:33, 1].tolist() == [round(4096 * math.sin(2 * math.pi * k / 256)) for k in range(33)]


@pytest.mark.parametrize("angle,vector", [(0, (4096, 0)), (64, (0, 4096)), (128, (-4096, 0)), (192, (0, -4096))])
def test_cardinal_angles_point_along_the_axes(angle, vector):
    assert tuple(DIRECTIONS[angle].tolist()) == vector


def test_angle_32_is_the_diagonal_with_equal_components():
    x, y = DIRECTIONS[32].tolist()
    assert x == y == 2896


def test_the_table_is_symmetric():
    a = np.arange(256)
    d = DIRECTIONS.astype(np.int64)
    x, y = d[:, 0], d[:, 1]
    # Half a turn negates.
    assert np.array_equal(d[(a + 128) % 256], -d)
    # A quarter turn rotates (x, y) -> (-y, x).
    assert np.array_equal(d[(a + 64) % 256], np.stack([-y, x], axis=1))
    # Negating the angle mirrors in the x axis.
    assert np.array_equal(d[(256 - a) % 256], np.stack([x, -y], axis=1))
    # Reflecting in the diagonal swaps components.
    assert np.array_equal(d[(64 - a) % 256], np.stack([y, x], axis=1))


def test_directions_turn_counter_clockwise_by_a_constant_small_step():
    d = DIRECTIONS.astype(np.int64)
    nxt = np.roll(d, -1, axis=0)
    cross = d[:, 0] * nxt[:, 1] - d[:, 1] * nxt[:, 0]
    assert np.all(cross > 0)
    assert len(np.unique(DIRECTIONS, axis=0)) == 256


def test_direction_looks_angles_up_modulo_256():
    got = direction(np.array([0, 64, 256, 257, -1, 511]))
    assert got.dtype == np.int32
    assert got.shape == (6, 2)
    assert np.array_equal(got, DIRECTIONS[[0, 64, 0, 1, 255, 255]])
    assert np.array_equal(direction(np.arange(256, dtype=np.uint8)), DIRECTIONS)


# -- angle_of ------------------------------------------------------------------


def test_angle_of_inverts_direction_for_every_angle():
    d = DIRECTIONS.astype(np.int64)
    got = angle_of(d[:, 0], d[:, 1])
    assert got.dtype == np.uint8
    assert got.tolist() == list(range(256))


def test_angle_of_ignores_the_length_of_the_vector():
    d = DIRECTIONS.astype(np.int64)
    assert angle_of(d[:, 0] * 1000, d[:, 1] * 1000).tolist() == list(range(256))


@pytest.mark.parametrize(
    "dx,dy,angle",
    [(1, 0, 0), (0, 1, 64), (-1, 0, 128), (0, -1, 192), (1, 1, 32), (-1, 1, 96), (-1, -1, 160), (1, -1, 224), (100, 0, 0)],
)
def test_angle_of_small_vectors_along_axes_and_diagonals(dx, dy, angle):
    assert angle_of(np.array([dx]), np.array([dy])).tolist() == [angle]


@settings(max_examples=200, deadline=None)
@given(st.integers(-10_000, 10_000), st.integers(-10_000, 10_000))
def test_angle_of_is_within_one_step_of_the_true_angle_of_any_vector(dx, dy):
    # Largest dot product, and the table's lengths vary by up to one unit in
    # 4096, so near the middle between two steps the longer entry may win.
    if dx == 0 and dy == 0:
        return
    a = int(angle_of(np.array([dx]), np.array([dy]))[0])
    true = math.atan2(dy, dx) / (2 * math.pi) * 256
    off = (a - true) % 256
    assert min(off, 256 - off) < 1

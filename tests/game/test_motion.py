"""The integer motion rule: ``pos += vel`` with one reflection off each wall."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from game.motion import extrapolate, step_axis, step_axis_in_place
from game.schema import INT_DTYPES, Axis


def reference_step(pos: int, vel: int, lo: int, hi: int) -> tuple[int, int]:
    """WORKLOAD.md, one element at a time."""
    p = pos + vel
    if p < lo:
        return 2 * lo - p, -vel
    if p > hi:
        return 2 * hi - p, -vel
    return p, vel


def arrays(pos, vel, pdtype="int32", vdtype="int32"):
    return np.array(pos, dtype=pdtype), np.array(vel, dtype=vdtype)


# -- step_axis -----------------------------------------------------------------


def test_step_axis_moves_by_the_velocity_inside_the_walls():
    pos, vel = arrays([0, 100, 3990, 2000], [5, -7, 10, 0])
    step_axis(pos, vel, 0, 4000)
    assert pos.tolist() == [5, 93, 4000, 2000]
    assert vel.tolist() == [5, -7, 10, 0]


def test_step_axis_reflects_past_the_low_wall():
    # x < 0 -> x = -x, vx = -vx
    pos, vel = arrays([3, 0, 1], [-5, -4, -1])
    step_axis(pos, vel, 0, 4000)
    assert pos.tolist() == [2, 4, 0]
    assert vel.tolist() == [5, 4, -1]


def test_step_axis_reflects_past_the_high_wall():
    # x > 4000 -> x = 8000 - x, vx = -vx
    pos, vel = arrays([3998, 4000, 3999], [5, 4, 1])
    step_axis(pos, vel, 0, 4000)
    assert pos.tolist() == [3997, 3996, 4000]
    assert vel.tolist() == [-5, -4, 1]


def test_step_axis_does_not_reflect_on_landing_exactly_on_a_wall():
    pos, vel = arrays([5, 3995], [-5, 5])
    step_axis(pos, vel, 0, 4000)
    assert pos.tolist() == [0, 4000]
    assert vel.tolist() == [-5, 5]


def test_step_axis_reflects_off_walls_that_are_not_at_zero():
    pos, vel = arrays([102, 198, 150], [-5, 5, 3])
    step_axis(pos, vel, 100, 200)
    assert pos.tolist() == [103, 197, 153]
    assert vel.tolist() == [5, -5, 3]


def test_step_axis_works_in_place_and_returns_nothing():
    pos, vel = arrays([1, 2], [3, -3])
    p_id, v_id = id(pos), id(vel)
    assert step_axis(pos, vel, 0, 10) is None
    assert (id(pos), id(vel)) == (p_id, v_id)
    assert pos.tolist() == [4, 1]


def test_step_axis_writes_through_a_view():
    pos = np.array([[1, 2], [3, 4]], dtype=np.int32)
    vel = np.array([[1, 1], [-5, 1]], dtype=np.int32)
    step_axis(pos[:, 0], vel[:, 0], 0, 10)
    assert pos.tolist() == [[2, 2], [2, 4]]
    assert vel.tolist() == [[1, 1], [5, 1]]


def signed_range(dtype: str) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


SIGNED = [d for d in INT_DTYPES if d.startswith("int")]


@st.composite
def motion_case(draw):
    pdtype = draw(st.sampled_from(INT_DTYPES))
    vdtype = draw(st.sampled_from(SIGNED))
    pmin, pmax = signed_range(pdtype)
    pmin, pmax = max(pmin, -(2**20)), min(pmax, 2**20)
    lo = draw(st.integers(pmin, pmax - 1))
    hi = draw(st.integers(lo + 1, pmax))
    vmax = min(signed_range(vdtype)[1], hi - lo)
    n = draw(st.integers(0, 20))
    pos = draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
    vel = draw(st.lists(st.integers(-vmax, vmax), min_size=n, max_size=n))
    return pdtype, vdtype, lo, hi, pos, vel


@settings(max_examples=400, deadline=None)
@given(motion_case())
def test_step_axis_matches_the_reference_rule_for_any_int_dtypes(case):
    pdtype, vdtype, lo, hi, pos, vel = case
    p, v = arrays(pos, vel, pdtype, vdtype)
    step_axis(p, v, lo, hi)
    assert p.dtype == np.dtype(pdtype)
    assert v.dtype == np.dtype(vdtype)
    expected = [reference_step(a, b, lo, hi) for a, b in zip(pos, vel)]
    assert p.tolist() == [e[0] for e in expected]
    assert v.tolist() == [e[1] for e in expected]
    assert all(lo <= x <= hi for x in p.tolist())


@pytest.mark.parametrize("pdtype", INT_DTYPES)
@pytest.mark.parametrize("vdtype", SIGNED)
def test_step_axis_keeps_both_dtypes(pdtype, vdtype):
    p, v = arrays([1, 100], [-3, 3], pdtype, vdtype)
    step_axis(p, v, 0, 100)
    assert (p.dtype, v.dtype) == (np.dtype(pdtype), np.dtype(vdtype))
    assert p.tolist() == [2, 97]
    assert v.tolist() == [3, -3]


def test_step_axis_wraps_results_to_the_column_dtype_without_overflowing_in_between():
    # 32000 + 768 overflows int16, but the rule is computed wide.
    p, v = arrays([32000, -32000], [768, -768], "int16", "int16")
    step_axis(p, v, -32767, 32767)
    assert p.tolist() == [32766, -32766]
    assert v.tolist() == [-768, 768]


def test_step_axis_on_empty_arrays_is_a_no_op():
    p, v = arrays([], [])
    step_axis(p, v, 0, 10)
    assert p.size == v.size == 0


# -- extrapolate ---------------------------------------------------------------

MOTION = (Axis("x", "vx", 0, 4000), Axis("y", "vy", -50, 50))


def sample_columns():
    return {
        "x": np.array([0, 3990, 2000, 4000], dtype=np.int16),
        "y": np.array([49, -50, 0, 10], dtype=np.int32),
        "vx": np.array([-3, 7, 32, -32], dtype=np.int8),
        "vy": np.array([2, -9, 0, 30], dtype=np.int8),
        "hp": np.array([1, 2, 3, 4], dtype=np.uint8),
    }


def stepped_by_hand(columns, steps):
    cols = {k: v.copy() for k, v in columns.items()}
    for _ in range(steps):
        for axis in MOTION:
            step_axis(cols[axis.pos], cols[axis.vel], axis.lo, axis.hi)
    return cols


@pytest.mark.parametrize("steps", [1, 2, 7, 100, 1000])
def test_extrapolate_equals_that_many_single_steps(steps):
    cols = sample_columns()
    got = extrapolate(MOTION, cols, steps)
    want = stepped_by_hand(cols, steps)
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == want[name].dtype
        assert got[name].tolist() == want[name].tolist(), name


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4000), st.integers(-50, 50), st.integers(-127, 127), st.integers(-100, 100)), max_size=12),
    st.integers(0, 60),
)
def test_extrapolate_equals_single_steps_for_any_state(rows, steps):
    cols = {
        "x": np.array([r[0] for r in rows], dtype=np.int32),
        "y": np.array([r[1] for r in rows], dtype=np.int32),
        "vx": np.array([r[2] for r in rows], dtype=np.int32),
        "vy": np.array([r[3] for r in rows], dtype=np.int32),
    }
    got = extrapolate(MOTION, cols, steps)
    want = stepped_by_hand(cols, steps)
    for name in want:
        assert got[name].tolist() == want[name].tolist()


def test_extrapolate_leaves_the_input_arrays_unchanged():
    cols = sample_columns()
    before = {k: v.copy() for k, v in cols.items()}
    out = extrapolate(MOTION, cols, 50)
    for name in cols:
        assert np.array_equal(cols[name], before[name]), name
    for axis in MOTION:
        assert not np.shares_memory(out[axis.pos], cols[axis.pos])
        assert not np.shares_memory(out[axis.vel], cols[axis.vel])


def test_extrapolate_passes_columns_without_motion_through_as_they_are():
    cols = sample_columns()
    out = extrapolate(MOTION, cols, 3)
    assert out["hp"] is cols["hp"]
    assert out is not cols


@pytest.mark.parametrize("steps", [0, -1])
def test_extrapolate_by_no_steps_gives_the_columns_back(steps):
    cols = sample_columns()
    out = extrapolate(MOTION, cols, steps)
    assert out is not cols
    assert all(out[k] is cols[k] for k in cols)


def test_extrapolate_without_motion_axes_moves_nothing():
    cols = sample_columns()
    out = extrapolate((), cols, 10)
    assert all(out[k] is cols[k] for k in cols)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), vdtype=st.sampled_from(["int8", "int16", "int32"]))
def test_step_axis_in_place_gives_step_axis_integers_when_nothing_can_overflow(seed, vdtype):
    rng = np.random.default_rng(seed)
    pos = rng.integers(-50, 2050, 500).astype(np.int32)
    vel = rng.integers(-127, 128, 500).astype(vdtype)
    want_p, want_v = pos.copy(), vel.copy()
    step_axis(want_p, want_v, 0, 2000)
    step_axis_in_place(pos, vel, 0, 2000)
    assert np.array_equal(pos, want_p) and np.array_equal(vel, want_v)
    assert pos.dtype == np.int32 and vel.dtype == np.dtype(vdtype)

"""The integer motion rule shared by simulations and client extrapolation.

``pos += vel``, then reflect off ``lo``/``hi``: the rule of WORKLOAD.md. The
codec predicts entities with it between updates (a delta sends only what the
prediction got wrong), so it must give the same integers everywhere: exact
integer arithmetic, with the results wrapped to the column's dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from game.schema import Axis

_SMALL = 1 << 29


def _work_dtype(pos: npt.NDArray[Any], vel: npt.NDArray[Any], lo: int, hi: int) -> type[np.signedinteger[Any]]:
    """int32 when no intermediate can overflow it (the usual case, and faster), else int64."""
    if not (-_SMALL < lo and hi < _SMALL):
        return np.int64
    if (pos.dtype.itemsize <= 2 and vel.dtype.itemsize <= 2) or pos.size == 0:
        return np.int32
    if -_SMALL < int(pos.min()) and int(pos.max()) < _SMALL and -_SMALL < int(vel.min()) and int(vel.max()) < _SMALL:
        return np.int32
    return np.int64


def step_axis(pos: npt.NDArray[Any], vel: npt.NDArray[Any], lo: int, hi: int) -> None:
    """One tick of linear motion with reflection, in place (any int dtypes, (N,)).

    Exact integer arithmetic (int32 when that cannot overflow, else int64);
    the results are wrapped to the arrays' dtypes.
    """
    work = _work_dtype(pos, vel, lo, hi)
    p = pos.astype(work)
    p += vel
    _reflect(p, vel, lo, hi, work)
    pos[...] = p.astype(pos.dtype, copy=False)


def step_axis_in_place(pos: npt.NDArray[Any], vel: npt.NDArray[Any], lo: int, hi: int) -> None:
    """``step_axis`` for arrays whose ``pos + vel`` cannot overflow their dtype (the caller knows its bounds):
    the same integers, computed in place with a third of the passes over the arrays."""
    np.add(pos, vel, out=pos, casting="unsafe")
    _reflect(pos, vel, lo, hi, np.int64)


def _reflect(p: npt.NDArray[Any], vel: npt.NDArray[Any], lo: int, hi: int, work: type[np.signedinteger[Any]]) -> None:
    """Positions ``p`` past a wall come back off it, and their velocities turn (wrapped to ``vel``'s dtype)."""
    if lo == 0 and p.dtype.kind == "i" and hi < 1 << (8 * p.itemsize - 1):
        past = p.view(p.dtype.str.replace("i", "u")) > hi  # p < 0 or p > hi, in one comparison
    else:
        past = (p < lo) | (p > hi)
    flip = np.flatnonzero(past)  # a few: the rest of the world is left alone
    if len(flip) == 0:
        return
    q = p[flip]
    low = q < lo
    high = q > hi
    q[low] = 2 * lo - q[low]
    q[high] = 2 * hi - q[high]
    p[flip] = q
    vel[flip] = (-vel[flip].astype(work)).astype(vel.dtype)


def extrapolate(motion: tuple[Axis, ...], columns: dict[str, npt.NDArray[Any]], steps: int) -> dict[str, npt.NDArray[Any]]:
    """``columns`` advanced ``steps`` ticks by the motion rule; new arrays for moved columns.

    Columns not named by an axis are returned as they are (not copied).
    """
    if steps <= 0 or not motion:
        return dict(columns)
    out = dict(columns)
    for axis in motion:
        pos = columns[axis.pos].copy()
        vel = columns[axis.vel].copy()
        info = np.iinfo(pos.dtype)
        if steps > 1 and info.min <= axis.lo and axis.hi <= info.max:
            # Whoever starts and ends inside the walls went straight (the path is a line): pos + steps * vel,
            # no store wrapped on the way; only the others need the steps one by one.
            start = pos.astype(np.int64)
            end = start + steps * vel.astype(np.int64)
            bent = np.flatnonzero((start < axis.lo) | (start > axis.hi) | (end < axis.lo) | (end > axis.hi))
            pos[...] = end.astype(pos.dtype, copy=False)
            if len(bent):
                p, v = columns[axis.pos][bent].copy(), vel[bent]
                for _ in range(steps):
                    step_axis(p, v, axis.lo, axis.hi)
                pos[bent], vel[bent] = p, v
        else:
            for _ in range(steps):
                step_axis(pos, vel, axis.lo, axis.hi)
        out[axis.pos] = pos
        out[axis.vel] = vel
    return out


def advance(cols: dict[str, npt.NDArray[Any]], slots: npt.NDArray[np.intp], motion: tuple[Axis, ...]) -> npt.NDArray[np.bool_]:
    """One tick of the motion rule for the entities in ``slots``, in place.

    Returns:
        bool (len(slots),): which of them reflected off a wall on some axis.
    """
    reflected = np.zeros(len(slots), dtype=np.bool_)
    for axis in motion:
        pos, vel = cols[axis.pos][slots], cols[axis.vel][slots]
        before = vel.copy()
        step_axis(pos, vel, axis.lo, axis.hi)
        reflected |= vel != before
        cols[axis.pos][slots], cols[axis.vel][slots] = pos, vel
    return reflected


def steer(cols: dict[str, npt.NDArray[Any]], slots: npt.NDArray[np.intp], dx: npt.NDArray[Any], dy: npt.NDArray[Any],
          speed: int, diagonal: int, lo: int, hi: int) -> None:
    """Move the entities in ``slots`` by an input direction, in place.

    ``dx, dy`` in {-1, 0, 1} (N,): ``speed`` along a straight input,
    ``diagonal`` per axis on a diagonal, clamped to [lo, hi] on both axes.
    ``vx, vy`` are set to the step actually taken, so the motion rule
    extrapolates a player who keeps going exactly.
    """
    step = np.where((dx != 0) & (dy != 0), diagonal, speed)
    for pos_name, vel_name, d in (("x", "vx", dx), ("y", "vy", dy)):
        old = cols[pos_name][slots].astype(np.int64)
        new = np.clip(old + d.astype(np.int64) * step, lo, hi)
        cols[vel_name][slots] = new - old
        cols[pos_name][slots] = new

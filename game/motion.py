"""The integer motion rule shared by simulations and client extrapolation.

``pos += vel``, then reflect off ``lo``/``hi``: the rule of WORKLOAD.md. The
codec predicts entities with it between updates (a delta sends only what the
prediction got wrong), so it must give the same integers everywhere: it is
computed in 32-bit (here int64, never overflowing) and the results are
wrapped to the column's dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from game.schema import Axis


def step_axis(pos: npt.NDArray[Any], vel: npt.NDArray[Any], lo: int, hi: int) -> None:
    """One tick of linear motion with reflection, in place (any int dtypes, (N,))."""
    p = pos.astype(np.int64) + vel
    v = vel.astype(np.int64)
    low = p < lo
    high = p > hi
    p = np.where(low, 2 * lo - p, np.where(high, 2 * hi - p, p))
    v = np.where(low | high, -v, v)
    pos[...] = p.astype(pos.dtype, copy=False)
    vel[...] = v.astype(vel.dtype, copy=False)


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
        for _ in range(steps):
            step_axis(pos, vel, axis.lo, axis.hi)
        out[axis.pos] = pos
        out[axis.vel] = vel
    return out

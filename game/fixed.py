"""Integer math for fixed-point state: direction tables and integer roots.

Nothing here uses floats: the 256-step direction table is built from a
fixed list of integer sines (round(4096 sin(2πk/256)) for the first octant,
written out literally) and exact integer square roots, so it is identical on
every platform and numpy version.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

#: Number of steps in a full turn for angle values (uint8 angles).
ANGLE_STEPS = 256
#: Fixed-point scale of the direction table: entries are unit vectors * 4096.
DIR_ONE = 4096


def isqrt(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Exact floor(sqrt(v)) for int64 v >= 0, vectorized (Newton on integers)."""
    v = np.asarray(values, dtype=np.int64)
    if v.size == 0:
        return v.copy()
    # Start above the root: 2**ceil(bits/2) is always >= sqrt(v).
    bitlen = np.zeros(v.shape, dtype=np.int64)
    t = v.copy()
    while np.any(t > 0):
        nz = t > 0
        bitlen[nz] += 1
        t >>= 1
    x = np.left_shift(np.int64(1), (bitlen + 1) // 2)
    x[v == 0] = 0
    while True:
        safe = np.where(x == 0, 1, x)
        y = np.where(x == 0, 0, (x + v // safe) // 2)
        if np.all(y >= x):
            return x
        x = np.minimum(x, y)


def _direction_table() -> npt.NDArray[np.int32]:
    # One octant of literal sines; cosines by exact integer square root; the
    # other seven octants by symmetry. No libm, so no platform differences.
    table = np.zeros((ANGLE_STEPS, 2), dtype=np.int32)
    sines = [
        0, 101, 201, 301, 401, 501, 601, 700, 799, 897, 995, 1092, 1189, 1285,
        1380, 1474, 1567, 1660, 1751, 1842, 1931, 2019, 2106, 2191, 2276, 2359,
        2440, 2520, 2598, 2675, 2751, 2824, 2896,
    ]
    for k, s in enumerate(sines):
        c = math.isqrt(DIR_ONE * DIR_ONE - s * s)
        pts = {
            k: (c, s), 64 - k: (s, c), 64 + k: (-s, c), 128 - k: (-c, s),
            128 + k: (-c, -s), 192 - k: (-s, -c), 192 + k: (s, -c), (256 - k) % 256: (c, -s),
        }
        for idx, (x, y) in pts.items():
            table[idx % ANGLE_STEPS] = (x, y)
    return table


#: int32 (256, 2): unit vector for each uint8 angle, scaled by DIR_ONE.
#: Angle 0 points along +x, 64 along +y (screen down), counter-clockwise in math terms.
DIRECTIONS = _direction_table()


def direction(angles: npt.NDArray[np.integer]) -> npt.NDArray[np.int32]:
    """int32 (N, 2) unit vectors (scaled by DIR_ONE) for uint8 angles (N,)."""
    out: npt.NDArray[np.int32] = DIRECTIONS[np.asarray(angles, dtype=np.int64) & (ANGLE_STEPS - 1)]
    return out


def length(dx: npt.NDArray[np.int64], dy: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """floor(sqrt(dx² + dy²)), exact integers, int64 (N,)."""
    return isqrt(dx.astype(np.int64) ** 2 + dy.astype(np.int64) ** 2)


def angle_of(dx: npt.NDArray[np.int64], dy: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """The uint8 angle whose table direction best matches (dx, dy) (largest dot product)."""
    d = np.stack([np.asarray(dx, dtype=np.int64), np.asarray(dy, dtype=np.int64)], axis=-1)
    dots = d @ DIRECTIONS.astype(np.int64).T
    out: npt.NDArray[np.uint8] = np.argmax(dots, axis=-1).astype(np.uint8)
    return out

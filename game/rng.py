"""Counter-based random numbers keyed by (match seed, tick, stream, key).

Each draw is a pure function of its key, so the same draw can be repeated in
any order, on any machine, with any numpy version: no generator state to carry
or to record in replays. The mixer is SplitMix64's finaliser.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix_int(x: int) -> int:
    x &= _MASK
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def bits(seed: int, tick: int, stream: int, keys: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """64 random bits per key: a pure function of (seed, tick, stream, key).

    Args:
        seed: the match seed.
        tick: the tick the draw belongs to.
        stream: a constant per use site, so two systems never share draws.
        keys: int array (N,), usually entity ids or indices.
    """
    base = _mix_int(_mix_int(seed) ^ _mix_int(tick * _GOLDEN + stream))
    k = np.asarray(keys).astype(np.uint64)
    with np.errstate(over="ignore"):  # wrapping is the point; 0-d inputs would warn
        return _mix(k * np.uint64(_GOLDEN) + np.uint64(base))


def integers(seed: int, tick: int, stream: int, keys: npt.ArrayLike, lo: int, hi: int) -> npt.NDArray[np.int64]:
    """Uniform integers in [lo, hi] (inclusive), one per key, int64 (N,)."""
    n = hi - lo + 1
    if n <= 0 or n > 1 << 32:
        raise ValueError(f"bad range [{lo}, {hi}]")
    if np.ndim(keys) == 1 and len(keys) == 0:  # type: ignore[arg-type]
        return np.zeros(0, dtype=np.int64)
    top = bits(seed, tick, stream, keys) >> np.uint64(32)
    return ((top * np.uint64(n)) >> np.uint64(32)).astype(np.int64) + lo


def chance(seed: int, tick: int, stream: int, keys: npt.ArrayLike, num: int, den: int) -> npt.NDArray[np.bool_]:
    """True with probability num/den, one per key, bool (N,)."""
    result: np.ndarray[Any, np.dtype[np.bool_]] = integers(seed, tick, stream, keys, 0, den - 1) < num
    return result

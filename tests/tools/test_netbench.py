"""tools.netbench: a bot's shots and hits counted from the replicated state it receives; its command line."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from game.arena.spec import BULLET, BULLET_SPEED, DRONE, MUZZLE, PLAYER, SIZE
from tools.netbench import ShotCounter, main

ME = 10


def state(*bodies: tuple[int, int, int, int, int]) -> tuple[np.ndarray[Any, Any], dict[str, np.ndarray[Any, Any]]]:
    """Ids and columns of entities ``(id, kind, x, y, vx)``, ascending ids."""
    rows = sorted(bodies)
    ids = np.array([r[0] for r in rows], np.uint32)
    cols = {"kind": np.array([r[1] for r in rows], np.uint8), "x": np.array([r[2] for r in rows], np.int16),
            "y": np.array([r[3] for r in rows], np.int16), "vx": np.array([r[4] for r in rows], np.int8),
            "vy": np.zeros(len(rows), np.int8)}
    return ids, cols


def test_a_bullet_appearing_at_our_muzzle_is_ours_and_one_vanishing_in_flight_is_a_hit() -> None:
    c = ShotCounter(ME)
    c.observe(1, *state((ME, PLAYER, 1000, 1000, 0), (20, DRONE, 3000, 1000, 0)))
    c.observe(2, *state((ME, PLAYER, 1000, 1000, 0), (20, DRONE, 3000, 1000, 0), (30, BULLET, 1000 + MUZZLE, 1000, BULLET_SPEED // 2),
                        (31, BULLET, 5000, 5000, 0)))  # someone else's, far away
    assert c.shots == 1
    c.observe(3, *state((ME, PLAYER, 1000, 1000, 0), (20, DRONE, 3000, 1000, 0), (30, BULLET, 1000 + MUZZLE + 56, 1000, 56)))
    c.observe(4, *state((ME, PLAYER, 1000, 1000, 0), (20, DRONE, 3000, 1000, 0)))  # gone mid-flight, mid-arena
    assert (c.shots, c.hits) == (1, 1)


def test_a_bullet_that_reaches_a_wall_is_no_hit() -> None:
    c = ShotCounter(ME)
    c.observe(1, *state((ME, PLAYER, SIZE - MUZZLE - 10, 1000, 0)))
    c.observe(2, *state((ME, PLAYER, SIZE - MUZZLE - 10, 1000, 0), (30, BULLET, SIZE - 10, 1000, 100)))
    c.observe(3, *state((ME, PLAYER, SIZE - MUZZLE - 10, 1000, 0)))
    assert (c.shots, c.hits) == (1, 0)


def test_a_jitter_above_the_delay_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--delay", "0.01", "--jitter", "0.02"])
    assert exit_.value.code == 2 and "--jitter must not exceed --delay" in capsys.readouterr().err

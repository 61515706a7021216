"""Bot brains: they pick sensible, valid, deterministic inputs."""

from __future__ import annotations

import numpy as np
import pytest

from game.arena import spec as S
from game.arena.ruleset import ArenaRuleset
from game.rules import InputBatch
from game.world import PlayerId
from tools.brains import AIM_JITTER, arena_brain, brain_for, drift_brain

U = S.SCALE
NAMES = [c.name for c in S.SPEC.replicated]


def mirror(*rows: tuple[int, ...]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A client's view from rows of (id, kind, x, y[, vx, vy, aim, hp]) in world units."""
    full = []
    for r in rows:
        eid, kind, x, y, *rest = r
        defaults = [0, 0, 0, -1]
        vx, vy, aim, hp = rest + defaults[len(rest) :]
        if hp < 0:
            hp = {S.PLAYER: S.PLAYER_HP, S.DRONE: S.DRONE_HP}.get(kind, 0)
        full.append((eid, kind, x * U, y * U, vx, vy, aim, hp, 0))
    a = np.array(sorted(full), dtype=np.int64)
    ids = a[:, 0].astype(np.uint32)
    dtypes = [c.wire for c in S.SPEC.replicated]
    state = {name: a[:, i + 1].astype(dt) for i, (name, dt) in enumerate(zip(NAMES, dtypes))}
    return state, ids


def angle_gap(a: int, b: int) -> int:
    d = (a - b) & 0xFF
    return min(d, 256 - d)


def test_the_arena_bot_aims_and_fires_at_a_drone_in_range():
    state, ids = mirror((1, S.PLAYER, 1000, 1000), (2, S.DRONE, 1300, 1000))
    _, _, aim, fire = arena_brain(state, ids, 1, 10, 7)
    assert fire == 1
    assert angle_gap(aim, 0) <= AIM_JITTER
    state, ids = mirror((1, S.PLAYER, 1000, 1000), (2, S.DRONE, 1000, 700))
    aim = arena_brain(state, ids, 1, 10, 7)[2]
    assert angle_gap(aim, 192) <= AIM_JITTER  # 192 = -y, up


def test_the_arena_bot_leads_a_moving_target():
    still, ids = mirror((1, S.PLAYER, 1000, 1000), (2, S.PLAYER, 1400, 1000, 0, 0))
    moving, _ = mirror((1, S.PLAYER, 1000, 1000), (2, S.PLAYER, 1400, 1000, 0, 40))
    assert ((arena_brain(moving, ids, 1, 3, 5)[2] - arena_brain(still, ids, 1, 3, 5)[2]) & 0xFF) in range(1, 64)


def test_the_arena_bot_holds_fire_with_nothing_in_range():
    state, ids = mirror((1, S.PLAYER, 1000, 1000), (2, S.DRONE, 2000, 2000), (3, S.PELLET, 1100, 1000))
    assert arena_brain(state, ids, 1, 10, 7)[3] == 0


def test_the_arena_bot_does_not_shoot_dead_players_or_pellets():
    state, ids = mirror((1, S.PLAYER, 1000, 1000), (2, S.PLAYER, 1100, 1000, 0, 0, 0, 0), (3, S.PELLET, 1050, 1000))
    assert arena_brain(state, ids, 1, 10, 7)[3] == 0


def test_the_arena_bot_goes_for_the_nearest_pellet():
    state, ids = mirror((1, S.PLAYER, 1000, 1000), (2, S.PELLET, 1000, 1300), (3, S.PELLET, 400, 1000))
    assert arena_brain(state, ids, 1, 10, 7)[:2] == [0, 1]


def test_the_arena_bot_runs_from_a_drone_that_gets_close():
    state, ids = mirror((1, S.PLAYER, 1000, 1000), (2, S.DRONE, 1060, 1060), (3, S.PELLET, 1200, 1200))
    assert arena_brain(state, ids, 1, 10, 7)[:2] == [-1, -1]


def test_the_arena_bot_chases_a_distant_player_but_keeps_its_distance():
    far, ids = mirror((1, S.PLAYER, 1000, 1000), (2, S.PLAYER, 1800, 1000))
    assert arena_brain(far, ids, 1, 10, 7)[:2] == [1, 0]


def test_a_dead_or_missing_bot_stands_still():
    state, ids = mirror((1, S.PLAYER, 1000, 1000, 0, 0, 77, 0), (2, S.DRONE, 1100, 1000))
    assert arena_brain(state, ids, 1, 10, 7) == [0, 0, 77, 0]
    assert arena_brain(state, ids, 99, 10, 7) == [0, 0, 0, 0]


def test_the_arena_bot_wanders_deterministically_within_the_input_ranges():
    state, ids = mirror((1, S.PLAYER, 1000, 1000))
    seen = set()
    for tick in range(0, 2000, 45):
        a = arena_brain(state, ids, 1, tick, 3)
        assert a == arena_brain(state, ids, 1, tick, 3)
        assert all(f.lo <= v <= f.hi for f, v in zip(S.SPEC.inputs, a))
        seen.add(tuple(a[:2]))
    assert len(seen) >= 4


def test_drift_brain_keeps_its_direction_and_turns_now_and_then():
    prev = [0, 0]
    moves = []
    for tick in range(1, 2001):
        nxt = drift_brain(prev, tick, 9, 4)
        assert nxt == drift_brain(prev, tick, 9, 4)
        assert len(nxt) == 2 and all(v in (-1, 0, 1) for v in nxt) and any(nxt)
        moves.append(nxt != prev)
        prev = nxt
    turns = sum(moves)
    assert 10 <= turns <= 200
    assert drift_brain([0, 0], 5, 9, 4) != [0, 0]


def test_drift_bots_differ_from_each_other():
    starts = {tuple(drift_brain([], 1, 9, i)) for i in range(40)}
    assert len(starts) >= 5


def test_brain_for_gives_one_calling_convention():
    state, ids = mirror((1, S.PLAYER, 1000, 1000), (2, S.DRONE, 1300, 1000))
    arena = brain_for("arena")(state=state, ids=ids, me=1, prev=[0, 0, 0, 0], tick=10, seed=7, bot_index=0)
    assert arena == arena_brain(state, ids, 1, 10, 7)
    drift = brain_for("drift")(state={}, ids=np.zeros(0, np.uint32), me=0, prev=[1, 0], tick=10, seed=7, bot_index=2)
    assert drift == drift_brain([1, 0], 10, 7, 2)
    with pytest.raises(ValueError):
        brain_for("chess")


def test_arena_bots_really_play():
    r = ArenaRuleset()
    w = r.create(4, {"npcs": 40, "pellets": 150})
    bots = list(range(8))
    me = {p: int(r.join(w, PlayerId(p))) for p in bots}
    kinds = set()
    for _ in range(450):
        ids, cols = w.replicated()
        state = dict(zip(NAMES, cols))
        rows = [arena_brain(state, ids, me[p], w.tick + 1, p) for p in bots]
        kinds |= {e.kind for e in r.step(w, InputBatch(np.array(bots, np.int32), np.array(rows, np.int16)))}
    assert {"pickup", "drone_kill"} <= kinds
    assert sum(r.scores(w).values()) >= 8 * 10

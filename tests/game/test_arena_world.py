"""The arena as a whole: determinism, the wire, ids, churn and scale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from game import rng
from game.arena import spec as S
from game.arena.ruleset import ArenaRuleset
from game.motion import extrapolate
from game.rules import InputBatch
from game.world import PlayerId, World, state_hash
from tools.brains import arena_brain

ROOT = Path(__file__).resolve().parents[2]
R = ArenaRuleset()


def scripted_inputs(seed: int, tick: int, players: np.ndarray) -> InputBatch:
    """Pseudo-random inputs for ``players`` (int32 ascending), a pure function of its arguments."""
    keys = players.astype(np.int64) * 4
    cols = [
        rng.integers(seed, tick // 10, 901, keys, -1, 1),
        rng.integers(seed, tick // 10, 901, keys + 1, -1, 1),
        rng.integers(seed, tick // 7, 901, keys + 2, 0, 255),
        rng.integers(seed, tick, 901, keys + 3, 0, 1),
    ]
    return InputBatch(players, np.stack(cols, axis=1) if players.size else np.zeros((0, 4)))


def run_scripted(seed: int, ticks: int, npcs: int = 60, pellets: int = 40) -> tuple[World, list[str]]:
    """A match with players joining and leaving now and then; returns the world and its hash per tick."""
    w = R.create(seed, {"npcs": npcs, "pellets": pellets})
    present: set[int] = set()
    hashes = []
    for t in range(ticks):
        # Player p is in the game while (t // 25 + p) % 4 != 0: churn at many ticks.
        want = {p for p in range(8) if (t // 25 + p) % 4 != 0}
        for p in sorted(present - want):
            R.leave(w, PlayerId(p))
        for p in sorted(want - present):
            R.join(w, PlayerId(p))
        present = want
        players = np.array(sorted(present), dtype=np.int32)
        R.step(w, scripted_inputs(seed, w.tick + 1, players))
        hashes.append(state_hash(w))
    return w, hashes


def test_same_seed_and_inputs_give_the_same_state_hash():
    _, a = run_scripted(11, 150)
    _, b = run_scripted(11, 150)
    assert a == b
    _, c = run_scripted(12, 150)
    assert c[-1] != a[-1]


def test_the_state_hash_is_the_same_in_a_fresh_subprocess():
    _, here = run_scripted(5, 120)
    code = (
        "from tests.game.test_arena_world import run_scripted\n"
        "print(run_scripted(5, 120)[1][-1])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="123")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here[-1]


def test_ids_are_never_reused_and_counts_stay_constant():
    w = R.create(3, {"npcs": 50, "pellets": 60})
    seen_gone: set[int] = set()
    previous: set[int] = set(w.ids[w.active()].tolist())
    for t in range(200):
        if t % 30 == 0:
            R.join(w, PlayerId(t))
        if t % 45 == 44:
            R.leave(w, PlayerId(t - 44))
        players = np.array(sorted(R.scores(w)), dtype=np.int32)
        R.step(w, scripted_inputs(3, w.tick + 1, players))
        now = set(w.ids[w.active()].tolist())
        assert not (now & seen_gone), "an id came back"
        seen_gone |= previous - now
        previous = now
        kinds = w.cols["kind"][w.active()]
        assert np.count_nonzero(kinds == S.DRONE) == 50
        assert np.count_nonzero(kinds == S.PELLET) == 60
    assert seen_gone, "nothing was ever removed: the test is not exercising churn"


def test_drones_and_bullets_move_exactly_as_clients_extrapolate_them():
    w, _ = run_scripted(8, 60, npcs=300)
    players = np.array(sorted(R.scores(w)), dtype=np.int32)
    for _ in range(40):
        ids0, cols0 = w.replicated()
        before = dict(zip([c.name for c in S.SPEC.replicated], cols0))
        predicted = extrapolate(S.SPEC.motion, before, 1)
        events = R.step(w, scripted_inputs(8, w.tick + 1, players))
        ids1, cols1 = w.replicated()
        after = dict(zip([c.name for c in S.SPEC.replicated], cols1))
        common, i0, i1 = np.intersect1d(ids0, ids1, return_indices=True)
        moving = np.isin(before["kind"][i0], [S.DRONE, S.BULLET])
        assert moving.sum() >= 300
        for name in ("x", "y"):
            assert np.array_equal(predicted[name][i0][moving], after[name][i1][moving])
        # Living players that did not just respawn: the new velocity is the step just taken.
        respawned = [e.args[0] for e in events if e.kind == "respawn"]
        sel = (after["kind"][i1] == S.PLAYER) & (after["hp"][i1] > 0) & ~np.isin(common, respawned)
        assert sel.any()
        for p, v in (("x", "vx"), ("y", "vy")):
            moved = before[p][i0][sel].astype(np.int64) + after[v][i1][sel]
            assert np.array_equal(moved, after[p][i1][sel])


def test_every_replicated_value_fits_its_wire_dtype_during_play_with_bots():
    w = R.create(21, {"npcs": 300, "pellets": 150})
    bots = list(range(24))
    me = {p: int(R.join(w, PlayerId(p))) for p in bots}
    for t in range(300):
        ids, cols = w.replicated()
        state = dict(zip([c.name for c in S.SPEC.replicated], cols))
        rows = [arena_brain(state, ids, me[p], w.tick + 1, 1000 + p) for p in bots]
        R.step(w, InputBatch(np.array(bots, np.int32), np.array(rows, np.int16)))
        slots = w.active()
        for c in S.SPEC.replicated:
            info = np.iinfo(np.dtype(c.wire))
            v = w.cols[c.name][slots]
            assert v.min() >= info.min and v.max() <= info.max, (t, c.name)
    scores = R.scores(w)
    assert sum(scores.values()) > 0, "bots never scored"


def test_hundreds_of_players_play_side_by_side():
    w = R.create(2, {"npcs": 500, "pellets": 300})
    players = np.arange(400, dtype=np.int32)
    for p in players:
        R.join(w, PlayerId(int(p)))
    events = []
    for _ in range(60):
        events += R.step(w, scripted_inputs(2, w.tick + 1, players))
    kinds = {e.kind for e in events}
    assert {"kill", "pickup"} <= kinds
    assert len(R.scores(w)) == 400


def test_a_world_of_ten_thousand_drones_steps():
    w = R.create(9, {"npcs": 10_000})
    players = np.arange(20, dtype=np.int32)
    for p in players:
        R.join(w, PlayerId(int(p)))
    for _ in range(30):
        R.step(w, scripted_inputs(9, w.tick + 1, players))
    assert np.count_nonzero(w.cols["kind"][w.active()] == S.DRONE) == 10_000

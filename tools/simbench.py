"""``python -m tools.simbench``: simulation step time per ruleset and world size.

Times ``ruleset.step`` alone (no network) with P players sending random
inputs, after a warm-up, and reports it with a baseline measured in the same
run: one bare motion pass (``game.motion.step_axis`` on x and y) over the
same number of entities, the least any vectorized step must do. The ratio
is what to compare across machines; the milliseconds are this machine's.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from game.motion import step_axis
from game.rules import RULESET_NAMES, InputBatch, get_ruleset
from game.world import PlayerId
from server.cli import seed_int
from tools.cli import Parser, number


def _time(fn: Callable[[], object], reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def measure(ruleset_name: str, npcs: int, players: int, steps: int, warmup: int, seed: int) -> dict[str, Any]:
    ruleset = get_ruleset(ruleset_name)
    world = ruleset.create(seed, {"npcs": npcs})
    for p in range(1, players + 1):
        ruleset.join(world, PlayerId(p))
    rng = np.random.default_rng(seed)
    lo, hi = ruleset.spec.input_bounds()
    pids = np.arange(1, players + 1, dtype=np.int32)

    def step() -> None:
        values = rng.integers(lo, hi + 1, size=(players, len(lo))).astype(np.int16)
        ruleset.step(world, InputBatch(pids, values))

    for _ in range(warmup):
        step()
    times = np.array(_time(step, steps)) * 1000

    n = world.count()
    x = np.random.default_rng(1).integers(0, 32000, n).astype(np.int32)
    y, vx, vy = x[::-1].copy(), (x % 64 - 32).astype(np.int32), (x % 48 - 24).astype(np.int32)

    def bare() -> None:
        step_axis(x, vx, 0, 32000)
        step_axis(y, vy, 0, 32000)

    base = np.array(_time(bare, steps)) * 1000
    return {
        "ruleset": ruleset_name, "npcs": npcs, "players": players, "entities": n, "steps": steps,
        "step_ms_mean": round(float(times.mean()), 3), "step_ms_p50": round(float(np.median(times)), 3),
        "step_ms_p99": round(float(np.percentile(times, 99)), 3),
        "baseline_ms_p50": round(float(np.median(base)), 3),
        "ratio_to_baseline": round(float(np.median(times) / np.median(base)), 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m tools.simbench", description="Time ruleset.step (no network) against a bare motion pass.")
    p.add_argument("--ruleset", action="append", choices=RULESET_NAMES, help="ruleset(s) to time (default: all)")
    p.add_argument("--npcs", type=number(int, 0), action="append", help="NPC counts (default: 10000 and 100000)")
    p.add_argument("--players", type=number(int, 0), default=20, help="players with random inputs (default 20)")
    p.add_argument("--steps", type=number(int, 1), default=60, help="timed steps per case (default 60)")
    p.add_argument("--warmup", type=number(int, 0), default=20, help="untimed steps first (default 20)")
    p.add_argument("--seed", type=seed_int, default=1, help="world seed, 0 to 2**63-1 (default 1)")
    p.add_argument("--json", action="store_true", help="one JSON object per case instead of a table")
    args = p.parse_args(argv)
    rows = [measure(r, e, args.players, args.steps, args.warmup, args.seed)
            for r in (args.ruleset or list(RULESET_NAMES)) for e in (args.npcs or [10_000, 100_000])]
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(f"{'ruleset':8} {'E':>8} {'entities':>9} {'step p50 ms':>12} {'p99 ms':>8} {'bare pass ms':>13} {'ratio':>6}")
        for r in rows:
            print(f"{r['ruleset']:8} {r['npcs']:>8} {r['entities']:>9} {r['step_ms_p50']:>12} {r['step_ms_p99']:>8} {r['baseline_ms_p50']:>13} {r['ratio_to_baseline']:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

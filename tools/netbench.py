"""``python -m tools.netbench``: how the netcode feels, measured: prediction corrections and the bots' hit rate.

For each server (this checkout's, and with ``--baseline DIR`` another
checkout's: the code before a change, run from there) and each network
(direct on loopback, and through ``tools.netem.DelayProxy`` at ``--delay``
± ``--jitter`` seconds each way), ``--bots`` arena bots (``tools.bots``:
they aim at what they see, predict themselves, send one input per batch of
updates) play ``--duration`` seconds in a fresh server. Reported per run:

- **corrections**: updates whose position for the bot's own entity
  differed from its prediction (``tools.predict``), per minute per bot and
  as a share of the updates compared;
- **hit rate**: the bots' bullets that hit something, over the bullets they
  fired, counted from what each bot receives (``ShotCounter``: replicated
  state only, so it works against any server version);
- the server's input queue counts (``inputs_starved``, ``inputs_dropped``,
  ``inputs_skipped``; absent from servers that predate them), the sends the
  bots skipped because the server said their queue was too deep
  (``skipped``, protocol minor 2) and the bots' RTT.

The baseline's bots send no ``view`` (a server that predates it refuses the
key) unless ``--recent-baseline``; ``--no-view`` does the same against this
checkout's server (no lag compensation). ``--no-proxy``: loopback only. Everything runs on 127.0.0.1; every run is bounded by
``--duration``. BENCHMARKS.md, *Netcode*, has figures and commands.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from attrs import define, field

from game.arena.spec import BULLET, BULLET_LIFE, MUZZLE, SIZE
from tools.bench import ROOT, BenchError, Proc
from tools.bots import Bot
from tools.cli import Parser, run_or_exit
from tools.client import GameClient
from tools.netem import DelayProxy


@define
class ShotCounter:
    """One bot's shots and hits, from the updates its client receives.

    (In a match without filtered views: a bullet leaving a view would count as a hit.)
    A bullet is the bot's when it first appears ``MUZZLE`` from the bot's
    position (bullets spawn there, ``game.arena.combat.fire``; entity ids only
    grow, so a new bullet is one with an id above every id seen before). A
    bullet of ours that vanishes before its lifetime is over, anywhere but at
    a wall, hit something.
    """

    me: int
    shots: int = 0
    hits: int = 0
    #: Our bullets in flight: id -> (x, y, vx, vy, first tick seen, last tick seen).
    flying: dict[int, tuple[int, int, int, int, int, int]] = field(factory=dict)
    top: int = -1

    def observe(self, tick: int, ids: np.ndarray[Any, Any], cols: dict[str, np.ndarray[Any, Any]]) -> None:
        i = int(np.searchsorted(ids, self.me))
        mine_here = i < ids.size and int(ids[i]) == self.me
        bullets = np.flatnonzero(cols["kind"] == BULLET)
        present = set(ids[bullets].tolist())
        for bid, (x, y, vx, vy, first, last) in list(self.flying.items()):
            if bid in present:
                continue
            del self.flying[bid]
            gap = tick - last
            nx, ny = x + vx * gap, y + vy * gap
            if tick - first < BULLET_LIFE and 0 < nx < SIZE and 0 < ny < SIZE:
                self.hits += 1
        new = bullets[ids[bullets].astype(np.int64) > self.top]
        if mine_here and new.size:
            mx, my = int(cols["x"][i]), int(cols["y"][i])
            d = np.hypot(cols["x"][new].astype(np.int64) - mx, cols["y"][new].astype(np.int64) - my)
            for j in new[np.abs(d - MUZZLE) <= 16].tolist():
                self.shots += 1
                self.flying[int(ids[j])] = (int(cols["x"][j]), int(cols["y"][j]), int(cols["vx"][j]),
                                           int(cols["vy"][j]), tick, tick)
        for bid in self.flying.keys() & present:
            j = bullets[int(np.searchsorted(ids[bullets], bid))]
            x, y, vx, vy, first, _ = self.flying[bid]
            self.flying[bid] = (int(cols["x"][j]), int(cols["y"][j]), vx, vy, first, tick)
        if ids.size:
            self.top = max(self.top, int(ids[-1]))


def count_shots(client: GameClient, counters: dict[int, ShotCounter]) -> None:
    """``on_update``: feed the client's bot's ``ShotCounter`` with the newest state."""
    welcome = client.welcome
    if welcome is None or welcome.entity is None or client.state is None or client.tick is None:
        return
    counter = counters.setdefault(id(client), ShotCounter(welcome.entity))
    ids, cols = client.columns()
    counter.observe(client.tick, ids, cols)


async def play(url: str, args: argparse.Namespace, view: bool, old: bool) -> tuple[list[Bot], list[ShotCounter]]:
    """The bots' run; ``old``: a baseline server, which predates ``view``, filtered views (``interest``) and roster
    deltas."""
    counters: dict[int, ShotCounter] = {}
    bots = [Bot(i, url, f"nb{i + 1}", args.seed, True) for i in range(args.bots)]
    for b in bots:
        b.client.assume_minor = 1 if args.recent_baseline else None
        b.client.lag_compensation = view
        b.client.interest = not old
        b.client.roster_deltas = not old
        b.client.on_update = lambda c: count_shots(c, counters)
    deadline = time.perf_counter() + args.duration
    await asyncio.gather(*(b.play(deadline, 1.0) for b in bots))
    return bots, [counters[id(b.client)] for b in bots if id(b.client) in counters]


def measure(root: Path, args: argparse.Namespace, delay: float, view: bool) -> dict[str, Any]:
    """One run: a fresh server of the checkout at ``root``, bots direct or through the proxy."""
    proc = Proc(["-m", "server", "--host", "127.0.0.1", "--port", "0", "--ruleset", "arena", "--seed", str(args.seed),
                 "--no-record"], "server", None, root=root)

    async def main() -> tuple[list[Bot], list[ShotCounter]]:
        old = root != ROOT and not args.recent_baseline
        if delay <= 0:
            return await play(proc.url, args, view, old)
        proxy = await DelayProxy(proc.port, delay, args.jitter, seed=args.seed).start()
        try:
            return await play(f"ws://127.0.0.1:{proxy.port}/ws", args, view, old)
        finally:
            await proxy.close()

    try:
        bots, counters = asyncio.run(main())
        matches: list[dict[str, Any]] = proc.get_json("/api/matches").get("matches", [])
        info: dict[str, Any] = next((m for m in matches if m.get("default")), {})
    finally:
        proc.stop()
    joined = [b for b in bots if b.connected]
    stats = [b.client.stats for b in joined]
    predicted = sum(s.predicted for s in stats)
    corrections = sum(s.corrections for s in stats)
    shots, hits = sum(c.shots for c in counters), sum(c.hits for c in counters)
    rtts = [r for s in stats for r in s.rtts]
    minutes = args.duration / 60
    return {
        "server": "baseline" if root != ROOT else "this", "network": f"{delay * 1000:g} ms ± {args.jitter * 1000:g} ms"
        if delay > 0 else "loopback", "view": view, "bots": len(joined), "seconds": args.duration,
        "updates": sum(s.updates for s in stats), "predicted": predicted, "corrections": corrections,
        "unanswered": sum(s.unanswered for s in stats), "skipped": sum(s.skipped for s in stats),
        "corrections_per_min_per_bot": round(corrections / minutes / max(1, len(joined)), 2),
        "corrections_pct": round(100 * corrections / predicted, 3) if predicted else None,
        "shots": shots, "hits": hits, "hit_rate": round(hits / shots, 3) if shots else None,
        "inputs_starved": info.get("inputs_starved"), "inputs_dropped": info.get("inputs_dropped"),
        "inputs_stale": info.get("inputs_stale"), "inputs_trimmed": info.get("inputs_trimmed"),
        "inputs_trimmed_idle": info.get("inputs_trimmed_idle"), "inputs_skipped": info.get("inputs_skipped"),
        "rtt_ms_p50": round(float(np.percentile(rtts, 50)), 1) if rtts else None,
        "desyncs": sum(s.desyncs for s in stats), "errors": [b.error for b in bots if b.error][:3],
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    roots = ([(args.baseline, False)] if args.baseline else []) + [(ROOT, not args.no_view)]
    for root, view in roots:
        for delay in (0.0,) if args.no_proxy else (0.0, args.delay):
            rows.append(measure(root, args, delay, view))
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'server':<9} {'network':<16} {'view':<5} {'corr/min/bot':>12} {'corr %':>7} {'shots':>6} {'hits':>5} "
          f"{'hit rate':>8} {'starved':>8} {'dropped':>8} {'skipped':>8} {'rtt p50':>8}")
    for r in rows:
        print(f"{r['server']:<9} {r['network']:<16} {str(r['view']):<5} {r['corrections_per_min_per_bot']:>12} "
              f"{str(r['corrections_pct']):>7} {r['shots']:>6} {r['hits']:>5} {str(r['hit_rate']):>8} "
              f"{str(r['inputs_starved']):>8} {str(r['inputs_dropped']):>8} {r['skipped']:>8} {str(r['rtt_ms_p50']):>8}")
        for e in r["errors"]:
            print(f"  {e}")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tools.netbench", description=__doc__.split("\n")[0])
    p.add_argument("--bots", type=int, default=4, help="arena bots per run (default 4)")
    p.add_argument("--duration", type=float, default=60.0, metavar="SECONDS", help="each run's length (default 60)")
    p.add_argument("--delay", type=float, default=0.1, metavar="SECONDS", help="the proxy's delay each way (default 0.1)")
    p.add_argument("--jitter", type=float, default=0.03, metavar="SECONDS", help="± jitter each way (default 0.03)")
    p.add_argument("--seed", type=int, default=1, help="the match's and the bots' seed (default 1)")
    p.add_argument("--baseline", type=Path, metavar="DIR",
                   help="another checkout (e.g. git archive of the commit before) whose server runs first, as the baseline")
    p.add_argument("--recent-baseline", action="store_true",
                   help="the baseline accepts view, interest and roster_deltas: its bots send them too")
    p.add_argument("--no-view", action="store_true", help="this checkout's bots send no view: no lag compensation")
    p.add_argument("--no-proxy", action="store_true", help="loopback only: no run through the delay proxy")
    p.add_argument("--json", action="store_true", help="print the rows as one JSON array on the last line")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.jitter > args.delay:
        build_parser().error("--jitter must not exceed --delay")
    rows = run_or_exit("python -m tools.netbench", lambda: run(args), BenchError, OSError)
    if args.json:
        print(json.dumps(rows))
    else:
        print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

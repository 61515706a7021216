"""``python -m tools.scalebench``: how many players hold 30 updates/s with 1 worker process and with 2 (issue 10).

Each configuration is the real ``python -m server --workers W --port 0
--redis URL --ruleset drift --npcs E --max-players M --no-record`` sharing
a private ``redis-server`` (``tools.localcluster.LocalRedis``). Its players
are lean clients, ``P / W`` of them on each worker's ``/ws``: by default the
C load generator (``build/loadgen``, ``make loadgen``; one process per
worker, nothing decoded, no desync check), or with ``--loadgen python``
``tools.loadgen``'s (``--verify`` of them decode and verify every update).
On each worker the default match takes the first M, the next go on to
new matches of the same room on that worker, so every match holds M
players (the last one the rest) and every match simulates its own E NPCs.

A run connects P players, warms up, then measures ``--duration`` seconds:
the clients' updates per second (mean and minimum), each worker's CPU and
CPU wait (``/proc``), the supervisor's, Redis's and the load generator's
CPU, the matches each worker hosts and their skipped ticks
(``/api/matches``). P **holds** when every client is still connected,
none saw an error or a desync, and the slowest client received at least
``--hold`` updates a second.

The CPUs: with one worker, it is pinned to the first CPU and the load
generator to the second (as ``tools.bench``); with W > 1 workers, worker K
is pinned to CPU K (modulo the CPUs there are) and the load generator
(one process per worker) runs on any CPU, taking its share from the
workers: its CPU is reported beside theirs.

The search (``Search``): for each configuration, P starts at ``--start``
and grows by ``--step`` while it holds, then halves the gap between the
largest P held and the smallest that failed down to ``--resolution``; or,
with ``--players``, each P of a list in turn (``Ladder``). The
configurations take turns, run after run, so both see the same machine.

Prints one JSON line per run, then a summary; with ``--json`` the last line
is one JSON object with every run and the capacities.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from contextlib import ExitStack
from typing import Any

from attrs import define, frozen

from server.cli import positive, seed_int
from tools.bench import ROOT, BenchError, Proc, cpu_of, machine_busy, run_queue_wait_of
from tools.cli import Parser, run_or_exit
from tools.loadgen import LoadGen, LoadGenError, window_stats
from tools.localcluster import LocalRedis, LocalRedisError

#: The C load generator (``make loadgen``).
LOADGEN_C = ROOT / "build" / "loadgen"
#: The supervisor's line for each worker that listens.
READY = re.compile(r"supervisor: worker (?P<index>\d+) \(pid (?P<pid>\d+)\) listening on ws://127\.0\.0\.1:(?P<port>\d+)/ws")


@define
class Search:
    """The players to try next for one configuration (see the module docstring); pure.

    Attributes:
        start, step, resolution, most: the first P, the growth while it holds, the gap at which to stop,
            the largest P to try.
        held: the largest P that held (0: none yet); failed: the smallest that did not (None: none yet).
    """

    start: int
    step: int
    resolution: int
    most: int
    held: int = 0
    failed: int | None = None

    def next(self) -> int | None:
        """The next P to try, or None when the capacity is known to ``resolution`` (or past ``most``)."""
        if self.failed is None:
            p = self.held + self.step if self.held else self.start
            return p if p <= self.most else None
        if self.failed - self.held <= self.resolution:
            return None
        mid = (self.held + self.failed) // 2 // self.resolution * self.resolution
        return max(mid, self.held + self.resolution)

    def record(self, players: int, held: bool) -> None:
        if held:
            self.held = max(self.held, players)
        else:
            self.failed = players if self.failed is None else min(self.failed, players)


@define
class Ladder:
    """``--players``: every P of ``players`` in turn, until two in a row fail; pure, like ``Search``."""

    players: list[int]
    held: int = 0
    misses: int = 0
    tried: int = 0

    def next(self) -> int | None:
        if self.misses >= 2 or self.tried >= len(self.players):
            return None
        return self.players[self.tried]

    def record(self, players: int, held: bool) -> None:
        self.tried += 1
        self.held = max(self.held, players) if held else self.held
        self.misses = 0 if held else self.misses + 1


@frozen
class Node:
    """One worker: its number, process and port."""

    index: int
    pid: int
    port: int


class Cluster:
    """``python -m server --workers W`` for the benchmark, its workers pinned (see the module docstring)."""

    def __init__(self, workers: int, redis: str, args: argparse.Namespace, max_players: int) -> None:
        cmd = ["-m", "server", "--workers", str(workers), "--host", "127.0.0.1", "--port", "0", "--redis", redis,
               "--ruleset", "drift", "--npcs", str(args.npcs), "--max-players", str(max_players),
               "--seed", str(args.seed), "--no-record", "--max-per-address", "0",  # every client is 127.0.0.1 here
               *args.server_arg]
        self.proc = Proc(cmd, f"--workers {workers}", None, timeout=60.0, ready=READY, count=workers)
        self.nodes = sorted((Node(int(m["index"]), int(m["pid"]), int(m["port"])) for m in self.proc.ready_lines),
                            key=lambda n: n.index)
        cpus = sorted(os.sched_getaffinity(0))
        self.loadgen_cpus: set[int] | None = None
        if args.pin and len(cpus) >= 2:
            for n in self.nodes:
                os.sched_setaffinity(n.pid, {cpus[(n.index - 1) % len(cpus)]})
            if workers == 1:
                self.loadgen_cpus = {cpus[1]}

    def local_matches(self, node: Node) -> list[dict[str, Any]]:
        """The matches ``node`` hosts (``GET /api/matches``: those with its tick)."""
        # A saturated worker answers late; the run goes on and says so in its figures.
        found = self.proc.get_json("/api/matches?limit=1000", port=node.port, timeout=30.0)["matches"]
        return [m for m in found if "tick" in m]

    def stop(self) -> None:
        self.proc.stop(timeout=30.0)


def split(players: int, parts: int) -> list[int]:
    return [players // parts + (k < players % parts) for k in range(parts)]


@frozen
class Snapshot:
    """The processes' counters at one mark: each worker's CPU (user + system s) and CPU wait, the
    supervisor's and Redis's CPU, each worker's matches (``/api/matches``), the machine's busy CPU, the time."""

    cpu: list[float]
    wait: list[float]
    others: float
    matches: list[list[dict[str, Any]]]
    busy: float
    t: float

    @classmethod
    def take(cls, cluster: Cluster, others: list[int]) -> Snapshot:
        nodes = cluster.nodes
        return cls([sum(cpu_of(n.pid)) for n in nodes], [run_queue_wait_of(n.pid) for n in nodes],
                   sum(sum(cpu_of(p)) for p in others), [cluster.local_matches(n) for n in nodes],
                   machine_busy(), time.monotonic())

    @property
    def dropped(self) -> dict[str, int]:
        """Each match's skipped ticks so far, by id."""
        return {m["match"]: int(m.get("ticks_dropped", 0)) for node in self.matches for m in node}


@frozen
class Clients:
    """What the clients saw over the window: per-client updates/s (mean over all, slowest), bytes per update,
    clients that joined and that were still connected, errors, desyncs (None: not checked), the load
    generator's CPU (cores)."""

    updates_per_s: float
    updates_per_s_min: float
    bytes_per_update: float
    connected: int
    still: int
    errors: list[str]
    desyncs: int | None
    loadgen_cpu: float


def measure(cluster: Cluster, players: int, args: argparse.Namespace, redis_pid: int | None) -> dict[str, Any]:
    """One run: ``players`` split over the workers, warmed up, measured; the figures (module docstring)."""
    others = [p for p in (cluster.proc.pid, redis_pid) if p is not None]
    counts = split(players, len(cluster.nodes))
    if args.loadgen == "c":
        clients, s0, s1 = asyncio.run(_c_clients(cluster, counts, args, others))
    else:
        clients, s0, s1 = _python_clients(cluster, counts, args, others)
    wall = s1.t - s0.t
    dropped0 = s0.dropped
    server = [(b - a) / wall for a, b in zip(s0.cpu, s1.cpu)]
    other_procs = (s1.others - s0.others) / wall
    held = (clients.still == players and not clients.errors and not clients.desyncs
            and clients.updates_per_s_min >= args.hold)
    return {
        "workers": len(cluster.nodes), "P": players, "loadgen": args.loadgen, "held": held,
        "connected": clients.connected, "still_connected": clients.still,
        "updates_per_s": round(clients.updates_per_s, 2), "updates_per_s_min": round(clients.updates_per_s_min, 2),
        "bytes_per_update": round(clients.bytes_per_update, 1),
        "server_cpu": [round(c, 3) for c in server], "server_cpu_total": round(sum(server), 3),
        "server_us_per_client_tick": round(sum(server) / (players * args.tick_rate) * 1e6, 2),
        "server_cpu_wait": [round((b - a) / wall, 3) for a, b in zip(s0.wait, s1.wait)],
        "loadgen_cpu": round(clients.loadgen_cpu, 3), "supervisor_and_redis_cpu": round(other_procs, 3),
        "other_cpu": round((s1.busy - s0.busy) / wall - sum(server) - clients.loadgen_cpu - other_procs, 3),
        "matches": [len(m) for m in s1.matches],
        "match_players": sorted({int(x.get("players", 0)) for m in s1.matches for x in m}),
        "ticks_skipped": sum(d - dropped0[m] for m, d in s1.dropped.items() if m in dropped0),
        "desyncs": clients.desyncs, "errors": len(clients.errors), "error_messages": clients.errors[:3],
    }


def _python_clients(cluster: Cluster, counts: list[int], args: argparse.Namespace,
                    others: list[int]) -> tuple[Clients, Snapshot, Snapshot]:
    """``tools.loadgen``'s clients, ``counts[k]`` on worker k's ``/ws``, ``--verify`` of them verifying."""
    nodes = cluster.nodes
    verify = split(args.verify, len(nodes))
    with ExitStack() as stack:
        lgs = [stack.enter_context(LoadGen(f"ws://127.0.0.1:{n.port}/ws", c, verify=v, seed=args.seed + n.index,
                                           connect_rate=args.connect_rate / len(nodes), connect_timeout=30.0,
                                           lifetime=args.warmup + args.duration + 600, name=f"w{n.index}-",
                                           cpus=cluster.loadgen_cpus))
               for n, c, v in zip(nodes, counts, verify)]
        connected = sum(lg.start(timeout=60.0 + c / max(args.connect_rate, 1.0)) for lg, c in zip(lgs, counts))
        time.sleep(args.warmup)
        m0, s0 = [lg.mark() for lg in lgs], Snapshot.take(cluster, others)
        time.sleep(args.duration)
        m1, s1 = [lg.mark() for lg in lgs], Snapshot.take(cluster, others)
        finals = [lg.stop() for lg in lgs]
    windows = [window_stats(a, b) for a, b in zip(m0, m1)]
    players = sum(counts)
    return Clients(
        updates_per_s=sum(w["updates_per_s"] * c for w, c in zip(windows, counts)) / players,
        updates_per_s_min=min(w["updates_per_s_min"] for w in windows),
        bytes_per_update=sum(w["bytes_per_update"] * c for w, c in zip(windows, counts)) / players,
        connected=connected, still=sum(1 for m in m1 for c in m.clients.values() if c[3]),
        errors=[e for lg in lgs for e in lg.connect_errors] + [e for f in finals for e in f["errors"]],
        desyncs=sum(f["desyncs"] for f in finals), loadgen_cpu=sum(w["loadgen_cpu_per_s"] for w in windows),
    ), s0, s1


async def _c_clients(cluster: Cluster, counts: list[int], args: argparse.Namespace,
                     others: list[int]) -> tuple[Clients, Snapshot, Snapshot]:
    """The C load generator (``build/loadgen``), one process per worker with ``counts[k]`` clients on its
    ``/ws``; the window is where theirs overlap (from the last one's start to the first one's end)."""
    if not LOADGEN_C.exists():
        raise BenchError(f"{LOADGEN_C} is missing: build it with `make loadgen`, or use --loadgen python")
    rate = args.connect_rate / len(counts)
    pin = ["taskset", "-c", ",".join(map(str, sorted(cluster.loadgen_cpus)))] if cluster.loadgen_cpus else []
    procs = [await asyncio.create_subprocess_exec(
        *pin, str(LOADGEN_C), "--port", str(n.port), "--clients", str(c), "--rate", str(rate),
        "--warmup", str(args.warmup), "--duration", str(args.duration), "--timeout", str(60 + c / rate),
        "--seed", str((args.seed + n.index) % 10**18), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        for n, c in zip(cluster.nodes, counts)]
    marks: dict[str, list[Snapshot]] = {"window_start": [], "window_end": []}
    summaries: list[dict[str, Any]] = [{} for _ in procs]

    async def follow(k: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            obj = json.loads(line)
            if obj.get("event") in marks:
                marks[obj["event"]].append(Snapshot.take(cluster, others))
            else:
                summaries[k] = obj
        await proc.wait()

    async with asyncio.timeout(180 + max(counts) / rate + args.warmup + args.duration):
        await asyncio.gather(*(follow(k, p) for k, p in enumerate(procs)))
    if not all(summaries) or len(marks["window_start"]) < len(procs) or not marks["window_end"]:
        errs = [(await p.stderr.read()).decode()[-300:] for p in procs if p.stderr is not None]
        raise BenchError(f"the load generator failed: {' | '.join(e for e in errs if e)}")
    s0, s1 = marks["window_start"][-1], marks["window_end"][0]
    if s1.t <= s0.t:
        raise BenchError("the load generators' windows did not overlap (one connected much later): try a longer "
                         "--duration")
    players = sum(counts)
    return Clients(
        updates_per_s=sum(s["updates_per_s_mean"] * c for s, c in zip(summaries, counts)) / players,
        updates_per_s_min=min(s["updates_per_s_min"] for s in summaries),
        bytes_per_update=sum(s["bytes_per_update"] * c for s, c in zip(summaries, counts)) / players,
        connected=sum(s["welcomed"] for s in summaries), still=sum(s["connected"] for s in summaries),
        errors=[m for s in summaries for m in s["error_messages"]] + [
            f"and {s['errors'] - len(s['error_messages'])} more" for s in summaries
            if s["errors"] > len(s["error_messages"])],
        desyncs=None, loadgen_cpu=sum(s["cpu_per_s"] for s in summaries),
    ), s0, s1


def run(args: argparse.Namespace) -> dict[str, Any]:
    with ExitStack() as stack:
        redis_url, redis_pid = args.redis, None
        if redis_url is None:
            redis = stack.enter_context(LocalRedis())
            redis_url, redis_pid = redis.url, redis.proc.pid if redis.proc else None
        searches: dict[int, Search | Ladder] = {
            w: Ladder(sorted(args.players)) if args.players else Search(args.start, args.step, args.resolution, args.most)
            for w in args.workers}
        runs: list[dict[str, Any]] = []
        while True:
            pending = [(w, p) for w, s in searches.items() if (p := s.next()) is not None]
            if not pending or len(runs) >= args.max_runs:
                break
            for w, p in pending:
                cluster = Cluster(w, redis_url, args, args.match_players)
                try:
                    result = measure(cluster, p, args, redis_pid)
                finally:
                    cluster.stop()
                searches[w].record(p, result["held"])
                runs.append(result)
                print(json.dumps(result), flush=True)
    capacity = {w: s.held for w, s in searches.items()}
    base = capacity.get(1)
    return {"E": args.npcs, "match_players": args.match_players, "hold": args.hold, "duration_s": args.duration,
            "capacity": capacity, "resolution": None if args.players else args.resolution, "players": args.players,
            "ratio": {w: round(c / base, 2) for w, c in capacity.items()} if base else None,
            "runs": runs}


def print_summary(out: dict[str, Any]) -> None:
    print(f"drift E={out['E']}, matches of {out['match_players']} players, held = every client at >= "
          f"{out['hold']} updates/s for {out['duration_s']} s")
    print(f"  {'workers':>7} {'P':>6} {'held':>5} {'upd/s min':>9} {'server cores':>18} {'µs/client/tick':>14} "
          f"{'loadgen':>7} {'matches':>9} {'skipped':>7}")
    for r in out["runs"]:
        cores = "+".join(f"{c:.2f}" for c in r["server_cpu"])
        print(f"  {r['workers']:>7} {r['P']:>6} {'yes' if r['held'] else 'no':>5} {r['updates_per_s_min']:>9} "
              f"{cores:>18} {r['server_us_per_client_tick']:>14} {r['loadgen_cpu']:>7} "
              f"{'+'.join(map(str, r['matches'])):>9} {r['ticks_skipped']:>7}")
    for w, c in out["capacity"].items():
        ratio = f" ({out['ratio'][w]}× one worker)" if out["ratio"] else ""
        how = f"to {out['resolution']}" if out["resolution"] else f"of {', '.join(map(str, out['players']))}"
        print(f"  {w} worker{'s' if w > 1 else ''}: {c} players held ({how}){ratio}")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tools.scalebench",
               description="Players held at 30 updates/s by 1 worker process and by 2 (python -m server --workers), "
               "in the same run.")
    p.add_argument("--workers", type=lambda t: [int(x) for x in t.split(",")], default=[1, 2], metavar="W,W",
                   help="the configurations to compare (default 1,2)")
    p.add_argument("--npcs", type=int, default=2000, metavar="E", help="NPCs of each match (default 2000)")
    p.add_argument("--match-players", type=positive(int), default=100, metavar="M", help="players per match (default 100)")
    p.add_argument("--players", type=lambda t: [int(x) for x in t.split(",")], default=None, metavar="P,P,...",
                   help="try each configuration at these P in turn (until two in a row fail) instead of searching")
    p.add_argument("--start", type=positive(int), default=600, help="the first P tried (default 600)")
    p.add_argument("--step", type=positive(int), default=400, help="P grows by this while it holds (default 400)")
    p.add_argument("--resolution", type=positive(int), default=100, help="stop when the gap is this (default 100)")
    p.add_argument("--most", type=positive(int), default=4000, help="never more players than this (default 4000)")
    p.add_argument("--max-runs", type=positive(int), default=24, help="at most this many runs in all (default 24)")
    p.add_argument("--hold", type=positive(float), default=29.5, metavar="UPDATES_PER_S",
                   help="the slowest client's updates/s for P to hold (default 29.5, at 30 ticks/s)")
    p.add_argument("--tick-rate", type=positive(int), default=30, help=argparse.SUPPRESS)
    p.add_argument("--duration", type=positive(float), default=10.0, metavar="SECONDS", help="measured time (default 10)")
    p.add_argument("--warmup", type=float, default=5.0, metavar="SECONDS", help="after the last join (default 5)")
    p.add_argument("--loadgen", choices=["c", "python"], default="c",
                   help="the clients: c, build/loadgen (make loadgen), about 2.5 times cheaper per update, or python, "
                   "tools.loadgen with --verify clients that decode and verify every update (default c)")
    p.add_argument("--verify", type=int, default=2, metavar="N", help="with --loadgen python: clients that decode and "
                   "verify (default 2)")
    p.add_argument("--connect-rate", type=positive(float), default=150.0, metavar="PER_S",
                   help="joins per second, over all workers (default 150: a burst of joins on a busy machine makes "
                   "the directory's calls time out, 1013)")
    p.add_argument("--seed", type=seed_int, default=1, help="match and random-walk seed (default 1)")
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                   help="pin the workers (and one worker's load generator) to CPUs (default on)")
    p.add_argument("--redis", default=None, metavar="URL", help="a Redis to use (default: a private redis-server)")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG", help="extra argument for python -m server")
    p.add_argument("--json", action="store_true", help="the last line: one JSON object with every run")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = run_or_exit(parser.prog, lambda: run(args), BenchError, LoadGenError, LocalRedisError)
    if args.json:
        print(json.dumps(out))
    else:
        print_summary(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

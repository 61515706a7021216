"""``python -m tools.bench --sweep``: players per core, the server against the ceiling in one run.

Steps P (``--sweep-start``, then ``--sweep-step`` more each time, at most
``--sweep-max``) and, at each P, measures first the real server (``python -m
server --ruleset drift``, E NPCs) and then ``tools.ceiling`` (websockets
broadcasting frames of the server's mean update size at that P) with the
same clients: P − ``--verify`` lean players of the C load generator
(``build/loadgen``, ``make loadgen``) and ``--verify`` ``tools.client.GameClient``
that decode and verify every update. The measured process is pinned to one
CPU, the clients to another (``--pin``; what one core of the C generator
drives is measured apart by ``python -m tools.genbench``). A P *holds* when every client got
29+ updates/s over the window (the C clients' 1st percentile and every
verifier), no tick was skipped, no client erred or desynced. A P that is
only too slow is measured once more (a busy machine's window); each side
stops at its first P that does not hold twice (with ``--sweep-all`` both go
on to ``--sweep-max`` for the whole curve: a busy machine skips ticks at any
P); the sweep ends when both have stopped, or at ``--sweep-max``, or when
``--sweep-budget`` seconds are spent. The largest P that held is the last of
an unbroken run from the first P.

Returns the points and the largest P that held for each side; ``--plot``
draws updates/s (1st percentile) and CPU (cores) against P for both into a
PNG (``tools.plots``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypeVar

from attrs import asdict, define

from tools.bench import ROOT, BenchError, Proc, nofile_for, server_command
from tools.client import GameClient
from tools.plots import Panel, Series, save_panels

LOADGEN = ROOT / "build" / "loadgen"
#: What ``read_window`` takes at each of the window's two marks.
M = TypeVar("M")
#: Updates per second every client must get for a P to hold (the tick rate is 30).
HOLD_UPDATES_PER_S = 29.0


@define
class Point:
    """One measured window: ``side`` ("server" or "ceiling") at P clients."""

    side: str
    players: int
    connected: int
    updates_per_s_p1: float
    updates_per_s_p50: float
    verifier_updates_per_s_min: float | None
    ticks_skipped: int
    cpu: float
    us_per_client_tick: float | None
    loadgen_cpu: float
    loadgen_us_per_update: float
    #: The C generator's I/O path: "uring", or "epoll" where the kernel refused a ring.
    loadgen_io: str
    bytes_per_update: float
    errors: int
    error_messages: list[str]
    desyncs: int

    @property
    def holds(self) -> bool:
        verifiers_ok = self.verifier_updates_per_s_min is None or self.verifier_updates_per_s_min >= HOLD_UPDATES_PER_S
        return (self.connected == self.players and self.updates_per_s_p1 >= HOLD_UPDATES_PER_S and verifiers_ok
                and self.ticks_skipped == 0 and self.errors == 0 and self.desyncs == 0)


def _affinity(cpus: set[int] | None) -> list[str]:
    return ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []


async def start_loadgen(port: int, clients: int, rate: float, warmup: float, duration: float, seed: int,
                        cpus: set[int] | None) -> asyncio.subprocess.Process:
    """``build/loadgen``: ``clients`` C clients of the server on ``port``, connected ``rate`` a second, then one
    window of ``duration`` s after ``warmup`` s; on ``cpus`` (None: anywhere). Its stdout: JSON lines."""
    cmd = [*_affinity(cpus), str(LOADGEN), "--port", str(port), "--clients", str(clients), "--rate", str(rate),
           "--warmup", str(warmup), "--duration", str(duration), "--timeout", str(60 + clients / rate),
           "--seed", str(seed % 10**18)]
    return await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def read_window(lg: asyncio.subprocess.Process, mark: Callable[[str], M]) -> tuple[dict[str, Any], dict[str, M]]:
    """Read ``start_loadgen``'s output to its end: its summary, and ``mark(event)`` taken as its window starts
    and ends (``window_start``, ``window_end``); a BenchError when it printed either not."""
    assert lg.stdout is not None and lg.stderr is not None
    marks: dict[str, M] = {}
    summary: dict[str, Any] = {}
    while line := await lg.stdout.readline():
        obj = json.loads(line)
        event = obj.get("event")
        if event in ("window_start", "window_end"):
            marks[event] = mark(event)
        else:
            summary = obj
    await lg.wait()
    if not summary or "window_start" not in marks or "window_end" not in marks:
        raise BenchError(f"the load generator failed: {(await lg.stderr.read()).decode()[-300:]}")
    return summary, marks


async def _window(proc: Proc, args: argparse.Namespace, players: int, lg_cpus: set[int] | None) -> Point:
    """Run the C clients and the verifiers against ``proc`` through one window; its figures."""
    lean = players - min(args.verify, players - 1)
    lg = await start_loadgen(proc.port, lean, args.connect_rate, args.warmup, args.duration, args.seed, lg_cpus)
    verifiers = [GameClient(proc.url, f"verify{i}") for i in range(players - lean)]
    errors: list[str] = []
    try:
        await asyncio.gather(*(v.connect(timeout=30) for v in verifiers))
    except Exception as exc:  # a refused or timed-out verifier is a failed point, not a crash
        errors.append(f"verifier: {exc}")

    async def play(v: GameClient) -> None:
        while not v.closed:
            await v.wait_update(timeout=30)
            await v.send_input((1, 0))

    players_tasks = [asyncio.ensure_future(play(v)) for v in verifiers if v.ws is not None]
    open_verifiers = 0

    def mark(event: str) -> tuple[float, tuple[float, float], dict[str, Any], list[int]]:
        nonlocal open_verifiers
        open_verifiers = sum(1 for v in verifiers if v.ws is not None and not v.closed)
        return time.monotonic(), proc.cpu(), proc.get_json("/healthz"), [v.stats.updates for v in verifiers]

    failed: BenchError | None = None
    try:
        async with asyncio.timeout(180 + players / args.connect_rate + args.warmup + args.duration):
            summary, marks = await read_window(lg, mark)
    except BenchError as exc:  # the verifiers are closed first
        failed = exc
    for t in players_tasks:
        t.cancel()
    await asyncio.gather(*players_tasks, return_exceptions=True)
    for v in verifiers:
        if v.ws is not None:
            await v.close()
        errors.extend(v.stats.errors)
    if failed is not None:
        raise failed
    (t0, c0, h0, v0), (t1, c1, h1, v1) = marks["window_start"], marks["window_end"]
    wall = t1 - t0
    cpu = (sum(c1) - sum(c0)) / wall
    ticks = int(h1["tick"]) - int(h0["tick"])
    verifier_ups = [(b - a) / wall for a, b in zip(v0, v1)]
    return Point(
        side=proc.name, players=players, connected=summary["connected"] + open_verifiers,
        updates_per_s_p1=summary["updates_per_s_p1"], updates_per_s_p50=summary["updates_per_s_p50"],
        verifier_updates_per_s_min=round(min(verifier_ups), 2) if verifier_ups else None,
        ticks_skipped=int(h1.get("ticks_dropped", 0)) - int(h0.get("ticks_dropped", 0)),
        cpu=round(cpu, 3), us_per_client_tick=round(cpu * wall / (ticks * players) * 1e6, 2) if ticks else None,
        loadgen_cpu=summary["cpu_per_s"], loadgen_us_per_update=summary["cpu_us_per_update"], loadgen_io=summary["io"],
        bytes_per_update=summary["bytes_per_update"], errors=summary["errors"] + len(errors),
        error_messages=(summary["error_messages"] + errors)[:5], desyncs=sum(v.stats.desyncs for v in verifiers),
    )


def _measure(args: argparse.Namespace, side: str, players: int, frame: int, server_cpu: int | None,
             lg_cpus: set[int] | None) -> Point:
    if side == "server":
        cmd = server_command(args.npcs[0], players, args.seed, ["--no-record", *args.server_arg])
    else:
        cmd = ["-m", "tools.ceiling", "--port", "0", "--frame-bytes", str(frame)]
    proc = Proc(cmd, side, server_cpu, nofile=nofile_for(players + 16))
    try:
        return asyncio.run(_window(proc, args, players, lg_cpus))
    finally:
        proc.stop()


def run_sweep(args: argparse.Namespace, server_cpu: int | None, lg_cpus: set[int] | None, progress: bool = True) -> dict[str, Any]:
    """The sweep's points and the largest P that held on each side (None: not even the first)."""
    if not LOADGEN.exists():
        raise BenchError(f"{LOADGEN.relative_to(ROOT)} is missing: build it with `make loadgen`")
    deadline = time.monotonic() + args.sweep_budget
    points: list[Point] = []
    best: dict[str, int | None] = {"server": None, "ceiling": None}
    live = {"server", "ceiling"}
    fell: set[str] = set()
    problems: list[str] = []
    players = args.sweep_start
    frame = 1000
    while live and players <= args.sweep_max and time.monotonic() < deadline:
        for side in ("server", "ceiling"):
            if side not in live:
                continue
            try:
                p = _measure(args, side, players, frame, server_cpu, lg_cpus)
            except BenchError as exc:  # e.g. a starved server that no longer answers /healthz: this side is done
                problems.append(f"{side} P={players}: {exc}")
                fell.add(side)
                live.discard(side)
                continue
            if not p.holds and p.connected == p.players and not p.errors and not p.desyncs:
                points.append(p)  # only slower: once more, the machine may have been busy in that window
                p = _measure(args, side, players, frame, server_cpu, lg_cpus)
            points.append(p)
            if side == "server" and p.bytes_per_update:
                frame = max(64, int(p.bytes_per_update))
            if progress:
                print(f"sweep: {side} P={players}: p1 {p.updates_per_s_p1} updates/s, cpu {p.cpu}, "
                      f"skipped {p.ticks_skipped}, {'holds' if p.holds else 'falls behind'}", file=sys.stderr, flush=True)
            if p.holds and side not in fell:
                best[side] = players
            elif not p.holds:
                fell.add(side)
                if not args.sweep_all:
                    live.discard(side)
        players += args.sweep_step
    return {
        "E": args.npcs[0], "pinned": args.pin, "server_cpu": server_cpu, "loadgen_cpus": sorted(lg_cpus) if lg_cpus else None,
        "verify": args.verify, "duration_s": args.duration, "largest_P_server": best["server"],
        "largest_P_ceiling": best["ceiling"],
        "server_to_ceiling_P": round(best["server"] / best["ceiling"], 2) if best["server"] and best["ceiling"] else None,
        "stopped": "both fell behind" if not live else ("--sweep-max" if players > args.sweep_max else "--sweep-budget"),
        "points": [dict(asdict(p), holds=p.holds) for p in points], "problems": problems,
    }


def plot_sweep(out: dict[str, Any], path: Path) -> None:
    """Updates/s (1st percentile) and CPU against P, server and ceiling (a P's better window), into the PNG ``path``."""
    def series(side: str, key: str, label: str) -> Series:
        best: dict[int, dict[str, Any]] = {}  # of a P measured twice, the better window
        for p in out["points"]:
            if p["side"] == side and (p["players"] not in best or p["updates_per_s_p1"] > best[p["players"]]["updates_per_s_p1"]):
                best[p["players"]] = p
        pts = [best[n] for n in sorted(best)]
        return Series(label, [p["players"] for p in pts], [p[key] for p in pts])

    save_panels(path, [
        Panel("updates/s per client (p1)", [series("server", "updates_per_s_p1", "server"),
                                             series("ceiling", "updates_per_s_p1", "websockets ceiling"),
                                             Series("29/s", [out["points"][0]["players"], out["points"][-1]["players"]],
                                                    [HOLD_UPDATES_PER_S] * 2)]),
        Panel("CPU (cores)", [series("server", "cpu", "server (pinned)"), series("ceiling", "cpu", "ceiling (pinned)"),
                              series("server", "loadgen_cpu", "C load generator (server run)")]),
    ], title=f"players per core: drift E={out['E']}, full variant", xlabel="players P")

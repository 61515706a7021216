"""``python -m tools.viewbench``: a match's tick with filtered views, in-process: what grows with E.

The ``interest`` variant's tick without the network: a real ``Match`` of
``drift`` at WORKLOAD's density (the arena ``4000 * sqrt(E / 2000)`` units
square, as ``tools.bench --variant interest``), P players that ask for
filtered views and acknowledge 1 to ``--lag`` ticks late (so each tick
encodes against several bases, as under load), their frames handed to
in-memory clients. One of them applies every frame and checks its view sum
(desyncs), after each tick's timing (a client's work). The warm-up counts
from the tick every player has joined (a match lets in ``MAX_JOINS`` a tick),
so the measured ticks hold no joins (``--churn`` puts a leave and a join
in every few of them). The figure is the tick's CPU time (``time.process_time``: what a
busy machine's other processes do not add), per tick and per client, for each
E in turn, and each E's compared with the first one's: what
``tools.bench --variant interest`` measures end to end, less the sockets,
which cost the same per client whatever E is. With ``--alternate BLOCK``
every E's match lives in the one process and they take turns, BLOCK ticks
each (the first of each turn not measured): on a shared machine whose
speed changes from one second to the next, every E is measured at the same
times, and their ratio moves less than that of E measured one after another.

Prints a table, or with ``--json`` one JSON line per E and a last one
comparing them.

Instruction counts, which a busy machine does not blur: run one E under
``valgrind --tool=callgrind --instr-atstart=no`` with ``--callgrind``, which
turns the instrumentation on (``callgrind_control -i on``) when the measured
ticks begin; callgrind's total is then theirs (and the clients' inputs
between them).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from game.rules import get_ruleset
from server.cli import seed_int
from server.match import Match, Member
from server.protocol.codec import decode_server, encode_client
from server.protocol.delta import Snapshot
from server.protocol.interest import apply_view
from server.protocol.messages import Hello, Input, Update
from tools.cli import Parser, number


class _Sink:
    """A match's client that keeps count of what it is sent (and, if ``verify``, applies its updates)."""

    def __init__(self, match: Match | None = None) -> None:
        self.bytes = 0
        self.updates = 0
        self.match = match
        self.states: dict[int, Snapshot] = {}
        self.desyncs = 0
        self.pending: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.bytes += len(data)
        if data[1:10] != b"\xa1t\xa6update":
            return
        self.updates += 1
        if self.match is not None:
            self.pending.append(data)

    def verify(self) -> None:
        """Apply the updates sent since the last call (outside the timed tick: a client's work, not the server's)."""
        match = self.match
        if match is None:
            return
        for data in self.pending:
            msg = decode_server(data)
            assert isinstance(msg, Update)
            snap = apply_view(match.schema, self.states.get(msg.base) if msg.base is not None else None,
                              msg.tick, msg.body)
            self.desyncs += snap.checksum != msg.checksum
            self.states[msg.tick] = snap
            for old in [t for t in self.states if t < msg.tick - 40]:
                del self.states[old]
        self.pending.clear()

    def send_many(self, frames: Sequence[bytes]) -> None:
        for data in frames:
            self.send(data)

    def close(self, code: int, reason: str) -> None:
        pass

    def tell_and_close(self, code: int, reason: str) -> None:
        pass


class _Bench:
    """One E's match, its players and what its measured ticks cost: joined on construction (the warm-up counts
    from the tick every player is in), then stepped a tick at a time."""

    def __init__(self, npcs: int, players: int, view: int, cell: int, lag: int, seed: int, churn: int = 0) -> None:
        self.npcs, self.players, self.view, self.churn = npcs, players, view, churn
        self.side = max(100, round(4000 * math.sqrt(npcs / 2000)))
        self.match = match = Match(get_ruleset("drift"), seed=seed, options={"npcs": npcs, "size": self.side, "view": view,
                                                                               "view_cell": cell}, max_players=players + 2)
        self.rng = rng = np.random.default_rng(seed)
        self.sinks = [_Sink(match if i == 0 else None) for i in range(players)]
        self.members = [self._join(i, sink, 0.0) for i, sink in enumerate(self.sinks)]
        self.lags = rng.integers(1, lag + 1, players)
        self.dirs = rng.integers(-1, 2, (players, 2))
        self.seqs = [0] * players
        self.now = 0.0
        self.cpu: list[float] = []
        self.retired: list[_Sink] = []  # the sinks of players who left (their bytes still count)
        self.steps = 0  # ticks stepped after the joins
        self.measured = 0  # of them, measured
        self.sent0 = self.updates0 = 0
        # The players join a few a tick (``MAX_JOINS``): the warm-up counts from the tick all of them are in, so that
        # the measured ticks are the steady state's, without the joins' keyframes and id changes.
        joining = 0
        while not all(m.joined for m in self.members):
            joining += 1
            if joining > players:
                raise RuntimeError(f"{players} players not all joined after {players} ticks")
            self.now = _step(match, self.members, self.now, None, rng, self.lags, self.dirs, self.seqs)

    def _join(self, i: int, sink: _Sink, now: float) -> Member:
        session = self.match.new_session()
        hello = session.receive(encode_client(Hello(1, f"p{i}", interest=True, roster_deltas=True)), now,
                                self.match.tick_count)
        assert isinstance(hello, Hello)
        return self.match.connect(hello, session, sink, now)

    def start(self) -> None:
        """The measured ticks begin: bytes and updates count from here."""
        everyone = self.sinks + self.retired
        self.sent0, self.updates0 = sum(s.bytes for s in everyone), sum(s.updates for s in everyone)

    def step(self, measured: bool) -> None:
        """One tick (its CPU time kept if ``measured``), with a leave and a join every ``churn`` measured ticks."""
        players, churn = self.players, self.churn
        if measured and churn and self.measured and self.measured % churn == 0 and players > 1:
            # One player leaves (its entity is despawned at the next tick) and a new one joins in its place.
            k = 1 + self.measured // churn % (players - 1)  # never the verifying client
            gone = self.members[k]
            assert gone.client is not None
            self.match.disconnect(gone, gone.client, self.now, left=True)
            self.retired.append(self.sinks[k])
            self.sinks[k] = _Sink(None)
            self.members[k] = self._join(players + self.steps, self.sinks[k], self.now)
        self.now = _step(self.match, self.members, self.now, self.cpu if measured else None, self.rng, self.lags,
                         self.dirs, self.seqs)
        self.sinks[0].verify()
        self.steps += 1
        self.measured += measured

    def result(self) -> dict[str, Any]:
        cpu_ms = np.array(self.cpu) * 1000
        everyone = self.sinks + self.retired
        updates = sum(s.updates for s in everyone) - self.updates0
        match = self.match
        return {
            "E": self.npcs, "P": self.players, "arena": self.side, "view": self.view,
            "cell": match.view_shape.cell if match.view_shape else None,
            "ticks": len(cpu_ms), "tick_cpu_ms_p50": round(float(np.percentile(cpu_ms, 50)), 3),
            "tick_cpu_ms_p99": round(float(np.percentile(cpu_ms, 99)), 3),
            "tick_cpu_ms_max": round(float(cpu_ms.max()), 3),
            "tick_cpu_ms_mean": round(float(cpu_ms.mean()), 3),
            "us_per_client_tick": round(float(cpu_ms.mean()) * 1000 / self.players, 2),
            "bytes_per_update": round((sum(s.bytes for s in everyone) - self.sent0) / max(updates, 1), 1),
            "encodes_per_tick": round(match.stats.encodes / max(match.stats.ticks, 1), 2),
            "desyncs": self.sinks[0].desyncs, "verified_updates": self.sinks[0].updates,
        }


def measure(npcs: int, players: int, view: int, cell: int, ticks: int, warmup: int, lag: int, seed: int,
            callgrind: bool = False, churn: int = 0) -> dict[str, Any]:
    """One E measured alone: its warm-up, then its ``ticks`` measured ticks."""
    bench = _Bench(npcs, players, view, cell, lag, seed, churn)
    for _ in range(warmup):
        bench.step(False)
    if callgrind:
        subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=True, capture_output=True)
    bench.start()
    for _ in range(ticks):
        bench.step(True)
    return bench.result()


def measure_alternating(npcs: list[int], players: int, view: int, cell: int, ticks: int, warmup: int, lag: int,
                        seed: int, block: int, churn: int = 0) -> list[dict[str, Any]]:
    """Every E's match in one process, their ticks taken in turns: ``block`` ticks of each in turn, the first of
    each block a settling tick, not measured (its caches hold the other match's data), until each has
    ``ticks`` measured ticks. A machine whose speed changes over the run (the other processes of a shared one)
    changes every E's figures alike, not the one measured while it did."""
    benches = [_Bench(e, players, view, cell, lag, seed, churn) for e in npcs]
    for bench in benches:
        for _ in range(warmup):
            bench.step(False)
        bench.start()
    while benches[0].measured < ticks:
        for bench in benches:
            bench.step(False)
            for _ in range(min(block - 1, ticks - bench.measured)):
                bench.step(True)
    return [b.result() for b in benches]


def _step(match: Match, members: list[Member], now: float, cpu: list[float] | None, rng: np.random.Generator,
          lags: npt.NDArray[np.int64], dirs: npt.NDArray[np.int64], seqs: list[int]) -> float:
    """One tick (its CPU time appended to ``cpu``, if given), then every player's input and ack; the new time."""
    now += 1 / match.tick_rate
    t0 = time.process_time()
    match.tick(now)
    spent = time.process_time() - t0
    if cpu is not None:
        cpu.append(spent)
    tick = match.tick_count
    players = len(members)
    turn = rng.random(players) < 0.05  # a random walk that changes direction now and then
    dirs[turn] = rng.integers(-1, 2, (int(turn.sum()), 2))
    for k, member in enumerate(members):
        seqs[k] += 1
        ack = max(1, tick - int(lags[k]) + 1)
        msg = member.session.receive(encode_client(Input(seqs[k], tuple(int(v) for v in dirs[k]), ack)), now, tick)
        if msg is not None:
            match.on_message(member, msg)
    return now


#: The figures compared with the first E's.
COMPARED = ("tick_cpu_ms_mean", "us_per_client_tick", "bytes_per_update")


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m tools.viewbench", description="A match's tick with filtered views, in-process, as E grows "
               "at WORKLOAD's density (the interest variant without the network).")
    p.add_argument("--npcs", type=lambda t: [number(int, 0)(x) for x in t.split(",")], default=[10_000, 100_000],
                   metavar="E[,E...]", help="NPCs, each measured in turn (default 10000,100000)")
    p.add_argument("--players", type=number(int, 1), default=500, metavar="P", help="players (default 500)")
    p.add_argument("--view", type=number(int, 1), default=600, metavar="UNITS", help="view radius (default 600)")
    p.add_argument("--view-cell", type=number(int, 0), default=0, metavar="UNITS", help="cell side (default 0: the server's)")
    p.add_argument("--ticks", type=number(int, 1), default=60, help="measured ticks (default 60)")
    p.add_argument("--warmup", type=number(int, 0), default=30, help="ticks after every player joined, before measuring (default 30)")
    p.add_argument("--lag", type=number(int, 1), default=3, metavar="TICKS",
                   help="players acknowledge 1 to TICKS ticks late (default 3)")
    p.add_argument("--churn", type=number(int, 0), default=0, metavar="TICKS",
                   help="every TICKS measured ticks one player leaves and a new one joins in its place (default 0: none)")
    p.add_argument("--seed", type=seed_int, default=1, help="match and walk seed (default 1)")
    p.add_argument("--alternate", type=number(int, 2), default=0, metavar="BLOCK",
                   help="every E's match in one process, BLOCK ticks of each in turn (the first of each block "
                        "not measured), so that the machine's changing speed weighs on every E alike "
                        "(default 0: each E measured alone, one after another)")
    p.add_argument("--json", action="store_true", help="one JSON line per E, then the comparison")
    p.add_argument("--callgrind", action="store_true",
                   help="under valgrind --tool=callgrind --instr-atstart=no: count the measured ticks' instructions only")
    args = p.parse_args(argv)
    if args.callgrind and "vgpreload" not in os.environ.get("LD_PRELOAD", ""):
        p.error("--callgrind: run under valgrind --tool=callgrind --instr-atstart=no")
    if args.alternate and args.callgrind:
        p.error("--callgrind counts one E alone: leave out --alternate")
    if args.alternate:
        runs = measure_alternating(args.npcs, args.players, args.view, args.view_cell, args.ticks, args.warmup,
                                   args.lag, args.seed, args.alternate, args.churn)
    else:
        runs = [measure(e, args.players, args.view, args.view_cell, args.ticks, args.warmup, args.lag, args.seed,
                        args.callgrind, args.churn) for e in args.npcs]
    for r in runs:
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(f"E={r['E']:>7} P={r['P']} arena {r['arena']} cell {r['cell']}: tick CPU p50 {r['tick_cpu_ms_p50']} ms, "
                  f"p99 {r['tick_cpu_ms_p99']} ms, {r['us_per_client_tick']} us per client, "
                  f"{r['bytes_per_update']} bytes per update, {r['encodes_per_tick']} encodes per tick, "
                  f"desyncs {r['desyncs']}", flush=True)
    first = runs[0]
    vs = [{"E": r["E"], **{k: round(r[k] / first[k], 3) if first[k] else None for k in COMPARED}} for r in runs]
    if args.json:
        print(json.dumps({"baseline_E": first["E"], "vs_first": vs}))
    else:
        for v in vs[1:]:
            print(f"E={v['E']} vs E={first['E']}: " + ", ".join(f"{k} x{v[k]}" for k in COMPARED))
    return 0 if all(r["desyncs"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

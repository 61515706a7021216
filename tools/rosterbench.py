"""``python -m tools.rosterbench``: what joins cost on the wire, whole rosters against roster deltas (issue 13).

A real ``Match`` of ``drift`` in-process, its clients in-memory sinks that
count the bytes they are sent (roster messages apart) and acknowledge every
tick, as players do. Players join ``--ramp`` a tick until ``P - 1`` are in
(the ramp), then one more joins alone (the join at P). It runs twice in one
sitting: every client with a plain ``hello`` (``whole``: the whole roster to
every client at every change, what every client got before roster deltas,
and what a client that does not ask still gets), then every client asking
for ``roster_deltas`` (``deltas``). Bytes are exact (the same every run);
the tick's CPU time (``time.process_time``, what the match spends, sockets
aside) is a ratio of the two runs of the same sitting. One client of each
run applies every roster message (``RosterMirror``) and must end with the
match's roster.

``--e2e``: the same ramp end to end instead, against the real server
(``python -m server --ruleset drift``), P lean clients of ``tools.loadgen``
(one of them verifying) joining at ``--connect-rate`` a second, plain hellos
then ``roster_deltas`` ones, a fresh server each: the server's CPU time and
the bytes it sent (``/metrics``) from before the first connection until every
client is in and one more second has passed.

Prints a table, or with ``--json`` one JSON line per run and a last one
comparing them.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from game.rules import get_ruleset
from server.match import Match, Member
from server.protocol.codec import decode_server, encode_client
from server.protocol.messages import Ack, Hello, Roster, RosterDelta
from server.protocol.roster import RosterMirror
from tools.bench import Proc, metric_sum, parse_metrics
from tools.cli import Parser, number
from tools.loadgen import LoadGen


def _is_roster(data: bytes) -> bool:
    """A ``roster`` or ``roster_delta`` frame: a map whose first key is ``t`` and whose tag starts ``roster``."""
    return data[1:3] == b"\xa1t" and data[4:10] == b"roster"


class _Sink:
    """A match's client that counts what it is sent; with ``mirror``, it applies every roster message."""

    def __init__(self, mirror: RosterMirror | None = None) -> None:
        self.bytes = 0
        self.roster_bytes = 0
        self.mirror = mirror

    def send(self, data: bytes) -> None:
        self.bytes += len(data)
        if _is_roster(data):
            self.roster_bytes += len(data)
            if self.mirror is not None:
                msg = decode_server(data)
                assert isinstance(msg, (Roster, RosterDelta))
                if not self.mirror.apply(msg):
                    raise AssertionError(f"a roster gap at revision {msg.rev}")

    def send_many(self, frames: Sequence[bytes]) -> None:
        for data in frames:
            self.send(data)

    def close(self, code: int, reason: str) -> None:
        pass

    def tell_and_close(self, code: int, reason: str) -> None:
        pass


def measure(players: int, ramp: int, npcs: int, deltas: bool) -> dict[str, Any]:
    """One run: ramp to ``players - 1`` at ``ramp`` joins a tick, a tick without joins, then one join (the tick of
    its welcome and the next, when its ack has brought it into the roster)."""
    match = Match(get_ruleset("drift"), options={"npcs": npcs}, max_players=players)
    mirror = RosterMirror()
    sinks: list[_Sink] = []
    members: list[Member] = []
    now = 0.0

    def join(n: int) -> None:
        for _ in range(n):
            sink = _Sink(mirror if not sinks else None)
            session = match.new_session()
            hello = session.receive(encode_client(Hello(1, f"player{len(sinks)}", roster_deltas=deltas)), now,
                                    match.tick_count)
            assert isinstance(hello, Hello)
            members.append(match.connect(hello, session, sink, now))
            sinks.append(sink)

    def tick() -> tuple[int, int, float]:
        """One tick and every client's ack of it: (bytes, roster bytes, CPU seconds) of the tick."""
        nonlocal now
        now += 1 / match.tick_rate
        before, roster_before = sum(s.bytes for s in sinks), sum(s.roster_bytes for s in sinks)
        t0 = time.process_time()
        match.tick(now)
        cpu = time.process_time() - t0
        ack = encode_client(Ack(match.tick_count))
        for m in members:
            msg = m.session.receive(ack, now, match.tick_count)
            if msg is not None:
                match.on_message(m, msg)  # a player enters the roster at its first ack
        return sum(s.bytes for s in sinks) - before, sum(s.roster_bytes for s in sinks) - roster_before, cpu

    ramp_ticks: list[tuple[int, int, float]] = []
    while len(sinks) < players - 1:
        join(min(ramp, players - 1 - len(sinks)))
        ramp_ticks.append(tick())
    tick()
    join(1)
    one_bytes, one_roster, one_cpu = (sum(v) for v in zip(tick(), tick()))
    if mirror.roster != match.roster():
        raise AssertionError("the mirror's roster is not the match's")
    ramp_bytes = np.array([b for b, _, _ in ramp_ticks])
    ramp_roster = np.array([r for _, r, _ in ramp_ticks])
    ramp_cpu_ms = np.array([c for _, _, c in ramp_ticks]) * 1000
    return {
        "mode": "deltas" if deltas else "whole", "P": players, "E": npcs, "ramp_per_tick": ramp,
        "join_bytes": one_bytes, "join_roster_bytes": one_roster, "join_tick_cpu_ms": round(one_cpu * 1000, 2),
        "ramp_ticks": len(ramp_ticks), "ramp_bytes": int(ramp_bytes.sum()), "ramp_roster_bytes": int(ramp_roster.sum()),
        "ramp_roster_bytes_max_tick": int(ramp_roster.max()), "ramp_bytes_max_tick": int(ramp_bytes.max()),
        "ramp_tick_cpu_ms_mean": round(float(ramp_cpu_ms.mean()), 2),
        "ramp_tick_cpu_ms_last10": round(float(ramp_cpu_ms[-10:].mean()), 2),
        "roster_rev": match.roster().rev,
    }


def measure_e2e(players: int, connect_rate: float, npcs: int, deltas: bool) -> dict[str, Any]:
    """One run against a fresh server: its CPU and bytes sent while ``players`` join, and one second after (a
    server swamped by whole rosters may take many seconds to answer ``/metrics``: the window ends when it does)."""
    proc = Proc(["-m", "server", "--host", "127.0.0.1", "--port", "0", "--ruleset", "drift", "--npcs", str(npcs),
                 "--max-players", str(players + 10), "--max-per-address", "0", "--no-record"], "server", None)
    try:
        def sent() -> float:
            return metric_sum(parse_metrics(proc.get("/metrics", timeout=60).decode()), "tickserver_sent_bytes_total")

        with LoadGen(proc.url, players, verify=1, connect_rate=connect_rate, lifetime=600, name="rb",
                     roster_deltas=deltas) as lg:
            bytes0, cpu0, h0, t0 = sent(), sum(proc.cpu()), proc.get_json("/healthz", timeout=60), time.monotonic()
            connected = lg.start(timeout=60.0 + players / connect_rate)
            time.sleep(1.0)
            bytes1, cpu1, h1, t1 = sent(), sum(proc.cpu()), proc.get_json("/healthz", timeout=60), time.monotonic()
            final = lg.stop()
    finally:
        proc.stop()
    return {
        "mode": "deltas" if deltas else "whole", "P": players, "E": npcs, "connect_rate": connect_rate,
        "connected": connected, "seconds": round(t1 - t0, 2), "ticks": int(h1["tick"]) - int(h0["tick"]),
        "ticks_dropped": int(h1.get("ticks_dropped", 0)) - int(h0.get("ticks_dropped", 0)),
        "server_cpu_s": round(cpu1 - cpu0, 2), "sent_bytes": int(bytes1 - bytes0),
        "desyncs": final["desyncs"], "errors": len(final["errors"]),
        "load_average": float(Path("/proc/loadavg").read_text().split()[0]),  # the machine's other work, at the end
    }


#: The figures compared: the deltas run's over the whole run's.
COMPARED: tuple[str, ...] = ("join_bytes", "join_roster_bytes", "join_tick_cpu_ms", "ramp_bytes", "ramp_roster_bytes",
            "ramp_roster_bytes_max_tick", "ramp_tick_cpu_ms_mean", "ramp_tick_cpu_ms_last10")


#: The end-to-end figures compared.
COMPARED_E2E: tuple[str, ...] = ("seconds", "ticks_dropped", "server_cpu_s", "sent_bytes")


def _line(r: dict[str, Any]) -> str:
    """One run as a line of the table."""
    if "connect_rate" in r:
        return (f"{r['mode']:>6}: P={r['P']} E={r['E']} joining at {r['connect_rate']:g}/s: {r['connected']} in, "
                f"{r['seconds']} s, {r['ticks']} ticks ({r['ticks_dropped']} dropped), server CPU "
                f"{r['server_cpu_s']} s, {r['sent_bytes']} bytes sent, desyncs {r['desyncs']}, errors {r['errors']}, "
                f"load average {r['load_average']}")
    return (f"{r['mode']:>6}: P={r['P']} E={r['E']}: the join at P: {r['join_bytes']} bytes sent, "
            f"{r['join_roster_bytes']} of them rosters, tick CPU {r['join_tick_cpu_ms']} ms; the ramp "
            f"({r['ramp_ticks']} ticks of {r['ramp_per_tick']} joins): {r['ramp_bytes']} bytes, "
            f"{r['ramp_roster_bytes']} rosters (at most {r['ramp_roster_bytes_max_tick']} in a tick), "
            f"tick CPU {r['ramp_tick_cpu_ms_mean']} ms mean, {r['ramp_tick_cpu_ms_last10']} ms the last 10")


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m tools.rosterbench", description="What joins cost on the wire, whole rosters against "
               "roster deltas, in-process: a ramp of joins to P - 1, then one join at P.")
    p.add_argument("--players", type=number(int, 2), default=1000, metavar="P", help="players at the end (default 1000)")
    p.add_argument("--ramp", type=number(int, 1), default=10, metavar="J", help="joins a tick in the ramp (default 10)")
    p.add_argument("--npcs", type=number(int, 0), default=2000, metavar="E", help="NPCs (default 2000, WORKLOAD's)")
    p.add_argument("--e2e", action="store_true", help="end to end: the real server and tools.loadgen's clients")
    p.add_argument("--connect-rate", type=number(float, 1), default=300.0, metavar="PER_S",
                   help="with --e2e: joins a second (default 300: 10 a tick at 30 Hz)")
    p.add_argument("--json", action="store_true", help="one JSON line per run, then the comparison")
    args = p.parse_args(argv)
    if args.e2e:
        runs = [measure_e2e(args.players, args.connect_rate, args.npcs, deltas) for deltas in (False, True)]
        compared, ok = COMPARED_E2E, all(r["desyncs"] == 0 and r["connected"] == r["P"] for r in runs)
    else:
        runs = [measure(args.players, args.ramp, args.npcs, deltas) for deltas in (False, True)]
        compared, ok = COMPARED, True
    vs = {k: round(runs[1][k] / runs[0][k], 4) if runs[0][k] else None for k in compared}
    for r in runs:
        print(json.dumps(r) if args.json else _line(r))
    print(json.dumps({"deltas_vs_whole": vs}) if args.json else
          "deltas / whole: " + ", ".join(f"{k} x{v}" for k, v in vs.items()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""``python -m tools.drainbench``: the gap a player sees when its match moves to another node (a drain).

Starts a ``redis-server`` on a free loopback port (or uses ``--redis``) and two
server processes on it, puts ``--players`` bots (``tools.bots``: they really
play; ``--verify`` of them decode and verify every update) in one match of
the first node, and then,
``--rounds`` times: lets them play ``--play`` seconds, starts one more node,
and SIGTERMs the node that hosts the match. The match moves, the bots
follow it (``moved``, a reconnect with their token), and each bot's
**hand-over gap** is the time from the last update it got from the old node
to the first from the new one (``GameClient.stats.move_gaps``); the part of
it the match spends frozen on the old node until the new one answers is read
from the old node's log.

The baseline, measured in the same run by the same bots: the time between
two updates while nothing moves (one tick, 33 ms at 30 Hz, when the machine
keeps up); its p99 is the longest pause a player sees anyway. The report
gives the gaps' p50, p99 and max, in ms and as multiples of the baseline's
p99, per round and over all; how long each drained node took to exit;
desyncs and errors (both must be 0). ``--json`` prints one object.

``--cost`` measures instead, in this process, what one hand-over costs in
CPU, without processes or sockets: the sender's capture and encoding, the
receiver's decoding and restore, for a match of ``--players`` players after
300 ticks (the median of 50 runs each), and the message's size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from game.rules import get_ruleset
from server.handover.format import Offer, decode, encode
from server.handover.transfer import capture, restore
from server.match import Match
from server.protocol.codec import encode_client
from server.protocol.messages import Hello
from tools.bench import BenchError, Proc
from tools.bots import Bot
from tools.cli import Parser, run_or_exit
from tools.client import GameClient

PROG = "python -m tools.drainbench"
#: The sender's log line of a hand-over done: how long the match was frozen until the receiver answered.
_MOVED = re.compile(r"moved to node \S+ at tick \d+ in (\d+) ms")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Redis:
    """A throw-away ``redis-server`` on a free loopback port (no persistence)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError("redis-server not found (apt-get install redis-server), or give --redis URL")
        self.port = free_port()
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BenchError(f"redis-server did not answer on port {self.port}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def start_node(args: argparse.Namespace, redis: str, n: int, replays: Path) -> Proc:
    return Proc(["-m", "server", "--host", "127.0.0.1", "--port", "0", "--redis", redis, "--ruleset", args.ruleset,
                 "--heartbeat", "0.5", "--node-ttl", "3", "--replay-dir", str(replays), "--drain-deadline", "10"],
                f"node {n}", None)


async def until_ready(node: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if json.loads(await asyncio.to_thread(node.get, "/healthz?ready")).get("ready"):
                return
        except (BenchError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"{node.name} not ready within {timeout:g} s: {node.tail()}")
        await asyncio.sleep(0.1)


def _ms(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    own = None if args.redis else Redis()
    redis = args.redis or (own.url if own is not None else "")
    replays = Path(tempfile.mkdtemp(prefix="drainbench-"))
    nodes: list[Proc] = []
    try:
        nodes += [start_node(args, redis, 1, replays), start_node(args, redis, 2, replays)]
        await asyncio.gather(*(until_ready(n) for n in nodes))
        host = nodes[0]
        mid = host.get_json("/api/match")["match"]
        intervals: list[float] = []
        last: dict[int, float] = {}

        def on_update(c: GameClient) -> None:
            now = time.perf_counter()
            if not c.moving and id(c) in last and c.stats.moves == moves_seen.get(id(c), 0):
                intervals.append(now - last[id(c)])
            last[id(c)] = now
            moves_seen[id(c)] = c.stats.moves

        moves_seen: dict[int, int] = {}
        bots = [Bot(i, f"{host.url}/{mid}", f"bot{i + 1}", args.seed, i < args.verify) for i in range(args.players)]
        for b in bots:
            b.client.on_update = on_update
        deadline = time.perf_counter() + 3600
        playing = [asyncio.create_task(b.play(deadline, 1.0)) for b in bots]
        rounds = []
        for r in range(1, args.rounds + 1):
            await asyncio.sleep(args.play)
            nodes.append(await asyncio.to_thread(start_node, args, redis, len(nodes) + 1, replays))  # the bots play on
            await until_ready(nodes[-1])
            t0 = time.perf_counter()
            host.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(host.proc.wait, 30)
            exit_s = time.perf_counter() - t0
            if code != 0:
                raise BenchError(f"{host.name} exited {code} after SIGTERM: {host.tail()}")
            end = time.monotonic() + 15
            while any(b.client.stats.moves < r for b in bots if b.connected) and time.monotonic() < end:
                await asyncio.sleep(0.05)
            gaps = [b.client.stats.move_gaps[r - 1] for b in bots if len(b.client.stats.move_gaps) >= r]
            frozen = [int(m.group(1)) for line in host.log if (m := _MOVED.search(line))]
            port = int(bots[0].client.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
            host = next(n for n in nodes if n.port == port)
            rounds.append({"round": r, "moved": len(gaps), "gap_ms_p50": _ms(gaps, 50), "gap_ms_max": _ms(gaps, 100),
                           "frozen_ms": frozen[-1] if frozen else None, "drained_node_exit_s": round(exit_s, 3)})
        for b in bots:
            await b.client.close()
        await asyncio.gather(*playing)
        gaps = [g for b in bots for g in b.client.stats.move_gaps]
        base = float(np.percentile(intervals, 99)) if intervals else None
        return {
            "players": args.players, "rounds": args.rounds, "ruleset": args.ruleset,
            "moved": len(gaps), "expected_moves": args.players * args.rounds,
            "gap_ms_p50": _ms(gaps, 50), "gap_ms_p99": _ms(gaps, 99), "gap_ms_max": _ms(gaps, 100),
            "baseline_update_interval_ms_p50": _ms(intervals, 50), "baseline_update_interval_ms_p99": _ms(intervals, 99),
            "gap_p50_x_baseline_p99": round(float(np.percentile(gaps, 50)) / base, 1) if gaps and base else None,
            "gap_max_x_baseline_p99": round(max(gaps) / base, 1) if gaps and base else None,
            "desyncs": sum(b.client.stats.desyncs for b in bots),
            "errors": [e for b in bots for e in ([b.error] if b.error else []) + b.client.stats.errors][:5],
            "per_round": rounds,
        }
    finally:
        for n in nodes:
            n.stop()
        if own is not None:
            own.stop()
        shutil.rmtree(replays, ignore_errors=True)


class _Quiet:
    """A client of the match that drops what it is sent (the cost measure has no sockets)."""

    def send(self, data: bytes) -> None:
        pass

    def send_many(self, frames: Sequence[bytes]) -> None:
        for data in frames:
            self.send(data)

    def close(self, code: int, reason: str) -> None:
        pass

    def tell_and_close(self, code: int, reason: str) -> None:
        pass


def cost(args: argparse.Namespace, runs: int = 50) -> dict[str, Any]:
    """Median milliseconds of each step of one hand-over of a match of ``args.players`` players (``--cost``)."""
    ruleset = get_ruleset(args.ruleset)
    match = Match(ruleset, match_id="m", seed=args.seed)
    for i in range(args.players):
        session = match.new_session()
        hello = session.receive(encode_client(Hello(1, f"p{i}")), 0.0, 0)
        assert isinstance(hello, Hello)
        match.connect(hello, session, _Quiet(), 0.0)
    for t in range(300):
        match.tick(t / 30)
    match.freeze()
    room = {"ruleset": args.ruleset, "tick_rate": match.tick_rate, "max_players": match.max_players}
    times: dict[str, list[float]] = {"capture": [], "encode": [], "decode": [], "restore": []}
    size = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        state = capture(match, room, now=10.0, wall=time.time(), replay="m.replay")
        t1 = time.perf_counter()
        data = encode(Offer("h", "a", 0.0, state))
        t2 = time.perf_counter()
        offer = decode(data)
        t3 = time.perf_counter()
        assert isinstance(offer, Offer)
        restored = restore(offer.state, ruleset, now=0.0)
        t4 = time.perf_counter()
        assert restored.state_hash() == match.state_hash()
        size = len(data)
        for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times[key].append(dt)
    out: dict[str, Any] = {"players": args.players, "ruleset": args.ruleset, "entities": match.world.count(),
                           "message_bytes": size}
    out.update({f"{k}_ms": round(float(np.median(v)) * 1000, 3) for k, v in times.items()})
    out["total_ms"] = round(sum(out[f"{k}_ms"] for k in times), 3)
    return out


def print_report(o: dict[str, Any]) -> None:
    print(f"{o['players']} {o['ruleset']} bots, {o['rounds']} drains: {o['moved']}/{o['expected_moves']} moves followed, "
          f"{o['desyncs']} desyncs, {len(o['errors'])} errors")
    print(f"  hand-over gap: p50 {o['gap_ms_p50']} ms, p99 {o['gap_ms_p99']} ms, max {o['gap_ms_max']} ms "
          f"({o['gap_p50_x_baseline_p99']}x / {o['gap_max_x_baseline_p99']}x the p99 of the time between two "
          f"updates otherwise, {o['baseline_update_interval_ms_p99']} ms; its p50 {o['baseline_update_interval_ms_p50']} ms)")
    for r in o["per_round"]:
        print(f"  round {r['round']}: {r['moved']} moved, gap p50 {r['gap_ms_p50']} ms, max {r['gap_ms_max']} ms "
              f"(frozen {r['frozen_ms']} ms from the freeze to the other node's answer); the drained node exited "
              f"{r['drained_node_exit_s']} s after SIGTERM")
    for e in o["errors"]:
        print(f"    {e}")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Measure the gap players see when a drain moves their match to another node.")
    p.add_argument("--players", type=int, default=20, help="bots in the match (default 20)")
    p.add_argument("--verify", type=int, default=4, metavar="N",
                   help="bots that decode and verify every update (desyncs); the others only read the ticks, which "
                        "spares the client's CPU (default 4)")
    p.add_argument("--rounds", type=int, default=3, help="drains, one after the other (default 3)")
    p.add_argument("--play", type=float, default=3.0, metavar="SECONDS", help="play between two drains (default 3)")
    p.add_argument("--ruleset", default="arena", help="the match's ruleset (default arena)")
    p.add_argument("--seed", type=int, default=1, help="the bots' seed (default 1)")
    p.add_argument("--redis", default=None, metavar="URL",
                   help="a Redis to use (default: a redis-server of its own on a free loopback port)")
    p.add_argument("--cost", action="store_true",
                   help="measure the CPU of one hand-over's steps in this process instead (capture, encode, decode, "
                        "restore), no servers")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.players <= 500 or not 1 <= args.rounds <= 20 or not 0 < args.play <= 60:
        build_parser().error("--players 1..500, --rounds 1..20, --play in (0, 60]")
    if args.cost:
        costs = cost(args)
        print(json.dumps(costs) if args.json else
              f"one hand-over ({args.ruleset}, {costs['players']} players, {costs['entities']} entities, "
              f"a {costs['message_bytes']}-byte message): capture {costs['capture_ms']} ms, encode "
              f"{costs['encode_ms']} ms, decode {costs['decode_ms']} ms, restore {costs['restore_ms']} ms "
              f"(total {costs['total_ms']} ms of CPU)")
        return 0
    out = run_or_exit(PROG, lambda: asyncio.run(bench(args)), BenchError)
    if args.json:
        print(json.dumps(out))
    else:
        print_report(out)
    return 0 if out["desyncs"] == 0 and not out["errors"] and out["moved"] == out["expected_moves"] else 1


if __name__ == "__main__":
    sys.exit(main())

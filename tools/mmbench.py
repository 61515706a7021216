"""``python -m tools.mmbench``: matchmaking latency under concurrent requests, over real HTTP on loopback.

Starts the real server (``python -m server --ruleset drift --npcs 0
--no-record --max-players M --seat-ttl 1 --empty-grace 1``, one process with
its embedded match directory) as a subprocess, then runs ``--rounds``
rounds: each opens ``--requests`` TCP connections together and sends one
``POST /api/matchmake`` (``join_or_create``, ruleset drift) on each at the
same moment, timing every request from its connect to its whole answer. The
seats are never taken, so each round fills the open matches and makes new
ones (about requests / max players of them): the figures cover joining, the
race for the last seats and creating matches. Every match made ticks from
then on (an empty drift match costs about 0.25 ms a tick, an arena one 2 ms:
the default is drift, so the figures are the matchmaker's more than the
ticks'), until its seats lapse and it is disposed of: the pause between
rounds (``--pause``, 3 s) lets that happen, so each round starts from the
default match alone.
The server's CPU per request is its CPU time during the bursts less what
its matches' ticks take (measured between bursts); the client's is this
process's own (both sides share the machine).

With ``--nodes N`` (2 or more) it measures a cluster too, in the same run:
first the one process above (the baseline), then a ``redis-server`` it
starts on a free loopback port (no persistence, a temporary directory) and
N server processes sharing their match directory in it (``--redis``); the
requests of each round go to the nodes in turn, so every node matchmakes
and places matches on the others. The server CPU is then all the nodes'
(Redis's is reported apart); the figures come with their ratios to the
baseline's.

Prints a table, or with ``--json`` one JSON line (the last line). Exits 1 if
any request failed or a match was over-filled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from typing import Any

from attrs import frozen

from tools.bench import BenchError, Proc, cpu_of
from tools.localcluster import LocalRedis, LocalRedisError
from tools.cli import Parser


@frozen
class HttpAnswer:
    """An HTTP response: its status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def http_request(host: str, port: int, method: str, path: str, body: bytes | None = None, *,
                       headers: dict[str, str] | None = None, timeout: float = 30.0) -> HttpAnswer:
    """One HTTP/1.1 request on a new connection (``Connection: close``), answer read to the end.

    Plain asyncio streams: hundreds run at once in one thread (urllib would
    need a thread each).

    Raises:
        OSError, TimeoutError, ValueError: no connection, no answer in time, not an HTTP answer.
    """
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
            head += [f"{k}: {v}" for k, v in (headers or {}).items()]
            if body is not None:
                head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
            raw = await reader.read()
        finally:
            writer.close()
    top, sep, rest = raw.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {raw[:80]!r}")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    length = fields.get("content-length")
    return HttpAnswer(int(parts[1]), fields, rest if length is None else rest[:int(length)])


async def post_json(host: str, port: int, path: str, body: Any, timeout: float = 30.0) -> HttpAnswer:
    """``POST path`` with ``body`` as JSON."""
    return await http_request(host, port, "POST", path, json.dumps(body).encode(), timeout=timeout)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``, not empty."""
    ranked = sorted(values)
    return ranked[max(0, math.ceil(q / 100 * len(ranked)) - 1)]


async def one_round(ports: list[int], requests: int, ruleset: str) -> tuple[list[float], list[str], dict[str, str]]:
    """``requests`` matchmakes sent together, to ``ports`` in turn: each one's seconds, the failures, the matches
    seated in (and the node each is on: its URL's base)."""
    go = asyncio.Event()
    times: list[float] = []
    failures: list[str] = []
    matches: dict[str, str] = {}

    async def one(port: int) -> None:
        await go.wait()
        t0 = time.perf_counter()
        try:
            answer = await post_json("127.0.0.1", port, "/api/matchmake", {"ruleset": ruleset})
        except (OSError, TimeoutError, ValueError) as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            return
        times.append(time.perf_counter() - t0)
        if answer.status != 200:
            failures.append(f"HTTP {answer.status}: {answer.body[:200]!r}")
        else:
            seat = answer.json()
            matches[seat["match"]] = seat["url"].split("/ws/", 1)[0]

    tasks = [asyncio.create_task(one(ports[i % len(ports)])) for i in range(requests)]
    await asyncio.sleep(0.05)  # every task waits at the barrier
    go.set()
    await asyncio.gather(*tasks)
    return times, failures, matches


async def measure(procs: list[Proc], args: argparse.Namespace) -> dict[str, Any]:
    """The rounds against ``procs`` (the nodes, in turn); their CPU is read around each burst and during each
    pause (ticks only)."""
    ports = [proc.port for proc in procs]

    def server_cpu() -> float:
        return sum(sum(proc.cpu()) for proc in procs)

    times: list[float] = []
    failures: list[str] = []
    seated: dict[str, str] = {}
    round_p99 = []
    burst = {"wall": 0.0, "server": 0.0, "client": 0.0}
    pause = {"wall": 0.0, "server": 0.0}
    t0 = time.perf_counter()
    for _ in range(args.rounds):
        w, s, c = time.perf_counter(), server_cpu(), time.process_time()
        ts, fs, found = await one_round(ports, args.requests, args.ruleset)
        w2, s2 = time.perf_counter(), server_cpu()
        burst["wall"] += w2 - w
        burst["server"] += s2 - s
        burst["client"] += time.process_time() - c
        times += ts
        failures += fs
        seated.update(found)
        if ts:
            round_p99.append(percentile(ts, 99))
        await asyncio.sleep(args.pause)
        pause["wall"] += time.perf_counter() - w2
        pause["server"] += server_cpu() - s2
    elapsed = time.perf_counter() - t0
    listing = (await http_request("127.0.0.1", ports[0], "GET", f"/api/matches?ruleset={args.ruleset}&limit=1000")).json()
    overfilled = [m["match"] for m in listing["matches"] if m["players"] + m["reserved"] > m["max_players"]]
    per_node = Counter(seated.values())
    ms = [t * 1000 for t in times]
    ticking = pause["server"] / pause["wall"] if pause["wall"] else 0.0  # CPU/s of the matches' ticks, between bursts
    served = max(0.0, burst["server"] - ticking * burst["wall"])
    total = args.requests * args.rounds
    return {
        "nodes": len(procs),
        "requests": args.requests, "rounds": args.rounds, "max_players": args.max_players, "ruleset": args.ruleset,
        "answered": len(times), "failed": len(failures), "failures": failures[:5],
        "latency_ms_p50": round(percentile(ms, 50), 2) if ms else None,
        "latency_ms_p99": round(percentile(ms, 99), 2) if ms else None,
        "latency_ms_max": round(max(ms), 2) if ms else None,
        "round_p99_ms": [round(t * 1000, 2) for t in round_p99],
        "server_cpu_ms_per_request": round(served / total * 1000, 3),
        "client_cpu_ms_per_request": round(burst["client"] / total * 1000, 3),
        "server_ticking_cpu": round(ticking, 3),
        "matches_seated_in": len(seated), "matches_listed": len(listing["matches"]), "overfilled": overfilled,
        "matches_seated_in_per_node": sorted(per_node.values(), reverse=True),
        "seconds": round(elapsed, 2),
    }


def servers(args: argparse.Namespace, n: int, redis: str | None) -> list[Proc]:
    """``n`` servers of the benchmark's settings (``redis``: sharing their directory there); stop them after."""
    flags = ["-m", "server", "--host", "127.0.0.1", "--port", "0", "--no-record", "--ruleset", args.ruleset,
             "--npcs", "0", "--max-players", str(args.max_players), "--seat-ttl", "1", "--empty-grace", "1",
             "--max-per-address", "0",  # every client is 127.0.0.1 here
             *(["--redis", redis] if redis else []), *args.server_arg]
    procs: list[Proc] = []
    try:
        for i in range(n):
            procs.append(Proc(flags, f"node {i + 1}" if redis else "server", None))
    except BaseException:
        for proc in procs:
            proc.stop()
        raise
    return procs


def measured(procs: list[Proc], args: argparse.Namespace) -> dict[str, Any]:
    try:
        if len(procs) > 1:
            asyncio.run(_all_ready(procs))
        return asyncio.run(measure(procs, args))
    finally:
        for proc in procs:
            proc.stop()


async def _all_ready(procs: list[Proc], timeout: float = 20.0) -> None:
    """Wait until every node answers ``/healthz?ready`` 200 (registered in the directory)."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        while (await http_request("127.0.0.1", proc.port, "GET", "/healthz?ready")).status != 200:
            if time.monotonic() > deadline:
                raise BenchError(f"{proc.name} not ready within {timeout:g} s: {proc.tail()}")
            await asyncio.sleep(0.1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One server in memory; with ``--nodes`` N > 1, then N nodes on a Redis of its own, and the ratios."""
    baseline = measured(servers(args, 1, None), args)
    if args.nodes == 1:
        return baseline
    try:
        redis = LocalRedis().start()
    except LocalRedisError as exc:
        raise BenchError(f"--nodes {args.nodes}: {exc}") from None
    try:
        assert redis.proc is not None
        before = sum(cpu_of(redis.proc.pid))
        cluster = measured(servers(args, args.nodes, redis.url), args)
        used = sum(cpu_of(redis.proc.pid)) - before
        cluster["redis_cpu_ms_per_request"] = round(used / (args.requests * args.rounds) * 1000, 3)
    finally:
        redis.stop()
    return {"baseline": baseline, "cluster": cluster,
            "p50_ratio": _ratio(cluster["latency_ms_p50"], baseline["latency_ms_p50"]),
            "p99_ratio": _ratio(cluster["latency_ms_p99"], baseline["latency_ms_p99"])}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tools.mmbench",
               description="Matchmaking latency: N concurrent POST /api/matchmake over loopback HTTP to a server it starts.")
    p.add_argument("--requests", type=int, default=200, metavar="N", help="concurrent requests per round (default 200)")
    p.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--max-players", type=int, default=16, metavar="M", help="players per match (default 16)")
    p.add_argument("--ruleset", default="drift", help="ruleset of the server's default room, matchmade for (default drift)")
    p.add_argument("--pause", type=float, default=3.0, metavar="SECONDS",
                   help="pause between rounds: the last round's matches are disposed of meanwhile (default 3)")
    p.add_argument("--nodes", type=int, default=1, metavar="N",
                   help="also measure N servers sharing a Redis it starts (--redis), the requests sent to each in turn, "
                   "after one server in memory as the baseline (default 1: only that)")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for python -m server (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON line (the last line) instead of a table")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("requests", "rounds", "max_players"):
        if not 1 <= getattr(args, name) <= 10_000:
            parser.error(f"--{name.replace('_', '-')} must be in 1..10000")
    if not 1 <= args.nodes <= 8:
        parser.error("--nodes must be in 1..8")
    try:
        out = run(args)
    except BenchError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    results = [out] if args.nodes == 1 else [out["baseline"], out["cluster"]]
    if args.json:
        print(json.dumps(out))
    else:
        for result in results:
            print_result(result)
        if args.nodes > 1:
            print(f"cluster / baseline: p50 x{out['p50_ratio']}, p99 x{out['p99_ratio']}; Redis CPU per request "
                  f"{out['cluster']['redis_cpu_ms_per_request']} ms")
    return 0 if all(not r["failed"] and not r["overfilled"] for r in results) else 1


def print_result(out: dict[str, Any]) -> None:
    where = "one server, directory in memory" if out["nodes"] == 1 else f"{out['nodes']} nodes sharing Redis"
    print(f"{out['rounds']} rounds of {out['requests']} concurrent matchmakes ({out['ruleset']}, "
          f"{out['max_players']} players a match), {where}, {out['seconds']} s")
    print(f"  latency p50 {out['latency_ms_p50']} ms, p99 {out['latency_ms_p99']} ms, max {out['latency_ms_max']} ms")
    print(f"  p99 per round, ms: {out['round_p99_ms']}")
    print(f"  CPU per request: server {out['server_cpu_ms_per_request']} ms (the matches' ticks, "
          f"{out['server_ticking_cpu']} CPU s/s between bursts, taken out), client {out['client_cpu_ms_per_request']} ms")
    print(f"  answered {out['answered']}, failed {out['failed']}; seated in {out['matches_seated_in']} matches "
          f"(per node {out['matches_seated_in_per_node']}), {out['matches_listed']} listed at the end, "
          f"over-filled: {len(out['overfilled'])}")
    for line in out["failures"]:
        print(f"  failure: {line}")


if __name__ == "__main__":
    sys.exit(main())

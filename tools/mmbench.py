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

Prints a table, or with ``--json`` one JSON line (the last line). Exits 1 if
any request failed or the server over-filled a match.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from typing import Any

from attrs import frozen

from tools.bench import BenchError, Proc
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


async def one_round(port: int, requests: int, ruleset: str) -> tuple[list[float], list[str], set[str]]:
    """``requests`` matchmakes sent together: each one's seconds, the failures, the matches seated in."""
    go = asyncio.Event()
    times: list[float] = []
    failures: list[str] = []
    matches: set[str] = set()

    async def one() -> None:
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
            matches.add(answer.json()["match"])

    tasks = [asyncio.create_task(one()) for _ in range(requests)]
    await asyncio.sleep(0.05)  # every task waits at the barrier
    go.set()
    await asyncio.gather(*tasks)
    return times, failures, matches


async def measure(proc: Proc, args: argparse.Namespace) -> dict[str, Any]:
    """The rounds against ``proc``; the server's CPU is read around each burst and during each pause (ticks only)."""
    port = proc.port
    times: list[float] = []
    failures: list[str] = []
    seated: set[str] = set()
    round_p99 = []
    burst = {"wall": 0.0, "server": 0.0, "client": 0.0}
    pause = {"wall": 0.0, "server": 0.0}
    t0 = time.perf_counter()
    for _ in range(args.rounds):
        w, s, c = time.perf_counter(), sum(proc.cpu()), time.process_time()
        ts, fs, found = await one_round(port, args.requests, args.ruleset)
        w2, s2 = time.perf_counter(), sum(proc.cpu())
        burst["wall"] += w2 - w
        burst["server"] += s2 - s
        burst["client"] += time.process_time() - c
        times += ts
        failures += fs
        seated |= found
        if ts:
            round_p99.append(percentile(ts, 99))
        await asyncio.sleep(args.pause)
        pause["wall"] += time.perf_counter() - w2
        pause["server"] += sum(proc.cpu()) - s2
    elapsed = time.perf_counter() - t0
    listing = (await http_request("127.0.0.1", port, "GET", f"/api/matches?ruleset={args.ruleset}&limit=1000")).json()
    overfilled = [m["match"] for m in listing["matches"] if m["players"] + m["reserved"] > m["max_players"]]
    ms = [t * 1000 for t in times]
    ticking = pause["server"] / pause["wall"] if pause["wall"] else 0.0  # CPU/s of the matches' ticks, between bursts
    served = max(0.0, burst["server"] - ticking * burst["wall"])
    total = args.requests * args.rounds
    return {
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
        "seconds": round(elapsed, 2),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    proc = Proc(["-m", "server", "--host", "127.0.0.1", "--port", "0", "--no-record", "--ruleset", args.ruleset,
                 "--npcs", "0", "--max-players", str(args.max_players), "--seat-ttl", "1", "--empty-grace", "1",
                 *args.server_arg], "server", None)
    try:
        return asyncio.run(measure(proc, args))
    finally:
        proc.stop()


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tools.mmbench",
               description="Matchmaking latency: N concurrent POST /api/matchmake over loopback HTTP to a server it starts.")
    p.add_argument("--requests", type=int, default=200, metavar="N", help="concurrent requests per round (default 200)")
    p.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--max-players", type=int, default=16, metavar="M", help="players per match (default 16)")
    p.add_argument("--ruleset", default="drift", help="ruleset of the server's default room, matchmade for (default drift)")
    p.add_argument("--pause", type=float, default=3.0, metavar="SECONDS",
                   help="pause between rounds: the last round's matches are disposed of meanwhile (default 3)")
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
    try:
        out = run(args)
    except BenchError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['rounds']} rounds of {out['requests']} concurrent matchmakes ({out['ruleset']}, "
              f"{out['max_players']} players a match), {out['seconds']} s")
        print(f"  latency p50 {out['latency_ms_p50']} ms, p99 {out['latency_ms_p99']} ms, max {out['latency_ms_max']} ms")
        print(f"  p99 per round, ms: {out['round_p99_ms']}")
        print(f"  CPU per request: server {out['server_cpu_ms_per_request']} ms (the matches' ticks, "
              f"{out['server_ticking_cpu']} CPU s/s between bursts, taken out), client {out['client_cpu_ms_per_request']} ms")
        print(f"  answered {out['answered']}, failed {out['failed']}; seated in {out['matches_seated_in']} matches, "
              f"{out['matches_listed']} listed, over-filled: {len(out['overfilled'])}")
        for line in out["failures"]:
            print(f"  failure: {line}")
    return 0 if not out["failed"] and not out["overfilled"] else 1


if __name__ == "__main__":
    sys.exit(main())

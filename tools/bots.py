"""``python -m tools.bots``: headless bot players for play-testing and light load.

Each bot is a ``GameClient`` that keeps a verified mirror of the world and
sends one input per batch of updates, chosen by the ruleset's brain
(``tools.brains``) from what it *sees*: the others where its interpolation
shows them (``GameClient.seen``, a couple of ticks behind the newest update,
which its input's ``view`` names for the server's lag compensation) and
itself where it predicts itself. In ``arena`` they chase pellets and shoot
at enemies, in ``drift`` they do the random walk of WORKLOAD.md. At the end
a summary is printed (with the prediction's corrections); with ``--json`` the
last line is one JSON object.

Bots connect to a match directly (``--url ws://HOST:PORT/ws``) or each gets a
seat through matchmaking (``--matchmake RULESET --url http://HOST:PORT``) and
connects where its seat says, possibly another node.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from server.cli import positive, seed_int
from tools import brains
from tools.cli import Parser, number
from server.rooms.errors import MatchmakeError
from tools.client import MATCHMAKE_MODES, GameClient, NoMatchmakeAnswer, Seat, ServerClosed, matchmake

#: Where bots play when ``--url`` is not given: a match directly, or a server to matchmake at.
DEFAULT_WS_URL = "ws://127.0.0.1:8765/ws"
DEFAULT_HTTP_URL = "http://127.0.0.1:8765"


def decide(ruleset: str, client: GameClient, me: int | None, prev: list[int], tick: int, seed: int, bot: int) -> list[int]:
    """The bot's next input: the arena brain on what it sees when it has a verified mirror, else the random walk."""
    seen = client.seen() if ruleset == "arena" and me is not None else None
    if seen is not None and me is not None:
        _, ids, cols = seen
        return [int(v) for v in brains.arena_brain(cols, ids, me, tick, seed)]
    walk = [int(v) for v in brains.drift_brain(prev[:2], tick, seed, bot)]
    return (walk + [0] * len(prev))[: len(prev)]


class Bot:
    """One bot: a client and the loop that plays with it.

    Args:
        url: the match's WebSocket URL, or (with ``get_seat``) the server's HTTP one.
        get_seat: matchmaking: the bot connects where the seat this gives says.
    """

    def __init__(self, index: int, url: str, name: str, seed: int, verify: bool,
                 get_seat: Callable[[], Awaitable[Seat]] | None = None) -> None:
        self.index = index
        self.client = GameClient(url, name, decode=verify)
        self.get_seat = get_seat
        self.seed = seed
        self.verify = verify
        self.connected = False
        self.error: str | None = None
        self.started = 0.0

    async def play(self, deadline: float, ping_interval: float) -> None:
        c = self.client
        try:
            if self.get_seat is not None:
                c.take_seat(await self.get_seat())
        except MatchmakeError as exc:
            self.error = f"bot {self.index}: no seat: {exc}"
            return
        except NoMatchmakeAnswer as exc:
            self.error = f"bot {self.index}: {exc}"
            return
        try:
            welcome = await c.connect()
        except (OSError, ServerClosed, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            self.error = f"bot {self.index}: could not join: {join_error(c.url, exc)}"
            return
        self.connected = True
        self.started = time.perf_counter()
        ruleset = welcome.ruleset["name"]
        me = welcome.entity
        values: list[int] = [0] * len(welcome.ruleset["inputs"])
        next_ping = 0.0
        seen = 0
        try:
            while time.perf_counter() < deadline and not c.closed:
                try:
                    now_seen = await c.wait_updates(seen, timeout=max(0.05, min(2.0, deadline - time.perf_counter())))
                except TimeoutError:
                    continue
                new, seen = now_seen - seen, now_seen
                if c.closed:
                    break
                tick = c.tick or 0
                values = decide(ruleset, c, me, values, tick, self.seed, self.index)
                await c.answer(values, new)
                now = time.perf_counter()
                if now >= next_ping:
                    next_ping = now + ping_interval
                    await c.ping()
        except Exception as exc:  # a bot's failure is reported, never fatal to the others
            if not c.closed:
                self.error = f"bot {self.index}: {type(exc).__name__}: {exc}"
        finally:
            if c.closed and c.close_code not in (None, 1000, 1001) and self.error is None:
                self.error = f"bot {self.index}: closed by server {c.close_code} {c.close_reason}"
            await c.close()


def use_instead(url: str) -> str:
    """What to give ``--url`` instead of ``url``: the default match's WebSocket URL, or a match's."""
    u = urllib.parse.urlsplit(url)
    base = f"{u.scheme}://{u.netloc}"
    return f"use {base}/ws (the default match) or {base}/ws/MATCH (one of GET {base.replace('ws', 'http', 1)}/api/matches)"


def join_error(url: str, exc: BaseException) -> str:
    """One line saying why a bot could not join ``url``, and what to use instead when it names no match."""
    if isinstance(exc, InvalidStatus):
        response = exc.response
        try:
            body = json.loads(response.body or b"")
        except (ValueError, UnicodeDecodeError):
            body = None
        said = body.get("error") if isinstance(body, dict) else None
        if response.status_code == 404 and isinstance(body, dict) and "matches" in body:
            matches = ", ".join(map(str, body["matches"])) or "none"
            return f"{said or 'no such match'} (its matches: {matches}); {use_instead(url)}"
        if response.status_code in (200, 404):
            return f"{url} is not a WebSocket path of the server (HTTP {response.status_code}); {use_instead(url)}"
        return f"the server refused the WebSocket with HTTP {response.status_code}" + (f": {said}" if said else "")
    if isinstance(exc, InvalidURI):
        return f"{url} is not a WebSocket URL ({exc.msg}); {use_instead(url)}"
    if isinstance(exc, ConnectionRefusedError):
        u = urllib.parse.urlsplit(url)
        return f"nothing listens at {u.netloc} (connection refused): is the server running there?"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


def summarize(bots: list[Bot], duration: float, ruleset: str | None) -> dict[str, Any]:
    joined = [b for b in bots if b.connected]
    rates, bps, per_update, rtts = [], [], [], []
    for b in joined:
        s = b.client.stats
        span = (s.last_update - s.first_update) if s.first_update and s.last_update else 0.0
        if span > 0 and s.updates > 1:
            rates.append((s.updates - 1) / span)
            bps.append(s.bytes / span)
        if s.updates:
            per_update.append(s.bytes / s.updates)
        rtts.extend(s.rtts)
    errors = [b.error for b in bots if b.error] + [e for b in joined for e in b.client.stats.errors]
    return {
        "bots": len(bots),
        "connected": len(joined),
        "matches": len({b.client.welcome.match for b in joined if b.client.welcome is not None}),
        "still_connected": sum(1 for b in joined if b.client.close_code in (None, 1000) and b.error is None),
        "ruleset": ruleset,
        "duration_s": round(duration, 3),
        "ticks_received": int(sum(b.client.stats.updates for b in joined)),
        "updates_per_s": round(float(np.mean(rates)), 2) if rates else 0.0,
        "updates_per_s_min": round(float(np.min(rates)), 2) if rates else 0.0,
        "bytes_per_s": round(float(np.mean(bps)), 1) if bps else 0.0,
        "bytes_per_update": round(float(np.mean(per_update)), 1) if per_update else 0.0,
        "keyframes": int(sum(b.client.stats.keyframes for b in joined)),
        "rtt_ms_p50": round(float(np.percentile(rtts, 50)), 3) if rtts else None,
        "rtt_ms_p99": round(float(np.percentile(rtts, 99)), 3) if rtts else None,
        "desyncs": int(sum(b.client.stats.desyncs for b in joined)),
        "resyncs": int(sum(b.client.stats.resyncs for b in joined)),
        "missing_base": int(sum(b.client.stats.missing_base for b in joined)),
        "predicted": int(sum(b.client.stats.predicted for b in joined)),
        "corrections": int(sum(b.client.stats.corrections for b in joined)),
        "errors": len(errors),
        "error_messages": errors[:5],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    verify_count = args.count if args.verify is None else min(args.verify, args.count)
    get_seat = None
    if args.matchmake is not None:
        get_seat = functools.partial(matchmake, args.url, args.matchmake, mode=args.mode or "join_or_create",
                                     labels=dict(args.labels or ()))
    bots = [Bot(i, args.url, f"{args.name}{i + 1}", args.seed, i < verify_count, get_seat) for i in range(args.count)]
    deadline = start + args.duration
    tasks = []
    for i, bot in enumerate(bots):
        tasks.append(asyncio.create_task(bot.play(deadline, args.ping_interval)))
        if args.connect_rate and i + 1 < len(bots):
            await asyncio.sleep(1.0 / args.connect_rate)
    await asyncio.gather(*tasks)
    ruleset = next((b.client.welcome.ruleset["name"] for b in bots if b.client.welcome), None)
    return summarize(bots, time.perf_counter() - start, ruleset)


def print_human(summary: dict[str, Any]) -> None:
    n = summary["matches"]
    ruleset = f" {summary['ruleset']}" if summary["ruleset"] else ""
    print(f"{summary['connected']}/{summary['bots']} bots joined {n}{ruleset} match{'' if n == 1 else 'es'} for {summary['duration_s']} s")
    print(f"  updates: {summary['updates_per_s']}/s per bot (min {summary['updates_per_s_min']}), {summary['ticks_received']} in all, {summary['keyframes']} keyframes")
    print(f"  received: {summary['bytes_per_s']:.0f} B/s per bot, {summary['bytes_per_update']:.0f} B per update")
    if summary["rtt_ms_p50"] is not None:
        print(f"  rtt: p50 {summary['rtt_ms_p50']} ms, p99 {summary['rtt_ms_p99']} ms")
    print(f"  desyncs: {summary['desyncs']}, resyncs: {summary['resyncs']}, errors: {summary['errors']}")
    print(f"  prediction: {summary['corrections']} corrections in {summary['predicted']} updates")
    for e in summary["error_messages"]:
        print(f"    {e}")


def label(text: str) -> tuple[str, str]:
    """A ``KEY=VALUE`` label of ``--labels`` (the server checks the key and the value)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tools.bots", description="Connect bot players that really play, then print a summary.")
    p.add_argument("--url", default=None,
                   help=f"where the bots play: a match's WebSocket URL ws://HOST:PORT/ws (or /ws/MATCH), connected to directly "
                        f"(default {DEFAULT_WS_URL}); with --matchmake, the server's HTTP address http://HOST:PORT "
                        f"(default {DEFAULT_HTTP_URL})")
    p.add_argument("--matchmake", metavar="RULESET",
                   help="get each bot a seat in a match of RULESET through POST /api/matchmake at --url, and connect where "
                        "the seat says (possibly another node)")
    p.add_argument("--mode", choices=MATCHMAKE_MODES, default=None,
                   help="with --matchmake: join an open match or create one (join_or_create, the default), create a new one "
                        "(create; requests at the same moment may share it), or only join an open one (join)")
    p.add_argument("--labels", type=label, nargs="+", action="extend", metavar="KEY=VALUE",
                   help="with --matchmake: labels the match must have (join) or gets (create), e.g. --labels mode=ffa region=eu")
    p.add_argument("--count", type=positive(int), default=10, help="number of bots (default 10)")
    p.add_argument("--duration", type=positive(float), default=10.0, metavar="SECONDS", help="how long they play (default 10)")
    p.add_argument("--name", default="bot", help="name prefix; bots are named PREFIX1, PREFIX2... (default bot)")
    p.add_argument("--seed", type=seed_int, default=1, help="seed of the bots' decisions, 0 to 2**63-1 (default 1)")
    p.add_argument("--verify", type=number(int, 0), default=None, metavar="N",
                   help="only the first N bots decode and verify every update; the rest just acknowledge (default: all)")
    p.add_argument("--connect-rate", type=number(float, 0), default=200.0, metavar="PER_S", help="bots connecting per second (default 200; 0: all at once)")
    p.add_argument("--ping-interval", type=positive(float), default=1.0, metavar="SECONDS", help="RTT probe period per bot (default 1)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    return p


def check_target(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fill in the default ``--url``; a usage error (exit 2) for a combination that cannot work."""
    if args.matchmake is None:
        if args.mode is not None or args.labels:
            parser.error("--mode and --labels go with --matchmake RULESET")
        args.url = args.url or DEFAULT_WS_URL
        if args.url.startswith(("http://", "https://")):
            parser.error(f"--url {args.url} is an HTTP address: add --matchmake RULESET to get seats there, "
                         "or give a match's WebSocket URL ws://HOST:PORT/ws")
        if not args.url.startswith(("ws://", "wss://")):
            parser.error(f"--url must start with ws:// or wss://, got {args.url!r}")
        try:
            path = urllib.parse.urlsplit(args.url).path
            urllib.parse.urlsplit(args.url).port  # noqa: B018 - a bad port raises
        except ValueError as exc:
            parser.error(f"--url {args.url}: {exc}")
        if path != "/ws" and not path.startswith("/ws/"):
            parser.error(f"--url {args.url} names no match: {use_instead(args.url)}")
        return
    args.url = args.url or DEFAULT_HTTP_URL
    if args.url.startswith(("ws://", "wss://")):
        parser.error(f"--matchmake asks the server's HTTP address for seats: give --url http://HOST:PORT, not the "
                     f"WebSocket URL {args.url}")
    if not args.url.startswith(("http://", "https://")):
        parser.error(f"with --matchmake, --url must start with http:// or https://, got {args.url!r}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_target(parser, args)
    try:
        summary = asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(summary))
    if summary["connected"] == 0:
        first = summary["error_messages"][0].split(": could not join: ", 1)[-1] if summary["error_messages"] else "?"
        print(f"python -m tools.bots: error: no bot could join {args.url}: {first}", file=sys.stderr)
        return 1
    if not args.json:
        print_human(summary)
    return 0 if summary["desyncs"] == 0 and summary["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

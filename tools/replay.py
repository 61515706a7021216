"""``python -m tools.replay``: inspect, verify and play recorded matches (REPLAY.md).

- ``info FILE``: the format version, the header, duration, players, final
  scores (with the players' names), checkpoints, size.
- ``verify FILE``: re-simulate from the seed and the recorded inputs and
  compare every checkpoint (and keyframe, and the end record); exit 0 when
  everything matches, 1 at the first divergence. ``--json`` prints one
  object; a progress bar goes to stderr when it is a terminal.
- ``play PATH``: serve a replay file, or every replay of a directory, to the
  browser viewer (``client_web/replay.html``) through the live protocol.

Exit codes: 0 fine (a replay cut short by a killed server still verifies up
to its last complete frame, with a warning); 1 a verification failed (or,
with ``--strict``, the replay is incomplete); 2 a bad file (missing, not a
replay, newer format, unknown ruleset, corrupt, truncated before its header)
or bad arguments: one line on stderr, never a traceback; 141 the reader of
the output went away (``info FILE | head -1``), quietly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn, TextIO

import numpy as np
from attrs import frozen

from game.errors import GameError
from game.rules import RULESET_NAMES, Ruleset, get_ruleset
from game.world import state_hash
from server.cli import port, positive
from server.protocol.delta import Snapshot
from server.replayfile import (
    CorruptReplay,
    Replay,
    Replayer,
    ReplayError,
    UnknownRuleset,
    check_ruleset,
    parse_replay,
)

PROG = "python -m tools.replay"


class BadFile(Exception):
    """A file this tool cannot use: the message is the whole story (exit 2)."""


def load(path: Path) -> Replay:
    """Read and parse a replay. BadFile with one line of explanation otherwise."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadFile(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BadFile(f"{path}: is a directory, not a replay file") from None
    except OSError as exc:
        raise BadFile(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return parse_replay(data)
    except ReplayError as exc:
        raise BadFile(f"{path}: {exc}") from None


def ruleset_for(replay: Replay, path: Path) -> Ruleset:
    """The replay's ruleset, at the recorded version with the recorded columns and inputs. BadFile otherwise."""
    h = replay.header
    try:
        ruleset = get_ruleset(h.ruleset)
    except GameError:
        raise BadFile(f"{path}: {UnknownRuleset(h.ruleset, h.ruleset_version, 'this build knows ' + ', '.join(RULESET_NAMES))}") from None
    try:
        check_ruleset(h, ruleset)
    except ReplayError as exc:
        raise BadFile(f"{path}: {exc}") from None
    return ruleset


def replayer_for(replay: Replay, path: Path) -> Replayer:
    try:
        return Replayer(replay, ruleset_for(replay, path))
    except ReplayError as exc:
        raise BadFile(f"{path}: {exc}") from None


def warn(path: Path, replay: Replay) -> None:
    for w in replay.warnings():
        print(f"{PROG}: warning: {path}: {w}", file=sys.stderr)


# -- info ----------------------------------------------------------------------


def info(replay: Replay, path: Path) -> dict[str, Any]:
    h = replay.header
    ticks = replay.last_tick - replay.first_tick
    seconds = ticks / h.tick_rate
    joined = replay.players()
    player_minutes = 0.0
    present: dict[int, int] = {}
    for t in replay.ticks:  # player-ticks, for the size per player-minute
        for p in t.leaves:
            start = present.pop(p, None)
            if start is not None:
                player_minutes += (t.tick - start) / h.tick_rate / 60
        for p, _ in t.joins:
            present[p] = t.tick
    player_minutes += sum(replay.last_tick - s for s in present.values()) / h.tick_rate / 60
    return {
        "file": str(path), "format_version": replay.version, "size": replay.size, "complete": replay.complete,
        "match": h.match, "ruleset": h.ruleset, "ruleset_version": h.ruleset_version, "seed": h.seed,
        "options": h.options, "tick_rate": h.tick_rate, "start_time": h.start_time,
        "end_time": replay.end.end_time if replay.end else None,
        "first_tick": replay.first_tick, "last_tick": replay.last_tick, "ticks": ticks,
        "duration_s": round(seconds, 3),
        "players": [{"player": p, "name": n} for p, n in sorted(joined.items())],
        "score_table": None if replay.end is None else [
            {"player": p, "name": joined.get(p), "score": s}
            for p, s in sorted(replay.end.scores.items(), key=lambda ps: (-ps[1], ps[0]))],
        "scores": None if replay.end is None else {str(p): s for p, s in sorted(replay.end.scores.items())},
        "final_hash": replay.end.hash if replay.end else None,
        "checkpoints": len(replay.checkpoints), "checkpoint_every": h.checkpoint_every,
        "keyframes": len(replay.keyframes), "keyframe_every": h.keyframe_every,
        "bytes_per_s": round(replay.size / seconds, 1) if seconds else None,
        "player_minutes": round(player_minutes, 3),
        "bytes_per_player_minute": round(replay.size / player_minutes, 1) if player_minutes else None,
        "warnings": replay.warnings(),
    }


def print_info(d: dict[str, Any], out: TextIO) -> None:
    opts = ", ".join(f"{k}={v}" for k, v in d["options"].items()) or "none"
    print(f"file:        {d['file']} ({d['size']} bytes, format version {d['format_version']}, "
          f"{'complete' if d['complete'] else 'INCOMPLETE'})", file=out)
    print(f"match:       {d['match']}: {d['ruleset']} v{d['ruleset_version']}, seed {d['seed']}, options {opts}", file=out)
    print(f"started:     {d['start_time']}" + (f", ended {d['end_time']}" if d["end_time"] else ""), file=out)
    print(f"duration:    ticks {d['first_tick']}..{d['last_tick']} ({d['ticks']} ticks, {d['duration_s']:.1f} s at {d['tick_rate']} Hz)", file=out)
    players = ", ".join(f"{p['player']} {p['name']}" for p in d["players"]) or "none"
    print(f"players:     {len(d['players'])}: {players}", file=out)
    if d["score_table"] is None:
        print("scores:      unknown (no end record)", file=out)
    else:
        scores = ", ".join(f"{e['name'] or '?'} ({e['player']}): {e['score']}" for e in d["score_table"]) \
            or "none (no player was left in the match)"
        print(f"scores:      {scores}", file=out)
        print(f"final hash:  {d['final_hash']}", file=out)
    print(f"checkpoints: {d['checkpoints']} (every {d['checkpoint_every']} ticks), "
          f"keyframes: {d['keyframes']} (every {d['keyframe_every']} ticks)", file=out)
    if d["bytes_per_s"] is not None:
        per_pm = f", {d['bytes_per_player_minute']:.0f} bytes per player-minute" if d["bytes_per_player_minute"] else ""
        print(f"size:        {d['size']} bytes, {d['bytes_per_s']:.0f} bytes/s{per_pm}", file=out)


# -- verify --------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal's stderr (nothing elsewhere)."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total = max(1, total)
        self.stream = stream
        self.enabled = enabled
        self.count = 0
        self._last = float("-inf")  # the first update always draws
        self._start = time.perf_counter()

    def advance(self, ticks: int) -> None:
        self.count += ticks
        self.update(self.count)

    def update(self, done: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        frac = min(1.0, done / self.total)
        width = 30
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        rate = done / max(1e-9, now - self._start)
        self.stream.write(f"\rverifying [{bar}] {frac * 100:5.1f}% tick {done}/{self.total} {rate:,.0f} ticks/s ")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()


@frozen
class Segment:
    """What re-simulating ticks ``(start, end]`` found."""

    start: int
    end: int
    checkpoints_checked: int = 0
    keyframes_checked: int = 0
    #: (tick, reason, expected, got) of the first difference, if any.
    divergence: tuple[int, str, Any, Any] | None = None
    final_hash: str | None = None
    scores: dict[int, int] | None = None
    error: str | None = None


def check_segment(replay: Replay, path: Path, start: int, end: int, progress: Progress | None = None) -> Segment:
    """Re-simulate ``(start, end]`` from the start of the replay or from the keyframe at ``start``.

    Compares every checkpoint in the range, and every keyframe (its world,
    input table and players) with the re-simulation; stops at the first
    difference.
    """
    try:
        sim = replayer_for(replay, path)
        h = replay.header
        if start != replay.first_tick:
            sim.restore(next(k for k in replay.keyframes if k.tick == start))
        checkpoints = {c.tick: c for c in replay.checkpoints if start < c.tick <= end}
        keyframes = {k.tick: k for k in replay.keyframes if start < k.tick <= end}
        n_cp = n_kf = 0

        def stop(tick: int, reason: str, expected: Any, got: Any) -> Segment:
            return Segment(start, end, n_cp, n_kf, (tick, reason, expected, got))

        while sim.tick < end:
            sim.step()
            t = sim.tick
            cp = checkpoints.get(t)
            if cp is not None:
                got = sim.hash()
                if got != cp.hash:
                    return stop(t, "checkpoint state_hash differs", cp.hash, got)
                checksum = Snapshot.capture(sim.world).checksum
                if checksum != cp.checksum:
                    return stop(t, "checkpoint checksum differs", cp.checksum, checksum)
                n_cp += 1
            kf = keyframes.get(t)
            if kf is not None:
                try:
                    data = kf.decode(h)
                except ValueError as exc:
                    raise CorruptReplay(kf.offset, str(exc)) from None
                got_kf = state_hash(data.world(sim.ruleset.spec, h.seed))
                if got_kf != sim.hash():
                    return stop(t, "keyframe differs from the re-simulation", got_kf, sim.hash())
                if not (np.array_equal(data.inputs.players, sim.track.players)
                        and np.array_equal(data.inputs.values, sim.track.values)):
                    return stop(t, "keyframe input table differs from the re-simulation", None, None)
                if {p: (n, e) for p, n, e in data.players} != sim.players:
                    return stop(t, "keyframe players differ from the re-simulation", None, None)
                n_kf += 1
            if progress is not None:
                progress.advance(1)
        final = sim.hash() if end == replay.last_tick else None
        scores = sim.ruleset.scores(sim.world) if final is not None else None
        return Segment(start, end, n_cp, n_kf, None, final, scores)
    except ReplayError as exc:
        raise BadFile(f"{path}: {exc}") from None


def default_jobs(replay: Replay) -> int:
    """One process per CPU, but no more than the replay has keyframe-to-keyframe pieces."""
    return max(1, min(os.cpu_count() or 1, len(segments(replay, 2))))


def segments(replay: Replay, jobs: int) -> list[tuple[int, int]]:
    """``(start, end]`` ranges to re-simulate: the whole replay for one job, else keyframe to keyframe."""
    if jobs <= 1 or not replay.keyframes:
        return [(replay.first_tick, replay.last_tick)]
    starts = [replay.first_tick] + [k.tick for k in replay.keyframes if replay.first_tick < k.tick < replay.last_tick]
    return list(zip(starts, starts[1:] + [replay.last_tick]))


#: The replay a forked worker checks (set before the pool forks, inherited).
_SHARED: tuple[Replay, Path] | None = None


def _check_in_worker(span: tuple[int, int]) -> Segment:
    assert _SHARED is not None
    try:
        return check_segment(_SHARED[0], _SHARED[1], *span)
    except BadFile as exc:
        return Segment(span[0], span[1], error=str(exc))


def verify(replay: Replay, path: Path, progress: Progress | None = None, jobs: int | None = 1) -> dict[str, Any]:
    """Re-simulate ``replay`` and compare every checkpoint, keyframe and the end record.

    With ``jobs`` > 1 the replay is cut at its keyframes and the pieces are
    re-simulated in parallel processes, each from its keyframe; each piece
    also checks that it arrives exactly at the next keyframe (world, input
    table, players), so the chain proves what one re-simulation from the
    seed proves. ``jobs`` None: ``default_jobs(replay)``.
    """
    global _SHARED
    replayer_for(replay, path)  # a bad ruleset fails here, before any worker starts
    if jobs is None:
        jobs = default_jobs(replay)
    h = replay.header
    spans = segments(replay, jobs)
    t0 = time.perf_counter()
    try:
        if len(spans) == 1:
            results = [check_segment(replay, path, *spans[0], progress)]
        else:
            _SHARED = (replay, path)
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(min(jobs, len(spans))) as pool:
                results = []
                for seg in pool.imap_unordered(_check_in_worker, spans):
                    if seg.error is not None:
                        raise BadFile(seg.error)
                    results.append(seg)
                    if progress is not None:
                        progress.advance(seg.end - seg.start)
            _SHARED = None
    finally:
        if progress is not None:
            progress.done()
    elapsed = time.perf_counter() - t0
    results.sort(key=lambda seg: seg.start)
    ticks = replay.last_tick - replay.first_tick
    result: dict[str, Any] = {
        "file": str(path), "ok": True, "ruleset": h.ruleset, "first_tick": replay.first_tick,
        "last_tick": replay.last_tick, "ticks": ticks, "jobs": min(jobs, len(spans)),
        "checkpoints": len(replay.checkpoints), "checkpoints_checked": 0, "keyframes_checked": 0,
        "diverged_at": None, "last_good": replay.first_tick, "reason": None, "expected": None, "got": None,
        "final_hash": None, "final_hash_recorded": replay.end.hash if replay.end else None,
        "final_match": None, "scores_match": None, "complete": replay.complete, "truncated": replay.torn is not None,
        "warnings": replay.warnings(),
        "seconds": round(elapsed, 3),
        "ticks_per_s": round(ticks / elapsed, 1) if elapsed > 0 else None,
        "speedup": round(ticks / elapsed / h.tick_rate, 1) if elapsed > 0 else None,
    }
    diverged = [seg.divergence for seg in results if seg.divergence is not None]
    first = min(diverged, key=lambda d: d[0]) if diverged else None
    limit = first[0] if first is not None else replay.last_tick + 1
    good = [c.tick for c in replay.checkpoints if c.tick < limit]
    result["checkpoints_checked"] = len(good) if first is not None else sum(seg.checkpoints_checked for seg in results)
    result["keyframes_checked"] = sum(1 for k in replay.keyframes if replay.first_tick < k.tick < limit) \
        if first is not None else sum(seg.keyframes_checked for seg in results)
    result["last_good"] = good[-1] if good else replay.first_tick
    if first is not None:
        result.update(ok=False, diverged_at=first[0], reason=first[1], expected=first[2], got=first[3])
        return result
    last = results[-1]
    result["final_hash"] = last.final_hash
    if replay.end is not None:
        result["final_match"] = last.final_hash == replay.end.hash
        result["scores_match"] = last.scores == replay.end.scores
        if not result["final_match"]:
            result.update(ok=False, diverged_at=replay.last_tick, reason="final state_hash differs from the end record",
                          expected=replay.end.hash, got=last.final_hash)
        elif not result["scores_match"]:
            result.update(ok=False, diverged_at=replay.last_tick, reason="final scores differ from the end record",
                          expected=replay.end.scores, got=last.scores)
    return result


def print_verify(r: dict[str, Any], out: TextIO) -> None:
    speed = f" in {r['seconds']} s ({r['speedup']}x real time)" if r.get("speedup") else ""
    if r["ok"]:
        end = "and the end record" if r["final_match"] else "(no end record to compare)"
        print(f"OK: {r['ticks']} ticks re-simulated{speed}; {r['checkpoints_checked']} checkpoints, "
              f"{r['keyframes_checked']} keyframes {end} match", file=out)
    else:
        print(f"DIVERGED at tick {r['diverged_at']}: {r['reason']} (expected {r['expected']}, got {r['got']}); "
              f"last matching checkpoint: tick {r['last_good']}", file=out)


# -- play ----------------------------------------------------------------------


def play(args: argparse.Namespace) -> int:
    from server.playback import PlaybackServer, serve_replays

    path: Path = args.path
    if path.is_dir():
        directory, only = path, None
    elif path.exists():
        replay = load(path)  # a bad file fails now, not in the browser
        replayer_for(replay, path)
        warn(path, replay)
        directory, only = path.parent, path.name
    else:
        raise BadFile(f"{path}: no such file or directory")
    server = PlaybackServer(directory, only=only, host=args.host, port=args.port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def ready(port: int) -> None:
        host = f"[{args.host}]" if ":" in args.host else args.host
        url = f"http://{host}:{port}/replay.html" + (f"?replay={only}" if only else "")
        print(f"serving {'replay ' + str(path) if only else 'the replays of ' + str(directory)} at {url}", flush=True)

    try:
        asyncio.run(serve_replays(server, ready))
    except OSError as exc:
        raise BadFile(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        return 130
    return 0


# -- command line ----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Inspect, verify and play recorded matches (REPLAY.md).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    i = sub.add_parser("info", help="format version, header, duration, players, final scores, checkpoints, size")
    i.add_argument("file", type=Path)
    i.add_argument("--json", action="store_true", help="print one JSON object")
    v = sub.add_parser("verify", help="re-simulate and compare every checkpoint; exit 1 at the first divergence")
    v.add_argument("file", type=Path)
    v.add_argument("--json", action="store_true", help="print the result as one JSON object")
    v.add_argument("--strict", action="store_true", help="exit 1 when the replay is incomplete (no end record or cut short)")
    v.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    v.add_argument("--jobs", type=positive(int), default=None, metavar="N",
                   help=f"re-simulate the keyframe-to-keyframe pieces of the replay in N processes; 1: one pass from "
                        f"the seed (default: one per CPU, no more than there are pieces; this machine has "
                        f"{os.cpu_count()} CPUs)")
    pl = sub.add_parser("play", help="serve a replay (or a directory of them) to the browser viewer")
    pl.add_argument("path", type=Path, nargs="?", default=Path("replays"), help="a .replay file or a directory (default replays)")
    pl.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    pl.add_argument("--port", type=port, default=8770, help="port, 0 to 65535; 0 picks a free one (default 8770)")
    return p


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


#: Exit status when whoever reads our output goes away (``| head``): what a shell reports for SIGPIPE.
EXIT_PIPE = 128 + 13


def run_command(args: argparse.Namespace) -> int:
    if args.command == "play":
        return play(args)
    path: Path = args.file
    replay = load(path)
    if args.command == "info":
        ruleset_for(replay, path)
        warn(path, replay)
        d = info(replay, path)
        if args.json:
            print(json.dumps(d))
        else:
            print_info(d, sys.stdout)
        return 0
    warn(path, replay)
    progress = Progress(replay.last_tick - replay.first_tick, sys.stderr, sys.stderr.isatty() and not args.no_progress)
    r = verify(replay, path, progress, jobs=args.jobs)
    if args.json:
        print(json.dumps(r))
    else:
        print_verify(r, sys.stdout)
    if not r["ok"]:
        return 1
    return 1 if args.strict and not r["complete"] else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = run_command(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (``info FILE | head -1``): stop quietly, as the docs of the
        # signal module advise, with stdout pointed at devnull so the exit flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE
    except BadFile as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a file no check foresaw: still one line, never a traceback
        fail(f"{getattr(args, 'file', None) or args.path}: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())

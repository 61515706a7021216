"""``python -m tools.replay``: inspect, verify and play recorded matches (REPLAY.md).

- ``info FILE``: the format version, the header, duration, players, final
  scores (with the players' names), checkpoints, size.
- ``verify FILE``: re-simulate from the seed and the recorded inputs and
  compare every checkpoint (and keyframe, and the end record); exit 0 when
  everything matches, 1 at the first divergence. ``--json`` prints one
  object; a progress bar goes to stderr when it is a terminal.
- ``play PATH``: serve a replay file, or every replay of a directory, to the
  browser viewer (``client_web/replay.html``) through the live protocol: the
  game server (``server.app.GameServer``) with a replay library and no match.

Each takes ``--ruleset REF`` for a replay of a ruleset this build does not
ship (a user's, RULESETS.md): ``package.module:Attr`` or an entry point's
name, which must be the ruleset the replay names.

Exit codes: 0 fine (a replay cut short by a killed server still verifies up
to its last complete frame, with a warning); 1 a verification failed (or,
with ``--strict``, the replay is incomplete); 2 a bad file (missing, not a
replay, newer format, unknown ruleset, corrupt, truncated before its header)
or bad arguments: one line on stderr, never a traceback; 141 the reader of
the output went away (``info FILE | head -1``), quietly.

The work is the ``server.replay`` package's (``resim.verify``, ``Replay``,
the playback core) and the game server's; this module parses arguments,
prints, draws the progress bar and picks the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn, TextIO

from game.errors import GameError
from game.rules import Ruleset
from server import logs
from server.cli import port, positive
from server.config import ServerConfig
from server.replay import resim
from server.replay.format import BadReplay, Replay
from server.replay.listing import ReplayLibrary, read_replay
from server.rulesets import load_ruleset
from tools.cli import Parser
from tools.progress import Bar

PROG = "python -m tools.replay"


class BadFile(Exception):
    """A file this tool cannot use: the message is the whole story (exit 2)."""


def load(path: Path) -> Replay:
    """Read and parse a replay. BadFile with one line of explanation otherwise."""
    try:
        return read_replay(path)
    except FileNotFoundError:
        raise BadFile(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BadFile(f"{path}: is a directory, not a replay file") from None
    except OSError as exc:
        raise BadFile(f"{path}: cannot read: {exc.strerror or exc}") from None
    except BadReplay as exc:
        raise BadFile(f"{path}: {exc}") from None


def check(replay: Replay, path: Path, *, from_start: bool = False, ref: str | None = None) -> Ruleset:
    """The replay's ruleset (``ref``: loaded by that reference, ``--ruleset``); BadFile unless this build
    has it (and, ``from_start``, can start re-simulating it)."""
    try:
        ruleset = resim.ruleset_for(replay.header, ref)
        if from_start:
            resim.Replayer(replay, ruleset)
    except BadReplay as exc:
        raise BadFile(f"{path}: {exc}") from None
    return ruleset


def warn(path: Path, replay: Replay) -> None:
    for w in replay.warnings():
        print(f"{PROG}: warning: {path}: {w}", file=sys.stderr)


# -- info ----------------------------------------------------------------------


def info(replay: Replay, path: Path) -> dict[str, Any]:
    h = replay.header
    ticks = replay.last_tick - replay.first_tick
    seconds = ticks / h.tick_rate
    joined = replay.players()
    player_minutes = replay.player_ticks() / h.tick_rate / 60
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


def verify(replay: Replay, path: Path, progress: Bar | None = None, jobs: int | None = 1,
           ref: str | None = None) -> dict[str, Any]:
    """``resim.verify`` as ``--json`` prints it (with ``file``). BadFile for a replay that cannot be re-simulated.

    ``ref``: the ruleset's reference (``--ruleset``), for one this build does not ship.
    """
    try:
        ruleset = resim.ruleset_for(replay.header, ref)
        result = resim.verify(replay, jobs=jobs, progress=None if progress is None else progress.advance,
                              ruleset=ruleset)
    except BadReplay as exc:
        raise BadFile(f"{path}: {exc}") from None
    finally:
        if progress is not None:
            progress.close()
    return {"file": str(path), **result.as_dict()}


def links(replay: Replay, path: Path) -> list[tuple[Path, Replay]]:
    """The recordings before ``replay`` (a match moved between nodes, REPLAY.md), newest first, each found by
    the name its successor's header gives (``previous``) in ``path``'s directory. BadFile when one is missing."""
    out: list[tuple[Path, Replay]] = []
    seen = {path.resolve()}
    while True:
        previous = replay.header.extra.get("previous")
        name = previous.get("replay") if isinstance(previous, dict) else None
        if not isinstance(name, str) or not name or "/" in name or "\\" in name:
            return out
        prev_path = path.parent / name
        if prev_path.resolve() in seen:
            raise BadFile(f"{path}: the chain of recordings loops back to {name}")
        seen.add(prev_path.resolve())
        if not prev_path.is_file():
            raise BadFile(f"{path}: the recording before it, {name}, is not in {path.parent}")
        path, replay = prev_path, load(prev_path)
        out.append((path, replay))


def link_problem(before: Replay, after: Replay, after_path: Path, ruleset: Any) -> str | None:
    """Why ``after`` does not continue ``before`` exactly (None: it does): the hand-over tick, the names and the
    state hash at that tick (``before``'s end record, ``after``'s header and start keyframe) must agree."""
    end = before.end
    previous = after.header.extra.get("previous", {})
    if end is None:
        return "it has no end record"
    handed = end.extra.get("handed_over")
    if not isinstance(handed, dict):
        return "its end record says it was not handed over"
    if handed.get("replay") not in (None, after_path.name):
        return f"it was handed over to {handed.get('replay')}, not {after_path.name}"
    if not (before.last_tick == after.first_tick == handed.get("tick")):
        return f"it ends at tick {before.last_tick}, the next starts at tick {after.first_tick}"
    try:
        start = resim.Replayer(after, ruleset).hash()
    except BadReplay as exc:
        return str(exc)
    if not (end.hash == start == previous.get("hash")):
        return f"state_hash {end.hash} at its end, {start} at the start of {after_path.name}"
    return None


def verify_chain(replay: Replay, path: Path, jobs: int | None, ref: str | None) -> dict[str, Any]:
    """``verify`` of ``replay`` and of every recording before it (``links``), with the links checked:
    ``--chain``'s result, the newest file's fields plus ``chain`` (oldest first) and ``chain_ok``."""
    files = [(path, replay), *links(replay, path)][::-1]
    results = [verify(r, p, jobs=jobs, ref=ref) for p, r in files]
    for (before_path, before), (after_path, after), result in zip(files, files[1:], results[1:]):
        ruleset = resim.ruleset_for(after.header, ref)
        problem = link_problem(before, after, after_path, ruleset)
        result["link"] = {"previous": str(before_path), "ok": problem is None, "reason": problem}
    ok = all(r["ok"] and r.get("link", {"ok": True})["ok"] for r in results)
    return {**results[-1], "chain": results, "chain_ok": ok}


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
    from server.app import GameServer, serve

    path: Path = args.path
    if path.is_dir():
        directory, only = path, None
    elif path.exists():
        replay = load(path)  # a bad file fails now, not in the browser
        check(replay, path, from_start=True, ref=args.ruleset)
        warn(path, replay)
        directory, only = path.parent, path.name
    else:
        raise BadFile(f"{path}: no such file or directory")
    config = ServerConfig(host=args.host, port=args.port, record=False, replay_dir=directory)
    refs: tuple[tuple[str, str], ...] = ()
    if args.ruleset is not None:
        try:
            refs = ((load_ruleset(args.ruleset).spec.name, args.ruleset),)
        except GameError as exc:
            raise BadFile(f"--ruleset: {exc}") from None
    server = GameServer(config, library=ReplayLibrary(directory, only, refs))
    logs.setup(args.log_level, args.log_format)  # as the game server logs: events, not every HTTP answer

    def ready(port: int) -> None:
        host = f"[{args.host}]" if ":" in args.host else args.host
        url = f"http://{host}:{port}/replay.html" + (f"?replay={only}" if only else "")
        what = f"replay {path}" if only else f"the replays of {directory}"
        print(f"serving {what} at {url}", flush=True)
        logging.getLogger("server").info("listening on ws://%s:%d/ws?replay=NAME: serving %s at %s", host, port, what,
                                         url, extra=logs.fields("listening", port=port))

    try:
        asyncio.run(serve(server, ready))
    except OSError as exc:
        raise BadFile(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        return 130
    return 0


# -- command line ----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Inspect, verify and play recorded matches (REPLAY.md).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    i = sub.add_parser("info", help="format version, header, duration, players, final scores, checkpoints, size")
    i.add_argument("file", type=Path)
    i.add_argument("--json", action="store_true", help="print one JSON object")
    v = sub.add_parser("verify", help="re-simulate and compare every checkpoint; exit 1 at the first divergence")
    v.add_argument("file", type=Path)
    v.add_argument("--json", action="store_true", help="print the result as one JSON object")
    v.add_argument("--strict", action="store_true", help="exit 1 when the replay is incomplete (no end record or cut short)")
    v.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    v.add_argument("--chain", action="store_true",
                   help="a match moved between nodes: verify the recordings before this one too (each found in this "
                        "file's directory by the name the next one gives) and that each continues the one before at "
                        "its hand-over tick with the same state hash; exit 1 if anything differs")
    v.add_argument("--jobs", type=positive(int), default=None, metavar="N",
                   help=f"re-simulate the keyframe-to-keyframe pieces of the replay in N processes; 1: one pass from "
                        f"the seed (default: one per CPU, no more than there are pieces; this machine has "
                        f"{os.cpu_count()} CPUs)")
    pl = sub.add_parser("play", help="serve a replay (or a directory of them) to the browser viewer (replay.html), "
                                     "on the game server with no match")
    pl.add_argument("path", type=Path, nargs="?", default=Path("replays"), help="a .replay file or a directory (default replays)")
    pl.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    pl.add_argument("--port", type=port, default=8770, help="port, 0 to 65535; 0 picks a free one (default 8770)")
    pl.add_argument("--log-level", default="info", choices=logs.LEVELS, help="logging level (default info)")
    pl.add_argument("--log-format", default="text", choices=logs.FORMATS,
                    help="text, or json: one JSON object per line, as python -m server (default text)")
    for command in (i, v, pl):
        command.add_argument("--ruleset", default=None, metavar="REF",
                             help="the replay's ruleset when this build does not ship it: package.module:Attr (importable: "
                                  "installed, or on PYTHONPATH) or an entry point's name (RULESETS.md); it must be the "
                                  "ruleset the replay names (default: the replay's name, built in or an entry point)")
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
        check(replay, path, ref=args.ruleset)
        warn(path, replay)
        d = info(replay, path)
        if args.json:
            print(json.dumps(d))
        else:
            print_info(d, sys.stdout)
        return 0
    warn(path, replay)
    if args.chain:
        chained = verify_chain(replay, path, args.jobs, args.ruleset)
        if args.json:
            print(json.dumps(chained))
        else:
            for r in chained["chain"]:
                link = r.get("link")
                print(f"{r['file']}: ", end="", file=sys.stdout)
                print_verify(r, sys.stdout)
                if link is not None:
                    print(f"  continues {link['previous']}: " + ("yes, same state hash at the hand-over tick"
                                                                 if link["ok"] else f"NO: {link['reason']}"))
        if not chained["chain_ok"]:
            return 1
        return 1 if args.strict and not all(r["complete"] for r in chained["chain"]) else 0
    progress = Bar.for_stderr("verifying", replay.last_tick - replay.first_tick, quiet=args.no_progress, unit="ticks")
    r = verify(replay, path, progress, jobs=args.jobs, ref=args.ruleset)
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

"""``python -m server``: run a game server (see ``--help``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import sys
import time
from pathlib import Path

from game.errors import GameError
from game.rules import RULESET_NAMES, get_ruleset
from server.app import GameServer, serve
from server.cli import name_equals_int, port, positive, seed_int
from server.config import ServerConfig
from server.match import Match
from server.replay.recorder import Recorder, default_match_id

log = logging.getLogger("server")


def build_parser() -> argparse.ArgumentParser:
    d = ServerConfig()
    p = argparse.ArgumentParser(
        prog="python -m server",
        description="Run an authoritative game server: HTTP and WebSocket on one port "
        "(/ws the game, / the browser client, /healthz, /metrics, /replay.html and /ws?replay=NAME "
        "its recorded matches).",
    )
    p.add_argument("--host", default=d.host, help=f"address to listen on (default {d.host})")
    p.add_argument("--port", type=port, default=d.port, help=f"port to listen on; 0 picks a free one (default {d.port})")
    p.add_argument("--ruleset", default=d.ruleset, choices=RULESET_NAMES, help=f"game rules (default {d.ruleset})")
    p.add_argument("--tick-rate", type=positive(int), default=d.tick_rate, help=f"ticks and updates per second (default {d.tick_rate})")
    p.add_argument("--seed", type=seed_int, default=d.seed, help=f"match seed, 0 to 2**63-1 (default {d.seed})")
    p.add_argument("--npcs", type=int, default=None, help="NPC count: drones in arena (default 40), E in drift (default 2000)")
    p.add_argument("--pellets", type=int, default=None, help="pellets in arena (default 150)")
    p.add_argument("--option", type=name_equals_int, action="append", default=[], metavar="NAME=INT",
                   help="any other ruleset option; repeatable")
    p.add_argument("--max-players", type=positive(int), default=d.max_players, help=f"players per match, spectators aside (default {d.max_players})")
    p.add_argument("--max-msg-rate", type=positive(float), default=None, metavar="PER_SECOND",
                   help="messages a second one client may send, sustained; bursts of twice that; "
                   "over it: error and close 1008 (default 4 per tick, at least 120)")
    p.add_argument("--hold", type=float, default=d.hold_s, metavar="SECONDS",
                   help=f"how long a disconnected player is kept for a reconnect with its token (default {d.hold_s:g})")
    p.add_argument("--hello-timeout", type=positive(float), default=d.hello_timeout_s, metavar="SECONDS",
                   help=f"close connections that send no hello within this (default {d.hello_timeout_s:g})")
    p.add_argument("--max-buffer", type=positive(int), default=d.max_buffer, metavar="BYTES",
                   help=f"per-client send buffer past which updates are dropped (default {d.max_buffer})")
    p.add_argument("--slow-timeout", type=positive(float), default=d.slow_timeout_s, metavar="SECONDS",
                   help=f"close clients whose buffer stays full this long (default {d.slow_timeout_s:g})")
    p.add_argument("--tls-cert", type=Path, default=None, metavar="PEM",
                   help="certificate chain (PEM): serve wss:// and https:// instead of ws:// and http://")
    p.add_argument("--tls-key", type=Path, default=None, metavar="PEM",
                   help="private key (PEM) of --tls-cert (default: read from the --tls-cert file)")
    p.add_argument("--replay-dir", type=Path, default=d.replay_dir, metavar="DIR",
                   help=f"record the match to DIR/<match id>.replay, and play the replays of DIR to the viewer "
                   f"(/replay.html) (default {d.replay_dir}; see REPLAY.md)")
    p.add_argument("--no-record", action="store_true", help="do not record a replay")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="logging level (default info)")
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    options = dict(args.option)
    if args.npcs is not None:
        options["npcs"] = args.npcs
    if args.pellets is not None:
        options["pellets"] = args.pellets
    return ServerConfig(
        host=args.host, port=args.port, ruleset=args.ruleset, options=tuple(options.items()),
        tick_rate=args.tick_rate, seed=args.seed, max_players=args.max_players, msg_rate=args.max_msg_rate or 0.0,
        hold_s=args.hold,
        hello_timeout_s=args.hello_timeout, max_buffer=args.max_buffer, slow_timeout_s=args.slow_timeout,
        tls_cert=args.tls_cert, tls_key=args.tls_key,
        record=not args.no_record, replay_dir=args.replay_dir,
    )


def make_match(config: ServerConfig) -> Match:
    ruleset = get_ruleset(config.ruleset)
    match_id = config.match_id or default_match_id(config.ruleset, config.seed, time.time())
    return Match(ruleset, match_id=match_id, seed=config.seed, options=dict(config.options),
                 tick_rate=config.tick_rate, max_players=config.max_players, msg_rate=config.msg_rate,
                 hold_s=config.hold_s)


async def run(config: ServerConfig) -> None:
    """Host the command line's match (recorded unless ``--no-record``) and the replays of ``--replay-dir``
    until SIGINT or SIGTERM."""
    match = make_match(config)
    server = GameServer(config, match)
    # Open the replay first, so a bad --replay-dir fails before we say we listen.
    recorder = Recorder.create(match, config.replay_dir) if config.record else None
    listening = False

    def ready(port: int) -> None:
        nonlocal listening
        listening = True
        host = f"[{config.host}]" if ":" in config.host else config.host
        s = "s" if config.tls_cert else ""
        log.info("listening on ws%s://%s:%d/ws (open http%s://%s:%d/ in a browser) ruleset=%s tick_rate=%d seed=%d",
                 s, host, port, s, host, port, config.ruleset, config.tick_rate, config.seed)
        if recorder is not None:
            match.observers.append(recorder)
            log.info("recording to %s", recorder.path)

    try:
        await serve(server, ready)
    except BaseException:
        if recorder is not None and not listening:
            recorder.close()
            if recorder.path is not None:
                recorder.path.unlink(missing_ok=True)
        raise
    log.info("stopped after %d ticks", match.tick_count)
    log.info("final state_hash %s at tick %d", match.state_hash(), match.tick_count)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level != "debug":
        logging.getLogger("websockets").setLevel(logging.WARNING)
    if args.tls_key is not None and args.tls_cert is None:
        parser.error("--tls-key needs --tls-cert")
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path is not None and not path.is_file():
            parser.error(f"{flag} {path}: no such file")
    try:
        config = config_from_args(args)
        asyncio.run(run(config))
    except GameError as exc:
        parser.exit(2, f"python -m server: error: {exc}\n")
    except ssl.SSLError as exc:
        parser.exit(2, f"python -m server: error: cannot use the TLS certificate/key: {exc}\n")
    except OSError as exc:
        if exc.filename is not None:
            parser.exit(2, f"python -m server: error: {exc.filename}: {exc.strerror}\n")
        parser.exit(2, f"python -m server: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m server``: run a game server (see ``--help``)."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import io
import logging
import os
import re
import signal
import ssl
import sys
import urllib.parse
from pathlib import Path

from game.errors import GameError
from game.rules import RULESET_NAMES
from server import logs
from server.app import serve
from server.cli import count, name_equals_int, port, positive, seed_int
from server.config import ServerConfig
from server.handover.drain import DRAIN_DEADLINE_S, Drainer
from server.host import REDIS_NODE_TTL, Host, RoomsConfig, public_url
from server.loop import EVENT_LOOP_ENV, EVENT_LOOPS, loop_factory
from server.rooms import InvalidRoomType, MatchId
from server.workers import Supervisor, WorkerSpec, cpu_count, plan, worker_count

log = logging.getLogger("server")


#: Seconds a supervisor's workers get to stop past their drain deadline, by default.
STOP_MARGIN_S = 10.0

#: The rooms settings' defaults.
ROOMS = RoomsConfig()
#: What ``--redis-prefix`` takes.
REDIS_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def build_parser() -> argparse.ArgumentParser:
    d = ServerConfig()
    p = argparse.ArgumentParser(
        prog="python -m server",
        description="Run an authoritative game server: HTTP and WebSocket on one port "
        "(/ws the game, / the browser client, /lobby.html the matches and matchmaking (POST /api/matchmake, "
        "GET /api/matches, /api/rulesets), /ws/<match id> one match, /healthz, /metrics, /replay.html and "
        "/ws?replay=NAME its recorded matches). Matches of any ruleset it offers are made on demand; the options "
        "below (--ruleset, --tick-rate, --seed, the ruleset options, --max-players, --label) are the default "
        "room type's, which /ws plays.",
    )
    p.add_argument("--host", default=d.host, help=f"address to listen on (default {d.host})")
    p.add_argument("--port", type=port, default=d.port, help=f"port to listen on; 0 picks a free one (default {d.port})")
    p.add_argument("--ruleset", default=d.ruleset, metavar="REF",
                   help=f"the default room's game rules: a built-in name ({', '.join(RULESET_NAMES)}), a name an installed "
                   f"package registers (entry point group tickserver.rulesets) or package.module:Attr (RULESETS.md); "
                   f"the built-ins are offered too (default {d.ruleset})")
    p.add_argument("--tick-rate", type=positive(int), default=d.tick_rate, help=f"ticks and updates per second (default {d.tick_rate})")
    p.add_argument("--seed", type=seed_int, default=None,
                   help=f"match seed, 0 to 2**63-1, of the default match and of every match of the default room "
                   f"(default: {d.seed} for the default match, a random one for each match made on demand)")
    p.add_argument("--npcs", type=int, default=None, help="NPC count: drones in arena (default 40), E in drift (default 2000)")
    p.add_argument("--pellets", type=int, default=None, help="pellets in arena (default 150)")
    p.add_argument("--option", type=name_equals_int, action="append", default=[], metavar="NAME=INT",
                   help="any other ruleset option; repeatable")
    p.add_argument("--max-players", type=positive(int), default=d.max_players, help=f"players per match, spectators aside (default {d.max_players})")
    p.add_argument("--label", type=label_pair, action="append", default=[], metavar="KEY=VALUE",
                   help="a label of the default room's matches (mode=ffa, region=eu), which listings and matchmaking "
                   "filter by; repeatable")
    p.add_argument("--seat-ttl", type=positive(float), default=ROOMS.seat_ttl, metavar="SECONDS",
                   help=f"how long a seat from POST /api/matchmake is held for its player to connect (default {ROOMS.seat_ttl:g})")
    p.add_argument("--empty-grace", type=non_negative, default=ROOMS.empty_grace, metavar="SECONDS",
                   help=f"how long a match made on demand may stay without players before it is disposed of and its "
                   f"replay closed (default {ROOMS.empty_grace:g}); the default match stays")
    p.add_argument("--public-url", default=None, metavar="URL",
                   help="this server's WebSocket base as players reach it, ws://HOST:PORT, wss://HOST or wss://HOST/PATH "
                   "behind a proxy (seats name <URL>/ws/<match id>, and pages from its origin, https://HOST for wss://HOST, may "
                   "open WebSockets here; {port} stands for the port it listens on, "
                   "{worker} for the worker's number with --workers; default: ws://<--host>:<port>, 127.0.0.1 when "
                   "listening on every address)")
    p.add_argument("--redis", type=redis_url, default=None, metavar="URL",
                   help="share the match directory (nodes, matches, seats) with the other servers of a cluster in "
                   "Redis at URL (redis://[:PASSWORD@]HOST:PORT/DB, rediss://..., unix:///PATH): a matchmake sent to "
                   "any of them places a new match on the least loaded live one and answers its URL (give each "
                   "--public-url behind a proxy). Redis unreachable, at start or later: the server runs on, its "
                   "matches keep playing, matchmaking and /api/matches answer 503, /healthz?ready 503, and it "
                   "registers again when Redis is back (default: the directory is in this process's memory)")
    p.add_argument("--redis-prefix", type=redis_prefix, default=ROOMS.redis_prefix, metavar="PREFIX",
                   help=f"the start of every key this cluster keeps in --redis, so several clusters can share one Redis "
                   f"(each its own; every node of one cluster gives the same; 1-64 of A-Z a-z 0-9 _ . : -, default "
                   f"{ROOMS.redis_prefix})")
    p.add_argument("--heartbeat", type=positive(float), default=ROOMS.heartbeat_s, metavar="SECONDS",
                   help=f"how often this server tells the directory it is alive, with its load (default "
                   f"{ROOMS.heartbeat_s:g})")
    p.add_argument("--node-ttl", type=positive(float), default=None, metavar="SECONDS",
                   help=f"how long a server that stopped beating (killed, cut off) stays listed with its matches "
                   f"(default {REDIS_NODE_TTL:g} with --redis; more than --heartbeat)")
    p.add_argument("--max-msg-rate", type=positive(float), default=None, metavar="PER_SECOND",
                   help="messages a second one client may send besides one input or ack per update it was sent "
                   "(pings, resyncs, inputs while its updates stall), sustained; bursts of twice that; over it: error "
                   "and close 1008 (default 2 per tick, at least 60)")
    p.add_argument("--hold", type=float, default=d.hold_s, metavar="SECONDS",
                   help=f"how long a disconnected player is kept for a reconnect with its token (default {d.hold_s:g})")
    p.add_argument("--hello-timeout", type=positive(float), default=d.hello_timeout_s, metavar="SECONDS",
                   help=f"close connections that send no hello within this (default {d.hello_timeout_s:g})")
    p.add_argument("--max-buffer", type=positive(int), default=d.max_buffer, metavar="BYTES",
                   help=f"per-client send buffer past which updates are dropped (default {d.max_buffer})")
    p.add_argument("--slow-timeout", type=positive(float), default=d.slow_timeout_s, metavar="SECONDS",
                   help=f"close clients (error, 1008) whose updates keep being dropped this long (default "
                   f"{d.slow_timeout_s:g})")
    p.add_argument("--max-queued", type=positive(int), default=d.max_queued, metavar="BYTES",
                   help=f"bytes queued to all clients together past which updates to clients with a queue are "
                   f"dropped (default {d.max_queued}, {d.max_queued >> 20} MiB)")
    p.add_argument("--max-unacked", type=positive(int), default=d.max_unacked, metavar="BYTES",
                   help=f"bytes of updates a client may owe acknowledgements for; past them it gets none until it "
                   f"acknowledges (default {d.max_unacked}, {d.max_unacked >> 10} KiB)")
    p.add_argument("--max-connections", type=count, default=d.max_connections, metavar="N",
                   help="open connections (HTTP and WebSocket) past which new ones are refused with HTTP 503 before "
                   "any upgrade, but /healthz and /metrics (default 0: the open-file limit, raised to its hard limit "
                   "at start, less a quarter of it (at most 1024: a burst of accepts) and 64)")
    p.add_argument("--max-per-address", type=count, default=d.max_per_address, metavar="N",
                   help=f"the most connections from one client address (past it: HTTP 429), and the most players it "
                   f"may have joined and not left, held for a resume included (past it: error and 1008); /healthz "
                   f"and /metrics neither count nor are refused; 0: no limit (default {d.max_per_address}; behind a "
                   f"proxy see --trust-forwarded-for)")
    p.add_argument("--trust-forwarded-for", action="store_true",
                   help="take a client's address from the last entry of its X-Forwarded-For header (only behind a "
                   "proxy that sets it: else any client could claim any address; without it, every client behind "
                   "the proxy is the proxy's address)")
    p.add_argument("--ack-timeout", type=positive(float), default=d.ack_timeout_s, metavar="SECONDS",
                   help=f"close clients (error, 1008) that acknowledge nothing this long while updates wait for "
                   f"it (default {d.ack_timeout_s:g})")
    p.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                   help="a web page origin (https://games.example.com) whose pages may open WebSockets here, besides "
                   "this server's own pages and clients that send no Origin (bots); '*': any; repeatable. Other "
                   "origins' upgrades are refused with HTTP 403 (in a cluster, name the origin the lobby is served from)")
    p.add_argument("--tls-cert", type=Path, default=None, metavar="PEM",
                   help="certificate chain (PEM): serve wss:// and https:// instead of ws:// and http://")
    p.add_argument("--tls-key", type=Path, default=None, metavar="PEM",
                   help="private key (PEM) of --tls-cert (default: read from the --tls-cert file)")
    p.add_argument("--replay-dir", type=Path, default=d.replay_dir, metavar="DIR",
                   help=f"record each match to DIR/<match id>.replay, and play the replays of DIR to the viewer "
                   f"(/replay.html) (default {d.replay_dir}; see REPLAY.md)")
    p.add_argument("--no-record", action="store_true", help="do not record replays")
    p.add_argument("--drain-deadline", type=non_negative, default=DRAIN_DEADLINE_S, metavar="SECONDS",
                   help=f"on SIGTERM (or POST /api/admin/drain) the server drains: it takes no new match or player and "
                   f"moves its live matches to another node of its --redis directory (their players reconnect there "
                   f"as the same players); matches it cannot move may finish for up to SECONDS, then their players "
                   f"get 1001. 0: SIGTERM stops at once with 1001, as SIGINT does (default {DRAIN_DEADLINE_S:g})")
    p.add_argument("--admin-token", default=None, metavar="TOKEN",
                   help="the bearer token of POST /api/admin/drain (default: the environment's "
                   "TICKSERVER_ADMIN_TOKEN; neither: no admin API, 404)")
    p.add_argument("--workers", type=worker_count, default=None, metavar="N",
                   help="run N processes of this command line under a supervisor that forwards SIGTERM/SIGINT and "
                   "restarts a worker that dies (auto or 0: one per CPU). Each has its own port (--port P: P, P+1, ...; "
                   "--port 0: a free one each, reported), not one shared with SO_REUSEPORT: a player's WebSocket must "
                   "reach the process that hosts its match, and the kernel would spread connections by address hash. "
                   "More than one needs --redis (their shared match directory); --public-url then needs {worker} or "
                   "{port} (DEPLOY.md)")
    p.add_argument("--stop-timeout", type=positive(float), default=None, metavar="SECONDS",
                   help=f"with --workers: how long the workers may take to stop after SIGTERM/SIGINT (their drain) "
                   f"before they are killed (default --drain-deadline + {STOP_MARGIN_S:g})")
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)  # set by the supervisor
    p.add_argument("--event-loop", choices=EVENT_LOOPS, default=os.environ.get(EVENT_LOOP_ENV) or "auto",
                   help=f"the event loop: uvloop (in C: less CPU per client), asyncio (the standard library's), or "
                   f"auto: uvloop when it is installed, else asyncio (default: ${EVENT_LOOP_ENV}, else auto)")
    p.add_argument("--log-level", default="info", choices=logs.LEVELS, help="logging level (default info)")
    p.add_argument("--log-format", default="text", choices=logs.FORMATS,
                   help="text: one line per event for people; json: one JSON object per line for log shippers "
                   "(time, level, logger, message and the event's fields: event, match, player, code, reason...) "
                   "(default text)")
    return p


def label_pair(text: str) -> tuple[str, str]:
    """An argparse type: ``KEY=VALUE`` (the room type checks them)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def non_negative(text: str) -> float:
    """An argparse type: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def public_url_arg(text: str) -> str:
    """``--public-url``: ``ws://`` or ``wss://``, a host and a port or path if need be; ``{port}`` is left in."""
    u = urllib.parse.urlsplit(text.replace("{port}", "1"))
    try:
        u.port  # noqa: B018 - a bad port raises
    except ValueError:
        u = u._replace(netloc="")
    if u.scheme not in ("ws", "wss") or not u.hostname or u.query or u.fragment or "{" in text.replace("{port}", ""):
        hint = " ({worker} is for --workers)" if "{worker}" in text else ""
        raise ValueError(f"--public-url: expected ws://HOST:PORT, wss://HOST or wss://HOST/PATH, got {text!r}{hint}")
    return text.rstrip("/")


def page_origin(ws_url: str) -> str:
    """The origin of the pages served beside a WebSocket base: ``ws://h:p`` -> ``http://h:p``, ``wss://h/x`` ->
    ``https://h``."""
    u = urllib.parse.urlsplit(ws_url)
    return f"{'https' if u.scheme == 'wss' else 'http'}://{u.netloc}"


def redis_url(text: str) -> str:
    """An argparse type: a Redis URL (``redis://``, ``rediss://`` or ``unix://``); whether Redis answers is
    found out when the server runs."""
    if not text.startswith(("redis://", "rediss://", "unix://")) or text.endswith("://"):
        raise argparse.ArgumentTypeError(f"expected redis://HOST:PORT/DB, rediss://... or unix:///PATH, got {text!r}")
    return text


def redis_prefix(text: str) -> str:
    """An argparse type: a key prefix for ``--redis-prefix`` (1-64 of A-Z a-z 0-9 _ . : -)."""
    if not REDIS_PREFIX.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected 1-64 of A-Z a-z 0-9 _ . : - (such as tickserver-eu:), got {text!r}")
    return text


def rooms_from_args(args: argparse.Namespace) -> RoomsConfig:
    """The rooms settings of the command line.

    Raises:
        ValueError: a bad ``--public-url``, or a ``--node-ttl`` not over ``--heartbeat``.
    """
    node_ttl = args.node_ttl
    if node_ttl is not None and not node_ttl > args.heartbeat:
        raise ValueError(f"--node-ttl {node_ttl:g} must be more than --heartbeat {args.heartbeat:g}")
    if node_ttl is None and args.redis is not None and not REDIS_NODE_TTL > args.heartbeat:
        raise ValueError(f"--heartbeat {args.heartbeat:g} must be less than the node TTL ({REDIS_NODE_TTL:g}): "
                         "give --node-ttl")
    return RoomsConfig(seed=args.seed, labels=tuple(args.label), seat_ttl=args.seat_ttl, empty_grace=args.empty_grace,
                       public_url=None if args.public_url is None else public_url_arg(args.public_url),
                       redis=args.redis, redis_prefix=args.redis_prefix, heartbeat_s=args.heartbeat, node_ttl=node_ttl)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    options = dict(args.option)
    if args.npcs is not None:
        options["npcs"] = args.npcs
    if args.pellets is not None:
        options["pellets"] = args.pellets
    origins = list(args.allowed_origin)
    if args.public_url is not None:  # the pages at the public address (behind a TLS proxy: https://HOST)
        url = public_url_arg(args.public_url).replace("{port}", str(args.port) if args.port else "{port}")
        if "{port}" not in url:
            origins.append(page_origin(url))
    return ServerConfig(
        host=args.host, port=args.port, ruleset=args.ruleset, options=tuple(options.items()),
        tick_rate=args.tick_rate, seed=ServerConfig().seed if args.seed is None else args.seed,
        max_players=args.max_players, msg_rate=args.max_msg_rate or 0.0,
        hold_s=args.hold,
        hello_timeout_s=args.hello_timeout, max_buffer=args.max_buffer, slow_timeout_s=args.slow_timeout,
        max_queued=args.max_queued, max_unacked=args.max_unacked, ack_timeout_s=args.ack_timeout,
        max_connections=args.max_connections, max_per_address=args.max_per_address,
        trust_forwarded_for=args.trust_forwarded_for,
        tls_cert=args.tls_cert, tls_key=args.tls_key, allowed_origins=tuple(origins),
        record=not args.no_record, replay_dir=args.replay_dir,
    )


async def run(host: Host, *, drain_deadline: float = DRAIN_DEADLINE_S, admin_token: str | None = None) -> None:
    """Host the default match (recorded unless ``--no-record``), the matches made on demand and the replays of
    ``--replay-dir`` until SIGINT, or SIGTERM and the drain (``server.handover.drain``)."""
    config, server = host.config, host.server
    # The default match opens its replay first, so a bad --replay-dir fails before we say we listen.
    match = host.open_default(match_id=config.match_id, seed=config.seed)
    recorder = host.recorders.get(MatchId(match.match_id))
    host.install()
    drainer = Drainer(host, deadline_s=drain_deadline, admin_token=admin_token, on_drained=server.stop)
    drainer.install()
    hosting: asyncio.Task[None] | None = None
    mailbox: asyncio.Task[None] | None = None

    def ready(port: int) -> None:
        nonlocal hosting, mailbox
        host_name = f"[{config.host}]" if ":" in config.host else config.host
        s = "s" if config.tls_cert else ""
        log.info("listening on ws%s://%s:%d/ws (open http%s://%s:%d/ in a browser) ruleset=%s tick_rate=%d seed=%d",
                 s, host_name, port, s, host_name, port, config.ruleset, config.tick_rate, config.seed,
                 extra=logs.fields("listening", port=port))
        if recorder is not None:
            log.info("recording to %s", recorder.path)
        if host.url is not None:
            host.url = host.url.replace("{port}", str(port))
        hosting = asyncio.create_task(host.serve(port), name="rooms")
        mailbox = asyncio.create_task(drainer.run(), name="handover")

    try:
        await serve(server, ready, drainer.on_sigterm)
    except BaseException:
        if recorder is not None and hosting is None:
            recorder.close()
            if recorder.path is not None:
                recorder.path.unlink(missing_ok=True)
        raise
    finally:
        await stop_tasks([t for t in (mailbox, hosting) if t is not None])
    log.info("stopped after %d ticks", match.tick_count)
    log.info("final state_hash %s at tick %d", match.state_hash(), match.tick_count)


#: How long the node's own tasks (the rooms' timer, the hand-over mailbox) have to finish once cancelled at the end.
STOP_WAIT_S = 10.0


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them, at most ``STOP_WAIT_S``: one that has not finished by then is logged with
    where it waits (its stack), not waited for in silence."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, stuck = await asyncio.wait(tasks, timeout=STOP_WAIT_S)
    for task in stuck:
        where = io.StringIO()
        task.print_stack(file=where)
        log.warning("stopping: the task %r has not finished %g s after its cancellation; it waits here:\n%s",
                    task.get_name(), STOP_WAIT_S, where.getvalue().rstrip())


def build_host(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Host:
    """The host of ``args``; a bad --ruleset, option or label exits with one line, before anything starts."""
    try:
        return Host.build(config_from_args(args), rooms_from_args(args))
    except (GameError, InvalidRoomType, ValueError) as exc:
        parser.exit(2, f"python -m server: error: {exc}\n")


def run_workers(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> int:
    """``--workers``: check the command line as a worker would, then supervise the workers (``server.workers``)."""
    count = args.workers or cpu_count()
    if count > 1 and args.redis is None:
        parser.exit(2, f"python -m server: error: --workers {count} needs --redis URL, the match directory the workers "
                    "share (make run-cluster starts a local redis-server)\n")
    try:
        specs = plan(count, args.port, args.public_url)
        for spec in specs:
            public_url_arg(spec.public_url or "ws://localhost")
    except ValueError as exc:
        parser.exit(2, f"python -m server: error: {exc}\n")
    first = argparse.Namespace(**{**vars(args), "public_url": specs[0].public_url})
    build_host(parser, first)
    argv = [*argv, *(a for origin in worker_origins(config_from_args(first), specs) for a in ("--allowed-origin", origin))]
    stop_timeout = args.drain_deadline + STOP_MARGIN_S if args.stop_timeout is None else args.stop_timeout
    return asyncio.run(Supervisor(argv, specs, stop_timeout=stop_timeout).run())


def worker_origins(config: ServerConfig, specs: list[WorkerSpec]) -> list[str]:
    """The origins of the workers' pages when their ports are known (``--port P``): each worker lets pages of
    the others open its WebSockets, as the lobby of one does with a seat on another."""
    if not config.port:
        return []
    return [page_origin(s.public_url.replace("{port}", str(s.port)) if s.public_url else public_url(config, s.port))
            for s in specs]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(args.log_level, args.log_format)
    if args.tls_key is not None and args.tls_cert is None:
        parser.error("--tls-key needs --tls-cert")
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path is not None and not path.is_file():
            parser.error(f"{flag} {path}: no such file")
    if args.workers is not None and args.worker_index is None:
        return run_workers(parser, args, sys.argv[1:] if argv is None else argv)
    try:
        loop = loop_factory(args.event_loop)
    except ValueError as exc:
        parser.exit(2, f"python -m server: error: {exc}\n")
    host = build_host(parser, args)
    log.debug("event loop: %s", loop.name)
    if hasattr(signal, "SIGUSR1"):  # where a stuck process is: every thread's stack to stderr, the server goes on
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        with asyncio.Runner(loop_factory=loop.factory) as runner:
            runner.run(run(host, drain_deadline=args.drain_deadline,
                           admin_token=args.admin_token or os.environ.get("TICKSERVER_ADMIN_TOKEN")))
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

"""Server configuration: one frozen value, built from the command line."""

from __future__ import annotations

from pathlib import Path

from attrs import frozen

ROOT = Path(__file__).resolve().parent.parent


@frozen
class ServerConfig:
    """Everything the server needs to start. Defaults are the embedded defaults of ``make run``.

    Attributes:
        host, port: where to listen (port 0: any free port).
        ruleset: the default room's ruleset: a built-in name (``arena``, ``drift``), an entry-point name or
            ``package.module:Attr`` (``server.rulesets.load_ruleset``).
        options: ruleset options (``npcs``, ``pellets``...); unset ones take the ruleset's defaults.
        tick_rate: ticks (and updates) per second.
        seed: match seed.
        max_players: players per match; spectators do not count.
        msg_rate: messages a second one client may send besides one input or ack
            per update it was sent, sustained (bursts of twice that); 0: the
            default for the tick rate (``default_rate``).
        hold_s: how long a disconnected player is kept for a resume with its token.
        hello_timeout_s: a connection that says no hello within this is closed (1008).
        open_timeout_s: a connection whose opening request is not answered within
            this (TLS handshake included) is dropped.
        ping_interval_s, ping_timeout_s: a WebSocket ping every ``ping_interval_s``;
            no pong within ``ping_timeout_s``: the connection fails (1011).
        close_timeout_s: how long a connection we close (or answer over HTTP)
            may take to close its end before it is dropped.
        max_buffer: bytes queued to one client past which updates to it are dropped.
        slow_timeout_s: a client whose updates keep being dropped this long is closed (1008).
        max_queued: bytes queued to all clients together past which updates to any client with
            a non-empty queue are dropped.
        max_unacked: bytes of updates a client may be sent without acknowledging them (past them
            it gets none until it does).
        ack_timeout_s: a client sent updates whose acknowledgements stop advancing this long is
            closed (1008).
        max_connections: open connections past which new ones are refused with HTTP 503; 0: the
            open-file limit less a reserve (``server.app.default_max_connections``).
        max_per_address: the most connections, and the most players (connected, or held for a
            resume), from one client address (429 for a connection, 1008 for a join); 0: no limit.
        trust_forwarded_for: the client's address is the last one in ``X-Forwarded-For`` (behind a
            proxy that sets it; otherwise clients could claim any address).
        static_dir: files served over HTTP at ``/``.
        allowed_origins: ``Origin``s of pages that may open WebSockets besides the server's own pages
            (``*``: any); a request without ``Origin`` (bots, native clients) is always let through.
        tls_cert, tls_key: PEM certificate chain and private key; when set the
            port speaks TLS only (``wss://``, ``https://``).
        match_id: the match id; empty: ``<ruleset>-<UTC timestamp>-<node tag>-<seed>``, unique per run and node.
        record: record the match to ``replay_dir/<match id>.replay`` (REPLAY.md).
        replay_dir: where replays are written (and listed by ``/api/replays``).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    ruleset: str = "arena"
    options: tuple[tuple[str, int], ...] = ()
    tick_rate: int = 30
    seed: int = 1
    max_players: int = 4096
    msg_rate: float = 0.0
    hold_s: float = 10.0
    hello_timeout_s: float = 10.0
    open_timeout_s: float = 10.0
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    close_timeout_s: float = 2.0
    max_buffer: int = 1 << 20
    slow_timeout_s: float = 5.0
    max_queued: int = 8 << 20
    max_unacked: int = 256 << 10
    ack_timeout_s: float = 5.0
    max_connections: int = 0
    max_per_address: int = 256
    trust_forwarded_for: bool = False
    static_dir: Path = ROOT / "client_web"
    allowed_origins: tuple[str, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    match_id: str = ""
    record: bool = True
    replay_dir: Path = Path("replays")

"""The rooms layer of the shell: this node's matches made on demand, matchmaking over HTTP, seats at the door.

``Host`` wires the sans-I/O rooms core (``server.rooms``) to a ``GameServer``:

- **The directory and this node.** It owns a ``MatchDirectory`` (the
  embedded ``MemoryDirectory``, or with ``--redis`` a ``RedisDirectory``
  shared by every node of a cluster; only ever used through the interface)
  and keeps this node registered in it: id, public URL (``ws://host:port``),
  load (its players and reserved seats), a heartbeat every ``heartbeat_s``.
  A heartbeat that finds the node forgotten (it expired, or Redis came back
  empty) lists its live matches again.
- **Matches on demand.** ``create_match(room, node)`` (the matchmaker's
  factory) builds a ``Match`` of the room type (its seed, or a random 63-bit
  one), with its own recording unless ``--no-record``, and registers it as
  a feed of the server, if ``node`` is this one; for another node it only
  names the match, which the matchmaker lists under that node with its room
  type. A node starts the matches listed under it that it does not run
  (placed there by another node's matchmaker): at its timer's next run
  (every ``tick_s``), or at once when a WebSocket asks for one (the
  server's ``locate`` hook). One it cannot start (its ruleset does not
  load here) is unlisted, the reason logged. Nodes talk through the
  directory only. The default match, of the command line's room type,
  exists from the start and is never disposed of.
- **Empty matches go.** The timer (every ``tick_s`` and at the lifecycle's
  next deadline) expires seats and nodes, sets the directory's player
  counts to the truth of the matches (one read of this node's listing) and
  disposes of matches empty past the grace: unlisted, stopped, removed,
  their replay closed with its end record. A match whose tick raised is
  ended by the server (its players get ``error`` and 1011); the host
  unlists it and closes its replay at its last good tick.
- **HTTP.** ``POST /api/matchmake`` (a seat, or the refusal's status and
  JSON reason), ``GET /api/matches`` (the directory's listing, with each
  local match's tick), ``GET /api/rulesets`` (the catalog, for the lobby).
- **Admission** (``GameServer.admit``, after a hello, before the match
  takes it): a hello's seat is taken in the directory (a bad one: ``error``
  and its 44xx close code); a player without one gets a seat reserved and
  taken at once (none free: 1013, except on ``/ws``, which then goes on to
  another match of the default room on this node, made if need be, or
  1013 naming where to matchmake); spectators and resumes need none.
- **The directory unreachable** (``DirectoryUnavailable``: Redis down).
  Matchmaking and the listing answer 503 with a JSON reason, a seat cannot
  be taken (``error`` and 1013 "directory unavailable, try again"), the
  node is not ready once a call of its timer failed (``GET /healthz?ready``:
  503 and why; one request's time-out alone does not decide); its matches play
  on, nothing is disposed of, and the timer keeps trying the heartbeat
  every ``RETRY_S``. The outage is logged when it starts and when it ends,
  not at each attempt. When the directory is back the node registers
  again, lists its live matches again and sets their player counts.
- **Readiness** (``ready``, ``why_not_ready``): not before the node first
  serves, not while the directory is unreachable, not while something holds
  it (``hold_ready``: a drain).
- **Hand-overs** (``server.handover``: a draining node moves its matches).
  ``adopt`` hosts a match restored from another node's (recorded from its
  tick on, naming the recording before it); ``release`` stops hosting one
  that moved away without unlisting it (it is listed under its new node).
  While this node is not ``accepting``, a new player's ``hello`` is refused
  with 1013 (resumes and spectators pass).

Time: the directory's clock is ``time.time()`` (``clock``), the same on
every node; the matches keep the server's monotonic clock.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from attrs import frozen
from websockets.http11 import Response

from game.errors import GameError
from game.rules import RULESET_NAMES, Ruleset
from server.app import CORS, Connection, GameServer
from server.config import ServerConfig
from server.match import Match
from server.protocol.errors import CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER, PolicyViolation, ProtocolError
from server.protocol.messages import Hello
from server.replay.listing import ReplayLibrary
from server.replay.recorder import Recorder, default_match_id
from server.rooms import (
    Catalog,
    DirectoryUnavailable,
    DuplicateMatch,
    InvalidRoomType,
    Lifecycle,
    MatchDirectory,
    MatchFull,
    MatchId,
    MatchInfo,
    MatchmakeError,
    MatchmakeRequest,
    Matchmaker,
    MemoryDirectory,
    NodeId,
    NodeInfo,
    Offer,
    RoomType,
    SeatError,
    UnknownMatch,
    UnknownNode,
)
from server.rooms.requests import MATCH_ID
from server.rulesets import load_ruleset
from server.web import HttpError, HttpRequest, json_response

log = logging.getLogger("server.host")

#: What ``GET /api/matches`` adds to a local match's entry from the match itself.
LOCAL_FIELDS = ("tick", "tick_rate", "connected", "entities", "ticks_dropped", "inputs_starved", "inputs_dropped",
                "inputs_stale", "inputs_trimmed", "inputs_trimmed_idle", "inputs_skipped")
#: Seconds before a new default match replaces one whose tick raised.
DEFAULT_RETRY_S = 5.0
#: Seconds between two tries of the heartbeat while the directory is unreachable.
RETRY_S = 0.5
#: Seconds a match this node ended is not started again from a listing read before it was unlisted.
ENDED_S = 60.0
#: What a seat's admission says while the directory is unreachable (with close code 1013).
UNAVAILABLE = "directory unavailable, try again"
#: A player's seat that this node reserved, lost by the directory before it was taken (the node's heartbeats came
#: too late: it expired with its matches and seats until its next heartbeat lists them again).
LOST_SEAT = "the directory lost this server's registration (its heartbeats were late), try again"

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class RulesetCache:
    """Rulesets by reference, each loaded once (``load_ruleset``: a GameError for a bad one)."""

    def __init__(self, load: Callable[[str], Ruleset] = load_ruleset) -> None:
        self._load = load
        self._loaded: dict[str, Ruleset] = {}

    def __call__(self, ref: str) -> Ruleset:
        ruleset = self._loaded.get(ref)
        if ruleset is None:
            ruleset = self._loaded[ref] = self._load(ref)
        return ruleset


def build_catalog(default: RoomType, rulesets: RulesetCache, *, tick_rate: int, max_players: int) -> Catalog:
    """The room types offered: ``default`` (the command line's) and each built-in ruleset it is not.

    Built-ins other than the default's get ``tick_rate``, ``max_players`` and
    their rulesets' default options.

    Raises:
        InvalidRoomType: the default's ruleset does not load, or its options are bad.
    """
    try:
        default_spec = rulesets(default.ruleset).spec
    except GameError as exc:
        raise InvalidRoomType("ruleset", str(exc)) from exc
    offers = [Offer(default, default_spec)]
    for name in RULESET_NAMES:
        if name != default_spec.name:
            offers.append(Offer(RoomType(name, tick_rate=tick_rate, max_players=max_players), rulesets(name).spec))
    return Catalog(offers)


def public_url(config: ServerConfig, port: int) -> str:
    """This node's WebSocket base as clients on this machine reach it: ``ws://host:port`` (``wss`` with TLS).

    A server listening on every address says 127.0.0.1: give ``--public-url`` for other machines.
    """
    host = config.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{'wss' if config.tls_cert else 'ws'}://{host}:{port}"


def http_base(url: str) -> str:
    """The HTTP base of a node whose WebSocket base is ``url``: ``ws://h:p`` is ``http://h:p``, ``wss`` ``https``."""
    return "http" + url[2:] if url.startswith("ws") else url


@frozen
class RoomsConfig:
    """A node's rooms settings: the command line's ``--seed``, ``--label``, ``--seat-ttl``, ``--empty-grace``,
    ``--public-url``, ``--redis``, ``--redis-prefix``, ``--heartbeat`` and ``--node-ttl``.

    Attributes:
        seed: the seed of every match of the default room (None: a random one each; the default match's is
            ``ServerConfig.seed`` then).
        labels: the default room's labels.
        seat_ttl: seconds a seat is held.
        empty_grace: seconds a match made on demand may stay without players.
        public_url: this node's WebSocket base, or None: from ``--host`` and the port.
        redis: the Redis URL of the match directory the nodes of a cluster share, or None: the embedded one.
        redis_prefix: the start of every key of that directory (one per cluster sharing a Redis).
        heartbeat_s: seconds between this node's heartbeats.
        node_ttl: seconds a node stays listed after its last heartbeat (None: ``REDIS_NODE_TTL`` with Redis;
            in one process, five heartbeats, so a loop stalled for a few beats does not unlist everything).
    """

    seed: int | None = None
    labels: tuple[tuple[str, str], ...] = ()
    seat_ttl: float = 15.0
    empty_grace: float = 30.0
    public_url: str | None = None
    redis: str | None = None
    redis_prefix: str = "tickserver:"
    heartbeat_s: float = 2.0
    node_ttl: float | None = None


#: A node's time to live in a Redis directory without a heartbeat, seconds (three heartbeats of 2 s).
REDIS_NODE_TTL = 6.0
#: Seconds a call to Redis may take (connecting, waiting for a pooled connection, the answer) before it is
#: ``DirectoryUnavailable``. A refused connection fails at once whatever this is; a node whose loop is busy
#: with a burst of hundreds of matchmakes (2 cores shared with the players) takes more than a second for some.
REDIS_TIMEOUT = 3.0


#: What closes a directory's connections when the node stops (None: nothing to close).
Closer = Callable[[], Awaitable[None]] | None


def open_directory(rooms: RoomsConfig) -> tuple[MatchDirectory, Closer, str]:
    """The match directory of ``rooms``, what closes it, and what to call it in the log: a ``RedisDirectory``
    at ``rooms.redis`` (it connects on first use), else a ``MemoryDirectory``.

    Raises:
        ValueError: a Redis URL that is not one.
    """
    if rooms.redis is None:
        return MemoryDirectory(node_ttl=rooms.node_ttl or 5 * rooms.heartbeat_s), None, "in memory"
    from server.rooms.redis_directory import RedisDirectory  # only a node with --redis loads the Redis client

    directory = RedisDirectory(rooms.redis, prefix=rooms.redis_prefix, node_ttl=rooms.node_ttl or REDIS_NODE_TTL,
                               timeout=REDIS_TIMEOUT)
    return directory, directory.aclose, directory.backend


class Host:
    """The rooms of one node (see the module docstring).

    Args:
        server: the game server whose feeds the matches are.
        catalog: the room types offered (``build_catalog``).
        default_room: the ruleset name (``spec.name``) of the command line's room type: ``/ws`` plays it.
        rulesets: loads each room type's ruleset.
        directory: the match directory (default: a new ``MemoryDirectory``).
        seat_ttl: seconds a seat is held for its player.
        empty_grace: seconds a match may stay empty before it is disposed of.
        heartbeat_s: seconds between this node's heartbeats.
        tick_s: the timer runs at least this often, seconds (a match another node placed here starts by then).
        url: this node's public WebSocket base (default: ``public_url`` of the port it listens on).
        clock: the directory's clock, seconds (``time.time``).

    Attributes:
        accepting: whether this node takes new matches (told in its heartbeat; a drain clears it).
        expecting: matches being handed over to this node: listed under it, not started from their room type.
    """

    def __init__(self, server: GameServer, catalog: Catalog, default_room: str, rulesets: RulesetCache, *,
                 directory: MatchDirectory | None = None, seat_ttl: float = 15.0, empty_grace: float = 30.0,
                 heartbeat_s: float = 2.0, tick_s: float = 0.25, url: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.server = server
        self.config = server.config
        self.catalog = catalog
        self.default_name = default_room
        self.default_room = catalog.offer(default_room).room_type
        self.rulesets = rulesets
        # Node expiry means little in one process; a loop stalled for a few beats must not unlist everything.
        self.directory: MatchDirectory = MemoryDirectory(node_ttl=5 * heartbeat_s) if directory is None else directory
        self.matchmaker = Matchmaker(self.directory, catalog, self.create_match, seat_ttl=seat_ttl)
        self.lifecycle = Lifecycle(empty_grace)
        self.heartbeat_s = heartbeat_s
        self.tick_s = tick_s
        self.url = url
        self.clock = clock
        #: This node's tag (8 random hex digits), in its node id and in every match id it makes.
        self.node_tag = secrets.token_hex(4)
        self.node_id = NodeId(f"node-{self.node_tag}")
        self.accepting = True
        self.expecting: set[MatchId] = set()
        #: The matches this node hosts, by id, and the room type each was made from.
        self.matches: dict[MatchId, Match] = {}
        self.rooms: dict[MatchId, RoomType] = {}
        #: The match ``/ws`` joins first, never disposed of (None until ``open_default``, or after it failed).
        self.default: Match | None = None
        #: Each match's recorder (closed by the match at shutdown, by us when it is disposed of or fails).
        self.recorders: dict[MatchId, Recorder] = {}
        self.stats = {"matches_created": 0, "matches_started_here": 0, "matches_disposed": 0, "matches_failed": 0,
                      "matches_refused": 0, "seats_taken": 0, "seats_refused": 0, "directory_outages": 0}
        #: Admissions under way per match (a seat being taken: the directory may count it already), and
        #: admissions ever started per match (one that starts during a directory read spoils the read).
        self._admitting: Counter[MatchId] = Counter()
        self._admissions: Counter[MatchId] = Counter()
        #: Seats reserved and not taken in each match, as the directory last said (part of the load).
        self._reserved: dict[MatchId, int] = {}
        #: Matches this node ended, until when they are not started again from a stale listing.
        self._ended: dict[MatchId, float] = {}
        #: Set once the node first served (registered, or found the directory unreachable and goes on trying).
        self.started = asyncio.Event()
        #: Matches listed under this node being started here, each start shared by whoever asks meanwhile.
        self._starting: dict[MatchId, asyncio.Future[bool]] = {}
        self._wake = asyncio.Event()
        self._next_beat = 0.0
        #: The directory forgot this node: its matches are to be listed again (by ``_sync``).
        self._relist = False
        #: Registered once already (a heartbeat that finds the node unknown later: it expired meanwhile).
        self._registered = False
        self._default_due: float | None = None
        #: Why the directory cannot be reached, while it cannot; what else holds this node unready, by holder.
        self._outage: str | None = None
        self._holds: dict[str, str] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        #: Closes the directory's connections once the node has left it (``build``: a Redis directory's).
        self.close_directory: Closer = None
        #: What the log calls the directory (a Redis URL without its password).
        self.directory_name = "in memory"

    @classmethod
    def build(cls, config: ServerConfig, rooms: RoomsConfig | None = None) -> Host:
        """The game server of ``config`` and its host: the command line's room type (``config``'s ruleset
        reference, options, tick rate and players, ``rooms``' seed and labels) and the built-ins, on the
        directory of ``rooms`` (``open_directory``). Its replay library plays the default ruleset's replays
        too, a user's included.

        Raises:
            GameError: ``config.ruleset`` names no ruleset that loads.
            InvalidRoomType: a bad option, label, tick rate or player count.
            ValueError: a bad Redis URL.
        """
        rooms = rooms or RoomsConfig()
        rulesets = RulesetCache()
        name = rulesets(config.ruleset).spec.name
        room = RoomType(config.ruleset, options=dict(config.options), tick_rate=config.tick_rate,
                        max_players=config.max_players, seed=rooms.seed, labels=dict(rooms.labels))
        catalog = build_catalog(room, rulesets, tick_rate=config.tick_rate, max_players=config.max_players)
        server = GameServer(config, library=ReplayLibrary(config.replay_dir, refs=((name, config.ruleset),)))
        directory, closer, where = open_directory(rooms)
        host = cls(server, catalog, name, rulesets, directory=directory, seat_ttl=rooms.seat_ttl,
                   empty_grace=rooms.empty_grace, heartbeat_s=rooms.heartbeat_s, url=rooms.public_url)
        host.close_directory = closer
        host.directory_name = where
        return host

    def install(self) -> None:
        """Take the server's admission, locating, readiness and feed-failure hooks and the rooms routes."""
        server = self.server
        server.admit = self.admit
        server.locate = self.locate
        server.unready = self.why_not_ready
        server.feed_failed = self.feed_failed
        server.add_route("POST", "/api/matchmake", self.api_matchmake)
        server.add_route("GET", "/api/matches", self.api_matches)
        server.add_route("GET", "/api/rulesets", self.api_rulesets)
        server.metrics.add_counters("rooms", self.stats)

    # -- readiness -------------------------------------------------------------------

    def why_not_ready(self) -> str | None:
        """Why this node should get no new players now, or None when it is ready (``GET /healthz?ready``)."""
        if not self.started.is_set():
            return "starting"
        if self._outage is not None:
            return self._outage
        return "; ".join(self._holds.values()) or None

    def ready(self) -> bool:
        """Whether this node is ready for new players (``why_not_ready`` says why not)."""
        return self.why_not_ready() is None

    def hold_ready(self, holder: str, why: str | None) -> None:
        """Keep this node unready for ``why`` (a drain: ``hold_ready("drain", "draining")``); None releases it."""
        if why is None:
            self._holds.pop(holder, None)
        else:
            self._holds[holder] = why

    def _unavailable(self, exc: DirectoryUnavailable) -> None:
        """The directory failed a call of the timer's: note the outage (logged once, when it starts).

        Only the timer's calls decide (it runs every ``tick_s``): one request's
        time-out in a burst that keeps the loop busy answers that request 503,
        it does not take the node out of service.
        """
        if self._outage is None:
            self.stats["directory_outages"] += 1
            log.warning("%s: matchmaking answers 503 and this node is not ready; its %d matches play on; "
                        "trying again every %g s", exc, len(self.matches), RETRY_S)
        self._outage = str(exc)
        self._next_beat = min(self._next_beat, self.clock() + RETRY_S)

    def _available(self) -> None:
        if self._outage is not None:
            self._outage = None
            log.info("match directory reachable again: node %s registered, its %d matches listed",
                     self.node_id, len(self.matches))

    # -- running ---------------------------------------------------------------------

    async def serve(self, port: int) -> None:
        """Register this node (listening on ``port``), list its matches, then run the timer until cancelled;
        leave the directory at the end. A directory unreachable from the start is tried again by the timer."""
        if self.url is None:
            self.url = public_url(self.config, port)
        try:
            log.info("node %s (%s), match directory %s", self.node_id, self.url, self.directory_name)
            try:
                await self.heartbeat(self.clock())
                self._available()
            except DirectoryUnavailable as exc:
                self._unavailable(exc)
            self.started.set()
            await self.run()
        finally:
            try:
                await self.directory.remove_node(self.node_id, now=self.clock())
            except DirectoryUnavailable as exc:
                log.warning("leaving the directory: %s", exc)
            except Exception:
                log.exception("rooms: leaving the directory")
            if self.close_directory is not None:
                await self.close_directory()

    async def run(self) -> None:
        """The timer: ``step`` about every ``tick_s`` and at the lifecycle's deadlines, until cancelled.

        A failure is logged and the timer goes on: never the server down.
        """
        while True:
            self._wake.clear()
            try:
                await self.step()
            except Exception:
                log.exception("rooms: the timer failed; again in %g s", self.tick_s)
            now = self.clock()
            wait = min(self.tick_s, self._next_beat - now)
            due = self.lifecycle.next_due()
            if due is not None and self._outage is None:
                wait = min(wait, due - now)
            try:
                async with asyncio.timeout(max(0.0, wait)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def step(self) -> None:
        """One run of the timer: the heartbeat when due, expiries, this node's listing (matches placed here
        started, true player counts), disposals; while the directory is unreachable, only the heartbeat."""
        now = self.clock()
        try:
            if now >= self._next_beat:
                await self.heartbeat(now)
                self._available()
            elif self._outage is not None:
                return
            await self.directory.expire(now=now)
            await self._sync()
        except DirectoryUnavailable as exc:
            self._unavailable(exc)
            return
        now = self.clock()
        for mid, until in list(self._ended.items()):
            if until <= now:
                del self._ended[mid]
        if self._default_due is not None and now >= self._default_due:
            await self._replace_default()
        for mid in self.lifecycle.poll(now=now):
            await self.dispose(mid, f"empty for {self.lifecycle.grace_s:g} s")

    async def heartbeat(self, now: float) -> None:
        """Tell the directory this node is alive; list its matches (again) if it did not know the node (until
        every one is listed: a failure half-way is taken up by the timer's next run).

        Raises:
            DirectoryUnavailable: (the next try is ``RETRY_S`` away).
        """
        assert self.url is not None, "serve() sets the URL"
        self._next_beat = now + RETRY_S
        known = await self.directory.heartbeat(self.node_id, self.url, self.load(), now=now, accepting=self.accepting)
        self._next_beat = now + self.heartbeat_s
        if not known:
            if self._registered and self._outage is None:
                log.warning("the directory had forgotten node %s (its heartbeat came too late): listing its %d "
                            "matches again", self.node_id, len(self.matches))
            self._registered = True
            self._relist = True
            await self._sync()

    def load(self) -> int:
        """This node's load, for placement: its players and the seats reserved in its matches."""
        return sum(m.player_count() for m in self.matches.values()) + sum(self._reserved.values())

    async def _sync(self) -> None:
        """Read this node's listing once: list the matches missing from it if the directory forgot this node,
        start the matches placed here, set each match's player count in the directory to the match's own, and
        report its occupancy.

        Only this node changes the players of its matches (``take`` at
        admission, ``change_players`` here), so the difference is exact
        unless an admission ran meanwhile: then the next run does it.
        """
        started = dict(self._admissions)
        listed = await self.directory.node_matches(self.node_id, now=self.clock())
        if self._relist:
            have = {info.match_id for info in listed}
            for mid in [m for m in self.matches if m not in have]:
                await self._list(mid, self.clock())
            self._relist = False
        for info in listed:
            mid = info.match_id
            match = self.matches.get(mid)
            if match is None:
                if mid not in self._ended and mid not in self.expecting:
                    await self._start_listed(info)
                continue
            if self._admitting[mid] or self._admissions[mid] != started.get(mid, 0):
                continue
            players = match.player_count()
            now = self.clock()
            if players != info.players:
                try:
                    info = await self.directory.change_players(mid, players - info.players, now=now)
                except UnknownMatch:
                    continue
            self._reserved[mid] = info.reserved
            self.lifecycle.occupancy(mid, players + info.reserved, now=now)

    # -- matches ---------------------------------------------------------------------

    def new_match(self, room: RoomType, *, match_id: str = "", seed: int | None = None) -> Match:
        """Start a match of ``room`` on this node, with its own recording, as a feed of the server (not listed yet).

        ``seed``: instead of the room's (whose None is a random 63-bit one).
        ``match_id``: instead of a new ``<ruleset>-<UTC time>-<node tag>-<6 hex>``.

        Raises:
            GameError: the ruleset refuses; OSError: the replay cannot be created.
        """
        ruleset = self.rulesets(room.ruleset)
        if seed is None:
            seed = room.seed if room.seed is not None else secrets.randbits(63)
        config = self.config
        match = Match(ruleset, match_id=match_id or self.new_id(ruleset.spec.name), seed=seed,
                      options=dict(room.options), tick_rate=room.tick_rate, max_players=room.max_players,
                      msg_rate=config.msg_rate, hold_s=config.hold_s)
        self._host(match, room)
        self.stats["matches_created"] += 1
        return match

    def _host(self, match: Match, room: RoomType, extra: dict[str, Any] | None = None) -> Recorder | None:
        """Record ``match`` (unless ``--no-record``; ``extra``: more header keys) and make it a feed of the server.

        Raises:
            ValueError: a match with its id is here already; OSError: the replay cannot be created.
        """
        mid = MatchId(match.match_id)
        if mid in self.matches or mid in self.server.feeds:
            raise ValueError(f"two matches with the id {mid!r}")
        recorder = None
        if self.config.record:
            recorder = Recorder.create(match, self.config.replay_dir, extra=extra)
            match.observers.append(recorder)
            self.recorders[mid] = recorder
        self.matches[mid] = match
        self.rooms[mid] = room
        self.server.add_feed(mid, match)
        return recorder

    def adopt(self, match: Match, room: RoomType, *, extra: dict[str, Any] | None = None) -> Recorder | None:
        """Host ``match``, handed over from another node (``server.handover``), made of ``room``: recorded from
        its tick on (a keyframe first; ``extra``: more header keys), ticking from now, disposed of when empty as
        any match. Not listed here: the hand-over re-homes its listing.

        Raises:
            ValueError: a match with its id is here already; OSError: the replay cannot be created.
        """
        recorder = self._host(match, room, extra)
        self._ended.pop(MatchId(match.match_id), None)  # it may come back to a node it left
        self.lifecycle.created(MatchId(match.match_id), now=self.clock())
        self._wake.set()
        return recorder

    def release(self, mid: MatchId) -> Recorder | None:
        """Stop hosting match ``mid`` without unlisting it (it moved to another node, or a drain ends it): its
        recorder, detached, is returned; the caller removes its feed and closes the recording."""
        match = self.matches.get(mid)
        if match is None:
            return None
        if match is self.default:
            self.default = None
        return self._forget(mid)

    def open_default(self, *, match_id: str = "", seed: int | None = None) -> Match:
        """The default match (``/ws``): of the default room type, from the start, never disposed of.

        Its id is ``match_id`` or ``<ruleset>-<UTC time>-<node tag>-<seed>`` (``node_tag``: two nodes starting
        theirs in the same millisecond with the same seed do not collide in the directory).
        """
        name = self.default_name
        if seed is None:
            seed = self.default_room.seed if self.default_room.seed is not None else secrets.randbits(63)
        match = self.new_match(self.default_room, seed=seed,
                               match_id=match_id or default_match_id(_ID_UNSAFE.sub("-", name), seed, time.time(), self.node_tag))
        self.default = match
        self.server.default_id = match.match_id
        return match

    async def create_match(self, room: RoomType, node: NodeInfo) -> MatchId:
        """The matchmaker's factory: a new match of ``room``, empty until a seat is taken, started here if
        ``node`` is this one; for another node only its id (that node starts it from its listing)."""
        if node.node_id != self.node_id:
            return MatchId(self.new_id(self._name_of(room)))
        match = self.new_match(room)
        mid = MatchId(match.match_id)
        self.lifecycle.created(mid, now=self.clock())
        self._wake.set()  # its deadline may come before the timer's next run
        self._started_log(match, room, "created")
        return mid

    def _name_of(self, room: RoomType) -> str:
        """The ruleset name of a room type of the catalog (its reference loads here: the catalog loaded it)."""
        return self.rulesets(room.ruleset).spec.name

    def _started_log(self, match: Match, room: RoomType, how: str) -> None:
        recorder = self.recorders.get(MatchId(match.match_id))
        log.info("match %s %s: %s, at most %d players, labels %s, seed %d%s", match.match_id, how,
                 match.ruleset.spec.name, match.max_players, dict(room.labels) or "none", match.seed,
                 f", recording to {recorder.path}" if recorder is not None else "")

    def new_id(self, name: str) -> str:
        """A new match id for ruleset ``name``: ``<name>-<UTC time>-<node tag>-<6 hex>``: the node tag keeps the
        ids this node makes (for itself or another node) apart from every other node's; the 6 random hex digits
        and the check against this node's matches apart from its own."""
        stamp = datetime.fromtimestamp(time.time(), UTC).strftime("%Y%m%dT%H%M%SZ")
        while True:
            mid = f"{_ID_UNSAFE.sub('-', name)[:24]}-{stamp}-{self.node_tag}-{secrets.token_hex(3)}"
            if mid not in self.matches:
                return mid

    async def locate(self, match_id: str) -> bool:
        """``GameServer.locate``: start match ``match_id`` now if it is listed under this node and not running.

        Raises:
            HttpError: 503 while the directory cannot be reached.
        """
        if not MATCH_ID.fullmatch(match_id):
            return False
        mid = MatchId(match_id)
        if mid in self.matches:
            return True
        if mid in self._ended or mid in self.expecting:
            return False
        try:
            info = await self.directory.get_match(mid, now=self.clock())
            if info is None or info.node_id != self.node_id:
                return False
            return await self._start_listed(info)
        except DirectoryUnavailable:
            raise HttpError(503, UNAVAILABLE) from None

    async def _start_listed(self, info: MatchInfo) -> bool:
        """Start a match listed under this node by another (from its room type), once however many ask."""
        mid = info.match_id
        starting = self._starting.get(mid)
        if starting is None:
            starting = self._starting[mid] = asyncio.ensure_future(self._start(info))
            starting.add_done_callback(lambda _: self._starting.pop(mid, None))
        return await asyncio.shield(starting)

    async def _start(self, info: MatchInfo) -> bool:
        mid = info.match_id
        if mid in self.matches:
            return True
        try:
            room = RoomType.from_json(info.room)
            # Only what this node offers: a listing names no code to import, only a room type of the catalog.
            offer = self.catalog.offers.get(info.ruleset)
            if offer is None or offer.room_type.ruleset != room.ruleset:
                raise GameError(f"ruleset {room.ruleset!r} ({info.ruleset}) is not offered here; "
                                f"this node offers {', '.join(self.catalog.names)}")
            offer.check_options(room.options)
            match = self.new_match(room, match_id=mid)
        except (InvalidRoomType, MatchmakeError, GameError, OSError, ValueError) as exc:
            self.stats["matches_refused"] += 1
            log.error("match %s, listed under this node, cannot start here: %s; unlisting it", mid, exc)
            self._ended[mid] = self.clock() + ENDED_S
            await self.directory.remove_match(mid, now=self.clock())
            return False
        self.stats["matches_started_here"] += 1
        self.lifecycle.created(mid, now=self.clock())
        self._reserved[mid] = info.reserved
        self.lifecycle.occupancy(mid, info.players + info.reserved, now=self.clock())
        self._wake.set()
        self._started_log(match, room, "started, placed here by another node")
        return True

    async def _list(self, mid: MatchId, now: float) -> None:
        """List a match of this node in the directory, with its players and its room type."""
        match, room = self.matches[mid], self.rooms[mid]
        try:
            await self.directory.add_match(mid, self.node_id, match.ruleset.spec.name, room.labels, match.max_players,
                                           now=now, players=match.player_count(), room=room.to_json())
        except DuplicateMatch:
            info = await self.directory.get_match(mid, now=now)
            if info is not None and info.node_id != self.node_id:
                log.error("match %s is not listed: node %s lists another match of that id", mid, info.node_id)

    async def dispose(self, mid: MatchId, why: str) -> None:
        """End match ``mid`` if it is still empty: unlist it, stop it (1001 to its spectators), close its replay.

        While the directory cannot be reached, it is kept (and tried again after another grace).
        """
        match = self.matches.get(mid)
        if match is None or match is self.default:
            return
        now = self.clock()
        if match.player_count() or self._admitting[mid]:
            self.lifecycle.occupancy(mid, match.player_count() + self._admitting[mid], now=now)
            return
        try:
            await self.directory.remove_match(mid, now=now)
        except DirectoryUnavailable as exc:
            self._unavailable(exc)
            self.lifecycle.created(mid, now=self.clock())
            return
        if self.matches.get(mid) is not match:
            return  # it failed meanwhile
        recorder = self._forget(mid)
        self.server.remove_feed(mid, f"the match is over ({why})")
        if recorder is not None:
            await asyncio.to_thread(recorder.on_close, match)  # the end record; the file's last flush off the loop
        self.stats["matches_disposed"] += 1
        log.info("match %s disposed of: %s, after %d ticks", mid, why, match.tick_count)

    def feed_failed(self, feed_id: str) -> None:
        """``GameServer.feed_failed``: a match's tick raised; the server closes it (1011) once this returns.

        Its replay is closed as it stands, without an end record (the world is
        whatever the exception left), so it verifies up to its last tick; the
        match is unlisted. A failed default match is replaced after ``DEFAULT_RETRY_S``.
        """
        mid = MatchId(feed_id)
        match = self.matches.get(mid)
        if match is None:
            return
        recorder = self._forget(mid)
        self.stats["matches_failed"] += 1
        if match is self.default:
            self.default = None
            self._default_due = self.clock() + DEFAULT_RETRY_S
        log.error("match %s ended at tick %d: its tick raised (above); its replay stops at its last tick",
                  mid, match.tick_count)
        self._spawn(self._unlist_failed(mid, recorder))

    async def _unlist_failed(self, mid: MatchId, recorder: Recorder | None) -> None:
        try:
            await self.directory.remove_match(mid, now=self.clock())
        except DirectoryUnavailable as exc:
            self._unavailable(exc)  # a node that lost the directory lists only its live matches again
        if recorder is not None:
            await asyncio.to_thread(recorder.close)

    async def _replace_default(self) -> None:
        """A new default match after the last one failed: an open one of the default room here, or a new one."""
        self._default_due = None
        for mid, match in self.matches.items():
            if self.rooms[mid] == self.default_room:
                self.lifecycle.forget(mid)  # the default is never disposed of
                self.default = match
                self.server.default_id = mid
                log.info("match %s is the default match now", mid)
                return
        match = self.open_default()
        log.info("match %s is the new default match", match.match_id)
        try:
            await self._list(MatchId(match.match_id), self.clock())
        except (DirectoryUnavailable, UnknownNode):
            pass  # listed when this node registers again

    def _forget(self, mid: MatchId) -> Recorder | None:
        """Stop tracking ``mid``; its recorder, detached (the feed's close no longer closes it)."""
        match = self.matches.pop(mid)
        self.rooms.pop(mid, None)
        self.lifecycle.forget(mid)
        self._admitting.pop(mid, None)
        self._admissions.pop(mid, None)
        self._reserved.pop(mid, None)
        self._ended[mid] = self.clock() + ENDED_S
        recorder = self.recorders.pop(mid, None)
        if recorder is not None and recorder in match.observers:
            match.observers.remove(recorder)
        return recorder

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("rooms: a background task failed", exc_info=task.exception())

    # -- admission -------------------------------------------------------------------

    async def admit(self, feed_id: str, hello: Hello, conn: Connection) -> str | None:
        """``GameServer.admit``: seat a player's hello in the directory before the match takes it.

        A seat token is taken (``SeatError``: its 44xx close code); a player
        without one gets a seat reserved and taken at once: if none is free,
        1013 on ``/ws/<match id>``, and on ``/ws`` a seat in another match of
        the default room on this node (join or create), whose id is returned
        (none here: 1013 naming where to matchmake). Spectators, resumes of a
        held member and feeds that are not matches of this node pass as they
        are. The directory unreachable: 1013 "directory unavailable, try again"; the seat this node reserved
        or its match unknown to the directory (it expired this node meanwhile): 1013 ``LOST_SEAT``.

        Raises:
            ProtocolError: the hello does not seat a player (the connection fails with its code).
        """
        await self.started.wait()
        match = self.matches.get(MatchId(feed_id))
        if match is None or hello.spectate or match.resumes(hello):
            return None
        if not self.accepting:
            raise PolicyViolation("this server is draining: matchmake again for a seat elsewhere", CLOSE_TRY_AGAIN_LATER)
        try:
            return await self._seat(match, hello, conn)
        except DirectoryUnavailable:
            raise PolicyViolation(UNAVAILABLE, CLOSE_TRY_AGAIN_LATER) from None

    async def _seat(self, match: Match, hello: Hello, conn: Connection) -> str | None:
        if hello.seat is not None:
            await self._take(match, hello.seat)
            return None
        try:
            await self._take(match, None)
            return None
        except MatchFull:
            if not (match is self.default and conn.path.split("?", 1)[0] == "/ws"):
                raise self._full(match) from None
        # /ws, the default match full: join or create another match of the default room, on this node.
        request = MatchmakeRequest(self.default_name, labels=self.default_room.labels)
        where = f"get a seat from POST {http_base(self.url or '')}/api/matchmake"
        try:
            seat = await self.matchmaker.matchmake(request, now=self.clock(), node=self.node_id)
        except MatchmakeError as exc:
            raise PolicyViolation(f"the match is full and no other here ({exc.reason}): {where}",
                                  CLOSE_TRY_AGAIN_LATER) from None
        other = self.matches.get(seat.match_id)
        if other is None:  # not this node's after all: a WebSocket cannot move there
            raise PolicyViolation(f"the match is full ({match.max_players} players): {where}", CLOSE_TRY_AGAIN_LATER)
        await self._take(other, seat.token)
        return other.match_id

    @staticmethod
    def _full(match: Match) -> PolicyViolation:
        return PolicyViolation(f"the match is full ({match.max_players} players)", CLOSE_TRY_AGAIN_LATER)

    async def _take(self, match: Match, token: str | None) -> None:
        """Take seat ``token`` in ``match`` (None: reserve one and take it at once).

        Raises:
            ProtocolError: a bad seat (its close code) or a match that ended (1001); with no token, a seat or a
                match the directory does not know although the match runs here (this node expired meanwhile):
                1013, try again.
            MatchFull: no token, and no free seat.
            DirectoryUnavailable.
        """
        mid = MatchId(match.match_id)
        ours = token is None
        self._admitting[mid] += 1
        self._admissions[mid] += 1
        try:
            if token is None:
                token = (await self.directory.reserve(mid, ttl=self.matchmaker.seat_ttl, now=self.clock())).token
            await self.directory.take(token, mid, now=self.clock())
        except SeatError as exc:
            self.stats["seats_refused"] += 1
            if ours:
                raise PolicyViolation(LOST_SEAT, CLOSE_TRY_AGAIN_LATER) from None
            raise ProtocolError(exc.reason, exc.code) from None
        except UnknownMatch:
            if ours and mid in self.matches:
                raise PolicyViolation(LOST_SEAT, CLOSE_TRY_AGAIN_LATER) from None
            raise PolicyViolation(f"match {mid!r} has ended", CLOSE_GOING_AWAY) from None
        finally:
            if mid in self._admitting:
                self._admitting[mid] -= 1
        self.stats["seats_taken"] += 1
        self.lifecycle.occupancy(mid, 1, now=self.clock())

    # -- HTTP ------------------------------------------------------------------------

    async def api_matchmake(self, request: HttpRequest) -> Response:
        """``POST /api/matchmake``: 200 and the seat, or the refusal's status and ``{"error", "field"}``
        (503 while the directory cannot be reached)."""
        try:
            await self.started.wait()
            seat = await self.matchmaker.handle(request.body, now=self.clock())
        except MatchmakeError as exc:
            return json_response(exc.to_json(), exc.status)
        except DirectoryUnavailable as exc:
            return json_response(MatchmakeError(503, _try_again(exc)).to_json(), 503)
        except Exception:
            log.exception("POST /api/matchmake")
            return json_response({"error": "internal server error; see the server's log", "field": None}, 500)
        return json_response(seat.to_json(self.clock()))

    async def api_matches(self, request: HttpRequest) -> Response:
        """``GET /api/matches?ruleset=&label=k:v&open=1&limit=``: the directory's listing, oldest first
        (503 while the directory cannot be reached).

        Each entry: match, url, ruleset, labels, players, reserved,
        max_players; a match of this node also has its tick, tick_rate,
        connected, entities, ticks_dropped, its input queues' counts
        (inputs_starved, inputs_dropped, inputs_stale) and whether it is the default.
        """
        await self.started.wait()
        try:
            found = await self.matchmaker.listing(urllib.parse.urlsplit(request.path).query, now=self.clock())
        except MatchmakeError as exc:
            return json_response(exc.to_json(), exc.status, extra=CORS)
        except DirectoryUnavailable as exc:
            return json_response(MatchmakeError(503, _try_again(exc)).to_json(), 503, extra=CORS)
        return json_response({"matches": [self._entry(info) for info in found]}, extra=CORS)

    def _entry(self, info: MatchInfo) -> dict[str, Any]:
        entry = info.to_json()
        match = self.matches.get(info.match_id)
        if match is not None:
            local = match.info()
            entry.update({k: local[k] for k in LOCAL_FIELDS if k in local})
            entry["default"] = match is self.default
        return entry

    def api_rulesets(self, request: HttpRequest) -> Response:
        """``GET /api/rulesets``: the room types offered: name, version, settings, labels, options with ranges."""
        rulesets = []
        for name in self.catalog.names:
            offer = self.catalog.offer(name)
            room, spec = offer.room_type, offer.spec
            values = spec.resolve_options(dict(room.options))
            rulesets.append({
                "name": name, "version": spec.version, "default": name == self.default_name,
                "tick_rate": room.tick_rate, "max_players": room.max_players, "labels": dict(room.labels),
                "options": [{"name": o.name, "default": values[o.name], "lo": o.lo, "hi": o.hi, "doc": o.doc}
                            for o in spec.options],
            })
        return json_response({"default": self.default_name, "seat_ttl": self.matchmaker.seat_ttl,
                              "empty_grace": self.lifecycle.grace_s, "rulesets": rulesets}, extra=CORS)


def _try_again(exc: DirectoryUnavailable) -> str:
    """The reason of a 503 for an unreachable directory."""
    return f"{str(exc).rstrip('.')}: try again"

"""``RedisDirectory``: the match directory in Redis, shared by every node of a cluster (``--redis redis://...``).

A shell, not part of the sans-I/O rooms core: it talks to Redis through
``redis.asyncio``. It keeps every rule of ``server.rooms.directory`` the
way ``MemoryDirectory`` does (the same errors, orderings and ``now``: the
caller's wall clock), and the contract tests run both against one suite.

**Atomicity.** Every operation is one Lua script run (``redis_directory.lua``,
registered once and called by ``EVALSHA``, loaded again when Redis forgot
it), so a check-then-act such as ``reserve``'s is atomic across all nodes:
however many reserve at once, a match never over-fills. Each run first
sweeps what is due at its ``now``, in time order: nodes past their expiry
go with their matches (index entries, seats, mailbox), held seats past
theirs lapse and free their place, tombstones past ``tombstone_s`` are
forgotten. So any node's timer (``expire``) and every read clean up, and
nothing expired is ever returned.

**Key layout** (``P`` is the prefix, ``tickserver:`` by default; ``<...>``
an id or token as given; ``<q:...>`` percent-encoded, so ``:`` and ``=``
in names cannot collide)::

    P nodes                         zset   node id -> expires (the sweep walks it)
    P node:<node>                   hash   url, load, accepting (1/0), expires
    P nodematches:<node>            zset   its match ids, equal scores (byte order)
    P mail:<node>                   list   its mailbox, oldest first
    P match:<match>                 hash   node, ruleset, labels (JSON), max_players, players,
                                           reserved, created, room (JSON), indexes (JSON: its index keys)
    P matchseats:<match>            set    its seat tokens (they go with it)
    P seat:<token>                  hash   match, state (held/taken/lapsed), expires, ttl
    P seats:due                     zset   token -> expiry while held, forget time as a tombstone
    P idx:all                       zset   match id -> created
    P idx:rs:<q:ruleset>            zset   match id -> created
    P idx:lb:<q:key>=<q:value>      zset   match id -> created
    P idx:rl:<q:ruleset>:<q:key>=<q:value>  zset  the same within a ruleset
    P lapsed:seats / :nodes / :matches      what lapsed since the last ``expire`` (counter, lists)

**Listing** reads through the smallest index that covers the query (its
size is one ``ZCARD``), walking it oldest first and checking the others by
``ZSCORE``, and stops at ``limit`` matches or ``list_budget`` entries read:
no query reads every match of the cluster.

**Garbage collection.** The logical clock is the caller's ``now``; Redis's
own key expiry is only the collector of a cluster that died whole: every
key gets a TTL well past its logical lifetime (``2 node_ttl + 60`` s,
renewed by each heartbeat of the node it belongs to; a seat's ``ttl +
tombstone_s + 60`` s), so nothing is left behind.

**Failure.** Every call is bounded by ``timeout`` (connecting, waiting for
a pooled connection, the answer) and never retried by the client (a
retried ``take`` would answer *taken* to the player who took it): an
unreachable or silent Redis raises ``DirectoryUnavailable`` naming the URL
(without its password) and the cause; a lost connection drops every idle
pooled one (they died with it), so no call fails on one once Redis is back.
The directory keeps no state of its
own, so when Redis comes back (empty, after a restart) a node's next
heartbeat answers False and the node lists its matches again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout

from server.rooms.directory import NO_ROOM, Expired, MatchId, MatchInfo, NodeId, NodeInfo, Seat
from server.rooms.errors import (
    DirectoryUnavailable,
    DuplicateMatch,
    MatchFull,
    SeatExpired,
    SeatForAnotherMatch,
    SeatTaken,
    UnknownMatch,
    UnknownNode,
    UnknownSeat,
)

SCRIPT = Path(__file__).with_name("redis_directory.lua").read_text(encoding="utf-8")
#: Take every message of a mailbox (KEYS[1]), oldest first.
DRAIN = "local m = redis.call('LRANGE', KEYS[1], 0, -1)\nredis.call('DEL', KEYS[1])\nreturn m\n"


class RedisDirectory:
    """``MatchDirectory`` in Redis (see the module docstring). Close it with ``aclose()``.

    Args:
        url: ``redis://[user:password@]host:port/db`` (or ``rediss://``, ``unix://``).
        prefix: the start of every key (several clusters can share one Redis).
        node_ttl: seconds a node stays alive after a heartbeat.
        tombstone_s: seconds a used or lapsed seat token is still recognised.
        timeout: seconds any call may take before it raises ``DirectoryUnavailable``.
        max_connections: connections to Redis at most (more concurrent calls wait for one, within ``timeout``).
        list_budget: index entries a listing reads at most.

    Raises:
        ValueError: ``url`` is not a Redis URL.

    Attributes:
        backend: the URL without its password (what errors name).
        examined: index entries read by listings so far (a metric, as ``MemoryDirectory.examined``).
    """

    def __init__(self, url: str, *, prefix: str = "tickserver:", node_ttl: float = 6.0, tombstone_s: float = 60.0,
                 timeout: float = 1.0, max_connections: int = 32, list_budget: int = 10_000) -> None:
        if not timeout > 0:
            raise ValueError(f"the directory's timeout must be positive, not {timeout}")
        self.backend = redacted(url)
        self.prefix = prefix
        self.node_ttl = node_ttl
        self.tombstone_s = tombstone_s
        self.timeout = timeout
        self.list_budget = list_budget
        self.examined = 0
        self._gc = str(math.ceil(2 * node_ttl + 60))
        never = Retry(NoBackoff(), 0)
        self._redis = Redis.from_pool(BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, socket_timeout=timeout,
            socket_connect_timeout=timeout, retry=never))
        # Mailbox reads block in Redis for as long as they wait: their own connections, without a read timeout.
        self._blocking = Redis.from_pool(BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, socket_connect_timeout=timeout, retry=never))
        self._script = self._redis.register_script(SCRIPT)
        self._drain = self._redis.register_script(DRAIN)

    async def aclose(self) -> None:
        """Close the connections to Redis (what is stored stays)."""
        await self._redis.aclose()
        await self._blocking.aclose()

    # -- nodes -----------------------------------------------------------------

    async def heartbeat(self, node_id: NodeId, url: str, load: int, *, now: float, accepting: bool = True) -> bool:
        known = await self._run("heartbeat", now, node_id, url, load, int(accepting), repr(now + self.node_ttl))
        return bool(known)

    async def remove_node(self, node_id: NodeId, *, now: float) -> tuple[MatchId, ...]:
        return tuple(MatchId(_str(m)) for m in await self._run("remove_node", now, node_id))

    async def nodes(self, *, now: float) -> list[NodeInfo]:
        found = [NodeInfo(NodeId(_str(i)), _str(url), int(load), accepting == b"1", float(expires))
                 for i, url, load, accepting, expires in await self._run("nodes", now)]
        return sorted(found, key=lambda n: n.node_id)

    # -- matches ---------------------------------------------------------------

    async def add_match(self, match_id: MatchId, node_id: NodeId, ruleset: str, labels: Mapping[str, str],
                        max_players: int, *, now: float, players: int = 0,
                        room: Mapping[str, Any] | None = None) -> MatchInfo:
        labels = dict(labels)
        reply = await self._run("add_match", now, match_id, node_id, ruleset, json.dumps(labels), max_players,
                                players, json.dumps(dict(room or {})), json.dumps(_indexes(ruleset, labels)))
        return self._match_reply(reply, match_id, node_id)

    async def node_matches(self, node_id: NodeId, *, now: float) -> list[MatchInfo]:
        found = [_info(m) for m in await self._run("node_matches", now, node_id)]
        return sorted(found, key=lambda m: (m.created, m.match_id))

    async def move_match(self, match_id: MatchId, node_id: NodeId, *, now: float) -> MatchInfo:
        return self._match_reply(await self._run("move_match", now, match_id, node_id), match_id, node_id)

    async def change_players(self, match_id: MatchId, delta: int, *, now: float) -> MatchInfo:
        return self._match_reply(await self._run("change_players", now, match_id, delta), match_id)

    async def remove_match(self, match_id: MatchId, *, now: float) -> None:
        await self._run("remove_match", now, match_id)

    async def get_match(self, match_id: MatchId, *, now: float) -> MatchInfo | None:
        (found,) = await self._run("get_match", now, match_id)
        return None if found is None else _info(found)

    async def list_matches(self, *, now: float, ruleset: str | None = None, labels: Mapping[str, str] | None = None,
                           open_only: bool = False, limit: int = 100) -> list[MatchInfo]:
        if limit <= 0:
            return []
        examined, found = await self._run("list_matches", now, limit, int(open_only), self.list_budget,
                                          *_query(ruleset, dict(labels or {})))
        self.examined += int(examined)
        return [_info(m) for m in found]

    # -- seats -----------------------------------------------------------------

    async def reserve(self, match_id: MatchId, *, ttl: float, now: float) -> Seat:
        if not ttl > 0:
            raise ValueError(f"a seat's ttl must be positive, not {ttl}")
        expires = now + ttl
        seat_gc = math.ceil(ttl + self.tombstone_s + 60)
        while True:
            token = secrets.token_urlsafe(18)
            reply = await self._run("reserve", now, match_id, token, repr(expires), repr(ttl), seat_gc)
            status = reply[0]
            if status == b"ok":
                return Seat(match_id, f"{_str(reply[1])}/ws/{match_id}", token, expires)
            if status == b"full":
                raise MatchFull(match_id, int(reply[1]))
            if status == b"unknown_match":
                raise UnknownMatch(match_id)
            # b"again": the token was drawn before (as likely as a 144-bit collision): draw another

    async def take(self, token: str, match_id: MatchId, *, now: float) -> MatchInfo:
        reply = await self._run("take", now, token, match_id, math.ceil(self.tombstone_s + 60))
        status = reply[0]
        if status == b"ok":
            return _info(reply[1])
        if status == b"other":
            raise SeatForAnotherMatch(match_id, _str(reply[1]))
        if status == b"taken":
            raise SeatTaken(match_id)
        if status == b"lapsed":
            raise SeatExpired(match_id, float(reply[1]))
        raise UnknownSeat(match_id)

    async def expire(self, *, now: float) -> Expired:
        seats, nodes, matches = await self._run("expire", now)
        return Expired(int(seats), tuple(NodeId(_str(n)) for n in nodes), tuple(MatchId(_str(m)) for m in matches))

    # -- mailboxes -------------------------------------------------------------

    async def post(self, node_id: NodeId, payload: bytes, *, now: float) -> None:
        if not await self._run("post", now, node_id, bytes(payload)):
            raise UnknownNode(node_id)

    async def receive(self, node_id: NodeId, *, timeout: float) -> list[bytes]:
        key = f"{self.prefix}mail:{node_id}"
        async with self._bounded(max(0.0, timeout)):
            first: list[bytes] = []
            if timeout > 0:
                popped = await self._blocking.blpop([key], timeout=timeout)
                if popped is None:
                    return []
                first = [bytes(popped[1])]  # type: ignore[arg-type]
            rest: list[bytes] = await self._drain(keys=[key])
            return first + rest

    # -- inside ----------------------------------------------------------------

    async def _run(self, op: str, now: float, *args: str | int | bytes) -> Any:
        """One operation of the script, at ``now``."""
        async with self._bounded():
            return await self._script(args=[self.prefix, op, repr(now), repr(self.tombstone_s), self._gc, *args])

    @contextlib.asynccontextmanager
    async def _bounded(self, waiting: float = 0.0) -> AsyncIterator[None]:
        """Redis's answer within ``timeout`` (plus ``waiting``, what the call waits for on purpose), or
        DirectoryUnavailable: never a redis-py exception, never a hang.

        A cancellation is never lost: redis-py 8.1 may swallow one that comes in the first moments of a call (a
        ``BLPOP`` cancelled within about a millisecond returned None with its task still cancelling), and a loop
        calling again would then never end. So a call during which the task was cancelled raises CancelledError
        whatever redis-py did."""
        task = asyncio.current_task()
        cancels = 0 if task is None else task.cancelling()
        try:
            async with asyncio.timeout(waiting + self.timeout):
                yield
        except (TimeoutError, RedisTimeout):  # ours or the socket's (the same time-out: whichever came first)
            _honour_cancel(task, cancels)
            raise DirectoryUnavailable(self.backend, f"no answer within {self.timeout:g} s") from None
        except (RedisError, OSError) as exc:
            _honour_cancel(task, cancels)
            if isinstance(exc, (RedisConnectionError, OSError)):
                # Redis went away: every idle pooled connection is dead too. Dropped now, each reconnects when
                # next used, instead of failing one call each once Redis is back (nothing is retried).
                await self._redis.connection_pool.disconnect(inuse_connections=False)
            raise DirectoryUnavailable(self.backend, _cause(exc)) from exc
        _honour_cancel(task, cancels)

    def _match_reply(self, reply: list[Any], match_id: MatchId, node_id: NodeId | None = None) -> MatchInfo:
        status = reply[0]
        if status == b"ok":
            return _info(reply[1])
        if status == b"unknown_node":
            raise UnknownNode(node_id or "")
        if status == b"duplicate":
            raise DuplicateMatch(match_id)
        raise UnknownMatch(match_id)


def _honour_cancel(task: asyncio.Task[Any] | None, before: int) -> None:
    """Raise CancelledError if ``task`` was cancelled since it counted ``before`` cancellations."""
    if task is not None and task.cancelling() > before:
        raise asyncio.CancelledError()


def redacted(url: str) -> str:
    """``url`` without its password (what a log line or an error may show)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}@" if parts.username else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=user + host))


def _cause(exc: BaseException) -> str:
    """The exception in one line: its class and message."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _str(value: bytes) -> str:
    return value.decode("utf-8")


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _indexes(ruleset: str, labels: Mapping[str, str]) -> list[str]:
    """The index keys (after the prefix) that list a match of ``ruleset`` with ``labels``."""
    pairs = [f"{_q(k)}={_q(v)}" for k, v in labels.items()]
    return ["idx:all", f"idx:rs:{_q(ruleset)}", *(f"idx:lb:{p}" for p in pairs),
            *(f"idx:rl:{_q(ruleset)}:{p}" for p in pairs)]


def _query(ruleset: str | None, labels: Mapping[str, str]) -> list[str]:
    """The index keys whose intersection is the answer to a listing (each covers the others' filters or not)."""
    pairs = [f"{_q(k)}={_q(v)}" for k, v in labels.items()]
    if ruleset is None:
        return [f"idx:lb:{p}" for p in pairs] or ["idx:all"]
    return [f"idx:rl:{_q(ruleset)}:{p}" for p in pairs] or [f"idx:rs:{_q(ruleset)}"]


def _info(reply: list[bytes]) -> MatchInfo:
    match_id, node, ruleset, labels, max_players, players, reserved, created, room, url = reply
    data = json.loads(room)
    return MatchInfo(MatchId(_str(match_id)), NodeId(_str(node)), f"{_str(url)}/ws/{_str(match_id)}", _str(ruleset),
                     MappingProxyType(json.loads(labels)), int(max_players), int(players), int(reserved),
                     float(created), MappingProxyType(data) if data else NO_ROOM)

"""``MemoryDirectory``: the match directory in one process's memory (the embedded default).

Correct under asyncio concurrency without a lock: no method but
``receive`` awaits anything, so each runs from start to end without another
task in between, and a check-then-act such as ``reserve``'s is atomic.
``receive`` waits on a future that ``post`` resolves: the mailboxes work
between the nodes (``Host``s) of one process, so two hosts sharing one
directory in a test can hand a match over.

Time-outs (node heartbeats, seat reservations, tombstones of used tokens)
sit in one heap ordered by due time; every method first pops what is due at
its ``now``, so an expired seat or node is never seen, whoever calls
``expire``, and the work is proportional to what expires, not to what is
stored. A reservation that lapsed or was taken is kept as a tombstone for
``tombstone_s`` more seconds, so a late or repeated ``take`` says *expired*
or *taken* instead of *unknown*.

A match's room data is kept as its JSON round trip (so it reads back as a
networked directory's would: lists, not tuples; a value JSON cannot carry
fails at ``add_match``).
"""

from __future__ import annotations

import asyncio
import heapq
import json
import secrets
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from attrs import define, field

from server.rooms.directory import NO_ROOM, Expired, MatchId, MatchInfo, NodeId, NodeInfo, Seat
from server.rooms.errors import (
    DuplicateMatch,
    MatchFull,
    SeatExpired,
    SeatForAnotherMatch,
    SeatTaken,
    UnknownMatch,
    UnknownNode,
    UnknownSeat,
)
from server.rooms.index import MatchIndex

# Seat states, and kinds of timed events on the heap.
HELD, TAKEN, LAPSED = "held", "taken", "lapsed"
_NODE, _SEAT, _FORGET = 0, 1, 2


@define
class _Node:
    node_id: NodeId
    url: str
    load: int
    accepting: bool
    expires: float
    matches: set[MatchId] = field(factory=set)


@define
class _Match:
    match_id: MatchId
    node_id: NodeId
    ruleset: str
    labels: Mapping[str, str]
    max_players: int
    created: float
    room: Mapping[str, Any]
    players: int = 0
    reserved: int = 0
    seats: set[str] = field(factory=set)


@define
class _Seat:
    token: str
    match_id: MatchId
    expires: float
    ttl: float
    state: str = HELD
    forget: float = 0.0


class MemoryDirectory:
    """``MatchDirectory`` in memory, for the nodes of one process (see the module docstring).

    Args:
        node_ttl: seconds a node stays alive after a heartbeat.
        tombstone_s: seconds a used or lapsed seat token is still recognised.
        token_factory: makes seat tokens (unique, 1-64 URL-safe characters).

    Attributes:
        examined: match records read by listings so far (a metric: with the
            indexes it grows by the matches that fit a query, not by all).
    """

    def __init__(self, *, node_ttl: float = 6.0, tombstone_s: float = 60.0,
                 token_factory: Callable[[], str] = lambda: secrets.token_urlsafe(18)) -> None:
        self.node_ttl = node_ttl
        self.tombstone_s = tombstone_s
        self.token_factory = token_factory
        self.examined = 0
        self._nodes: dict[NodeId, _Node] = {}
        self._matches: dict[MatchId, _Match] = {}
        self._seats: dict[str, _Seat] = {}
        self._index = MatchIndex()
        self._due: list[tuple[float, int, int, str]] = []
        self._seq = 0
        self._lapsed_seats = 0
        self._lapsed_nodes: list[NodeId] = []
        self._lapsed_matches: list[MatchId] = []
        self._mail: dict[NodeId, list[bytes]] = {}
        self._waiting: dict[NodeId, list[asyncio.Future[None]]] = {}

    # -- nodes -----------------------------------------------------------------

    async def heartbeat(self, node_id: NodeId, url: str, load: int, *, now: float, accepting: bool = True) -> bool:
        self._sweep(now)
        node = self._nodes.get(node_id)
        expires = now + self.node_ttl
        if node is None:
            self._nodes[node_id] = _Node(node_id, url, load, accepting, expires)
        else:
            node.url, node.load, node.accepting, node.expires = url, load, accepting, expires
        self._at(expires, _NODE, node_id)
        return node is not None

    async def remove_node(self, node_id: NodeId, *, now: float) -> tuple[MatchId, ...]:
        self._sweep(now)
        node = self._nodes.get(node_id)
        return () if node is None else self._drop_node(node)

    async def nodes(self, *, now: float) -> list[NodeInfo]:
        self._sweep(now)
        return [NodeInfo(n.node_id, n.url, n.load, n.accepting, n.expires) for _, n in sorted(self._nodes.items())]

    # -- matches ---------------------------------------------------------------

    async def add_match(self, match_id: MatchId, node_id: NodeId, ruleset: str, labels: Mapping[str, str],
                        max_players: int, *, now: float, players: int = 0,
                        room: Mapping[str, Any] | None = None) -> MatchInfo:
        self._sweep(now)
        node = self._nodes.get(node_id)
        if node is None:
            raise UnknownNode(node_id)
        if match_id in self._matches:
            raise DuplicateMatch(match_id)
        data = NO_ROOM if not room else MappingProxyType(json.loads(json.dumps(room)))
        match = _Match(match_id, node_id, ruleset, MappingProxyType(dict(labels)), max_players, now, data, players)
        self._matches[match_id] = match
        node.matches.add(match_id)
        self._index.add(match_id, ruleset, match.labels)
        return self._info(match)

    async def node_matches(self, node_id: NodeId, *, now: float) -> list[MatchInfo]:
        self._sweep(now)
        node = self._nodes.get(node_id)
        if node is None:
            return []
        found = sorted((self._matches[m] for m in node.matches), key=lambda m: (m.created, m.match_id))
        return [self._info(m) for m in found]

    async def move_match(self, match_id: MatchId, node_id: NodeId, *, now: float) -> MatchInfo:
        match = self._match(match_id, now)
        node = self._nodes.get(node_id)
        if node is None:
            raise UnknownNode(node_id)
        self._nodes[match.node_id].matches.discard(match_id)
        node.matches.add(match_id)
        match.node_id = node_id
        return self._info(match)

    async def change_players(self, match_id: MatchId, delta: int, *, now: float) -> MatchInfo:
        match = self._match(match_id, now)
        match.players = max(0, match.players + delta)
        return self._info(match)

    async def remove_match(self, match_id: MatchId, *, now: float) -> None:
        self._sweep(now)
        match = self._matches.get(match_id)
        if match is not None:
            self._drop_match(match)

    async def get_match(self, match_id: MatchId, *, now: float) -> MatchInfo | None:
        self._sweep(now)
        match = self._matches.get(match_id)
        return None if match is None else self._info(match)

    async def list_matches(self, *, now: float, ruleset: str | None = None, labels: Mapping[str, str] | None = None,
                           open_only: bool = False, limit: int = 100) -> list[MatchInfo]:
        self._sweep(now)
        ids = self._index.find(ruleset, labels or {})
        found = list(self._matches.values()) if ids is None else [self._matches[m] for m in ids]
        self.examined += len(found)
        if open_only:
            found = [m for m in found if m.players + m.reserved < m.max_players]
        found.sort(key=lambda m: (m.created, m.match_id))
        return [self._info(m) for m in found[:limit]]

    # -- seats -----------------------------------------------------------------

    async def reserve(self, match_id: MatchId, *, ttl: float, now: float) -> Seat:
        if not ttl > 0:
            raise ValueError(f"a seat's ttl must be positive, not {ttl}")
        match = self._match(match_id, now)
        if match.players + match.reserved >= match.max_players:
            raise MatchFull(match_id, match.max_players)
        token = self.token_factory()
        while token in self._seats:
            token = self.token_factory()
        seat = _Seat(token, match_id, now + ttl, ttl)
        self._seats[token] = seat
        match.seats.add(token)
        match.reserved += 1
        self._at(seat.expires, _SEAT, token)
        return Seat(match_id, self._url(match), token, seat.expires)

    async def take(self, token: str, match_id: MatchId, *, now: float) -> MatchInfo:
        self._sweep(now)
        seat = self._seats.get(token)
        if seat is None:
            raise UnknownSeat(match_id)
        if seat.match_id != match_id:
            raise SeatForAnotherMatch(match_id, seat.match_id)
        if seat.state == TAKEN:
            raise SeatTaken(match_id)
        if seat.state == LAPSED:
            raise SeatExpired(match_id, seat.ttl)
        match = self._matches[match_id]  # a match's seats go when it goes
        match.reserved -= 1
        match.players += 1
        self._retire(seat, TAKEN, now)
        return self._info(match)

    async def expire(self, *, now: float) -> Expired:
        self._sweep(now)
        report = Expired(self._lapsed_seats, tuple(self._lapsed_nodes), tuple(self._lapsed_matches))
        self._lapsed_seats = 0
        self._lapsed_nodes.clear()
        self._lapsed_matches.clear()
        return report

    # -- mailboxes -------------------------------------------------------------

    async def post(self, node_id: NodeId, payload: bytes, *, now: float) -> None:
        self._sweep(now)
        if node_id not in self._nodes:
            raise UnknownNode(node_id)
        self._mail.setdefault(node_id, []).append(bytes(payload))
        for waiter in self._waiting.pop(node_id, []):
            if not waiter.done():
                waiter.set_result(None)

    async def receive(self, node_id: NodeId, *, timeout: float) -> list[bytes]:
        messages = self._mail.pop(node_id, [])
        if messages or not timeout > 0:
            return messages
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not messages and loop.time() < deadline:  # another receiver may have taken them first
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiting.setdefault(node_id, []).append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                pass
            finally:
                waiters = self._waiting.get(node_id, [])
                if waiter in waiters:
                    waiters.remove(waiter)
                    if not waiters:
                        del self._waiting[node_id]
            messages = self._mail.pop(node_id, [])
        return messages

    # -- inside ----------------------------------------------------------------

    def _at(self, when: float, kind: int, key: str) -> None:
        self._seq += 1
        heapq.heappush(self._due, (when, self._seq, kind, key))

    def _sweep(self, now: float) -> None:
        """Apply every time-out due at ``now``; entries made stale since (a later heartbeat) are skipped."""
        due = self._due
        while due and due[0][0] <= now:
            _, _, kind, key = heapq.heappop(due)
            if kind == _NODE:
                node = self._nodes.get(NodeId(key))
                if node is not None and node.expires <= now:
                    self._lapsed_nodes.append(node.node_id)
                    self._lapsed_matches += self._drop_node(node)
            elif kind == _SEAT:
                seat = self._seats.get(key)
                if seat is not None and seat.state == HELD:
                    self._matches[seat.match_id].reserved -= 1
                    self._lapsed_seats += 1
                    self._retire(seat, LAPSED, seat.expires)
            else:
                seat = self._seats.get(key)
                if seat is not None and seat.state != HELD and seat.forget <= now:
                    self._forget(seat)

    def _retire(self, seat: _Seat, state: str, since: float) -> None:
        seat.state = state
        seat.forget = since + self.tombstone_s
        self._at(seat.forget, _FORGET, seat.token)

    def _forget(self, seat: _Seat) -> None:
        del self._seats[seat.token]
        match = self._matches.get(seat.match_id)
        if match is not None:
            match.seats.discard(seat.token)

    def _drop_node(self, node: _Node) -> tuple[MatchId, ...]:
        del self._nodes[node.node_id]
        self._mail.pop(node.node_id, None)
        gone = tuple(sorted(node.matches))
        for match_id in gone:
            self._drop_match(self._matches[match_id])
        return gone

    def _drop_match(self, match: _Match) -> None:
        del self._matches[match.match_id]
        self._index.remove(match.match_id, match.ruleset, match.labels)
        node = self._nodes.get(match.node_id)
        if node is not None:
            node.matches.discard(match.match_id)
        for token in match.seats:
            del self._seats[token]

    def _match(self, match_id: MatchId, now: float) -> _Match:
        self._sweep(now)
        match = self._matches.get(match_id)
        if match is None:
            raise UnknownMatch(match_id)
        return match

    def _url(self, match: _Match) -> str:
        return f"{self._nodes[match.node_id].url}/ws/{match.match_id}"

    def _info(self, match: _Match) -> MatchInfo:
        return MatchInfo(match.match_id, match.node_id, self._url(match), match.ruleset, match.labels,
                         match.max_players, match.players, match.reserved, match.created, match.room)

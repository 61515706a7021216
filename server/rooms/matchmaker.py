"""Matchmaking: a request in, a reserved seat out, through the directory.

``Matchmaker.handle(body, now=...)`` is ``POST /api/matchmake``: it parses
and checks the body, then by mode

- ``join``: reserves a seat in ``match_id``, or in the fullest open match of
  the ruleset with the labels asked for;
- ``create``: creates a match (room type + the request's options and
  labels) on the least loaded live node that accepts matches, and reserves
  a seat in it;
- ``join_or_create``: joins if any match has a free seat, else creates.

Seats are reserved atomically by the directory, so however many requests
race for the last seats, a match is never over-filled: a request that
loses a race tries the next match, then creates one. Concurrent creations
for the same ruleset, labels and options are shared: a request waiting for
a seat joins a match being created that still has unclaimed seats instead
of creating its own, so 200 simultaneous requests for a full ruleset make
about 200 / max_players matches, not 200. The seats the waiting requests
claimed are held for them: requests that arrive meanwhile (over HTTP they
keep arriving) do not join a new match on seats its waiting requests
claimed, so a request that waited for a match gets its seat in it. Nor do
requests of this matchmaker race each other for a match's free seats: one
that finds as many others reserving them as there are goes on to the next
match (with a networked directory, hundreds of requests list the same
matches before any reserves).

The shell provides ``create_match(room_type, node) -> match id``: it starts
the match if the node is itself, and returns the id either way; the
matchmaker lists it in the directory under that node with its room type
(``MatchInfo.room``), from which another node starts a match placed on it.

**Placement.** A new match goes to the live node accepting matches with the
least load, as last reported by its heartbeat, plus the seats of the
matches this matchmaker placed on it since that heartbeat (a node's report
is seconds old: without them, every match of a burst would go to the node
that was the least loaded before it). A request may be kept to one node
(``node=``): it joins that node's matches and creates there, or gets 503.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

from attrs import define, field

from server.rooms.catalog import Catalog, Offer
from server.rooms.directory import MatchDirectory, MatchId, MatchInfo, NodeId, NodeInfo, Seat
from server.rooms.errors import DuplicateMatch, MatchFull, MatchmakeError, UnknownMatch, UnknownNode
from server.rooms.requests import CREATE, JOIN, MatchmakeRequest, parse_listing, parse_matchmake
from server.rooms.roomtype import RoomType

#: The shell's match factory: a new match id for this room type on this node (started at once if the node
#: is the shell's own; another node starts it from its listing).
CreateMatch = Callable[[RoomType, NodeInfo], Awaitable[MatchId]]

_Key = tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, int], ...], NodeId | None]


@define(eq=False)
class _Creation:
    """A match being created: how many of its seats waiting requests have not claimed yet, and how many
    requests claimed one and have not reserved it yet (its seats held for them once the match is listed)."""

    unclaimed: int
    waiting: int = 0
    match_id: MatchId | None = None
    task: asyncio.Future[MatchId] = field(init=False)


class Matchmaker:
    """Seats for matchmake requests (see the module docstring).

    Args:
        directory: where matches are found and seats reserved.
        catalog: the room types offered, by ruleset name.
        create_match: the shell's match factory.
        seat_ttl: seconds a seat is held for its player to connect.
        attempts: rounds of join-then-create before answering 503.
        candidates: open matches tried per round.
    """

    def __init__(self, directory: MatchDirectory, catalog: Catalog, create_match: CreateMatch, *,
                 seat_ttl: float = 15.0, attempts: int = 8, candidates: int = 16) -> None:
        if not seat_ttl > 0:
            raise ValueError(f"seat_ttl must be positive, not {seat_ttl}")
        self.directory = directory
        self.catalog = catalog
        self.create_match = create_match
        self.seat_ttl = seat_ttl
        self.attempts = attempts
        self.candidates = candidates
        self._creating: dict[_Key, list[_Creation]] = {}
        #: New matches with seats held for the requests that waited for them, by match id.
        self._held: dict[MatchId, _Creation] = {}
        #: Reservations under way per match (a networked directory answers later: others listed it meanwhile).
        self._trying: Counter[MatchId] = Counter()
        #: Seats of the matches placed on each node since its last heartbeat: (its ``expires`` then, seats).
        self._placed: dict[NodeId, tuple[float, int]] = {}

    def parse(self, body: bytes) -> MatchmakeRequest:
        """The request in ``body``, checked against the catalog; MatchmakeError 400 naming the field at fault."""
        request = parse_matchmake(body)
        self.catalog.offer(request.ruleset).check_options(request.options)
        return request

    async def handle(self, body: bytes, *, now: float) -> Seat:
        """``POST /api/matchmake``: parse, check and matchmake. MatchmakeError for the answer otherwise."""
        return await self.matchmake(self.parse(body), now=now)

    async def listing(self, query: str, *, now: float) -> list[MatchInfo]:
        """``GET /api/matches?<query>``: MatchmakeError 400 for a bad query."""
        q = parse_listing(query)
        return await self.directory.list_matches(now=now, ruleset=q.ruleset, labels=q.labels,
                                                 open_only=q.open_only, limit=q.limit)

    async def matchmake(self, request: MatchmakeRequest, *, now: float, node: NodeId | None = None) -> Seat:
        """A seat for ``request`` (already parsed). MatchmakeError 404/409/503 when there is none.

        ``node``: only in a match of that node (joined, or created there: 503 if it takes no new match).
        """
        offer = self.catalog.offer(request.ruleset)
        if request.mode == JOIN:
            if request.match_id is not None:
                return await self._join_match(MatchId(request.match_id), request, now)
            seat = await self._join_any(request, now, node)
            if seat is None:
                raise MatchmakeError(404, f"no open match of ruleset {request.ruleset!r}{_with(request.labels)}")
            return seat
        for _ in range(self.attempts):
            seat = None if request.mode == CREATE else await self._join_any(request, now, node)
            if seat is None:
                seat = await self._create_and_reserve(offer, request, now, node)
            if seat is not None:
                return seat
        raise MatchmakeError(503, "matches fill faster than they are made: try again")

    # -- joining -------------------------------------------------------------------

    async def _join_match(self, match_id: MatchId, request: MatchmakeRequest, now: float) -> Seat:
        match = await self.directory.get_match(match_id, now=now)
        if match is None:
            raise MatchmakeError(404, f"no match {match_id!r}", "match_id")
        if match.ruleset != request.ruleset:
            raise MatchmakeError(409, f"match {match_id!r} plays ruleset {match.ruleset!r}", "ruleset")
        missing = {k: v for k, v in request.labels.items() if match.labels.get(k) != v}
        if missing:
            raise MatchmakeError(409, f"match {match_id!r} does not have the labels {missing}", "labels")
        try:
            return await self.directory.reserve(match_id, ttl=self.seat_ttl, now=now)
        except MatchFull as exc:
            raise MatchmakeError(409, str(exc), "match_id") from None
        except UnknownMatch:
            raise MatchmakeError(404, f"no match {match_id!r}", "match_id") from None

    async def _join_any(self, request: MatchmakeRequest, now: float, node: NodeId | None = None) -> Seat | None:
        """A seat in the fullest open match that fits (fill matches before spreading players), of ``node`` if
        given; None if none."""
        if node is None:
            found = await self.directory.list_matches(now=now, ruleset=request.ruleset, labels=request.labels,
                                                      open_only=True, limit=self.candidates)
        else:
            found = [m for m in await self.directory.node_matches(node, now=now)
                     if m.ruleset == request.ruleset and m.free > 0
                     and all(m.labels.get(k) == v for k, v in request.labels.items())]
        found.sort(key=lambda m: (m.free, m.created, m.match_id))
        trying = self._trying
        for match in found:
            mid = match.match_id
            held = self._held.get(mid)
            if held is not None and match.free <= held.waiting:
                continue  # its free seats are the ones requests waiting for it claimed
            if trying[mid] >= match.free:
                continue  # as many of our requests are reserving its free seats already: do not race them
            trying[mid] += 1
            try:
                return await self.directory.reserve(mid, ttl=self.seat_ttl, now=now)
            except (MatchFull, UnknownMatch):
                continue  # lost a race for its last seats, or it ended: try the next
            finally:
                trying[mid] -= 1
                if not trying[mid]:
                    del trying[mid]
        return None

    # -- creating ------------------------------------------------------------------

    async def _create_and_reserve(self, offer: Offer, request: MatchmakeRequest, now: float,
                                  node: NodeId | None = None) -> Seat | None:
        """A seat in a new match (on ``node`` if given), shared with concurrent requests alike; None if others
        filled it first."""
        room = offer.room_type.customized(request.options, request.labels)
        key: _Key = (offer.spec.name, tuple(room.labels.items()), tuple(room.options.items()), node)
        pending = self._creating.setdefault(key, [])
        # Not one whose match is made already: its free seats are for anyone now (``_join_any``), and a
        # claim on it could come after others took them.
        creation = next((c for c in pending if c.unclaimed > 0 and not c.task.done()), None)
        if creation is None:
            creation = _Creation(room.max_players)
            creation.task = asyncio.ensure_future(self._create(offer, room, now, creation, node))
            pending.append(creation)
            made = creation
            creation.task.add_done_callback(lambda _: self._created(key, made))
        creation.unclaimed -= 1
        creation.waiting += 1
        try:
            # Shielded: a request given up (its client left) does not cancel a creation others wait for.
            match_id = await asyncio.shield(creation.task)
            try:
                return await self.directory.reserve(match_id, ttl=self.seat_ttl, now=now)
            except (MatchFull, UnknownMatch):
                return None
        finally:
            creation.waiting -= 1
            if not creation.waiting and creation.match_id is not None and self._held.get(creation.match_id) is creation:
                del self._held[creation.match_id]

    def _created(self, key: _Key, creation: _Creation) -> None:
        pending = self._creating.get(key, [])
        if creation in pending:
            pending.remove(creation)
        if not pending:
            self._creating.pop(key, None)

    async def _create(self, offer: Offer, room: RoomType, now: float, creation: _Creation,
                      only: NodeId | None = None) -> MatchId:
        """Start a match of ``room`` on the least loaded node accepting matches (``only`` that one), and list
        it with its room type (its claimed seats held)."""
        nodes = [n for n in await self.directory.nodes(now=now) if n.accepting and only in (None, n.node_id)]
        if not nodes:
            raise MatchmakeError(503, "no live node accepts new matches" if only is None
                                 else f"node {only!r} accepts no new match")
        if only is None:
            live = {n.node_id for n in nodes}
            self._placed = {k: v for k, v in self._placed.items() if k in live}
        node = min(nodes, key=lambda n: (self.load(n), n.node_id))
        match_id = await self.create_match(room, node)
        self._place(node, room.max_players)
        creation.match_id = match_id
        if creation.waiting:
            self._held[match_id] = creation  # before it is listed: nobody else sees its seats free
        try:
            await self.directory.add_match(match_id, node.node_id, offer.spec.name, room.labels, room.max_players,
                                           now=now, room=room.to_json())
        except UnknownNode:
            raise MatchmakeError(503, f"node {node.node_id!r} went away while creating a match") from None
        except DuplicateMatch:
            pass  # its node listed it first (it re-registered meanwhile): the listing is the same
        return match_id

    def load(self, node: NodeInfo) -> int:
        """``node``'s load for placement: as it last reported, plus the seats placed on it since."""
        placed = self._placed.get(node.node_id)
        return node.load + (placed[1] if placed is not None and placed[0] == node.expires else 0)

    def _place(self, node: NodeInfo, seats: int) -> None:
        placed = self._placed.get(node.node_id)
        since = placed[1] if placed is not None and placed[0] == node.expires else 0
        self._placed[node.node_id] = (node.expires, since + seats)


def _with(labels: Mapping[str, str]) -> str:
    return f" with labels {dict(labels)}" if labels else ""

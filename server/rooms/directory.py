"""The match directory: which nodes are alive, which matches they host, and who holds a seat.

``MatchDirectory`` is the interface; ``MemoryDirectory`` (one process, the
embedded default) and ``RedisDirectory`` (several processes and machines)
implement it. Every method is ``async`` so the two are interchangeable;
every method but ``receive`` takes ``now``, the caller's clock in seconds
(the same clock on every call; across machines, wall-clock time), so the
directory reads no clock and tests drive it with a fake one.

The rules every implementation keeps:

- **Nodes** register and stay alive by heartbeat (``heartbeat``); a node
  whose last heartbeat is older than the directory's node TTL is gone, and
  every match it hosted is gone with it (its seats and its mailbox too).
  ``nodes`` lists the live ones by id.
- **Matches** are listed under the live node hosting them (``add_match``),
  with the room type they were made from as plain JSON-able data
  (``MatchInfo.room``), so another node can start one placed on it;
  ``node_matches`` reads a node's matches through a per-node index;
  ``move_match`` re-homes a match to another live node (its URL follows, its
  players and seats stay).
- **Seats**: ``reserve`` holds a seat in a match for ``ttl`` seconds and
  returns its token; it is atomic and never over-fills: connected players
  plus live reservations stay ``<= max_players``, however many nodes
  reserve at once. ``take`` turns a live reservation into a connected
  player, once; an untaken one expires and frees its place. ``take`` tells
  an unknown token, an expired one, one already taken and one for another
  match apart (``SeatError``, each with its close code); a lapsed or taken
  token is told apart for the directory's tombstone time, then unknown.
- **Listing** is by ruleset and labels through indexes, never a scan of
  every match; oldest first (by ``created``, then id), at most ``limit``.
- **Mailboxes**: each live node has one, for messages between nodes (a
  match's state on handover): ``post`` appends bytes (up to tens of MB) to
  a live node's mailbox, ``receive`` waits for them and returns them oldest
  first. A node's mailbox goes when the node goes.
- **Failure**: a directory whose backend cannot be reached (Redis down, a
  time-out) raises ``DirectoryUnavailable`` from any method, within its
  time-out, never a backend library's own exception; it holds no state of
  its own to lose, so the nodes re-register (``heartbeat`` answers False)
  when the backend returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NewType, Protocol

from attrs import field, frozen

MatchId = NewType("MatchId", str)
NodeId = NewType("NodeId", str)

#: No room data (``MatchInfo.room`` of a match added without it).
NO_ROOM: Mapping[str, Any] = MappingProxyType({})


@frozen
class NodeInfo:
    """A live node, as last reported.

    Attributes:
        node_id: unique per running server process.
        url: its public WebSocket base, ``ws://host:port`` or ``wss://host``
            (no path): players reach its matches at ``<url>/ws/<match id>``.
        load: what the node reports (the shell's choice: players, or CPU
            per mille); new matches go to the least loaded node.
        accepting: False while draining: it hosts no new match.
        expires: when it is gone without another heartbeat (directory clock).
    """

    node_id: NodeId
    url: str
    load: int
    accepting: bool
    expires: float


@frozen
class MatchInfo:
    """A match as the directory lists it.

    Attributes:
        match_id, node_id: the match and the node hosting it.
        url: where players connect: ``<node url>/ws/<match id>``.
        ruleset: the ruleset's ``spec.name``.
        labels: its labels (``mode``, ``region``...).
        max_players: seats in all.
        players: players connected (or seated and connecting).
        reserved: live reservations not yet taken.
        created: when it was added (directory clock).
        room: the room type it was made from, as plain JSON-able data (the
            host's choice of keys: ruleset reference, options, tick rate,
            max players, labels, seed), so any node can start it; empty if
            the host gave none.
    """

    match_id: MatchId
    node_id: NodeId
    url: str
    ruleset: str
    labels: Mapping[str, str] = field(hash=False)
    max_players: int
    players: int
    reserved: int
    created: float
    room: Mapping[str, Any] = field(default=NO_ROOM, hash=False)

    @property
    def free(self) -> int:
        return self.max_players - self.players - self.reserved

    def to_json(self) -> dict[str, Any]:
        """An entry of ``GET /api/matches``."""
        return {"match": self.match_id, "url": self.url, "ruleset": self.ruleset, "labels": dict(self.labels),
                "players": self.players, "reserved": self.reserved, "max_players": self.max_players}


@frozen
class Seat:
    """A reserved seat: what ``POST /api/matchmake`` answers.

    Attributes:
        match_id: the match the seat is in.
        url: the WebSocket URL to connect to (possibly another node's).
        token: the seat token to present in ``hello``.
        expires: when the reservation lapses if not taken (directory clock).
    """

    match_id: MatchId
    url: str
    token: str
    expires: float

    def to_json(self, now: float) -> dict[str, Any]:
        """The response body; the expiry is relative (``expires_in`` seconds), as clocks differ."""
        return {"match": self.match_id, "url": self.url, "seat": self.token,
                "expires_in": round(max(0.0, self.expires - now), 3)}


@frozen
class Expired:
    """What lapsed since the last ``expire`` call.

    Attributes:
        seats: reservations given up untaken.
        nodes: nodes that missed their heartbeat, in expiry order.
        matches: matches that went with those nodes.
    """

    seats: int = 0
    nodes: tuple[NodeId, ...] = ()
    matches: tuple[MatchId, ...] = ()


class MatchDirectory(Protocol):
    """Nodes, matches and seats, shared by every node of a deployment (see the module docstring)."""

    async def heartbeat(self, node_id: NodeId, url: str, load: int, *, now: float, accepting: bool = True) -> bool:
        """Register ``node_id`` or keep it alive, with its current URL, load and whether it takes new matches.

        Returns:
            True if the node was registered and alive already; False if it is
            new to the directory (first start, or it expired: then its
            matches are gone and the shell adds its live ones again).
        """
        ...

    async def remove_node(self, node_id: NodeId, *, now: float) -> tuple[MatchId, ...]:
        """Remove a node at once (clean shutdown) and its matches; returns the matches removed."""
        ...

    async def nodes(self, *, now: float) -> list[NodeInfo]:
        """The live nodes, by id."""
        ...

    async def add_match(self, match_id: MatchId, node_id: NodeId, ruleset: str, labels: Mapping[str, str],
                        max_players: int, *, now: float, players: int = 0,
                        room: Mapping[str, Any] | None = None) -> MatchInfo:
        """List a match hosted by live node ``node_id`` (``room``: its ``MatchInfo.room``, JSON-able).

        Raises:
            UnknownNode: ``node_id`` is not alive.
            DuplicateMatch: ``match_id`` is listed already.
        """
        ...

    async def node_matches(self, node_id: NodeId, *, now: float) -> list[MatchInfo]:
        """The matches listed under ``node_id``, oldest first, through the node's index ([] for no live node)."""
        ...

    async def move_match(self, match_id: MatchId, node_id: NodeId, *, now: float) -> MatchInfo:
        """Re-home a listed match to live node ``node_id``: its URL becomes that node's; its players and seats stay.

        Raises:
            UnknownMatch.
            UnknownNode: ``node_id`` is not alive.
        """
        ...

    async def change_players(self, match_id: MatchId, delta: int, *, now: float) -> MatchInfo:
        """Count ``delta`` players joining (> 0) or leaving (< 0) other than by ``take`` (never below 0).

        Raises:
            UnknownMatch.
        """
        ...

    async def remove_match(self, match_id: MatchId, *, now: float) -> None:
        """Unlist a match (disposed); its reservations go with it. Unknown ids are ignored."""
        ...

    async def get_match(self, match_id: MatchId, *, now: float) -> MatchInfo | None:
        """The match, or None."""
        ...

    async def list_matches(self, *, now: float, ruleset: str | None = None, labels: Mapping[str, str] | None = None,
                           open_only: bool = False, limit: int = 100) -> list[MatchInfo]:
        """Matches of ``ruleset`` having every label in ``labels`` (with a free seat if ``open_only``),
        oldest first, at most ``limit``; through the indexes, never a scan of every match."""
        ...

    async def reserve(self, match_id: MatchId, *, ttl: float, now: float) -> Seat:
        """Hold a seat in the match for ``ttl`` seconds, atomically.

        Raises:
            UnknownMatch.
            MatchFull: players + live reservations are at ``max_players``.
        """
        ...

    async def take(self, token: str, match_id: MatchId, *, now: float) -> MatchInfo:
        """Turn the live reservation ``token`` into a player of ``match_id`` (players + 1).

        Raises:
            UnknownSeat, SeatExpired, SeatTaken, SeatForAnotherMatch (``SeatError``:
            close the connection with its ``code``).
        """
        ...

    async def expire(self, *, now: float) -> Expired:
        """Give up the reservations and nodes whose time is up; report them (and whatever lapsed since the last call)."""
        ...

    async def post(self, node_id: NodeId, payload: bytes, *, now: float) -> None:
        """Append ``payload`` (up to tens of MB) to live node ``node_id``'s mailbox.

        Raises:
            UnknownNode: ``node_id`` is not alive.
        """
        ...

    async def receive(self, node_id: NodeId, *, timeout: float) -> list[bytes]:
        """Wait up to ``timeout`` seconds for a message in ``node_id``'s mailbox; take and return every one
        waiting, oldest first ([] if none came in time)."""
        ...

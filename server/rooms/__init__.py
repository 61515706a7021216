"""Rooms: matches made on demand from room types, found and joined through matchmaking.

Sans I/O but for one shell: nothing here opens a socket or reads a clock;
time comes in as ``now`` (seconds) and the shell wires the parts to HTTP,
WebSockets and its matches. The exception is ``redis_directory``, a shell
that talks to Redis, imported on its own (``from
server.rooms.redis_directory import RedisDirectory``) so that a node
without ``--redis`` never loads the Redis client.

Modules: ``roomtype`` (what a match is made from), ``catalog`` (the room
types offered, by ruleset name), ``directory`` (the ``MatchDirectory``
interface and its records), ``memory`` (``MemoryDirectory``, the one-process
implementation), ``redis_directory`` (``RedisDirectory``, shared by the
nodes of a cluster), ``index`` (listing by ruleset and label without a
scan), ``requests`` (parsing ``POST /api/matchmake`` and ``GET /api/matches``),
``matchmaker`` (requests to seats), ``lifecycle`` (disposing of empty
matches), ``errors``.

Glossary:

- **room type**: a ruleset reference plus options, tick rate, maximum
  players, seed and labels; matches are made from it.
- **match**: one running world, hosted by one node, listed in the directory.
- **node**: one server process, with a public URL, kept alive by heartbeats.
- **labels**: ``key: value`` strings on a match (``mode: duel``,
  ``region: eu``) that listings and matchmaking filter by.
- **seat**: a place in a match held for ``ttl`` seconds by a **seat token**
  (``POST /api/matchmake`` hands it out, ``hello`` presents it); a token
  seats one connection, once. Not the *reconnect token* of ``welcome``,
  which resumes a player who was seated already.
- **players**: connected (or seated and connecting) players of a match;
  **reserved**: its live seats not yet taken. ``players + reserved <=
  max_players`` always.
"""

from server.rooms.catalog import Catalog, Offer
from server.rooms.directory import NO_ROOM, Expired, MatchDirectory, MatchId, MatchInfo, NodeId, NodeInfo, Seat
from server.rooms.errors import (
    DirectoryError,
    DirectoryUnavailable,
    DuplicateMatch,
    InvalidRoomType,
    MatchFull,
    MatchmakeError,
    RoomError,
    SeatError,
    SeatExpired,
    SeatForAnotherMatch,
    SeatTaken,
    UnknownMatch,
    UnknownNode,
    UnknownSeat,
)
from server.rooms.lifecycle import Lifecycle
from server.rooms.matchmaker import CreateMatch, Matchmaker
from server.rooms.memory import MemoryDirectory
from server.rooms.requests import ListQuery, MatchmakeRequest, parse_listing, parse_matchmake
from server.rooms.roomtype import RoomType

__all__ = [
    "NO_ROOM", "Catalog", "CreateMatch", "DirectoryError", "DirectoryUnavailable", "DuplicateMatch", "Expired",
    "InvalidRoomType", "Lifecycle", "ListQuery", "MatchDirectory", "MatchFull", "MatchId", "MatchInfo",
    "MatchmakeError", "MatchmakeRequest", "Matchmaker", "MemoryDirectory", "NodeId", "NodeInfo", "Offer",
    "RoomError", "RoomType", "Seat", "SeatError", "SeatExpired", "SeatForAnotherMatch", "SeatTaken", "UnknownMatch",
    "UnknownNode", "UnknownSeat", "parse_listing", "parse_matchmake",
]

"""The errors of rooms and matchmaking, in one tree under ``RoomError``.

Split the h11 way: ``InvalidRoomType`` and ``DirectoryError`` are *our*
misuse or the directory's answer to the shell (a bad configuration, a
match that is full or gone, a directory that cannot be reached); ``MatchmakeError`` is a client's bad HTTP
request (with the status to answer), ``SeatError`` a client's bad seat
token on the WebSocket (with the close code to close with). Each carries
its fields and formats them in ``__str__``.
"""

from __future__ import annotations

from typing import Any

#: Close codes for a bad seat token in ``hello`` (the application range
#: 4000-4999, RFC 6455 7.4.2), numbered after the HTTP status they resemble.
#: All four mean "matchmake again"; none is worth retrying with the same
#: token. Kept apart from 1008 so a client tells "get a new seat" from "you
#: broke a rule" without parsing the reason.
CLOSE_SEAT_UNKNOWN = 4401
CLOSE_SEAT_OTHER_MATCH = 4403
CLOSE_SEAT_TAKEN = 4409
CLOSE_SEAT_EXPIRED = 4410


class RoomError(Exception):
    """The root of the rooms errors."""


class InvalidRoomType(RoomError, ValueError):
    """A room type built with a bad field (our configuration, not a client's request)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"room type: {field}: {reason}")
        self.field = field
        self.reason = reason


class MatchmakeError(RoomError):
    """A matchmake or listing request the server refuses.

    Attributes:
        status: the HTTP status to answer with (400 malformed or unknown,
            404 no such match, 409 full, 503 nowhere to host a match).
        field: the request field at fault (``labels.region``), or None.
        reason: one line saying what is wrong.
    """

    def __init__(self, status: int, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{where}{self.reason} (HTTP {self.status})"

    def to_json(self) -> dict[str, Any]:
        """The response body: ``{"error": reason, "field": field or null}``."""
        return {"error": self.reason, "field": self.field}


class SeatError(RoomError):
    """A seat token presented in ``hello`` that does not seat the player.

    Attributes:
        code: the WebSocket close code to close with (``CLOSE_SEAT_*``).
        match_id: the match the connection asked for.
        reason: one line, sent to the client in ``error`` and the close frame.
    """

    code = CLOSE_SEAT_UNKNOWN

    def __init__(self, match_id: str, reason: str) -> None:
        super().__init__(reason)
        self.match_id = match_id
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason} (close code {self.code})"


class UnknownSeat(SeatError):
    """No seat was ever reserved with this token (or its match has ended)."""

    code = CLOSE_SEAT_UNKNOWN

    def __init__(self, match_id: str) -> None:
        super().__init__(match_id, "unknown seat token: get a seat from POST /api/matchmake")


class SeatForAnotherMatch(SeatError):
    """The token reserves a seat in another match than the one connected to."""

    code = CLOSE_SEAT_OTHER_MATCH

    def __init__(self, match_id: str, seat_match: str) -> None:
        super().__init__(match_id, f"this seat is in match {seat_match!r}, not {match_id!r}: connect to its URL")
        self.seat_match = seat_match


class SeatTaken(SeatError):
    """The seat was taken already (a token seats one connection, once; reconnect with the welcome's token)."""

    code = CLOSE_SEAT_TAKEN

    def __init__(self, match_id: str) -> None:
        super().__init__(match_id, "this seat was taken already: resume with the token from welcome, or matchmake again")


class SeatExpired(SeatError):
    """The seat was not taken in time and has been given up."""

    code = CLOSE_SEAT_EXPIRED

    def __init__(self, match_id: str, ttl: float) -> None:
        super().__init__(match_id, f"seat expired (seats are held {ttl:g} s): matchmake again")
        self.ttl = ttl


class DirectoryError(RoomError):
    """The directory refuses an operation the shell asked for."""


class MatchFull(DirectoryError):
    """No free seat: connected players plus live reservations reach the match's maximum."""

    def __init__(self, match_id: str, max_players: int) -> None:
        super().__init__(f"match {match_id!r} is full ({max_players} players)")
        self.match_id = match_id
        self.max_players = max_players


class UnknownMatch(DirectoryError):
    """No such match in the directory (never added, removed, or its node died)."""

    def __init__(self, match_id: str) -> None:
        super().__init__(f"no match {match_id!r}")
        self.match_id = match_id


class DuplicateMatch(DirectoryError):
    """A match id added twice."""

    def __init__(self, match_id: str) -> None:
        super().__init__(f"match {match_id!r} is in the directory already")
        self.match_id = match_id


class UnknownNode(DirectoryError):
    """No live node with this id (never registered, or it missed its heartbeat)."""

    def __init__(self, node_id: str) -> None:
        super().__init__(f"no live node {node_id!r}")
        self.node_id = node_id


class DirectoryUnavailable(DirectoryError):
    """The directory's backend cannot be reached (Redis down, a time-out); whether the call took effect is unknown.

    Attributes:
        backend: where the directory lives (a Redis URL without its password).
        cause: one line saying what failed.
    """

    def __init__(self, backend: str, cause: str) -> None:
        super().__init__(f"match directory {backend} unavailable: {cause}")
        self.backend = backend
        self.cause = cause

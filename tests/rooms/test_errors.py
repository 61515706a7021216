"""The rooms errors: one close code per bad seat, in the application range; JSON-able matchmake answers."""

from __future__ import annotations

import json

from server.rooms import (
    DirectoryError,
    DirectoryUnavailable,
    MatchmakeError,
    RoomError,
    SeatError,
    SeatExpired,
    SeatForAnotherMatch,
    SeatTaken,
    UnknownSeat,
)


def test_each_bad_seat_closes_with_its_own_application_close_code() -> None:
    errors = [UnknownSeat("m"), SeatForAnotherMatch("m", "n"), SeatTaken("m"), SeatExpired("m", 15.0)]
    codes = [e.code for e in errors]
    assert codes == [4401, 4403, 4409, 4410]
    assert all(isinstance(e, SeatError) and isinstance(e, RoomError) for e in errors)
    assert all(len(e.reason.encode()) <= 123 for e in errors)  # fits a close frame's reason


def test_a_matchmake_error_formats_its_fields_and_answers_in_json() -> None:
    e = MatchmakeError(400, "unknown option 'x'", "options.x")
    assert str(e) == "options.x: unknown option 'x' (HTTP 400)"
    assert json.loads(json.dumps(e.to_json())) == {"error": "unknown option 'x'", "field": "options.x"}
    assert str(MatchmakeError(503, "busy")) == "busy (HTTP 503)"


def test_an_unavailable_directory_names_its_backend_and_cause_in_one_line() -> None:
    e = DirectoryUnavailable("redis://127.0.0.1:6379/0", "connection refused")
    assert str(e) == "match directory redis://127.0.0.1:6379/0 unavailable: connection refused"
    assert isinstance(e, DirectoryError) and (e.backend, e.cause) == ("redis://127.0.0.1:6379/0", "connection refused")

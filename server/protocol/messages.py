"""Protocol messages as frozen values that validate on construction.

An invalid message cannot exist: the constructors raise ``InvalidField``
(close code 1007). The wire format lives in ``codec.py``, not here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from attrs import field, frozen

from server.protocol.errors import InvalidField

MAX_NAME = 24
MAX_TOKEN = 64
U32 = 0xFFFFFFFF


def _int(lo: int, hi: int) -> Any:
    def check(_: object, attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidField(f"{attribute.name}: expected an integer, got {type(value).__name__}")
        if not lo <= value <= hi:
            raise InvalidField(f"{attribute.name}: {value} is outside [{lo}, {hi}]")

    return check


def _name(_: object, attribute: Any, value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidField(f"{attribute.name}: expected a string")
    if not 1 <= len(value) <= MAX_NAME or not value.isprintable() or value != value.strip():
        raise InvalidField(f"{attribute.name}: 1 to {MAX_NAME} printable characters without leading or trailing spaces")


def _token(_: object, attribute: Any, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= MAX_TOKEN):
        raise InvalidField(f"{attribute.name}: expected a string of 1 to {MAX_TOKEN} characters")


def _bool(_: object, attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidField(f"{attribute.name}: expected true or false")


def _number(_: object, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidField(f"{attribute.name}: expected a number")


def _int_tuple(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(values)


# -- client to server ------------------------------------------------------


@frozen
class Hello:
    """First message of a connection: who is joining, and how."""

    version: int = field(validator=_int(0, U32))
    name: str = field(validator=_name)
    spectate: bool = field(default=False, validator=_bool)
    token: str | None = field(default=None, validator=_token)


@frozen
class Input:
    """A player's input: sequence number, the last update tick held, field values."""

    seq: int
    values: tuple[int, ...] = field(converter=_int_tuple)
    ack: int | None = None

    def __attrs_post_init__(self) -> None:
        # One inline check instead of three validators: this runs 30 times a
        # second per player, so it is on the hot path.
        seq, ack = self.seq, self.ack
        if type(seq) is not int or not 0 <= seq <= U32:
            raise InvalidField(f"seq: expected an integer in [0, {U32}], got {seq!r}")
        if ack is not None and (type(ack) is not int or not 0 <= ack <= U32):
            raise InvalidField(f"ack: expected an integer in [0, {U32}], got {ack!r}")
        values = self.values
        if len(values) > 16:
            raise InvalidField("values: expected an array of at most 16 integers")
        for v in values:
            if type(v) is not int or not -32768 <= v <= 32767:
                raise InvalidField("values: every value must be an integer in [-32768, 32767]")


@frozen
class Ack:
    """The last update tick the client holds (for clients that send no input)."""

    tick: int = field(validator=_int(0, U32))


@frozen
class Ping:
    """Round-trip probe; the server echoes ``id`` and ``time`` in a ``Pong``."""

    id: int = field(validator=_int(0, U32))
    time: float = field(default=0, validator=_number)


@frozen
class Resync:
    """The client lost its state (a checksum mismatch): send a keyframe."""


ClientMessage = Hello | Input | Ack | Ping | Resync


# -- server to client ------------------------------------------------------


@frozen
class Welcome:
    version: int
    match: str
    player: int
    entity: int | None
    tick_rate: int
    tick: int
    token: str
    ruleset: dict[str, Any]
    resumed: bool = False
    hold_s: float = 0.0


@frozen
class RosterEntry:
    player: int
    entity: int | None
    name: str
    online: bool


@frozen
class Roster:
    players: tuple[RosterEntry, ...]


@frozen
class Pong:
    id: int
    time: float
    tick: int


@frozen
class Error:
    code: int
    reason: str


@frozen
class Update:
    """A decoded state update (the client side; the server writes it pre-encoded)."""

    tick: int
    base: int | None
    body: dict[str, Any]
    checksum: int
    ack: int
    events: tuple[Any, ...] = ()


ServerMessage = Welcome | Roster | Pong | Error | Update

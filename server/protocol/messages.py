"""Protocol messages as frozen values that validate on construction.

An invalid message cannot exist, in either direction: the constructors raise
``InvalidField`` (close code 1007), so a server bug cannot put a bad value on
the wire and ``decode_server`` turns a bad server frame into ``InvalidField``.
The wire format (tags, keys, their order, omitted defaults) lives in
``codec.py``'s table, not here.

Messages built per tick or per input (``Input``, ``Update``) check their
fields in one ``__attrs_post_init__`` rather than one validator each: that
is their hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import field, frozen

from server.protocol.errors import InvalidField

MAX_NAME = 24
MAX_TOKEN = 64
U32 = 0xFFFFFFFF
#: msgpack's integers: int64 and uint64.
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
#: Playback speeds a viewer may ask for (replay ticks per real tick).
MIN_SPEED, MAX_SPEED = 0.25, 8.0
#: WebSocket close codes an ``error`` may carry (RFC 6455 7.4).
MIN_CLOSE_CODE, MAX_CLOSE_CODE = 1000, 4999

Validator = Callable[[Any, Any, Any], None]


def _int(lo: int, hi: int) -> Validator:
    def check(_: object, attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidField(f"{attribute.name}: expected an integer, got {type(value).__name__}")
        if not lo <= value <= hi:
            raise InvalidField(f"{attribute.name}: {value} is outside [{lo}, {hi}]")

    return check


def _optional(check: Validator) -> Validator:
    def optional(instance: object, attribute: Any, value: Any) -> None:
        if value is not None:
            check(instance, attribute, value)

    return optional


_u32 = _int(0, U32)
_opt_u32 = _optional(_u32)


def _name(_: object, attribute: Any, value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidField(f"{attribute.name}: expected a string")
    if not 1 <= len(value) <= MAX_NAME or not value.isprintable() or value != value.strip():
        raise InvalidField(f"{attribute.name}: 1 to {MAX_NAME} printable characters without leading or trailing spaces")


def _token(_: object, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TOKEN:
        raise InvalidField(f"{attribute.name}: expected a string of 1 to {MAX_TOKEN} characters")


def _str(_: object, attribute: Any, value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidField(f"{attribute.name}: expected a string, got {type(value).__name__}")


def _bool(_: object, attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidField(f"{attribute.name}: expected true or false")


def _number(_: object, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidField(f"{attribute.name}: expected a number")


def _dict(_: object, attribute: Any, value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidField(f"{attribute.name}: expected a map, got {type(value).__name__}")


def _speed(value: Any) -> float:
    """A playback speed, always a float on the wire (``2`` and ``2.0`` are one speed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not MIN_SPEED <= value <= MAX_SPEED:
        raise InvalidField(f"speed: expected a number in [{MIN_SPEED:g}, {MAX_SPEED:g}], got {value!r}")
    return float(value)


def _opt_speed(value: Any) -> float | None:
    return None if value is None else _speed(value)


def _to_tuple(value: Any) -> Any:
    """Converter: an array from the wire (a list) or from code (a tuple) as a tuple; anything
    else as is, for the validator to name."""
    return tuple(value) if type(value) is list else value


def _to_pairs(value: Any) -> Any:
    """Converter: an array of 2-element arrays (``[[tick, checksum], ...]``) as a tuple of tuples."""
    if isinstance(value, (list, tuple)) and all(isinstance(p, (list, tuple)) for p in value):
        return tuple(tuple(p) for p in value)
    return value


def _tuple_of(check: Callable[[Any], bool], what: str) -> Validator:
    def tuple_of(_: object, attribute: Any, value: Any) -> None:
        if not isinstance(value, tuple) or not all(check(v) for v in value):
            raise InvalidField(f"{attribute.name}: expected an array, each element {what}")

    return tuple_of


def _is_int(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: type(v) is int and lo <= v <= hi


def _is_pair(first: Callable[[Any], bool], second: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda p: type(p) is tuple and len(p) == 2 and first(p[0]) and second(p[1])


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


_is_tick = _is_int(0, U32)
_is_any_int = _is_int(INT_MIN, INT_MAX)


def _options(_: object, attribute: Any, value: Any) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and _is_any_int(v) for k, v in value.items()):
        raise InvalidField(f"{attribute.name}: expected a map of names to integers")


# -- client to server ------------------------------------------------------


@frozen
class Hello:
    """First message of a connection: who is joining, and how."""

    version: int = field(validator=_u32)
    name: str = field(validator=_name)
    spectate: bool = field(default=False, validator=_bool)
    token: str | None = field(default=None, validator=_optional(_token))
    #: A seat token from ``POST /api/matchmake`` (never with ``token``: a resume needs no seat).
    seat: str | None = field(default=None, validator=_optional(_token))
    #: The client applies filtered views (PROTOCOL.md, *Filtered views*); without it, the whole world.
    interest: bool = field(default=False, validator=_bool)
    #: The client applies ``roster_delta`` messages (PROTOCOL.md, *roster_delta*); without it, whole rosters.
    roster_deltas: bool = field(default=False, validator=_bool)

    def __attrs_post_init__(self) -> None:
        if self.seat is not None and self.token is not None:
            raise InvalidField("hello: send a seat (a new player) or a token (a resume), not both")


def _values(values: Any) -> tuple[int, ...]:
    if type(values) is list:
        return tuple(values)
    if type(values) is tuple:
        return values
    raise InvalidField(f"in: expected an array of integers, got {type(values).__name__}")


#: Input values an ``input`` may carry at most (a ruleset declares at most this many fields).
MAX_INPUT_VALUES = 16


@frozen
class Input:
    """A player's input: its sequence number, field values, the last update tick held and the tick viewed.

    Attributes:
        seq: 1 to 2**32-1, one more than the previous input's (PROTOCOL.md, *The input queue*).
        values: the ruleset's input fields, in order: integers (the session checks each field's range).
        ack: the newest update tick the client holds, or None.
        view: the tick the client was displaying other entities at when it sampled the input
            (its interpolated tick, floored), or None: the server's lag compensation.
    """

    seq: int
    values: tuple[int, ...] = field(converter=_values)
    ack: int | None = None
    view: int | None = None

    def __attrs_post_init__(self) -> None:
        # One inline check instead of four validators: this runs 30 times a
        # second per player, so it is on the hot path.
        seq, ack, view = self.seq, self.ack, self.view
        if type(seq) is not int or not 1 <= seq <= U32:
            raise InvalidField(f"seq: expected an integer in [1, {U32}], got {seq!r}")
        if ack is not None and (type(ack) is not int or not 0 <= ack <= U32):
            raise InvalidField(f"ack: expected an integer in [0, {U32}], got {ack!r}")
        if view is not None and (type(view) is not int or not 0 <= view <= U32):
            raise InvalidField(f"view: expected an integer in [0, {U32}], got {view!r}")
        values = self.values
        if len(values) > MAX_INPUT_VALUES:
            raise InvalidField(f"in: expected an array of at most {MAX_INPUT_VALUES} integers")
        for i, v in enumerate(values):
            if type(v) is not int:
                # msgpack keeps ints and floats apart: 1.0 is a float, refused like "1".
                raise InvalidField(f"in[{i}]: expected an integer, got {type(v).__name__} {v!r}")


@frozen
class Ack:
    """The last update tick the client holds (for clients that send no input)."""

    tick: int = field(validator=_u32)


@frozen
class Ping:
    """Round-trip probe; the server echoes ``id`` and ``time`` in a ``Pong``."""

    id: int = field(validator=_u32)
    time: float = field(default=0, validator=_number)


@frozen
class Resync:
    """The client lost its state (a checksum mismatch): send a keyframe."""


@frozen
class Leave:
    """The client leaves for good: its player is removed at the next tick and the server closes with 1000."""


@frozen
class Control:
    """A replay viewer steers the playback (REPLAY.md): any of pause, speed, seek.

    Attributes:
        pause: True stops, False plays (from the start again when at the end).
        speed: replay ticks per real tick, ``MIN_SPEED`` to ``MAX_SPEED`` (kept as a float).
        seek: go to this tick (the playback clamps it to the replay).
    """

    pause: bool | None = field(default=None, validator=_optional(_bool))
    speed: float | None = field(default=None, converter=_opt_speed)
    seek: int | None = field(default=None, validator=_opt_u32)


ClientMessage = Hello | Input | Ack | Ping | Resync | Leave | Control


# -- server to client ------------------------------------------------------


@frozen
class Welcome:
    """The server's answer to ``hello``: who the client is, and the ruleset's schema."""

    version: int = field(validator=_u32)
    match: str = field(validator=_str)
    player: int = field(validator=_u32)
    entity: int | None = field(validator=_opt_u32)
    tick_rate: int = field(validator=_int(1, U32))
    tick: int = field(validator=_u32)
    token: str = field(validator=_token)
    ruleset: dict[str, Any] = field(validator=_dict)
    resumed: bool = field(default=False, validator=_bool)
    hold_s: float = field(default=0.0, validator=_number)
    #: This connection's updates are filtered views of this shape (``ViewShape.to_wire``); None: the whole world.
    interest: dict[str, Any] | None = field(default=None, validator=_optional(_dict))
    #: The server's minor protocol version (PROTOCOL.md, *Versions*); absent on the wire (0): a 1.0 server.
    minor: int = field(default=0, validator=_u32)


@frozen
class RosterEntry:
    """One player of a ``roster``; on the wire ``[player, entity, name, online]``."""

    player: int = field(validator=_u32)
    entity: int | None = field(validator=_opt_u32)
    name: str = field(validator=_str)
    online: bool = field(validator=_bool)


def _is_entry(v: Any) -> bool:
    return isinstance(v, RosterEntry)


@frozen
class Roster:
    """Every player of the match (not spectators), in ascending player id order.

    Attributes:
        players: the entries.
        rev: the roster's revision (``roster_delta``s count from it); None from a server that sends no deltas.
    """

    players: tuple[RosterEntry, ...] = field(converter=_to_tuple, validator=_tuple_of(_is_entry, "a roster entry"))
    rev: int | None = field(default=None, validator=_opt_u32)


@frozen
class RosterDelta:
    """The roster's changes of one tick, bringing revision ``rev - 1`` to ``rev`` (``server.protocol.roster``).

    Attributes:
        rev: the revision it brings the roster to.
        players: entries of players who joined or whose entry changed (whole entries), ascending player ids.
        gone: ids of players who left, ascending.
    """

    rev: int = field(validator=_int(1, U32))
    players: tuple[RosterEntry, ...] = field(converter=_to_tuple, validator=_tuple_of(_is_entry, "a roster entry"))
    gone: tuple[int, ...] = field(converter=_to_tuple, validator=_tuple_of(_is_tick, "a player id"))


@frozen
class Pong:
    """The answer to a ``ping``: its ``id`` and ``time``, and the server's tick."""

    id: int = field(validator=_u32)
    time: float = field(validator=_number)
    tick: int = field(validator=_u32)


@frozen
class Error:
    """Why the server is about to close the connection, with the close code it will use."""

    code: int = field(validator=_int(MIN_CLOSE_CODE, MAX_CLOSE_CODE))
    reason: str = field(validator=_str)


@frozen
class Moved:
    """The match moved to another server: reconnect to ``url`` with the same token (a close 1012 follows)."""

    url: str = field(validator=_str)


#: The keys of an update that make up its body (``delta.encode_body``), in wire order.
#: A delta's parts (``delta.py``), then a filtered view's (``interest.py``: ``gone`` is both's).
UPDATE_BODY_KEYS = ("gone", "rows", "cols", "new", "chg", "add")


@frozen
class Update:
    """A decoded state update (the client side; the server writes it pre-encoded).

    Attributes:
        tick: the tick this update brings the client to.
        base: the tick it is a delta against; None for a keyframe.
        body: the delta's parts (any of ``UPDATE_BODY_KEYS``), checked by ``delta.apply_body``.
        checksum: CRC-32 of the state after applying it (a filtered view: its view sum).
        ack: the seq of this player's newest input applied.
        events: this tick's events, ruleset-defined arrays.
        surplus: inputs the player's queue holds beyond its target depth (minor 2; 0 when absent): the client
            skips that many sends, less those it skipped since input ``ack`` went out (PROTOCOL.md, *The input
            queue*).
    """

    tick: int
    base: int | None
    body: dict[str, Any]
    checksum: int
    ack: int
    events: tuple[Any, ...] = field(default=(), converter=_to_tuple)
    surplus: int = 0

    def __attrs_post_init__(self) -> None:
        # Inline, like Input's: one per tick per client.
        tick, base, checksum, ack = self.tick, self.base, self.checksum, self.ack
        if type(tick) is not int or not 0 <= tick <= U32:
            raise InvalidField(f"tick: expected an integer in [0, {U32}], got {tick!r}")
        if base is not None and (type(base) is not int or not 0 <= base <= U32):
            raise InvalidField(f"base: expected nil or an integer in [0, {U32}], got {base!r}")
        if type(checksum) is not int or not 0 <= checksum <= U32:
            raise InvalidField(f"checksum: expected an integer in [0, {U32}], got {checksum!r}")
        if type(ack) is not int or not 0 <= ack <= U32:
            raise InvalidField(f"ack: expected an integer in [0, {U32}], got {ack!r}")
        if type(self.surplus) is not int or not 0 <= self.surplus <= U32:
            raise InvalidField(f"surplus: expected an integer in [0, {U32}], got {self.surplus!r}")
        if type(self.body) is not dict or not self.body.keys() <= _BODY_KEYS:
            raise InvalidField(f"body: expected a map of {', '.join(UPDATE_BODY_KEYS)}")
        if type(self.events) is not tuple:
            raise InvalidField(f"events: expected an array, got {type(self.events).__name__}")


_BODY_KEYS = frozenset(UPDATE_BODY_KEYS)


@frozen
class ReplayInfo:
    """What a replay is, sent once to a playback's viewer after ``welcome`` (REPLAY.md).

    Attributes:
        name: the replay's file name.
        match, ruleset, ruleset_version, seed, options, tick_rate, start_time: from its header.
        first, last: its first and last tick.
        complete: it has an end record and no torn frame.
        warnings: why it is not complete.
        keyframes: the ticks of its keyframes (where seeking is cheapest).
        checkpoints: ``(tick, checksum)`` of every recorded checkpoint.
        scores: ``(player, score)`` from the end record; None without one.
        players: ``(player, name)`` of everyone who ever joined.
    """

    name: str = field(validator=_str)
    match: str = field(validator=_str)
    ruleset: str = field(validator=_str)
    ruleset_version: int = field(validator=_u32)
    seed: int = field(validator=_int(INT_MIN, INT_MAX))
    options: dict[str, int] = field(validator=_options)
    tick_rate: int = field(validator=_int(1, U32))
    start_time: str = field(validator=_str)
    first: int = field(validator=_u32)
    last: int = field(validator=_u32)
    complete: bool = field(validator=_bool)
    warnings: tuple[str, ...] = field(converter=_to_tuple, validator=_tuple_of(_is_str, "a string"))
    keyframes: tuple[int, ...] = field(converter=_to_tuple, validator=_tuple_of(_is_tick, "a tick"))
    checkpoints: tuple[tuple[int, int], ...] = field(
        converter=_to_pairs, validator=_tuple_of(_is_pair(_is_tick, _is_tick), "[tick, checksum]"))
    scores: tuple[tuple[int, int], ...] | None = field(
        converter=_to_pairs, validator=_optional(_tuple_of(_is_pair(_is_tick, _is_any_int), "[player, score]")))
    players: tuple[tuple[int, str], ...] = field(
        converter=_to_pairs, validator=_tuple_of(_is_pair(_is_tick, _is_str), "[player, name]"))


@frozen
class ReplayStatus:
    """Where a playback stands (the ``replay`` message), sent whenever it changes and every few ticks while playing.

    Attributes:
        tick: the playback's tick; first, last: the replay's first and last tick.
        paused: whether it stands still; speed: replay ticks per real tick (a float).
    """

    tick: int = field(validator=_u32)
    first: int = field(validator=_u32)
    last: int = field(validator=_u32)
    paused: bool = field(validator=_bool)
    speed: float = field(converter=_speed)


ServerMessage = Welcome | Roster | RosterDelta | Pong | Error | Moved | Update | ReplayInfo | ReplayStatus

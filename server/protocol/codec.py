"""msgpack <-> messages, driven by one table: ``MESSAGES``.

Every frame is one msgpack map with a string type tag under ``"t"``. Each
message type is declared once, in ``MESSAGES`` (Quake 3's ``netField_t``
idea): its tag, its class, who sends it, and its fields in wire order, each
a wire key, the attribute it fills, whether it may be absent (then the
class default applies) and whether the encoder leaves it out when it holds
that default. ``encode_client``, ``decode_client``, ``encode_server`` and
``decode_server`` are driven by it, and an import-time check makes sure every
entry covers its class's attributes exactly, so adding a message is one
class in ``messages.py`` and one entry here.

Decoding never trusts the peer: sizes are checked before parsing, msgpack's
own container limits are set, the table rejects missing fields, and the
constructors in ``messages.py`` validate every field. Errors come out as
``ProtocolError`` subclasses that carry the close code. Both sides ignore
keys a message does not have (a later minor version's, PROTOCOL.md
*Versions*); the server counts the ones clients send.

Two hot paths keep their shape, both pinned to the table: a client's
``input`` (30 a second per player) is built positionally from the table's
keys, or, packed as clients pack it, read straight from its bytes by
``decode_input`` with no msgpack call and no ``Input`` (the session's
``receive_input``); and updates are written by ``encode_update_prefix`` once per (tick,
base) plus ``finish_update``'s per-client ``ack``, a byte concatenation
(``encode_server`` of an ``Update`` gives the same bytes).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import Any, get_args

import attrs
import msgpack
from attrs import frozen

from server.protocol import PROTOCOL_VERSION
from server.protocol.errors import (
    InvalidField,
    MalformedMessage,
    MessageTooBig,
    UnsupportedData,
    UnsupportedVersion,
)
from server.protocol.messages import (
    UPDATE_BODY_KEYS,
    Ack,
    ClientMessage,
    Control,
    Error,
    Hello,
    Input,
    Leave,
    Moved,
    Ping,
    Pong,
    ReplayInfo,
    ReplayStatus,
    Resync,
    Roster,
    RosterDelta,
    RosterEntry,
    ServerMessage,
    Update,
    Welcome,
)

#: Largest client message accepted, in bytes (inputs are ~30 bytes).
MAX_CLIENT_MESSAGE = 1024
#: Largest server message a client accepts, in bytes.
MAX_SERVER_MESSAGE = 64 * 1024 * 1024


class Sender(enum.Enum):
    """Who sends a message: decoding a frame of the other side's type is an unknown type."""

    CLIENT = "client"
    SERVER = "server"


@frozen
class Field:
    """One field of a message on the wire (``Req``, ``Opt``, ``Inline`` build them).

    Attributes:
        key: the wire key.
        attr: the message attribute it fills.
        optional: it may be absent on the wire: decoding then uses the class default.
            (An inline field's keys are each optional; the attribute always gets a map.)
        omit: the encoder leaves it out when it equals the class default (optional fields only).
        to_wire, from_wire: conversions between the attribute and the wire value (None: as is).
        inline: the attribute is a map whose entries (any of these keys, in the map's order)
            sit in the message itself; ``key`` is unused.
    """

    key: str
    attr: str
    optional: bool = False
    omit: bool = False
    to_wire: Callable[[Any], Any] | None = None
    from_wire: Callable[[Any], Any] | None = None
    inline: tuple[str, ...] = ()


def Req(key: str, attr: str | None = None, *, to_wire: Callable[[Any], Any] | None = None,
        from_wire: Callable[[Any], Any] | None = None) -> Field:
    """A field every message of the type carries."""
    return Field(key, attr or key, to_wire=to_wire, from_wire=from_wire)


def Opt(key: str, attr: str | None = None, *, omit: bool = False) -> Field:
    """A field that may be absent (the class default applies); ``omit``: written only when not the default."""
    return Field(key, attr or key, optional=True, omit=omit)


def Inline(attr: str, keys: tuple[str, ...]) -> Field:
    """A map attribute whose entries are fields of the message itself (an update's body)."""
    return Field("", attr, inline=keys)


@frozen
class Message:
    """One message type on the wire.

    Attributes:
        tag: its ``"t"``.
        cls: its class in ``messages.py``.
        sender: who sends it.
        fields: its fields in wire order (after ``"t"``, always first).
        check: run on the decoded map after the field checks, before construction
            (``hello``'s version, which has its own error).
    """

    tag: str
    cls: type
    sender: Sender
    fields: tuple[Field, ...]
    check: Callable[[dict[str, Any]], None] | None = None
    #: Every key the message may carry, ``"t"`` included.
    keys: frozenset[str] = attrs.field(init=False)
    #: The keys it must carry, in wire order.
    required: tuple[str, ...] = attrs.field(init=False)
    #: Each field's class default (``attrs.NOTHING`` for none).
    defaults: tuple[Any, ...] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        _check_covers(self)
        keys = {"t"}
        for f in self.fields:
            keys.update(f.inline or (f.key,))
        defaults = {a.name: a.default for a in attrs.fields(self.cls)}
        object.__setattr__(self, "keys", frozenset(keys))
        object.__setattr__(self, "required", tuple(f.key for f in self.fields if not (f.optional or f.inline)))
        object.__setattr__(self, "defaults", tuple(defaults[f.attr] for f in self.fields))

    def encode(self, msg: Any) -> bytes:
        obj: dict[str, Any] = {"t": self.tag}
        for f, default in zip(self.fields, self.defaults):
            value = getattr(msg, f.attr)
            if f.inline:
                obj.update(value)  # its keys are the inline ones: the class checks
            elif not (f.omit and value == default):
                obj[f.key] = value if f.to_wire is None else f.to_wire(value)
        out: bytes = msgpack.packb(obj)
        return out

    def unknown(self, obj: dict[str, Any]) -> list[str]:
        """The keys of ``obj`` the message does not have, sorted (a later minor version's). Raises
        ``MalformedMessage`` for a key that is not a string."""
        if obj.keys() <= self.keys:
            return []
        if not all(type(k) is str for k in obj):  # a bin key: msgpack's strict_map_key lets bytes through
            raise MalformedMessage("map keys must be strings")
        return sorted(k for k in obj if k not in self.keys)

    def decode(self, obj: dict[str, Any], *, strict: bool) -> Any:
        """The message in ``obj`` (a map with this tag); ``strict``: unknown keys are an error, else ignored."""
        missing = [k for k in self.required if k not in obj]
        if missing:
            raise InvalidField(f"{self.tag}: missing field(s) {', '.join(missing)}")
        if strict and (extra := self.unknown(obj)):
            raise InvalidField(f"{self.tag}: unknown field(s) {', '.join(extra)}")
        if self.check is not None:
            self.check(obj)
        kwargs: dict[str, Any] = {}
        for f in self.fields:
            if f.inline:
                kwargs[f.attr] = {k: v for k, v in obj.items() if k in f.inline}
            elif f.key in obj:
                value = obj[f.key]
                kwargs[f.attr] = value if f.from_wire is None else f.from_wire(value)
        return self.cls(**kwargs)


def _check_covers(m: Message) -> None:
    """The entry fills every attribute of its class exactly once, and its flags make sense."""
    names = [a.name for a in attrs.fields(m.cls)]
    attrs_ = [f.attr for f in m.fields]
    if sorted(attrs_) != sorted(names):
        raise TypeError(f"{m.tag}: the table's fields {attrs_} do not cover {m.cls.__name__}'s attributes {names}")
    keys = [k for f in m.fields for k in (f.inline or (f.key,))]
    if len(set(keys)) != len(keys) or "t" in keys:
        raise TypeError(f"{m.tag}: duplicate wire keys in {keys}")
    for f, a in zip(m.fields, (attrs.fields_dict(m.cls)[f.attr] for f in m.fields)):
        if f.optional and a.default is attrs.NOTHING:
            raise TypeError(f"{m.tag}.{f.key}: optional, but {m.cls.__name__}.{f.attr} has no default")
        if f.omit and not f.optional:
            raise TypeError(f"{m.tag}.{f.key}: only an optional field can be omitted")


def _roster_to_wire(players: tuple[RosterEntry, ...]) -> list[list[Any]]:
    return [[e.player, e.entity, e.name, e.online] for e in players]


def _roster_from_wire(players: Any) -> tuple[RosterEntry, ...]:
    if not isinstance(players, list) or not all(isinstance(e, list) and len(e) == 4 for e in players):
        raise InvalidField("roster: players must be an array of [player, entity, name, online]")
    return tuple(RosterEntry(*e) for e in players)


def _check_version(obj: dict[str, Any]) -> None:
    if obj["v"] != PROTOCOL_VERSION:
        raise UnsupportedVersion(obj["v"], PROTOCOL_VERSION)


CLIENT, SERVER = Sender.CLIENT, Sender.SERVER

#: Every message of the protocol (PROTOCOL.md; the playback's: REPLAY.md).
MESSAGES: tuple[Message, ...] = (
    # client -> server
    Message("hello", Hello, CLIENT, (Req("v", "version"), Req("name"), Opt("spectate", omit=True),
                                     Opt("token", omit=True), Opt("seat", omit=True), Opt("interest", omit=True),
                                     Opt("roster_deltas", omit=True)),
            check=_check_version),
    Message("input", Input, CLIENT, (Req("seq"), Req("in", "values"), Opt("ack", omit=True), Opt("view", omit=True))),
    Message("ack", Ack, CLIENT, (Req("tick"),)),
    Message("ping", Ping, CLIENT, (Req("id"), Opt("time"))),
    Message("resync", Resync, CLIENT, ()),
    Message("leave", Leave, CLIENT, ()),
    Message("control", Control, CLIENT, (Opt("pause", omit=True), Opt("speed", omit=True), Opt("seek", omit=True))),
    # server -> client
    Message("welcome", Welcome, SERVER, (
        Req("v", "version"), Req("match"), Req("player"), Req("entity"), Req("tick_rate"), Req("tick"),
        Req("token"), Req("ruleset"), Opt("resumed"), Opt("hold_s"), Opt("interest", omit=True), Opt("minor", omit=True))),
    Message("roster", Roster, SERVER, (Req("players", to_wire=_roster_to_wire, from_wire=_roster_from_wire),
                                       Opt("rev", omit=True))),
    Message("roster_delta", RosterDelta, SERVER, (
        Req("rev"), Req("players", to_wire=_roster_to_wire, from_wire=_roster_from_wire),
        Req("gone"))),
    Message("pong", Pong, SERVER, (Req("id"), Req("time"), Req("tick"))),
    Message("error", Error, SERVER, (Req("code"), Req("reason"))),
    Message("moved", Moved, SERVER, (Req("url"),)),
    # ``ack`` last of the shared part: finish_update appends it to a shared prefix; ``surplus`` (minor 2), when
    # not 0, after it (with_surplus).
    Message("update", Update, SERVER, (Req("tick"), Req("base"), Inline("body", UPDATE_BODY_KEYS),
                                       Req("sum", "checksum"), Opt("ev", "events", omit=True), Req("ack"),
                                       Opt("surplus", omit=True))),
    Message("replay_info", ReplayInfo, SERVER, (
        Req("name"), Req("match"), Req("ruleset"), Req("ruleset_version"), Req("seed"), Req("options"),
        Req("tick_rate"), Req("start_time"), Req("first"), Req("last"), Req("complete"), Req("warnings"),
        Req("keyframes"), Req("checkpoints"), Req("scores"), Req("players"))),
    Message("replay", ReplayStatus, SERVER, (Req("tick"), Req("first"), Req("last"), Req("paused"), Req("speed"))),
)

_BY_CLASS: dict[type, Message] = {m.cls: m for m in MESSAGES}
_CLIENT: dict[str, Message] = {m.tag: m for m in MESSAGES if m.sender is CLIENT}
_SERVER: dict[str, Message] = {m.tag: m for m in MESSAGES if m.sender is SERVER}
if (len(_BY_CLASS) != len(MESSAGES) or len(_CLIENT) + len(_SERVER) != len(MESSAGES)
        or {m.cls for m in _CLIENT.values()} != set(get_args(ClientMessage))
        or {m.cls for m in _SERVER.values()} != set(get_args(ServerMessage))):
    raise TypeError("MESSAGES must hold each message class once, under a tag unique to its sender")

# The input hot path, from the table: its keys, which are required, in the class's order.
_INPUT = _BY_CLASS[Input]
_INPUT_TAG, _INPUT_KEYS = _INPUT.tag, _INPUT.keys
_SEQ, _VALUES, _ACK, _VIEW = (f.key for f in _INPUT.fields)
if ([f.attr for f in _INPUT.fields] != [a.name for a in attrs.fields(Input)] or _INPUT.required != (_SEQ, _VALUES)
        or any(f.from_wire for f in _INPUT.fields) or _INPUT.check is not None
        or _INPUT.defaults[2:] != (None, None)):
    raise TypeError("decode_client's input path assumes input's fields are seq, values (required), ack, view (optional)")

_UPDATE = _BY_CLASS[Update]
_ACK_KEY: bytes = msgpack.packb(_UPDATE.fields[-2].key)
_SURPLUS_KEY: bytes = msgpack.packb(_UPDATE.fields[-1].key)
if _UPDATE.fields[-2].optional or [f.key for f in _UPDATE.fields[-2:]] != ["ack", "surplus"]:
    raise TypeError("finish_update appends an update's ack, with_surplus its surplus after it: the last two fields")


#: What msgpack's ValueError for a client message says -> our reason (the limits in ``_unpack``).
_LIMIT_REASONS = (
    ("map key", "map keys must be strings"),
    ("max_bin_len", "bin values are not accepted in client messages"),
    ("max_ext_len", "ext values are not accepted in client messages"),
    ("max_str_len", "a string over 256 bytes"),
    ("max_array_len", "an array over 32 elements"),
    ("max_map_len", "a map over 16 keys"),
)


def _unpack(data: bytes | bytearray | memoryview | str, max_size: int, client: bool) -> dict[str, Any]:
    if isinstance(data, str):
        raise UnsupportedData("text frames are not accepted; send binary msgpack frames", 1003)
    if len(data) > max_size:
        raise MessageTooBig(len(data), max_size)
    try:
        if client:
            # msgpack's container limits: a 1 KiB frame could not hold more anyway, but these
            # reject absurd shapes early. Ext types are never accepted. (Spelled out here: a
            # **limits dict merged at each call cost an input ~1% of its decoding.)
            obj = msgpack.unpackb(data, raw=False, strict_map_key=True, max_str_len=256, max_bin_len=0,
                                  max_array_len=32, max_map_len=16, max_ext_len=0)
        else:
            obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        if isinstance(exc, ValueError):  # a limit or strict_map_key: say which
            for words, reason in _LIMIT_REASONS:
                if words in str(exc):
                    raise MalformedMessage(reason) from None
        raise MalformedMessage(f"not a valid msgpack message: {type(exc).__name__}") from None
    if not isinstance(obj, dict):
        raise MalformedMessage(f"expected a msgpack map, got {type(obj).__name__}")
    t = obj.get("t")
    if type(t) is not str:
        if "t" not in obj:
            raise MalformedMessage("missing type tag 't'")
        raise MalformedMessage(f"the type tag 't' must be a string, got {type(t).__name__}")
    return obj


def decode_client(data: bytes | bytearray | memoryview | str,
                  ignored: Callable[[str, list[str]], None] | None = None) -> ClientMessage:
    """One client frame -> a validated message. Raises ProtocolError subclasses.

    Keys the message does not have (a later minor version's: PROTOCOL.md, *Versions*) are ignored, and
    handed to ``ignored(tag, keys)``; every known key is checked as ever, and an unknown type is an error.
    """
    obj = _unpack(data, MAX_CLIENT_MESSAGE, client=True)
    t = obj["t"]
    if t == _INPUT_TAG and _SEQ in obj and _VALUES in obj and obj.keys() <= _INPUT_KEYS:
        return Input(obj[_SEQ], obj[_VALUES], obj.get(_ACK), obj.get(_VIEW))  # the hot path: 30 per second per player
    m = _CLIENT.get(t)
    if m is None:
        raise MalformedMessage(f"unknown message type {t!r}")
    extra = m.unknown(obj)
    msg: ClientMessage = m.decode(obj, strict=False)
    if extra and ignored is not None:
        ignored(t, extra)
    return msg


#: An ``input``'s bytes between its map header and its ``seq`` value, as clients pack them: ``"t": "input", "seq":``.
_INPUT_HEAD = b"".join(msgpack.packb(k) for k in ("t", _INPUT_TAG, _SEQ))
#: Its other keys, packed.
_IN_KEY, _ACK_IN, _VIEW_KEY = (msgpack.packb(k) for k in (_VALUES, _ACK, _VIEW))
_IN_END = len(_INPUT_HEAD) + 1
#: msgpack's unsigned int markers (uint 8, 16, 32) -> the value's reader and size.
_UINTS = {0xCC: (struct.Struct(">B"), 1), 0xCD: (struct.Struct(">H"), 2), 0xCE: (struct.Struct(">I"), 4)}
#: n one-byte signed ints, for an array of n fixints.
_FIXINTS = tuple(struct.Struct(f"{n}b") for n in range(16))


def _uint_at(data: bytes, i: int) -> tuple[int, int]:
    """The unsigned int packed at ``data[i]`` (a positive fixint or uint 8/16/32) and where it ends. Raises
    IndexError, KeyError (another marker) or struct.error (cut short)."""
    b = data[i]
    if b < 0x80:
        return b, i + 1
    reader, size = _UINTS[b]
    return reader.unpack_from(data, i + 1)[0], i + 1 + size


def decode_input(data: bytes) -> tuple[int, tuple[int, ...], int | None, int | None] | None:
    """A player's ``input`` in the shapes clients pack it, read without msgpack or an ``Input``: its
    ``(seq, values, ack, view)``; None for anything else (then ``decode_client``, which says what is wrong).

    The shapes: a fixmap ``t``, ``seq``, ``in``, then ``ack`` and/or ``view`` in that order (the Python client's,
    the browser's and the C load generator's order); ``seq``, ``ack``, ``view`` positive fixints or uint 8/16/32,
    ``seq`` not 0; ``in`` a fixarray of fixints (-32 to 127); nothing after. Such bytes are a valid ``input``
    whatever their values, and ``decode_client`` would return exactly these fields: the two never disagree
    (``tests/protocol/test_codec.py`` checks it on every shape and on mutated and random bytes). A short frame
    or another marker ends in IndexError, KeyError or struct.error: None. (``seq`` is read inline: a
    Python call costs a tenth of what reading the whole frame does.)
    """
    try:
        keys = data[0] - 0x83  # a fixmap of 3 keys, 4 or 5
        if keys < 0 or keys > 2 or data[1:_IN_END] != _INPUT_HEAD:
            return None
        i = _IN_END + 1
        seq = data[_IN_END]
        if seq >= 0x80:  # else a positive fixint
            reader, size = _UINTS[seq]
            seq = reader.unpack_from(data, i)[0]
            i += size
        n = data[i + 3] - 0x90  # a fixarray of n
        if not seq or n < 0 or n > 15 or data[i:i + 3] != _IN_KEY:
            return None
        i += 4
        values: tuple[int, ...] = _FIXINTS[n].unpack_from(data, i)
        if n and min(values) < -32:  # a byte 0x80-0xdf: a marker, not a fixint
            return None
        i += n
        ack = view = None
        if keys and data[i:i + 4] == _ACK_IN:
            ack, i = _uint_at(data, i + 4)
            keys -= 1
        if keys and data[i:i + 5] == _VIEW_KEY:
            view, i = _uint_at(data, i + 5)
            keys -= 1
    except (IndexError, KeyError, struct.error):
        return None
    if keys or i != len(data):
        return None
    return seq, values, ack, view


def encode_client(msg: ClientMessage) -> bytes:
    """A client message -> one frame (the Python client and tests use this)."""
    m = _BY_CLASS.get(type(msg))
    if m is None or m.sender is not CLIENT:
        raise TypeError(f"not a client message: {msg!r}")
    return m.encode(msg)


def encode_server(msg: ServerMessage) -> bytes:
    """A server message -> one frame. (The server writes updates with ``encode_update_prefix``
    and ``finish_update``; an ``Update`` encoded here has the same bytes.)"""
    m = _BY_CLASS.get(type(msg))
    if m is None or m.sender is not SERVER:
        raise TypeError(f"not a server message: {msg!r}")
    return m.encode(msg)


def encode_update_prefix(tick: int, base: int | None, body: dict[str, Any], checksum: int, events: list[Any]) -> bytes:
    """Everything of an update but the per-client ``ack``: a map header counting it, then the shared fields."""
    fields: dict[str, Any] = {"t": "update", "tick": tick, "base": base, **body, "sum": checksum}
    if events:
        fields["ev"] = events
    packer = msgpack.Packer()
    parts = [packer.pack_map_header(len(fields) + 1)]
    for key, value in fields.items():
        parts.append(packer.pack(key))
        parts.append(packer.pack(value))
    return b"".join(parts)


#: ``"ack": n`` packed, for every n below 128 (a positive fixint).
_SMALL_ACKS = tuple(_ACK_KEY + bytes((n,)) for n in range(128))
#: ``"ack"`` and the marker of each wider unsigned int.
_ACK_U8, _ACK_U16, _ACK_U32, _ACK_U64 = (_ACK_KEY + bytes((marker,)) for marker in (0xCC, 0xCD, 0xCE, 0xCF))


def ack_field(ack: int) -> bytes:
    """``"ack": ack`` as msgpack packs it (key, then the smallest unsigned int form), for ``0 <= ack < 2**64``,
    without a packer per call: the per-client tail of every update."""
    if ack < 0x80:
        return _SMALL_ACKS[ack]
    if ack < 0x10000:  # a uint 16 from 256: an ack after 8.5 s at 30 Hz, for 36 minutes
        return _ACK_U16 + ack.to_bytes(2, "big") if ack >= 0x100 else _ACK_U8 + ack.to_bytes(1, "big")
    if ack < 0x100000000:
        return _ACK_U32 + ack.to_bytes(4, "big")
    return _ACK_U64 + ack.to_bytes(8, "big")


def finish_update(prefix: bytes, ack: int) -> bytes:
    """The complete update frame for one client: the shared prefix plus ``"ack": ack`` (``ack_field``)."""
    return prefix + ack_field(ack)


def with_surplus(frame: bytes, surplus: int) -> bytes:
    """An update ``frame`` (any: ordinary or filtered, ending with its ``ack``) with ``"surplus": surplus``
    after it, its map header counting one more key: the per-client key of minor 2, written only when not 0
    (most ticks no client has one, so the shared encodings stay as they were)."""
    head = frame[0]
    if not 0x80 <= head < 0x8F:  # a fixmap: an update has at most 10 keys
        raise ValueError(f"not an update frame of fewer than 15 keys (map header {head:#x})")
    value: bytes = msgpack.packb(surplus)
    return bytes((head + 1,)) + frame[1:] + _SURPLUS_KEY + value


def decode_server(data: bytes | bytearray | memoryview | str) -> ServerMessage:
    """One server frame -> a validated message (the Python client uses this). Raises ProtocolError.

    Unknown keys are ignored (later minor versions may add some); unknown types are ``MalformedMessage``.
    """
    obj = _unpack(data, MAX_SERVER_MESSAGE, client=False)
    t = obj["t"]
    m = _SERVER.get(t)
    if m is None:
        raise MalformedMessage(f"unknown message type {t!r}")
    try:
        msg: ServerMessage = m.decode(obj, strict=False)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidField(f"{t}: malformed message ({exc!r})") from None
    return msg

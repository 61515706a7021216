"""msgpack <-> messages, with size limits and validation.

Every frame is one msgpack map with a string type tag under ``"t"``.
Decoding never trusts the peer: sizes are checked before parsing, msgpack's
own container limits are set, and the constructors in ``messages.py``
validate every field. Errors come out as ``ProtocolError`` subclasses that
carry the close code.

Updates are the one hot path: the server encodes the shared part of an
update once per (tick, base) with ``encode_update_prefix`` and appends each
client's input acknowledgement with ``finish_update``, a byte concatenation.
"""

from __future__ import annotations

from typing import Any

import msgpack

from server.protocol import PROTOCOL_VERSION
from server.protocol.errors import (
    InvalidField,
    MalformedMessage,
    MessageTooBig,
    UnsupportedData,
    UnsupportedVersion,
)
from server.protocol.messages import (
    Ack,
    ClientMessage,
    Error,
    Hello,
    Input,
    Ping,
    Pong,
    Resync,
    Roster,
    RosterEntry,
    ServerMessage,
    Update,
    Welcome,
)

#: Largest client message accepted, in bytes (inputs are ~30 bytes).
MAX_CLIENT_MESSAGE = 1024
#: Largest server message a client accepts, in bytes.
MAX_SERVER_MESSAGE = 64 * 1024 * 1024

# msgpack's container limits: a 1 KiB frame could not hold more anyway, but
# these reject absurd shapes early. Ext types are never accepted.
_CLIENT_LIMITS = dict(max_str_len=256, max_bin_len=0, max_array_len=32, max_map_len=16, max_ext_len=0)
_INPUT_KEYS = frozenset({"t", "seq", "in", "ack"})
_ACK_KEY: bytes = msgpack.packb("ack")


def _unpack(data: bytes | bytearray | memoryview | str, max_size: int, limits: dict[str, int]) -> dict[str, Any]:
    if isinstance(data, str):
        raise UnsupportedData("text frames are not accepted; send binary msgpack frames", 1003)
    if len(data) > max_size:
        raise MessageTooBig(len(data), max_size)
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True, **limits)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise MalformedMessage(f"not a valid msgpack message: {type(exc).__name__}") from None
    if not isinstance(obj, dict):
        raise MalformedMessage(f"expected a msgpack map, got {type(obj).__name__}")
    if not isinstance(obj.get("t"), str):
        raise MalformedMessage("missing type tag 't'")
    return obj


def _fields(obj: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    t = obj["t"]
    missing = [k for k in required if k not in obj]
    if missing:
        raise InvalidField(f"{t}: missing field(s) {', '.join(missing)}")
    extra = set(obj) - set(required) - set(optional) - {"t"}
    if extra:
        raise InvalidField(f"{t}: unknown field(s) {', '.join(sorted(extra))}")


def decode_client(data: bytes | bytearray | memoryview | str) -> ClientMessage:
    """One client frame -> a validated message. Raises ProtocolError subclasses."""
    obj = _unpack(data, MAX_CLIENT_MESSAGE, _CLIENT_LIMITS)
    t = obj["t"]
    if t == "input" and "seq" in obj and "in" in obj and obj.keys() <= _INPUT_KEYS:
        values = obj["in"]  # the hot path: 30 per second per player
        if type(values) is not list:
            raise InvalidField("input: 'in' must be an array of integers")
        return Input(obj["seq"], tuple(values), obj.get("ack"))
    if t == "hello":
        _fields(obj, ("v", "name"), ("spectate", "token"))
        if obj["v"] != PROTOCOL_VERSION:
            raise UnsupportedVersion(obj["v"], PROTOCOL_VERSION)
        return Hello(obj["v"], obj["name"], obj.get("spectate", False), obj.get("token"))
    if t == "input":
        _fields(obj, ("seq", "in"), ("ack",))
        if not isinstance(obj["in"], list):
            raise InvalidField("input: 'in' must be an array of integers")
        return Input(obj["seq"], tuple(obj["in"]), obj.get("ack"))
    if t == "ack":
        _fields(obj, ("tick",))
        return Ack(obj["tick"])
    if t == "ping":
        _fields(obj, ("id",), ("time",))
        return Ping(obj["id"], obj.get("time", 0))
    if t == "resync":
        _fields(obj, ())
        return Resync()
    raise MalformedMessage(f"unknown message type {t!r}")


def encode_client(msg: ClientMessage) -> bytes:
    """A client message -> one frame (the Python client and tests use this)."""
    obj: dict[str, Any]
    if isinstance(msg, Hello):
        obj = {"t": "hello", "v": msg.version, "name": msg.name}
        if msg.spectate:
            obj["spectate"] = True
        if msg.token is not None:
            obj["token"] = msg.token
    elif isinstance(msg, Input):
        obj = {"t": "input", "seq": msg.seq, "in": list(msg.values)}
        if msg.ack is not None:
            obj["ack"] = msg.ack
    elif isinstance(msg, Ack):
        obj = {"t": "ack", "tick": msg.tick}
    elif isinstance(msg, Ping):
        obj = {"t": "ping", "id": msg.id, "time": msg.time}
    elif isinstance(msg, Resync):
        obj = {"t": "resync"}
    else:
        raise TypeError(f"not a client message: {msg!r}")
    out: bytes = msgpack.packb(obj)
    return out


def encode_server(msg: Welcome | Roster | Pong | Error) -> bytes:
    """A server message other than an update -> one frame."""
    obj: dict[str, Any]
    if isinstance(msg, Welcome):
        obj = {
            "t": "welcome", "v": msg.version, "match": msg.match, "player": msg.player, "entity": msg.entity,
            "tick_rate": msg.tick_rate, "tick": msg.tick, "token": msg.token, "ruleset": msg.ruleset,
            "resumed": msg.resumed, "hold_s": msg.hold_s,
        }
    elif isinstance(msg, Roster):
        obj = {"t": "roster", "players": [[e.player, e.entity, e.name, e.online] for e in msg.players]}
    elif isinstance(msg, Pong):
        obj = {"t": "pong", "id": msg.id, "time": msg.time, "tick": msg.tick}
    elif isinstance(msg, Error):
        obj = {"t": "error", "code": msg.code, "reason": msg.reason}
    else:
        raise TypeError(f"not a server message: {msg!r}")
    out: bytes = msgpack.packb(obj)
    return out


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


def finish_update(prefix: bytes, ack: int) -> bytes:
    """The complete update frame for one client: the shared prefix plus ``"ack": ack``."""
    tail: bytes = msgpack.packb(ack)
    return prefix + _ACK_KEY + tail


def decode_server(data: bytes | bytearray | memoryview | str) -> ServerMessage:
    """One server frame -> a message (the Python client uses this). Raises ProtocolError."""
    obj = _unpack(data, MAX_SERVER_MESSAGE, {})
    t = obj["t"]
    try:
        if t == "update":
            base = obj["base"]
            body: dict[str, Any] = {k: obj[k] for k in ("gone", "rows", "cols", "new") if k in obj}
            return Update(int(obj["tick"]), None if base is None else int(base), body, int(obj["sum"]),
                          int(obj["ack"]), tuple(obj.get("ev", ())))
        if t == "welcome":
            return Welcome(obj["v"], obj["match"], obj["player"], obj["entity"], obj["tick_rate"], obj["tick"],
                           obj["token"], obj["ruleset"], obj.get("resumed", False), obj.get("hold_s", 0.0))
        if t == "roster":
            return Roster(tuple(RosterEntry(p, e, n, o) for p, e, n, o in obj["players"]))
        if t == "pong":
            return Pong(obj["id"], obj["time"], obj["tick"])
        if t == "error":
            return Error(obj["code"], obj["reason"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidField(f"{t}: malformed message ({exc!r})") from None
    raise MalformedMessage(f"unknown message type {t!r}")

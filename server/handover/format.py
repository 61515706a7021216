"""The hand-over format, sans I/O: the messages between two nodes and the match state they carry.

Every message is one byte string, posted to a node's mailbox in the match
directory (``MatchDirectory.post``)::

    magic    8 bytes  "TICKHAND"
    version  u32 LE   FORMAT_VERSION (a reader refuses a newer one)
    crc      u32 LE   CRC-32 of the body (zlib.crc32)
    body     msgpack  a map whose "kind" is "offer", "accepted" or "refused"

- ``Offer`` (sender to receiver): the match's state (``MatchState``) and
  when the offer lapses (``expires``, directory clock): a receiver never
  starts a match from a lapsed offer.
- ``Accepted`` (receiver to sender): the receiver hosts the match and the
  directory lists it there; ``url`` is where its players connect now, and
  ``hash`` the ``state_hash`` it restored (equal to the offer's).
- ``Refused`` (receiver to sender): why not, in one line; the sender keeps
  its match.

``MatchState`` is the match at a tick boundary: the replay header the
receiver records under (ruleset name and version, seed, resolved options,
tick rate, the input fields and columns, ``start_tick``: the hand-over
tick), the world as a replay keyframe (``server.replay.format.KeyframeData``:
every row slot for slot, ``next_id``, the input table in force with each
player's lag, the players with their entities), its ``state_hash`` and
replicated checksum, the room
type it was made from (plain data: ruleset reference, options, tick rate,
max players, seed, labels), every player's reconnect token, how long it has
been disconnected (None: online) and its last applied input ``seq``, the
next player id, and the sender's replay file name (the receiver's recording
names it: the chain of REPLAY.md).

Everything is checked on decoding: the frame, the types and ranges of every
field, the keyframe (``KeyframeData.decode``), and that the players, their
tokens and the input table agree with one another. What fails is a
``BadHandover`` with a one-line reason; whether the state fits the
receiver's ruleset and hashes to ``hash`` is ``server.handover.transfer``'s
check, which raises the same error.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import msgpack
from attrs import field, frozen

from server.replay.format import Header, KeyframeData

#: The first 8 bytes of every hand-over message.
MAGIC = b"TICKHAND"
#: The format version this code writes and the newest it reads.
FORMAT_VERSION = 1
#: Magic, version, CRC-32 of the body.
HEAD = struct.Struct("<8sII")
#: Largest message a reader takes (a world of 2^22 rows compresses far below this).
MAX_MESSAGE = 64 << 20
#: Reconnect tokens and handover ids: 1 to 64 characters (a ``hello``'s token limit).
MAX_TOKEN = 64
_U32 = (1 << 32) - 1
_MAX_PLAYER = (1 << 31) - 1

_UNPACK_LIMITS: dict[str, int] = {
    "max_str_len": 1 << 16, "max_bin_len": MAX_MESSAGE, "max_array_len": 1 << 20, "max_map_len": 1 << 10,
    "max_ext_len": 0,
}


class BadHandover(Exception):
    """A hand-over message that does not decode, or a state that does not fit: ``reason`` says what, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


# -- values ----------------------------------------------------------------------------


@frozen
class HeldPlayer:
    """A player of the match as handed over: the receiver holds its seat for a resume with ``token``.

    Attributes:
        player: the player id (the same on both nodes).
        name: its name.
        entity: its entity id, or None.
        token: its reconnect token (the ``welcome``'s): its ``hello`` on the receiver resumes it.
        held_for: seconds it had been disconnected at the hand-over; None: it was online.
        seq: the ``seq`` of its input applied last (0: none).
    """

    player: int
    name: str
    entity: int | None
    token: str
    held_for: float | None
    seq: int


@frozen(eq=False)
class MatchState:
    """A match at a tick boundary (see the module docstring).

    Attributes:
        match_id: the match's id, the same on both nodes.
        room: the room type it was made from, plain data (``ruleset``, ``options``, ``tick_rate``,
            ``max_players``, ``seed``, ``labels``).
        header: the replay header of a recording from the hand-over tick (``start_tick``).
        keyframe: the world after the hand-over tick, the input table in force and the players.
        hash: ``state_hash`` of that world (32 hex digits).
        checksum: its replicated checksum (PROTOCOL.md).
        players: every player in the match, ascending ids, as the keyframe lists them.
        next_player: the id the next new member gets.
        hold_s: how long the sender held a disconnected player.
        replay: the sender's replay file name, or None when it did not record.
    """

    match_id: str
    room: Mapping[str, Any] = field(hash=False)
    header: Header
    keyframe: KeyframeData
    hash: str
    checksum: int
    players: tuple[HeldPlayer, ...]
    next_player: int
    hold_s: float
    replay: str | None = None

    @property
    def tick(self) -> int:
        """The hand-over tick."""
        return self.keyframe.tick

    def check(self) -> None:
        """BadHandover unless the parts agree: ticks, the players and the keyframe's, tokens, the input table."""
        if self.header.start_tick != self.keyframe.tick:
            raise BadHandover(f"the header starts at tick {self.header.start_tick}, the keyframe is of tick {self.keyframe.tick}")
        ids = [p.player for p in self.players]
        if ids != sorted(set(ids)):
            raise BadHandover("the players' ids must strictly ascend")
        if [(p.player, p.name, p.entity) for p in self.players] != [tuple(p) for p in self.keyframe.players]:
            raise BadHandover("the players differ from the keyframe's")
        if self.keyframe.inputs.players.tolist() != ids:
            raise BadHandover("the input table's players differ from the match's players")
        tokens = [p.token for p in self.players]
        if len(set(tokens)) != len(tokens):
            raise BadHandover("two players have the same token")
        if ids and self.next_player <= ids[-1]:
            raise BadHandover(f"next player id {self.next_player} is not above player {ids[-1]}")


@frozen
class Offer:
    """A sender offers ``state`` to the receiver; it lapses at ``expires`` (directory clock)."""

    handover: str
    sender: str
    expires: float
    state: MatchState


@frozen
class Accepted:
    """The receiver hosts match ``match`` of hand-over ``handover`` (``state_hash`` ``hash``); players go to ``url``.

    ``replay``: the receiver's replay file name, or None when it does not record.
    """

    handover: str
    sender: str
    match: str
    url: str
    hash: str
    replay: str | None = None


@frozen
class Refused:
    """The receiver does not take match ``match`` of hand-over ``handover``: ``reason``, one line."""

    handover: str
    sender: str
    match: str
    reason: str


Message = Offer | Accepted | Refused


# -- encoding ----------------------------------------------------------------------------


def _frame(body: dict[str, Any]) -> bytes:
    data: bytes = msgpack.packb(body, use_bin_type=True)
    return HEAD.pack(MAGIC, FORMAT_VERSION, zlib.crc32(data)) + data


def _state_body(s: MatchState) -> dict[str, Any]:
    kf = s.keyframe.to_record()
    return {
        "match": s.match_id, "room": dict(s.room), "header": s.header.to_record()[1], "keyframe": kf[2],
        "hash": bytes.fromhex(s.hash), "checksum": s.checksum,
        "players": [[p.player, p.token, p.held_for, p.seq] for p in s.players],
        "next_player": s.next_player, "hold_s": s.hold_s, "replay": s.replay,
    }


def encode(msg: Message) -> bytes:
    """One message as bytes (the keyframe's arrays are compressed here: call it off the tick)."""
    if isinstance(msg, Offer):
        return _frame({"kind": "offer", "handover": msg.handover, "from": msg.sender, "expires": msg.expires,
                       **_state_body(msg.state)})
    if isinstance(msg, Accepted):
        return _frame({"kind": "accepted", "handover": msg.handover, "from": msg.sender, "match": msg.match,
                       "url": msg.url, "hash": bytes.fromhex(msg.hash), "replay": msg.replay})
    return _frame({"kind": "refused", "handover": msg.handover, "from": msg.sender, "match": msg.match,
                   "reason": msg.reason})


# -- decoding ----------------------------------------------------------------------------


class _Fields:
    """The fields of a decoded map, each taken once with its type checked (BadHandover naming it)."""

    def __init__(self, body: dict[Any, Any], what: str) -> None:
        self.body = body
        self.what = what

    def bad(self, key: str, expected: str) -> BadHandover:
        value = self.body.get(key)
        return BadHandover(f"{self.what}: {key} must be {expected}, not {type(value).__name__}"
                           if key in self.body else f"{self.what}: {key} is missing")

    def text(self, key: str, lo: int = 1, hi: int = 1 << 16, *, optional: bool = False) -> Any:
        v = self.body.get(key)
        if optional and v is None:
            return None
        if not isinstance(v, str) or not lo <= len(v) <= hi:
            raise self.bad(key, f"a string of {lo} to {hi} characters")
        return v

    def integer(self, key: str, lo: int = 0, hi: int = _U32) -> int:
        v = self.body.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.bad(key, f"an integer in [{lo}, {hi}]")
        return v

    def number(self, key: str) -> float:
        v = self.body.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise self.bad(key, "a finite number >= 0")
        return float(v)

    def blob(self, key: str, size: int | None = None) -> bytes:
        v = self.body.get(key)
        if not isinstance(v, bytes) or (size is not None and len(v) != size):
            raise self.bad(key, "bytes" if size is None else f"{size} bytes")
        return v

    def mapping(self, key: str) -> dict[Any, Any]:
        v = self.body.get(key)
        if not isinstance(v, dict):
            raise self.bad(key, "a map")
        return v

    def array(self, key: str) -> list[Any]:
        v = self.body.get(key)
        if not isinstance(v, list):
            raise self.bad(key, "an array")
        return v


def _held(entry: Any, i: int) -> tuple[int, str, float | None, int]:
    if not isinstance(entry, list) or len(entry) != 4:
        raise BadHandover(f"offer: players[{i}] must be [player, token, held_for, seq]")
    f = _Fields(dict(zip(("player", "token", "held_for", "seq"), entry)), f"offer: players[{i}]")
    held = None if entry[2] is None else f.number("held_for")
    return f.integer("player", 0, _MAX_PLAYER), f.text("token", 1, MAX_TOKEN), held, f.integer("seq", 0, (1 << 63) - 1)


def _state(f: _Fields) -> MatchState:
    try:
        header = Header.from_record([0, f.mapping("header")])
    except ValueError as exc:
        raise BadHandover(f"offer: {exc}") from None
    tick = header.start_tick
    try:
        keyframe = KeyframeData.decode(header, tick, f.blob("keyframe"))
    except ValueError as exc:
        raise BadHandover(f"offer: {exc}") from None
    names = {p: (n, e) for p, n, e in keyframe.players}
    players = []
    for i, entry in enumerate(f.array("players")):
        player, token, held_for, seq = _held(entry, i)
        if player not in names:
            raise BadHandover(f"offer: player {player} is not in the keyframe")
        name, entity = names[player]
        players.append(HeldPlayer(player, name, entity, token, held_for, seq))
    hold_s = f.number("hold_s")
    state = MatchState(f.text("match", 1, 256), f.mapping("room"), header, keyframe, f.blob("hash", 16).hex(),
                       f.integer("checksum"), tuple(players), f.integer("next_player", 0, _MAX_PLAYER + 1), hold_s,
                       f.text("replay", optional=True))
    state.check()
    return state


def decode(data: bytes | bytearray | memoryview) -> Message:
    """The message in ``data``.

    Raises:
        BadHandover: not a hand-over message, a newer version, a CRC mismatch, or a field missing,
            of the wrong type or out of range, or parts that disagree (``MatchState.check``).
    """
    data = bytes(data)
    if len(data) < HEAD.size or data[:8] != MAGIC:
        raise BadHandover("not a hand-over message (wrong magic bytes)")
    if len(data) > MAX_MESSAGE:
        raise BadHandover(f"a hand-over message of {len(data)} bytes is over the limit of {MAX_MESSAGE}")
    _, version, crc = HEAD.unpack_from(data)
    if not 1 <= version <= FORMAT_VERSION:
        raise BadHandover(f"hand-over format version {version} is not supported; this node reads versions 1 to {FORMAT_VERSION}")
    body = data[HEAD.size:]
    if zlib.crc32(body) != crc:
        raise BadHandover("hand-over message CRC mismatch: the message is damaged")
    try:
        obj = msgpack.unpackb(body, raw=False, strict_map_key=True, **_UNPACK_LIMITS)
    except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types for bad input
        raise BadHandover(f"the hand-over message is not msgpack ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise BadHandover("the hand-over message is not a map")
    kind = obj.get("kind")
    f = _Fields(obj, str(kind))
    if kind == "offer":
        return Offer(f.text("handover", 1, MAX_TOKEN), f.text("from"), f.number("expires"), _state(f))
    if kind == "accepted":
        return Accepted(f.text("handover", 1, MAX_TOKEN), f.text("from"), f.text("match", 1, 256), f.text("url"),
                        f.blob("hash", 16).hex(), f.text("replay", optional=True))
    if kind == "refused":
        return Refused(f.text("handover", 1, MAX_TOKEN), f.text("from"), f.text("match", 1, 256), f.text("reason"))
    raise BadHandover(f"unknown hand-over message kind {kind!r}")


__all__ = ["FORMAT_VERSION", "MAGIC", "Accepted", "BadHandover", "HeldPlayer", "MatchState", "Message",
           "Offer", "Refused", "decode", "encode"]

"""The replay file format, sans I/O: frames, records, the encoder and the parser, and the errors.

A replay is ``MAGIC``, the format version, then a sequence of frames, each
``u32 length | u32 crc32(payload) | payload`` with a msgpack payload, a
record: a header, one record per tick (the joins, leaves and *changes* of the
input table applied before that tick's step), state-hash checkpoints,
full-world keyframes for seeking, and an end record. ``REPLAY.md`` is the
normative description; this module is its reference implementation.

Nothing here touches a file, a socket, a clock or a thread: the writer side
turns objects into bytes (``ReplayEncoder``; ``KeyframeData`` is captured on
the tick and encoded later, off it), the reader side turns bytes into objects
(``FrameDecoder``, ``parse_replay``). The input table's codec is
``server.replay.inputs``; re-simulation is ``server.replay.resim``.

Errors form one tree under ``ReplayError``, split as h11 splits its local
and remote protocol errors:

- ``ReplayUsageError``: *our* misuse of this package (records encoded out of
  order, a seek outside the replay). A bug in the caller, whatever the file.
- ``BadReplay``: *the file* cannot be replayed here; expected at run time (a
  killed server, a copied or damaged file) and reported in one line:
  ``NotAReplay``, ``UnsupportedFormat`` (a newer format), ``TruncatedReplay``
  (ends before its header), ``CorruptReplay`` (a bad frame or record, or one
  that does not fit the re-simulation), ``UnknownRuleset`` (a ruleset or
  version this build lacks: like a newer format, the file may be sound, but
  it is the input that asks for what we do not have, not the caller that
  erred) and ``NoSuchReplay`` (a name that is no replay of a library).

Each carries its fields and formats them in ``__str__``; all of them pickle
(``verify`` sends them back from worker processes).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt
from attrs import define, field, frozen

from game.rules import InputBatch
from game.schema import RulesetSpec
from game.world import World
from server.protocol.rowset import array_from, bitmask, from_bitmask
from server.replay.inputs import InputTrack, batch_arrays, encode_inputs, input_dtype

#: The first 8 bytes of every replay.
MAGIC = b"TICKRPLY"
#: The format version this code writes and the newest it reads (2: the input table records each player's lag).
FORMAT_VERSION = 2
#: ``MAGIC`` then the format version (u32 LE).
PREAMBLE = struct.Struct("<8sI")
#: Before each payload: its length and its CRC-32, both u32 LE.
FRAME_HEAD = struct.Struct("<II")
#: Largest payload a reader accepts; a larger declared length is corruption.
MAX_FRAME = 1 << 28
#: Largest keyframe body once inflated, bytes: a larger one is corrupt (a zlib bomb), never inflated whole.
MAX_KEYFRAME_BODY = 1 << 27
#: Largest world a keyframe may hold, rows (``capacity``): over 3x the biggest world the rulesets' options allow.
MAX_ROWS = 1 << 22
#: Player ids are in ``[0, MAX_PLAYER]``: the input table holds them as int32.
MAX_PLAYER = (1 << 31) - 1
_U32 = (1 << 32) - 1

#: Record kinds: the first element of every payload (a msgpack array).
HEADER, TICK, CHECKPOINT, KEYFRAME, END = 0, 1, 2, 3, 4

#: Default record periods, in ticks.
CHECKPOINT_EVERY = 30
KEYFRAME_EVERY = 300

_UNPACK_LIMITS: dict[str, int] = {
    "max_str_len": 1 << 20, "max_bin_len": MAX_FRAME, "max_array_len": 1 << 24, "max_map_len": 1 << 16, "max_ext_len": 0,
}

Array = npt.NDArray[Any]


# -- errors --------------------------------------------------------------------


class ReplayError(Exception):
    """The root of the replay package's errors. ``str()`` is one line."""


class ReplayUsageError(ReplayError):
    """Our own misuse, not a property of any file: records encoded out of order, a seek outside the replay."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class BadReplay(ReplayError):
    """A replay this build cannot replay: not one, damaged, or asking for what this build lacks."""


class NotAReplay(BadReplay):
    """The data does not start with ``MAGIC``."""

    def __init__(self, reason: str = "not a replay file (wrong magic bytes)") -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class UnsupportedFormat(BadReplay):
    """A format version newer than this reader (or 0)."""

    def __init__(self, version: int, supported: int = FORMAT_VERSION) -> None:
        super().__init__(version, supported)
        self.version = version
        self.supported = supported

    def __str__(self) -> str:
        return f"replay format version {self.version} is not supported; this reader reads versions 1 to {self.supported}"


class TruncatedReplay(BadReplay):
    """The data ends before the header is complete: nothing to replay."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size

    def __str__(self) -> str:
        return f"truncated replay: {self.size} bytes end before the header is complete"


class CorruptReplay(BadReplay):
    """A frame whose CRC does not match, an impossible length, or a record that makes no sense.

    ``offset`` is the file offset of the frame, when known.
    """

    def __init__(self, offset: int | None, reason: str) -> None:
        super().__init__(offset, reason)
        self.offset = offset
        self.reason = reason

    def __str__(self) -> str:
        return f"corrupt replay{'' if self.offset is None else f' at byte {self.offset}'}: {self.reason}"


class UnknownRuleset(BadReplay):
    """The replay names a ruleset (or a version of it) this build does not have."""

    def __init__(self, name: str, version: int, reason: str) -> None:
        super().__init__(name, version, reason)
        self.name = name
        self.version = version
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot replay ruleset {self.name!r} version {self.version}: {self.reason}"


class NoSuchReplay(BadReplay):
    """A name that is not a replay of the library asked (``server.replay.listing.ReplayLibrary``)."""

    def __init__(self, name: str | None, reason: str) -> None:
        super().__init__(name, reason)
        self.name = name
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


# -- time ------------------------------------------------------------------------


def utc_iso(t: float) -> str:
    """A UNIX time as the format writes times: UTC, ISO 8601 with milliseconds (``2025-01-31T12:00:00.123Z``)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# -- frames --------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    """One frame: length, CRC-32 and ``payload``."""
    return FRAME_HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def pack_record(record: list[Any]) -> bytes:
    """A record (a list whose first element is its kind) as one frame."""
    data: bytes = msgpack.packb(record, use_bin_type=True)
    return frame(data)


def preamble(version: int = FORMAT_VERSION) -> bytes:
    return PREAMBLE.pack(MAGIC, version)


@frozen
class TornTail:
    """A last frame cut short (the writer was killed mid-write): where, and how much is there."""

    offset: int
    present: int
    declared: int | None

    def __str__(self) -> str:
        want = f"a frame of {self.declared} bytes" if self.declared is not None else "a frame header"
        return f"truncated at byte {self.offset}: only {self.present} bytes of {want}"


class FrameDecoder:
    """Splits bytes into frames, sans I/O: ``feed()`` data, iterate ``frames()``, then ``eof()``.

    Checks the preamble, every CRC and every length. ``eof()`` returns the
    torn last frame, if any (a replay whose writer was killed).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # read position in _buf
        self._base = 0  # file offset of _buf[0]
        self.version: int | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._pos > 1 << 16:
            del self._buf[: self._pos]
            self._base += self._pos
            self._pos = 0
        self._buf += data

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """The complete frames fed so far: (file offset of the frame, payload).

        Raises:
            NotAReplay, UnsupportedFormat, CorruptReplay.
        """
        buf = self._buf
        if self.version is None:
            if len(buf) < PREAMBLE.size:
                if not MAGIC.startswith(bytes(buf[: len(MAGIC)])):
                    raise NotAReplay()
                return
            magic, version = PREAMBLE.unpack_from(buf, 0)
            if magic != MAGIC:
                raise NotAReplay()
            if not 1 <= version <= FORMAT_VERSION:
                raise UnsupportedFormat(version)
            self.version = version
            self._pos = PREAMBLE.size
        head = FRAME_HEAD.size
        while len(buf) - self._pos >= head:
            length, crc = FRAME_HEAD.unpack_from(buf, self._pos)
            at = self._base + self._pos
            if length > MAX_FRAME:
                raise CorruptReplay(at, f"frame length {length} is over the limit of {MAX_FRAME}")
            start = self._pos + head
            if len(buf) - start < length:
                return
            payload = bytes(buf[start : start + length])
            if zlib.crc32(payload) != crc:
                raise CorruptReplay(at, "frame CRC mismatch")
            self._pos = start + length
            yield at, payload

    def eof(self) -> TornTail | None:
        """Call at the end of the data: the incomplete last frame, or None."""
        rest = len(self._buf) - self._pos
        if self.version is None:
            if not self._buf:
                raise NotAReplay("empty file, not a replay")
            raise TruncatedReplay(len(self._buf)) if MAGIC.startswith(bytes(self._buf[:8])) else NotAReplay()
        if rest == 0:
            return None
        declared = FRAME_HEAD.unpack_from(self._buf, self._pos)[0] if rest >= FRAME_HEAD.size else None
        present = rest - FRAME_HEAD.size if declared is not None else rest
        return TornTail(self._base + self._pos, present, declared)


# -- helpers -------------------------------------------------------------------


def _int_in(v: Any, hi: int, what: str) -> int:
    """``v`` if it is an integer in ``[0, hi]``, else ValueError."""
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
        raise ValueError(f"{what} {v!r} is not an integer in [0, {hi}]")
    return v


def _inflate(blob: bytes, limit: int, what: str) -> bytes:
    """The zlib stream ``blob`` inflated, if that is at most ``limit`` bytes; ValueError otherwise (never more memory)."""
    d = zlib.decompressobj()
    out = d.decompress(blob, limit + 1)
    if len(out) > limit:
        raise ValueError(f"{what}: inflates to over {limit} bytes")
    if not d.eof:
        raise ValueError(f"{what}: the zlib stream is cut short")
    return out


# -- records ---------------------------------------------------------------------


@frozen
class Header:
    """What a replay is of: everything needed to recreate the match's world and read the records.

    Attributes:
        match: match id.
        ruleset, ruleset_version: the rules (``game.rules.get_ruleset``) and their version.
        seed, options: the world's seed and resolved ruleset options.
        tick_rate: ticks per second of the recorded match.
        start_time: UTC start, ISO 8601 (``2025-01-31T12:00:00.123Z``).
        start_tick: the world's tick when recording began (records start at ``start_tick + 1``).
        inputs: the input fields ``(name, lo, hi)``, in order.
        columns: every world column ``(name, state dtype, wire dtype or None)``, in order.
        checkpoint_every, keyframe_every: the record periods, in ticks.
        extra: any other header keys (kept, not interpreted).
        lag_max: the largest lag the match recorded (ticks); when given (format 2), the input
            table has one more column after the fields: each player's lag. None: no lag column
            (a format 1 file): every lag is 0.
    """

    match: str
    ruleset: str
    ruleset_version: int
    seed: int
    options: dict[str, int]
    tick_rate: int
    start_time: str
    start_tick: int = 0
    inputs: tuple[tuple[str, int, int], ...] = ()
    columns: tuple[tuple[str, str, str | None], ...] = ()
    checkpoint_every: int = CHECKPOINT_EVERY
    keyframe_every: int = KEYFRAME_EVERY
    extra: dict[str, Any] = field(factory=dict)
    lag_max: int | None = None

    @classmethod
    def for_spec(cls, spec: RulesetSpec, *, match: str, seed: int, options: dict[str, int], tick_rate: int,
                 start_time: str, start_tick: int = 0, checkpoint_every: int = CHECKPOINT_EVERY,
                 keyframe_every: int = KEYFRAME_EVERY, extra: dict[str, Any] | None = None,
                 lag_max: int | None = None) -> Header:
        return cls(match, spec.name, spec.version, seed, dict(options), tick_rate, start_time, start_tick,
                   tuple((f.name, f.lo, f.hi) for f in spec.inputs),
                   tuple((c.name, c.dtype, c.wire) for c in spec.columns),
                   checkpoint_every, keyframe_every, dict(extra or {}), lag_max)

    @property
    def input_dtypes(self) -> tuple[np.dtype[Any], ...]:
        """The storage dtype of each column of the input table: the fields', then the lag's."""
        lag = () if self.lag_max is None else (input_dtype(0, self.lag_max),)
        return tuple(input_dtype(lo, hi) for _, lo, hi in self.inputs) + lag

    def new_track(self) -> InputTrack:
        """An empty input table of this replay's shape (with its lag column if it has one)."""
        return InputTrack(len(self.inputs) + (self.lag_max is not None), self.lag_max is not None)

    def to_record(self) -> list[Any]:
        body = {
            **self.extra,
            "match": self.match, "ruleset": self.ruleset, "ruleset_version": self.ruleset_version,
            "seed": self.seed, "options": self.options, "tick_rate": self.tick_rate,
            "start_time": self.start_time, "start_tick": self.start_tick,
            "inputs": [list(f) for f in self.inputs], "columns": [list(c) for c in self.columns],
            "checkpoint_every": self.checkpoint_every, "keyframe_every": self.keyframe_every,
        }
        if self.lag_max is not None:
            body["lag_max"] = self.lag_max
        return [HEADER, body]

    @classmethod
    def from_record(cls, rec: list[Any]) -> Header:
        if len(rec) != 2 or not isinstance(rec[1], dict):
            raise ValueError("header: expected [0, map]")
        b = dict(rec[1])
        try:
            h = cls(
                str(b.pop("match")), str(b.pop("ruleset")), int(b.pop("ruleset_version")), int(b.pop("seed")),
                {str(k): int(v) for k, v in b.pop("options").items()}, int(b.pop("tick_rate")),
                str(b.pop("start_time")), int(b.pop("start_tick", 0)),
                tuple((str(n), int(lo), int(hi)) for n, lo, hi in b.pop("inputs")),
                tuple((str(n), str(d), None if w is None else str(w)) for n, d, w in b.pop("columns")),
                int(b.pop("checkpoint_every", CHECKPOINT_EVERY)), int(b.pop("keyframe_every", KEYFRAME_EVERY)), b,
                None if b.get("lag_max") is None else int(b.pop("lag_max")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"header: missing or malformed field ({exc})") from None
        if h.tick_rate <= 0 or h.start_tick < 0:
            raise ValueError("header: bad tick rate or start tick")
        if h.lag_max is not None and not 0 <= h.lag_max <= 32767:
            raise ValueError(f"header: lag_max {h.lag_max} is outside [0, 32767]")
        return h


@frozen
class TickRecord:
    """What was applied before tick ``tick``'s step: leaves, joins (player, name), the input change."""

    tick: int
    leaves: tuple[int, ...] = ()
    joins: tuple[tuple[int, str], ...] = ()
    inputs: Any = None

    def to_record(self) -> list[Any]:
        rec: list[Any] = [TICK, self.tick, list(self.leaves), [list(j) for j in self.joins], self.inputs]
        while len(rec) > 2 and not rec[-1]:
            rec.pop()
        return rec

    @classmethod
    def from_record(cls, rec: list[Any]) -> TickRecord:
        if not 2 <= len(rec) <= 5 or not isinstance(rec[1], int):
            raise ValueError("tick: expected [1, tick, leaves?, joins?, inputs?]")
        leaves = rec[2] if len(rec) > 2 else []
        joins = rec[3] if len(rec) > 3 else []
        if not isinstance(leaves, list):
            raise ValueError("tick: leaves must be player ids")  # noqa: TRY004 - bad data, not a bad call
        if not isinstance(joins, list) or not all(isinstance(j, list) and len(j) == 2 and isinstance(j[1], str) for j in joins):
            raise ValueError("tick: joins must be [player, name] pairs")
        return cls(rec[1], tuple(_int_in(p, MAX_PLAYER, "tick: leaving player id") for p in leaves),
                   tuple((_int_in(p, MAX_PLAYER, "tick: joining player id"), n) for p, n in joins), rec[4] if len(rec) > 4 else None)


@frozen
class Checkpoint:
    """``state_hash`` (32 hex digits) and the replicated-state checksum (PROTOCOL.md) after ``tick``."""

    tick: int
    hash: str
    checksum: int

    def to_record(self) -> list[Any]:
        return [CHECKPOINT, self.tick, bytes.fromhex(self.hash), self.checksum]

    @classmethod
    def from_record(cls, rec: list[Any]) -> Checkpoint:
        if len(rec) != 4 or not isinstance(rec[1], int) or not isinstance(rec[2], bytes) or not isinstance(rec[3], int):
            raise ValueError("checkpoint: expected [2, tick, hash, checksum]")
        return cls(rec[1], rec[2].hex(), rec[3])


@frozen(eq=False)
class KeyframeData:
    """The full world after ``tick``, plus the input table and the players in the match.

    Captured on the tick (array copies only); ``to_record()`` does the
    encoding and compression and can run on another thread.

    Attributes:
        ids: uint32 (high,), alive: bool (high,), cols: one array (high,) per
            column in the spec's order, state dtypes: rows [0, high) exactly
            as the world holds them, dead rows included.
        players: (player, name, entity or None) of everyone in the match.
    """

    tick: int
    capacity: int
    next_id: int
    ids: npt.NDArray[np.uint32]
    alive: npt.NDArray[np.bool_]
    cols: tuple[Array, ...]
    inputs: InputTrack
    players: tuple[tuple[int, str, int | None], ...]

    @classmethod
    def capture(cls, world: World, track: InputTrack, players: Sequence[tuple[int, str, int | None]]) -> KeyframeData:
        h = world.high
        return cls(world.tick, world.capacity, world.next_id, world.ids[:h].copy(), world.alive[:h].copy(),
                   tuple(world.cols[c.name][:h].copy() for c in world.spec.columns), track.copy(), tuple(players))

    def to_record(self) -> list[Any]:
        body = {
            "tick": self.tick, "capacity": self.capacity, "next_id": self.next_id, "high": len(self.ids),
            "ids": self.ids.astype("<u4").tobytes(), "alive": bitmask(self.alive),
            "cols": [c.astype(c.dtype.newbyteorder("<")).tobytes() for c in self.cols],
            "inputs": [self.inputs.players.astype("<i4").tobytes(), self.inputs.values.astype("<i2").tobytes()],
            "players": [list(p) for p in self.players],
        }
        return [KEYFRAME, self.tick, zlib.compress(msgpack.packb(body, use_bin_type=True), 6)]

    @classmethod
    def decode(cls, header: Header, tick: int, blob: bytes) -> KeyframeData:
        """ValueError when the body is malformed."""
        try:
            body = _inflate(blob, MAX_KEYFRAME_BODY, "body")
            try:
                b = msgpack.unpackb(body, raw=False, **_UNPACK_LIMITS)
            except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types for bad input
                raise ValueError(f"the body is not one msgpack value ({type(exc).__name__})") from None
            high, capacity = int(b["high"]), int(b["capacity"])
            if not 0 <= high <= capacity <= MAX_ROWS:
                raise ValueError(f"high {high} and capacity {capacity} must satisfy 0 <= high <= capacity <= {MAX_ROWS}")
            ids = array_from(b["ids"], "<u4", high, "ids").astype(np.uint32)
            if high > 1 and np.any(ids[1:] <= ids[:-1]):
                raise ValueError("ids: the rows' entity ids must strictly ascend")
            alive = from_bitmask(b["alive"], high, "alive")
            if len(b["cols"]) != len(header.columns):
                raise ValueError("wrong number of columns")
            cols = tuple(array_from(raw, np.dtype(d).newbyteorder("<"), high, f"column {n}").astype(d)
                         for raw, (n, d, _) in zip(b["cols"], header.columns))
            track = header.new_track()
            nf = track.fields
            track.players = array_from(b["inputs"][0], "<i4", None, "input players").astype(np.int32)
            track.values = array_from(b["inputs"][1], "<i2", len(track.players) * nf, "inputs").astype(np.int16).reshape(-1, nf)
            players = tuple((_int_in(p, MAX_PLAYER, "player id"), str(n), None if e is None else _int_in(e, _U32, "entity id"))
                            for p, n, e in b["players"])
            next_id = _int_in(b["next_id"], _U32 + 1, "next_id")
            if int(b["tick"]) != tick:
                raise ValueError(f"it says tick {b['tick']}")
            return cls(tick, capacity, next_id, ids, alive, cols, track, players)
        except (KeyError, TypeError, ValueError, zlib.error) as exc:
            raise ValueError(f"keyframe at tick {tick}: {type(exc).__name__ if isinstance(exc, KeyError) else ''}{exc}") from None

    def world(self, spec: RulesetSpec, seed: int) -> World:
        """A world equal to the captured one, slot for slot."""
        w = World(spec, seed=seed, capacity=self.capacity)
        h = len(self.ids)
        w.tick, w.next_id, w.high = self.tick, self.next_id, h
        w.ids[:h], w.alive[:h] = self.ids, self.alive
        for c, values in zip(spec.columns, self.cols):
            w.cols[c.name][:h] = values
        return w


@frozen
class Keyframe:
    """A keyframe as read: its tick and the compressed body, decoded on demand."""

    tick: int
    offset: int
    blob: bytes

    def decode(self, header: Header) -> KeyframeData:
        return KeyframeData.decode(header, self.tick, self.blob)


@frozen
class EndRecord:
    """How the match ended: last tick, final ``state_hash`` and checksum, scores per player."""

    tick: int
    hash: str
    checksum: int
    scores: dict[int, int]
    end_time: str = ""
    extra: dict[str, Any] = field(factory=dict)

    def to_record(self) -> list[Any]:
        return [END, {**self.extra, "tick": self.tick, "hash": bytes.fromhex(self.hash), "checksum": self.checksum,
                      "scores": [[p, s] for p, s in sorted(self.scores.items())], "end_time": self.end_time}]

    @classmethod
    def from_record(cls, rec: list[Any]) -> EndRecord:
        if len(rec) != 2 or not isinstance(rec[1], dict):
            raise ValueError("end: expected [4, map]")
        b = dict(rec[1])
        try:
            return cls(int(b.pop("tick")), bytes(b.pop("hash")).hex(), int(b.pop("checksum")),
                       {int(p): int(s) for p, s in b.pop("scores")}, str(b.pop("end_time", "")), b)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"end: missing or malformed field ({exc})") from None


# -- the writer ------------------------------------------------------------------


class ReplayEncoder:
    """Turns a match's ticks into replay bytes (sans I/O). Mirror image of ``parse_replay``.

    Keeps its own ``InputTrack`` so each tick record holds only what changed.
    """

    def __init__(self, header: Header) -> None:
        self.header = header
        self.dtypes = header.input_dtypes
        self.track = header.new_track()
        self.tick = header.start_tick

    def start(self) -> bytes:
        """The preamble and the header frame."""
        return preamble() + pack_record(self.header.to_record())

    def step(self, tick: int, leaves: Sequence[int], joins: Sequence[tuple[int, str]], inputs: InputBatch) -> bytes:
        """The record of tick ``tick``: what was applied before its step."""
        if tick != self.tick + 1:
            raise ReplayUsageError(f"tick {tick} recorded after tick {self.tick}")
        self.tick = tick
        track = self.track
        track.membership(leaves, joins)
        change = encode_inputs(self.dtypes, track, inputs)
        if change is not None:
            players, values = batch_arrays(inputs, track.fields, track.lagged)
            track.players, track.values = players.copy(), values.copy()
        # TickRecord.to_record(), inlined: this runs on every tick.
        rec: list[Any] = [TICK, tick, [int(p) for p in leaves], [[int(p), n] for p, n in joins], change]
        while len(rec) > 2 and not rec[-1]:
            rec.pop()
        return pack_record(rec)

    @staticmethod
    def checkpoint(tick: int, hash_hex: str, checksum: int) -> bytes:
        return pack_record(Checkpoint(tick, hash_hex, checksum).to_record())

    @staticmethod
    def keyframe(data: KeyframeData) -> bytes:
        return pack_record(data.to_record())

    @staticmethod
    def end(record: EndRecord) -> bytes:
        return pack_record(record.to_record())


# -- the reader ------------------------------------------------------------------


@define
class Replay:
    """A parsed replay.

    Attributes:
        ticks: one record per tick, ``start_tick + 1`` onwards, contiguous.
        torn: the incomplete last frame, if the writer was killed mid-write.
        size: bytes parsed.
        version: the file's format version (from its preamble).
    """

    header: Header
    ticks: list[TickRecord] = field(factory=list)
    checkpoints: list[Checkpoint] = field(factory=list)
    keyframes: list[Keyframe] = field(factory=list)
    end: EndRecord | None = None
    torn: TornTail | None = None
    size: int = 0
    version: int = FORMAT_VERSION

    @property
    def first_tick(self) -> int:
        return self.header.start_tick

    @property
    def last_tick(self) -> int:
        return self.header.start_tick + len(self.ticks)

    @property
    def complete(self) -> bool:
        return self.end is not None and self.torn is None

    def warnings(self) -> list[str]:
        out = []
        if self.torn is not None:
            out.append(f"{self.torn}; the replay stops at tick {self.last_tick}")
        if self.end is None:
            out.append(f"no end record: the recording stopped at tick {self.last_tick} (the server was killed?)")
        return out

    def players(self) -> dict[int, str]:
        """Everyone who was ever in the match: player id -> name.

        The players who joined, and for a recording that starts mid-match
        those of its start keyframe (none if that keyframe is corrupt:
        re-simulation reports it).
        """
        out: dict[int, str] = {}
        start = self.keyframe_at_or_before(self.first_tick) if self.first_tick else None
        if start is not None:
            try:
                out.update((p, n) for p, n, _ in start.decode(self.header).players)
            except ValueError:
                pass
        out.update((p, n) for t in self.ticks for p, n in t.joins)
        return out

    def player_ticks(self) -> int:
        """Ticks spent in the match by the players who joined during the recording, summed (for sizes per player-minute)."""
        total = 0
        present: dict[int, int] = {}
        for t in self.ticks:
            for p in t.leaves:
                start = present.pop(p, None)
                if start is not None:
                    total += t.tick - start
            for p, _ in t.joins:
                present[p] = t.tick
        return total + sum(self.last_tick - s for s in present.values())

    def keyframe_at_or_before(self, tick: int) -> Keyframe | None:
        best = None
        for k in self.keyframes:
            if k.tick <= tick:
                best = k
        return best


def _unpack(at: int, payload: bytes) -> list[Any]:
    try:
        rec = msgpack.unpackb(payload, raw=False, strict_map_key=False, **_UNPACK_LIMITS)
    except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types for bad input
        raise CorruptReplay(at, f"not msgpack ({type(exc).__name__})") from None
    if not isinstance(rec, list) or not rec or not isinstance(rec[0], int):
        raise CorruptReplay(at, "a record must be an array starting with its kind")
    return rec


def header_of(at: int, payload: bytes) -> Header:
    """The header from the first frame's payload. CorruptReplay when it is not one."""
    rec = _unpack(at, payload)
    if rec[0] != HEADER:
        raise CorruptReplay(at, "the first record is not a header")
    try:
        return Header.from_record(rec)
    except ValueError as exc:
        raise CorruptReplay(at, str(exc)) from None


def parse_replay(data: bytes | bytearray | memoryview) -> Replay:
    """Parse a whole replay. A torn last frame is not an error (see ``Replay.torn``).

    Raises:
        NotAReplay, UnsupportedFormat, TruncatedReplay, CorruptReplay.
    """
    dec = FrameDecoder()
    dec.feed(data)
    frames = dec.frames()
    first = next(frames, None)
    if first is None:
        dec.eof()  # raises TruncatedReplay or NotAReplay before a complete header
        raise TruncatedReplay(len(data))
    assert dec.version is not None  # a frame came after the preamble
    replay = Replay(header_of(*first), version=dec.version)
    expected = replay.header.start_tick + 1
    for at, payload in frames:
        rec = _unpack(at, payload)
        kind = rec[0]
        if replay.end is not None:
            raise CorruptReplay(at, "a record after the end record")
        try:
            if kind == TICK:
                t = TickRecord.from_record(rec)
                if t.tick != expected:
                    raise ValueError(f"tick {t.tick} where tick {expected} was due")
                replay.ticks.append(t)
                expected += 1
            elif kind == CHECKPOINT:
                c = Checkpoint.from_record(rec)
                if c.tick != expected - 1:
                    raise ValueError(f"checkpoint of tick {c.tick} after tick {expected - 1}")
                replay.checkpoints.append(c)
            elif kind == KEYFRAME:
                if len(rec) != 3 or not isinstance(rec[1], int) or not isinstance(rec[2], bytes):
                    raise ValueError("keyframe: expected [3, tick, bin]")
                if rec[1] != expected - 1:
                    raise ValueError(f"keyframe of tick {rec[1]} after tick {expected - 1}")
                replay.keyframes.append(Keyframe(rec[1], at, rec[2]))
            elif kind == END:
                e = EndRecord.from_record(rec)
                if e.tick != expected - 1:
                    raise ValueError(f"end record of tick {e.tick} after tick {expected - 1}")
                replay.end = e
            elif kind == HEADER:
                raise ValueError("a second header")
            # Unknown kinds are skipped: later minor versions may add some.
        except ValueError as exc:
            raise CorruptReplay(at, str(exc)) from None
    replay.torn = dec.eof()
    replay.size = len(data)
    return replay

"""The replay file format, sans I/O: frames, records, readers and writers, re-simulation.

A replay is ``MAGIC``, the format version, then a sequence of frames, each
``u32 length | u32 crc32(payload) | payload`` with a msgpack payload: a
header, one record per tick (the joins, leaves and *changes* of the input
table applied before that tick's step), state-hash checkpoints, full-world
keyframes for seeking, and an end record. ``REPLAY.md`` is the normative
description; this module is its reference implementation.

Nothing here touches a file, a clock or a thread: the writer side turns
objects into bytes (``ReplayEncoder``; ``KeyframeData`` is captured on the
tick and encoded later, off it), the reader side turns bytes into objects
(``FrameDecoder``, ``parse_replay``), and ``Replayer`` re-simulates a parsed
replay with its ruleset, seeking by keyframes.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt
from attrs import define, field, frozen

from game.errors import GameError
from game.rules import Event, InputBatch, Ruleset
from game.schema import RulesetSpec
from game.world import EntityId, PlayerId, World, state_hash

#: The first 8 bytes of every replay.
MAGIC = b"TICKRPLY"
#: The format version this code writes and the newest it reads.
FORMAT_VERSION = 1
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
#: Forms of a tick record's input change.
INPUTS_DELTA, INPUTS_FULL = 0, 1
#: Row-set formats of an input delta (as in PROTOCOL.md's ``rows``).
ROWS_MASK, ROWS_U16, ROWS_U32 = 0, 1, 2

#: Default record periods, in ticks.
CHECKPOINT_EVERY = 30
KEYFRAME_EVERY = 300

_UNPACK_LIMITS: dict[str, int] = {
    "max_str_len": 1 << 20, "max_bin_len": MAX_FRAME, "max_array_len": 1 << 24, "max_map_len": 1 << 16, "max_ext_len": 0,
}

Array = npt.NDArray[Any]


# -- errors --------------------------------------------------------------------


class ReplayError(Exception):
    """The root of replay errors: a file this code cannot replay. ``str()`` is one line."""


class NotAReplay(ReplayError):
    """The data does not start with ``MAGIC``."""

    def __init__(self, reason: str = "not a replay file (wrong magic bytes)") -> None:
        super().__init__(reason)


class UnsupportedFormat(ReplayError):
    """A format version newer than this reader (or 0)."""

    def __init__(self, version: int, supported: int = FORMAT_VERSION) -> None:
        super().__init__(f"replay format version {version} is not supported; this reader reads versions 1 to {supported}")
        self.version = version
        self.supported = supported


class TruncatedReplay(ReplayError):
    """The data ends before the header is complete: nothing to replay."""

    def __init__(self, size: int) -> None:
        super().__init__(f"truncated replay: {size} bytes end before the header is complete")
        self.size = size


class CorruptReplay(ReplayError):
    """A frame whose CRC does not match, an impossible length, or a record that makes no sense.

    ``offset`` is the file offset of the frame, when known.
    """

    def __init__(self, offset: int | None, reason: str) -> None:
        super().__init__(f"corrupt replay{'' if offset is None else f' at byte {offset}'}: {reason}")
        self.offset = offset
        self.reason = reason


class UnknownRuleset(ReplayError):
    """The replay names a ruleset (or a version of it) this build does not have."""

    def __init__(self, name: str, version: int, reason: str) -> None:
        super().__init__(f"cannot replay ruleset {name!r} version {version}: {reason}")
        self.name = name
        self.version = version


class ReplayUsageError(ReplayError):
    """Our own misuse: records written out of order, a seek outside the replay."""


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


# -- input tables ----------------------------------------------------------------


def input_dtype(lo: int, hi: int) -> np.dtype[Any]:
    """How an input field's values are stored: int8, uint8 or int16 LE, the first that holds [lo, hi]."""
    if -128 <= lo and hi <= 127:
        return np.dtype("i1")
    if 0 <= lo and hi <= 255:
        return np.dtype("u1")
    return np.dtype("<i2")


def _packbits(mask: npt.NDArray[np.bool_]) -> bytes:
    return np.packbits(mask, bitorder="little").tobytes()


def _unpackbits(data: Any, count: int, what: str) -> npt.NDArray[np.bool_]:
    if not isinstance(data, bytes) or len(data) != (count + 7) // 8:
        raise ValueError(f"{what}: expected a bitmask of {(count + 7) // 8} bytes")
    return np.unpackbits(np.frombuffer(data, np.uint8), count=count, bitorder="little").astype(bool)


def _array(data: Any, dtype: str | np.dtype[Any], count: int | None, what: str) -> Array:
    dt = np.dtype(dtype)
    if not isinstance(data, bytes) or len(data) % dt.itemsize or (count is not None and len(data) != count * dt.itemsize):
        want = f"a whole number of {dt} values" if count is None else f"{count} value{'' if count == 1 else 's'} of {dt}"
        raise ValueError(f"{what}: expected {want}")
    return np.frombuffer(data, dt)


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


@define
class InputTrack:
    """The input table as a replay sees it: int32 (P,) ascending player ids, int16 (P, F) values.

    The recorder and every reader keep one and move it tick by tick the same
    way: leaves remove rows, joins add all-zero rows, then the tick's input
    change sets values (or replaces the whole table).
    """

    fields: int
    players: npt.NDArray[np.int32] = field(init=False)
    values: npt.NDArray[np.int16] = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.players = np.zeros(0, np.int32)
        self.values = np.zeros((0, self.fields), np.int16)

    def membership(self, leaves: Sequence[int], joins: Sequence[tuple[int, str]]) -> None:
        if leaves:
            keep = ~np.isin(self.players, np.asarray(leaves, np.int32))
            self.players, self.values = self.players[keep], self.values[keep]
        if joins:
            new = np.asarray([p for p, _ in joins], np.int32)
            players = np.concatenate([self.players, new])
            order = np.argsort(players, kind="stable")
            values = np.concatenate([self.values, np.zeros((len(new), self.fields), np.int16)])
            self.players, self.values = players[order], values[order]

    def batch(self) -> InputBatch:
        return InputBatch(self.players.copy(), self.values.copy())

    def copy(self) -> InputTrack:
        out = InputTrack(self.fields)
        out.players, out.values = self.players.copy(), self.values.copy()
        return out


def batch_arrays(batch: InputBatch, fields: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int16]]:
    """A batch's players int32 (P,) and values int16 (P, fields), whatever shape an empty batch has."""
    players = batch.players.astype(np.int32, copy=False)
    values = batch.values.astype(np.int16, copy=False)
    if values.shape != (len(players), fields):
        values = values.reshape(len(players), fields)
    return players, values


def encode_inputs(dtypes: Sequence[np.dtype[Any]], track: InputTrack, batch: InputBatch) -> list[Any] | None:
    """The change taking ``track`` (after this tick's membership) to ``batch``; None when equal.

    ``[INPUTS_DELTA, [rows format, rows], [[field, selection or nil, values], ...]]``
    when the players are the same, ``[INPUTS_FULL, players, values]`` otherwise.
    """
    players, values = batch_arrays(batch, len(dtypes))
    # Byte comparisons: the common "nothing changed" answer costs well under a microsecond.
    if players.tobytes() != track.players.tobytes():
        return [INPUTS_FULL, players.astype("<i4").tobytes(), values.astype("<i2").tobytes()]
    if values.tobytes() == track.values.tobytes():
        return None
    changed = values != track.values
    row_changed = changed.any(axis=1)
    rows = np.flatnonzero(row_changed)
    p, r = len(players), len(rows)
    idx_size = 2 if p <= 0x10000 else 4
    if (p + 7) // 8 <= idx_size * r:
        row_field = [ROWS_MASK, _packbits(row_changed)]
    elif idx_size == 2:
        row_field = [ROWS_U16, rows.astype("<u2").tobytes()]
    else:
        row_field = [ROWS_U32, rows.astype("<u4").tobytes()]
    sub = changed[rows]
    counts = np.count_nonzero(sub, axis=0).tolist()
    picked = values[rows]
    entries: list[Any] = []
    for f, n in enumerate(counts):  # a handful of fields: the loop is per field, not per player
        if n == r:
            entries.append([f, None, picked[:, f].astype(dtypes[f]).tobytes()])
        elif n:
            sel = sub[:, f]
            entries.append([f, _packbits(sel), picked[sel, f].astype(dtypes[f]).tobytes()])
    return [INPUTS_DELTA, row_field, entries]


def apply_inputs(dtypes: Sequence[np.dtype[Any]], track: InputTrack, change: Any) -> None:
    """Apply an input change (``encode_inputs``' output, decoded) to ``track``. ValueError when malformed."""
    if change is None:
        return
    if not isinstance(change, list) or not change:
        raise ValueError("inputs: expected an array")
    nf = len(dtypes)
    if change[0] == INPUTS_FULL and len(change) == 3:
        players = _array(change[1], "<i4", None, "inputs players").astype(np.int32)
        values = _array(change[2], "<i2", len(players) * nf, "inputs values").astype(np.int16).reshape(len(players), nf)
        if len(players) > 1 and np.any(np.diff(players) <= 0):
            raise ValueError("inputs: players must ascend")
        track.players, track.values = players, values
        return
    if change[0] != INPUTS_DELTA or len(change) != 3 or not isinstance(change[1], list) or len(change[1]) != 2:
        raise ValueError("inputs: unknown form")
    p = len(track.players)
    fmt, data = change[1]
    if fmt == ROWS_MASK:
        rows = np.flatnonzero(_unpackbits(data, p, "inputs rows"))
    elif fmt in (ROWS_U16, ROWS_U32):
        rows = _array(data, "<u2" if fmt == ROWS_U16 else "<u4", None, "inputs rows").astype(np.intp)
        if len(rows) and (rows.max() >= p or np.any(np.diff(rows) <= 0)):
            raise ValueError("inputs rows: out of range or not ascending")
    else:
        raise ValueError(f"inputs rows: unknown format {fmt!r}")
    values = track.values.copy()
    entries = change[2]
    if not isinstance(entries, list):
        raise ValueError("inputs: expected an array of field entries")  # noqa: TRY004 - bad data, not a bad call
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 3 or not isinstance(entry[0], int) or not 0 <= entry[0] < nf:
            raise ValueError("inputs: bad field entry")
        f, sel, data = entry
        which = rows if sel is None else rows[_unpackbits(sel, len(rows), "inputs selection")]
        values[which, f] = _array(data, dtypes[f], len(which), f"inputs field {f}")
    track.values = values


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

    @classmethod
    def for_spec(cls, spec: RulesetSpec, *, match: str, seed: int, options: dict[str, int], tick_rate: int,
                 start_time: str, start_tick: int = 0, checkpoint_every: int = CHECKPOINT_EVERY,
                 keyframe_every: int = KEYFRAME_EVERY, extra: dict[str, Any] | None = None) -> Header:
        return cls(match, spec.name, spec.version, seed, dict(options), tick_rate, start_time, start_tick,
                   tuple((f.name, f.lo, f.hi) for f in spec.inputs),
                   tuple((c.name, c.dtype, c.wire) for c in spec.columns),
                   checkpoint_every, keyframe_every, dict(extra or {}))

    @property
    def input_dtypes(self) -> tuple[np.dtype[Any], ...]:
        return tuple(input_dtype(lo, hi) for _, lo, hi in self.inputs)

    def to_record(self) -> list[Any]:
        body = {
            **self.extra,
            "match": self.match, "ruleset": self.ruleset, "ruleset_version": self.ruleset_version,
            "seed": self.seed, "options": self.options, "tick_rate": self.tick_rate,
            "start_time": self.start_time, "start_tick": self.start_tick,
            "inputs": [list(f) for f in self.inputs], "columns": [list(c) for c in self.columns],
            "checkpoint_every": self.checkpoint_every, "keyframe_every": self.keyframe_every,
        }
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
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"header: missing or malformed field ({exc})") from None
        if h.tick_rate <= 0 or h.start_tick < 0:
            raise ValueError("header: bad tick rate or start tick")
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
            "ids": self.ids.astype("<u4").tobytes(), "alive": _packbits(self.alive),
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
            high, capacity, nf = int(b["high"]), int(b["capacity"]), len(header.inputs)
            if not 0 <= high <= capacity <= MAX_ROWS:
                raise ValueError(f"high {high} and capacity {capacity} must satisfy 0 <= high <= capacity <= {MAX_ROWS}")
            ids = _array(b["ids"], "<u4", high, "ids").astype(np.uint32)
            if high > 1 and np.any(ids[1:] <= ids[:-1]):
                raise ValueError("ids: the rows' entity ids must strictly ascend")
            alive = _unpackbits(b["alive"], high, "alive")
            if len(b["cols"]) != len(header.columns):
                raise ValueError("wrong number of columns")
            cols = tuple(_array(raw, np.dtype(d).newbyteorder("<"), high, f"column {n}").astype(d)
                         for raw, (n, d, _) in zip(b["cols"], header.columns))
            track = InputTrack(nf)
            track.players = _array(b["inputs"][0], "<i4", None, "input players").astype(np.int32)
            track.values = _array(b["inputs"][1], "<i2", len(track.players) * nf, "inputs").astype(np.int16).reshape(-1, nf)
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
        self.track = InputTrack(len(header.inputs))
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
            players, values = batch_arrays(inputs, track.fields)
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


# -- re-simulation ---------------------------------------------------------------


def check_ruleset(header: Header, ruleset: Ruleset) -> None:
    """UnknownRuleset unless ``ruleset`` is the one (and version, and columns, and inputs) recorded."""
    spec = ruleset.spec
    if spec.name != header.ruleset:
        raise UnknownRuleset(header.ruleset, header.ruleset_version, f"this is ruleset {spec.name!r}")
    if spec.version != header.ruleset_version:
        raise UnknownRuleset(header.ruleset, header.ruleset_version, f"this build has version {spec.version}")
    if tuple((c.name, c.dtype, c.wire) for c in spec.columns) != header.columns or \
            tuple((f.name, f.lo, f.hi) for f in spec.inputs) != header.inputs:
        raise UnknownRuleset(header.ruleset, header.ruleset_version, "its columns or inputs differ from this build's")


class Replayer:
    """Re-simulates a replay: ``step()`` one tick at a time, ``seek()`` anywhere via keyframes.

    Raises ``CorruptReplay`` for a record that does not fit the simulation
    (a join of a player already in, a malformed input change), ``GameError``
    never escapes as such.
    """

    def __init__(self, replay: Replay, ruleset: Ruleset) -> None:
        check_ruleset(replay.header, ruleset)
        self.replay = replay
        self.ruleset = ruleset
        self.header = replay.header
        self.dtypes = replay.header.input_dtypes
        self.world: World
        self.track: InputTrack
        #: Players in the match: id -> (name, entity).
        self.players: dict[int, tuple[str, int | None]]
        self.reset()

    def reset(self) -> None:
        """Back to the start of the replay."""
        h = self.header
        if h.start_tick:
            k = self.replay.keyframe_at_or_before(h.start_tick)
            if k is None or k.tick != h.start_tick:
                raise CorruptReplay(None, f"the recording starts at tick {h.start_tick} without a keyframe there")
            self.restore(k)
            return
        try:
            self.world = self.ruleset.create(h.seed, dict(h.options))
        except GameError as exc:
            raise CorruptReplay(None, f"the ruleset refuses the recorded options: {exc}") from None
        self.track = InputTrack(len(h.inputs))
        self.players = {}

    @property
    def tick(self) -> int:
        return self.world.tick

    @property
    def last_tick(self) -> int:
        return self.replay.last_tick

    def restore(self, keyframe: Keyframe) -> None:
        try:
            data = keyframe.decode(self.header)
        except ValueError as exc:
            raise CorruptReplay(keyframe.offset, str(exc)) from None
        self.world = data.world(self.ruleset.spec, self.header.seed)
        self.track = data.inputs.copy()
        self.players = {p: (n, e) for p, n, e in data.players}

    def step(self) -> tuple[InputBatch, list[Event]]:
        """Simulate the next tick; returns the inputs applied and the tick's events."""
        rec = self.replay.ticks[self.world.tick - self.header.start_tick]
        world, ruleset = self.world, self.ruleset
        try:
            for p in rec.leaves:
                ruleset.leave(world, PlayerId(p))
                self.players.pop(p, None)
            for p, name in rec.joins:
                entity: EntityId = ruleset.join(world, PlayerId(p))
                self.players[p] = (name, int(entity))
            self.track.membership(rec.leaves, rec.joins)
            apply_inputs(self.dtypes, self.track, rec.inputs)
            batch = self.track.batch()
            events = ruleset.step(world, batch)
        except (GameError, ValueError) as exc:
            raise CorruptReplay(None, f"tick {rec.tick}: {exc}") from None
        if world.tick != rec.tick:
            raise CorruptReplay(None, f"the ruleset reached tick {world.tick} where the record says {rec.tick}")
        return batch, events

    def seek(self, tick: int) -> list[Event]:
        """Go to ``tick`` (``first_tick``..``last_tick``): the nearest keyframe at or before it, then step.

        Returns the events of the ticks stepped through (the last one's last).
        """
        if not self.replay.first_tick <= tick <= self.last_tick:
            raise ReplayUsageError(f"tick {tick} is outside the replay ({self.replay.first_tick}..{self.last_tick})")
        k = self.replay.keyframe_at_or_before(tick)
        if tick < self.world.tick or (k is not None and self.world.tick < k.tick):
            if k is None:
                self.reset()
            else:
                self.restore(k)
        events: list[Event] = []
        while self.world.tick < tick:
            events = self.step()[1]
        return events

    def hash(self) -> str:
        return state_hash(self.world)


"""Write ``tests/vectors/deltas.json``: real update frames and the states they must decode to.

Every decoder of the protocol (``server.protocol.delta`` in Python,
``client_web/protocol.js`` in the browser) is tested against this one file:
decoding each frame (with the state of its ``base`` tick from an earlier
frame of the same sequence) must give exactly the expected ids, column bytes
and checksum, or fail the expected way.

Sequences:

- ``drift/*`` and ``arena/*``: what real clients of a real ``Match`` receive
  (the server's own encoder and framing), with acknowledgements that lag by
  one to several ticks (so deltas extrapolate over several steps), joins,
  leaves, respawns, bullets and pellets coming and going, and a long silence
  that forces a keyframe. The expected states are the server's snapshots.
- ``synthetic``: every column dtype, motion axes that reflect and wrap, every
  ``rows`` format and ``cols`` encoding (including forms the encoder never
  picks but a decoder must accept: uint32 row indices, absolute values where
  a difference would do, unsorted ``gone``, keys in another order, unknown
  keys), despawning everything and spawning into the empty state.
- ``synthetic-errors``: deltas a decoder must refuse (``invalid``) and a
  wrong checksum (``checksum``).
- ``*/interest``: filtered views (``"filtered": true``: apply them as
  PROTOCOL.md's *Filtered views* says): a walker whose view gains and loses
  entities, acknowledging one to three ticks late; in the arena, players
  always relevant, pellets eaten and bullets flying in and out of the view.
  The expected states are the views (``server.protocol.interest.reference_state``).

Run ``python -m tests.vectors.make_vectors`` (or this file) after a change to
the protocol or the rulesets; ``tests/protocol/test_vectors.py`` checks that
the committed file is what this script writes.
"""

from __future__ import annotations

import base64
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from game.arena.ruleset import ArenaRuleset
from game.drift import DriftRuleset
from game.schema import Axis
from server.match import Match
from server.protocol.codec import encode_client, encode_update_prefix, finish_update
from server.protocol.delta import (
    ENC_ABS,
    ENC_D16,
    ROWS_MASK,
    ROWS_U16,
    ROWS_U32,
    Snapshot,
    WireColumn,
    WireSchema,
    encode_body,
)
from server.protocol.interest import reference_state
from server.protocol.messages import Ack, Hello, Input

OUT = Path(__file__).resolve().parent / "deltas.json"
#: Player movement under the real rules, for the client's prediction (client_web/predict.js).
MOVEMENT_OUT = Path(__file__).resolve().parent / "movement.json"
FORMAT = 1


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def expect_state(schema: WireSchema, snap: Snapshot) -> dict[str, Any]:
    return {
        "tick": snap.tick,
        "ids": b64(snap.ids.astype("<u4").tobytes()),
        "cols": [b64(np.asarray(c, dtype=wc.dtype).tobytes()) for c, wc in zip(snap.cols, schema.columns)],
        "sum": snap.checksum,
    }


def frame_entry(data: bytes, schema: WireSchema, expect: Snapshot | str, note: str = "") -> dict[str, Any]:
    obj = msgpack.unpackb(data, raw=False)
    entry: dict[str, Any] = {"tick": obj["tick"], "base": obj["base"]}
    if note:
        entry["note"] = note
    entry["data"] = b64(data)
    entry["expect"] = {"error": expect} if isinstance(expect, str) else expect_state(schema, expect)
    return entry


# -- real matches ------------------------------------------------------------------


class Recorder:
    """A match ``Client`` that keeps what it is sent."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.frames.append(data)

    def send_many(self, frames: Sequence[bytes]) -> None:
        for data in frames:
            self.send(data)

    def close(self, code: int, reason: str) -> None:
        pass

    def tell_and_close(self, code: int, reason: str) -> None:
        pass


class FakeConnection:
    """One client of a match, driven through the real session like the server does."""

    def __init__(self, match: Match, name: str, now: float, spectate: bool = False, interest: bool = False) -> None:
        self.match = match
        self.client = Recorder()
        self.session = match.new_session()
        hello = self.session.receive(encode_client(Hello(1, name, spectate, None, interest=interest)), now,
                                     match.tick_count)
        assert isinstance(hello, Hello)
        self.member = match.connect(hello, self.session, self.client, now)
        self.seq = 0
        self.seen = 0
        #: (tick, frame bytes) of every update received, in order.
        self.updates: list[tuple[int, bytes]] = []
        #: The newest tick received, as of each call of ``collect``.
        self.newest: list[int | None] = []

    def deliver(self, data: bytes, now: float) -> None:
        msg = self.session.receive(data, now, self.match.tick_count)
        if msg is not None:
            self.match.on_message(self.member, msg)

    def send_input(self, values: list[int], ack: int | None, now: float) -> None:
        self.seq += 1
        self.deliver(encode_client(Input(self.seq, tuple(values), ack)), now)

    def send_ack(self, tick: int, now: float) -> None:
        self.deliver(encode_client(Ack(tick)), now)

    def collect(self) -> list[int]:
        """Ticks of the updates received since the last call."""
        ticks = []
        for data in self.client.frames[self.seen:]:
            obj = msgpack.unpackb(data, raw=False)
            if obj["t"] == "update":
                self.updates.append((obj["tick"], data))
                ticks.append(obj["tick"])
        self.seen = len(self.client.frames)
        self.newest.append(self.updates[-1][0] if self.updates else None)
        return ticks

    def late(self, steps: int) -> int | None:
        """The newest tick this client held ``steps`` calls of ``collect`` ago (None: none yet): what it
        acknowledges when its acks take that long to arrive."""
        return self.newest[max(0, len(self.newest) - 1 - steps)]

    def disconnect(self, now: float) -> None:
        self.match.disconnect(self.member, self.client, now)


def new_match(ruleset: Any, seed: int, options: dict[str, int]) -> Match:
    counter = iter(range(1, 1_000_000))
    return Match(ruleset, seed=seed, options=options, tick_rate=30, hold_s=0.1,
                 token_factory=lambda: f"token{next(counter)}", perf_counter=lambda: 0.0)


def decoding_wire(spec: Any) -> dict[str, Any]:
    """``welcome.ruleset`` as the decoders read it: without ``player`` (prediction, which
    ``movement.json`` covers), so a change of the movement rule leaves the delta vectors alone."""
    wire: dict[str, Any] = spec.to_wire()
    wire.pop("player", None)
    return wire


def sequence_from(name: str, match: Match, conn: FakeConnection, snaps: dict[int, Snapshot]) -> dict[str, Any]:
    if conn.member.filtered:
        assert match.views is not None
        grid, entity = match.views.grid, conn.member.entity
        frames = [frame_entry(data, match.schema, reference_state(grid, snaps[tick], entity)) for tick, data in conn.updates]
        return {"name": name, "ruleset": decoding_wire(match.spec), "filtered": True, "frames": frames}
    frames = [frame_entry(data, match.schema, snaps[tick]) for tick, data in conn.updates]
    return {"name": name, "ruleset": decoding_wire(match.spec), "frames": frames}


def drift_sequences() -> list[dict[str, Any]]:
    """A drift match: a player acking every tick, a spectator acking late, joins and leaves."""
    match = new_match(DriftRuleset(), seed=3, options={"npcs": 40})
    dt = 1 / 30
    now = 0.0
    alice = FakeConnection(match, "alice", now)
    watcher = FakeConnection(match, "watcher", now, spectate=True)
    snaps: dict[int, Snapshot] = {}
    bob: FakeConnection | None = None
    dirs = [(1, 0), (1, 1), (0, 1), (-1, 1), (0, 0), (-1, -1), (0, -1), (1, -1)]
    for step in range(1, 76):
        now = step * dt
        if step == 5:
            bob = FakeConnection(match, "bob", now)
        if step == 20 and bob is not None:
            bob.disconnect(now)  # held 0.1 s, then removed: a `gone`
        if step == 30:
            FakeConnection(match, "carol", now)
        match.tick(now)
        snaps[match.tick_count] = match.snapshot
        got = alice.collect()
        watcher.collect()
        if got:
            dx, dy = dirs[(step // 7) % len(dirs)]
            alice.send_input([dx, dy], got[-1], now + dt / 2)
        # The spectator acknowledges late: what it had 3 ticks before, every other tick, and not at all for
        # ticks 40..74 (its bases fall out of the server's 32-tick ring: a keyframe on the next grid tick).
        late = watcher.late(3)
        if late is not None and not 40 <= step < 75 and step % 2 == 0:
            watcher.send_ack(late, now + dt / 2)
    return [sequence_from("drift/player", match, alice, snaps), sequence_from("drift/spectator", match, watcher, snaps)]


def interest_sequences() -> list[dict[str, Any]]:
    """Filtered views: a drift walker (acks 1-3 ticks late) and an arena player who shoots and eats."""
    match = new_match(DriftRuleset(), seed=4, options={"npcs": 150, "size": 1200, "view": 220, "view_cell": 100})
    dt = 1 / 30
    walker = FakeConnection(match, "walker", 0.0, interest=True)
    other: FakeConnection | None = None
    snaps: dict[int, Snapshot] = {}
    dirs = [(1, 0), (1, 1), (0, 1), (-1, 0), (-1, -1), (0, -1)]
    for step in range(1, 61):
        now = step * dt
        if step == 10:
            other = FakeConnection(match, "other", now, interest=True)
        if step == 40 and other is not None:
            other.disconnect(now)
        match.tick(now)
        snaps[match.tick_count] = match.snapshot
        walker.collect()
        if other is not None:
            other.collect()
        ack = walker.late(1 + step % 3)
        if ack is not None:
            walker.send_input(list(dirs[(step // 10) % len(dirs)]), ack, now + dt / 2)
    seqs = [sequence_from("drift/interest", match, walker, snaps)]

    match = new_match(ArenaRuleset(), seed=_arena_seed(), options={"npcs": 8, "pellets": 120, "view": 300})
    p1 = FakeConnection(match, "p1", 0.0, interest=True)
    p2 = FakeConnection(match, "p2", 0.0)
    snaps = {}
    for step in range(1, 91):
        now = step * dt
        match.tick(now)
        snaps[match.tick_count] = match.snapshot
        for me, turn in ((p1, 0), (p2, 40)):
            got = me.collect()
            if got:
                a = ((step + turn) * 3) & 0xFF
                me.send_input([1 if (step // 15) % 2 else -1, 1 if (step // 25) % 2 else 0, a, int(step % 4 == 0)],
                              got[-1], now + dt / 2)
    seqs.append(sequence_from("arena/interest", match, p1, snaps))
    return seqs


def _angle(dx: float, dy: float) -> int:
    return round(math.atan2(dy, dx) * 128 / math.pi) & 0xFF


def _arena_seed() -> int:
    """The first seed whose two first players spawn close enough to fight at once."""
    rules = ArenaRuleset()
    for seed in range(1, 200):
        world = rules.create(seed, {"npcs": 10, "pellets": 80})
        a, b = rules.join(world, 1), rules.join(world, 2)
        x, y = world.cols["x"], world.cols["y"]
        sa, sb = world.slots_of(np.array([a, b]))
        if math.hypot(int(x[sa]) - int(x[sb]), int(y[sa]) - int(y[sb])) < 350 * 8:
            return seed
    raise RuntimeError("no seed with close spawns")


def arena_sequences() -> list[dict[str, Any]]:
    """An arena fight: p1 and p2 close in and shoot it out (a kill, a respawn); p3 joins
    later, heads for the nearest pellet, shoots now and then and acknowledges 1-3 ticks late (its
    stream is the one recorded); drones hunt, pellets get eaten."""
    match = new_match(ArenaRuleset(), seed=_arena_seed(), options={"npcs": 10, "pellets": 80})
    dt = 1 / 30
    p1 = FakeConnection(match, "p1", 0.0)
    p2 = FakeConnection(match, "p2", 0.0)
    p3: FakeConnection | None = None
    snaps: dict[int, Snapshot] = {}
    names = match.schema.names()
    for step in range(1, 211):
        now = step * dt
        if step == 60:
            p3 = FakeConnection(match, "p3", now)
        match.tick(now)
        snap = match.snapshot
        snaps[snap.tick] = snap
        cols = dict(zip(names, snap.cols))

        def pos(entity: int | None, snap: Snapshot = snap, cols: dict[str, Any] = cols) -> tuple[int, int] | None:
            i = int(np.searchsorted(snap.ids, entity)) if entity is not None else len(snap.ids)
            return (int(cols["x"][i]), int(cols["y"][i])) if i < len(snap.ids) and snap.ids[i] == entity else None

        a, b = pos(p1.member.entity), pos(p2.member.entity)
        for me, other in ((p1, b), (p2, a)):
            got, mine = me.collect(), pos(me.member.entity)
            if got and mine is not None and other is not None:
                ddx, ddy = other[0] - mine[0], other[1] - mine[1]
                far = math.hypot(ddx, ddy) > 150 * 8
                move = [int(np.sign(ddx)), int(np.sign(ddy))] if far else [0, 0]
                me.send_input(move + [_angle(ddx, ddy), 1], got[-1], now + dt / 2)
        if p3 is not None:
            p3.collect()
            ack = p3.late(step % 3)
            if ack is not None:
                me3 = pos(p3.member.entity) or (0, 0)
                pellets = np.flatnonzero(cols["kind"] == 3)
                d2 = (cols["x"][pellets].astype(np.int64) - me3[0]) ** 2 + (cols["y"][pellets].astype(np.int64) - me3[1]) ** 2
                j = pellets[int(np.argmin(d2))]
                move = [int(np.sign(int(cols["x"][j]) - me3[0])), int(np.sign(int(cols["y"][j]) - me3[1]))]
                p3.send_input([*move, (step * 5) & 0xFF, 1 if step % 10 == 0 else 0], ack, now + dt / 2)
    assert p3 is not None
    return [sequence_from("arena/late-joiner", match, p3, snaps)]


# -- synthetic ---------------------------------------------------------------------

SYNTHETIC = WireSchema(
    tuple(WireColumn(n, np.dtype(d).newbyteorder("<"), s) for n, d, s in [
        ("kind", "uint8", 1), ("x", "int16", 8), ("vx", "int8", 8), ("y", "int16", 1), ("vy", "int16", 1),
        ("z", "uint32", 1), ("vz", "int32", 1), ("e", "int8", 1), ("u", "uint16", 1), ("s", "int32", 1),
        ("f", "uint32", 1),
    ]),
    (
        Axis("x", "vx", 0, 32000),  # reflects
        Axis("y", "vy", -40000, 40000),  # leaves the int16 range: wraps on every store
        Axis("z", "vz", 1000, 4_294_000_000),  # near the uint32 limits, exact integers
    ),
)
SYNTHETIC_WIRE = {
    "name": "synthetic", "version": 1, "width": 4000, "height": 4000,
    "columns": [{"name": c.name, "dtype": c.dtype.name, "scale": c.scale, "doc": ""} for c in SYNTHETIC.columns],
    "inputs": [],
    "motion": [{"pos": a.pos, "vel": a.vel, "lo": a.lo, "hi": a.hi} for a in SYNTHETIC.motion],
    "kinds": ["a", "b", "c"],
}
NAMES = SYNTHETIC.names()


def _random_rows(rng: random.Random, n: int) -> list[np.ndarray]:
    ranges = {
        "kind": (0, 2), "x": (0, 32000), "vx": (-128, 127), "y": (-32768, 32767), "vy": (-9000, 9000),
        "z": (0, 4_294_967_295), "vz": (-2_000_000_000, 2_000_000_000), "e": (-128, 127), "u": (0, 65535),
        "s": (-2**31, 2**31 - 1), "f": (0, 2**32 - 1),
    }
    return [np.array([rng.randint(*ranges[c.name]) for _ in range(n)], dtype=np.int64).astype(c.dtype)
            for c in SYNTHETIC.columns]


def _extrapolated(snap: Snapshot, tick: int) -> list[np.ndarray]:
    from game.motion import extrapolate
    moved = extrapolate(SYNTHETIC.motion, dict(zip(NAMES, snap.cols)), tick - snap.tick)
    return [moved[n].copy() for n in NAMES]


def _evolve(rng: random.Random, snap: Snapshot, tick: int, next_id: int, *, despawn: float, edit: float,
            spawn: int, columns: tuple[str, ...] = tuple(NAMES), small: bool = False) -> tuple[Snapshot, int]:
    """``snap`` moved to ``tick``, then some despawned, some columns edited, ``spawn`` new ones."""
    cols = _extrapolated(snap, tick)
    keep = np.array([rng.random() >= despawn for _ in range(len(snap.ids))], dtype=bool)
    ids = snap.ids[keep]
    cols = [c[keep] for c in cols]
    for ci, name in enumerate(NAMES):
        if name not in columns:
            continue
        c = cols[ci]
        info = np.iinfo(c.dtype)
        for i in range(len(ids)):
            if rng.random() < edit:
                if small:  # a difference that fits int8 or int16: a diff encoding
                    delta = rng.choice([rng.randint(-100, 100), rng.randint(-20000, 20000)])
                    c[i] = np.array(int(c[i]) + delta, dtype=np.int64).astype(c.dtype)  # wraps like the wire
                else:
                    c[i] = rng.randint(int(info.min), int(info.max))
    new_cols = _random_rows(rng, spawn)
    new_ids = np.arange(next_id, next_id + spawn, dtype=np.uint32) + np.array(
        [rng.randint(0, 3) for _ in range(spawn)], dtype=np.uint32).cumsum(dtype=np.uint32)
    ids = np.concatenate([ids, new_ids]).astype(np.uint32)
    cols = [np.concatenate([c, n]).astype(c.dtype) for c, n in zip(cols, new_cols)]
    nxt = int(ids[-1]) + 1 if len(ids) else next_id
    return Snapshot.of(tick, ids, cols), nxt


def _frame(tick: int, base: int | None, body: dict[str, Any], checksum: int, events: list[Any] | None = None,
           ack: int = 0) -> bytes:
    return finish_update(encode_update_prefix(tick, base, body, checksum, events or []), ack)


def _pack_map(fields: list[tuple[str, Any]]) -> bytes:
    packer = msgpack.Packer()
    return packer.pack_map_header(len(fields)) + b"".join(packer.pack(k) + packer.pack(v) for k, v in fields)


def _rows_as(body: dict[str, Any], k: int, fmt: int) -> dict[str, Any]:
    """The same delta with its changed rows written in another ``rows`` format."""
    old_fmt, data = body["rows"]
    if old_fmt == ROWS_MASK:
        rows = np.flatnonzero(np.unpackbits(np.frombuffer(data, np.uint8), count=k, bitorder="little"))
    else:
        rows = np.frombuffer(data, "<u2" if old_fmt == ROWS_U16 else "<u4")
    if fmt == ROWS_MASK:
        mask = np.zeros(k, dtype=bool)
        mask[rows] = True
        raw = np.packbits(mask, bitorder="little").tobytes()
    else:
        raw = rows.astype("<u2" if fmt == ROWS_U16 else "<u4").tobytes()
    return {**body, "rows": [fmt, raw]}


def synthetic_sequences() -> list[dict[str, Any]]:
    rng = random.Random(20240601)
    sch = SYNTHETIC
    frames: list[dict[str, Any]] = []

    def add(base: Snapshot | None, cur: Snapshot, note: str, body: dict[str, Any] | None = None,
            events: list[Any] | None = None, ack: int = 0, data: bytes | None = None) -> None:
        if data is None:
            if body is None:
                body = encode_body(sch, base, cur)
            data = _frame(cur.tick, None if base is None else base.tick, body, cur.checksum, events, ack)
        frames.append(frame_entry(data, sch, cur, note))

    empty = Snapshot.empty(sch, 1)
    add(None, empty, "keyframe of the empty state")
    s1 = Snapshot.of(2, np.array([3, 4, 7, 8, 20, 21, 22, 30, 31, 40, 41, 42, 50], dtype=np.uint32), _random_rows(rng, 13))
    add(None, s1, "keyframe", events=[["kill", 3, 4], ["pickup", 7, 8]], ack=5)
    s2, nid = _evolve(rng, s1, 3, 51, despawn=0.0, edit=0.0, spawn=0)
    add(s1, s2, "pure motion: nothing but extrapolation (no rows, no cols)")
    s3, nid = _evolve(rng, s2, 6, nid, despawn=0.0, edit=0.0, spawn=0)
    add(s2, s3, "three steps of extrapolation (reflections and int16 wrap)", ack=6)
    s4, nid = _evolve(rng, s3, 7, nid, despawn=0.2, edit=0.05, spawn=3, small=True)
    add(s3, s4, "despawns, a few small edits (diff encodings, selections) and spawns")
    s5, nid = _evolve(rng, s4, 8, nid, despawn=0.0, edit=0.6, spawn=0)
    add(s4, s5, "many absolute edits: a row bitmask")
    s6, nid = _evolve(rng, s5, 12, nid, despawn=0.1, edit=0.3, spawn=2, small=True, columns=("s", "f", "u", "z"))
    add(s5, s6, "four steps, then small edits of the wide columns (int16 differences)")
    body = encode_body(sch, s5, s6)
    kept = len(s5.ids) - len(np.frombuffer(body.get("gone", b""), "<u4"))
    add(s5, s6, "same delta, rows as uint32 indices", _rows_as(body, kept, ROWS_U32))
    alt = _rows_as(body, kept, ROWS_U16)
    add(s5, s6, "same delta, rows as uint16 indices", alt)
    alt = _rows_as(body, kept, ROWS_MASK)
    add(s5, s6, "same delta, rows as a bitmask", alt)
    if "gone" in body:
        rev = {**body, "gone": np.frombuffer(body["gone"], "<u4")[::-1].astype("<u4").tobytes()}
        add(s5, s6, "same delta, gone in descending order", rev)
    # Absolute values where differences were sent, and int16 differences where int8 ones were.
    pred = _extrapolated(s5, s6.tick)
    absolute = dict(body)
    kept_rows = None
    if "rows" in body:
        alt = _rows_as(body, kept, ROWS_U32)
        kept_rows = np.frombuffer(alt["rows"][1], "<u4").astype(np.intp)
        entries = []
        for ci, sel, enc, raw in body["cols"]:
            which = kept_rows if sel is None else kept_rows[
                np.unpackbits(np.frombuffer(sel, np.uint8), count=len(kept_rows), bitorder="little").astype(bool)]
            if enc == ENC_ABS:
                entries.append([ci, sel, enc, raw])
            else:
                entries.append([ci, sel, ENC_ABS, s6.cols[ci][which].tobytes()])
        absolute["cols"] = entries
        add(s5, s6, "same delta, every column as absolute values", absolute)
        wide = []
        keepmask = np.isin(s5.ids, s6.ids)
        for ci, sel, enc, raw in body["cols"]:
            which = kept_rows if sel is None else kept_rows[
                np.unpackbits(np.frombuffer(sel, np.uint8), count=len(kept_rows), bitorder="little").astype(bool)]
            col = sch.columns[ci]
            diff = s6.cols[ci][which].astype(np.int64) - pred[ci][keepmask][which].astype(np.int64)
            if col.dtype.itemsize >= 2 and enc != ENC_ABS and diff.min() >= -32768 and diff.max() <= 32767:
                wide.append([ci, sel, ENC_D16, diff.astype("<i2").tobytes()])
            else:
                wide.append([ci, sel, enc, raw])
        add(s5, s6, "same delta, differences as int16", {**body, "cols": wide})
    # Keys in another order, and keys this client does not know.
    fields = [("ack", 9), ("sum", s6.checksum), ("zz_future", [1, "x"]), ("base", s5.tick), *body.items(),
              ("tick", s6.tick), ("t", "update")]
    add(s5, s6, "same delta, map keys in another order and an unknown key", data=_pack_map(fields))
    s7, nid = _evolve(rng, s6, 13, nid, despawn=1.0, edit=0.0, spawn=0)
    add(s6, s7, "everything despawns")
    s8, nid = _evolve(rng, s7, 15, nid, despawn=0.0, edit=0.0, spawn=300)
    add(s7, s8, "spawns into the empty state (300 entities)")
    s9, nid = _evolve(rng, s8, 16, nid, despawn=0.01, edit=0.01, spawn=1, small=True)
    add(s8, s9, "a few changes among 300: uint16 row indices")
    s10, nid = _evolve(rng, s9, 17, nid, despawn=0.0, edit=0.5, spawn=0, small=True)
    add(s9, s10, "half the rows change: a bitmask, int8 and int16 differences")
    add(s8, s10, "two ticks from an older base")
    add(None, s10, "keyframe of a big state", ack=4_000_000_000)
    # Extrapolation over many steps (the server keeps 32 ticks of history).
    s11, nid = _evolve(rng, s10, 48, nid, despawn=0.05, edit=0.02, spawn=4, small=True)
    add(s10, s11, "31 steps of extrapolation")
    good = [{"name": "synthetic", "ruleset": SYNTHETIC_WIRE, "frames": frames}]

    # Deltas a decoder must refuse; each applies to a state of the sequence above.
    bad: list[dict[str, Any]] = []

    def refuse(base: Snapshot | None, cur: Snapshot, body: dict[str, Any], what: str, note: str, checksum: int | None = None) -> None:
        data = _frame(cur.tick, None if base is None else base.tick, body, cur.checksum if checksum is None else checksum)
        bad.append(frame_entry(data, sch, what, note))

    bad.append(frame_entry(_frame(s1.tick, None, encode_body(sch, None, s1), s1.checksum), sch, s1, "keyframe (the base of what follows)"))
    s1b, _ = _evolve(random.Random(5), s1, 4, 51, despawn=0.3, edit=0.3, spawn=2)
    body = encode_body(sch, s1, s1b)
    refuse(s1, s1b, body, "checksum", "a wrong checksum", checksum=(s1b.checksum + 1) & 0xFFFFFFFF)
    refuse(s1, s1b, {**body, "gone": np.array([5], "<u4").tobytes()}, "invalid", "gone names an id the base lacks")
    refuse(s1, s1b, {**body, "gone": b"\x01\x02\x03"}, "invalid", "gone is not whole uint32s")
    k = len(s1.ids) - len(np.frombuffer(body.get("gone", b""), "<u4"))
    refuse(s1, s1b, {**body, "rows": [ROWS_U16, np.array([0, k], "<u2").tobytes()]}, "invalid", "a row index past the kept rows")
    refuse(s1, s1b, {**body, "rows": [ROWS_U16, np.array([1, 0], "<u2").tobytes()]}, "invalid", "row indices not ascending")
    refuse(s1, s1b, {**body, "rows": [ROWS_MASK, b"\xff" * ((k + 7) // 8 + 1)]}, "invalid", "a row bitmask of the wrong length")
    refuse(s1, s1b, {**body, "rows": [7, b""]}, "invalid", "an unknown rows format")
    if body.get("cols"):
        ci, sel, enc, raw = body["cols"][0]
        refuse(s1, s1b, {**body, "cols": [[ci, sel, 9, raw]]}, "invalid", "an unknown encoding")
        refuse(s1, s1b, {**body, "cols": [[len(NAMES), sel, enc, raw]]}, "invalid", "a column index out of range")
        refuse(s1, s1b, {**body, "cols": [[ci, sel, enc, raw + b"\x00" * 4]]}, "invalid", "too many values")
        refuse(s1, s1b, {k2: v for k2, v in body.items() if k2 != "rows"}, "invalid", "cols without rows")
    new_ids, new_cols = body["new"]
    refuse(s1, s1b, {**body, "new": [np.array([1, 2], "<u4").tobytes(), new_cols]}, "invalid", "new ids below kept ids")
    refuse(s1, s1b, {**body, "new": [new_ids, new_cols[:-1]]}, "invalid", "new without every column")
    return good + [{"name": "synthetic-errors", "ruleset": SYNTHETIC_WIRE, "frames": bad}]


def build() -> str:
    """The text of ``deltas.json``."""
    doc = {
        "format": FORMAT,
        "doc": "Update frames (base64 msgpack) and the states they decode to; see tests/vectors/make_vectors.py.",
        "sequences": drift_sequences() + arena_sequences() + interest_sequences() + synthetic_sequences(),
    }
    # One frame per line: readable diffs, stable bytes.
    lines = ["{", f' "format": {FORMAT},', f' "doc": {json.dumps(doc["doc"])},', ' "sequences": [']
    seqs = doc["sequences"]
    for si, seq in enumerate(seqs):
        lines.append("  {")
        lines.append(f'   "name": {json.dumps(seq["name"])},')
        lines.append(f'   "ruleset": {json.dumps(seq["ruleset"], sort_keys=True)},')
        if seq.get("filtered"):
            lines.append('   "filtered": true,')
        lines.append('   "frames": [')
        for fi, fr in enumerate(seq["frames"]):
            lines.append("    " + json.dumps(fr) + ("," if fi < len(seq["frames"]) - 1 else ""))
        lines.append("   ]")
        lines.append("  }" + ("," if si < len(seqs) - 1 else ""))
    lines += [" ]", "}"]
    return "\n".join(lines) + "\n"


# -- movement ----------------------------------------------------------------------


def _walk(ruleset: Any, options: dict[str, int], start: tuple[int, int], moves: list[tuple[int, int, int]]) -> dict[str, Any]:
    """One player of a real world put at ``start`` (column units) and walked by ``moves``:
    (dx, dy, ticks) runs of input. Returns the schema and every tick's input and position."""
    from game.rules import InputBatch
    world = ruleset.create(7, options)
    me = ruleset.join(world, 1)
    (slot,) = world.slots_of(np.array([me]))
    world.cols["x"][slot], world.cols["y"][slot] = start
    steps = []
    for dx, dy, ticks in moves:
        values = [dx, dy] + [0] * (len(ruleset.spec.inputs) - 2)
        for _ in range(ticks):
            ruleset.step(world, InputBatch(np.array([1]), np.array([values])))
            (slot,) = world.slots_of(np.array([me]))
            steps.append([dx, dy, int(world.cols["x"][slot]), int(world.cols["y"][slot])])
    return {"ruleset": ruleset.spec.to_wire(), "start": list(start), "steps": steps}


def build_movement() -> str:
    """The text of ``movement.json``: walks along and into the walls and corners, every direction."""
    runs = [(1, 0, 5), (1, 1, 4), (0, 1, 3), (-1, 1, 4), (-1, 0, 6), (-1, -1, 30), (0, 0, 2), (1, -1, 5), (0, -1, 40),
            (1, 0, 3), (1, 1, 2), (0, 0, 1)]
    walks = {
        "arena, from near the top-left corner": _walk(ArenaRuleset(), {"npcs": 0, "pellets": 0}, (700, 500), runs),
        "arena, into the bottom-right corner": _walk(ArenaRuleset(), {"npcs": 0, "pellets": 0}, (23800, 23900),
                                                     [(1, 1, 6), (1, 0, 3), (0, 1, 3), (-1, -1, 2)]),
        "drift, from near the top-left corner": _walk(DriftRuleset(), {"npcs": 3}, (600, 450), runs),
        "drift, into the bottom-right corner": _walk(DriftRuleset(), {"npcs": 3}, (31900, 31950),
                                                     [(1, 1, 6), (1, 0, 3), (0, 1, 3), (-1, -1, 2)]),
    }
    lines = ["{"]
    items = list(walks.items())
    for i, (name, walk) in enumerate(items):
        lines.append(f" {json.dumps(name)}: {json.dumps(walk, sort_keys=True)}" + ("," if i < len(items) - 1 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    text = build()
    OUT.write_text(text)
    data = json.loads(text)
    n = sum(len(s["frames"]) for s in data["sequences"])
    print(f"wrote {OUT} ({len(text)} bytes, {len(data['sequences'])} sequences, {n} frames)")
    MOVEMENT_OUT.write_text(build_movement())
    print(f"wrote {MOVEMENT_OUT}")


if __name__ == "__main__":
    main()

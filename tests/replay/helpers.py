"""For the replay tests: matches recorded in process (a real ``Match`` with in-memory clients), headers, file edits."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from game.rules import InputBatch, get_ruleset
from server.match import Match, Member
from server.protocol.codec import encode_client
from server.protocol.messages import Hello, Input
from server.replay.format import FRAME_HEAD, KEYFRAME, PREAMBLE, TICK, Header, frame
from server.replay.recorder import Recorder


def drift_header(**kw: object) -> Header:
    """A header of a drift match, with any field changed by ``kw``."""
    base: dict[str, object] = {"match": "m", "seed": 3, "options": {"npcs": 10}, "tick_rate": 30,
                               "start_time": "2025-01-01T00:00:00.000Z"}
    base.update(kw)
    return Header.for_spec(get_ruleset("drift").spec, **base)  # type: ignore[arg-type]


def batch(players: list[int], values: list[list[int]]) -> InputBatch:
    """An input batch of drift's two fields."""
    return InputBatch(np.array(players, np.int32), np.array(values, np.int16).reshape(len(players), 2))


class NullClient:
    def send(self, data: bytes) -> None:
        pass

    def send_many(self, frames: Sequence[bytes]) -> None:
        for data in frames:
            self.send(data)

    def close(self, code: int, reason: str) -> None:
        pass

    def tell_and_close(self, code: int, reason: str) -> None:
        pass


def record_match(directory: Path, ruleset: str = "drift", *, ticks: int = 400, players: int = 4, options: dict[str, int] | None = None,
                 seed: int = 7, leave_at: int | None = None, change: float = 0.2, **recorder_kw: Any) -> tuple[Path, Match, Recorder]:
    """Play ``ticks`` ticks with ``players`` random-walking players joining one by one, recorded.

    Each input names a view 0 to 12 ticks behind the server (by player), so a
    ruleset with lag compensation records lags.

    Returns the replay's path, the (closed) match and its recorder.
    """
    options = options if options is not None else ({"npcs": 200} if ruleset == "drift" else {"npcs": 20, "pellets": 60})
    match = Match(get_ruleset(ruleset), match_id=f"test-{ruleset}-{seed}", seed=seed, options=options, hold_s=0.0)
    rec = Recorder.create(match, directory, **recorder_kw)
    match.observers.append(rec)
    fields = match.ruleset.spec.inputs
    rng = np.random.default_rng(seed)
    members: list[Member] = []
    seqs: dict[int, int] = {}
    for t in range(ticks):
        if len(members) < players and t % 10 == 0:
            session = match.new_session()
            hello = session.receive(encode_client(Hello(1, f"p{len(members) + 1}")), 0.0, match.tick_count)
            assert isinstance(hello, Hello)
            members.append(match.connect(hello, session, NullClient(), float(t)))
        if leave_at is not None and t == leave_at and members:
            gone = members.pop(0)
            match.disconnect(gone, gone.client, float(t))  # type: ignore[arg-type]
        for m in members:
            if m.joined and rng.random() < change:
                values = tuple(int(rng.integers(f.lo, f.hi + 1)) for f in fields)
                seqs[m.player] = seq = seqs.get(m.player, 0) + 1
                view = max(0, match.tick_count - (m.player % 5) * 3)
                msg = m.session.receive(encode_client(Input(seq, values, view=view)), float(t), match.tick_count)
                match.on_message(m, msg)
        match.tick(float(t))
    match.close()
    assert rec.path is not None
    return rec.path, match, rec


def frames_of(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, payload) of every frame of a well-formed replay."""
    out, pos = [], PREAMBLE.size
    while pos < len(data):
        length, _ = FRAME_HEAD.unpack_from(data, pos)
        out.append((pos, data[pos + FRAME_HEAD.size : pos + FRAME_HEAD.size + length]))
        pos += FRAME_HEAD.size + length
    return out


def tamper_input(data: bytes, min_tick: int) -> tuple[bytes, int]:
    """Change one recorded input value (a nonzero one, negated) at the first tick >= ``min_tick``
    whose record changes some input, re-framing it with a correct CRC. Returns the new bytes and that tick."""
    out = bytearray(data[: PREAMBLE.size])
    done: int | None = None
    for _, payload in frames_of(data):
        rec = msgpack.unpackb(payload, raw=False)
        if done is None and rec[0] == TICK and rec[1] >= min_tick and len(rec) > 4 and rec[4] and rec[4][0] == 0:
            for entry in rec[4][2]:
                values = np.frombuffer(entry[2], np.int8).copy()
                nonzero = np.flatnonzero(values)
                if entry[0] in (0, 1) and nonzero.size:  # dx or dy, stored as int8
                    values[nonzero[0]] = -values[nonzero[0]]
                    entry[2] = values.tobytes()
                    done = rec[1]
                    payload = msgpack.packb(rec, use_bin_type=True)
                    break
        out += frame(payload)
    assert done is not None, "no input to change"
    return bytes(out), done


def edit_records(data: bytes, edit: Callable[[list[Any]], list[Any] | None]) -> bytes:
    """``data`` with every record passed through ``edit`` (None: unchanged), re-framed with correct CRCs."""
    out = bytearray(data[: PREAMBLE.size])
    for _, payload in frames_of(data):
        rec = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        new = edit(rec)
        out += frame(payload if new is None else msgpack.packb(new, use_bin_type=True))
    return bytes(out)


def edit_tick(data: bytes, tick: int, record: list[Any]) -> bytes:
    """``data`` with the tick record of ``tick`` replaced by ``record``."""
    return edit_records(data, lambda rec: record if rec[0] == TICK and rec[1] == tick else None)


def edit_keyframe(data: bytes, tick: int, body: bytes | None = None, **fields: Any) -> bytes:
    """``data`` with the keyframe of ``tick`` holding ``body`` (the compressed bin as is), or its map with ``fields`` changed."""

    def edit(rec: list[Any]) -> list[Any] | None:
        if rec[0] != KEYFRAME or rec[1] != tick:
            return None
        if body is not None:
            return [KEYFRAME, tick, body]
        b = msgpack.unpackb(zlib.decompress(rec[2]), raw=False)
        b.update(fields)
        return [KEYFRAME, tick, zlib.compress(msgpack.packb(b, use_bin_type=True))]

    return edit_records(data, edit)

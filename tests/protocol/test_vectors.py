"""The shared delta vectors (tests/vectors/deltas.json): the Python decoder reproduces them.

The browser decoder is tested against the same file
(``client_web/test/vectors.test.js``), so both decoders agree byte for byte.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

import msgpack
import numpy as np
import pytest

from server.protocol.codec import decode_server, encode_server
from server.protocol.delta import Snapshot, WireSchema, apply_body
from server.protocol.errors import ProtocolError
from server.protocol.interest import apply_view
from server.protocol.messages import Update
from tests.vectors import make_vectors

VECTORS = json.loads(make_vectors.OUT.read_text())
SEQUENCES = VECTORS["sequences"]


def _decode(seq: dict[str, Any]) -> list[tuple[dict[str, Any], Snapshot | str]]:
    """Apply every frame of a sequence in order; (frame, state or the kind of failure)."""
    schema = WireSchema.from_wire(seq["ruleset"])
    held: dict[int, Snapshot] = {}
    out: list[tuple[dict[str, Any], Snapshot | str]] = []
    for frame in seq["frames"]:
        msg = decode_server(base64.b64decode(frame["data"]))
        assert isinstance(msg, Update)
        base = None if msg.base is None else held[msg.base]
        try:
            apply = apply_view if seq.get("filtered") else apply_body
            snap = apply(schema, base, msg.tick, msg.body)
        except ProtocolError:
            out.append((frame, "invalid"))
            continue
        if snap.checksum != msg.checksum:
            out.append((frame, "checksum"))
            continue
        held[snap.tick] = snap
        out.append((frame, snap))
    return out


def test_committed_vectors_are_what_make_vectors_writes() -> None:
    assert make_vectors.build() == make_vectors.OUT.read_text(), "run: python -m tests.vectors.make_vectors"
    assert make_vectors.build_movement() == make_vectors.MOVEMENT_OUT.read_text(), "run: python -m tests.vectors.make_vectors"


@pytest.mark.parametrize("seq", SEQUENCES, ids=[s["name"] for s in SEQUENCES])
def test_python_decoder_reproduces_every_expected_state(seq: dict[str, Any]) -> None:
    for frame, got in _decode(seq):
        expect = frame["expect"]
        where = f"{seq['name']} tick {frame['tick']} ({frame.get('note', '')})"
        if "error" in expect:
            assert got == expect["error"], where
            continue
        assert isinstance(got, Snapshot), f"{where}: {got}"
        assert got.tick == expect["tick"], where
        assert got.ids.astype("<u4").tobytes() == base64.b64decode(expect["ids"]), where
        assert [c.tobytes() for c in got.cols] == [base64.b64decode(c) for c in expect["cols"]], where
        assert got.checksum == expect["sum"], where


def test_vectors_cover_every_form_of_the_protocol() -> None:
    seen: Counter[str] = Counter()
    for seq in SEQUENCES:
        for frame in seq["frames"]:
            obj = msgpack.unpackb(base64.b64decode(frame["data"]), raw=False)
            seen["keyframe" if obj["base"] is None else "delta"] += 1
            if obj["base"] is not None:
                seen[f"steps>{1 if obj['tick'] - obj['base'] > 1 else 0}"] += 1
            seen.update(k for k in ("gone", "new", "ev") if k in obj)
            if isinstance(obj.get("rows"), list) and obj["rows"] and obj["rows"][0] in (0, 1, 2):
                seen[f"rows{obj['rows'][0]}"] += 1
            for entry in obj.get("cols") or []:
                if isinstance(entry, list) and len(entry) == 4:
                    seen[f"enc{entry[2]}"] += 1
                    seen["selection" if entry[1] is not None else "all-rows"] += 1
            seen["error:" + frame["expect"].get("error", "none")] += 1
        seen[f"ruleset:{seq['ruleset']['name']}"] += 1
    for key in ("keyframe", "delta", "steps>1", "steps>0", "gone", "new", "ev", "rows0", "rows1", "rows2",
                "enc0", "enc1", "enc2", "selection", "all-rows", "error:invalid", "error:checksum",
                "ruleset:arena", "ruleset:drift", "ruleset:synthetic"):
        assert seen[key] > 0, f"no vector has {key}: {dict(seen)}"


def test_vectors_expect_the_checksum_their_frames_carry() -> None:
    for seq in SEQUENCES:
        for frame in seq["frames"]:
            expect = frame["expect"]
            if "sum" in expect:
                obj = msgpack.unpackb(base64.b64decode(frame["data"]), raw=False)
                assert obj["sum"] == expect["sum"]
                ids = np.frombuffer(base64.b64decode(expect["ids"]), "<u4")
                assert len(ids) == 0 or bool(np.all(np.diff(ids.astype(np.int64)) > 0))


def test_the_message_table_writes_every_vector_frame_back_to_the_same_bytes() -> None:
    written = 0
    for seq in SEQUENCES:
        for frame in seq["frames"]:
            data = base64.b64decode(frame["data"])
            if "another order" in frame.get("note", ""):
                continue  # a frame no server writes: keys shuffled, an unknown one (decoders must cope)
            assert encode_server(decode_server(data)) == data, f"{seq['name']} tick {frame['tick']}"
            written += 1
    assert written >= len(SEQUENCES) * 2

"""The hand-over format: offers, answers and the match state round-trip; anything damaged is refused in one line."""

from __future__ import annotations

import struct
import zlib

import msgpack
import numpy as np
import pytest

from server.handover.format import (
    FORMAT_VERSION,
    HEAD,
    MAGIC,
    Accepted,
    BadHandover,
    Offer,
    Refused,
    decode,
    encode,
)
from server.protocol.messages import Input
from tests.handover.helpers import frozen_state, join, new_match, play, scripted_input


def offer(ruleset: str = "arena") -> Offer:
    match = new_match(ruleset)
    for name in ("ann", "bob", "cy"):
        join(match, name)
    play(match, ruleset, 40, {})
    return Offer("h1", "node-a", 1234.5, frozen_state(match))


def reframe(body: dict[str, object], version: int = FORMAT_VERSION) -> bytes:
    data: bytes = msgpack.packb(body, use_bin_type=True)
    return HEAD.pack(MAGIC, version, zlib.crc32(data)) + data


def body_of(data: bytes) -> dict[str, object]:
    out: dict[str, object] = msgpack.unpackb(data[HEAD.size:], raw=False)
    return out


@pytest.mark.parametrize("ruleset", ["arena", "drift"])
def test_an_offer_round_trips_with_its_world_players_and_inputs(ruleset: str) -> None:
    sent = offer(ruleset)
    got = decode(encode(sent))
    assert isinstance(got, Offer)
    assert (got.handover, got.sender, got.expires) == ("h1", "node-a", 1234.5)
    a, b = sent.state, got.state
    assert (b.match_id, b.hash, b.checksum, b.next_player, b.hold_s, b.replay, b.tick) == \
        (a.match_id, a.hash, a.checksum, a.next_player, a.hold_s, a.replay, a.tick)
    assert b.players == a.players and dict(b.room) == dict(a.room)
    assert b.header == a.header and b.header.start_tick == 40
    assert np.array_equal(b.keyframe.ids, a.keyframe.ids) and np.array_equal(b.keyframe.alive, a.keyframe.alive)
    assert all(np.array_equal(x, y) for x, y in zip(b.keyframe.cols, a.keyframe.cols))
    assert np.array_equal(b.keyframe.inputs.values, a.keyframe.inputs.values)
    assert [p.token for p in b.players] == ["token-0", "token-1", "token-2"]


def test_answers_round_trip() -> None:
    acc = Accepted("h1", "node-b", "m1", "ws://127.0.0.1:1/ws/m1", "ab" * 16, "m1-2.replay")
    ref = Refused("h1", "node-b", "m1", "this node is draining")
    assert decode(encode(acc)) == acc
    assert decode(encode(ref)) == ref
    assert decode(encode(Accepted("h2", "n", "m", "ws://x/ws/m", "00" * 16))) == Accepted("h2", "n", "m", "ws://x/ws/m", "00" * 16)


def test_a_held_player_carries_how_long_it_has_been_away() -> None:
    match = new_match("drift")
    _, _ = join(match, "ann")
    bob, bob_client = join(match, "bob")
    match.tick(0.0)
    # A player is held for the reconnect window only once it has played (sent an input): issue 12.
    match.on_message(bob, Input(1, scripted_input("drift", bob.player, 1)))
    match.tick(0.5)
    match.disconnect(bob, bob_client, 1.0)
    match.tick(1.0)
    state = frozen_state(match, now=4.0)
    assert [(p.name, p.held_for) for p in decode_state(state_bytes(state))] == [("ann", None), ("bob", 3.0)]


def state_bytes(state: object) -> bytes:
    return encode(Offer("h", "a", 1.0, state))  # type: ignore[arg-type]


def decode_state(data: bytes) -> tuple:  # type: ignore[type-arg]
    got = decode(data)
    assert isinstance(got, Offer)
    return got.state.players


def test_spectators_and_players_not_yet_joined_are_not_handed_over() -> None:
    match = new_match("drift")
    join(match, "ann")
    join(match, "eve", spectate=True)
    match.tick(0.0)
    join(match, "late")
    assert match.joining() == 1
    assert [p.name for p in frozen_state(match).players] == ["ann"]


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda d: b"NOTHANDS" + d[8:], "not a hand-over message (wrong magic bytes)"),
    (lambda d: d[:10], "not a hand-over message"),
    (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "CRC mismatch"),
    (lambda d: d[:8] + struct.pack("<I", FORMAT_VERSION + 1) + d[12:], "format version 2 is not supported"),
    (lambda d: reframe({"kind": "gift"}), "unknown hand-over message kind 'gift'"),
    (lambda d: reframe([1, 2]), "is not a map"),  # type: ignore[arg-type]
    (lambda d: HEAD.pack(MAGIC, 1, zlib.crc32(b"\xc1")) + b"\xc1", "is not msgpack"),
    (lambda d: reframe({**body_of(d), "hash": b"short"}), "hash must be 16 bytes"),
    (lambda d: reframe({k: v for k, v in body_of(d).items() if k != "players"}), "players is missing"),
    (lambda d: reframe({**body_of(d), "players": [[1, "t", None]]}), "players[0] must be [player, token, held_for, seq]"),
    (lambda d: reframe({**body_of(d), "players": [[1, "", None, 0]]}), "token must be a string of 1 to 64"),
    (lambda d: reframe({**body_of(d), "players": body_of(d)["players"][:1]}),  # type: ignore[index]
     "the players differ from the keyframe's"),
    (lambda d: reframe({**body_of(d), "players": [[p[0], "same", None, 0] for p in body_of(d)["players"]]}),  # type: ignore[attr-defined]
     "two players have the same token"),
    (lambda d: reframe({**body_of(d), "next_player": 2}), "next player id 2 is not above player 3"),
    (lambda d: reframe({**body_of(d), "keyframe": b"junk"}), "keyframe at tick 40"),
    (lambda d: reframe({**body_of(d), "header": {"match": "m"}}), "header: missing or malformed field"),
    (lambda d: reframe({**body_of(d), "expires": -1}), "expires must be a finite number >= 0"),
])
def test_a_damaged_or_inconsistent_message_is_refused_with_its_reason(damage: object, reason: str) -> None:
    data = encode(offer())
    with pytest.raises(BadHandover) as info:
        decode(damage(data))  # type: ignore[operator]
    assert reason in str(info.value)
    assert "\n" not in str(info.value)


def test_a_message_is_checked_before_it_is_unpacked() -> None:
    with pytest.raises(BadHandover, match="over the limit"):
        decode(MAGIC + b"\x01\x00\x00\x00" + b"\x00" * 4 + bytes(64 << 20))


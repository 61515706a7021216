"""Client message decoding: every kind of bad frame maps to its close code."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.protocol.codec import (
    MAX_CLIENT_MESSAGE,
    decode_client,
    decode_server,
    encode_client,
    encode_server,
    encode_update_prefix,
    finish_update,
)
from server.protocol.errors import ProtocolError
from server.protocol.messages import Ack, Error, Hello, Input, Ping, Pong, Resync, Roster, RosterEntry, Update, Welcome


@pytest.mark.parametrize(
    "msg",
    [
        Hello(1, "ann"),
        Hello(1, "spec", spectate=True, token="abc"),
        Input(5, (1, -1, 200, 0), ack=17),
        Input(1, ()),
        Ack(99),
        Ping(3, 1234.5),
        Resync(),
    ],
)
def test_client_messages_round_trip(msg: Any) -> None:
    assert decode_client(encode_client(msg)) == msg


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj)


@pytest.mark.parametrize(
    "frame, code, words",
    [
        ("hello", 1003, "text frames"),
        (b"", 1002, "msgpack"),
        (b"\xc1", 1002, "msgpack"),
        (pack(5), 1002, "map"),
        (pack([1, 2]), 1002, "map"),
        (pack({"x": 1}), 1002, "type tag"),
        (pack({"t": 5}), 1002, "type tag"),
        (pack({"t": "launch"}), 1002, "unknown message type"),
        (pack({"t": "hello", "v": 2, "name": "a"}), 1002, "version"),
        (pack({"t": "hello", "v": 1}), 1007, "missing"),
        (pack({"t": "hello", "v": 1, "name": ""}), 1007, "name"),
        (pack({"t": "hello", "v": 1, "name": "a" * 25}), 1007, "name"),
        (pack({"t": "hello", "v": 1, "name": "bad\nname"}), 1007, "name"),
        (pack({"t": "hello", "v": 1, "name": "a", "spectate": 1}), 1007, "true or false"),
        (pack({"t": "hello", "v": 1, "name": "a", "admin": True}), 1007, "unknown field"),
        (pack({"t": "input", "seq": -1, "in": []}), 1007, "seq"),
        (pack({"t": "input", "seq": 2**32, "in": []}), 1007, "seq"),
        (pack({"t": "input", "seq": 1, "in": 3}), 1007, "array"),
        (pack({"t": "input", "seq": 1, "in": [1.5]}), 1007, "integer"),
        (pack({"t": "input", "seq": 1, "in": [True]}), 1007, "integer"),
        (pack({"t": "input", "seq": 1, "in": [70000]}), 1007, "integer"),
        (pack({"t": "input", "seq": True, "in": []}), 1007, "seq"),
        (pack({"t": "ack", "tick": "now"}), 1007, "tick"),
        (pack({"t": "ping", "id": 1, "time": "x"}), 1007, "number"),
        (pack({"t": "resync", "x": 1}), 1007, "unknown field"),
        (pack({1: "hello"}), 1002, "msgpack"),
        (pack({"t": "hello", "v": 1, "name": "a"}) + b"\x00", 1002, "msgpack"),
        (b"\x92" * 100 + b"\x00", 1002, "msgpack"),
        (pack({"t": "input", "seq": 1, "in": [0] * 40}), 1002, "msgpack"),
        (b"\x00" * (MAX_CLIENT_MESSAGE + 1), 1009, "limit"),
        (pack({"t": "hello", "v": 1, "name": b"bin"}), 1002, "msgpack"),
    ],
)
def test_malformed_client_frames_raise_protocol_errors_with_the_right_close_code(frame: Any, code: int, words: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client(frame)
    assert info.value.code == code
    assert words in info.value.reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_but_protocol_errors(data: bytes) -> None:
    try:
        decode_client(data)
    except ProtocolError as exc:
        assert exc.code in (1002, 1007, 1009)


def test_server_messages_round_trip() -> None:
    welcome = Welcome(1, "main", 3, 77, 30, 120, "tok", {"name": "drift", "columns": []}, True, 10.0)
    roster = Roster((RosterEntry(3, 77, "ann", True), RosterEntry(4, None, "bob", False)))
    for msg in (welcome, roster, Pong(1, 2.5, 9), Error(1007, "bad")):
        assert decode_server(encode_server(msg)) == msg


def test_update_frames_share_the_prefix_and_differ_only_in_the_ack() -> None:
    prefix = encode_update_prefix(12, 11, {"gone": b"\x01\x00\x00\x00"}, 0xDEADBEEF, [["kill", 1, 2]])
    a, b = finish_update(prefix, 5), finish_update(prefix, 300)
    assert a.startswith(prefix) and b.startswith(prefix)
    assert decode_server(a) == Update(12, 11, {"gone": b"\x01\x00\x00\x00"}, 0xDEADBEEF, 5, (["kill", 1, 2],))
    assert decode_server(b).ack == 300
    assert msgpack.unpackb(a)["ack"] == 5

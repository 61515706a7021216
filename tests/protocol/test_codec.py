"""The codec: one table drives both directions, the wire bytes stay version 1's, and every kind
of bad frame maps to its close code."""

from __future__ import annotations

from typing import Any

import attrs
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.protocol.codec import (
    MAX_CLIENT_MESSAGE,
    MESSAGES,
    Message,
    Opt,
    Req,
    Sender,
    decode_client,
    decode_input,
    decode_server,
    encode_client,
    encode_server,
    encode_update_prefix,
    ack_field,
    finish_update,
    with_surplus,
)
from server.protocol.errors import InvalidField, ProtocolError
from server.protocol.messages import (
    U32,
    Ack,
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
    Update,
    Welcome,
)

WELCOME = Welcome(1, "main", 3, 77, 30, 120, "tok", {"name": "drift", "columns": []}, True, 10.0)
ROSTER = Roster((RosterEntry(3, 77, "ann", True), RosterEntry(4, None, "bob", False)))
ROSTER_DELTA = RosterDelta(8, (RosterEntry(5, 80, "cat", True),), (3,))
#: A replay_info's fields as the playback builds them (a dict in this order, lists inside).
INFO: dict[str, Any] = {
    "name": "main-20250131.replay", "match": "main", "ruleset": "arena", "ruleset_version": 3, "seed": 42,
    "options": {"drones": 12, "pellets": 80}, "tick_rate": 30, "start_time": "2025-01-31T12:00:00.123Z",
    "first": 0, "last": 660, "complete": False, "warnings": ["no end record: the recording stopped at tick 660"],
    "keyframes": [0, 300, 600], "checkpoints": [[30, 0xDEADBEEF], [60, 7]], "scores": None,
    "players": [[1, "ann"], [2, "bob"]],
}
STATUS: dict[str, Any] = {"tick": 1, "first": 0, "last": 660, "paused": False, "speed": 1.0}


# -- the bytes ---------------------------------------------------------------------


@pytest.mark.parametrize("msg, wire", [
    # Pinned from the hand-written codec this table replaced: version 1's bytes.
    (Hello(1, "ann"), "83a174a568656c6c6fa17601a46e616d65a3616e6e"),
    (Hello(1, "spec", spectate=True, token="abc"),
     "85a174a568656c6c6fa17601a46e616d65a473706563a87370656374617465c3a5746f6b656ea3616263"),
    (Input(5, (1, -1, 200, 0), ack=17), "84a174a5696e707574a373657105a2696e9401ffccc800a361636b11"),
    (Input(1, ()), "83a174a5696e707574a373657101a2696e90"),
    (Ack(99), "82a174a361636ba47469636b63"),
    (Ping(3), "83a174a470696e67a2696403a474696d6500"),
    (Ping(3, 1234.5), "83a174a470696e67a2696403a474696d65cb40934a0000000000"),
    (Resync(), "81a174a6726573796e63"),
    (Input(5, (1, 0), ack=17, view=14), "85a174a5696e707574a373657105a2696e920100a361636b11a476696577" + "0e"),
    (Leave(), "81a174a56c65617665"),
    (WELCOME, "8ba174a777656c636f6d65a17601a56d61746368a46d61696ea6706c6179657203a6656e746974794da97469636b5f726174651e"
              "a47469636b78a5746f6b656ea3746f6ba772756c6573657482a46e616d65a56472696674a7636f6c756d6e7390a7726573756d6564c3"
              "a6686f6c645f73cb4024000000000000"),
    (ROSTER, "82a174a6726f73746572a7706c61796572739294034da3616e6ec39404c0a3626f62c2"),
    (Pong(1, 2.5, 9), "84a174a4706f6e67a2696401a474696d65cb4004000000000000a47469636b09"),
    (Error(1007, "bad"), "83a174a56572726f72a4636f6465cd03efa6726561736f6ea3626164"),
    (Moved("ws://b:2/ws/m1"), "82a174a56d6f766564a375726cae77733a2f2f623a322f77732f6d31"),
    # Minor additions: a roster's revision (a key old clients ignore), the roster's changes (asked for in hello).
    (Roster(ROSTER.players, 7), "83a174a6726f73746572a7706c61796572739294034da3616e6ec39404c0a3626f62c2a372657607"),
    (ROSTER_DELTA, "84a174ac726f737465725f64656c7461a372657608a7706c617965727391940550a3636174c3a4676f6e659103"),
    (Hello(1, "ann", roster_deltas=True), "84a174a568656c6c6fa17601a46e616d65a3616e6ead726f737465725f64656c746173c3"),
])
def test_every_message_keeps_the_bytes_of_protocol_version_1(msg: Any, wire: str) -> None:
    encode = encode_client if isinstance(msg, (Hello, Input, Ack, Ping, Resync, Leave)) else encode_server
    assert encode(msg).hex() == wire


def test_replay_messages_are_byte_identical_to_the_maps_playback_sends() -> None:
    assert encode_server(ReplayInfo(**INFO)) == msgpack.packb({"t": "replay_info", **INFO})
    with_scores = {**INFO, "scores": [[1, 25], [2, -3]], "warnings": [], "complete": True, "seed": -(2**63)}
    assert encode_server(ReplayInfo(**with_scores)) == msgpack.packb({"t": "replay_info", **with_scores})
    assert encode_server(ReplayStatus(**STATUS)) == msgpack.packb({"t": "replay", **STATUS})
    assert encode_server(ReplayStatus(1, 0, 660, True, 2)) == msgpack.packb({"t": "replay", **STATUS, "paused": True,
                                                                           "speed": 2.0})


def test_controls_leave_out_what_they_do_not_set() -> None:
    assert msgpack.unpackb(encode_client(Control(seek=30))) == {"t": "control", "seek": 30}
    assert list(msgpack.unpackb(encode_client(Control(True, 2, 30)))) == ["t", "pause", "speed", "seek"]
    assert encode_client(Control()) == msgpack.packb({"t": "control"})
    assert decode_client(pack({"t": "control", "pause": None, "seek": None})) == Control()  # nil: not set


def test_every_encoding_starts_with_its_tag_and_follows_the_tables_key_order() -> None:
    samples = [Hello(1, "a", True, "t"), Input(1, (0,), 3), Ack(1), Ping(1, 0.5), Resync(), Control(False, 1, 2),
               WELCOME, ROSTER, Pong(1, 2, 3), Error(1000, ""), ReplayInfo(**INFO), ReplayStatus(**STATUS),
               Update(2, 1, {"gone": b"", "new": [b"", []]}, 5, 6, (["kill", 1, 2],))]
    order = {m.cls: ["t"] + [k for f in m.fields for k in (f.inline or (f.key,))] for m in MESSAGES}
    for msg in samples:
        encode = encode_client if type(msg) in {m.cls for m in MESSAGES if m.sender is Sender.CLIENT} else encode_server
        keys = list(msgpack.unpackb(encode(msg), raw=False))
        assert keys == [k for k in order[type(msg)] if k in keys], msg
        assert keys[0] == "t"


updates = st.builds(
    Update,
    tick=st.integers(0, U32), base=st.none() | st.integers(0, U32),
    body=st.fixed_dictionaries({}, optional={"gone": st.binary(max_size=8), "rows": st.just([0, b"\x01"]),
                                             "cols": st.just([[1, None, 0, b"\x02"]]), "new": st.just([b"", []])}),
    checksum=st.integers(0, U32), ack=st.integers(0, U32),
    events=st.lists(st.tuples(st.just("kill"), st.integers(0, 99), st.integers(0, 99)).map(list), max_size=3).map(tuple),
    surplus=st.just(0) | st.integers(1, 8) | st.integers(0, U32),
)


@settings(max_examples=200, deadline=None)
@given(updates)
def test_an_update_from_the_table_is_the_hot_paths_prefix_plus_ack_then_any_surplus(msg: Update) -> None:
    prefix = encode_update_prefix(msg.tick, msg.base, msg.body, msg.checksum, list(msg.events))
    frame = finish_update(prefix, msg.ack)
    assert encode_server(msg) == (with_surplus(frame, msg.surplus) if msg.surplus else frame)
    assert decode_server(encode_server(msg)) == msg


def test_a_surplus_is_appended_to_any_update_frame_and_refused_on_anything_else() -> None:
    frame = finish_update(encode_update_prefix(3, None, {}, 7, []), 2)
    assert msgpack.unpackb(with_surplus(frame, 300)) == {**msgpack.unpackb(frame), "surplus": 300}
    assert decode_server(with_surplus(frame, 3)).surplus == 3 and decode_server(frame).surplus == 0
    with pytest.raises(ValueError, match="map header"):
        with_surplus(msgpack.packb([1, 2]), 1)


@pytest.mark.parametrize("ack", [0, 1, 127, 128, 255, 256, 65535, 65536, U32, U32 + 1, 2**64 - 1])
def test_an_updates_ack_field_is_what_msgpack_packs_at_every_width(ack: int) -> None:
    assert ack_field(ack) == msgpack.packb("ack") + msgpack.packb(ack)


def test_update_frames_share_the_prefix_and_differ_only_in_the_ack() -> None:
    prefix = encode_update_prefix(12, 11, {"gone": b"\x01\x00\x00\x00"}, 0xDEADBEEF, [["kill", 1, 2]])
    a, b = finish_update(prefix, 5), finish_update(prefix, 300)
    assert a.startswith(prefix) and b.startswith(prefix)
    assert decode_server(a) == Update(12, 11, {"gone": b"\x01\x00\x00\x00"}, 0xDEADBEEF, 5, (["kill", 1, 2],))
    assert decode_server(b).ack == 300
    assert msgpack.unpackb(a)["ack"] == 5


# -- round trips -------------------------------------------------------------------


@pytest.mark.parametrize("msg", [
    Hello(1, "ann"),
    Hello(1, "spec", spectate=True, token="abc"),
    Hello(1, "ann", interest=True, roster_deltas=True),
    Input(5, (1, -1, 200, 0), ack=17),
    Input(1, ()),
    Input(2, (1, 0), ack=7, view=5),
    Ack(99),
    Ping(3, 1234.5),
    Resync(),
    Leave(),
    Control(),
    Control(pause=True, speed=0.25, seek=U32),
])
def test_client_messages_round_trip(msg: Any) -> None:
    assert decode_client(encode_client(msg)) == msg


def test_server_messages_round_trip() -> None:
    for msg in (WELCOME, ROSTER, Roster((), 0), ROSTER_DELTA, RosterDelta(1, (), ()), Pong(1, 2.5, 9), Error(1007, "bad"), Moved("ws://b:2/ws/m1"), ReplayInfo(**INFO),
                ReplayInfo(**{**INFO, "scores": [[1, 25]]}), ReplayStatus(**STATUS)):
        assert decode_server(encode_server(msg)) == msg


client_messages = st.one_of(
    st.builds(Hello, st.just(1), st.text(st.characters(categories=("L", "N", "P")), min_size=1, max_size=24),
              st.booleans(), st.none() | st.text(min_size=1, max_size=64)),
    st.builds(Input, st.integers(1, U32), st.lists(st.integers(-32768, 32767), max_size=16).map(tuple),
              st.none() | st.integers(0, U32), st.none() | st.integers(0, U32)),
    st.builds(Ack, st.integers(0, U32)),
    st.builds(Ping, st.integers(0, U32), st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)),
    st.just(Resync()),
    st.just(Leave()),
    st.builds(Control, st.none() | st.booleans(), st.none() | st.floats(0.25, 8.0), st.none() | st.integers(0, U32)),
)


@settings(max_examples=300, deadline=None)
@given(client_messages)
def test_any_valid_client_message_round_trips_through_the_table(msg: Any) -> None:
    data = encode_client(msg)
    assert len(data) <= MAX_CLIENT_MESSAGE
    assert decode_client(data) == msg


# -- bad client frames -------------------------------------------------------------


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
        (pack({"t": 5}), 1002, "the type tag 't' must be a string, got int"),
        (pack({"t": b""}), 1002, "the type tag 't' must be a string, got bytes"),
        (pack({"t": b"ack"}), 1002, "bin values are not accepted"),
        (pack({"t": "launch"}), 1002, "unknown message type"),
        (pack({"t": "welcome"}), 1002, "unknown message type"),  # a server message is not a client one
        (pack({"t": "hello", "v": 2, "name": "a"}), 1002, "version"),
        (pack({"t": "hello", "v": "1", "name": "a"}), 1002, "version"),
        (pack({"t": "hello", "v": 1}), 1007, "missing"),
        (pack({"t": "hello", "v": 1, "name": ""}), 1007, "name"),
        (pack({"t": "hello", "v": 1, "name": "a" * 25}), 1007, "name"),
        (pack({"t": "hello", "v": 1, "name": "bad\nname"}), 1007, "name"),
        (pack({"t": "hello", "v": 1, "name": "a", "spectate": 1}), 1007, "true or false"),
        (pack({"t": "hello", "v": 1, "name": "a", "token": ""}), 1007, "token"),
        (pack({"t": "input", "seq": -1, "in": []}), 1007, "seq"),
        (pack({"t": "input", "seq": 2**32, "in": []}), 1007, "seq"),
        (pack({"t": "input", "seq": 1, "in": 3}), 1007, "array"),
        (pack({"t": "input", "seq": 1, "in": {"dx": 1}}), 1007, "array"),
        (pack({"t": "input", "seq": 1, "in": [1.5]}), 1007, "integer"),
        (pack({"t": "input", "seq": 1, "in": [True]}), 1007, "integer"),
        (pack({"t": "input", "seq": 1, "in": [1.0]}), 1007, "in[0]: expected an integer, got float 1.0"),
        (pack({"t": "input", "seq": 1, "in": [0, "1"]}), 1007, "in[1]: expected an integer"),
        (pack({"t": "input", "seq": 0, "in": []}), 1007, "seq: expected an integer in [1, "),
        (pack({"t": "input", "seq": 1, "in": [], "view": -1}), 1007, "view"),
        (pack({"t": "input", "seq": 1, "in": [], "view": 1.0}), 1007, "view"),
        (pack({"t": "input", "seq": True, "in": []}), 1007, "seq"),
        (pack({"t": "input", "seq": 1, "in": [], "ack": -1}), 1007, "ack"),
        (pack({"t": "input", "seq": 1}), 1007, "missing field(s) in"),
        (pack({"t": "ack", "tick": "now"}), 1007, "tick"),
        (pack({"t": "ack"}), 1007, "missing"),
        (pack({"t": "ping", "id": 1, "time": "x"}), 1007, "number"),
        (pack({"t": "control", "speed": 9}), 1007, "speed"),
        (pack({"t": "control", "speed": 0.1}), 1007, "speed"),
        (pack({"t": "control", "speed": True}), 1007, "speed"),
        (pack({"t": "control", "seek": -1}), 1007, "seek"),
        (pack({"t": "control", "seek": 1.5}), 1007, "seek"),
        (pack({"t": "control", "pause": 1}), 1007, "pause"),
        (pack({1: "hello"}), 1002, "map keys must be strings"),
        (pack({"t": "ack", "tick": 1, b"": 1}), 1002, "map keys must be strings"),
        (pack({"t": "ack", "tick": 1, "x": {2: 1}}), 1002, "map keys must be strings"),
        (pack({"t": "hello", "v": 1, "name": "a"}) + b"\x00", 1002, "msgpack"),
        # A known key's bad value is refused beside keys the server does not know, as ever.
        (pack({"t": "hello", "v": 1, "name": "a", "later": 1, "spectate": "yes"}), 1007, "true or false"),
        (pack({"t": "input", "seq": 0, "in": [], "later": 1}), 1007, "seq"),
        (pack({"t": "input", "in": [], "later": 1}), 1007, "missing field(s) seq"),
        (pack({"t": "hello", "v": 1, "name": "a", b"": 1}), 1002, "map keys must be strings"),
        (b"\x92" * 100 + b"\x00", 1002, "msgpack"),
        (pack({"t": "input", "seq": 1, "in": [0] * 40}), 1002, "an array over 32 elements"),
        (pack({"t": "hello", "v": 1, "name": "a" * 300}), 1002, "a string over 256 bytes"),
        (pack({str(i): i for i in range(17)}), 1002, "a map over 16 keys"),
        (b"\x00" * (MAX_CLIENT_MESSAGE + 1), 1009, "limit"),
        (pack({"t": "hello", "v": 1, "name": b"bin"}), 1002, "bin values are not accepted"),
    ],
)
def test_malformed_client_frames_raise_protocol_errors_with_the_right_close_code(frame: Any, code: int, words: str) -> None:
    if isinstance(frame, bytes):
        assert decode_input(frame) is None  # the input's hot path leaves it to decode_client, which says why
    with pytest.raises(ProtocolError) as info:
        decode_client(frame)
    assert info.value.code == code
    assert words in info.value.reason


@pytest.mark.parametrize("obj, expected", [
    ({"t": "hello", "v": 1, "name": "a", "admin": True, "colour": "red"}, Hello(1, "a")),
    ({"t": "input", "seq": 1, "in": [1, 0], "fire": 1}, Input(1, (1, 0))),
    ({"t": "input", "seq": 2, "in": [], "view": 7, "redundant": [[1, [0]]]}, Input(2, (), view=7)),
    ({"t": "resync", "x": 1}, Resync()),
    ({"t": "control", "rewind": True, "speed": 2}, Control(speed=2.0)),
    ({"t": "leave", "now": True}, Leave()),
])
def test_keys_a_client_message_does_not_have_are_ignored_and_reported(obj: dict[str, Any], expected: Any) -> None:
    # A later minor version's optional keys (PROTOCOL.md, *Versions*): a server that does not know them goes on.
    seen: list[tuple[str, list[str]]] = []
    assert decode_client(pack(obj), lambda tag, keys: seen.append((tag, keys))) == expected
    assert seen == [(obj["t"], sorted(set(obj) - set(msgpack.unpackb(encode_client(expected)))))]
    assert decode_client(pack(obj)) == expected  # nobody to tell: ignored all the same


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_but_protocol_errors(data: bytes) -> None:
    try:
        decode_client(data)
    except ProtocolError as exc:
        assert exc.code in (1002, 1007, 1009)


wire_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
client_keys = sorted({k for m in MESSAGES if m.sender is Sender.CLIENT for k in m.keys} - {"t"})


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([m.tag for m in MESSAGES if m.sender is Sender.CLIENT]),
       st.dictionaries(st.sampled_from(client_keys), wire_values, max_size=5))
def test_maps_of_known_keys_and_any_values_decode_or_raise_protocol_errors(tag: str, fields: dict[str, Any]) -> None:
    data = pack({"t": tag, **fields})
    try:
        msg = decode_client(data)
    except ProtocolError as exc:
        assert exc.code in (1002, 1007, 1009)
    else:
        assert encode_client(msg) == encode_client(decode_client(encode_client(msg)))


# -- the input's hot path -----------------------------------------------------------

fixint_inputs = st.builds(Input, st.integers(1, U32), st.lists(st.integers(-32, 127), max_size=15).map(tuple),
                          st.none() | st.integers(0, U32), st.none() | st.integers(0, U32))


def loadgen_input(seq: int, values: tuple[int, ...], ack: int) -> bytes:
    """An input as the C load generator packs it (``tools/loadgen_c``): ``seq`` and ``ack`` always uint 32."""
    return (b"\x84\xa1t\xa5input\xa3seq\xce" + seq.to_bytes(4, "big") + b"\xa2in" + bytes((0x90 | len(values),))
            + bytes(v & 0xFF for v in values) + b"\xa3ack\xce" + ack.to_bytes(4, "big"))


@settings(max_examples=500, deadline=None)
@given(fixint_inputs)
def test_an_input_packed_as_clients_pack_it_takes_the_hot_path_with_its_fields(msg: Input) -> None:
    assert decode_input(encode_client(msg)) == (msg.seq, msg.values, msg.ack, msg.view)


def test_the_load_generators_inputs_take_the_hot_path() -> None:
    data = loadgen_input(70000, (-1, 1, 0), 2**32 - 1)
    assert decode_input(data) == (70000, (-1, 1, 0), 2**32 - 1, None)
    assert decode_client(data) == Input(70000, (-1, 1, 0), 2**32 - 1)


@pytest.mark.parametrize("obj", [
    {"t": "input", "seq": 1, "in": [0, 200]},  # a value that is not a fixint (arena's aim): msgpack reads it
    {"t": "input", "seq": 1, "in": [-33]},
    {"t": "input", "seq": 1, "in": [0], "ack": None},
    {"t": "input", "seq": 1, "in": [], "view": 2**33},  # uint 64
    {"seq": 1, "t": "input", "in": []},  # another key order
    {"t": "input", "seq": 1, "in": [], "view": 1, "ack": 2},
    {"t": "input", "seq": 1, "in": [0], "fire": 1},  # a later minor version's key
])
def test_other_shapes_are_left_to_decode_client(obj: dict[str, Any]) -> None:
    assert decode_input(pack(obj)) is None


def mutated(data: bytes, draw: Any) -> bytes:
    """``data`` with a few bytes replaced, cut or inserted."""
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(data)))
        what = draw(st.sampled_from(("replace", "cut", "insert")))
        byte = bytes((draw(st.integers(0, 255)),))
        if what == "replace" and i < len(data):
            data = data[:i] + byte + data[i + 1:]
        elif what == "cut":
            data = data[:i]
        else:
            data = data[:i] + byte + data[i:]
    return data


@settings(max_examples=2000, deadline=None)
@given(st.one_of(fixint_inputs.map(encode_client),
                 st.tuples(st.integers(0, U32), st.lists(st.integers(-32, 127), max_size=4).map(tuple),
                           st.integers(0, U32)).map(lambda a: loadgen_input(*a))),
       st.data())
def test_the_hot_path_never_reads_what_decode_client_would_read_otherwise(data: bytes, draw: st.DataObject) -> None:
    data = mutated(data, draw.draw)
    fields = decode_input(data)
    if fields is None:
        return
    ignored: list[Any] = []
    assert decode_client(data, lambda tag, keys: ignored.append(keys)) == Input(*fields)
    assert ignored == []


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=48))
def test_random_bytes_on_the_hot_path_are_none_or_what_decode_client_reads(data: bytes) -> None:
    fields = decode_input(data)
    if fields is not None:
        assert decode_client(data) == Input(*fields)


# -- server messages ---------------------------------------------------------------


@pytest.mark.parametrize("build", [
    lambda: Welcome(1, "main", -1, None, 30, 0, "tok", {}),
    lambda: Welcome(1, "main", 1, None, 0, 0, "tok", {}),
    lambda: Welcome(1, "main", 1, None, 30, 0, "", {}),
    lambda: Welcome(1, "main", 1, None, 30, 0, "tok", []),  # type: ignore[arg-type]
    lambda: Welcome(1, 5, 1, None, 30, 0, "tok", {}),  # type: ignore[arg-type]
    lambda: Welcome(1, "main", 1, None, 30, 0, "tok", {}, resumed=1),  # type: ignore[arg-type]
    lambda: RosterEntry(1, 2, None, True),  # type: ignore[arg-type]
    lambda: RosterEntry(1, 2.0, "a", True),  # type: ignore[arg-type]
    lambda: Roster(([1, 2, "a", True],)),  # type: ignore[arg-type]
    lambda: Roster(5),  # type: ignore[arg-type]
    lambda: Roster((), -1),
    lambda: RosterDelta(0, (), ()),  # revision 0 is the empty roster: no delta brings a roster to it
    lambda: RosterDelta(1, (), (-1,)),
    lambda: RosterDelta(1, (), 3),  # type: ignore[arg-type]
    lambda: RosterDelta(1, ([1, 2, "a", True],), ()),  # type: ignore[arg-type]
    lambda: Pong(1, "now", 3),  # type: ignore[arg-type]
    lambda: Pong(1, 0.0, 2**32),
    lambda: Error(7, "bad"),
    lambda: Error(1008, b"bad"),  # type: ignore[arg-type]
    lambda: Moved(None),  # type: ignore[arg-type]
    lambda: Update(-1, None, {}, 0, 0),
    lambda: Update(1, 1.0, {}, 0, 0),  # type: ignore[arg-type]
    lambda: Update(1, None, {"rows": 1, "extra": 2}, 0, 0),
    lambda: Update(1, None, {}, 2**32, 0),
    lambda: Update(1, None, {}, 0, 0, 5),  # type: ignore[arg-type]
    lambda: ReplayInfo(**{**INFO, "seed": 2**64}),
    lambda: ReplayInfo(**{**INFO, "options": {"drones": "many"}}),
    lambda: ReplayInfo(**{**INFO, "keyframes": [0, -300]}),
    lambda: ReplayInfo(**{**INFO, "checkpoints": [[30]]}),
    lambda: ReplayInfo(**{**INFO, "checkpoints": [30, 60]}),
    lambda: ReplayInfo(**{**INFO, "players": [[1, 2]]}),
    lambda: ReplayInfo(**{**INFO, "scores": {}}),
    lambda: ReplayInfo(**{**INFO, "warnings": "torn"}),
    lambda: ReplayStatus(1, 0, 660, False, 16.0),
    lambda: ReplayStatus(1, 0, 660, None, 1.0),  # type: ignore[arg-type]
])
def test_an_invalid_server_message_cannot_be_built(build: Any) -> None:
    with pytest.raises(InvalidField):
        build()


@pytest.mark.parametrize("obj, words", [
    ({"t": "pong", "id": "x", "time": 0, "tick": 1}, "id"),
    ({"t": "pong", "id": 1, "time": 0}, "missing field(s) tick"),
    ({"t": "welcome", "match": "m"}, "missing field(s) v, player"),
    ({"t": "roster", "players": [[1, None, "a"]]}, "players"),
    ({"t": "roster", "players": [[1, None, "a", "yes"]]}, "online"),
    ({"t": "roster", "players": [], "rev": "2"}, "rev"),
    ({"t": "roster_delta", "rev": 2, "players": []}, "missing field(s) gone"),
    ({"t": "roster_delta", "rev": 2, "players": [], "gone": ["a"]}, "gone"),
    ({"t": "roster_delta", "rev": 2, "players": [[1, None, "a"]], "gone": []}, "players"),
    ({"t": "update", "tick": 1, "base": None, "sum": 0}, "missing field(s) ack"),
    ({"t": "update", "tick": 1, "base": -2, "sum": 0, "ack": 0}, "base"),
    ({"t": "update", "tick": 1, "base": None, "sum": 0, "ack": 0, "ev": 3}, "events"),
    ({"t": "error", "code": 1008}, "missing field(s) reason"),
    ({"t": "replay", "tick": 1, "first": 0, "last": 9, "paused": False, "speed": 99}, "speed"),
    ({"t": "replay_info", **INFO, "first": "zero"}, "first"),
])
def test_a_bad_server_frame_is_an_invalid_field(obj: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidField) as info:
        decode_server(pack(obj))
    assert info.value.code == 1007
    assert words in info.value.reason


def test_clients_ignore_unknown_keys_in_server_messages_but_not_unknown_types() -> None:
    assert decode_server(pack({"t": "pong", "id": 1, "time": 2.5, "tick": 9, "load": 0.3})) == Pong(1, 2.5, 9)
    update = decode_server(pack({"t": "update", "tick": 2, "base": None, "sum": 0, "ack": 0, "later": [1]}))
    assert isinstance(update, Update) and update.body == {}
    with pytest.raises(ProtocolError, match="unknown message type") as info:
        decode_server(pack({"t": "input", "seq": 1, "in": []}))
    assert info.value.code == 1002


def test_encoders_refuse_the_other_sides_messages() -> None:
    with pytest.raises(TypeError):
        encode_client(Pong(1, 2, 3))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encode_server(Hello(1, "a"))  # type: ignore[arg-type]


# -- the table ---------------------------------------------------------------------


def test_the_table_holds_every_message_class_once() -> None:
    assert len({m.cls for m in MESSAGES}) == len(MESSAGES)
    for sender in Sender:
        tags = [m.tag for m in MESSAGES if m.sender is sender]
        assert len(set(tags)) == len(tags)


def test_an_entry_that_does_not_cover_its_class_is_refused_at_import() -> None:
    with pytest.raises(TypeError, match="do not cover"):
        Message("pong", Pong, Sender.SERVER, (Req("id"), Req("time")))
    with pytest.raises(TypeError, match="no default"):
        Message("pong", Pong, Sender.SERVER, (Req("id"), Req("time"), Opt("tick")))
    with pytest.raises(TypeError, match="duplicate"):
        Message("pong", Pong, Sender.SERVER, (Req("id"), Req("time"), Req("id", "tick")))


def test_optional_fields_take_the_class_default_when_absent() -> None:
    for m in MESSAGES:
        for f, default in zip(m.fields, m.defaults):
            assert f.inline or (default is attrs.NOTHING) == (not f.optional), (m.tag, f.key)
    assert decode_server(pack({"t": "welcome", "v": 1, "match": "m", "player": 1, "entity": None, "tick_rate": 30,
                               "tick": 0, "token": "t", "ruleset": {}})) == Welcome(1, "m", 1, None, 30, 0, "t", {})

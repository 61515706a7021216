"""The frame splitter against the websockets library's own frame writer, cut at every byte."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from server.frames import FrameSplitter, RequestEnd

MAX = 1024


def client_frame(opcode: Opcode, payload: bytes, fin: bool = True) -> bytes:
    """A frame as a client writes it (masked), serialized by websockets itself."""
    return Frame(opcode, payload, fin).serialize(mask=True, extensions=[])


def feed_in_pieces(splitter: FrameSplitter, stream: bytes, cuts: list[int]) -> list[tuple[bool, bytes]]:
    out = []
    last = 0
    for cut in sorted({c % (len(stream) + 1) for c in cuts}) + [len(stream)]:
        out += splitter.feed(stream[last:cut])
        last = cut
    return out


def merged(pieces: list[tuple[bool, bytes]]) -> list[tuple[bool, bytes]]:
    """Adjacent raw pieces joined (how the library sees them is one byte stream)."""
    out: list[tuple[bool, bytes]] = []
    for is_msg, data in pieces:
        if out and not is_msg and not out[-1][0]:
            out[-1] = (False, out[-1][1] + data)
        elif is_msg or data:
            out.append((is_msg, data))
    return out


def written(frames: list[tuple[str, bytes]]) -> tuple[bytes, list[tuple[bool, bytes]]]:
    """The stream of these simple frames, and the pieces the splitter should make of it."""
    stream = b""
    expected: list[tuple[bool, bytes]] = []
    for kind, payload in frames:
        raw = client_frame({"msg": Opcode.BINARY, "ping": Opcode.PING, "pong": Opcode.PONG}[kind], payload)
        stream += raw
        expected.append((True, payload) if kind == "msg" else (False, raw))
    return stream, expected


simple = st.one_of(
    st.binary(max_size=MAX).map(lambda p: ("msg", p)),
    st.binary(max_size=125).map(lambda p: ("ping", p)),
    st.binary(max_size=125).map(lambda p: ("pong", p)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(simple, max_size=12), st.lists(st.integers(0, 1 << 20), max_size=20))
def test_messages_come_out_unmasked_and_control_frames_whole_however_the_stream_is_cut(frames, cuts):
    stream, expected = written(frames)
    splitter = FrameSplitter(MAX)
    got = feed_in_pieces(splitter, stream, cuts)
    assert merged(got) == merged(expected)
    assert not splitter.passthrough
    # Control frames reach the library one whole frame at a time, never a part of one.
    raws = [data for is_msg, data in got if not is_msg]
    assert raws == [data for is_msg, data in expected if not is_msg]


unusual = st.sampled_from([
    ("text", lambda: client_frame(Opcode.TEXT, b"hello")),
    ("fragment", lambda: client_frame(Opcode.BINARY, b"part", fin=False)),
    ("continuation", lambda: client_frame(Opcode.CONT, b"rest")),
    ("reserved bit", lambda: bytes([0xC2, 0x81]) + b"\x00" * 4 + b"x"),  # RSV1 without an extension
    ("close", lambda: client_frame(Opcode.CLOSE, b"\x03\xe8bye")),
    ("unmasked", lambda: Frame(Opcode.BINARY, b"x").serialize(mask=False, extensions=[])),
    ("over max size", lambda: client_frame(Opcode.BINARY, os.urandom(MAX + 1))),
    ("64-bit length", lambda: client_frame(Opcode.BINARY, bytes(70_000))),
    ("unknown opcode", lambda: bytes([0x83, 0x80]) + b"\x00" * 4),
])


@settings(max_examples=200, deadline=None)
@given(st.lists(simple, max_size=6), unusual, st.lists(simple, max_size=4),
       st.lists(st.integers(0, 1 << 20), max_size=10))
def test_from_the_first_unusual_frame_on_every_byte_goes_to_the_library(before, odd, after, cuts):
    head, expected = written(before)
    tail = odd[1]() + b"".join(client_frame(Opcode.BINARY, p) for _, p in after)
    splitter = FrameSplitter(MAX)
    got = feed_in_pieces(splitter, head + tail, cuts)
    assert merged(got) == merged([*expected, (False, tail)])
    assert splitter.passthrough


@settings(max_examples=300, deadline=None)
@given(simple, simple)
def test_one_takes_a_read_that_is_exactly_one_short_message_and_leaves_anything_else_to_feed(frame, other):
    data, pieces = written([frame])
    short = frame[0] == "msg" and len(frame[1]) <= 125
    assert FrameSplitter(MAX).one(data) == (pieces[0][1] if short else None)
    assert FrameSplitter(MAX).one(data + written([other])[0]) is None  # two frames in one read
    started = FrameSplitter(MAX)
    assert started.feed(data[:1]) == []
    assert started.one(data) is None  # a frame's start waits: this read goes after it


def test_one_leaves_text_unmasked_and_oversized_frames_to_feed() -> None:
    assert FrameSplitter(MAX).one(client_frame(Opcode.TEXT, b"hi")) is None
    assert FrameSplitter(MAX).one(Frame(Opcode.BINARY, b"hi").serialize(mask=False, extensions=[])) is None
    assert FrameSplitter(4).one(client_frame(Opcode.BINARY, b"12345")) is None
    assert FrameSplitter(4).one(client_frame(Opcode.BINARY, b"1234")) == b"1234"


def test_a_frame_waits_for_its_last_byte() -> None:
    splitter = FrameSplitter(MAX)
    raw = client_frame(Opcode.BINARY, b"input")
    assert splitter.feed(raw[:-1]) == []
    assert splitter.feed(raw[-1:]) == [(True, b"input")]
    assert splitter.feed(b"") == []


def test_a_16_bit_length_message_is_read_here() -> None:
    payload = os.urandom(600)
    assert FrameSplitter(MAX).feed(client_frame(Opcode.BINARY, payload)) == [(True, payload)]


REQUEST = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.lists(st.integers(0, 1 << 12), max_size=12))
def test_the_request_end_is_found_across_any_cuts_and_what_follows_it_is_set_apart(behind, cuts):
    watch = RequestEnd()
    stream = REQUEST + behind
    request, rest = b"", b""
    last = 0
    for cut in sorted({c % (len(stream) + 1) for c in cuts}) + [len(stream)]:
        piece = stream[last:cut]
        used = watch.feed(piece)
        request, rest = request + piece[:used], rest + piece[used:]
        last = cut
    assert watch.done
    assert (request, rest) == (REQUEST, behind)


def test_a_request_that_never_ends_keeps_three_bytes_however_long_it_grows() -> None:
    watch = RequestEnd()
    for _ in range(1000):
        assert watch.feed(b"X-Junk: " + b"a" * 1000 + b"\r\n") == 1010
    assert not watch.done and len(watch._tail) == 3

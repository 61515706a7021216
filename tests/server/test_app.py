"""The asyncio shell's own byte handling, checked against the websockets library."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from server.app import SlowReader, binary_frame_header, outgoing_close


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_frame_header_matches_what_websockets_writes(size: int) -> None:
    payload = bytes(size)
    assert binary_frame_header(size) + payload == Frame(Opcode.BINARY, payload).serialize(mask=False, extensions=[])


@pytest.mark.parametrize("code", [1002, 1007, 1009, 1011])
def test_the_close_frame_the_library_fails_with_is_read_back_from_its_output(code: int) -> None:
    protocol = ServerProtocol(state=State.OPEN)
    protocol.send_ping(b"before")  # frames ahead of the close frame are skipped
    protocol.fail(code, "why it failed")
    close = outgoing_close(protocol.data_to_send())
    assert close is not None and (close.code, close.reason) == (code, "why it failed")


def test_output_without_a_close_frame_has_no_close() -> None:
    protocol = ServerProtocol(state=State.OPEN)
    protocol.send_pong(b"\x88\x88")  # a payload that looks like a close frame's first byte
    assert outgoing_close(protocol.data_to_send()) is None


def test_a_slow_reader_is_given_up_on_only_after_its_queue_stays_full_for_the_timeout() -> None:
    stats = {"frames_dropped": 0, "slow_closed": 0}
    slow = SlowReader(max_buffer=1000, timeout_s=5.0, stats=stats)
    assert [slow.dropped(t) for t in (100.0, 103.0, 105.0)] == [False, False, False]
    slow.since = None  # an update went out: the queue drained
    assert [slow.dropped(t) for t in (106.0, 110.0, 111.5)] == [False, False, True]
    assert stats == {"frames_dropped": 6, "slow_closed": 1}
    assert "1000 bytes" in slow.reason() and "5 s" in slow.reason()

"""The asyncio shell's own byte handling, checked against the websockets library."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from server.app import binary_frame_header


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_frame_header_matches_what_websockets_writes(size: int) -> None:
    payload = bytes(size)
    assert binary_frame_header(size) + payload == Frame(Opcode.BINARY, payload).serialize(mask=False, extensions=[])

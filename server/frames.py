"""Splitting a client's WebSocket stream into the messages we read and the frames websockets reads.

A game client sends about 30 small binary messages a second, each in one
frame. Parsing those in the websockets library (a generator per frame, a
``Frame`` object, events, its bookkeeping) costs more than the message is
worth, so the server reads them itself and leaves everything else to the
library. ``FrameSplitter`` is sans-I/O: bytes in, a list of pieces out.

- A complete, final, masked binary frame (RFC 6455 5.2) whose payload is at
  most ``max_size`` bytes and whose length takes 7 or 16 bits is a
  *message*: its unmasked payload.
- A complete control frame (close, ping, pong) is handed to the library as
  its raw bytes, so the library keeps doing keepalive and the closing
  handshake. It only ever sees whole frames, so its parser is always between
  frames when the next piece comes.
- Anything else (a text frame, a fragment, reserved bits, an unmasked frame,
  a 64-bit length, an unknown opcode, a close frame, which ends the
  conversation): from that frame on, every byte goes to the library
  (``passthrough``), which accepts, refuses or fails the connection as the
  RFC says.
"""

from __future__ import annotations

from attrs import define

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

#: First bytes of the frames handled here: FIN + opcode, no reserved bits.
_BINARY = 0x82
_PING, _PONG = 0x89, 0x8A


class FrameSplitter:
    """One connection's stream after the opening handshake.

    Args:
        max_size: the largest message payload read here; larger frames go
            to the library (which refuses those over its own limit).
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        #: True once the library reads every byte (it never goes back).
        self.passthrough = False
        #: The start of a frame whose end has not come yet. A bytearray, so a
        #: frame sent a byte at a time costs linear time, not quadratic.
        self._buf = bytearray()

    def one(self, data: bytes) -> bytes | None:
        """The payload when ``data`` is exactly one whole message and nothing waits before it, else None
        (then ``feed`` it). A client's input per tick comes in one read by itself: this is its path, with
        no list and no tuple; what it accepts is what ``feed`` would return as one message."""
        if self.passthrough or self._buf or len(data) < 6 or data[0] != _BINARY:
            return None
        length = data[1] ^ 0x80  # masked: the high bit set, or the result is 128 or more
        if length > 125 or length > self.max_size or len(data) != length + 6:
            return None
        return apply_mask(data[6:], data[2:6])

    def feed(self, data: bytes) -> list[tuple[bool, bytes]]:
        """Take the next bytes of the stream.

        Returns:
            In stream order, ``(True, payload)`` for each message and
            ``(False, raw)`` for bytes the library must parse. An incomplete
            frame at the end waits for the next ``feed``.
        """
        if self.passthrough:
            return [(False, data)] if data else []
        pending = self._buf
        if pending:
            pending += data
            buf: bytes | bytearray = pending
        else:
            buf = data  # the usual case: whole frames in one read, no copy
        out: list[tuple[bool, bytes]] = []
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 6
            if length == 126:
                if end - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 8
            simple = b1 & 0x80 and length != 127 and (
                (b0 == _BINARY and length <= self.max_size) or ((b0 == _PING or b0 == _PONG) and length <= 125))
            if not simple:
                self.passthrough = True
                out.append((False, bytes(buf[pos:])))
                pending.clear()
                return out
            stop = pos + head + length
            if stop > end:
                break
            if b0 == _BINARY:
                out.append((True, apply_mask(bytes(buf[pos + head:stop]), bytes(buf[pos + head - 4:pos + head]))))
            else:
                out.append((False, bytes(buf[pos:stop])))
            pos = stop
        if buf is pending:
            del pending[:pos]
        elif pos < end:
            pending += buf[pos:]
        return out


@define
class RequestEnd:
    """Where a client's opening request ends (its empty line), found across reads in constant memory."""

    done: bool = False
    _tail: bytes = b""

    def feed(self, data: bytes) -> int:
        """Take the next bytes; returns how many of them belong to the request (all, until it ends)."""
        if self.done:
            return 0
        seen = self._tail + data
        end = seen.find(b"\r\n\r\n")
        if end < 0:
            self._tail = seen[-3:]
            return len(data)
        self.done = True
        used = end + 4 - (len(seen) - len(data))
        self._tail = b""
        return used

"""Protocol errors, each carrying the WebSocket close code it maps to."""

from __future__ import annotations

# WebSocket close codes (RFC 6455 section 7.4.1) used by this protocol.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
#: The match moved to another server (a ``moved`` message names it): reconnect there.
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013


class ProtocolError(Exception):
    """The peer sent something this protocol does not accept.

    Attributes:
        code: the WebSocket close code to close the connection with.
        reason: a short human-readable explanation (sent to the peer).
    """

    code: int = CLOSE_PROTOCOL_ERROR

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.reason} (close code {self.code})"


class MalformedMessage(ProtocolError):
    """Not msgpack, not a map, no type tag, unknown type, or a message out of turn."""

    code = CLOSE_PROTOCOL_ERROR


class UnsupportedData(ProtocolError):
    """A text frame, where only binary frames are accepted."""

    code = CLOSE_UNSUPPORTED_DATA


class InvalidField(ProtocolError):
    """A field with the wrong type or outside its range."""

    code = CLOSE_INVALID_DATA


class PolicyViolation(ProtocolError):
    """Allowed by the format but not by the rules (rate limit, spectator input...)."""

    code = CLOSE_POLICY


class MessageTooBig(ProtocolError):
    """A message over the size limit."""

    code = CLOSE_TOO_BIG

    def __init__(self, size: int, max_size: int) -> None:
        super().__init__(f"message of {size} bytes is over the limit of {max_size} bytes")
        self.size = size
        self.max_size = max_size


class UnsupportedVersion(ProtocolError):
    """The client speaks a protocol version this server does not."""

    code = CLOSE_PROTOCOL_ERROR

    def __init__(self, version: object, supported: int) -> None:
        super().__init__(f"protocol version {version!r} is not supported; this server speaks version {supported}")
        self.version = version
        self.supported = supported

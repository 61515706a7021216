"""The per-connection state machine, sans I/O.

States and the messages each accepts are one table (``ALLOWED``); a message
out of turn is a protocol error. The session also validates inputs against
the ruleset's ranges, drops stale inputs, tracks the client's acknowledged
tick, and enforces a message rate limit with a token bucket on an injected
clock.
"""

from __future__ import annotations

import enum

from attrs import define, field

from game.schema import InputField
from server.protocol.codec import decode_client
from server.protocol.errors import InvalidField, MalformedMessage, PolicyViolation
from server.protocol.messages import Ack, ClientMessage, Hello, Input, Ping, Resync


class State(enum.Enum):
    HANDSHAKE = "handshake"
    ACTIVE = "active"
    CLOSED = "closed"


#: Which messages each state accepts, and the state each one leads to.
ALLOWED: dict[State, dict[type, State]] = {
    State.HANDSHAKE: {Hello: State.ACTIVE},
    State.ACTIVE: {Input: State.ACTIVE, Ack: State.ACTIVE, Ping: State.ACTIVE, Resync: State.ACTIVE},
    State.CLOSED: {},
}

#: Default sustained message rate (per second) and burst a client may send.
RATE_PER_S = 120.0
RATE_BURST = 240.0


def default_rate(tick_rate: int) -> float:
    """The default sustained message rate at ``tick_rate``: room for an input every tick,
    pings and acks, four times over (120 a second at 30 Hz)."""
    return float(max(RATE_PER_S, 4 * tick_rate))


@define
class ServerSession:
    """One connection's protocol state.

    Attributes:
        inputs: the ruleset's input fields (ranges checked here).
        state: where the handshake stands.
        spectator: set by ``hello``.
        last_seq: the newest input sequence number accepted (-1: none).
        acked: the newest update tick the client says it holds (None: none).
    """

    inputs: tuple[InputField, ...]
    rate: float = RATE_PER_S
    burst: float = RATE_BURST
    state: State = State.HANDSHAKE
    spectator: bool = False
    last_seq: int = -1
    acked: int | None = None
    #: Acks at or below this tick are ignored (set by a resync, whose old states are gone).
    ack_floor: int = -1
    _tokens: float = field(init=False, default=0.0)
    _last_time: float | None = field(init=False, default=None)

    def receive(self, data: bytes | bytearray | memoryview | str, now: float, server_tick: int) -> ClientMessage | None:
        """Decode and check one frame; returns the message, or None for a stale input.

        Args:
            data: the frame's payload (str for a text frame).
            now: monotonic seconds, for the rate limit.
            server_tick: the server's current tick (acks may not be ahead of it).

        Raises:
            ProtocolError: with the close code to use.
        """
        self.charge(now)
        msg = decode_client(data)
        allowed = ALLOWED[self.state]
        if type(msg) not in allowed:
            expected = ", ".join(sorted(t.__name__.lower() for t in allowed)) or "nothing"
            raise MalformedMessage(f"{type(msg).__name__.lower()} is not allowed in state {self.state.value} (expected {expected})")
        self.state = allowed[type(msg)]
        if isinstance(msg, Hello):
            self.spectator = msg.spectate
        elif isinstance(msg, Input):
            if self.spectator:
                raise PolicyViolation("spectators cannot send input")
            self._check_input(msg)
            self._ack(msg.ack, server_tick)
            if msg.seq <= self.last_seq:
                return None
            self.last_seq = msg.seq
        elif isinstance(msg, Ack):
            self._ack(msg.tick, server_tick)
        elif isinstance(msg, Resync):
            self.acked = None
            self.ack_floor = server_tick
        return msg

    def close(self) -> None:
        self.state = State.CLOSED

    def _check_input(self, msg: Input) -> None:
        if len(msg.values) != len(self.inputs):
            raise InvalidField(f"input: expected {len(self.inputs)} values ({', '.join(f.name for f in self.inputs)}), got {len(msg.values)}")
        for f, v in zip(self.inputs, msg.values):
            if not f.lo <= v <= f.hi:
                raise InvalidField(f"input: {f.name}={v} is outside [{f.lo}, {f.hi}]")

    def _ack(self, tick: int | None, server_tick: int) -> None:
        if tick is None or tick <= self.ack_floor:
            return
        if tick > server_tick:
            raise InvalidField(f"ack of tick {tick}, ahead of the server's tick {server_tick}")
        if self.acked is None or tick > self.acked:
            self.acked = tick

    def charge(self, now: float) -> None:
        """Count one message (or WebSocket ping) against the rate limit.

        Raises:
            PolicyViolation: over the limit (close code 1008).
        """
        if self._last_time is None:
            self._tokens = self.burst
        else:
            self._tokens = min(self.burst, self._tokens + (now - self._last_time) * self.rate)
        self._last_time = now
        if self._tokens < 1.0:
            raise PolicyViolation(f"more than {self.rate:g} messages per second")
        self._tokens -= 1.0

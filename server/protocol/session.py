"""The per-connection state machine, sans I/O, for players and replay viewers alike.

States and the messages each accepts are one table (``ALLOWED``); a message
out of turn is a protocol error (1002). A session is created for what the
connection joins: ``ServerSession(inputs)`` for a live match (``HANDSHAKE``
then ``ACTIVE``), ``ServerSession.for_viewer()`` for a replay's playback
(``VIEWER_HANDSHAKE`` then ``WATCHING``, where ``control`` is accepted and
``input`` is not). The session also validates inputs against the ruleset's
ranges (stale sequence numbers are the input queue's business,
``server/inputs.py``), tracks the client's acknowledgements, and
enforces the connection's one rate limit (on an injected clock):

- **Answers.** Each update the feed sends (``sent_update``) lets the
  client send one ``input`` or ``ack``: a client that stalled and answers
  every update that waited, all at once, stays within its rights. Unused
  answers are remembered up to ``max_credit`` updates.
- **Allowance.** Everything else, and answers beyond that, come out of a
  token bucket of ``rate`` messages a second and ``burst`` at once: each
  message costs one token (``COST`` lists the dearer ones), and so does each
  WebSocket ping or pong (``charge``).

Acknowledgements also say what the client has read: the session keeps the
ticks it is known to hold (``holds``: those it was sent and acknowledged,
directly or by acknowledging a later one: the delta bases it may be sent,
``server/protocol/history.py``) and the updates sent since the last one
it acknowledged (``unacked_bytes``, and since when it has been behind:
``ack_overdue``), so the shell can tell a client that stopped reading from
one that reads slowly.

Acknowledgements: acks at or below ``ack_floor`` are ignored (a ``resync``
raises it to the current tick: the client's older states are gone). An ack
ahead of the server's tick is an error from a player; from a viewer it is
ignored, because a playback's ticks jump at a seek, even backwards, and acks
of the old timeline may still be in flight: the playback calls
``restart_acks(tick)`` at each seek, so only acks of ticks from ``tick`` to
the playback's current tick count.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable

from attrs import define, field

from game.schema import InputField
from server.protocol.codec import decode_client, decode_input
from server.protocol.errors import InvalidField, MalformedMessage, PolicyViolation
from server.protocol.messages import Ack, ClientMessage, Control, Hello, Input, Leave, Ping, Resync


class State(enum.Enum):
    HANDSHAKE = "handshake"
    ACTIVE = "active"
    VIEWER_HANDSHAKE = "viewer handshake"
    WATCHING = "watching"
    CLOSED = "closed"


#: Which messages each state accepts, and the state each one leads to.
ALLOWED: dict[State, dict[type, State]] = {
    # A player or spectator of a live match.
    State.HANDSHAKE: {Hello: State.ACTIVE},
    State.ACTIVE: {Input: State.ACTIVE, Ack: State.ACTIVE, Ping: State.ACTIVE, Resync: State.ACTIVE,
                   Leave: State.CLOSED},
    # A viewer of a replay's playback: a spectator that steers the playback instead of playing.
    State.VIEWER_HANDSHAKE: {Hello: State.WATCHING},
    State.WATCHING: {Ack: State.WATCHING, Ping: State.WATCHING, Resync: State.WATCHING, Control: State.WATCHING,
                     Leave: State.CLOSED},
    State.CLOSED: {},
}

#: Default allowance of a replay viewer (per second, and at once): its acks are answers, its controls come out of it.
RATE_PER_S = 120.0
RATE_BURST = 240.0

#: A player's default allowance is this many messages per tick (at least ``MIN_RATE_PER_S`` a second).
RATE_PER_TICK = 2
MIN_RATE_PER_S = 60.0

#: Unanswered updates a client may answer later: a minute's (``CREDIT_S``) at 30 Hz.
CREDIT_S = 60
MAX_CREDIT = CREDIT_S * 30

#: Ticks a client is known to hold, remembered per client (the delta bases it may get): the server's history
#: (``server.protocol.history.HISTORY_SIZE``).
HOLDS = 40

#: What a message costs against the rate limit, in messages (1 unless listed). A ``control``
#: may make the playback re-simulate up to a keyframe period: at the default rate a viewer
#: may send 30 a second sustained, 60 in a burst, less what its acks and pings use.
COST: dict[type, int] = {Control: 4}


#: Tuples of input values ``valid_inputs`` lists at most (arena's 4,608 fit).
MAX_VALID_INPUTS = 1 << 14


def valid_inputs(inputs: tuple[InputField, ...]) -> frozenset[tuple[int, ...]] | None:
    """Every tuple of in-range values of ``inputs``, or None when there are more than ``MAX_VALID_INPUTS``.

    An input's values are ints (``Input`` checks their types), so whether they are all in range is one
    lookup in this set instead of a comparison per field (equal ints hash alike; no float or bool gets here).
    Made once per ruleset's inputs.
    """
    if inputs in _VALID:
        return _VALID[inputs]
    count = 1
    for f in inputs:
        count *= f.hi - f.lo + 1
    valid = None
    if count <= MAX_VALID_INPUTS:
        combos: list[tuple[int, ...]] = [()]
        for f in inputs:
            combos = [c + (v,) for c in combos for v in range(f.lo, f.hi + 1)]
        valid = frozenset(combos)
    _VALID[inputs] = valid
    return valid


_VALID: dict[tuple[InputField, ...], frozenset[tuple[int, ...]] | None] = {}


def default_rate(tick_rate: int) -> float:
    """A player's default allowance at ``tick_rate``, messages a second beyond one answer per update:
    pings, resyncs, inputs a client sends while its updates stall (60 a second at 30 Hz)."""
    return float(max(MIN_RATE_PER_S, RATE_PER_TICK * tick_rate))


@define
class ServerSession:
    """One connection's protocol state.

    Attributes:
        inputs: the ruleset's input fields (ranges checked here; none for a viewer).
        rate, burst: the allowance, messages per second sustained and at most at once.
        max_credit: answers (``input``, ``ack``) owed for updates sent, at most.
        max_unacked: bytes of updates the client may owe acknowledgements for: past them, the feed sends it
            no update until it acknowledges (``waiting``); the shell sets it (``--max-unacked``).
        state: where the conversation stands (``ALLOWED``).
        spectator: set by ``hello`` (always true for a viewer).
        viewer: a replay viewer's session (``for_viewer``).
        acked: the newest update tick the client says it holds (None: none).
        ack_floor: acks at or below this tick are ignored (set by a resync, or ``restart_acks``).
        last_keyframe: the tick of the last keyframe sent (None: none since the last ack).
        last_ack: the server's tick when the client's acknowledgements last advanced (None: never).
        silent_keyframes: keyframes sent while ``last_ack`` was None (``UpdateEncoder.silent_wait``).
        ignored_keys: keys the client sent that their message does not have (a later minor version's:
            ignored, PROTOCOL.md *Versions*).
        on_ignored: called with the message's tag and such keys (the shell counts and logs them), or None.
    """

    inputs: tuple[InputField, ...]
    rate: float = RATE_PER_S
    burst: float = RATE_BURST
    state: State = State.HANDSHAKE
    spectator: bool = False
    viewer: bool = False
    acked: int | None = None
    ack_floor: int = -1
    max_credit: int = MAX_CREDIT
    max_unacked: int = 1 << 62
    last_keyframe: int | None = None
    last_ack: int | None = None
    silent_keyframes: int = 0
    ignored_keys: int = 0
    on_ignored: Callable[[str, list[str]], None] | None = None
    _tokens: float = field(init=False, default=0.0)
    _last_time: float | None = field(init=False, default=None)
    _credit: int = field(init=False, default=0)
    #: The ticks the client is known to hold (sent, then acknowledged), oldest first, as a list and as a set.
    _held: deque[int] = field(init=False, factory=deque)
    _holds: set[int] = field(init=False, factory=set)
    #: Bytes of updates sent, in all; the (tick, bytes in all) of each not acknowledged yet; bytes acknowledged.
    _sent_bytes: int = field(init=False, default=0)
    _unacked: deque[tuple[int, int]] = field(init=False, factory=deque)
    _acked_bytes: int = field(init=False, default=0)
    #: Since when an update has waited for its acknowledgement without any ack advancing (None: none waits).
    _behind_since: float | None = field(init=False, default=None)
    #: Every in-range tuple of input values, when they are few (``valid_inputs``).
    _valid: frozenset[tuple[int, ...]] | None = field(init=False)

    @_valid.default
    def _valid_default(self) -> frozenset[tuple[int, ...]] | None:
        return valid_inputs(self.inputs)

    @classmethod
    def for_viewer(cls, *, rate: float = RATE_PER_S, burst: float = RATE_BURST) -> ServerSession:
        """The session of a replay viewer: ``hello``, then acks, pings, resyncs and controls."""
        return cls((), rate, burst, State.VIEWER_HANDSHAKE, spectator=True, viewer=True)

    def receive(self, data: bytes | bytearray | memoryview | str, now: float, server_tick: int) -> ClientMessage:
        """Decode and check one frame; returns the message.

        Args:
            data: the frame's payload (str for a text frame).
            now: monotonic seconds, for the rate limit.
            server_tick: the tick of the newest update the server (or the playback) has sent:
                acks may not be ahead of it.

        Raises:
            ProtocolError: with the close code to use.
        """
        self.charge(now)
        msg = decode_client(data, self._ignored)
        cls = type(msg)
        if type(msg) is Input and self.state is State.ACTIVE and not self.spectator:
            # A player's input, 30 a second: what the general path below does for it, without its lookups.
            if self._credit > 0:
                self._credit -= 1
                self._tokens += 1.0
            self._check_values(msg.values)
            self._ack(msg.ack, server_tick, now)
            return msg
        if (cls is Input or cls is Ack) and self._credit > 0:
            self._credit -= 1  # an answer to an update: the token charged before decoding goes back
            self._tokens += 1.0
        allowed = ALLOWED[self.state]
        if cls not in allowed:
            expected = ", ".join(sorted(t.__name__.lower() for t in allowed)) or "nothing"
            raise MalformedMessage(f"{cls.__name__.lower()} is not allowed in state {self.state.value} (expected {expected})")
        if cls in COST:
            cost = COST[cls]
            if self._tokens < cost - 1:  # one was charged before decoding
                raise PolicyViolation(f"more than {self.rate / cost:g} {cls.__name__.lower()} messages per second")
            self._tokens -= cost - 1
        self.state = allowed[cls]
        if isinstance(msg, Input):
            if self.spectator:
                raise PolicyViolation("spectators cannot send input")
            self._check_values(msg.values)
            self._ack(msg.ack, server_tick, now)
        elif isinstance(msg, Ack):
            self._ack(msg.tick, server_tick, now)
        elif isinstance(msg, Hello):
            self.spectator = msg.spectate or self.viewer
        elif isinstance(msg, Resync):
            self.acked = None
            self.ack_floor = server_tick
            self._forget_holds()
        return msg

    def receive_input(self, data: bytes, now: float, server_tick: int) -> tuple[int, tuple[int, ...], int | None] | None:
        """``receive``'s path for a player's ``input`` in the shapes clients pack it (``codec.decode_input``), with
        no ``Input`` built: its ``(seq, values, view)``, counted and checked as ``receive`` would. None, with
        nothing done, for any other frame or when the session is not a player's, active: then ``receive`` it.

        Raises:
            ProtocolError: as ``receive`` would for the same frame.
        """
        if self.state is not State.ACTIVE or self.spectator:
            return None
        fields = decode_input(data)
        if fields is None:
            return None
        seq, values, ack, view = fields
        self.charge(now)
        if self._credit > 0:  # an answer to an update: the token charged goes back
            self._credit -= 1
            self._tokens += 1.0
        if self._valid is None or values not in self._valid:
            self._check_values(values)  # raises
        self._ack(ack, server_tick, now)
        return seq, values, view

    def _ignored(self, tag: str, keys: list[str]) -> None:
        self.ignored_keys += len(keys)
        if self.on_ignored is not None:
            self.on_ignored(tag, keys)

    def restart_acks(self, first: int) -> None:
        """The feed's ticks start again at ``first`` (a playback's seek): forget the client's acks,
        and from now on count only acks of ticks from ``first`` on (older ones are of the old timeline)."""
        self.acked = None
        self.ack_floor = first - 1
        self._forget_holds()
        self._unacked.clear()  # ticks of the old timeline: their bytes count as read
        self._acked_bytes = self._sent_bytes
        self._behind_since = None

    # -- what the client was sent, and what it acknowledged ------------------------

    def sent_update(self, tick: int, nbytes: int, now: float, keyframe: bool = False) -> None:
        """The feed sent the client the update of ``tick`` (``nbytes`` long): one more answer it may send,
        and one more update it should acknowledge."""
        if self._credit < self.max_credit:
            self._credit += 1
        self._sent_bytes += nbytes
        self._unacked.append((tick, self._sent_bytes))
        if self._behind_since is None:
            self._behind_since = now
        if keyframe:
            self.last_keyframe = tick
            self.silent_keyframes += self.last_ack is None

    def holds(self, tick: int) -> bool:
        """Whether the client holds the state of ``tick``: it was sent the update of ``tick`` and has since
        acknowledged that tick or a later one, and has not sent a resync since (one of the last ``HOLDS``
        such ticks). Clients keep their recent states (PROTOCOL.md): a delta may start from it."""
        return tick in self._holds

    @property
    def waiting(self) -> bool:
        """Whether more than ``max_unacked`` bytes of updates wait for the client's acknowledgement: it reads
        slowly, or not at all; more would only queue up."""
        return self._sent_bytes - self._acked_bytes > self.max_unacked

    @property
    def unacked_bytes(self) -> int:
        """Bytes of the updates sent that the client has not acknowledged yet."""
        return self._sent_bytes - self._acked_bytes

    def ack_overdue(self, now: float, timeout: float) -> bool:
        """Whether updates have waited for an acknowledgement for more than ``timeout`` seconds with none of
        the client's acks advancing meanwhile."""
        return self._behind_since is not None and now - self._behind_since > timeout

    def _forget_holds(self) -> None:
        self._held.clear()
        self._holds.clear()

    def close(self) -> None:
        self.state = State.CLOSED

    def _check_values(self, values: tuple[int, ...]) -> None:
        """An input's values (ints: ``Input`` and ``decode_input`` check their types) against the fields' ranges."""
        valid = self._valid
        if valid is not None and values in valid:
            return  # one lookup
        if len(values) != len(self.inputs):
            raise InvalidField(f"in: expected {len(self.inputs)} values ({', '.join(f.name for f in self.inputs)}), got {len(values)}")
        for f, v in zip(self.inputs, values):
            if not f.lo <= v <= f.hi:
                raise InvalidField(f"in: {f.name}={v} is outside [{f.lo}, {f.hi}]")

    def _ack(self, tick: int | None, server_tick: int, now: float) -> None:
        if tick is None or tick <= self.ack_floor:
            return
        if tick > server_tick:
            if self.viewer:
                return  # of a timeline a seek left behind
            raise InvalidField(f"ack of tick {tick}, ahead of the server's tick {server_tick}")
        if self.acked is None or tick > self.acked:
            self.acked = tick
            self.last_ack = server_tick
            if self.last_keyframe is not None and tick >= self.last_keyframe:
                self.last_keyframe = None
            # Every update sent up to this tick came before it (one ordered stream): the client holds them,
            # unless it lost its states since (a resync: only ticks after ``ack_floor``).
            unacked, held, holds, floor = self._unacked, self._held, self._holds, self.ack_floor
            while unacked and unacked[0][0] <= tick:
                sent, self._acked_bytes = unacked.popleft()
                if sent > floor:
                    held.append(sent)
                    holds.add(sent)
            while len(held) > HOLDS:
                holds.discard(held.popleft())
            self._behind_since = now if unacked else None

    def charge(self, now: float) -> None:
        """Count one message (or WebSocket ping or pong) against the rate limit.

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

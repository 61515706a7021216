"""What a connection joins: the feed interface.

A **feed** is anything clients connect to and are sent updates from, ticked
at its own rate: a live ``Match`` (``server/match.py``) is one kind, a
replay's ``Playback`` (``server/replay/playback.py``) another; a lobby or a
room would be one more. The shell (``server/app.py``) hosts feeds behind this
interface only: one connection class, one session table, one rate limiter
and one tick driver (``server.loop.run_feed``) serve every kind, so a fix to
any of them reaches all.

A connection's life against a feed, in the shell's calls:

1. ``new_session()`` when its WebSocket opens: the protocol state machine
   of that kind of feed (its rows of ``ALLOWED``, its rate limit).
2. The session decodes and checks every message (``ServerSession.receive``,
   given ``tick_count``); the first one is the ``hello``.
3. ``connect(hello, session, client, now)`` returns the feed's handle for
   that client (a *member*: a player, a spectator, a viewer); it may raise a
   ``ProtocolError`` (a full match: 1013).
4. ``on_message(member, msg)`` for each later message (a player's input: ``on_input``, its fields without
   the message object, when the session read it on its hot path). Messages take effect
   at the feed's next ``tick(now)``, which is why they carry no time.
5. ``disconnect(member, client, now, left=...)`` when the connection is
   gone (a ``client`` that a resume already replaced changes nothing);
   ``left``: the client closed it on purpose (code 1000), rather than
   dropping it: a match removes the player at once instead of holding it.

The feed sends through its members' ``Client`` (``send``, ``send_many``, ``close``),
fire-and-forget: nothing a client does can hold up a tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from server.protocol.messages import ClientMessage, Hello
from server.protocol.session import ServerSession
from server.ticker import Ticker


class Client(Protocol):
    """The transport side of one connection (``server.app.Connection``, or a test's fake)."""

    def send(self, data: bytes) -> None:
        """Queue ``data`` as one binary frame; never blocks, may drop for a slow reader."""
        ...

    def send_many(self, frames: Sequence[bytes]) -> None:
        """``send`` each of ``frames``, in one write to the socket (all dropped, or none)."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Close the connection with ``code``; never blocks."""
        ...

    def tell_and_close(self, code: int, reason: str) -> None:
        """Send an ``error`` with ``code`` and ``reason`` (never dropped, however slow the reader), then
        close with them; never blocks."""
        ...


#: A feed's handle for one connected client (``Member`` of a match, ``Viewer`` of a playback).
M = TypeVar("M")


class Feed(Protocol[M]):
    """Something clients join and are sent updates from, ticked at ``tick_rate`` (see the module docstring).

    Attributes:
        tick_rate: ticks a second; the driver calls ``tick(now)`` at this rate.
        ticker: the feed's tick schedule, set by the driver (``run_feed``) when
            it starts ticking the feed (None before): its ``dropped`` ticks are
            the feed's.
        idle_since: since when (the clock ``now`` is read on) the feed has had
            nobody in it; None while it has someone. Hosting drops idle feeds it
            opened on demand (a playback) after a while.
    """

    tick_rate: int
    ticker: Ticker | None
    idle_since: float | None

    @property
    def tick_count(self) -> int:
        """The tick of the newest state the feed has sent: clients' acks may not be ahead of it."""
        ...

    @property
    def finished(self) -> bool:
        """True when the feed will never send anything again (a playback that failed): hosting drops it."""
        ...

    def new_session(self) -> ServerSession:
        """The protocol state of a new connection to this feed."""
        ...

    def connect(self, hello: Hello, session: ServerSession, client: Client, now: float) -> M:
        """A connection said ``hello``: add it (its first update follows at the next tick).

        Raises:
            ProtocolError: it cannot join (the error's close code says why).
        """
        ...

    def on_message(self, member: M, msg: ClientMessage) -> None:
        """A validated message from ``member`` after its hello (the session checked it)."""
        ...

    def on_input(self, member: M, seq: int, values: tuple[int, ...], view: int | None) -> None:
        """A player's ``input`` the session checked (``ServerSession.receive_input``): what ``on_message`` does
        with an ``Input`` of these fields, without the message object (the hot path, 30 a second a player)."""
        ...

    def disconnect(self, member: M, client: Client, now: float, *, left: bool = False) -> None:
        """``client``, the member's connection, is gone (``left``: closed by the client with 1000)."""
        ...

    def tick(self, now: float) -> None:
        """Run one tick and send every member what changed."""
        ...

    def info(self) -> dict[str, Any]:
        """A JSON-able summary for the HTTP API (``/healthz``, ``/api/matches``)."""
        ...

    def close(self, reason: str) -> None:
        """The feed ends: close every member's connection (1001, ``reason``) and release what it holds."""
        ...

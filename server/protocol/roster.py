"""The roster on both ends: the server's ``RosterLog`` and a client's ``RosterMirror`` (PROTOCOL.md, *roster*).

A match's roster is every player in it (``RosterEntry``: player, entity, name,
online). Sending the whole of it to every client at every join or leave costs
``P × P`` entries per change (15-20 MB in one tick at P=1,000). Instead the
roster has a **revision**: ``RosterLog.commit`` ends a tick's changes with one
``roster_delta`` frame (the entries that joined or changed, the ids that
left; revision ``rev - 1`` to ``rev``), encoded once and sent as the same
bytes to every client that asked for deltas (``hello.roster_deltas``), and
``RosterLog.full`` is the whole ``roster`` at the current revision, encoded
once per revision, for the clients that need it: a new connection after its
``welcome`` (a join, a resume, a spectator, a match that moved), a
``resync``, and every client that did not ask for deltas (what clients
written before them get, unchanged). Deltas only after a full roster, in
order: a client that misses one (the server drops messages for a slow
reader) sees a revision gap and sends ``resync``, which brings a full roster.

``RosterMirror`` is the client's side, the mirror image: a full roster
replaces what it holds, a delta applies to the revision before it only.
Sans-I/O: entries and bytes in and out, no clock, no socket.
"""

from __future__ import annotations

from collections.abc import Iterable

from server.protocol.codec import encode_server
from server.protocol.messages import Roster, RosterDelta, RosterEntry


class RosterLog:
    """The server's roster: what clients hold at ``rev``, the changes of the tick under way, and their frames.

    Changes (``put``, ``remove``, ``replace``) collect until ``commit``, which
    makes them one revision (nothing changed: no revision, no frame). Within a
    tick only the end state counts: a player who joins and leaves again, or
    whose entry changes back, is no change.

    Attributes:
        rev: the revision of ``entries``: 0 for the empty roster of a new match, one more per commit that
            changed something.
        entries: the committed roster by player id.
    """

    def __init__(self) -> None:
        self.rev = 0
        self.entries: dict[int, RosterEntry] = {}
        #: This tick's changes so far, by player id: its entry now, or None when it is gone.
        self._pending: dict[int, RosterEntry | None] = {}
        self._full: bytes | None = None

    def put(self, entry: RosterEntry) -> None:
        """``entry``'s player is in the roster with this entry (it joined, or its entry changed, or neither)."""
        self._pending[entry.player] = entry

    def remove(self, player: int) -> None:
        """``player`` is not in the roster (it left; or it was never in it: no change)."""
        self._pending[player] = None

    def replace(self, entries: Iterable[RosterEntry]) -> None:
        """The whole roster is ``entries`` (a playback's players after a tick or a seek): the difference is this
        tick's change."""
        now = {e.player: e for e in entries}
        self._pending = {p: None for p in self.entries}
        self._pending.update(now)

    def commit(self) -> bytes | None:
        """End the tick's changes: the ``roster_delta`` frame that brings ``rev - 1`` to the new ``rev``, encoded
        once for every client that takes deltas; None when nothing changed (``rev`` stays)."""
        pending, entries = self._pending, self.entries
        if not pending:
            return None
        self._pending = {}
        players: list[RosterEntry] = []
        gone: list[int] = []
        for player in sorted(pending):
            entry, held = pending[player], entries.get(player)
            if entry == held:
                continue
            if entry is None:
                del entries[player]
                gone.append(player)
            else:
                entries[player] = entry
                players.append(entry)
        if not players and not gone:
            return None
        self.rev += 1
        self._full = None
        return encode_server(RosterDelta(self.rev, tuple(players), tuple(gone)))

    def roster(self) -> Roster:
        """The committed roster, ascending player ids, at ``rev``."""
        return Roster(tuple(self.entries[p] for p in sorted(self.entries)), self.rev)

    def full(self) -> bytes:
        """The ``roster`` frame of the committed roster, encoded once per revision."""
        if self._full is None:
            self._full = encode_server(self.roster())
        return self._full


class RosterMirror:
    """A client's roster, from a full ``roster`` and the ``roster_delta``s after it.

    Attributes:
        rev: the revision held; None before the first full roster (or after a gap, until the next one),
            and after a full roster from a server that sends no revision (it sends no deltas either).
        entries: the players by id.
        gaps: deltas that did not follow the revision held (each one asks for a ``resync``).
    """

    def __init__(self) -> None:
        self.rev: int | None = None
        self.entries: dict[int, RosterEntry] = {}
        self.gaps = 0
        self._roster: Roster | None = Roster(())

    def apply(self, msg: Roster | RosterDelta) -> bool:
        """Take one roster message. Returns False when it is a delta that does not follow the revision held
        (one was missed): it is ignored, and the client should ``resync`` (unless it did already) to get a full
        roster; its ``entries`` stay as they were meanwhile."""
        if isinstance(msg, Roster):
            self.entries = {e.player: e for e in msg.players}
            self.rev = msg.rev
            self._roster = msg
            return True
        if self.rev is None or msg.rev != self.rev + 1:
            self.gaps += 1
            self.rev = None  # until a full roster: every later delta is a gap too
            return False
        entries = self.entries
        for player in msg.gone:
            entries.pop(player, None)
        for e in msg.players:
            entries[e.player] = e
        self.rev = msg.rev
        self._roster = None
        return True

    @property
    def roster(self) -> Roster:
        """The roster held, ascending player ids (built when first asked for after a change)."""
        if self._roster is None:
            self._roster = Roster(tuple(self.entries[p] for p in sorted(self.entries)), self.rev)
        return self._roster

"""A match: one world, its ruleset and its members; a live feed (``server/feed.py``).

With the ruleset option ``view`` (interest management) every player receives
only its view: filtered updates, encoded once per grid cell and base for all
of them (``server.protocol.interest``), for those that said they can apply
them (``hello.interest``), ordinary updates of the same view for the others.
Spectators receive what every view holds (the always-relevant kinds), or the
whole world when the match's ``view_spectators`` option allows it.

The match is transport-agnostic: each member has a ``Client`` (anything with
``send(bytes)`` and ``close(code, reason)``), and the match only ever calls
``send`` fire-and-forget, so a slow client never holds up the tick. Joins,
leaves and inputs take effect at the tick boundary, in ascending player-id
order, which is what makes a match replayable from its inputs (a burst of
joins or leaves: ``MAX_JOINS`` and ``MAX_LEAVES`` a tick, the rest at the
next). A player enters the roster at its first ``ack`` or ``input``: until
then it holds a seat and an entity, and others hear nothing of it. Each player's
inputs wait in a short queue and are applied one per tick, in order
(``server/inputs.py``). A player who leaves (a ``leave`` message, or its own
close with 1000) is removed at the next tick; one whose connection drops is
held ``hold_s`` for a resume. The shell ticks it (``server.loop.run_feed``),
on its own loop.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from attrs import define

from game.errors import GameError
from game.rules import Event, InputBatch, Ruleset, join_players, leave_players
from game.world import EntityId, PlayerId, World, state_hash
from server.feed import Client
from server.inputs import WINDOW_S, InputTable, max_lag_ticks
from server.logs import fields
from server.protocol import PROTOCOL_MINOR, PROTOCOL_VERSION
from server.protocol.codec import ack_field, encode_server, with_surplus
from server.protocol.delta import Snapshot, WireSchema
from server.protocol.errors import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_TRY_AGAIN_LATER,
    PolicyViolation,
)
from server.protocol.history import HISTORY_SIZE, MAX_DELTAS, NO_UPDATE, SnapshotHistory, UpdateEncoder, cap_bases
from server.protocol.interest import ViewEncoder, ViewGrid, ViewShape
from server.protocol.messages import (
    Ack,
    ClientMessage,
    Hello,
    Input,
    Leave,
    Ping,
    Pong,
    Resync,
    Roster,
    RosterEntry,
    Welcome,
)
from server.protocol.roster import RosterLog
from server.protocol.session import CREDIT_S, ServerSession, default_rate
from server.ticker import Ticker

log = logging.getLogger("server.match")

#: Players a tick adds, and removes, at most: the rest wait for the next tick, in player id order. A tick's joins
#: are one spawn (``game.rules.join_players``: 16 in the arena 0.1 ms, one at a time they took 0.8), and each
#: joiner a welcome, a roster and a keyframe to send (about 50 us in the server); its leaves one despawn. So
#: 300 connections that come (or are closed) together do not stall one tick by 10-30 ms: they take 10-40 ticks
#: of half a millisecond more each, within the ticks' own spread (240 joins a second at 30 Hz).
MAX_JOINS = 8
MAX_LEAVES = 32


class MatchObserver(Protocol):
    """Sees every tick's membership changes and applied inputs (the replay recorder)."""

    def on_tick(self, match: Match, tick: int, leaves: list[PlayerId], joins: list[tuple[PlayerId, str]],
                inputs: InputBatch, events: list[Event]) -> None:
        """Called after tick ``tick`` was simulated with these leaves, joins and inputs (applied in that order)."""
        ...

    def on_close(self, match: Match) -> None:
        ...


@define(eq=False)
class Member:
    """A player or spectator, connected or held for reconnection."""

    player: PlayerId
    name: str
    spectator: bool
    token: str
    session: ServerSession
    client: Client | None
    entity: EntityId | None = None
    joined: bool = False
    needs_welcome: bool = True
    resumed: bool = False
    left_at: float | None = None
    #: Receives only its view (the match has one, and it is a player, or a spectator the match gives no more).
    viewed: bool = False
    #: Receives its view as filtered updates (viewed, and its hello said it can apply them).
    filtered: bool = False
    #: It sent an input since it joined: only such a player is held for a resume when its connection drops.
    played: bool = False
    #: It sent an ``ack`` or an ``input`` since it joined (or was handed over): only then is it in the roster.
    #: A connection that says hello and acknowledges nothing costs the others no roster traffic.
    entered: bool = False
    #: Its hello asked for ``roster_delta``s: it gets the whole roster only after its welcome and a resync.
    roster_deltas: bool = False
    #: It asked for a ``resync``: the next tick sends it the whole roster (it may have missed a delta).
    needs_roster: bool = False
    #: The tick before which the ticks have nothing for it but a roster change (it never acknowledged a tick:
    #: its next keyframe, ``UpdateEncoder.next_keyframe``); 0 once it sends anything. 300 connections that never
    #: acknowledge cost a tick the few due, not 300 visits.
    idle_until: int = 0


@define
class MatchStats:
    """What the match has done since it started, in plain integers (the server's metrics read them)."""

    ticks: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0
    encodes: int = 0
    keyframes_sent: int = 0
    joins: int = 0
    leaves: int = 0


class Match:
    """One world and everyone in it: a ``Feed`` of ``Member``s. Drive it with ``tick(now)`` at the tick rate.

    Raises (constructing one):
        GameError: the ruleset refuses the options (out of range, unknown; a view for a ruleset whose
            entities have no position columns).
    """

    def __init__(
        self,
        ruleset: Ruleset,
        *,
        match_id: str = "main",
        seed: int = 0,
        options: dict[str, int] | None = None,
        tick_rate: int = 30,
        max_players: int = 4096,
        msg_rate: float = 0.0,
        hold_s: float = 10.0,
        history: int = HISTORY_SIZE,
        token_factory: Callable[[], str] = lambda: secrets.token_urlsafe(18),
        perf_counter: Callable[[], float] = time.perf_counter,
        world: World | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.match_id = match_id
        self.seed = seed
        self.options = ruleset.spec.resolve_options(options)
        self.tick_rate = tick_rate
        self.max_players = max_players
        #: Messages a second one client may send besides its answers to updates (bursts of twice that).
        self.msg_rate = msg_rate or default_rate(tick_rate)
        self.hold_s = hold_s
        #: A new world, or the one of a match handed over from another node (``server.handover``).
        self.world: World = ruleset.create(seed, self.options) if world is None else world
        #: The ruleset's spec for this match's options (its arena's size: ``RulesetSpec.resolve``).
        self.spec = ruleset.spec.resolve(self.options)
        self.schema = WireSchema.from_spec(self.spec)
        self.ruleset_wire = self.spec.to_wire()
        self.history = SnapshotHistory(history)
        self.encoder = UpdateEncoder(self.schema, self.history)
        #: Interest management: the view of filtered players, and their encoder (None: everyone gets the world).
        self.view_shape = ViewShape.from_options(self.options)
        self.views: ViewEncoder | None = None
        if self.view_shape is not None:
            try:
                self.views = ViewEncoder(ViewGrid(self.spec, self.view_shape), self.history)
            except ValueError as exc:  # a ruleset that offers views but cannot place its entities
                raise GameError(f"option view: {exc}") from None
        self.inputs = InputTable(len(ruleset.spec.inputs), max_lag=min(max_lag_ticks(tick_rate), ruleset.spec.rewind),
                                 window=round(WINDOW_S * tick_rate),
                                 resting=[i for i, f in enumerate(ruleset.spec.inputs) if f.rests])
        self.members: dict[PlayerId, Member] = {}
        self.observers: list[MatchObserver] = []
        self.stats = MatchStats()
        self._tokens: dict[str, Member] = {}
        #: Members waiting for the tick boundary to join, and players held after a disconnect.
        self._unjoined: dict[PlayerId, Member] = {}
        self._held: dict[PlayerId, Member] = {}
        #: Players who left on purpose: removed at the next tick boundary.
        self._leaving: set[PlayerId] = set()
        self._next_player = 1
        self._token_factory = token_factory
        self._perf = perf_counter
        #: The roster clients hold, and the players whose entry may have changed since the last tick.
        self.roster_log = RosterLog()
        self._roster_touched: set[PlayerId] = set()
        self._snapshot = Snapshot.capture(self.world)
        self.history.add(self._snapshot)
        #: The match's own tick schedule, set by its driver (``server.loop.run_feed``).
        self.ticker: Ticker | None = None
        #: Since when (``now`` of a tick) the match has had no member, connected or held; None while it has one.
        self.idle_since: float | None = None
        #: A live match goes on until it is closed (a rooms layer may end one).
        self.finished = False
        #: Not ticking while it is handed over to another node (``freeze``); new members are refused.
        self.frozen = False
        #: Where each tick's durations go, in seconds: simulation, encoding, sending (the host's metrics), or None.
        self.timings: Callable[[float, float, float], None] | None = None

    # -- membership ----------------------------------------------------------

    @property
    def tick_count(self) -> int:
        return self.world.tick

    def player_count(self) -> int:
        return sum(1 for m in self.members.values() if not m.spectator)

    @property
    def next_player(self) -> int:
        """The id the next new member gets."""
        return self._next_player

    def joining(self) -> int:
        """Players connected and waiting for the next tick boundary to join."""
        return sum(1 for m in self._unjoined.values() if not m.spectator and m.client is not None)

    def freeze(self) -> None:
        """Stop at this tick boundary: ``tick`` does nothing until ``thaw``, new members are refused (1013).

        Inputs that arrive meanwhile wait in the players' queues (the oldest
        pushed out beyond ``server.inputs.CAPACITY``) and apply one per tick
        after a ``thaw``; members may still resume.
        """
        self.frozen = True

    def thaw(self) -> None:
        self.frozen = False

    def adopt(self, players: Sequence[tuple[PlayerId, str, EntityId | None, str, float, bool]],
              values: npt.NDArray[np.int16], lag: npt.NDArray[np.int16], seqs: Sequence[int],
              next_player: int) -> None:
        """Hold ``players`` handed over from another node, before the first tick (``server.handover``).

        Each is ``(player, name, entity, token, left_at, away)``: joined,
        disconnected since ``left_at`` (this match's clock) and held for a
        resume with its token; its input in force ``values`` (a row each,
        int16) with its ``lag`` (ticks), applied last with ``seq``, stays in
        force as if its inputs were late, but for a player already ``away``
        (disconnected on the other node): an all-zero input, as there. New
        members get ids from ``next_player`` on. The world (given to the
        constructor) holds their entities already.
        """
        for player, name, entity, token, left_at, _ in players:
            member = Member(player, name, False, token, self.new_session(), None, entity, joined=True, left_at=left_at,
                            entered=True)
            member.session.close()
            self.members[player] = member
            self._tokens[token] = member
            self._held[player] = member
        self.inputs.add([p[0] for p in players])
        self.inputs.current[:] = values
        self.inputs.lag[:] = lag
        self.inputs.applied_seq[:] = seqs
        for player, *_, away in players:
            if away:
                self.inputs.neutral(player)
        self._next_player = next_player
        self.idle_since = None
        self._roster_touched.update(p[0] for p in players)

    def new_session(self) -> ServerSession:
        return ServerSession(self.ruleset.spec.inputs, rate=self.msg_rate, burst=2 * self.msg_rate,
                             max_credit=CREDIT_S * self.tick_rate)

    def resumes(self, hello: Hello) -> bool:
        """Whether ``hello``'s token resumes a member this match holds (as a player, or as a spectator, as it was)."""
        held = self._tokens.get(hello.token) if hello.token else None
        return held is not None and held.spectator == hello.spectate

    def connect(self, hello: Hello, session: ServerSession, client: Client, now: float) -> Member:
        """A connection said hello: resume the member its token names, or add a new one.

        The welcome follows at the next tick boundary, with the first update.

        Raises:
            PolicyViolation: (close code 1013) when the match is full.
        """
        held = self._tokens.get(hello.token) if hello.token else None
        if held is not None and held.spectator == hello.spectate:
            if held.client is not None:
                held.client.close(CLOSE_NORMAL, "replaced by a new connection with the same token")
            held.client, held.session, held.left_at = client, session, None
            held.viewed, held.filtered = self._views_for(hello)
            self._held.pop(held.player, None)
            if held.player in self.inputs:
                self.inputs.restart(held.player)
            held.needs_welcome, held.resumed, held.idle_until = True, True, 0
            held.roster_deltas = hello.roster_deltas
            self._roster_touched.add(held.player)
            return held
        if self.frozen:
            raise PolicyViolation("the match is moving to another server: try again in a moment", CLOSE_TRY_AGAIN_LATER)
        if not hello.spectate and self.player_count() >= self.max_players:
            raise PolicyViolation(f"the match is full ({self.max_players} players)", CLOSE_TRY_AGAIN_LATER)
        player = PlayerId(self._next_player)
        self._next_player += 1
        viewed, filtered = self._views_for(hello)
        member = Member(player, hello.name, hello.spectate, self._token_factory(), session, client,
                        viewed=viewed, filtered=filtered, roster_deltas=hello.roster_deltas)
        self.members[player] = member
        self.idle_since = None
        self._unjoined[player] = member
        self._tokens[member.token] = member
        return member

    def _views_for(self, hello: Hello) -> tuple[bool, bool]:
        """Whether this hello's connection receives only its view (``Member.viewed``), and whether as filtered
        updates (``Member.filtered``). In a match with a view: every player; a spectator too (its view has no
        centre: the always-relevant kinds), unless the match's ``view_spectators`` gives spectators the world."""
        viewed = self.views is not None and not (hello.spectate and self.options.get("view_spectators", 0))
        return viewed, viewed and hello.interest

    def disconnect(self, member: Member, client: Client, now: float, *, left: bool = False) -> None:
        """``client``, the member's connection, is gone: a player is held ``hold_s`` for a resume,
        unless it ``left`` on purpose (its close said 1000): then it is removed at the next tick, like
        a spectator; so is a player that never sent an input: it holds no seat for ``hold_s`` (80
        connections that join and drop do not fill a match). A connection that was already replaced by a
        resume changes nothing."""
        if self.members.get(member.player) is not member or member.client is not client:
            return
        member.client = None
        member.session.close()
        if member.spectator or not member.joined:
            self._forget(member)
        elif left:
            self._leaving.add(member.player)
            self._tokens.pop(member.token, None)  # leaving is leaving: no resume
        else:
            member.left_at = now if member.played else now - self.hold_s
            self._held[member.player] = member
            self.inputs.neutral(member.player)
        self._roster_touched.add(member.player)

    def leave(self, member: Member) -> None:
        """The member said ``leave``: close its connection (1000); a player is removed at the next tick."""
        client = member.client
        if client is None:
            return
        self.disconnect(member, client, 0.0, left=True)
        client.close(CLOSE_NORMAL, "left the match")

    def _forget(self, member: Member) -> None:
        self.members.pop(member.player, None)
        self._held.pop(member.player, None)
        self._unjoined.pop(member.player, None)
        self._tokens.pop(member.token, None)

    def on_message(self, member: Member, msg: ClientMessage) -> None:
        """A validated message from ``member`` (the session already checked it)."""
        member.idle_until = 0  # its session may hold a tick now, or owe less
        if isinstance(msg, Input):
            self.on_input(member, msg.seq, msg.values, msg.view)
        elif isinstance(msg, Ack):
            if member.joined:
                self._enter(member)
        elif isinstance(msg, Ping) and member.client is not None:
            member.client.send(encode_server(Pong(msg.id, msg.time, self.world.tick)))
        elif isinstance(msg, Leave):
            self.leave(member)
        elif isinstance(msg, Resync):
            member.needs_roster = True

    def on_input(self, member: Member, seq: int, values: tuple[int, ...], view: int | None) -> None:
        """A player's input, checked by its session: queued for a later tick."""
        member.idle_until = 0
        if member.joined and not member.spectator and member.player in self.inputs:
            self.inputs.submit(member.player, seq, values, view)
            member.played = True
            if not member.entered:
                self._enter(member)

    def _enter(self, member: Member) -> None:
        """``member`` answered an update (an ``ack`` or an ``input``): a player is in the roster from the next tick."""
        if not member.entered:
            member.entered = True
            if not member.spectator:
                self._roster_touched.add(member.player)

    # -- the tick ------------------------------------------------------------

    @property
    def ticks_dropped(self) -> int:
        return self.ticker.dropped if self.ticker is not None else 0

    def tick(self, now: float) -> None:
        """Run one tick: membership, inputs, simulation, then one update to every client."""
        if self.frozen:
            return
        perf = self._perf
        t0 = perf()
        leaves, joins = self._membership(now)
        if self.members:
            self.idle_since = None
        elif self.idle_since is None:
            self.idle_since = now
        batch = self.inputs.commit(self.world.tick + 1)
        events = self.ruleset.step(self.world, batch)
        t1 = perf()

        snap = Snapshot.capture(self.world, self._snapshot)
        self._snapshot = snap
        self.history.add(snap)
        wire_events = [e.to_wire() for e in events]
        self.encoder.begin(snap, wire_events)
        if self.views is not None:
            self.views.begin(snap, wire_events, [e.at for e in events])
        for obs in self.observers:
            obs.on_tick(self, snap.tick, leaves, joins, batch, events)
        t2 = perf()

        self._send_updates(now)
        t3 = perf()
        s = self.stats
        s.ticks += 1
        s.encodes += self.encoder.encodes + (self.views.encodes if self.views is not None else 0)
        if self.timings is not None:
            self.timings(t1 - t0, t2 - t1, t3 - t2)

    def _membership(self, now: float) -> tuple[list[PlayerId], list[tuple[PlayerId, str]]]:
        leaves: list[PlayerId] = []
        left = self._leaving
        if self._held or left:
            expired = {p for p, m in self._held.items() if m.left_at is not None and now - m.left_at >= self.hold_s}
            leaves = sorted(expired | left)
            leaves, later = leaves[:MAX_LEAVES], leaves[MAX_LEAVES:]
            self._leaving = left & set(later)  # the held ones past the cap are still expired at the next tick
        leave_players(self.ruleset, self.world, leaves)
        for pid in leaves:
            gone = self.members[pid]
            self._forget(gone)
            if not gone.entered:
                continue  # it never answered an update: its connection's line said it left, no roster knew it
            why = "it left" if pid in left else f"not back within {self.hold_s:g} s"
            log.info("%s: player %d %r is gone (%s)", self.match_id, pid, gone.name, why,
                     extra=fields("gone", match=self.match_id, player=pid))
        self.inputs.remove(leaves)
        self.stats.leaves += len(leaves)
        joiners: list[Member] = []
        for pid in sorted(self._unjoined)[:MAX_JOINS]:
            m = self._unjoined.pop(pid)
            if m.client is not None:
                m.joined = True
                if not m.spectator:
                    joiners.append(m)
        for m, entity in zip(joiners, join_players(self.ruleset, self.world, [m.player for m in joiners])):
            m.entity = entity
        joins = [(m.player, m.name) for m in joiners]
        self.stats.joins += len(joins)
        self.inputs.add([pid for pid, _ in joins])
        self._roster_touched.update(leaves)
        self._roster_touched.update(pid for pid, _ in joins)
        return leaves, joins

    def roster(self) -> Roster:
        """The roster as of the last tick (its ``rev``: ``roster_log``'s)."""
        return self.roster_log.roster()

    def _commit_roster(self) -> bytes | None:
        """This tick's roster changes, from the players touched since the last one: the ``roster_delta``
        frame for every client that takes deltas, or None when the roster is the same."""
        log, members = self.roster_log, self.members
        for pid in self._roster_touched:
            m = members.get(pid)
            if m is None or m.spectator or not m.entered:
                log.remove(pid)
            else:
                log.put(RosterEntry(m.player, m.entity, m.name, m.client is not None))
        self._roster_touched.clear()
        return log.commit()

    def _send_updates(self, now: float) -> None:
        # The roster: a delta to those that take them, the whole roster (encoded once) to the others.
        delta = self._commit_roster()
        log = self.roster_log
        encoder = self.encoder
        allowed = encoder.base_set
        tick = self._snapshot.tick
        sent = nbytes = keyframes = 0
        #: Who gets which base this tick, and how many clients each delta base serves.
        plan: list[tuple[Member, Client, int | None]] = []
        used: dict[int, int] = {}
        #: A joiner's welcome and roster, by player: written with its first update, in one write.
        intros: dict[PlayerId, list[bytes]] = {}
        for m in list(self.members.values()):
            client = m.client
            if client is None or not m.joined or m.idle_until > tick and delta is None:
                continue
            first = m.needs_welcome
            if first:
                m.needs_welcome = False
                m.needs_roster = False
                if m.viewed:
                    client.send_many((encode_server(self._welcome(m)), log.full()))
                else:
                    intros[m.player] = [encode_server(self._welcome(m)), log.full()]
            elif m.needs_roster:
                m.needs_roster = False
                client.send(log.full())
            elif delta is not None:
                client.send(delta if m.roster_deltas else log.full())
            session = m.session
            if session.waiting:
                continue  # it owes acknowledgements for --max-unacked bytes already: more would only queue
            # Most clients acknowledged a base (the tick before): the newest one they hold. Else choose; one
            # whose acknowledgements never advanced (a silent one) holds no tick.
            acked = session.acked
            base = acked if acked in allowed and session.holds(acked) else encoder.choose(
                None if session.last_ack is None else session.holds, session.last_keyframe, first, session.last_ack,
                m.player, session.silent_keyframes)
            if session.last_ack is None:
                last_keyframe = tick if base is None else session.last_keyframe
                if last_keyframe is not None:
                    m.idle_until = encoder.next_keyframe(tick, last_keyframe, m.player,
                                                         session.silent_keyframes + (base is None))
            if base != NO_UPDATE:
                plan.append((m, client, base))
                if base is not None:
                    used[base] = used.get(base, 0) + 1
        if len(used) > MAX_DELTAS:  # more bases than a tick encodes: the rest take one of those they hold
            bases = [base for _, _, base in plan]
            cap_bases(used, bases, [m.session.holds for m, _, _ in plan])
            plan = [(m, client, base) for (m, client, _), base in zip(plan, bases)]
        filtered: list[tuple[Client, Member, int | None, int]] = []
        plain: list[tuple[Client, Member, int | None, int]] = []
        acks = self.inputs.ack_map()  # player -> ack, once for every update of the tick
        surplus = self.inputs.surplus_map()  # the few players whose queue is too deep (minor 2): most ticks none
        prefixes: dict[int | None, bytes] = {}
        for m, client, base in plan:
            if base == NO_UPDATE:
                continue
            ack = acks.get(m.player, 0) if m.entity is not None else 0
            if m.viewed:
                (filtered if m.filtered else plain).append((client, m, base, ack))
                continue
            keyframes += base is None
            prefix = prefixes.get(base)
            if prefix is None:
                prefix = prefixes[base] = encoder.prefix(base)
            frame = prefix + ack_field(ack)  # finish_update
            if surplus and m.player in surplus:
                frame = with_surplus(frame, surplus[m.player])
            intro = intros.pop(m.player, None) if intros else None
            if intro is None:
                client.send(frame)
            else:
                intro.append(frame)
                client.send_many(intro)
            m.session.sent_update(tick, len(frame), now, base is None)
            sent += 1
            nbytes += len(frame)
        if filtered and self.views is not None:
            frames = self.views.frames(*self._view_args(filtered))
            for (client, m, base, _), frame in zip(filtered, frames):
                if surplus and m.player in surplus:
                    frame = with_surplus(frame, surplus[m.player])
                client.send(frame)
                m.session.sent_update(tick, len(frame), now, base is None)
                nbytes += len(frame)
                keyframes += base is None
            sent += len(frames)
        if plain and self.views is not None:
            pframes = self.views.plain_frames(*self._view_args(plain))
            for (client, m, _, _), (frame, key) in zip(plain, pframes):
                if surplus and m.player in surplus:
                    frame = with_surplus(frame, surplus[m.player])
                client.send(frame)
                m.session.sent_update(tick, len(frame), now, key)
                nbytes += len(frame)
                keyframes += key
            sent += len(pframes)
        for pid, intro in intros.items():  # a joiner that got no update this tick (none does today): its intro alone
            joiner = self.members[pid].client
            if joiner is not None:
                joiner.send_many(intro)
        self.stats.frames_sent += sent
        self.stats.bytes_sent += nbytes
        self.stats.keyframes_sent += keyframes

    @staticmethod
    def _view_args(who: list[tuple[Client, Member, int | None, int]]) -> tuple[npt.NDArray[np.int64], ...]:
        """Entities (-1: none), bases (-1: a keyframe) and acks of these clients, for the view encoder."""
        return (np.array([-1 if m.entity is None else m.entity for _, m, _, _ in who], dtype=np.int64),
                np.array([-1 if b is None else b for _, _, b, _ in who], dtype=np.int64),
                np.array([a for _, _, _, a in who], dtype=np.int64))

    def _welcome(self, m: Member) -> Welcome:
        interest = self.view_shape.to_wire() if m.filtered and self.view_shape is not None else None
        return Welcome(PROTOCOL_VERSION, self.match_id, m.player, m.entity, self.tick_rate, self.world.tick,
                       m.token, self.ruleset_wire, m.resumed, self.hold_s, interest, PROTOCOL_MINOR)

    # -- reading -------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """The replicated state after the last tick."""
        return self._snapshot

    def state_hash(self) -> str:
        return state_hash(self.world)

    def info(self) -> dict[str, Any]:
        return {
            "match": self.match_id,
            "ruleset": self.ruleset.spec.name,
            "tick": self.world.tick,
            "tick_rate": self.tick_rate,
            "players": self.player_count(),
            "connected": sum(1 for m in self.members.values() if m.client is not None),
            "entities": self.world.count(),
            "ticks_dropped": self.ticks_dropped,
            "inputs_starved": self.inputs.totals["starved"],
            "inputs_dropped": self.inputs.totals["dropped"],
            "inputs_stale": self.inputs.totals["stale"],
            "inputs_trimmed": self.inputs.totals["trimmed"],
            "inputs_trimmed_idle": self.inputs.totals["trimmed_idle"],
            "inputs_skipped": self.inputs.totals["skipped"],
        }

    def player_states(self) -> list[dict[str, Any]]:
        """Each joined player: id, name, online, entity and its replicated columns (wire units)."""
        snap = self._snapshot
        names = self.schema.names()
        out = []
        for m in sorted(self.members.values(), key=lambda m: m.player):
            if m.spectator or not m.joined:
                continue
            entry: dict[str, Any] = {"player": m.player, "name": m.name, "online": m.client is not None, "entity": m.entity}
            if m.player in self.inputs:
                entry["inputs"] = self.inputs.queue_stats(m.player)
            if m.entity is not None:
                i = int(np.searchsorted(snap.ids, m.entity))
                if i < len(snap.ids) and snap.ids[i] == m.entity:
                    entry.update({n: int(c[i]) for n, c in zip(names, snap.cols)})
            out.append(entry)
        return out

    def close(self, reason: str = "server shutting down") -> None:
        """Close every connection (1001) and tell the observers the match is over."""
        for m in list(self.members.values()):
            if m.client is not None:
                m.client.close(CLOSE_GOING_AWAY, reason)
        for obs in self.observers:
            obs.on_close(self)

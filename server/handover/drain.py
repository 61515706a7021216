"""The drain: this node's live matches moved to other nodes through the match directory, and other nodes' taken in.

``Drainer`` sits beside the node's ``Host`` and speaks to other nodes only
through the directory: each node reads its own mailbox (``receive``), and
posts to another's (``post``); the messages are ``server.handover.format``'s.

**Draining** (``drain``: SIGTERM, or ``POST /api/admin/drain``). The node
stops accepting: its heartbeat says ``accepting=False`` (matchmaking places
new matches elsewhere), ``/healthz?ready`` answers 503, new players are
refused (1013, "draining"). Then every match with players is handed over,
all at once, each to the least loaded other accepting node (the next one if
that one fails, ``TRIES`` in all); matches without players are ended (their
spectators get 1001, their replays end records). Whatever could not be moved
(no other node, or every hand-over failed) plays on until its players leave,
up to ``deadline_s`` from the start of the drain; then its players get
``error`` and 1001 and its replay is closed with its end record. After a
SIGTERM the process then exits; after the admin request the node stays up,
empty and not ready, until it is stopped.

**One hand-over, the sender's side** (``hand_over``). Pending joins land
first (a tick at most), then the match is frozen at a tick boundary
(``Match.freeze``: inputs that come meanwhile stay pending, new members are
refused), captured (``transfer.capture``) and offered to the receiver with a
deadline (``OFFER_TTL``). On ``Accepted`` every client of the match (players
and spectators) gets ``moved`` with the new URL and a close 1012, the replay
ends with an end record naming where the match went, and the match is
dropped here without unlisting it (it is the receiver's now). On
``Refused``, or no answer by the deadline plus ``GRACE``, the directory
decides: a match listed under the receiver (its answer got lost) counts as
moved; otherwise it is listed here again if need be, unfrozen, and goes on
here, the reason logged.

**One hand-over, the receiver's side** (``receive_offer``). An offer is
refused (``Refused``, with the reason) when this node is draining, the
offer lapsed, the match is here already, its room type is not one this
node offers (a hand-over names no code to import, only a ruleset of the
catalog), or the state does not decode, fit the ruleset or hash to the
sender's ``state_hash``. Otherwise the match is restored
(``transfer.restore``: every player held for a resume), re-homed in the
directory (``move_match``), hosted (its recording starts at the hand-over
tick with a keyframe and names the sender's file) and ``Accepted`` goes back
with the match's URL here.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from websockets.http11 import Response

from game.errors import GameError
from server.app import Connection
from server.handover.format import Accepted, BadHandover, Message, Offer, Refused, decode, encode
from server.handover.transfer import capture, restore
from server.logs import fields
from server.match import Match
from server.protocol.codec import encode_server
from server.protocol.errors import CLOSE_GOING_AWAY, CLOSE_SERVICE_RESTART
from server.protocol.messages import Moved
from server.rooms import (
    DirectoryError,
    DirectoryUnavailable,
    InvalidRoomType,
    MatchId,
    NodeId,
    NodeInfo,
    RoomType,
    UnknownMatch,
)
from server.web import HttpRequest, json_response

if TYPE_CHECKING:
    from server.host import Host

log = logging.getLogger("server.handover")

#: Seconds an offer stays good: a receiver never starts a match from an older one.
OFFER_TTL = 3.0
#: Seconds the sender waits past the offer's deadline before asking the directory where the match is.
GRACE = 2.0
#: Nodes tried in turn for one match before it stays here.
TRIES = 2
#: Seconds one wait on the mailbox lasts (the reader loops).
RECEIVE_S = 1.0
#: Seconds between two tries of the mailbox while the directory is unreachable.
RETRY_S = 0.5
#: The default of ``--drain-deadline``: under the 30 s a container platform waits after SIGTERM by default.
DRAIN_DEADLINE_S = 25.0
#: Seconds a drain waits at most for the players who connected just before it to join at a tick boundary.
JOIN_WAIT_S = 1.0


class Drainer:
    """Moves this node's matches away, and takes in other nodes' (see the module docstring).

    Args:
        host: this node's rooms.
        deadline_s: how long matches that could not be moved may go on after a drain starts.
        admin_token: the bearer token of ``POST /api/admin/drain`` (None: no admin API, 404).
        offer_ttl, grace: the hand-over deadlines, seconds.
        on_drained: called when a drain that was asked to exit (SIGTERM) is done: stop the server.
    """

    def __init__(self, host: Host, *, deadline_s: float = DRAIN_DEADLINE_S, admin_token: str | None = None,
                 offer_ttl: float = OFFER_TTL, grace: float = GRACE,
                 on_drained: Callable[[], None] | None = None) -> None:
        self.host = host
        self.deadline_s = deadline_s
        self.admin_token = admin_token or None
        self.offer_ttl = offer_ttl
        self.grace = grace
        self.on_drained = on_drained
        #: Why this node drains (None: it does not).
        self.draining: str | None = None
        self.stats = {"handovers_sent": 0, "handovers_failed": 0, "handovers_received": 0, "handovers_refused": 0,
                      "matches_ended_by_drain": 0}
        self._exit = False
        self._drain: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[Message]] = {}
        #: Connections told where their match moved, until they are closed.
        self._told: set[Connection] = set()

    def install(self) -> None:
        """Serve ``POST /api/admin/drain``."""
        self.host.server.add_route("POST", "/api/admin/drain", self.api_drain)

    # -- the mailbox ---------------------------------------------------------------

    async def run(self) -> None:
        """Read this node's mailbox until cancelled: offers are answered, answers wake their hand-overs."""
        host = self.host
        while True:
            try:
                mail = await host.directory.receive(host.node_id, timeout=RECEIVE_S)
            except Exception as exc:
                _cancelled_meanwhile(exc)
                if not isinstance(exc, DirectoryUnavailable):
                    log.exception("handover: reading the mailbox failed; again in %g s", RETRY_S)
                await asyncio.sleep(RETRY_S)
                continue
            for data in mail:  # in order, one at a time: each takes a directory call or two
                try:
                    await self.on_mail(data)
                except Exception:
                    log.exception("handover: a message of the mailbox failed")

    async def on_mail(self, data: bytes) -> None:
        """One message of the mailbox."""
        try:
            msg = decode(data)
        except BadHandover as exc:
            log.warning("handover: refused a message of %d bytes from the mailbox: %s", len(data), exc)
            return
        if isinstance(msg, Offer):
            await self.receive_offer(msg)
            return
        waiting = self._pending.get(msg.handover)
        if waiting is not None and not waiting.done():
            waiting.set_result(msg)
        else:
            log.warning("handover: an answer from node %s about match %s came after its hand-over gave up (%s)",
                        msg.sender, msg.match, "accepted" if isinstance(msg, Accepted) else msg.reason)

    # -- the receiver ----------------------------------------------------------------

    async def receive_offer(self, offer: Offer) -> bool:
        """Take match ``offer.state`` over, or refuse it (see the module docstring). True when taken."""
        host = self.host
        state = offer.state
        mid = MatchId(state.match_id)
        try:
            match, room = self._restore(offer)
        except (BadHandover, InvalidRoomType, GameError, ValueError) as exc:
            await self._refuse(offer, str(exc))
            return False
        host.expecting.add(mid)
        try:
            try:
                info = await host.directory.move_match(mid, host.node_id, now=host.clock())
            except UnknownMatch:  # the sender's listing went (its node expired): list it here
                info = await host.directory.add_match(mid, host.node_id, match.ruleset.spec.name, room.labels,
                                                      match.max_players, now=host.clock(),
                                                      players=match.player_count(), room=room.to_json())
            if host.clock() > offer.expires + self.grace / 2:
                await self._give_back(offer)
                await self._refuse(offer, "the directory took too long: the offer lapsed")
                return False
            previous = {"node": offer.sender, "replay": state.replay, "tick": state.tick, "hash": state.hash}
            try:
                recorder = host.adopt(match, room, extra={"previous": previous})
            except OSError as exc:
                await self._give_back(offer)
                await self._refuse(offer, f"cannot record it here: {exc}")
                return False
        except DirectoryError as exc:
            await self._refuse(offer, f"the match directory: {exc}")
            return False
        finally:
            host.expecting.discard(mid)
        self.stats["handovers_received"] += 1
        url = info.url
        replay = recorder.path.name if recorder is not None and recorder.path is not None else None
        log.info("match %s handed over from node %s at tick %d (state_hash %s): %d players held for %g s%s",
                 mid, offer.sender, state.tick, state.hash, len(state.players), match.hold_s,
                 f", recording to {recorder.path}" if recorder is not None else "",
                 extra=fields("handover_in", match=mid, node=offer.sender, tick=state.tick, hash=state.hash,
                              players=len(state.players)))
        await self._post(NodeId(offer.sender), Accepted(offer.handover, host.node_id, mid, url, match.state_hash(), replay))
        return True

    def _restore(self, offer: Offer) -> tuple[Match, RoomType]:
        """The match of an offer, restored; BadHandover (and the room type's errors) with the reason to refuse."""
        host = self.host
        state = offer.state
        if self.draining is not None:
            raise BadHandover(f"node {host.node_id} is draining")
        if host.clock() > offer.expires:
            raise BadHandover("the offer lapsed before it was read")
        if state.match_id in host.matches or state.match_id in host.server.feeds:
            raise BadHandover(f"node {host.node_id} hosts a match {state.match_id!r} already")
        room = RoomType.from_json(state.room)
        offer_ = host.catalog.offers.get(state.header.ruleset)
        if offer_ is None or offer_.room_type.ruleset != room.ruleset:
            raise BadHandover(f"ruleset {room.ruleset!r} ({state.header.ruleset}) is not offered by node "
                              f"{host.node_id}, which offers {', '.join(host.catalog.names)}")
        config = host.config
        return restore(state, host.rulesets(room.ruleset), now=host.server.clock(), msg_rate=config.msg_rate,
                       hold_s=config.hold_s, max_players=room.max_players), room

    async def _give_back(self, offer: Offer) -> None:
        """List the offered match under its sender again (a receiver that re-homed it, then refuses)."""
        try:
            await self.host.directory.move_match(MatchId(offer.state.match_id), NodeId(offer.sender), now=self.host.clock())
        except DirectoryError as exc:
            log.warning("handover: match %s could not be listed under node %s again: %s", offer.state.match_id,
                        offer.sender, exc)

    async def _refuse(self, offer: Offer, reason: str) -> None:
        self.stats["handovers_refused"] += 1
        log.warning("handover: refused match %s from node %s: %s", offer.state.match_id, offer.sender, reason,
                    extra=fields("handover_refused", match=offer.state.match_id, node=offer.sender, reason=reason))
        await self._post(NodeId(offer.sender), Refused(offer.handover, self.host.node_id, offer.state.match_id, reason))

    async def _post(self, node: NodeId, msg: Message) -> None:
        try:
            await self.host.directory.post(node, encode(msg), now=self.host.clock())
        except DirectoryError as exc:
            log.warning("handover: could not answer node %s: %s", node, exc)

    # -- the sender ------------------------------------------------------------------

    async def hand_over(self, mid: MatchId, target: NodeInfo) -> str | None:
        """Move match ``mid`` to node ``target``. None when it moved; else why not (it goes on here)."""
        host = self.host
        match = host.matches.get(mid)
        room = host.rooms.get(mid)
        if match is None or room is None:
            return "no such match here"
        started = time.perf_counter()
        for _ in range(max(1, int(JOIN_WAIT_S * match.tick_rate))):
            if not match.joining():
                break
            await asyncio.sleep(1 / match.tick_rate)
        match.freeze()
        recorder = host.recorders.get(mid)
        state = capture(match, room.to_json(), now=host.server.clock(), wall=time.time(),
                        replay=recorder.path.name if recorder is not None and recorder.path is not None else None)
        hid = secrets.token_hex(8)
        expires = host.clock() + self.offer_ttl
        waiting: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[hid] = waiting
        self.stats["handovers_sent"] += 1
        reply: Message | None = None
        why = ""
        try:
            data = await asyncio.to_thread(encode, Offer(hid, host.node_id, expires, state))
            await host.directory.post(target.node_id, data, now=host.clock())
            async with asyncio.timeout(max(0.0, expires + self.grace - host.clock())):
                reply = await waiting
        except TimeoutError:
            why = f"no answer within {self.offer_ttl + self.grace:g} s"
        except DirectoryError as exc:
            why = f"the match directory: {exc}"
        finally:
            self._pending.pop(hid, None)
        if isinstance(reply, Accepted):
            await self._moved(mid, match, reply.url, target.node_id, reply.replay, state.tick)
            ms = (time.perf_counter() - started) * 1000
            log.info("match %s moved to node %s at tick %d in %.0f ms (state_hash %s, %d players)", mid,
                     target.node_id, state.tick, ms, state.hash, len(state.players),
                     extra=fields("handover_out", match=mid, node=target.node_id, tick=state.tick, hash=state.hash,
                                  players=len(state.players), ms=round(ms, 1), url=reply.url))
            return None
        if isinstance(reply, Refused):
            why = f"refused: {reply.reason}"
        where = await self._where(mid)
        if reply is None and where is not None and where[0] == target.node_id:
            await self._moved(mid, match, where[1], target.node_id, None, state.tick)
            log.info("match %s moved to node %s at tick %d (its answer was lost; the directory lists it there)",
                     mid, target.node_id, state.tick)
            return None
        if where is not None and where[0] != host.node_id:
            try:
                await host.directory.move_match(mid, host.node_id, now=host.clock())
            except DirectoryError as exc:
                log.warning("handover: match %s could not be listed here again: %s", mid, exc)
        match.thaw()
        self.stats["handovers_failed"] += 1
        log.warning("handover of match %s to node %s failed: %s; it goes on here (frozen %.0f ms)", mid,
                    target.node_id, why, (time.perf_counter() - started) * 1000,
                    extra=fields("handover_failed", match=mid, node=target.node_id, reason=why))
        return why

    async def _where(self, mid: MatchId) -> tuple[NodeId, str] | None:
        """The node the directory lists ``mid`` under, if that node is alive, and its URL there."""
        host = self.host
        try:
            info = await host.directory.get_match(mid, now=host.clock())
            if info is None:
                return None
            alive = {n.node_id for n in await host.directory.nodes(now=host.clock())}
        except DirectoryError:
            return None
        return (info.node_id, info.url) if info.node_id in alive else None

    async def _moved(self, mid: MatchId, match: Match, url: str, node: NodeId, replay: str | None, tick: int) -> None:
        """The match went to ``url``: tell its clients, drop it here (listed there now), end its replay."""
        host = self.host
        moved, reason = encode_server(Moved(url)), f"moved to {url}"
        for member in list(match.members.values()):
            client = member.client
            if isinstance(client, Connection):
                # A client behind on its reading must still find where to go: ``moved`` is never dropped, no
                # drop after the usual close time-out, and a draining node waits for it before it exits (``drain``).
                client.close_timeout = max(client.close_timeout, self.deadline_s)
                self._told.add(client)
                client.send_last(moved, CLOSE_SERVICE_RESTART, reason)
            elif client is not None:
                client.send(moved)
                client.close(CLOSE_SERVICE_RESTART, reason)
        recorder = host.release(mid)
        host.server.remove_feed(mid, f"the match moved to {url}")
        if recorder is not None:
            recorder.end_extra = {"handed_over": {"node": node, "url": url, "replay": replay, "tick": tick}}
            await asyncio.to_thread(recorder.on_close, match)

    # -- draining --------------------------------------------------------------------

    def on_sigterm(self) -> None:
        """SIGTERM: drain, then stop the server; a second SIGTERM (or ``--drain-deadline 0``) stops it at once."""
        if self.deadline_s <= 0 or self._exit:
            log.info("SIGTERM: stopping now")
            self._stop()
            return
        self._exit = True
        if self._drain is not None and self._drain.done():
            self._stop()
            return
        self.start("SIGTERM")

    def start(self, why: str) -> asyncio.Task[None]:
        """Start draining (once; later calls return the same drain)."""
        if self._drain is None:
            self._drain = asyncio.ensure_future(self.drain(why))
            self._drain.add_done_callback(self._drained)
        return self._drain

    def _drained(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the drain failed", exc_info=task.exception())
        if self._exit:
            self._stop()

    def _stop(self) -> None:
        if self.on_drained is not None:
            self.on_drained()

    async def drain(self, why: str) -> None:
        """Stop accepting, move every match with players, end the rest (see the module docstring)."""
        host = self.host
        self.draining = why
        host.accepting = False
        host.hold_ready("drain", f"draining ({why})")
        deadline = time.monotonic() + self.deadline_s
        try:
            await host.heartbeat(host.clock())
        except DirectoryError as exc:
            log.warning("drain: the heartbeat saying so failed: %s", exc)
        playing = [mid for mid, m in host.matches.items() if m.player_count()]
        log.info("draining (%s): %d matches with players to move, %d without to end; deadline %g s", why,
                 len(playing), len(host.matches) - len(playing), self.deadline_s,
                 extra=fields("drain", why=why, matches=len(playing), deadline_s=self.deadline_s))
        await self._end_empty()
        targets = await self._targets()
        if playing and not targets:
            log.warning("drain: no other node takes matches; the %d matches here may finish within %g s", len(playing),
                        self.deadline_s)
        await asyncio.gather(*(self._move(mid, targets) for mid in playing))
        while any(m.player_count() for m in host.matches.values()) and time.monotonic() < deadline:
            await self._end_empty()
            await asyncio.sleep(0.25)
        await self._end_empty()
        for mid in list(host.matches):
            await self._end(mid, "the server is shutting down")
        told = [conn.lost for conn in self._told if not conn.lost.done()]
        if told:  # each has read where to go (and closed) before this node goes, or the deadline passed
            await asyncio.wait(told, timeout=max(0.0, deadline - time.monotonic()))
        self._told.clear()
        moved, failed = self.stats["handovers_sent"] - self.stats["handovers_failed"], self.stats["handovers_failed"]
        log.info("drained (%s): %d matches moved, %d hand-overs failed, %d matches ended", why, moved, failed,
                 self.stats["matches_ended_by_drain"], extra=fields("drained", why=why, moved=moved, failed=failed,
                                                                    ended=self.stats["matches_ended_by_drain"]))

    async def _targets(self) -> list[NodeInfo]:
        """The other live nodes that take matches, least loaded first."""
        host = self.host
        try:
            nodes = await host.directory.nodes(now=host.clock())
        except DirectoryError as exc:
            log.warning("drain: cannot list the other nodes: %s", exc)
            return []
        return sorted((n for n in nodes if n.accepting and n.node_id != host.node_id), key=lambda n: (n.load, n.node_id))

    async def _move(self, mid: MatchId, targets: list[NodeInfo]) -> None:
        for target in targets[:TRIES]:
            if await self.hand_over(mid, target) is None:
                return

    async def _end_empty(self) -> None:
        for mid, match in list(self.host.matches.items()):
            if not match.player_count():
                await self._end(mid, "the match is over (the server is shutting down)")

    async def _end(self, mid: MatchId, reason: str) -> None:
        """End match ``mid`` now: its clients get ``error`` and 1001, it is unlisted, its replay gets its end record."""
        host = self.host
        match = host.matches.get(mid)
        if match is None:
            return
        for member in list(match.members.values()):
            if member.client is not None:  # never dropped, however slow its reader (a plain send may be)
                member.client.tell_and_close(CLOSE_GOING_AWAY, reason)
        recorder = host.release(mid)
        host.server.remove_feed(mid, reason)
        try:
            await host.directory.remove_match(mid, now=host.clock())
        except DirectoryError as exc:
            log.warning("drain: match %s could not be unlisted: %s", mid, exc)
        if recorder is not None:
            await asyncio.to_thread(recorder.on_close, match)
        self.stats["matches_ended_by_drain"] += 1
        log.info("match %s ended by the drain at tick %d: %s", mid, match.tick_count, reason)

    # -- the admin API -------------------------------------------------------------------

    def api_drain(self, request: HttpRequest) -> Response:
        """``POST /api/admin/drain`` with ``Authorization: Bearer <token>``: 202 and the drain starts (200 when it
        is under way already); 401 without a bearer token, 403 with a wrong one, 404 when no token is configured."""
        if self.admin_token is None:
            return json_response({"error": "no admin API here: start the server with --admin-token "
                                           "(or TICKSERVER_ADMIN_TOKEN)"}, 404)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return json_response({"error": "an admin request needs Authorization: Bearer <token>"}, 401,
                                 extra={"WWW-Authenticate": 'Bearer realm="tickserver admin"'})
        if not hmac.compare_digest(given.strip().encode(), self.admin_token.encode()):
            return json_response({"error": "wrong admin token"}, 403)
        started = self._drain is None
        if started:
            self.start("POST /api/admin/drain")
        host = self.host
        return json_response({"draining": True, "node": host.node_id, "started": started,
                              "matches": len(host.matches), **self.stats}, 202 if started else 200)


def _cancelled_meanwhile(exc: Exception) -> None:
    """Raise CancelledError (from ``exc``) when this task was cancelled during the call that failed with ``exc``.

    A client library may turn the cancellation of a blocked read into its own error (a read cut short looks like
    a lost connection); a loop that retries on that error would swallow the cancellation and never end.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError() from exc


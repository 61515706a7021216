"""A match captured at a tick boundary and restored on another node, bit for bit.

``capture`` reads a frozen ``Match`` (``Match.freeze``: it ticks no more)
into a ``MatchState``: the world as a replay keyframe, the input table in
force, its joined players (connected or held) with their tokens; spectators
and connections still waiting to join are not part of it (spectators
reconnect as new ones; the drain waits for joins to land first).

``restore`` makes a new ``Match`` from a state: the ruleset must be the one
recorded (name, version, columns and inputs, as a replay's re-simulation
requires), the world rebuilt from the keyframe must hash to the state's
``hash``, and every player is held for a resume with its own token, its
input still in force with its lag (repeated each tick until its next input,
as for a player whose inputs are late; a player already away on the sender
gets the all-zero input it would have got there), its disconnection time
carried over. The restored
match then steps exactly as the sender's would have: the world, the input
table and the player ids are the same, and a ruleset keeps all of its state
in the world (RULESETS.md), which is what makes replays re-simulate too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from game.rules import Ruleset
from game.world import EntityId, PlayerId, state_hash
from server.handover.format import BadHandover, HeldPlayer, MatchState
from server.match import Match
from server.protocol.delta import Snapshot
from server.replay.format import BadReplay, Header, KeyframeData, utc_iso
from server.replay.resim import check_ruleset


def capture(match: Match, room: Mapping[str, Any], *, now: float, wall: float, replay: str | None = None) -> MatchState:
    """The state of ``match`` after its last tick (freeze it first, and let pending joins land).

    Args:
        room: the room type it was made from, as plain data.
        now: the match's clock (its ``tick(now)``'s): how long held players have been away.
        wall: the wall-clock time (the header's ``start_time``).
        replay: the match's replay file name, if it is recorded.
    """
    world = match.world
    players = sorted((m for m in match.members.values() if m.joined and not m.spectator), key=lambda m: m.player)
    table = match.inputs
    header = Header.for_spec(match.ruleset.spec, match=match.match_id, seed=match.seed, options=match.options,
                             tick_rate=match.tick_rate, start_time=utc_iso(wall), start_tick=world.tick,
                             extra={"writer": "tickserver"}, lag_max=table.max_lag)
    track = header.new_track()  # the input table in force, with each player's lag: what a recording's keyframe holds
    track.players = table.players.astype(np.int32, copy=True)
    track.values = np.column_stack([table.current, table.lag]).astype(np.int16)
    seqs = dict(zip(table.players.tolist(), table.applied_seq.tolist()))
    keyframe = KeyframeData.capture(world, track, [(m.player, m.name, m.entity) for m in players])
    held = tuple(HeldPlayer(m.player, m.name, m.entity, m.token,
                            None if m.left_at is None else max(0.0, now - m.left_at), int(seqs.get(m.player, 0)))
                 for m in players)
    snap = match.snapshot
    checksum = snap.checksum if snap.tick == world.tick else Snapshot.capture(world).checksum
    return MatchState(match.match_id, dict(room), header, keyframe, state_hash(world), checksum, held,
                      match.next_player, match.hold_s, replay)


def restore(state: MatchState, ruleset: Ruleset, *, now: float, msg_rate: float = 0.0,
            hold_s: float | None = None, max_players: int | None = None) -> Match:
    """A new match continuing ``state`` exactly; every player held for a resume (``hold_s`` from ``now``,
    less the time it was already away).

    Args:
        now: the new match's clock.
        msg_rate, hold_s, max_players: the match's settings (None: the state's hold, the room's players).

    Raises:
        BadHandover: another ruleset (or version, columns, inputs), or a world that does not hash to ``state.hash``.
    """
    header = state.header
    try:
        check_ruleset(header, ruleset)
    except BadReplay as exc:
        raise BadHandover(f"this node cannot continue the match: {exc}") from None
    world = state.keyframe.world(ruleset.spec.resolve(header.options), header.seed)
    got = state_hash(world)
    if got != state.hash:
        raise BadHandover(f"the world rebuilt at tick {state.tick} hashes to {got}, the sender's to {state.hash}")
    players = state.room.get("max_players") if max_players is None else max_players
    match = Match(ruleset, match_id=state.match_id, seed=header.seed, options=dict(header.options),
                  tick_rate=header.tick_rate, max_players=players if isinstance(players, int) and players > 0 else 4096,
                  msg_rate=msg_rate, hold_s=state.hold_s if hold_s is None else hold_s, world=world)
    if match.snapshot.checksum != state.checksum:
        raise BadHandover(f"the world's checksum at tick {state.tick} is {match.snapshot.checksum}, "
                          f"the sender's {state.checksum}")
    if header.lag_max not in (None, match.inputs.max_lag):
        raise BadHandover(f"the sender compensates lags up to {header.lag_max} ticks, this node up to "
                          f"{match.inputs.max_lag}: their inputs would not apply alike")
    table = state.keyframe.inputs
    fields = len(header.inputs)
    lag = table.values[:, fields] if table.lagged else np.zeros(len(table.players), np.int16)
    match.adopt([(PlayerId(p.player), p.name, None if p.entity is None else EntityId(p.entity), p.token,
                  now - (p.held_for or 0.0), p.held_for is not None) for p in state.players],
                table.values[:, :fields], lag, [p.seq for p in state.players], state.next_player)
    return match

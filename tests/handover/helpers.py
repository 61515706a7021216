"""For the hand-over tests: a match with in-memory players that play a scripted game, and its state."""

from __future__ import annotations

from typing import Any

from game.rules import get_ruleset
from server.handover.format import MatchState
from server.handover.transfer import capture
from server.match import Match, Member
from server.protocol.codec import encode_client
from server.protocol.messages import Hello, Input
from tests.server.test_match import FakeClient

#: Options small enough for fast tests, big enough for drones, bullets and pellets to meet players.
OPTIONS: dict[str, dict[str, int]] = {"arena": {"npcs": 12, "pellets": 30}, "drift": {"npcs": 40}}


def new_match(ruleset: str, seed: int = 7, **kw: Any) -> Match:
    tokens = iter(f"token-{i}" for i in range(1000))
    return Match(get_ruleset(ruleset), match_id="m1", seed=seed, options=OPTIONS[ruleset],
                 token_factory=lambda: next(tokens), **kw)


def join(match: Match, name: str, *, spectate: bool = False, token: str | None = None,
         now: float = 0.0) -> tuple[Member, FakeClient]:
    client = FakeClient()
    session = match.new_session()
    hello = session.receive(encode_client(Hello(1, name, spectate, token)), now, match.tick_count)
    assert isinstance(hello, Hello)
    return match.connect(hello, session, client, now), client


def scripted_input(ruleset: str, player: int, tick: int) -> tuple[int, ...]:
    """What player ``player`` does at ``tick``: walk, turn and (arena) fire, changing every few ticks."""
    dx, dy = (tick // 7 + player) % 3 - 1, (tick // 11 + 2 * player) % 3 - 1
    if ruleset == "arena":
        return dx, dy, (tick * 5 + player * 40) % 256, (tick // 3 + player) % 2
    return dx, dy


def play(match: Match, ruleset: str, ticks: int, seq: dict[int, int], away: frozenset[int] = frozenset()) -> list[str]:
    """Tick ``match`` ``ticks`` times, each player but those ``away`` sending its scripted input first, viewing
    the world a few ticks back (a lag of 0 to 3); the hash after each tick.

    ``seq``: each player's last ``seq`` (updated).
    """
    hashes = []
    for _ in range(ticks):
        tick = match.tick_count
        for m in list(match.members.values()):
            if m.joined and not m.spectator and m.player not in away:
                seq[m.player] = seq.get(m.player, 0) + 1
                view = max(0, tick - m.player % 4)
                match.on_message(m, Input(seq[m.player], scripted_input(ruleset, m.player, tick), view=view))
        match.tick(float(tick) / match.tick_rate)
        hashes.append(match.state_hash())
    return hashes


def frozen_state(match: Match, now: float = 100.0) -> MatchState:
    """``match`` frozen and captured (room data as a host would give it)."""
    match.freeze()
    room = {"ruleset": match.ruleset.spec.name, "options": dict(match.options), "tick_rate": match.tick_rate,
            "max_players": match.max_players, "seed": match.seed, "labels": {"mode": "ffa"}}
    return capture(match, room, now=now, wall=1_700_000_000.0, replay="m1.replay")

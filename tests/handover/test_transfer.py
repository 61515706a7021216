"""A match captured at tick K and restored elsewhere steps exactly as the original would have."""

from __future__ import annotations

import pytest

from game.rules import get_ruleset
from server.handover.format import BadHandover, Offer, decode, encode
from server.handover.transfer import restore
from server.protocol.codec import decode_server
from server.protocol.messages import Roster, Update, Welcome
from tests.handover.helpers import frozen_state, join, new_match, play


def wire(state: object) -> object:
    """``state`` through the bytes a mailbox carries."""
    got = decode(encode(Offer("h", "a", 1.0, state)))  # type: ignore[arg-type]
    assert isinstance(got, Offer)
    return got.state


@pytest.mark.parametrize("ruleset", ["arena", "drift"])
def test_a_restored_match_steps_bit_for_bit_like_the_original(ruleset: str) -> None:
    """Inputs with lags, a player who went away before the hand-over (an all-zero input on both), and a few
    ticks right after it without inputs (the players reconnecting): each input in force, with its lag, again."""
    reference, original = new_match(ruleset), new_match(ruleset)
    clients = [[join(match, name) for name in ("ann", "bob", "cy", "dee")] for match in (reference, original)]
    ref_seq: dict[int, int] = {}
    seq: dict[int, int] = {}
    gone = frozenset({clients[0][2][0].player})
    expected = play(reference, ruleset, 60, ref_seq)
    before = play(original, ruleset, 60, seq)
    for match, joined in zip((reference, original), clients):
        member, client = joined[2]
        match.disconnect(member, client, 60 / 30)  # just before the hand-over: its input is zero from the next tick
    everyone = frozenset(m.player for m in reference.members.values())
    expected += play(reference, ruleset, 5, ref_seq, everyone) + play(reference, ruleset, 85, ref_seq, gone)
    assert before == expected[:60]
    assert set(original.inputs.lag.tolist()) == ({1, 2, 3, 4} if original.inputs.max_lag else {0})  # arena rewinds
    state = wire(frozen_state(original, now=60 / 30))
    moved = restore(state, get_ruleset(ruleset), now=60 / 30)  # type: ignore[arg-type]
    assert moved.state_hash() == original.state_hash() == expected[59]
    assert moved.tick_count == 60 and moved.snapshot.checksum == original.snapshot.checksum
    after = play(moved, ruleset, 5, seq, everyone) + play(moved, ruleset, 85, seq, gone)
    assert after == expected[60:]
    assert get_ruleset(ruleset).scores(moved.world) == get_ruleset(ruleset).scores(reference.world)


def test_the_input_in_force_carries_on_until_a_player_sends_another() -> None:
    reference, original = new_match("drift"), new_match("drift")
    for match in (reference, original):
        join(match, "ann")
    seq: dict[int, int] = {}
    play(reference, "drift", 20, dict(seq))
    play(original, "drift", 20, seq)
    moved = restore(wire(frozen_state(original)), get_ruleset("drift"), now=0.0)  # type: ignore[arg-type]
    for _ in range(10):  # nobody sends anything: the last input stays in force on both
        reference.tick(0.0)
        moved.tick(0.0)
        assert moved.state_hash() == reference.state_hash()


def test_players_are_held_for_a_resume_with_their_token_entity_and_score() -> None:
    original = new_match("arena")
    ann, _ = join(original, "ann")
    join(original, "bob")
    play(original, "arena", 200, {})
    state = wire(frozen_state(original))
    moved = restore(state, get_ruleset("arena"), now=50.0, hold_s=10.0)  # type: ignore[arg-type]
    assert moved.player_count() == 2 and moved.next_player == original.next_player
    assert all(m.client is None and m.left_at == 50.0 for m in moved.members.values())
    member, client = join(moved, "whoever", token=ann.token, now=51.0)
    assert (member.player, member.entity, member.name) == (ann.player, ann.entity, "ann")
    moved.tick(51.0)
    welcome, roster, update = (decode_server(f) for f in client.frames)
    assert isinstance(welcome, Welcome) and welcome.resumed and welcome.player == ann.player
    assert welcome.entity == ann.entity and welcome.tick == 201
    assert isinstance(roster, Roster) and [(e.name, e.online) for e in roster.players] == [("ann", True), ("bob", False)]
    assert isinstance(update, Update) and update.base is None
    scores = get_ruleset("arena").scores
    assert scores(moved.world)[ann.player] >= scores(original.world)[ann.player]


def test_a_player_never_coming_back_leaves_when_its_hold_runs_out() -> None:
    original = new_match("drift")
    join(original, "ann")
    play(original, "drift", 5, {})
    moved = restore(wire(frozen_state(original)), get_ruleset("drift"), now=0.0, hold_s=2.0)  # type: ignore[arg-type]
    moved.tick(1.0)
    assert moved.player_count() == 1
    moved.tick(2.0)
    assert moved.player_count() == 0


def test_a_new_member_is_refused_while_the_match_is_frozen_and_a_resume_is_not() -> None:
    original = new_match("drift")
    ann, _ = join(original, "ann")
    original.tick(0.0)
    original.freeze()
    with pytest.raises(Exception, match="moving to another server") as info:
        join(original, "bob")
    assert getattr(info.value, "code", None) == 1013
    assert join(original, "x", token=ann.token)[0] is ann
    tick = original.tick_count
    original.tick(1.0)
    assert original.tick_count == tick
    original.thaw()
    original.tick(1.0)
    assert original.tick_count == tick + 1


def test_another_ruleset_or_a_world_that_hashes_otherwise_is_refused() -> None:
    original = new_match("drift")
    join(original, "ann")
    play(original, "drift", 3, {})
    state = frozen_state(original)
    with pytest.raises(BadHandover, match="cannot continue the match: cannot replay ruleset 'drift'"):
        restore(state, get_ruleset("arena"), now=0.0)
    state.keyframe.cols[1][0] += 1  # the sender's world, changed after its hash was taken
    with pytest.raises(BadHandover, match="hashes to .*, the sender's to"):
        restore(state, get_ruleset("drift"), now=0.0)

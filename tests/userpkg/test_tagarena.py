"""``tagarena``, a game in a package outside ours: loaded by reference, deterministic, playable."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from game.rules import InputBatch, Ruleset
from game.world import PlayerId, World, state_hash
from server.rulesets import load_ruleset, ruleset_for_replay
from tagarena import SPEC, TagRuleset
from tagarena.spec import CALM_TICKS, IT, PLAYER, RUNNER, SCORE_PERIOD, SIZE, TAG_SCORE
from tests.fixtures.distributions import write_distribution

#: State hashes of ``play(300)``, written down once: a change means the rules
#: changed what they compute (bump ``SPEC.version``) or something
#: platform-dependent crept in.
GOLDEN = {
    1: "3e46fa9d789495555eb12a66f58736db",
    30: "d775af42b92f0a633892346b523c3daa",
    100: "f96c20347c318c5d7ba3bd9fdf23482a",
    300: "bf8975d2cb5a30472819be367858f5b9",
}
#: The tags of ``play(300)``: (tick, tagger entity, tagged entity). 200-202 are players 1-3.
GOLDEN_TAGS = [(51, 0, 66), (95, 66, 0), (125, 0, 66), (177, 66, 202), (210, 202, 185), (240, 185, 202), (300, 202, 41)]


def play(ruleset: Ruleset, ticks: int, seed: int = 7) -> tuple[dict[int, str], list[tuple[int, ...]]]:
    """Seed 7, 200 runners, three players on a fixed input pattern; player 2 leaves at tick 100."""
    world = ruleset.create(seed, {"npcs": 200})
    for p in (1, 2, 3):
        ruleset.join(world, PlayerId(p))
    hashes: dict[int, str] = {}
    events: list[tuple[int, ...]] = []
    for t in range(ticks):
        if t == 100:
            ruleset.leave(world, PlayerId(2))
        players = np.array([1, 3] if t >= 100 else [1, 2, 3], dtype=np.int32)
        values = (t // 7 + players[:, None] * 3 + np.arange(2) * 5) % 3 - 1
        for e in ruleset.step(world, InputBatch(players, values)):
            events.append((world.tick, *e.args))
        hashes[t + 1] = state_hash(world)
    return hashes, events


def kinds(world: World) -> np.ndarray:
    return world.cols["kind"][world.active()]


def entity_of(world: World, player: int) -> int:
    slots = world.active()
    return int(slots[world.cols["player"][slots] == player][0])


# -- loading ---------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["tagarena:TagRuleset", "tagarena.ruleset:TagRuleset"])
def test_the_game_loads_by_module_and_attribute_reference(ref: str) -> None:
    ruleset = load_ruleset(ref)
    assert isinstance(ruleset, TagRuleset)
    assert ruleset.spec is SPEC


def test_the_game_loads_by_the_name_its_distribution_registers(tmp_path, monkeypatch) -> None:
    write_distribution(tmp_path, "tagarena-game", {"tagarena": "tagarena:TagRuleset"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert isinstance(load_ruleset("tagarena"), TagRuleset)
    assert isinstance(ruleset_for_replay("tagarena"), TagRuleset)


def test_a_replay_of_the_game_resolves_by_reference_without_a_distribution() -> None:
    assert isinstance(ruleset_for_replay("tagarena", "tagarena:TagRuleset"), TagRuleset)


# -- determinism -----------------------------------------------------------------------


def test_the_game_reproduces_its_golden_state_hashes_and_tags() -> None:
    hashes, tags = play(TagRuleset(), 300)
    assert {t: hashes[t] for t in GOLDEN} == GOLDEN
    assert tags == GOLDEN_TAGS


def test_two_runs_with_the_same_seed_and_inputs_give_the_same_hashes_and_events() -> None:
    hashes_a, events_a = play(load_ruleset("tagarena:TagRuleset"), 200)
    hashes_b, events_b = play(TagRuleset(), 200)
    assert hashes_a == hashes_b
    assert events_a == events_b


def test_another_seed_gives_another_match() -> None:
    assert play(TagRuleset(), 5, seed=7)[0][5] != play(TagRuleset(), 5, seed=8)[0][5]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), npcs=st.integers(0, 60), players=st.integers(0, 4), ticks=st.integers(1, 90))
def test_there_is_exactly_one_it_whenever_anybody_is_on_the_field(seed: int, npcs: int, players: int, ticks: int) -> None:
    ruleset = TagRuleset()
    world = ruleset.create(seed, {"npcs": npcs})
    for p in range(players):
        ruleset.join(world, PlayerId(p))
    ids = np.arange(players, dtype=np.int32)
    for t in range(ticks):
        if t == ticks // 2 and players:
            ruleset.leave(world, PlayerId(0))
            ids = ids[1:]
        values = (t // 5 + ids[:, None] + np.arange(2)) % 3 - 1
        ruleset.step(world, InputBatch(ids, values))
        assert np.count_nonzero(kinds(world) == IT) == min(1, world.count())


# -- play --------------------------------------------------------------------------------


def test_the_first_body_on_an_empty_field_is_it_and_calm() -> None:
    ruleset = TagRuleset()
    world = ruleset.create(1, {"npcs": 0})
    ruleset.join(world, PlayerId(5))
    ruleset.join(world, PlayerId(6))
    assert list(kinds(world)) == [IT, PLAYER]
    assert world.cols["calm"][entity_of(world, 5)] == CALM_TICKS


def test_it_tags_a_player_it_touches_once_calm_and_the_tagged_player_cannot_tag_back_at_once() -> None:
    ruleset = TagRuleset()
    world = ruleset.create(1, {"npcs": 0})
    ruleset.join(world, PlayerId(5))
    ruleset.join(world, PlayerId(6))
    it, runner = entity_of(world, 5), entity_of(world, 6)
    world.cols["x"][runner] = world.cols["x"][it] + 8 * 10
    world.cols["y"][runner] = world.cols["y"][it]
    still = InputBatch(np.array([5, 6], np.int32), np.zeros((2, 2), np.int16))

    calm = [e for _ in range(CALM_TICKS) for e in ruleset.step(world, still)]
    tagged = ruleset.step(world, still)
    no_tag_back = [e for _ in range(CALM_TICKS - 1) for e in ruleset.step(world, still)]

    assert calm == []
    assert [(e.kind, e.args) for e in tagged] == [("tag", (int(world.ids[it]), int(world.ids[runner])))]
    assert no_tag_back == []
    assert list(kinds(world)) == [PLAYER, IT]
    assert world.cols["score"][it] == TAG_SCORE + 1  # the tag, and tick 60 not being it (at 30 it was)


def test_players_who_are_not_it_score_a_point_a_second() -> None:
    ruleset = TagRuleset()
    world = ruleset.create(3, {"npcs": 1})
    ruleset.join(world, PlayerId(0))
    far = InputBatch(np.array([0], np.int32), np.zeros((1, 2), np.int16))
    me = entity_of(world, 0)
    world.cols["x"][me], world.cols["y"][me] = 0, 0
    world.cols["x"][0], world.cols["y"][0] = SIZE, SIZE  # the runner who is it, out of hunting reach
    for _ in range(SCORE_PERIOD * 2):
        ruleset.step(world, far)
    assert ruleset.scores(world) == {0: 2}


def test_when_it_leaves_the_lowest_id_body_becomes_it() -> None:
    ruleset = TagRuleset()
    world = ruleset.create(1, {"npcs": 2})
    ruleset.join(world, PlayerId(0))
    world.cols["kind"][world.active()] = [RUNNER, RUNNER, IT]
    ruleset.leave(world, PlayerId(0))
    assert list(kinds(world)) == [IT, RUNNER]


def test_players_move_by_their_input_and_stay_on_the_field() -> None:
    ruleset = TagRuleset()
    world = ruleset.create(1, {"npcs": 0})
    ruleset.join(world, PlayerId(0))
    me = entity_of(world, 0)
    x0 = int(world.cols["x"][me])
    right = InputBatch(np.array([0], np.int32), np.array([[1, 0]], np.int16))
    ruleset.step(world, right)
    assert int(world.cols["x"][me]) == min(x0 + SPEC.player.speed, SPEC.player.hi)
    for _ in range(600):
        ruleset.step(world, right)
    assert int(world.cols["x"][me]) == SPEC.player.hi

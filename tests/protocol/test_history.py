"""Snapshot history and update encoding: a bounded set of bases per tick, keyframes on the grid, carried predictions."""

from __future__ import annotations

import random

import numpy as np
import pytest

from game.drift import DriftRuleset
from game.rules import InputBatch
from server.protocol.codec import encode_update_prefix
from server.protocol.delta import Snapshot, WireSchema, encode_body
from server.protocol.history import (
    KEYFRAME_GAP,
    MAX_BASES,
    NO_UPDATE,
    SILENT_DOUBLINGS,
    SNAP,
    SnapshotHistory,
    UpdateEncoder,
    cap_bases,
    delta_bases,
)


def test_an_update_may_start_from_the_three_ticks_before_it_the_four_newest_grid_ticks_and_one_far_one() -> None:
    ticks = list(range(40, 0, -1))  # newest first, as a history gives them
    assert delta_bases(ticks, 41) == (40, 39, 38, 36, 32, 28, 24, 16)
    assert delta_bases(ticks, 35) == (34, 33, 32, 28, 24, 20, 16)  # 32 is a recent tick here, not an anchor
    assert delta_bases(ticks[:31], 41) == (40, 39, 38, 36, 32, 28, 24, 16)  # the history's 31 ticks before 41
    assert len(delta_bases(ticks, 41)) == MAX_BASES


def test_a_feed_whose_ticks_skip_has_fewer_anchors_or_none() -> None:
    assert delta_bases([99, 96, 93, 90, 87, 84, 81, 78, 75, 72], 102) == (99, 96, 93, 84, 72)  # speed 3
    assert delta_bases([15, 13, 11, 9, 7], 17) == (15, 13, 11)


def encoder_at(tick: int, grid: bool = True) -> UpdateEncoder:
    schema = WireSchema.from_spec(DriftRuleset().spec)
    history = SnapshotHistory()
    for t in range(max(0, tick - 31), tick + 1):
        history.add(Snapshot.empty(schema, t))
    enc = UpdateEncoder(schema, history, grid=grid)
    enc.begin(history.get(tick) or Snapshot.empty(schema, tick), [])
    return enc


def test_a_client_gets_a_delta_from_the_newest_allowed_base_it_holds() -> None:
    enc = encoder_at(45)  # bases 44, 43, 42, 40, 36, 32, 28, 16
    assert enc.choose({44, 43, 42}.__contains__, None) == 44
    assert enc.choose(set(range(30, 42)).__contains__, None) == 40  # lags 4 ticks: the anchor
    assert enc.choose({20, 32, 33}.__contains__, None) == 32  # lags 12 ticks: an older anchor
    assert enc.choose({33, 34, 35}.__contains__, None) == NO_UPDATE  # no allowed base, and 45 is off the grid
    assert enc.choose({20, 27, 28}.__contains__, None) == 28  # lags 17 ticks: the oldest anchor


@pytest.mark.parametrize("tick, last_keyframe, first, expected", [
    (45, None, True, None),  # a first update: a keyframe at once
    (45, None, False, NO_UPDATE),  # otherwise only on a grid tick
    (48, None, False, None),
    (48, 40, False, NO_UPDATE),  # its last keyframe is unacknowledged: KEYFRAME_GAP ticks later at the earliest
    (49, None, False, NO_UPDATE),
    (64, 64 - KEYFRAME_GAP, False, None),
    (48, 48 - KEYFRAME_GAP, False, NO_UPDATE),  # the gap is over, but slot 0's tick of the 32 is 64
    (49, None, False, NO_UPDATE),
])
def test_a_client_that_holds_no_base_gets_a_keyframe_only_when_the_rules_say(
        tick: int, last_keyframe: int | None, first: bool, expected: int | None) -> None:
    enc = encoder_at(tick)
    assert enc.choose(set().__contains__, last_keyframe, first) == expected


def test_a_client_said_to_hold_nothing_is_answered_as_one_that_holds_no_tick() -> None:
    for tick in range(40, 40 + 2 * KEYFRAME_GAP):
        enc = encoder_at(tick)
        for last_keyframe in (None, 40, tick - KEYFRAME_GAP, tick - 1):
            for first in (False, True):
                for slot in range(0, KEYFRAME_GAP, 5):
                    assert enc.choose(None, last_keyframe, first, slot=slot) == enc.choose(
                        set().__contains__, last_keyframe, first, slot=slot)


@pytest.mark.parametrize("grid", [True, False])
def test_the_next_keyframe_of_a_client_that_never_acknowledged_is_the_first_tick_choose_gives_it_one(grid: bool) -> None:
    encoders = {t: encoder_at(t, grid) for t in range(40, 40 + 3 * KEYFRAME_GAP)}
    for tick in range(40, 40 + KEYFRAME_GAP):
        for last_keyframe in (tick, tick - 5, tick - KEYFRAME_GAP, tick - 2 * KEYFRAME_GAP):
            for slot in (0, 1, 7, 31, 32, 1001):
                due = encoders[tick].next_keyframe(tick, last_keyframe, slot)
                gets = [t for t in range(tick + 1, due + 1) if encoders[t].choose(None, last_keyframe, slot=slot) is None]
                assert gets == [due]


@pytest.mark.parametrize("grid", [True, False])
def test_a_client_that_never_acknowledges_waits_twice_as_long_for_each_keyframe_up_to_eight_times_the_gap(
        grid: bool) -> None:
    slot, last_keyframe, sent, got = 5, 40, 1, [40]  # its first keyframe, with the welcome, at 40
    for tick in range(41, 41 + 24 * KEYFRAME_GAP):
        enc = encoder_at(tick, grid)
        if enc.choose(None, last_keyframe, slot=slot, sent=sent) is None:
            assert tick == encoder_at(last_keyframe, grid).next_keyframe(last_keyframe, last_keyframe, slot, sent)
            got.append(tick)
            last_keyframe, sent = tick, sent + 1
    waits = [b - a for a, b in zip(got, got[1:])]
    limits = [KEYFRAME_GAP << min(i, SILENT_DOUBLINGS) for i in range(len(waits))]
    assert all(lo <= w < lo + KEYFRAME_GAP for w, lo in zip(waits, limits))  # its own tick of the 32 after the wait
    assert limits[:5] == [32, 64, 128, 256, 256] and len(waits) >= 5
    # One that acknowledged once (last_ack) is not backed off: the gap, whatever it was sent.
    assert encoder_at(96, grid).choose(set().__contains__, 40, last_ack=1, slot=0, sent=9) is None  # 56 ticks on


def test_a_client_whose_acks_advance_gets_a_keyframe_every_grid_tick_though_it_lags_past_every_base() -> None:
    enc = encoder_at(48)
    assert enc.choose({10}.__contains__, 40, last_ack=30) is None  # acked something 18 ticks ago: alive
    assert enc.choose({10}.__contains__, 40, last_ack=48 - KEYFRAME_GAP) == NO_UPDATE  # silent for the gap


def test_clients_that_never_acknowledged_get_their_keyframes_on_a_tick_of_their_slot() -> None:
    # Their last keyframe at 60, unacknowledged: from 92 on, each gets one on its own of the next 32 ticks.
    got = {slot: [t for t in range(92, 92 + KEYFRAME_GAP) if encoder_at(t).choose(set().__contains__, 60, slot=slot)
                  is None] for slot in range(KEYFRAME_GAP)}
    assert got[0] == [96] and got[1] == [95] and got[31] == [97]
    assert sorted(t for ticks in got.values() for t in ticks) == list(range(92, 92 + KEYFRAME_GAP))


def test_clients_whose_acks_stopped_get_their_keyframes_on_the_grid_tick_of_their_slot() -> None:
    # They acknowledged tick 20 (long ago), then not the keyframe of 60: each on its own of the next 8 grid ticks.
    got = {slot: [t for t in range(92, 92 + KEYFRAME_GAP)
                  if encoder_at(t).choose(set().__contains__, 60, last_ack=20, slot=slot) is None] for slot in range(8)}
    assert got[0] == [96] and got[1] == [92] and got[7] == [100]
    assert sorted(t for ticks in got.values() for t in ticks) == list(range(92, 92 + KEYFRAME_GAP, SNAP))


def test_without_the_grid_a_keyframe_goes_whenever_the_gap_allows() -> None:
    enc = encoder_at(45, grid=False)
    assert enc.choose(set().__contains__, None) is None
    assert enc.choose(set().__contains__, 40) == NO_UPDATE


def test_past_three_bases_a_tick_keeps_the_two_most_used_and_the_oldest_and_the_rest_take_one_they_hold() -> None:
    bases: list[int | None] = [44, 44, 44, 43, 43, 42, 40, 36, 36, 28, None]
    holds = [set(range(0, b + 1)) if b is not None else set() for b in bases]
    holds[6] = {40}  # holds nothing the tick keeps
    used = {b: bases.count(b) for b in set(bases) if b is not None}
    cap_bases(used, bases, [h.__contains__ for h in holds])
    assert bases == [44, 44, 44, 43, 43, 28, NO_UPDATE, 28, 28, 28, None]


def test_carrying_a_base_prediction_from_tick_to_tick_encodes_the_very_same_bytes() -> None:
    rules = DriftRuleset()
    world = rules.create(5, {"npcs": 300})
    for p in range(1, 4):
        rules.join(world, p)
    schema = WireSchema.from_spec(rules.spec)
    history = SnapshotHistory()
    carried = UpdateEncoder(schema, history)
    rng = random.Random(1)
    for _ in range(120):
        inputs = InputBatch(np.array([1, 2, 3], np.int32), np.array([[rng.randint(-1, 1), rng.randint(-1, 1)]] * 3, np.int16))
        rules.step(world, inputs)
        cur = Snapshot.capture(world)
        history.add(cur)
        carried.begin(cur, [])
        for base in carried.bases:
            fresh = encode_update_prefix(cur.tick, base, encode_body(schema, history.get(base), cur), cur.checksum, [])
            assert carried.prefix(base) == fresh
    assert carried.encodes <= MAX_BASES

"""The input queue: one input applied per tick, exactly once, in seq order; starvation, overflow, adaptive depth.

The jitter tests drive the queue with a fake clock: inputs are sent one per
tick, arrive after a seeded random delay (in order, as over TCP), and each
``commit`` is a tick boundary.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from server.inputs import CAPACITY, MAX_DEPTH, InputTable, max_lag_ticks


def table(players: list[int], fields: int = 2, **kw: Any) -> InputTable:
    t = InputTable(fields, **kw)
    t.add(players)
    return t


def test_each_tick_applies_the_oldest_queued_input_once_in_seq_order() -> None:
    t = table([1, 2])
    t.submit(1, 1, (1, 0))
    t.submit(1, 2, (-1, 1))
    batch = t.commit(1)
    assert batch.players.tolist() == [1, 2]
    assert batch.values.tolist() == [[1, 0], [0, 0]]
    assert t.ack(1) == 1 and t.ack(2) == 0
    assert t.commit(2).values.tolist() == [[-1, 1], [0, 0]] and t.ack(1) == 2
    assert t.totals == {"starved": 0, "dropped": 0, "stale": 0, "trimmed": 0, "trimmed_idle": 0, "skipped": 0}


def test_an_empty_queue_repeats_the_input_in_force_counts_it_starved_and_keeps_the_ack() -> None:
    t = table([1])
    t.commit(1)
    t.commit(2)
    assert t.totals["starved"] == 0  # nothing applied yet: nothing to starve
    t.submit(1, 1, (1, 1))
    t.commit(3)
    batch = t.commit(4)
    assert batch.values.tolist() == [[1, 1]] and t.ack(1) == 1
    assert t.totals["starved"] == 1 and t.queue_stats(1)["starved"] == 1


def test_a_starved_tick_rests_the_axes_and_buttons_and_repeats_the_values() -> None:
    t = table([1, 2], fields=4, resting=[0, 1, 3])  # dx, dy (axes), aim (a value), fire (a button)
    t.submit(1, 1, (1, -1, 40, 1))
    t.submit(2, 1, (0, 1, 7, 0))
    t.submit(2, 2, (-1, 1, 9, 1))
    assert t.commit(1).values.tolist() == [[1, -1, 40, 1], [0, 1, 7, 0]]
    assert t.commit(2).values.tolist() == [[0, 0, 40, 0], [-1, 1, 9, 1]]  # 1 starved: it stands, aims, presses nothing
    assert t.commit(3).values.tolist() == [[0, 0, 40, 0], [0, 0, 9, 0]]
    assert t.ack(1) == 1 and t.ack(2) == 2 and t.totals["starved"] == 3


def test_a_seq_not_above_the_last_queued_or_applied_is_ignored_and_counted() -> None:
    t = table([1])
    assert t.submit(1, 5, (1, 0))
    assert not t.submit(1, 5, (0, 1))  # repeated while queued
    assert not t.submit(1, 3, (0, 1))  # lower
    t.commit(1)
    assert not t.submit(1, 5, (0, 1))  # repeated once applied
    assert t.submit(1, 9, (0, 1))  # gaps are fine
    t.commit(2)
    assert t.ack(1) == 9 and t.totals["stale"] == 3 and t.queue_stats(1)["stale"] == 3


def test_a_queue_holds_at_most_its_capacity_and_drops_the_oldest() -> None:
    t = table([1], fields=1)
    for seq in range(1, CAPACITY + 4):
        t.submit(1, seq, (seq,))
    t.commit(1)
    assert t.ack(1) == 4  # 1, 2, 3 pushed out
    assert t.totals["dropped"] == 3
    applied = [int(t.commit(k).values[0, 0]) for k in range(2, CAPACITY + 2)]
    assert applied == list(range(5, CAPACITY + 4)) + [CAPACITY + 3]  # then the last is repeated


def test_overflow_spread_over_ticks_drops_the_oldest_queued_first() -> None:
    t = table([1], fields=1)
    for seq in range(1, CAPACITY + 1):
        t.submit(1, seq, (seq,))
    t.commit(1)  # applies 1, 7 queued
    for seq in range(CAPACITY + 1, CAPACITY + 4):
        t.submit(1, seq, (seq,))
    t.commit(2)  # 10 queued > 8: 2 and 3 dropped, 4 applied
    assert t.ack(1) == 4 and t.totals["dropped"] == 2


def test_lag_is_the_tick_minus_the_view_clamped_and_kept_while_the_input_repeats() -> None:
    t = table([1, 2], max_lag=8)
    t.submit(1, 1, (0, 0), view=95)
    t.submit(2, 1, (0, 0))  # no view: no compensation
    assert t.commit(100).lag.tolist() == [5, 0]
    assert t.commit(101).lag.tolist() == [5, 0]  # starved: the repeated input keeps its lag
    t.submit(1, 2, (0, 0), view=10)
    t.submit(2, 2, (0, 0), view=200)  # a view ahead of the server: 0
    assert t.commit(102).lag.tolist() == [8, 0]
    assert max_lag_ticks(30) == 8 and max_lag_ticks(60) == 15


def test_players_added_out_of_order_stay_sorted_by_id() -> None:
    t = table([5, 9], fields=1)
    t.add([7, 2])
    assert t.players.tolist() == [2, 5, 7, 9]
    t.submit(7, 3, (4,))
    assert t.commit(1).values[:, 0].tolist() == [0, 0, 4, 0]
    with pytest.raises(ValueError):
        t.add([5])


@pytest.mark.parametrize("newcomers", [[8, 6], [4, 0]])  # after every row (the usual), or among them
def test_players_added_keep_every_other_players_queue_and_ack(newcomers: list[int]) -> None:
    t = table([1, 3, 5])
    for seq in (1, 2, 3):
        t.submit(3, seq, (seq % 2, 1))
    t.commit(1)
    t.add(newcomers)
    assert t.players.tolist() == sorted([1, 3, 5, *newcomers])
    assert t.ack(3) == 1 and all(t.ack(p) == 0 for p in newcomers)
    rows = dict(zip(t.players.tolist(), t.commit(2).values.tolist()))
    assert rows[3] == [0, 1] and rows[newcomers[0]] == [0, 0]  # 3's second input, queued before the add
    assert t.ack(3) == 2
    t.remove([3, newcomers[1]])
    assert t.players.tolist() == sorted([1, 5, newcomers[0]])
    assert dict(zip(t.players.tolist(), t.commit(3).values.tolist()))[5] == [0, 0]


def test_remove_drops_rows_and_arrivals_and_neutral_zeroes_a_player_without_changing_its_ack() -> None:
    t = table([1, 2, 3])
    t.submit(2, 8, (1, 1))
    t.commit(1)
    t.submit(1, 1, (1, 1))
    t.submit(2, 9, (1, 0))
    t.neutral(2)
    t.remove([1, 3])
    batch = t.commit(2)
    assert batch.players.tolist() == [2] and batch.values.tolist() == [[0, 0]]
    assert t.ack(2) == 8
    t.commit(3)
    assert t.totals["starved"] == 0  # a held player does not starve


def test_restart_numbers_seq_from_scratch_with_ack_zero() -> None:
    t = table([1])
    t.submit(1, 40, (1, 1))
    t.commit(1)
    t.restart(1)
    assert t.ack(1) == 0
    assert t.submit(1, 1, (0, 1))
    t.commit(2)
    assert t.ack(1) == 1


def test_the_ack_map_holds_every_players_ack_as_ack_gives_it() -> None:
    t = table([3, 1, 2])
    t.submit(1, 4, (1, 1))
    t.submit(3, 9, (0, 1))
    t.commit(1)
    assert t.ack_map() == {1: 4, 2: 0, 3: 9} == {p: t.ack(p) for p in (1, 2, 3)}


def test_a_committed_batch_is_a_copy_the_table_does_not_change_later() -> None:
    t = table([1], fields=1)
    t.submit(1, 1, (3,))
    batch = t.commit(1)
    t.submit(1, 2, (5,))
    t.commit(2)
    assert batch.values.tolist() == [[3]]


# -- jitter, on a fake clock --------------------------------------------------------


def play(t: InputTable, delays: list[float], *, start: int = 1) -> list[int]:
    """Send input ``seq`` = k at tick k + 0.1 (one per tick, answering update k), arriving ``delays[k]`` ticks
    later and in order (TCP); run a tick at every integer time until the last is applied. The seq applied
    at each tick."""
    arrivals, due = [], 0.0
    for k, d in enumerate(delays):
        due = max(due, k + 0.1 + d)
        arrivals.append(due)
    applied, i, tick = [], 0, start
    while not applied or applied[-1] < len(delays) and tick < len(delays) + 100:
        while i < len(arrivals) and arrivals[i] < tick:
            t.submit(1, i + 1, (i % 3 - 1, 0))
            i += 1
        t.commit(tick)
        applied.append(t.ack(1))
        tick += 1
    return applied


def test_without_jitter_the_queue_stays_one_deep_and_never_starves() -> None:
    t = table([1])
    applied = play(t, [0.3] * 300)
    assert t.totals == {"starved": 0, "dropped": 0, "stale": 0, "trimmed": 0, "trimmed_idle": 0, "skipped": 0}
    assert t.queue_stats(1)["depth"] == 1
    assert applied[:5] == [1, 2, 3, 4, 5]  # each input one tick after its update


def test_every_input_is_applied_exactly_once_and_in_order_under_jitter() -> None:
    rng = random.Random(7)
    t = table([1], window=300)
    delays = [3 + rng.uniform(-1.0, 1.0) for _ in range(1800)]  # 100 ms +- 30 ms each way at 30 Hz
    applied = play(t, delays)
    moved = [a for a, b in zip(applied[1:], applied) if a != b]
    seen = [applied[0]] + moved
    assert seen == sorted(set(seen))  # ascending, each once
    assert len(set(range(1, 1801)) - set(seen)) == t.totals["dropped"]  # any gap was a counted drop
    # The queue grows to cover the jitter, then starves very rarely: well under 1% of ticks.
    assert t.totals["starved"] + t.totals["dropped"] < 18, t.totals
    assert 2 <= t.queue_stats(1)["depth"] <= MAX_DEPTH


def test_a_late_burst_deepens_the_queue_and_a_calm_window_trims_it_back_once() -> None:
    t = table([1], window=60)
    delays = [0.3] * 100 + [2.5] + [0.3] * 300  # one input 2 ticks late, with the next one behind it (TCP)
    play(t, delays)
    s = t.queue_stats(1)
    assert t.totals["starved"] == 2  # the late one cost two repeats ...
    assert t.totals["dropped"] == 2  # ... and once the window was calm, the two extra ticks went in one trim
    assert s["depth"] == 1 and s["queued"] == 0


def deep_queue(idle: range, ticks: int) -> tuple[InputTable, list[int]]:
    """Inputs 1-3 at once, then one a tick: the queue stays three deeper than its depth (1) needs. Inputs whose
    ``seq`` is in ``idle`` stand still (field 0, resting, is 0); field 1 holds the seq. The seq applied per tick."""
    t = table([1], fields=2, window=60, resting=[0])
    for seq in (1, 2, 3):
        t.submit(1, seq, (1, seq))
    applied = []
    for tick in range(1, ticks):
        seq = tick + 3
        t.submit(1, seq, (0 if seq in idle else 1, seq))
        t.commit(tick)
        applied.append(t.ack(1))
    return t, applied


def test_idle_inputs_in_a_queue_deeper_than_its_depth_are_dropped_at_once_one_a_tick() -> None:
    t, applied = deep_queue(range(70, 80), 100)  # the depth falls to 1 at tick 55: three inputs too many
    skipped = sorted(set(range(1, applied[-1])) - set(applied))
    # No window to wait for: every other one of the first idle inputs (one dropped, the next applied, per
    # tick) until the queue is down to its depth. Standing still one tick fewer is free.
    assert skipped == [70, 72, 74], skipped
    assert t.totals["trimmed_idle"] == t.totals["dropped"] == 3 and t.queue_stats(1)["queued"] == 0


def test_a_trim_drops_idle_inputs_first_and_moving_ones_only_when_none_came() -> None:
    t, applied = deep_queue(range(150, 160), 145)
    assert t.totals["dropped"] == 0 and t.queue_stats(1)["queued"] == 3  # owed, but nothing idle came yet
    t, applied = deep_queue(range(150, 160), 240)
    skipped = sorted(set(range(1, applied[-1])) - set(applied))
    assert skipped and all(150 <= s < 160 for s in skipped), skipped  # the standing-still ones went
    assert t.totals["dropped"] == len(skipped) == 3 and t.queue_stats(1)["queued"] == 0
    assert t.totals["trimmed"] == t.totals["trimmed_idle"] == 3


def test_inputs_owed_that_never_come_idle_are_dropped_a_window_later() -> None:
    t, _ = deep_queue(range(0), 165)  # the surplus is owed from tick 114 on (a calm window), and nothing comes idle
    assert t.totals["dropped"] == 0 and t.queue_stats(1)["queued"] == 3
    t, applied = deep_queue(range(0), 200)
    assert t.totals["dropped"] == 3 and t.queue_stats(1)["queued"] == 0
    assert t.totals["trimmed"] == 3 and t.totals["trimmed_idle"] == 0
    assert len(set(applied)) == len(applied) and applied == sorted(applied)  # in order, each once, three skipped


def test_the_target_depth_measures_the_spread_of_arrivals_bounded_by_max_depth() -> None:
    t = table([1], window=60)
    seq = 0
    for tick in range(1, 40):  # two inputs every other tick: spread 1
        if tick % 2:
            for _ in range(2):
                seq += 1
                t.submit(1, seq, (0, 0))
        t.commit(tick)
    assert t.queue_stats(1)["depth"] == 2
    for tick in range(100, 140):  # ten at once every tenth tick: far beyond the bound
        if tick % 10 == 0:
            for _ in range(10):
                seq += 1
                t.submit(1, seq, (0, 0))
        t.commit(tick)
    assert t.queue_stats(1)["depth"] == MAX_DEPTH


def skipping(skip: bool, ticks: int = 200) -> tuple[InputTable, list[int], list[int]]:
    """A client that sends one input a tick, except that three ticks early on have none and the next brings
    four (a stall, as a busy client answers one: the queue ends three deeper); with ``skip`` it then leaves out
    as many sends as each update's ``surplus`` says, less those skipped since the input the update applied (a
    gap in its ``seq``). The seq applied and the surplus, per tick."""
    t = table([1], window=60)
    seq, skips, applied, surplus = 0, [], [], []
    for tick in range(1, ticks):
        sends = 0 if 20 <= tick < 23 else 4 if tick == 23 else 1
        owed = (surplus[-1] if surplus else 0) - sum(1 for k in skips if k > t.ack(1))
        for _ in range(sends):
            seq += 1
            if skip and owed > 0 and sends == 1:
                skips.append(seq)  # numbered, never sent
                owed -= 1
                continue
            t.submit(1, seq, (1, seq % 100))
        t.commit(tick)
        applied.append(t.ack(1))
        surplus.append(t.surplus_map().get(1, 0))
    return t, applied, surplus


def test_a_queue_deeper_than_its_depth_reports_its_surplus_and_skipped_seqs_lower_it_without_deepening_it() -> None:
    t, applied, surplus = skipping(False)
    # A stall of three ticks: the queue is three deeper from then on. While the window remembers the stall its
    # depth covers it (4); then the three are a surplus, said every tick, until the trim drops three moving
    # inputs (three corrections for the client's prediction).
    assert t.totals["starved"] == 3 and surplus[:78] == [0] * 78 and surplus[78:88] == [3] * 10, surplus
    assert t.totals["dropped"] == t.totals["trimmed"] == 3 and t.totals["skipped"] == 0
    t, applied, surplus = skipping(True, 300)
    # Skipping as told: three sends left out (seq gaps; each skip counted in flight until the update's ack passes
    # it, so the client does not skip twice for one surplus), and the queue is down to its depth with nothing
    # dropped: every input sent is applied once, in order.
    # (A skip is a tick without an arrival, a dip in x that deepens D by one while the window holds it: the
    # last of the three waits for the window to forget it.)
    assert surplus[78] == 3 and max(surplus[79:]) == 1 and surplus[150:] == [0] * len(surplus[150:]), surplus
    assert t.totals["skipped"] == t.queue_stats(1)["skipped"] == 3 and t.totals["dropped"] == 0
    moved = [a for a, b in zip(applied[1:], applied) if a != b]
    assert moved == sorted(moved) and len(set(moved)) == len(moved)
    assert t.queue_stats(1)["depth"] == 1 and t.queue_stats(1)["queued"] == 0


def test_seq_gaps_count_as_arrivals_so_skipped_sends_do_not_deepen_the_queue() -> None:
    t = table([1], window=60)
    for tick in range(1, 140):
        if tick not in (100, 110, 120):  # three sends skipped, ten ticks apart (seq numbers the skipped too)
            t.submit(1, tick, (1, 0))
        t.commit(tick)
    s = t.queue_stats(1)
    # Each skip is a tick without an arrival, made up by the next input's seq: the depth sees a dip of one
    # (2 while the window holds it), not arrivals that fell three behind the ticks (which would make it 4).
    assert s["skipped"] == 3 and t.totals["starved"] == 3 and t.totals["dropped"] == 0
    assert s["depth"] == 2 and s["queued"] == 0


def test_two_thousand_players_each_get_their_input_in_one_commit() -> None:
    t = table(list(range(1, 2001)), fields=4)
    for p in range(1, 2001):
        t.submit(p, 1, (1, 0, 5, 1), view=0)
    batch = t.commit(3)
    assert np.all(batch.values == [1, 0, 5, 1]) and np.all(batch.lag == 0) and np.all(t.acks() == 1)

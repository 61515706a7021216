"""The input table: newest pending input wins, applied at commit, in player-id order."""

from __future__ import annotations

import numpy as np
import pytest

from server.inputs import InputTable


def test_commit_applies_the_newest_pending_input_and_keeps_it_in_force() -> None:
    t = InputTable(2)
    t.add([1, 2])
    t.submit(1, 1, (1, 0))
    t.submit(1, 2, (-1, 1))
    batch = t.commit()
    assert batch.players.tolist() == [1, 2]
    assert batch.values.tolist() == [[-1, 1], [0, 0]]
    assert t.ack(1) == 2 and t.ack(2) == 0
    assert t.commit().values.tolist() == [[-1, 1], [0, 0]]  # no new input: the old one stays


def test_players_added_out_of_order_stay_sorted_by_id() -> None:
    t = InputTable(1)
    t.add([5, 9])
    t.add([7, 2])
    assert t.players.tolist() == [2, 5, 7, 9]
    t.submit(7, 3, (4,))
    assert t.commit().values[:, 0].tolist() == [0, 0, 4, 0]
    with pytest.raises(ValueError):
        t.add([5])


def test_remove_drops_rows_and_neutral_zeroes_a_player_without_changing_its_ack() -> None:
    t = InputTable(2)
    t.add([1, 2, 3])
    t.submit(2, 8, (1, 1))
    t.commit()
    t.neutral(2)
    t.remove([1, 3])
    batch = t.commit()
    assert batch.players.tolist() == [2] and batch.values.tolist() == [[0, 0]]
    assert t.ack(2) == 8


def test_a_committed_batch_is_a_copy_the_table_does_not_change_later() -> None:
    t = InputTable(1)
    t.add([1])
    t.submit(1, 1, (3,))
    batch = t.commit()
    t.submit(1, 2, (5,))
    t.commit()
    assert np.array_equal(batch.values, [[3]])

"""``tools.client.GameClient`` fed server frames directly (no connection): its roster from whole rosters and deltas;
its skips (``Skips``, what an update's ``surplus`` says to leave out) against the server's input table on a fake clock."""

from __future__ import annotations

from game.schema import PlayerMove
from server.inputs import InputTable
from server.protocol.codec import encode_server
from server.protocol.messages import Roster, RosterDelta, RosterEntry
from tools.client import CATCH_UP, GameClient, Skips
from tools.predict import Predictor


def entry(player: int, name: str) -> RosterEntry:
    return RosterEntry(player, 100 + player, name, True)


def test_a_client_keeps_its_roster_from_deltas_and_asks_for_one_resync_when_it_misses_one() -> None:
    client = GameClient("ws://127.0.0.1:1/ws", "ann")
    client.minor = 1  # the server announced protocol 1.1 (PROTOCOL.md, *Versions*): roster deltas may be asked for
    assert client.hello().roster_deltas and client.roster is None
    client._handle(encode_server(Roster((entry(1, "ann"),), 3)))
    client._handle(encode_server(RosterDelta(4, (entry(2, "bob"),), ())))
    assert client.roster == Roster((entry(1, "ann"), entry(2, "bob")), 4)
    client._handle(encode_server(RosterDelta(6, (entry(3, "cat"),), (1,))))  # 5 was dropped (a slow reader)
    client._handle(encode_server(RosterDelta(7, (), (2,))))
    assert client.stats.resyncs == 1 and client.rosters.gaps == 2  # one resync asked, until its keyframe comes
    assert client.roster is not None and client.roster.players == (entry(1, "ann"), entry(2, "bob"))
    client._handle(encode_server(Roster((entry(3, "cat"),), 7)))  # the whole roster the resync brings
    client._handle(encode_server(RosterDelta(8, (entry(4, "dee"),), ())))
    assert client.roster == Roster((entry(3, "cat"), entry(4, "dee")), 8)
    assert client.stats.errors == []


def test_a_client_can_say_a_plain_hello_and_then_holds_each_whole_roster() -> None:
    client = GameClient("ws://127.0.0.1:1/ws", "ann", roster_deltas=False)
    assert not client.hello().roster_deltas
    client._handle(encode_server(Roster((entry(1, "ann"),))))
    client._handle(encode_server(Roster((entry(1, "ann"), entry(2, "bob")))))
    assert client.roster == Roster((entry(1, "ann"), entry(2, "bob")))


# -- skipping what the server's queue holds too many of, on a fake clock ------------------


def stalls_against_the_queue(skip: bool, ticks: int = 1800) -> tuple[InputTable, Predictor, Skips, tuple[int, int]]:
    """A client that answers each update at once with one input (moving all the time), against the server's
    input table (a 10 s window at 30 Hz) and its movement rule, on a busy machine: the client stalls 2 ticks
    every 37 and then answers the updates it missed together, one input each (``CATCH_UP``), as
    ``GameClient.answer`` does; the server leaves its socket unread for 6 ticks every 25 s (its inputs arrive
    together after that), else inputs arrive before the next tick (loopback). With ``skip`` the client leaves out
    what ``Skips`` says. The last 30 ticks it sends nothing (its inputs all applied). The table, the client's
    predictor and skips, and the server's final position."""
    move = PlayerMove(48, 34, 0, 1 << 20)
    table = InputTable(2, window=300, resting=[0, 1])
    table.add([1])
    predictor, skips = Predictor(move, 0, 1, None, 0, 1), Skips()
    x = y = 1 << 19
    predictor.observe((x, y, None), 0)
    seq, missed = 0, 0
    wire: list[tuple[int, tuple[int, int]]] = []
    for tick in range(1, ticks):
        if tick % 750 >= 6:  # the server reads what came
            for k, values in wire:
                table.submit(1, k, values)
            wire.clear()
        batch = table.commit(tick)
        dx, dy = (int(v) for v in batch.values[0])
        x, y = move.step(x, y, dx, dy)
        ack = table.ack(1)
        predictor.observe((x, y, None), ack)
        skips.observe(ack, table.surplus_map().get(1, 0) if skip else 0)
        missed += 1
        if tick % 37 < 2 or tick > ticks - 30:  # stalled: this update waits
            continue
        for _ in range(min(missed, CATCH_UP)):
            seq += 1
            if skips.skip(seq):
                continue
            values = ((tick // 11) % 3 - 1, 1 if (tick // 7) % 2 else -1)  # never idle: the trims find nothing
            predictor.sent(seq, values)
            wire.append((seq, values))
        missed = 0
    return table, predictor, skips, (x, y)


def test_a_client_skipping_the_servers_surplus_keeps_its_queue_from_overflowing_and_its_prediction_exact() -> None:
    table, predictor, skips, _ = stalls_against_the_queue(False)
    # The server's pause leaves the queue six deep; the client's short stalls keep its depth at 3, so it stays
    # deeper than that for 20 s and the trim drops moving inputs (the trim's surplus, a correction).
    assert table.totals["trimmed"] >= 2 and predictor.corrections >= 1, (table.totals, predictor.corrections)
    table, predictor, skips, (x, y) = stalls_against_the_queue(True)
    # Told the surplus, the client leaves out as many sends: nothing is dropped, every input sent is applied once,
    # and the prediction never disagrees (the stalls' starved ticks stand the player still: no correction).
    assert table.totals["dropped"] == 0 and table.totals["starved"] > 0, table.totals
    assert skips.skipped == table.totals["skipped"] > 0
    assert predictor.corrections == 0 and predictor.compared > 1700
    assert (predictor.px, predictor.py) == (x, y)


def test_skips_take_off_what_was_skipped_since_the_applied_input_went_out() -> None:
    s = Skips()
    s.observe(10, 3)
    assert [s.skip(k) for k in (13, 14, 15, 16)] == [True, True, True, False]
    s.observe(11, 3)  # the update of a tick before those skips showed: all three still in flight
    assert s.owed == 0 and not s.skip(17)
    s.observe(14, 1)  # 13 and 14 passed: 15 in flight, which may be the one the queue still says
    assert s.owed == 0
    s.observe(16, 1)  # none in flight: the queue's one more is owed
    assert s.owed == 1 and s.skip(18) and s.skipped == 4
    s.reset()
    assert s.owed == 0 and not s.pending

"""``tools.client.GameClient`` fed server frames directly (no connection): its roster from whole rosters and deltas."""

from __future__ import annotations

from server.protocol.codec import encode_server
from server.protocol.messages import Roster, RosterDelta, RosterEntry
from tools.client import GameClient


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

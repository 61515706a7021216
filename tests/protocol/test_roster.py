"""The roster's log and mirror: per-tick deltas, encoded once, rebuild on a client exactly the roster a fresh
joiner gets whole; a missed delta is a gap the mirror notices."""

from __future__ import annotations

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from server.protocol.codec import decode_server, encode_server
from server.protocol.messages import Roster, RosterDelta, RosterEntry
from server.protocol.roster import RosterLog, RosterMirror


def entry(player: int, name: str = "p", *, entity: int | None = None, online: bool = True) -> RosterEntry:
    return RosterEntry(player, entity if entity is not None else 100 + player, name, online)


def received(frame: bytes | None) -> Roster | RosterDelta:
    assert frame is not None
    msg = decode_server(frame)
    assert isinstance(msg, (Roster, RosterDelta))
    return msg


def test_a_new_log_is_the_empty_roster_at_revision_0() -> None:
    log = RosterLog()
    assert log.commit() is None
    assert log.rev == 0
    assert received(log.full()) == Roster((), 0)


def test_a_ticks_joins_and_leaves_are_one_delta_to_the_next_revision() -> None:
    log = RosterLog()
    log.put(entry(2, "bob"))
    log.put(entry(1, "ann"))
    assert received(log.commit()) == RosterDelta(1, (entry(1, "ann"), entry(2, "bob")), ())
    log.remove(1)
    log.put(entry(3, "cat"))
    log.put(entry(2, "bob", online=False))
    assert received(log.commit()) == RosterDelta(2, (entry(2, "bob", online=False), entry(3, "cat")), (1,))
    assert log.rev == 2
    assert received(log.full()) == Roster((entry(2, "bob", online=False), entry(3, "cat")), 2)


def test_what_a_tick_undoes_is_no_change_and_no_revision() -> None:
    log = RosterLog()
    log.put(entry(1))
    log.commit()
    log.put(entry(2))
    log.remove(2)  # joined and left within the tick
    log.put(entry(1, online=False))
    log.put(entry(1))  # dropped and resumed within the tick
    log.remove(7)  # never there
    assert log.commit() is None
    assert log.rev == 1


def test_the_full_roster_is_encoded_once_per_revision() -> None:
    log = RosterLog()
    log.put(entry(1))
    log.commit()
    first = log.full()
    assert log.full() is first
    log.put(entry(2))
    log.commit()
    assert log.full() is not first
    assert received(log.full()).players == (entry(1), entry(2))


def test_replace_makes_the_difference_to_the_whole_roster_given() -> None:
    log = RosterLog()
    log.replace([entry(1), entry(2), entry(3)])
    log.commit()
    log.replace([entry(3), entry(1, "renamed"), entry(4)])
    assert received(log.commit()) == RosterDelta(2, (entry(1, "renamed"), entry(4)), (2,))


def test_the_mirror_applies_a_delta_only_to_the_revision_before_it() -> None:
    mirror = RosterMirror()
    assert not mirror.apply(RosterDelta(1, (entry(1),), ()))  # no roster held yet
    assert mirror.apply(Roster((entry(1), entry(2)), 4))
    assert mirror.apply(RosterDelta(5, (entry(3),), (1,)))
    assert mirror.roster == Roster((entry(2), entry(3)), 5)
    assert not mirror.apply(RosterDelta(7, (entry(9),), ()))  # 6 was missed
    assert mirror.rev is None and mirror.gaps == 2
    assert not mirror.apply(RosterDelta(8, (entry(9),), ()))  # and every delta until a whole roster comes
    assert mirror.roster.players == (entry(2), entry(3))  # the last roster held stays meanwhile
    assert mirror.apply(Roster((entry(2), entry(3), entry(9)), 8))
    assert mirror.apply(RosterDelta(9, (), (2,)))
    assert mirror.roster == Roster((entry(3), entry(9)), 9)


def test_a_roster_from_a_server_without_revisions_is_held_and_any_delta_is_a_gap() -> None:
    mirror = RosterMirror()
    old = msgpack.packb({"t": "roster", "players": [[1, 5, "ann", True]]})
    assert mirror.apply(received(old))
    assert mirror.rev is None and mirror.roster.players == (entry(1, "ann", entity=5),)
    assert not mirror.apply(RosterDelta(1, (), ()))


# A tick's roster changes: players joining, leaving, going offline and back, renamed (any field may change).
changes = st.lists(st.tuples(st.sampled_from(["put", "remove"]), st.integers(1, 12), st.sampled_from("abc"),
                             st.booleans()), max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(changes, max_size=25), st.data())
def test_deltas_rebuild_on_the_client_the_roster_a_fresh_joiner_gets_whole(ticks: list[list[tuple[str, int, str,
                                                                                                     bool]]],
                                                                            data: st.DataObject) -> None:
    log = RosterLog()
    truth: dict[int, RosterEntry] = {}
    early = RosterMirror()
    early.apply(received(log.full()))
    late: RosterMirror | None = None
    join_at = data.draw(st.integers(0, len(ticks)), label="the tick a second client joins after")
    for i, tick in enumerate(ticks):
        for op, player, name, online in tick:
            if op == "put":
                truth[player] = entry(player, name, online=online)
                log.put(truth[player])
            else:
                truth.pop(player, None)
                log.remove(player)
        rev = log.rev
        delta = log.commit()
        assert (delta is None) == (log.rev == rev)
        for mirror in (early, late):
            if mirror is not None and delta is not None:
                assert mirror.apply(received(delta))
        if i + 1 == join_at:  # a joiner gets the whole roster after the tick's delta went out
            late = RosterMirror()
            late.apply(received(log.full()))
        whole = Roster(tuple(truth[p] for p in sorted(truth)), log.rev)
        assert received(log.full()) == whole
        assert early.roster == whole
        assert late is None or late.roster == whole

"""The match with in-memory clients: joins, inputs, acks, bases, holds."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import msgpack
import numpy as np
import pytest

from game.rules import get_ruleset
from server.match import MAX_JOINS, Match, Member
from server.protocol.codec import decode_server, encode_client, encode_server
from server.protocol.delta import apply_body
from server.protocol.errors import ProtocolError
from server.protocol.history import MAX_DELTAS
from server.protocol.interest import apply_view, reference_state
from server.protocol.messages import Ack, Error, Hello, Input, Ping, Pong, Resync, Roster, RosterDelta, Update, Welcome
from server.protocol.roster import RosterMirror


class FakeClient:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.writes = 0  # to the socket: one a send, one a send_many
        self.closed: tuple[int, str] | None = None

    def send(self, data: bytes) -> None:
        self.frames.append(data)
        self.writes += 1

    def send_many(self, frames: Sequence[bytes]) -> None:
        self.frames.extend(frames)
        self.writes += 1

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def tell_and_close(self, code: int, reason: str) -> None:
        self.send(encode_server(Error(code, reason)))
        self.close(code, reason)

    def messages(self) -> list[Any]:
        return [decode_server(f) for f in self.frames]

    def updates(self) -> list[Update]:
        return [m for m in self.messages() if isinstance(m, Update)]


def new_match(**kw: Any) -> Match:
    tokens = iter(f"token{i}" for i in range(1000))
    return Match(get_ruleset("drift"), options={"npcs": 50}, token_factory=lambda: next(tokens), **kw)


def join(match: Match, name: str = "ann", spectate: bool = False, token: str | None = None, *,
         roster_deltas: bool = False) -> tuple[Member, FakeClient]:
    client = FakeClient()
    session = match.new_session()
    hello = session.receive(encode_client(Hello(1, name, spectate, token, roster_deltas=roster_deltas)), 0.0,
                            match.tick_count)
    assert isinstance(hello, Hello)
    return match.connect(hello, session, client, 0.0), client


def send(match: Match, member: Member, msg: Any, now: float = 0.0) -> None:
    parsed = member.session.receive(encode_client(msg), now, match.tick_count)
    if parsed is not None:
        match.on_message(member, parsed)


def enter(match: Match, *members: Member) -> None:
    """Each of ``members`` acknowledges the match's tick: a player enters the roster at the next tick."""
    for m in members:
        send(match, m, Ack(match.tick_count))


def test_a_joining_player_gets_welcome_roster_and_a_keyframe_at_the_next_tick_and_enters_the_roster_at_its_first_ack(
        ) -> None:
    match = new_match()
    member, client = join(match)
    assert client.frames == []
    match.tick(0.0)
    welcome, roster, update = client.messages()
    assert client.writes == 1  # all three in one write
    assert isinstance(welcome, Welcome) and welcome.entity == member.entity and welcome.token == "token0"
    assert welcome.ruleset["name"] == "drift" and welcome.tick_rate == 30
    assert roster == Roster((), 0)  # it has answered nothing yet: nobody else hears of it
    assert isinstance(update, Update) and update.base is None and update.tick == 1
    state = apply_body(match.schema, None, update.tick, update.body)
    assert state.checksum == update.checksum == match.snapshot.checksum
    assert member.entity in state.ids.tolist()
    client.frames.clear()
    match.tick(0.1)
    assert not any(isinstance(m, Roster) for m in client.messages())
    enter(match, member)
    match.tick(0.2)
    [roster] = [m for m in client.messages() if isinstance(m, Roster)]
    assert [(e.player, e.entity, e.name, e.online) for e in roster.players] == [(member.player, member.entity, "ann", True)]


def test_two_inputs_in_one_tick_are_applied_one_per_tick_in_order_and_acknowledged() -> None:
    match = new_match()
    member, client = join(match)
    match.tick(0.0)
    x0 = match.player_states()[0]["x"]
    send(match, member, Input(1, (-1, 0), ack=1))
    send(match, member, Input(2, (1, 0), ack=1))
    match.tick(0.0)
    assert match.player_states()[0]["x"] == x0 - 40
    assert client.updates()[-1].ack == 1
    match.tick(0.0)
    assert match.player_states()[0]["x"] == x0
    assert client.updates()[-1].ack == 2
    match.tick(0.0)  # starved: the last input again with its axes at rest (it stands still), the ack stays
    assert match.player_states()[0]["x"] == x0
    assert client.updates()[-1].ack == 2
    assert match.info()["inputs_starved"] == 1 and match.player_states()[0]["inputs"]["starved"] == 1


def bullets_fired(presses: list[tuple[int, int]], ticks: int) -> tuple[int, list[int]]:
    """An arena player sends ``presses`` (``(tick, fire)``: an input at that tick, aiming at 64, standing
    still) and nothing else for ``ticks`` ticks: the bullets it fired, and the applied ``fire`` per tick."""
    match = Match(get_ruleset("arena"), options={"npcs": 0, "pellets": 0}, seed=3)
    member, _ = join(match)
    match.tick(0.0)
    at = dict(presses)
    seen: set[int] = set()
    applied = []
    for k in range(ticks):
        if k in at:
            send(match, member, Input(k + 1, (0, 0, 64, at[k])))
        match.tick(0.0)
        applied.append(int(match.inputs.current[0, 3]))
        kind, owner = match.world.cols["kind"], match.world.cols["owner"]
        rows = match.world.active()
        seen.update(match.world.ids[rows[(kind[rows] == 2) & (owner[rows] == member.entity)]].tolist())
    return len(seen), applied


def test_a_press_followed_by_a_long_starve_fires_once_and_a_held_button_still_fires_at_the_guns_rate() -> None:
    # One input with fire pressed, then 30 ticks without an input (the client froze): five gun cycles of
    # repeated input, but the button rests from the first starved tick: one shot.
    shots, applied = bullets_fired([(0, 1)], 31)
    assert shots == 1 and applied == [1] + [0] * 30
    # Held (an input each tick, fire pressed): a shot every 6 ticks, as before.
    shots, _ = bullets_fired([(k, 1) for k in range(31)], 31)
    assert shots == 6


def test_inputs_apply_by_player_id_whatever_order_they_arrive_in() -> None:
    hashes = []
    for order in ((0, 1, 2), (2, 0, 1)):
        match = new_match()
        members = [join(match, f"p{i}")[0] for i in range(3)]
        match.tick(0.0)
        for i in order:
            send(match, members[i], Input(1, (1 - i, i - 1)))
        for _ in range(5):
            match.tick(0.0)
        hashes.append(match.state_hash())
    assert hashes[0] == hashes[1]


def test_updates_are_deltas_against_the_acknowledged_tick_and_shared_between_clients() -> None:
    match = new_match()
    (a, ca), (b, cb), (c, cc) = join(match, "a"), join(match, "b"), join(match, "c")
    match.tick(0.0)
    for m in (a, b):
        send(match, m, Ack(1))
    send(match, c, Ack(1))
    match.tick(0.0)
    send(match, c, Ack(2))
    match.tick(0.0)
    ua, ub, uc = ca.updates()[-1], cb.updates()[-1], cc.updates()[-1]
    assert (ua.base, ub.base, uc.base) == (1, 1, 2)
    assert match.encoder.encodes == 2  # one encode per distinct base, not per client
    strip = lambda frame: {k: v for k, v in msgpack.unpackb(frame).items() if k != "ack"}  # noqa: E731
    assert strip(ca.frames[-1]) == strip(cb.frames[-1]) and ca.frames[-1] == cb.frames[-1]


def test_a_client_whose_bases_fell_out_of_the_history_gets_a_keyframe_on_the_next_grid_tick() -> None:
    match = new_match(history=4)
    member, client = join(match)
    match.tick(0.0)
    send(match, member, Ack(1))
    for _ in range(6):
        match.tick(0.0)
    assert [(u.tick, u.base) for u in client.updates()] == [(1, None), (2, 1), (3, 1), (4, 1)]  # then no base
    match.tick(0.0)
    assert client.updates()[-1].tick == 8 and client.updates()[-1].base is None


def test_mirrors_built_from_the_updates_match_the_server_every_tick() -> None:
    match = new_match()
    players = [join(match, f"p{i}") for i in range(4)]
    mirrors: list[dict[int, Any]] = [{} for _ in players]
    for tick in range(1, 120):
        match.tick(0.0)
        for i, (member, client) in enumerate(players):
            upd = client.updates()[-1]
            send(match, member, Ack(upd.tick))
            base = None if upd.base is None else mirrors[i][upd.base]
            state = apply_body(match.schema, base, upd.tick, upd.body)
            assert state.checksum == upd.checksum == match.snapshot.checksum
            mirrors[i][upd.tick] = state
            client.frames.clear()
            if i != 3 or tick % 7 == 0:  # player 3 acks rarely: deltas over several ticks
                send(match, member, Input(tick, ((tick // 10) % 3 - 1, (i % 3) - 1), ack=upd.tick))


def test_ticks_where_nobody_comes_or_goes_share_one_ids_array_and_a_join_gets_a_new_one() -> None:
    match = new_match()
    match.tick(0.0)
    first = match.snapshot
    match.tick(0.05)
    assert match.snapshot.ids is first.ids
    join(match)
    match.tick(0.1)
    assert match.snapshot.ids is not first.ids
    assert len(match.snapshot.ids) == len(first.ids) + 1
    assert first.ids.tolist() == list(range(50))  # the shared array was never written to


def test_ping_is_answered_at_once_with_the_server_tick() -> None:
    match = new_match()
    member, client = join(match)
    match.tick(0.0)
    client.frames.clear()
    send(match, member, Ping(9, 1.5))
    [pong] = client.messages()
    assert pong == Pong(9, 1.5, 1)


def test_a_disconnected_player_is_held_then_leaves() -> None:
    match = new_match(hold_s=5.0)
    member, client = join(match)
    other, oc = join(match, "bob")
    match.tick(0.0)
    send(match, member, Input(1, (1, 0), ack=1))
    enter(match, other)
    match.disconnect(member, client, now=1.0)
    match.tick(2.0)
    roster = [m for m in oc.messages() if isinstance(m, Roster)][-1]
    assert [(e.name, e.online) for e in roster.players] == [("ann", False), ("bob", True)]
    assert member.entity in match.snapshot.ids.tolist()
    match.tick(6.0)
    assert member.entity not in match.snapshot.ids.tolist()
    roster = [m for m in oc.messages() if isinstance(m, Roster)][-1]
    assert [e.name for e in roster.players] == ["bob"]


def rosters(client: FakeClient) -> list[Roster | RosterDelta]:
    return [m for m in client.messages() if isinstance(m, (Roster, RosterDelta))]


def test_a_client_that_asks_for_roster_deltas_gets_the_whole_roster_once_then_each_ticks_changes() -> None:
    match = new_match(hold_s=5.0)
    ann, ac = join(match, "ann", roster_deltas=True)
    bob, bc = join(match, "bob")  # a client that predates deltas: whole rosters, as before
    match.tick(0.0)
    enter(match, ann, bob)
    match.tick(0.1)
    first, joined = rosters(ac)
    assert first == Roster((), 0) and joined == RosterDelta(1, match.roster().players, ())
    assert [e.name for e in joined.players] == ["ann", "bob"]
    ac.frames.clear()
    bc.frames.clear()
    cat, _ = join(match, "cat")
    send(match, bob, Input(1, (1, 0), ack=1))
    match.disconnect(bob, bc, now=0.5)
    match.tick(1.0)
    enter(match, cat)
    match.tick(1.1)
    offline, arrived = rosters(ac)
    assert offline == RosterDelta(2, match.roster().players[1:2], ())
    assert [(e.name, e.online) for e in offline.players] == [("bob", False)]
    assert arrived == RosterDelta(3, match.roster().players[2:], ()) and [e.name for e in arrived.players] == ["cat"]
    match.tick(2.0)
    assert rosters(ac) == [offline, arrived]  # nothing changed: nothing sent
    match.tick(6.0)  # bob is not back within hold_s
    assert rosters(ac)[-1] == RosterDelta(4, (), (bob.player,))
    assert match.roster().rev == 4 and [e.name for e in match.roster().players] == ["ann", "cat"]


def test_every_client_of_a_tick_gets_the_same_roster_frames_encoded_once() -> None:
    match = new_match()
    clients = [join(match, f"p{i}", roster_deltas=i % 2 == 0)[1] for i in range(6)]
    match.tick(0.0)
    late, _ = join(match, "late")
    match.tick(0.5)
    enter(match, late)
    for c in clients:
        c.frames.clear()
    match.tick(1.0)
    frames = [next(f for f in c.frames if decode_server(f).__class__ in (Roster, RosterDelta)) for c in clients]
    assert all(f is frames[0] for f in frames[0::2]) and all(f is frames[1] for f in frames[1::2])
    assert isinstance(decode_server(frames[0]), RosterDelta) and isinstance(decode_server(frames[1]), Roster)


def test_a_resync_brings_the_whole_roster_at_the_next_tick() -> None:
    match = new_match()
    ann, ac = join(match, "ann", roster_deltas=True)
    match.tick(0.0)
    enter(match, ann)
    match.tick(0.5)
    ac.frames.clear()
    send(match, ann, Resync())
    match.tick(1.0)
    assert rosters(ac) == [Roster(match.roster().players, 1)]
    match.tick(2.0)
    assert rosters(ac) == [Roster(match.roster().players, 1)]


def test_a_client_joining_mid_ramp_holds_the_roster_of_the_clients_there_from_the_start() -> None:
    match = new_match()
    first, fc = join(match, "first", roster_deltas=True)
    mirrors: dict[str, tuple[FakeClient, RosterMirror]] = {"first": (fc, RosterMirror())}
    for tick in range(1, 9):
        for i in range(3):  # three joins a tick, a leave every other tick
            name = f"t{tick}p{i}"
            mirrors[name] = (join(match, name, roster_deltas=True)[1], RosterMirror())
        if tick % 2 == 0:
            gone = next(m for m in match.members.values() if m.name.endswith("p1") and m.client is not None)
            match.leave(gone)
        enter(match, *(m for m in match.members.values() if m.joined and m.client is not None))
        match.tick(float(tick))
    enter(match, *(m for m in match.members.values() if m.joined and m.client is not None))
    match.tick(9.0)
    for fake, mirror in mirrors.values():
        for msg in rosters(fake):
            assert mirror.apply(msg)
    whole = match.roster()
    assert len(whole.players) == 1 + 8 * 3 - 4
    for name, (fake, mirror) in mirrors.items():
        if fake.closed is None:
            assert mirror.roster == whole, name


def test_players_that_never_answer_an_update_hold_seats_and_entities_but_change_no_roster_when_they_come_or_go(
        ) -> None:
    match = new_match(max_players=6)
    ann, ac = join(match, "ann")  # whole rosters at every change
    match.tick(0.0)
    enter(match, ann)
    match.tick(0.1)
    ac.frames.clear()
    silent = [join(match, f"silent{i}") for i in range(5)]
    for t in range(2, 6):
        match.tick(t / 10)
    assert match.player_count() == 6 and all(m.entity in match.snapshot.ids.tolist() for m, _ in silent)
    with pytest.raises(ProtocolError):
        join(match, "one too many")
    for m, c in silent:
        match.disconnect(m, c, now=0.6)
    match.tick(0.7)
    assert rosters(ac) == [] and match.roster().rev == 1 and match.player_count() == 1
    assert not any(m.entity in match.snapshot.ids.tolist() for m, _ in silent)


def test_a_dropped_player_that_never_sent_an_input_holds_no_seat_it_leaves_at_the_next_tick() -> None:
    match = new_match(hold_s=10.0, max_players=1)
    member, client = join(match)
    match.tick(0.0)
    match.disconnect(member, client, now=1.0)
    match.tick(1.1)
    assert match.members == {} and member.entity not in match.snapshot.ids.tolist()
    join(match, "newcomer")  # the match has room again at once


def test_a_player_resumes_with_its_token_and_keeps_its_entity() -> None:
    match = new_match(hold_s=5.0)
    member, client = join(match)
    match.tick(0.0)
    send(match, member, Input(1, (1, 0), ack=1))
    match.disconnect(member, client, now=1.0)
    match.tick(1.5)
    again, client2 = join(match, "ann", token="token0")
    assert again is member
    match.tick(2.0)
    welcome = client2.messages()[0]
    assert isinstance(welcome, Welcome) and welcome.resumed and welcome.entity == member.entity
    match.tick(10.0)
    assert member.entity in match.snapshot.ids.tolist()


def test_a_resume_replaces_a_connection_still_open_with_the_same_token() -> None:
    match = new_match()
    member, client = join(match)
    match.tick(0.0)
    again, client2 = join(match, "ann", token="token0")
    assert client.closed is not None and client.closed[0] == 1000
    match.disconnect(member, client, now=0.5)  # the old connection's end changes nothing
    assert member.client is client2


def test_an_unknown_token_joins_as_a_new_player() -> None:
    match = new_match()
    member, _ = join(match, token="no-such-token")
    match.tick(0.0)
    assert member.token == "token0" and member.entity is not None


def test_a_full_match_refuses_players_with_1013_but_accepts_spectators() -> None:
    match = new_match(max_players=1)
    a, _ = join(match, "a")
    with pytest.raises(ProtocolError) as info:
        join(match, "b")
    assert info.value.code == 1013
    spectator, sc = join(match, "watcher", spectate=True)
    match.tick(0.0)
    enter(match, a, spectator)
    match.tick(0.1)
    welcome = sc.messages()[0]
    assert isinstance(welcome, Welcome) and welcome.entity is None
    assert [e.name for e in match.roster().players] == ["a"]


def test_close_sends_going_away_to_everyone() -> None:
    match = new_match()
    _, a = join(match, "a")
    _, b = join(match, "b", spectate=True)
    match.tick(0.0)
    match.close()
    assert a.closed is not None and a.closed[0] == 1001 and b.closed is not None and b.closed[0] == 1001


def test_a_resumed_player_counts_its_inputs_again_from_the_new_connection() -> None:
    match = new_match(hold_s=5.0)
    member, client = join(match)
    match.tick(0.0)
    send(match, member, Input(40, (1, 0), ack=1))
    match.tick(0.5)
    assert client.updates()[-1].ack == 40
    match.disconnect(member, client, now=1.0)
    again, client2 = join(match, "ann", token="token0")
    match.tick(1.5)
    assert client2.updates()[-1].ack == 0
    send(match, again, Input(1, (0, 1), ack=match.tick_count))
    match.tick(1.6)
    assert client2.updates()[-1].ack == 1


@pytest.mark.parametrize("tick_rate", [30, 60, 150, 240])
def test_a_client_answering_every_update_with_an_input_plus_pings_and_stall_inputs_stays_under_the_default_rate_limit(
        tick_rate: int) -> None:
    match = new_match(tick_rate=tick_rate)
    member, _ = join(match)
    dt = 1.0 / tick_rate
    for i in range(tick_rate * 10):  # ten seconds: past any burst
        now = i * dt
        match.tick(now)
        send(match, member, Input(2 * i + 1, (1, 0), ack=match.tick_count), now)
        send(match, member, Input(2 * i + 2, (1, 0), ack=match.tick_count), now)  # and one a tick on a timer, on top
        if i % tick_rate == 0:
            send(match, member, Ping(i), now)


def test_a_client_that_stalled_20_s_may_answer_every_update_that_waited_at_once() -> None:
    match = new_match()
    member, client = join(match)
    for i in range(600):
        match.tick(i / 30)
    ticks = [u.tick for u in client.updates()]
    for seq, tick in enumerate(ticks, 1):  # all in one instant: 600 inputs where the allowance is 60 a second
        send(match, member, Input(seq, (1, 0), ack=tick), 20.0)
    assert member.session.acked == ticks[-1]


def test_a_tick_encodes_at_most_three_deltas_and_one_keyframe_whatever_32_clients_acknowledge() -> None:
    match = new_match()
    clients = [join(match, f"p{i}") for i in range(32)]
    for _ in range(40):
        match.tick(0.0)
        for lag, (member, client) in enumerate(clients):
            got = [u.tick for u in client.updates()]
            if got:  # each acknowledges a tick it holds, a different number of ticks late
                send(match, member, Ack(got[max(0, len(got) - 1 - lag)]))
        assert match.encoder.encodes <= MAX_DELTAS + 1
    bases = {u.base for _, c in clients for u in c.updates()[-1:]}
    assert len(bases) > 1


def test_a_client_lagging_ten_ticks_gets_a_delta_every_tick_from_an_anchor_it_holds() -> None:
    match = new_match()
    member, client = join(match)
    mirror: dict[int, Any] = {}
    for step in range(1, 120):
        match.tick(0.0)
        for upd in client.updates():
            state = apply_body(match.schema, None if upd.base is None else mirror[upd.base], upd.tick, upd.body)
            assert state.checksum == upd.checksum
            mirror[upd.tick] = state
        client.frames.clear()
        if step > 10:
            send(match, member, Ack(max(t for t in mirror if t <= step - 10)))
    ticks = sorted(mirror)
    assert ticks[-40:] == list(range(ticks[-1] - 39, ticks[-1] + 1))  # one update a tick in steady state
    assert max(ticks[-1] - b for b in (match.encoder.bases)) <= 27


def test_a_client_that_never_acknowledges_gets_a_keyframe_at_join_then_32_64_128_ticks_later_on_a_tick_of_its_own(
        ) -> None:
    match = new_match()
    clients = [join(match, f"p{i}")[1] for i in range(8)]
    for _ in range(300):
        match.tick(0.0)
    # Player 1's tick is the 31st of each 32: 32 ticks after its welcome's keyframe at the earliest (63), then 64
    # after that one (127), then 128 (255).
    assert [(u.tick, u.base) for u in clients[0].updates()] == [(1, None), (63, None), (127, None), (255, None)]
    # Players who joined together: each its own tick, not all at once.
    assert len({tuple(u.tick for u in c.updates()[1:]) for c in clients}) == 8


def test_max_msg_rate_sets_the_sustained_rate_and_a_burst_of_twice_that() -> None:
    match = new_match(msg_rate=10)
    member, _ = join(match)  # the hello is the first of the burst of 20
    for _ in range(19):
        send(match, member, Ping(1))
    with pytest.raises(ProtocolError, match="messages per second") as info:
        send(match, member, Ping(1))
    assert info.value.code == 1008


def test_a_match_is_idle_from_the_tick_after_its_last_member_is_gone_until_someone_joins() -> None:
    match = new_match(hold_s=1.0)
    match.tick(5.0)
    assert match.idle_since == 5.0 and not match.finished  # nobody ever came
    ann, client = join(match)
    assert match.idle_since is None
    match.tick(6.0)
    send(match, ann, Input(1, (1, 0), ack=match.tick_count))
    match.disconnect(ann, client, 6.5)
    match.tick(7.0)
    assert match.idle_since is None  # held for a resume: still in the match
    match.tick(7.6)
    assert match.members == {} and match.idle_since == 7.6
    match.tick(9.0)
    assert match.idle_since == 7.6


def views_match(**options: int) -> tuple[Match, Callable[..., tuple[Member, FakeClient]]]:
    match = Match(get_ruleset("drift"), options={"npcs": 300, "size": 2000, "view": 300, **options}, token_factory=lambda: "t")

    def member(name: str, spectate: bool = False, interest: bool = True) -> tuple[Member, FakeClient]:
        client, session = FakeClient(), match.new_session()
        hello = session.receive(encode_client(Hello(1, name, spectate, interest=interest)), 0.0, match.tick_count)
        assert isinstance(hello, Hello)
        return match.connect(hello, session, client, 0.0), client

    return match, member


def play(match: Match, who: list[tuple[Member, FakeClient]], ticks: int) -> None:
    """Players walk diagonally; everyone acknowledges every update."""
    for step in range(ticks):
        match.tick(step / 30)
        for m, c in who:
            if not m.spectator and m.joined:
                send(match, m, Input(step + 1, (1, 1), ack=c.updates()[-1].tick))
            else:
                send(match, m, Ack(c.updates()[-1].tick))


def test_a_match_with_views_gives_every_player_its_view_filtered_or_in_ordinary_updates() -> None:
    match, member = views_match()
    (viewer, vc), (old, oc) = member("ann"), member("bob", interest=False)
    play(match, [(viewer, vc), (old, oc)], 40)
    assert [(m.viewed, m.filtered) for m in (viewer, old)] == [(True, True), (True, False)]
    welcome = next(m for m in vc.messages() if isinstance(m, Welcome))
    assert welcome.interest == {"shape": "circle", "radius": 300, "cell": 150}
    assert all(m.interest is None for m in oc.messages() if isinstance(m, Welcome))  # it did not ask: ordinary updates
    assert match.views is not None
    held = None
    for update in vc.updates():
        held = apply_view(match.schema, held, update.tick, update.body)
        assert held.checksum == update.checksum
    assert held is not None and held.tick == match.tick_count
    assert np.array_equal(held.ids, reference_state(match.views.grid, match.snapshot, viewer.entity).ids)
    assert 0 < len(held.ids) < len(match.snapshot.ids)
    states: dict[int, Any] = {}
    for update in oc.updates():
        assert "chg" not in update.body and "add" not in update.body
        state = apply_body(match.schema, states.get(update.base) if update.base is not None else None,
                           update.tick, update.body)
        assert state.checksum == update.checksum
        states[update.tick] = state
    mine = reference_state(match.views.grid, match.snapshot, old.entity)
    assert np.array_equal(states[match.tick_count].ids, mine.ids) and 0 < len(mine.ids) < 302
    assert any(u.base is not None for u in oc.updates())  # deltas where nothing older came into view


def test_spectators_of_a_match_with_views_hold_what_every_view_holds_unless_the_match_gives_them_the_world() -> None:
    for option, want in ((0, 0), (1, 301)):  # drift marks no kind always relevant; 300 NPCs and ann
        match, member = views_match(view_spectators=option)
        eye, ec = member("eye", spectate=True)
        old_eye, oec = member("old", spectate=True, interest=False)
        play(match, [member("ann"), (eye, ec), (old_eye, oec)], 5)
        assert [eye.viewed, old_eye.viewed] == [not option] * 2
        assert eye.filtered == (not option) and not old_eye.filtered
        for c in (ec, oec):
            held = None
            for update in c.updates():
                apply = apply_view if c is ec and not option else apply_body
                held = apply(match.schema, held if update.base is not None else None, update.tick, update.body)
                assert held.checksum == update.checksum
            assert held is not None and len(held.ids) == want, (option, c)


def test_a_match_without_views_sends_everyone_the_world_whatever_they_ask() -> None:
    match = new_match()
    client, session = FakeClient(), match.new_session()
    hello = session.receive(encode_client(Hello(1, "ann", interest=True)), 0.0, match.tick_count)
    assert isinstance(hello, Hello)
    member = match.connect(hello, session, client, 0.0)
    match.tick(0.0)
    assert match.views is None and not member.filtered
    welcome = next(m for m in client.messages() if isinstance(m, Welcome))
    assert welcome.interest is None
    assert "rows" in client.updates()[0].body or "new" in client.updates()[0].body


def test_a_ruleset_that_offers_views_without_positions_is_refused_when_a_match_asks_for_one() -> None:
    from game.errors import GameError
    from game.schema import VIEW_OPTIONS, Column, RulesetSpec
    from game.world import World

    class Flat:
        spec = RulesetSpec("flat", 1, (Column("hp", "int32", "uint8"),), (), options=VIEW_OPTIONS)

        def create(self, seed: int, options: dict[str, int]) -> World:
            return World(self.spec, seed=seed, capacity=8)

    Match(Flat(), options={"view": 0})  # type: ignore[arg-type]  # no view asked: fine
    with pytest.raises(GameError, match="option view: flat: filtered views need replicated position columns"):
        Match(Flat(), options={"view": 300})  # type: ignore[arg-type]


def drive(match: Match, seed: int, reference: bool) -> list[list[bytes]]:
    """Clients that mostly never answer, now and then acknowledge, resync or ping, players that answer every update,
    players whose inputs acknowledge nothing, joins, drops and resumes, for 140 ticks; ``reference``: every member visited every tick (``idle_until`` cleared). Every
    client's frames."""
    rng = random.Random(seed)
    clients: list[tuple[Member, FakeClient, str]] = []
    for t in range(140):
        if t % 20 == 0:
            for i in range(4):
                kind = rng.choice(["silent", "silent", "player", "waker", "blind"])
                member, client = join(match, f"{kind}{t}-{i}", roster_deltas=rng.random() < 0.5)
                clients.append((member, client, kind))
        for member, client, kind in list(clients):
            if member.client is None and match.members.get(member.player) is member and rng.random() < 0.2:
                member, client = join(match, "back", token=member.token)  # a resume of a held player
                clients.append((member, client, kind))
            if member.client is not client or not client.frames:
                continue
            last = decode_server(client.frames[-1])
            tick = last.tick if isinstance(last, Update) else match.tick_count
            if kind == "player" and rng.random() < 0.9:
                send(match, member, Input(t + 1, (1, 0), ack=tick))
            elif kind == "blind" and rng.random() < 0.3:  # inputs that acknowledge nothing
                send(match, member, Input(t + 1, (0, 1)))
            elif kind == "waker" and rng.random() < 0.05:
                send(match, member, rng.choice([Ack(tick), Resync(), Ping(1)]))
            elif rng.random() < 0.01:
                match.disconnect(member, client, t / 30)
        if reference:
            for m in match.members.values():
                m.idle_until = 0
        match.tick(t / 30)
    return [c.frames for _, c, _ in clients]


@pytest.mark.parametrize("seed", range(4))
def test_clients_that_never_acknowledge_are_skipped_between_their_keyframes_and_get_the_very_frames_they_got_before(
        seed: int) -> None:
    skipping = drive(new_match(), seed, reference=False)
    assert skipping == drive(new_match(), seed, reference=True)
    assert sum(len(f) for f in skipping) > 500


def test_a_silent_client_idles_until_its_next_keyframe_and_answering_ends_that_at_once() -> None:
    match = new_match()
    ann, ac = join(match, "ann")
    for _ in range(8):
        match.tick(0.0)
    assert ann.idle_until == 63  # player 1: its tick of each 32, 32 ticks after its welcome's at the earliest
    ac.frames.clear()
    send(match, ann, Ack(1))  # the keyframe it was welcomed with
    match.tick(0.0)  # tick 9: off the grid
    assert ann.idle_until == 0 and ac.updates() == []
    for _ in range(3):
        match.tick(0.0)
    assert [(u.tick, u.base) for u in ac.updates()] == [(12, None)]  # the next grid tick, not 63


def test_a_burst_of_joins_takes_max_joins_a_tick_lowest_ids_first_each_welcomed_in_its_own() -> None:
    match = new_match()
    joined = [join(match, f"p{i}") for i in range(2 * MAX_JOINS + 3)]
    welcomed_at: dict[int, int] = {}
    for _ in range(4):
        match.tick(0.0)
        for m, c in joined:
            if c.frames and m.player not in welcomed_at:
                welcomed_at[m.player] = match.tick_count
    ticks = [welcomed_at[m.player] for m, _ in joined]
    assert ticks == [1] * MAX_JOINS + [2] * MAX_JOINS + [3] * 3
    assert all(isinstance(c.messages()[0], Welcome) for _, c in joined)

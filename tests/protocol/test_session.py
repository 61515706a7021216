"""The connection state machine: turn order for players and replay viewers, input checks, acks, one rate limit."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from game.drift import SPEC
from game.schema import InputField
from server.protocol.codec import encode_client
from server.protocol.errors import MalformedMessage, PolicyViolation, ProtocolError
from server.protocol.messages import Ack, Control, Hello, Input, Leave, Ping, Resync
from server.protocol.session import ServerSession, State, valid_inputs


def hello(spectate: bool = False) -> bytes:
    return encode_client(Hello(1, "ann", spectate))


def session() -> ServerSession:
    return ServerSession(SPEC.inputs)


def test_session_rejects_input_before_hello() -> None:
    s = session()
    with pytest.raises(ProtocolError, match="not allowed in state handshake") as info:
        s.receive(encode_client(Input(1, (0, 0))), 0.0, 10)
    assert info.value.code == 1002


def test_session_rejects_a_second_hello() -> None:
    s = session()
    s.receive(hello(), 0.0, 10)
    assert s.state is State.ACTIVE
    with pytest.raises(ProtocolError) as info:
        s.receive(hello(), 0.0, 10)
    assert info.value.code == 1002


def test_session_checks_input_count_and_ranges_against_the_ruleset() -> None:
    s = session()
    s.receive(hello(), 0.0, 10)
    with pytest.raises(ProtocolError, match="expected 2 values") as info:
        s.receive(encode_client(Input(1, (0,))), 0.0, 10)
    assert info.value.code == 1007
    with pytest.raises(ProtocolError, match=r"in: dx=2 is outside \[-1, 1\]") as info:
        s.receive(encode_client(Input(1, (2, 0))), 0.0, 10)
    assert info.value.code == 1007
    with pytest.raises(ProtocolError, match=r"in: dy=70000 is outside \[-1, 1\]") as info:
        s.receive(encode_client(Input(1, (0, 70000))), 0.0, 10)
    assert info.value.code == 1007


def test_every_in_range_input_is_one_lookup_and_the_rest_get_the_fields_error() -> None:
    assert valid_inputs(SPEC.inputs) == {(x, y) for x in (-1, 0, 1) for y in (-1, 0, 1)}
    wide = (InputField("aim", 0, 32767), InputField("fire", 0, 1))
    assert valid_inputs(wide) is None  # too many to list: each field is compared
    s = ServerSession(wide)
    s.receive(hello(), 0.0, 10)
    s.receive(encode_client(Input(1, (32767, 1))), 0.0, 10)
    with pytest.raises(ProtocolError, match=r"in: fire=2 is outside \[0, 1\]"):
        s.receive(encode_client(Input(2, (0, 2))), 0.0, 10)


def test_session_keeps_the_newest_ack_and_leaves_stale_sequence_numbers_to_the_input_queue() -> None:
    s = session()
    s.receive(hello(), 0.0, 10)
    assert s.receive(encode_client(Input(5, (1, 0), ack=8)), 0.0, 10) == Input(5, (1, 0), ack=8)
    assert s.receive(encode_client(Input(4, (0, 1), ack=7)), 0.0, 10) == Input(4, (0, 1), ack=7)
    assert s.acked == 8


def test_leave_ends_the_conversation() -> None:
    s = session()
    s.receive(hello(), 0.0, 10)
    assert s.receive(encode_client(Leave()), 0.0, 10) == Leave()
    with pytest.raises(ProtocolError, match="not allowed in state closed") as info:
        s.receive(encode_client(Ack(1)), 0.0, 10)
    assert info.value.code == 1002


def test_session_rejects_an_ack_ahead_of_the_server() -> None:
    s = session()
    s.receive(hello(), 0.0, 10)
    with pytest.raises(ProtocolError, match="ahead") as info:
        s.receive(encode_client(Ack(11)), 0.0, 10)
    assert info.value.code == 1007


def test_resync_forgets_acks_up_to_the_current_tick() -> None:
    s = session()
    s.receive(hello(), 0.0, 10)
    s.receive(encode_client(Ack(9)), 0.0, 10)
    s.receive(encode_client(Resync()), 0.0, 12)
    assert s.acked is None
    s.receive(encode_client(Ack(11)), 0.0, 12)
    assert s.acked is None
    s.receive(encode_client(Ack(13)), 0.0, 13)
    assert s.acked == 13


def test_spectators_may_not_send_input() -> None:
    s = session()
    s.receive(hello(spectate=True), 0.0, 10)
    with pytest.raises(ProtocolError, match="spectators") as info:
        s.receive(encode_client(Input(1, (0, 0))), 0.0, 10)
    assert info.value.code == 1008


def test_session_enforces_the_message_rate_limit() -> None:
    s = ServerSession(SPEC.inputs, rate=10, burst=5)
    s.receive(hello(), 0.0, 10)
    for _ in range(4):
        s.receive(encode_client(Ping(1)), 0.0, 10)
    with pytest.raises(ProtocolError, match="messages per second") as info:
        s.receive(encode_client(Ping(1)), 0.0, 10)
    assert info.value.code == 1008
    s.receive(encode_client(Ping(1)), 0.5, 10)  # the bucket refilled


def test_spectator_acks_are_tracked_like_a_players() -> None:
    s = session()
    s.receive(hello(spectate=True), 0.0, 10)
    s.receive(encode_client(Ack(7)), 0.0, 10)
    assert s.acked == 7 and s.spectator and not s.viewer


# -- live players and replay viewers: one table ----------------------------------


def viewer() -> ServerSession:
    s = ServerSession.for_viewer()
    s.receive(hello(), 0.0, 0)
    return s


def test_a_live_player_sending_control_is_told_it_is_not_allowed_in_state_active() -> None:
    s = session()
    s.receive(hello(), 0.0, 10)
    with pytest.raises(MalformedMessage, match=r"control is not allowed in state active \(expected ack, input, leave, ping, resync\)") as info:
        s.receive(encode_client(Control(pause=True)), 0.0, 10)
    assert info.value.code == 1002


def test_a_viewer_watches_after_hello_and_may_steer_the_playback() -> None:
    s = ServerSession.for_viewer()
    assert s.state is State.VIEWER_HANDSHAKE and s.viewer
    assert isinstance(s.receive(hello(spectate=False), 0.0, 0), Hello)
    assert s.state is State.WATCHING and s.spectator
    assert s.receive(encode_client(Control(seek=300)), 0.0, 0) == Control(seek=300)
    assert s.receive(encode_client(Ping(1)), 0.0, 0) == Ping(1)


@pytest.mark.parametrize("msg, words", [
    (Control(pause=True), "control is not allowed in state viewer handshake (expected hello)"),
    (Ack(1), "ack is not allowed in state viewer handshake"),
])
def test_a_viewer_says_hello_first(msg: Any, words: str) -> None:
    s = ServerSession.for_viewer()
    with pytest.raises(MalformedMessage) as info:
        s.receive(encode_client(msg), 0.0, 0)
    assert info.value.code == 1002 and words in info.value.reason


def test_a_viewer_may_not_send_input_or_a_second_hello() -> None:
    for msg in (Input(1, (0, 0)), Hello(1, "again")):
        s = viewer()
        with pytest.raises(MalformedMessage, match="not allowed in state watching") as info:
            s.receive(encode_client(msg), 0.0, 10)
        assert info.value.code == 1002


def test_a_viewer_ignores_acks_ahead_of_the_playback_instead_of_failing() -> None:
    s = viewer()
    s.receive(encode_client(Ack(500)), 0.0, 100)  # acked before a seek back to 100
    assert s.acked is None
    s.receive(encode_client(Ack(100)), 0.0, 100)
    assert s.acked == 100


def test_after_a_seek_only_acks_of_the_new_timeline_count() -> None:
    s = viewer()
    s.receive(encode_client(Ack(40)), 0.0, 40)
    s.restart_acks(300)  # seek forward
    assert s.acked is None
    s.receive(encode_client(Ack(41)), 0.0, 301)  # in flight from before the seek
    assert s.acked is None
    s.receive(encode_client(Ack(300)), 0.0, 301)
    assert s.acked == 300
    s.restart_acks(100)  # seek back
    s.receive(encode_client(Ack(301)), 0.0, 101)
    s.receive(encode_client(Ack(99)), 0.0, 101)
    assert s.acked is None
    s.receive(encode_client(Ack(101)), 0.0, 101)
    assert s.acked == 101


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ack", "seek", "play", "resync"]), st.integers(0, 1000)), max_size=40))
def test_a_viewers_ack_is_always_a_tick_of_the_current_timeline_it_was_sent(ops: list[tuple[str, int]]) -> None:
    s = viewer()
    tick, first = 0, 0
    for op, n in ops:
        if op == "seek":
            tick = first = n
            s.restart_acks(n)
        elif op == "play":
            tick += n % 20
        elif op == "resync":
            s.receive(encode_client(Resync()), 0.0, tick)
            first = tick + 1
        else:
            s.receive(encode_client(Ack(n)), 0.0, tick)  # never raises: any tick from a viewer
        assert s.acked is None or first <= s.acked <= tick


def test_controls_cost_four_messages_in_the_one_bucket() -> None:
    s = ServerSession.for_viewer()  # 120 messages a second, bursts of 240
    s.receive(hello(), 0.0, 0)
    for _ in range(59):
        s.receive(encode_client(Control(pause=True)), 0.0, 0)
    with pytest.raises(PolicyViolation, match="more than 30 control messages per second") as info:
        s.receive(encode_client(Control(pause=True)), 0.0, 0)  # 3 tokens left: a ping would pass, a control not
    assert info.value.code == 1008


def test_a_viewer_may_send_thirty_controls_a_second_with_its_acks_and_pings_until_the_burst_is_spent() -> None:
    s = ServerSession.for_viewer()
    s.receive(hello(), 0.0, 0)
    for i in range(600):  # 20 s of 30 controls a second, with an ack each: 150 tokens a second for 120
        now = i / 30
        s.receive(encode_client(Control(speed=2)), now, 0)
        try:
            s.receive(encode_client(Ack(0)), now, 0)
        except PolicyViolation:
            assert now > 7  # the burst of 240 lasted 240 / 30 = 8 s
            return
    raise AssertionError("never limited")


# -- answers, allowance and what the client has read ---------------------------------------------


def playing(rate: float = 60.0, **kw: Any) -> ServerSession:
    s = ServerSession(SPEC.inputs, rate=rate, burst=2 * rate, **kw)
    s.receive(hello(), 0.0, 0)
    return s


def test_each_update_sent_pays_for_one_answer_so_a_stalled_client_may_answer_its_whole_backlog_at_once() -> None:
    s = playing()
    for tick in range(1, 601):  # 20 s of updates the client did not read
        s.sent_update(tick, 100, tick / 30)
    for tick in range(1, 601):  # then one input per update, all in the same instant
        s.receive(encode_client(Input(tick, (1, 0), ack=tick)), 20.0, 600)
    assert s.acked == 600


def test_answers_beyond_the_updates_sent_come_out_of_the_allowance() -> None:
    s = playing(rate=10)  # bursts of 20; the hello took one
    for tick in range(1, 6):
        s.sent_update(tick, 100, 0.0)
    for seq in range(1, 25):  # 5 answers paid by updates, 19 by the allowance
        s.receive(encode_client(Input(seq, (0, 0))), 0.0, 5)
    with pytest.raises(PolicyViolation, match="more than 10 messages per second") as info:
        s.receive(encode_client(Input(25, (0, 0))), 0.0, 5)
    assert info.value.code == 1008


def test_pings_never_use_the_answers_an_update_paid_for() -> None:
    s = playing(rate=10)
    for tick in range(1, 101):
        s.sent_update(tick, 100, 0.0)
    for _ in range(19):
        s.receive(encode_client(Ping(1)), 0.0, 100)
    with pytest.raises(PolicyViolation, match="messages per second"):
        s.receive(encode_client(Ping(1)), 0.0, 100)


def test_unanswered_updates_are_remembered_up_to_max_credit() -> None:
    s = playing(rate=10, max_credit=50)
    for tick in range(1, 1001):
        s.sent_update(tick, 100, 0.0)
    for seq in range(1, 70):  # 50 answers owed, 19 from the burst
        s.receive(encode_client(Ack(seq)), 0.0, 1000)
    with pytest.raises(PolicyViolation):
        s.receive(encode_client(Ack(70)), 0.0, 1000)


def test_a_client_holds_every_tick_it_was_sent_up_to_its_ack_and_nothing_it_was_not_sent() -> None:
    s = playing()
    for tick in (1, 2, 3, 5, 8, 9):  # 4, 6 and 7 were not sent to it
        s.sent_update(tick, 100, 0.0)
    s.receive(encode_client(Ack(8)), 0.0, 9)
    assert [t for t in range(1, 10) if s.holds(t)] == [1, 2, 3, 5, 8]  # 9: not acknowledged yet


def test_a_resync_forgets_what_the_client_held_and_only_later_ticks_count_again() -> None:
    s = playing()
    for tick in range(1, 6):
        s.sent_update(tick, 100, 0.0)
    s.receive(encode_client(Ack(2)), 0.0, 5)
    s.receive(encode_client(Resync()), 0.0, 5)
    assert not any(s.holds(t) for t in range(1, 6))
    s.sent_update(6, 100, 0.0)
    s.receive(encode_client(Ack(6)), 0.0, 6)
    assert [t for t in range(1, 7) if s.holds(t)] == [6]  # 3 to 5 came before the resync: their states are gone


def test_unacked_bytes_count_what_was_sent_after_the_newest_ack() -> None:
    s = playing()
    for tick in range(1, 11):
        s.sent_update(tick, 100 * tick, 0.0)
    assert s.unacked_bytes == 5500
    s.receive(encode_client(Ack(7)), 0.0, 10)
    assert s.unacked_bytes == 800 + 900 + 1000


def test_acks_are_overdue_when_updates_wait_and_no_ack_advances_for_the_timeout() -> None:
    s = playing()
    assert not s.ack_overdue(100.0, 5.0)  # nothing sent: nothing to acknowledge
    s.sent_update(1, 100, 10.0)
    s.sent_update(2, 100, 12.0)
    assert not s.ack_overdue(15.0, 5.0) and s.ack_overdue(15.5, 5.0)  # since the first unacknowledged one
    s.receive(encode_client(Ack(1)), 15.5, 2)  # progress restarts the clock
    assert not s.ack_overdue(20.0, 5.0) and s.ack_overdue(20.6, 5.0)
    s.receive(encode_client(Ack(2)), 21.0, 2)  # all acknowledged
    assert not s.ack_overdue(99.0, 5.0)


def test_the_last_keyframe_is_forgotten_once_it_or_a_later_tick_is_acknowledged() -> None:
    s = playing()
    s.sent_update(4, 100, 0.0, keyframe=True)
    s.sent_update(5, 100, 0.0)
    s.receive(encode_client(Ack(3)), 0.0, 5)  # an older ack still in flight
    assert s.last_keyframe == 4
    s.receive(encode_client(Ack(4)), 0.0, 5)
    assert s.last_keyframe is None


# -- a player's input on the hot path (``receive_input``) ------------------------------------------------------------


def state(s: ServerSession) -> tuple[Any, ...]:
    return (s.state, s.acked, s.last_ack, s.unacked_bytes, [t for t in range(40) if s.holds(t)], s._tokens, s._credit)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(-2, 2), st.integers(-1, 1), st.none() | st.integers(0, 45),
                          st.none() | st.integers(0, 40), st.sampled_from((0.0, 0.01, 0.2)), st.booleans()),
                max_size=40))
def test_an_input_on_the_hot_path_is_counted_and_checked_as_receive_would(
        steps: list[tuple[int, int, int, int | None, int | None, float, bool]]) -> None:
    slow, fast = playing(rate=30), playing(rate=30)
    now = tick = 0
    for seq, dx, dy, ack, view, dt, update in steps:
        now += dt
        if update:
            tick += 1
            for s in (slow, fast):
                s.sent_update(tick, 50 + tick, now)
        data = encode_client(Input(seq, (dx, dy), ack, view))
        try:
            msg = slow.receive(data, now, tick)
        except ProtocolError as exc:
            with pytest.raises(ProtocolError) as info:
                fast.receive_input(data, now, tick)
            assert (info.value.code, info.value.reason) == (exc.code, exc.reason)
            return  # the connection is closed
        assert isinstance(msg, Input)
        assert fast.receive_input(data, now, tick) == (msg.seq, msg.values, msg.view)
        assert state(fast) == state(slow)


@pytest.mark.parametrize("before, data", [
    ([], encode_client(Input(1, (0, 0)))),  # before the hello: receive refuses it
    ([hello(spectate=True)], encode_client(Input(1, (0, 0)))),  # a spectator's: refused there too
    ([hello()], encode_client(Ack(1))),  # not an input
    ([hello()], encode_client(Input(1, (0, 200)))),  # not in a shape the hot path reads
])
def test_the_hot_path_leaves_everything_else_to_receive_untouched(before: list[bytes], data: bytes) -> None:
    s = session()
    for b in before:
        s.receive(b, 0.0, 10)
    was = state(s)
    assert s.receive_input(data, 0.5, 10) is None
    assert state(s) == was


def test_a_viewer_never_takes_the_hot_path() -> None:
    v = ServerSession.for_viewer()
    v.receive(hello(), 0.0, 10)
    assert v.receive_input(encode_client(Input(1, ())), 0.0, 10) is None

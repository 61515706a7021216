"""The connection state machine: turn order, input checks, acks, rate limit."""

from __future__ import annotations

import pytest

from game.drift import SPEC
from server.protocol.codec import encode_client
from server.protocol.errors import ProtocolError
from server.protocol.messages import Ack, Hello, Input, Ping, Resync
from server.protocol.session import ServerSession, State


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
    with pytest.raises(ProtocolError, match="dx=2 is outside") as info:
        s.receive(encode_client(Input(1, (2, 0))), 0.0, 10)
    assert info.value.code == 1007


def test_session_ignores_stale_inputs_and_keeps_the_newest_ack() -> None:
    s = session()
    s.receive(hello(), 0.0, 10)
    assert s.receive(encode_client(Input(5, (1, 0), ack=8)), 0.0, 10) is not None
    assert s.receive(encode_client(Input(4, (0, 1), ack=7)), 0.0, 10) is None
    assert s.last_seq == 5 and s.acked == 8


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

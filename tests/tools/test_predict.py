"""Client-side prediction: the server's movement rule replayed over the inputs not applied yet, corrections counted.

The last tests drive a real ``Match`` in memory: a client that answers every
update with one input predicts every tick exactly; a tick the server had to
repeat (starved) shows as one correction, and the next prediction is exact
again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from game.arena.spec import SPEC as ARENA
from game.drift import SPEC as DRIFT
from game.rules import get_ruleset
from server.match import Match
from server.protocol.codec import decode_server, encode_client
from server.protocol.delta import Snapshot, apply_body
from server.protocol.messages import Hello, Input, Update
from tests.server.test_match import FakeClient
from tools.predict import Predictor


def drift_predictor() -> Predictor:
    p = Predictor.for_welcome(DRIFT.to_wire())
    assert p is not None
    return p


def test_a_ruleset_without_a_movement_rule_has_no_prediction() -> None:
    assert Predictor.for_welcome({**DRIFT.to_wire(), "player": None}) is None
    assert Predictor.for_welcome({"columns": [], "inputs": [], "player": {"speed": 1}}) is None


def test_the_prediction_is_the_update_plus_the_inputs_the_server_has_not_applied() -> None:
    p = drift_predictor()
    p.sent(1, (1, 0))
    p.sent(2, (1, 1))
    assert p.px is None  # nothing to predict from yet
    assert not p.observe((1000, 2000, None), ack=1)  # 1 applied, 2 pending
    assert (p.px, p.py) == (1000 + 28, 2000 + 28) and [s for s, _, _ in p.pending] == [2]
    p.sent(3, (0, -1))
    assert (p.px, p.py) == (1028, 2028 - 40)
    # The server applied 2 as foreseen: no correction.
    assert not p.observe((1028, 2028, None), ack=2)
    assert (p.px, p.py) == (1028, 1988) and p.compared == 1 and p.corrections == 0  # the first had nothing to check


def test_a_tick_the_server_repeated_is_one_correction() -> None:
    p = drift_predictor()
    p.observe((1000, 1000, None), ack=0)
    p.sent(1, (1, 0))
    p.observe((1040, 1000, None), ack=1)
    p.sent(2, (1, 0))
    assert p.observe((1080, 1000, None), ack=1)  # starved: input 1 again, not input 2
    assert p.corrections == 1 and p.last_error == (40, 0) and (p.px, p.py) == (1120, 1000)


def test_the_position_is_clamped_as_the_server_clamps_it() -> None:
    p = drift_predictor()
    p.observe((31990, 0, None), ack=0)
    p.sent(1, (1, -1))
    assert (p.px, p.py) == (32000, 0)


def test_a_dead_player_does_not_move_and_its_death_or_respawn_is_no_correction() -> None:
    p = Predictor.for_welcome(ARENA.to_wire())
    assert p is not None and p.hp is not None
    p.observe((1000, 1000, 100), ack=0)
    p.sent(1, (1, 0, 0, 0))
    assert not p.observe((1000, 1000, 0), ack=1)  # died: not compared
    p.sent(2, (1, 0, 0, 0))
    assert (p.px, p.py) == (1000, 1000)  # dead_still
    assert not p.observe((5000, 6000, 100), ack=2)  # respawned elsewhere: news, not a misprediction
    assert p.corrections == 0 and p.compared == 0


# -- against a real match ----------------------------------------------------------


def test_a_client_answering_every_update_predicts_a_real_match_exactly_even_across_starved_ticks() -> None:
    match = Match(get_ruleset("drift"), options={"npcs": 20})
    session = match.new_session()
    client = FakeClient()
    member = match.connect(session.receive(encode_client(Hello(1, "ann")), 0.0, 0), session, client, 0.0)  # type: ignore[arg-type]
    p = drift_predictor()
    states: dict[int, Snapshot] = {}
    seq = 0

    def tick(send: bool) -> None:
        nonlocal seq
        match.tick(0.0)
        for m in [decode_server(f) for f in client.frames]:
            if isinstance(m, Update):
                snap = apply_body(match.schema, None if m.base is None else states[m.base], m.tick, m.body)
                states[m.tick] = snap
                i = int(np.searchsorted(snap.ids, member.entity))
                p.observe((int(snap.cols[1][i]), int(snap.cols[2][i]), None), m.ack)
        client.frames.clear()
        if send:
            seq += 1
            values: Any = ((seq // 17) % 3 - 1, (seq // 11) % 3 - 1)
            p.sent(seq, values)
            match.on_message(member, session.receive(encode_client(Input(seq, values, ack=match.tick_count)), 0.0,
                                                     match.tick_count))

    for _ in range(300):
        tick(True)
    assert p.compared >= 298 and p.corrections == 0
    for _ in range(3):
        tick(False)  # ticks without an input: the player stands still there (its axes rest), so the inputs
    for _ in range(50):  # still to apply land where they were predicted to
        tick(True)
    assert p.corrections == 0 and match.info()["inputs_starved"] == 3

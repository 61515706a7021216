"""Client-side prediction of the player's own entity, exactly as the server moves it (pure, no I/O).

PROTOCOL.md, *The input queue*: the server applies one input per tick, in
``seq`` order, and ``update.ack`` names the input applied in that update's
tick. So the player's position after the inputs not applied yet is the
update's position with those inputs (``seq > ack``) replayed, one tick each,
by the movement rule of ``welcome.ruleset.player`` (``game.schema.PlayerMove``,
the server's own rule). A tick that starved applied none of our inputs (the
player stood still: its axes rest), so the inputs still pending land where
they did before. When nothing disagrees (no input dropped, no death or
respawn) every update lands exactly where the previous prediction was; when
it does not, that is a **correction**, counted.

``Predictor`` keeps the inputs sent and not yet applied, the predicted
position, and the counts: ``compared`` updates checked against a prediction,
``corrections`` among them. A tick where the player is dead (``hp`` 0 with
``dead_still``) in the update or in the one before is not compared: a death
or a respawn is news, not a misprediction.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from attrs import define, field

from game.schema import PlayerMove

#: Inputs kept at most while the server does not apply them (a server that stopped answering).
MAX_PENDING = 256


@define
class Predictor:
    """The player's predicted position and the inputs it rests on.

    Attributes:
        move: the movement rule (``welcome.ruleset.player``).
        x, y, hp: indices of the position and hp columns among the replicated ones (hp None: never dead).
        dx, dy: indices of the direction fields among the input fields.
        pending: ``(seq, dx, dy)`` of the inputs sent and not applied yet, oldest first.
        px, py: the predicted position after every pending input (None before the first update).
        alive: whether the player was alive in the last update.
        compared, corrections: updates checked against a prediction, and those that disagreed.
        last_error: the last correction, ``(dx, dy)`` in column units.
    """

    move: PlayerMove
    x: int
    y: int
    hp: int | None
    dx: int
    dy: int
    pending: deque[tuple[int, int, int]] = field(factory=lambda: deque(maxlen=MAX_PENDING))
    px: int | None = None
    py: int | None = None
    alive: bool = True
    compared: int = 0
    corrections: int = 0
    last_error: tuple[int, int] = (0, 0)

    @classmethod
    def for_welcome(cls, ruleset: dict[str, Any]) -> Predictor | None:
        """For ``welcome.ruleset``; None when it describes no movement rule (no prediction)."""
        m = ruleset.get("player")
        if not isinstance(m, dict):
            return None
        columns = [c["name"] for c in ruleset.get("columns", [])]
        inputs = [f["name"] for f in ruleset.get("inputs", [])]
        try:
            move = PlayerMove(int(m["speed"]), int(m["diagonal"]), int(m["lo"]), int(m["hi"]), m["dx"], m["dy"],
                              m["x"], m["y"], bool(m.get("dead_still", False)))
            hp = columns.index("hp") if move.dead_still else None
            return cls(move, columns.index(move.x), columns.index(move.y), hp, inputs.index(move.dx),
                       inputs.index(move.dy))
        except (KeyError, ValueError, TypeError):
            return None

    def _step(self, x: int, y: int, dx: int, dy: int) -> tuple[int, int]:
        return self.move.step(x, y, dx, dy) if self.alive or not self.move.dead_still else (x, y)

    def sent(self, seq: int, values: tuple[int, ...] | list[int]) -> None:
        """Input ``seq`` went out: it will move the player one tick."""
        dx, dy = int(values[self.dx]), int(values[self.dy])
        self.pending.append((seq, dx, dy))
        if self.px is not None and self.py is not None:
            self.px, self.py = self._step(self.px, self.py, dx, dy)

    def observe(self, row: tuple[int, int, int | None], ack: int) -> bool:
        """A verified update: our entity's ``(x, y, hp)`` there, the server having applied our inputs up
        to ``ack``. Re-predicts from it; returns whether that corrected the prediction."""
        x, y, hp = row
        was_alive = self.alive
        self.alive = hp is None or hp > 0
        while self.pending and self.pending[0][0] <= ack:
            self.pending.popleft()
        px, py = x, y
        for _, dx, dy in self.pending:
            px, py = self._step(px, py, dx, dy)
        corrected = False
        if self.px is not None and self.py is not None and was_alive and self.alive:
            self.compared += 1
            if (px, py) != (self.px, self.py):
                self.corrections += 1
                self.last_error = (px - self.px, py - self.py)
                corrected = True
        self.px, self.py = px, py
        return corrected

    def reset(self) -> None:
        """A new connection (a resume): its ``seq`` numbering and acks start again."""
        self.pending.clear()
        self.px = self.py = None

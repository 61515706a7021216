"""Frozen descriptions of what a ruleset stores, replicates and accepts.

A ruleset declares its columns (state dtype, wire dtype, fixed-point scale),
its input fields with their valid ranges, the integer motion rule clients may
use to extrapolate entities between updates, and its tunable options. The
server, the codec and every client are generic over these values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from attrs import evolve, field, frozen

from game.errors import GameError

#: Integer dtypes a column may use, on the wire and in state.
INT_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32")


def _check_dtype(_: object, attribute: Any, value: Any) -> None:
    if value is not None and value not in INT_DTYPES:
        raise GameError(f"{attribute.name} must be one of {INT_DTYPES}, not {value!r}")


@frozen
class Column:
    """One component of every entity.

    Attributes:
        name: column name, unique in the ruleset.
        dtype: integer dtype the simulation stores it in.
        wire: integer dtype it is replicated as, or None for private state.
        scale: fixed-point scale, stored units per world unit (1 = plain int).
        doc: what the value means, with its unit.
    """

    name: str
    dtype: str = field(validator=_check_dtype)
    wire: str | None = field(default=None, validator=_check_dtype)
    scale: int = 1
    doc: str = ""

    @property
    def replicated(self) -> bool:
        return self.wire is not None


#: Kinds of input field (``InputField.kind``): what a tick that applies no new input of the player does with it.
AXIS, BUTTON, VALUE = "axis", "button", "value"
INPUT_KINDS = (AXIS, BUTTON, VALUE)


@frozen
class InputField:
    """One integer field of a player's input, valid in [lo, hi].

    ``kind`` says what a tick that applies no new input of the player (its
    input queue is empty: a *starved* tick, PROTOCOL.md) does with the field:

    - ``axis``: a direction or a rate that acts on every tick it is non-zero
      (``dx``, ``dy``): such a tick applies 0, so the player moves exactly by
      the inputs it sent, each once, and a client's prediction stays exact.
    - ``button``: pressed (non-zero) or not (``fire``): such a tick applies 0,
      so one press acts once; clients latch buttons between two sends.
    - ``value``: a setting that holds until the player changes it (``aim``):
      such a tick repeats it.

    Axes and buttons must allow 0.
    """

    name: str
    lo: int
    hi: int
    doc: str = ""
    kind: str = VALUE

    def __attrs_post_init__(self) -> None:
        if not -32768 <= self.lo <= self.hi <= 32767:
            raise GameError(f"input field {self.name}: bad range [{self.lo}, {self.hi}]")
        if self.kind not in INPUT_KINDS:
            raise GameError(f"input field {self.name}: kind must be one of {INPUT_KINDS}, not {self.kind!r}")
        if self.kind != VALUE and not self.lo <= 0 <= self.hi:
            raise GameError(f"input field {self.name}: an {self.kind} rests at 0, outside [{self.lo}, {self.hi}]")

    @property
    def rests(self) -> bool:
        """Whether a tick that applies no new input sets the field to 0 (an axis or a button)."""
        return self.kind != VALUE


@frozen
class Axis:
    """Linear motion with reflection on one axis: ``pos += vel``, then
    ``pos < lo`` -> ``pos = 2*lo - pos, vel = -vel`` and
    ``pos > hi`` -> ``pos = 2*hi - pos, vel = -vel`` (wire units)."""

    pos: str
    vel: str
    lo: int
    hi: int


def _non_negative(_: object, attribute: Any, value: int) -> None:
    if value < 0:
        raise GameError(f"player movement: {attribute.name} must be >= 0, not {value}")


@frozen
class PlayerMove:
    """How a player's own entity moves each tick: what clients predict it by.

    Each tick a player's ``x`` and ``y`` columns move by ``dx * s`` and
    ``dy * s``, where ``dx, dy`` (-1..1) are the values of the named input
    fields and ``s`` is ``diagonal`` when both are non-zero and ``speed``
    otherwise, then each is clamped to ``[lo, hi]``. With ``dead_still`` a
    player whose ``hp`` column is 0 stays where it is. All in column units
    (the stored fixed point of ``x`` and ``y``) per tick.

    Attributes:
        speed: step along a straight input.
        diagonal: step per axis along a diagonal input.
        lo, hi: clamp range of both position columns (inclusive).
        dx, dy: names of the input fields giving the direction.
        x, y: names of the position columns.
        dead_still: whether players with ``hp`` 0 do not move.
    """

    speed: int = field(validator=_non_negative)
    diagonal: int = field(validator=_non_negative)
    lo: int
    hi: int
    dx: str = "dx"
    dy: str = "dy"
    x: str = "x"
    y: str = "y"
    dead_still: bool = False

    def __attrs_post_init__(self) -> None:
        if self.lo > self.hi:
            raise GameError(f"player movement: bounds [{self.lo}, {self.hi}] are empty")

    def step(self, x: int, y: int, dx: int, dy: int) -> tuple[int, int]:
        """One tick of a living player at ``(x, y)`` under input ``(dx, dy)`` (the reference, scalar)."""
        s = self.diagonal if dx and dy else self.speed
        return min(max(x + dx * s, self.lo), self.hi), min(max(y + dy * s, self.lo), self.hi)

    def to_wire(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "dx": self.dx, "dy": self.dy, "speed": self.speed,
                "diagonal": self.diagonal, "lo": self.lo, "hi": self.hi, "dead_still": self.dead_still}


@frozen
class Shot:
    """How a player's shots leave it, for clients to draw their own at once (before the server's arrive).

    A living player whose input presses ``button`` when its gun is ready (``cooldown`` ticks after its last
    shot, counted in its inputs) spawns an entity of kind ``kind`` at ``muzzle`` from its position (after
    that tick's movement) along its ``aim`` (a uint8 angle: 256 steps a turn, 0 = +x, 64 = +y), moving
    ``speed`` per tick for at most ``life`` ticks. Column units (the position columns' stored fixed point).
    Cosmetic for clients: the server's entities are what counts.
    """

    button: str
    aim: str
    kind: str
    speed: int = field(validator=_non_negative)
    muzzle: int = field(validator=_non_negative)
    cooldown: int = field(validator=_non_negative)
    life: int = field(validator=_non_negative)

    def to_wire(self) -> dict[str, Any]:
        return {"button": self.button, "aim": self.aim, "kind": self.kind, "speed": self.speed,
                "muzzle": self.muzzle, "cooldown": self.cooldown, "life": self.life}


@frozen
class Option:
    """A tunable integer option of a ruleset (``--npcs``, ``--pellets``...)."""

    name: str
    default: int
    lo: int
    hi: int
    doc: str = ""


#: The options of interest management (PROTOCOL.md, *Filtered views*): a ruleset that declares
#: them (``options=(..., *VIEW_OPTIONS)``) lets each match choose whether every client receives
#: the whole world (``view`` 0, the default) or only what lies around its player. In world units.
VIEW_OPTIONS = (
    Option("view", 0, 0, 100_000, "each player receives what lies within this distance of its entity (0: the whole world)"),
    Option("view_h", 0, 0, 100_000, "0: the view is a circle of radius view; else a rectangle of half-width view and "
                                    "this half-height"),
    Option("view_cell", 0, 0, 100_000, "side of the grid cells views are made of (0: chosen from the view)"),
    Option("view_spectators", 0, 0, 1, "with a view: 1 lets spectators receive the whole world; 0 (the default) "
                                       "gives them what every view holds (the always-relevant kinds)"),
)


@frozen
class RulesetSpec:
    """Everything generic code needs to know about a ruleset.

    Attributes:
        name: registry name (``arena``, ``drift``).
        version: bumped whenever the rules change results for the same inputs.
        columns: every column, replicated and private, in a fixed order.
        inputs: the input fields, in the order they travel on the wire.
        motion: axes clients extrapolate between updates (may be empty).
        width, height: arena size in world units.
        options: tunable options with defaults and ranges.
        kinds: names of the values of the ``kind`` column, by value.
        player: how players move, for clients' prediction; None when the
            ruleset does not describe it (clients then do not predict).
        rewind: the most ticks of lag compensation the rules apply: a
            player's shots are judged against the world as it was up to this
            many ticks ago (``InputBatch.lag``). 0: none; the server then
            records every lag as 0.
        always_relevant: kinds (names) every client receives whatever its view
            (interest management: PROTOCOL.md, *Filtered views*).
        always_relevant_events: the kinds of events (``Event.kind``) every
            client receives whatever its view; any other event reaches the
            views that hold one of its positions (``Event.at``).
        shot: how players' shots leave them, for clients to draw their own at once (``Shot``); None: not
            described.
        size_option: the option giving the side of a square arena, world
            units, or None: the arena is always ``width`` x ``height``. With
            it, ``resolve`` sizes a world's arena, the motion axes' and the
            player movement's upper bounds with it (their lower bounds are 0);
            ``width`` is the option's default.
    """

    name: str
    version: int
    columns: tuple[Column, ...]
    inputs: tuple[InputField, ...]
    motion: tuple[Axis, ...] = ()
    width: int = 4000
    height: int = 4000
    options: tuple[Option, ...] = ()
    kinds: tuple[str, ...] = ()
    player: PlayerMove | None = None
    rewind: int = 0
    always_relevant: tuple[str, ...] = ()
    always_relevant_events: tuple[str, ...] = ()
    size_option: str | None = None
    shot: Shot | None = None

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.rewind <= 255:
            raise GameError(f"{self.name}: rewind must be 0 to 255 ticks, not {self.rewind}")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise GameError(f"{self.name}: duplicate column names")
        unknown = [k for k in self.always_relevant if k not in self.kinds]
        if unknown:
            raise GameError(f"{self.name}: always_relevant names kinds it does not have: {unknown}")
        if self.size_option is not None:
            self._check_size_option(self.size_option)
        rep = {c.name for c in self.columns if c.replicated}
        for axis in self.motion:
            if axis.pos not in rep or axis.vel not in rep:
                raise GameError(f"{self.name}: motion axis {axis} uses a column that is not replicated")
        if self.player is not None:
            self._check_player(self.player, rep)
        if self.shot is not None:
            fields = {f.name: f for f in self.inputs}
            button, aim = fields.get(self.shot.button), fields.get(self.shot.aim)
            if button is None or button.kind != BUTTON or aim is None or self.shot.kind not in self.kinds:
                raise GameError(f"{self.name}: shot needs a button input field, an aim input field and a kind")

    def _check_player(self, move: PlayerMove, rep: set[str]) -> None:
        for name in (move.x, move.y) + (("hp",) if move.dead_still else ()):
            if name not in rep:
                raise GameError(f"{self.name}: player movement uses column {name!r}, which is not replicated")
        fields = {f.name: f for f in self.inputs}
        for name in (move.dx, move.dy):
            f = fields.get(name)
            if f is None or f.lo < -1 or f.hi > 1:
                raise GameError(f"{self.name}: player movement needs an input field {name!r} within -1..1")

    def _check_size_option(self, name: str) -> None:
        opt = next((o for o in self.options if o.name == name), None)
        if opt is None or opt.lo < 1:
            raise GameError(f"{self.name}: size_option {name!r} must name an option of at least 1")
        side = self.width
        if (self.height, *self._bounds(side)) != (side, self.motion, self.player):
            raise GameError(f"{self.name}: with a size option, the arena is a square and the motion and player "
                            "bounds run from 0 to its side times the position columns' scales")

    def resolve(self, options: dict[str, int]) -> RulesetSpec:
        """This spec for a world made with ``options`` (resolved): its arena sized by ``size_option``.

        The same spec when the ruleset has no size option. Columns, inputs and
        options never change: only ``width``, ``height`` and the upper bounds
        of the motion axes and of the player's movement.
        """
        if self.size_option is None:
            return self
        side = options.get(self.size_option, self.width)  # a recording from before the option: the default
        if side == self.width == self.height:
            return self
        motion, player = self._bounds(side)
        return evolve(self, width=side, height=side, motion=motion, player=player)

    def _bounds(self, side: int) -> tuple[tuple[Axis, ...], PlayerMove | None]:
        """The motion axes and player movement of an arena ``side`` world units square."""
        motion = tuple(evolve(a, lo=0, hi=side * self.column(a.pos).scale) for a in self.motion)
        player = None if self.player is None else evolve(self.player, lo=0, hi=side * self.column(self.player.x).scale)
        return motion, player

    @property
    def replicated(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.replicated)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise GameError(f"{self.name}: no column {name!r}")

    def resolve_options(self, given: dict[str, int] | None) -> dict[str, int]:
        """Defaults overlaid with ``given``; unknown names and out-of-range values raise."""
        given = dict(given or {})
        out: dict[str, int] = {}
        for opt in self.options:
            value = int(given.pop(opt.name, opt.default))
            if not opt.lo <= value <= opt.hi:
                raise GameError(f"{self.name}: option {opt.name}={value} is outside [{opt.lo}, {opt.hi}]")
            out[opt.name] = value
        if given:
            raise GameError(f"{self.name}: unknown option(s) {sorted(given)}; known: {[o.name for o in self.options]}")
        return out

    def input_bounds(self) -> tuple[np.ndarray[Any, np.dtype[np.int16]], np.ndarray[Any, np.dtype[np.int16]]]:
        lo = np.array([f.lo for f in self.inputs], dtype=np.int16)
        hi = np.array([f.hi for f in self.inputs], dtype=np.int16)
        return lo, hi

    def to_wire(self) -> dict[str, Any]:
        """The description sent to clients in ``welcome`` (see PROTOCOL.md)."""
        return {
            "name": self.name,
            "version": self.version,
            "width": self.width,
            "height": self.height,
            "columns": [
                {"name": c.name, "dtype": c.wire, "scale": c.scale, "doc": c.doc} for c in self.replicated
            ],
            "inputs": [{"name": f.name, "lo": f.lo, "hi": f.hi, "doc": f.doc, "kind": f.kind} for f in self.inputs],
            "motion": [{"pos": a.pos, "vel": a.vel, "lo": a.lo, "hi": a.hi} for a in self.motion],
            "kinds": list(self.kinds),
            **({"player": self.player.to_wire()} if self.player is not None else {}),
            **({"shot": self.shot.to_wire()} if self.shot is not None else {}),
        }

"""Frozen ruleset descriptions validate themselves and describe the wire."""

from __future__ import annotations

import json

import attrs
import numpy as np
import pytest
from attrs import evolve

from game.errors import GameError
from game.rules import RULESETS
from game.schema import (
    INT_DTYPES,
    Axis,
    Column,
    InputField,
    Option,
    PlayerMove,
    RulesetSpec,
)


def make_spec(**changes) -> RulesetSpec:
    values = dict(
        name="toy",
        version=3,
        columns=(
            Column("x", "int32", "int16", 8, "position"),
            Column("vx", "int32", "int8", 8, "velocity"),
            Column("owner", "int32", None, doc="private"),
            Column("hp", "uint8", "uint8"),
        ),
        inputs=(InputField("dx", -1, 1, "left/right", "axis"), InputField("aim", 0, 255)),
        motion=(Axis("x", "vx", 0, 800),),
        width=100,
        height=50,
        options=(Option("npcs", 10, 0, 100, "how many"), Option("speed", 3, 1, 5)),
        kinds=("a", "b"),
    )
    values.update(changes)
    return RulesetSpec(**values)


# -- columns -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_column_accepts_every_supported_integer_dtype(dtype):
    c = Column("c", dtype, dtype)
    assert c.dtype == c.wire == dtype
    assert c.replicated


@pytest.mark.parametrize("bad", ["float32", "int64", "uint64", "bool", "int", ""])
def test_column_rejects_an_unsupported_state_dtype_naming_it(bad):
    with pytest.raises(GameError) as e:
        Column("c", bad)
    msg = str(e.value)
    assert "dtype" in msg
    assert repr(bad) in msg
    assert "int32" in msg


@pytest.mark.parametrize("bad", ["float64", "int64", "i4"])
def test_column_rejects_an_unsupported_wire_dtype_naming_it(bad):
    with pytest.raises(GameError, match=f"wire must be one of .*{bad!r}"):
        Column("c", "int32", bad)


def test_a_column_without_a_wire_dtype_is_private():
    c = Column("secret", "int32")
    assert c.wire is None
    assert not c.replicated
    assert c.scale == 1
    assert c.doc == ""


def test_columns_are_frozen_values():
    c = Column("x", "int32", "int16")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        c.name = "y"  # type: ignore[misc]
    assert c == Column("x", "int32", "int16")
    assert hash(c) == hash(Column("x", "int32", "int16"))
    assert attrs.evolve(c, wire=None).replicated is False


# -- input fields --------------------------------------------------------------


@pytest.mark.parametrize("lo,hi", [(-32768, 32767), (0, 0), (-1, 1)])
def test_input_field_accepts_ranges_within_int16(lo, hi):
    f = InputField("f", lo, hi)
    assert (f.lo, f.hi) == (lo, hi)


@pytest.mark.parametrize("lo,hi", [(1, 0), (-32769, 0), (0, 32768), (5, -5)])
def test_input_field_rejects_an_empty_or_out_of_int16_range_naming_the_field(lo, hi):
    with pytest.raises(GameError, match=rf"input field aim: bad range \[{lo}, {hi}\]"):
        InputField("aim", lo, hi)


def test_an_input_field_is_a_value_unless_it_says_it_is_an_axis_or_a_button_and_those_rest_at_0():
    assert [InputField("f", 0, 9, kind=k).rests for k in ("value", "axis", "button")] == [False, True, True]
    assert InputField("aim", 0, 255).kind == "value"
    with pytest.raises(GameError, match="input field fire: kind must be one of"):
        InputField("fire", 0, 1, kind="trigger")
    with pytest.raises(GameError, match=r"input field gear: an axis rests at 0, outside \[1, 5\]"):
        InputField("gear", 1, 5, kind="axis")


def test_arena_declares_its_directions_axes_its_aim_a_value_and_fire_a_button():
    from game.arena.spec import SPEC as ARENA
    from game.drift import SPEC as DRIFT

    assert [(f.name, f.kind) for f in ARENA.inputs] == [("dx", "axis"), ("dy", "axis"), ("aim", "value"),
                                                          ("fire", "button")]
    assert [f.kind for f in DRIFT.inputs] == ["axis", "axis"]


def test_a_shot_description_needs_a_button_an_aim_field_and_a_kind_and_travels_in_the_welcome():
    from game.arena.spec import SPEC as ARENA
    from game.schema import Shot

    assert ARENA.to_wire()["shot"] == {"button": "fire", "aim": "aim", "kind": "bullet", "speed": 112, "muzzle": 192,
                                       "cooldown": 6, "life": 40}
    with pytest.raises(GameError, match="shot needs a button input field"):
        evolve(ARENA, shot=Shot("aim", "aim", "bullet", 1, 1, 1, 1))  # aim is a value, not a button
    with pytest.raises(GameError, match="shot needs"):
        evolve(ARENA, shot=Shot("fire", "aim", "rocket", 1, 1, 1, 1))


# -- the ruleset spec ----------------------------------------------------------


def test_a_valid_spec_keeps_its_values():
    spec = make_spec()
    assert spec.name == "toy"
    assert [c.name for c in spec.columns] == ["x", "vx", "owner", "hp"]
    assert [c.name for c in spec.replicated] == ["x", "vx", "hp"]
    assert spec.column("owner").wire is None


def test_spec_defaults_to_a_4000_square_arena_without_motion_or_options():
    spec = RulesetSpec("bare", 1, (Column("a", "int8", "int8"),), ())
    assert (spec.width, spec.height) == (4000, 4000)
    assert spec.motion == ()
    assert spec.options == ()
    assert spec.resolve_options(None) == {}


def test_spec_rejects_duplicate_column_names():
    columns = (Column("x", "int32", "int16"), Column("hp", "uint8"), Column("x", "int16", "int16"))
    with pytest.raises(GameError, match="toy: duplicate column"):
        make_spec(columns=columns, motion=())


def test_spec_rejects_motion_on_a_private_column_naming_it():
    with pytest.raises(GameError, match="toy: motion axis .*'owner'.* not replicated"):
        make_spec(motion=(Axis("owner", "vx", 0, 10),))
    with pytest.raises(GameError, match="toy: motion axis .*'owner'.* not replicated"):
        make_spec(motion=(Axis("x", "owner", 0, 10),))


def test_spec_rejects_motion_on_a_column_it_does_not_have():
    with pytest.raises(GameError, match="not replicated"):
        make_spec(motion=(Axis("x", "nope", 0, 10),))


def test_spec_column_looks_up_by_name_or_raises():
    spec = make_spec()
    assert spec.column("vx") == Column("vx", "int32", "int8", 8, "velocity")
    with pytest.raises(GameError, match="toy: no column 'nope'"):
        spec.column("nope")


# -- options -------------------------------------------------------------------


def test_resolve_options_gives_the_defaults_when_none_are_given():
    assert make_spec().resolve_options(None) == {"npcs": 10, "speed": 3}
    assert make_spec().resolve_options({}) == {"npcs": 10, "speed": 3}


def test_resolve_options_overlays_the_given_values_and_accepts_both_bounds():
    spec = make_spec()
    assert spec.resolve_options({"npcs": 0}) == {"npcs": 0, "speed": 3}
    assert spec.resolve_options({"npcs": 100, "speed": 5}) == {"npcs": 100, "speed": 5}
    assert spec.resolve_options({"speed": "2"}) == {"npcs": 10, "speed": 2}


def test_resolve_options_does_not_modify_the_given_dict():
    given = {"npcs": 4}
    make_spec().resolve_options(given)
    assert given == {"npcs": 4}


@pytest.mark.parametrize("value", [-1, 101, 10**9])
def test_resolve_options_rejects_a_value_out_of_range_naming_option_value_and_range(value):
    with pytest.raises(GameError, match=rf"toy: option npcs={value} is outside \[0, 100\]"):
        make_spec().resolve_options({"npcs": value})


def test_resolve_options_rejects_unknown_options_naming_them_and_the_known_ones():
    with pytest.raises(GameError) as e:
        make_spec().resolve_options({"npcs": 5, "pellets": 3, "bots": 1})
    msg = str(e.value)
    assert "unknown option" in msg
    assert "'bots', 'pellets'" in msg
    assert "known: ['npcs', 'speed']" in msg


# -- bounds and the wire description ---------------------------------------------------


def test_input_bounds_are_int16_arrays_in_field_order():
    lo, hi = make_spec().input_bounds()
    assert lo.dtype == hi.dtype == np.int16
    assert lo.tolist() == [-1, 0]
    assert hi.tolist() == [1, 255]


def test_to_wire_lists_only_replicated_columns_with_their_wire_dtype():
    wire = make_spec().to_wire()
    assert wire["columns"] == [
        {"name": "x", "dtype": "int16", "scale": 8, "doc": "position"},
        {"name": "vx", "dtype": "int8", "scale": 8, "doc": "velocity"},
        {"name": "hp", "dtype": "uint8", "scale": 1, "doc": ""},
    ]
    assert "owner" not in json.dumps(wire)


def test_to_wire_describes_name_size_inputs_motion_and_kinds():
    wire = make_spec().to_wire()
    assert wire["name"] == "toy"
    assert wire["version"] == 3
    assert (wire["width"], wire["height"]) == (100, 50)
    assert wire["inputs"] == [
        {"name": "dx", "lo": -1, "hi": 1, "doc": "left/right", "kind": "axis"},
        {"name": "aim", "lo": 0, "hi": 255, "doc": "", "kind": "value"},
    ]
    assert wire["motion"] == [{"pos": "x", "vel": "vx", "lo": 0, "hi": 800}]
    assert wire["kinds"] == ["a", "b"]
    assert set(wire) == {"name", "version", "width", "height", "columns", "inputs", "motion", "kinds"}


def test_to_wire_is_plain_json():
    wire = make_spec().to_wire()
    assert json.loads(json.dumps(wire)) == wire


# -- player movement -----------------------------------------------------------------


def test_player_move_steps_straight_and_diagonally_within_its_bounds():
    move = PlayerMove(48, 34, 0, 1000)
    assert move.step(500, 500, 1, 0) == (548, 500)
    assert move.step(500, 500, -1, 1) == (466, 534)
    assert move.step(500, 500, 0, 0) == (500, 500)
    assert move.step(990, 10, 1, -1) == (1000, 0)


@pytest.mark.parametrize("args,message", [
    ((-1, 34, 0, 10), "speed must be >= 0, not -1"),
    ((48, -2, 0, 10), "diagonal must be >= 0, not -2"),
    ((48, 34, 10, 0), r"bounds \[10, 0\] are empty"),
])
def test_player_move_rejects_negative_steps_and_empty_bounds(args, message):
    with pytest.raises(GameError, match=message):
        PlayerMove(*args)


def test_spec_rejects_player_movement_on_columns_or_inputs_it_lacks():
    toy_inputs = (InputField("dx", -1, 1), InputField("dy", -1, 1))
    with pytest.raises(GameError, match="toy: player movement uses column 'y', which is not replicated"):
        make_spec(inputs=toy_inputs, player=PlayerMove(8, 6, 0, 800))
    with pytest.raises(GameError, match="toy: player movement uses column 'owner', which is not replicated"):
        make_spec(inputs=toy_inputs, player=PlayerMove(8, 6, 0, 800, y="owner"))
    with pytest.raises(GameError, match="toy: player movement needs an input field 'dy' within -1..1"):
        make_spec(player=PlayerMove(8, 6, 0, 800, y="x"))
    with pytest.raises(GameError, match="toy: player movement needs an input field 'aim' within -1..1"):
        make_spec(player=PlayerMove(8, 6, 0, 800, y="x", dy="aim"))
    no_hp = tuple(c for c in make_spec().columns if c.name != "hp")
    with pytest.raises(GameError, match="toy: player movement uses column 'hp'"):
        make_spec(columns=no_hp, inputs=toy_inputs, player=PlayerMove(8, 6, 0, 800, y="x", dead_still=True))


def test_to_wire_describes_player_movement_only_when_the_ruleset_has_one():
    spec = make_spec(inputs=(InputField("dx", -1, 1), InputField("dy", -1, 1)),
                     player=PlayerMove(8, 6, 0, 800, y="x", dead_still=True))
    assert spec.to_wire()["player"] == {
        "x": "x", "y": "x", "dx": "dx", "dy": "dy", "speed": 8, "diagonal": 6, "lo": 0, "hi": 800, "dead_still": True,
    }
    assert "player" not in make_spec().to_wire()


def _walker(name: str):
    """A real world of ruleset ``name`` with one player and nothing to disturb it; (ruleset, world, stepper)."""
    from game.rules import InputBatch, get_ruleset

    ruleset = get_ruleset(name)
    options = {o.name: o.lo for o in ruleset.spec.options if o.name in ("npcs", "pellets")}  # no drones, pellets or NPCs
    world = ruleset.create(7, options)
    me = ruleset.join(world, 1)
    fields = [f.name for f in ruleset.spec.inputs]

    def slot() -> int:
        (s,) = world.slots_of(np.array([me]))
        return int(s)

    def step(dx: int, dy: int) -> tuple[int, int]:
        values = [0] * len(fields)
        values[fields.index(ruleset.spec.player.dx)] = dx
        values[fields.index(ruleset.spec.player.dy)] = dy
        ruleset.step(world, InputBatch(np.array([1]), np.array([values])))
        s = slot()
        return int(world.cols[ruleset.spec.player.x][s]), int(world.cols[ruleset.spec.player.y][s])

    return ruleset, world, slot, step


DIRECTIONS = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]


@pytest.mark.parametrize("name", sorted(RULESETS))
def test_each_rulesets_player_movement_description_is_its_actual_step(name):
    ruleset, world, slot, step = _walker(name)
    move = ruleset.spec.player
    assert move is not None
    inside = (move.lo + move.hi) // 2
    near_lo, near_hi = move.lo + move.diagonal // 2, move.hi - move.diagonal // 2
    for start in [(inside, inside), (near_lo, near_lo), (near_hi, near_hi), (near_lo, near_hi), (move.lo, move.hi)]:
        for dx, dy in DIRECTIONS:
            s = slot()
            world.cols[move.x][s], world.cols[move.y][s] = start
            assert step(dx, dy) == move.step(*start, dx, dy), (start, dx, dy)


def test_arena_players_with_no_hp_stand_still_as_described():
    ruleset, world, slot, step = _walker("arena")
    assert ruleset.spec.player.dead_still
    s = slot()
    world.cols["x"][s], world.cols["y"][s] = 5000, 6000
    world.cols["hp"][s], world.cols["respawn"][s] = 0, 1000
    for dx, dy in DIRECTIONS:
        assert step(dx, dy) == (5000, 6000)

"""Frozen ruleset descriptions validate themselves and describe the wire."""

from __future__ import annotations

import json

import attrs
import numpy as np
import pytest

from game.errors import GameError
from game.schema import INT_DTYPES, Axis, Column, InputField, Option, RulesetSpec


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
        inputs=(InputField("dx", -1, 1, "left/right"), InputField("aim", 0, 255)),
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
        {"name": "dx", "lo": -1, "hi": 1, "doc": "left/right"},
        {"name": "aim", "lo": 0, "hi": 255, "doc": ""},
    ]
    assert wire["motion"] == [{"pos": "x", "vel": "vx", "lo": 0, "hi": 800}]
    assert wire["kinds"] == ["a", "b"]
    assert set(wire) == {"name", "version", "width", "height", "columns", "inputs", "motion", "kinds"}


def test_to_wire_is_plain_json():
    wire = make_spec().to_wire()
    assert json.loads(json.dumps(wire)) == wire

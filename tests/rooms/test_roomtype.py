"""``RoomType``: a frozen value that cannot be built invalid."""

from __future__ import annotations

import json

import attrs
import pytest

from server.rooms import InvalidRoomType, RoomType


def test_a_room_type_keeps_its_settings_read_only_and_sorted() -> None:
    rt = RoomType("tagarena:TagRuleset", {"npcs": 5}, tick_rate=20, max_players=6, seed=None,
                  labels={"region": "eu", "mode": "ffa"})
    assert list(rt.labels.items()) == [("mode", "ffa"), ("region", "eu")]
    with pytest.raises(TypeError):
        rt.labels["mode"] = "duel"  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        rt.tick_rate = 60  # type: ignore[misc]


def test_equal_room_types_are_equal_and_hash_alike() -> None:
    a = RoomType("arena", {"npcs": 5}, labels={"mode": "ffa"})
    b = RoomType("arena", {"npcs": 5}, labels={"mode": "ffa"})
    assert a == b and hash(a) == hash(b)
    assert a != RoomType("arena", {"npcs": 6}, labels={"mode": "ffa"})


def test_a_client_customizes_options_and_labels_over_the_room_types_own() -> None:
    rt = RoomType("arena", {"npcs": 5, "pellets": 10}, labels={"mode": "ffa", "region": "eu"})
    custom = rt.customized({"npcs": 7}, {"mode": "duel"})
    assert dict(custom.options) == {"npcs": 7, "pellets": 10}
    assert dict(custom.labels) == {"mode": "duel", "region": "eu"}
    assert dict(rt.options) == {"npcs": 5, "pellets": 10}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ruleset": ""}, "room type: ruleset: expected a name or package.module:Attr, got ''"),
    ({"ruleset": "my game:X"}, "room type: ruleset: expected a name or package.module:Attr, got 'my game:X'"),
    ({"options": {"npcs": "5"}}, "room type: options: option npcs: expected an integer, got str"),
    ({"options": {"npcs": True}}, "room type: options: option npcs: expected an integer, got bool"),
    ({"options": {"n-pcs": 5}}, "room type: options: option name 'n-pcs' is not an identifier"),
    ({"options": [("npcs", 5)]}, "room type: options: expected a mapping, not list"),
    ({"tick_rate": 0}, "room type: tick_rate: expected an integer in [1, 240], got 0"),
    ({"tick_rate": 30.0}, "room type: tick_rate: expected an integer in [1, 240], got 30.0"),
    ({"max_players": 0}, "room type: max_players: expected an integer in [1, 100000], got 0"),
    ({"seed": -1}, "room type: seed: expected an integer in [0, 9223372036854775807] or None, got -1"),
    ({"labels": {"Mode": "ffa"}}, "room type: labels: label key 'Mode' must be 1-32 of a-z 0-9 _ -, starting with a letter"),
    ({"labels": {"mode": ""}}, "room type: labels: label mode: expected 1 to 64 printable characters"),
    ({"labels": {"mode": "a\nb"}}, "room type: labels: label mode: expected 1 to 64 printable characters"),
    ({"labels": {"mode": 3}}, "room type: labels: label mode: expected a string, got int"),
    ({"labels": {f"k{i}": "v" for i in range(17)}}, "room type: labels: at most 16 entries, got 17"),
])
def test_a_room_type_with_a_bad_field_cannot_be_built(kwargs: dict, message: str) -> None:
    fields = {"ruleset": "arena", **kwargs}
    with pytest.raises(InvalidRoomType) as info:
        RoomType(**fields)
    assert str(info.value) == message
    assert info.value.field == message.split(": ")[1]


def test_a_room_type_goes_through_json_and_comes_back_equal() -> None:
    rt = RoomType("tagarena:TagRuleset", {"npcs": 5}, tick_rate=20, max_players=6, seed=7, labels={"mode": "ffa"})
    data = json.loads(json.dumps(rt.to_json()))
    assert data == {"ruleset": "tagarena:TagRuleset", "options": {"npcs": 5}, "tick_rate": 20, "max_players": 6,
                    "seed": 7, "labels": {"mode": "ffa"}}
    assert RoomType.from_json(data) == rt and RoomType.from_json({"ruleset": "arena"}) == RoomType("arena")


@pytest.mark.parametrize("data, field", [
    ({}, "ruleset"),
    ({"ruleset": "arena", "colour": "red"}, "colour"),
    ({"ruleset": "arena", "tick_rate": 0}, "tick_rate"),
    ({"ruleset": "arena", "options": [1]}, "options"),
    ([1, 2], "room"),
])
def test_room_data_that_is_not_a_room_type_is_refused_naming_the_field(data: object, field: str) -> None:
    with pytest.raises(InvalidRoomType) as refused:
        RoomType.from_json(data)  # type: ignore[arg-type]
    assert refused.value.field == field

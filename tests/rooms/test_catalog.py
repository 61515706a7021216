"""``Catalog``: room types by ruleset name, with their options checked against the ruleset."""

from __future__ import annotations

import pytest

from game.drift import SPEC as DRIFT
from server.rooms import Catalog, InvalidRoomType, MatchmakeError, Offer, RoomType
from server.rulesets import load_ruleset


def test_room_types_are_offered_under_their_rulesets_names() -> None:
    catalog = Catalog.load([RoomType("game.drift:DriftRuleset"), RoomType("arena")], load_ruleset)
    assert catalog.names == ("arena", "drift")
    assert catalog.offer("drift").spec is DRIFT


def test_an_unknown_ruleset_is_a_400_listing_what_is_offered() -> None:
    catalog = Catalog([Offer(RoomType("drift"), DRIFT)])
    with pytest.raises(MatchmakeError) as info:
        catalog.offer("chess")
    assert (info.value.status, info.value.field) == (400, "ruleset")
    assert info.value.reason == "unknown ruleset 'chess'; this server offers drift"


def test_options_are_checked_by_name_and_range_and_resolved_with_defaults() -> None:
    offer = Offer(RoomType("drift"), DRIFT)
    rest = {"size": 4000, "view": 0, "view_h": 0, "view_cell": 0, "view_spectators": 0}
    assert offer.check_options({"npcs": 5}) == {"npcs": 5, **rest}
    assert offer.check_options({}) == {"npcs": 2000, **rest}
    with pytest.raises(MatchmakeError) as unknown:
        offer.check_options({"pellets": 5})
    assert (unknown.value.status, unknown.value.field) == (400, "options.pellets")
    assert unknown.value.reason == "unknown option 'pellets' of ruleset 'drift'; known: npcs, size, view, view_cell, view_h, view_spectators"
    with pytest.raises(MatchmakeError) as outside:
        offer.check_options({"npcs": -1})
    assert (outside.value.field, outside.value.reason) == ("options.npcs", "option npcs=-1 is outside [0, 1000000]")


def test_a_room_type_whose_ruleset_does_not_load_is_refused_saying_why() -> None:
    with pytest.raises(InvalidRoomType, match="room type: ruleset: unknown ruleset 'chess'; built in: arena, drift"):
        Catalog.load([RoomType("chess")], load_ruleset)


def test_a_room_type_with_an_option_its_ruleset_lacks_is_refused() -> None:
    with pytest.raises(InvalidRoomType, match="room type: options: unknown option 'pellets' of ruleset 'drift'"):
        Catalog([Offer(RoomType("drift", {"pellets": 3}), DRIFT)])


def test_two_room_types_for_one_ruleset_are_refused() -> None:
    with pytest.raises(InvalidRoomType, match="two room types for ruleset 'drift'"):
        Catalog.load([RoomType("drift"), RoomType("game.drift:DriftRuleset")], load_ruleset)

"""``server.host``: the pieces that need no network (the catalog, the public URL, building a host)."""

from __future__ import annotations

from pathlib import Path

import pytest

from game.errors import GameError
from game.rules import Ruleset, get_ruleset
from server.config import ServerConfig
from server.host import Host, RoomsConfig, RulesetCache, build_catalog, public_url
from server.rooms import InvalidRoomType, RoomType
from tests.userpkg.conftest import USERPKG  # noqa: F401 (puts the user's package on sys.path)


def test_the_catalog_offers_the_command_lines_room_type_and_every_other_built_in() -> None:
    user = RoomType("tagarena:TagRuleset", {"npcs": 5}, max_players=4, labels={"mode": "tag"})
    catalog = build_catalog(user, RulesetCache(), tick_rate=20, max_players=8)
    assert catalog.names == ("arena", "drift", "tagarena")
    assert catalog.offer("tagarena").room_type == user
    assert catalog.offer("drift").room_type == RoomType("drift", tick_rate=20, max_players=8)


def test_a_built_in_on_the_command_line_is_offered_once_with_its_settings() -> None:
    catalog = build_catalog(RoomType("drift", {"npcs": 0}, max_players=2), RulesetCache(), tick_rate=30, max_players=9)
    assert catalog.names == ("arena", "drift") and catalog.offer("drift").room_type.max_players == 2


def test_rulesets_are_loaded_once_per_reference() -> None:
    loads: list[str] = []

    def load(ref: str) -> Ruleset:
        loads.append(ref)
        return get_ruleset("drift")

    cache = RulesetCache(load)
    assert cache("x") is cache("x") and loads == ["x"]


@pytest.mark.parametrize("host, tls, url", [
    ("127.0.0.1", False, "ws://127.0.0.1:8765"),
    ("0.0.0.0", False, "ws://127.0.0.1:8765"),
    ("::1", True, "wss://[::1]:8765"),
    ("games.example.com", True, "wss://games.example.com:8765"),
])
def test_the_public_url_is_where_this_machine_reaches_the_port(host: str, tls: bool, url: str) -> None:
    config = ServerConfig(host=host, tls_cert=Path("cert.pem") if tls else None)
    assert public_url(config, 8765) == url


def test_building_a_host_refuses_a_ruleset_that_does_not_load_and_bad_room_settings(tmp_path: Path) -> None:
    with pytest.raises(GameError, match="no module named 'nope'"):
        Host.build(ServerConfig(ruleset="nope:Ruleset", replay_dir=tmp_path))
    with pytest.raises(InvalidRoomType, match="label key 'Mode'"):
        Host.build(ServerConfig(replay_dir=tmp_path), RoomsConfig(labels=(("Mode", "ffa"),)))
    with pytest.raises(InvalidRoomType, match="unknown option 'pellets' of ruleset 'drift'"):
        Host.build(ServerConfig(ruleset="drift", options=(("pellets", 3),), replay_dir=tmp_path))


def test_a_built_host_offers_the_default_room_with_the_rooms_settings(tmp_path: Path) -> None:
    host = Host.build(ServerConfig(ruleset="drift", options=(("npcs", 0),), max_players=3, record=False,
                                   replay_dir=tmp_path),
                      RoomsConfig(seed=7, labels=(("region", "eu"),), seat_ttl=4.0, empty_grace=9.0,
                                  public_url="wss://games.example.com"))
    assert host.default_name == "drift" and host.default_room.seed == 7 and dict(host.default_room.labels) == {"region": "eu"}
    assert host.matchmaker.seat_ttl == 4.0 and host.lifecycle.grace_s == 9.0 and host.url == "wss://games.example.com"
    match = host.open_default(seed=1)
    assert host.server.default_id == match.match_id and match.seed == 1 and match.max_players == 3
    assert match.match_id.startswith("drift-") and match.match_id.endswith("-1")

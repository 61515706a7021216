"""``server.host``: the pieces that need no network (the catalog, the public URL, building a host), and
nodes sharing one directory in this process (placement on another node, starting what is listed here).

The multi-process cluster over real Redis is ``tests/e2e/test_cluster.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from game.errors import GameError
from game.rules import Ruleset, get_ruleset
from server.app import GameServer
from server.config import ServerConfig
from server.host import LOST_SEAT, Host, RoomsConfig, RulesetCache, build_catalog, http_base, public_url
from server.protocol.errors import CLOSE_TRY_AGAIN_LATER, ProtocolError
from server.protocol.messages import Hello
from server.rooms import InvalidRoomType, MatchId, MatchmakeRequest, MemoryDirectory, RoomType
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
    assert match.match_id.startswith("drift-") and match.match_id.endswith(f"-{host.node_tag}-1")


def test_two_nodes_starting_their_default_match_in_one_millisecond_with_one_seed_get_different_ids(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = [Host.build(ServerConfig(ruleset="drift", options=(("npcs", 0),), record=False, replay_dir=tmp_path))
             for _ in range(2)]
    monkeypatch.setattr(time, "time", lambda: 1738324800.5)
    a, b = (h.open_default(seed=1).match_id for h in hosts)
    assert a != b and a.startswith("drift-20250131T120000.500Z-") and b.startswith("drift-20250131T120000.500Z-")
    made = [h.new_id("drift") for h in hosts]
    assert made[0] != made[1] and all(f"-{h.node_tag}-" in m for h, m in zip(hosts, made))


def test_the_http_base_of_a_node_is_its_websocket_base_over_http() -> None:
    assert http_base("ws://127.0.0.1:8765") == "http://127.0.0.1:8765"
    assert http_base("wss://games.example.com") == "https://games.example.com"


# -- nodes sharing one directory -------------------------------------------------------------------


def node(tmp_path: Path, directory: MemoryDirectory, url: str, *, ruleset: str = "drift") -> Host:
    """A node's host on ``directory`` (its server not listening: nothing here connects)."""
    config = ServerConfig(ruleset=ruleset, options=(("npcs", 0),), max_players=2, record=False, replay_dir=tmp_path)
    rulesets = RulesetCache()
    room = RoomType(ruleset, {"npcs": 0}, max_players=2)
    catalog = build_catalog(room, rulesets, tick_rate=30, max_players=2)
    return Host(GameServer(config), catalog, rulesets(ruleset).spec.name, rulesets, directory=directory, url=url)


async def two_nodes(tmp_path: Path, **b: str) -> tuple[Host, Host]:
    """Nodes a (which takes no new match, as when draining) and b, registered in one directory."""
    shared = MemoryDirectory()
    a, other = node(tmp_path, shared, "ws://a:1"), node(tmp_path, shared, "ws://b:2", **b)
    a.accepting = False
    for host in (a, other):
        await host.heartbeat(time.time())
    return a, other


def test_a_match_placed_on_another_node_is_listed_there_and_that_node_starts_it_at_its_next_step(
        tmp_path: Path) -> None:
    async def main() -> None:
        a, b = await two_nodes(tmp_path)
        request = MatchmakeRequest("drift", mode="create", options={"npcs": 3}, labels={"region": "eu"})
        seat = await a.matchmaker.matchmake(request, now=time.time())
        mid = seat.match_id
        assert seat.url == f"ws://b:2/ws/{mid}" and mid not in a.matches and mid not in b.matches
        (listed,) = await a.directory.node_matches(b.node_id, now=time.time())
        assert listed.match_id == mid and listed.reserved == 1
        await b.step()
        match = b.matches[mid]
        assert (match.options["npcs"], match.max_players, dict(b.rooms[mid].labels)) == (3, 2, {"region": "eu"})
        assert b.server.feeds[mid] is match and b.stats["matches_started_here"] == 1
        assert b.load() == 1  # its seat, reserved
        assert [m.match_id for m in await b.directory.list_matches(now=time.time())] == [mid]

    asyncio.run(main())


def test_a_websocket_asking_for_a_match_listed_here_starts_it_on_the_spot_and_nothing_else(tmp_path: Path) -> None:
    async def main() -> None:
        a, b = await two_nodes(tmp_path)
        seat = await a.matchmaker.matchmake(MatchmakeRequest("drift", mode="create"), now=time.time())
        located = await asyncio.gather(*(b.locate(seat.match_id) for _ in range(3)))
        assert located == [True] * 3 and b.stats["matches_started_here"] == 1 and seat.match_id in b.server.feeds
        assert not await a.locate(seat.match_id)  # listed under b
        assert not await b.locate("no-such-match") and not await b.locate("../etc")

    asyncio.run(main())


def test_a_match_listed_here_that_this_node_cannot_start_is_unlisted_with_the_reason_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        a, b = await two_nodes(tmp_path)
        now = time.time()
        await b.directory.add_match(MatchId("alien-1"), b.node_id, "alien", {}, 4, now=now,
                                    room={"ruleset": "alienpkg:Alien", "max_players": 4})
        await b.directory.add_match(MatchId("drift-1"), b.node_id, "drift", {}, 4, now=now,
                                    room={"ruleset": "drift", "options": {"npcs": -5}})
        with caplog.at_level(logging.ERROR, "server.host"):
            await b.step()
        assert await b.directory.node_matches(b.node_id, now=time.time()) == [] and b.matches == {}
        assert b.stats["matches_refused"] == 2
        assert "match alien-1, listed under this node, cannot start here: ruleset 'alienpkg:Alien' (alien) " \
               "is not offered here" in caplog.text
        assert "match drift-1, listed under this node, cannot start here: options.npcs: option npcs=-5" in caplog.text
        await b.step()
        assert not await b.locate("alien-1")

    asyncio.run(main())


def test_a_player_whose_seat_the_directory_lost_when_this_node_expired_is_told_to_try_again_not_that_the_match_ended(
        tmp_path: Path) -> None:
    async def main() -> list[tuple[int, str]]:
        host = node(tmp_path, MemoryDirectory(node_ttl=6.0), "ws://a:1")
        host.started.set()
        t = time.time()
        await host.heartbeat(t)
        seat = await host.matchmaker.matchmake(MatchmakeRequest("drift", mode="create"), now=t)
        refused = []
        # The node expires between the reservation and the take (its heartbeats late), then before both.
        for times in ([t + 1, t + 100], [t + 200, t + 200]):
            host.clock = iter(times).__next__
            try:
                await host.admit(seat.match_id, Hello(1, "p"), None)  # no connection: only a full match reads it
            except ProtocolError as exc:
                refused.append((exc.code, exc.reason))
        return refused

    assert asyncio.run(main()) == [(CLOSE_TRY_AGAIN_LATER, LOST_SEAT)] * 2


def test_a_node_is_not_ready_before_it_serves_nor_while_something_holds_it(tmp_path: Path) -> None:
    host = node(tmp_path, MemoryDirectory(), "ws://a:1")
    assert host.why_not_ready() == "starting" and not host.ready()
    host.started.set()
    assert host.ready()
    host.hold_ready("drain", "draining: its matches move to other nodes")
    assert host.why_not_ready() == "draining: its matches move to other nodes"
    host.hold_ready("drain", None)
    assert host.ready()

"""End to end: a match that filters views (interest management), the real server, real clients.

Players that can apply filtered views receive only what lies around them and
verify every update's view sum; a player that cannot receives the same view
in ordinary updates; a spectator what every view holds (the whole world where
the match allows it); and the recording rebuilds every frame each of them
was sent, events included (``server.replay.audit``).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import msgpack
import numpy as np

from game.rules import get_ruleset
from server.protocol.codec import with_surplus
from server.protocol.interest import ViewShape
from server.replay.audit import ViewAudit
from server.replay.listing import read_replay
from tests.conftest import ServerProcess
from tools.client import GameClient

Start = Callable[..., ServerProcess]

#: A 3000-unit arena with 2000 NPCs; views of 400 units in cells of 200.
ARGS = ("--ruleset", "drift", "--npcs", "2000", "--option", "size=3000", "--option", "view=400",
        "--option", "view_cell=200", "--seed", "5")


async def walk(clients: list[GameClient], ticks: int) -> None:
    """Everyone walks (turning now and then) for ``ticks`` ticks."""
    start = clients[0].tick or 0
    while (clients[0].tick or 0) < start + ticks:
        await clients[0].wait_update()
        for i, c in enumerate(clients):
            if c.welcome is not None and c.welcome.entity is not None:
                t = c.tick or 0
                await c.send_input([((t // 25 + i) % 3) - 1, ((t // 40 + 2 * i) % 3) - 1])
    await asyncio.sleep(0.1)


def test_every_player_receives_its_view_verified_asked_for_or_not_and_a_spectator_what_every_view_holds(
        start_server: Start) -> None:
    server = start_server(*ARGS)

    async def main() -> tuple[list[GameClient], GameClient, GameClient, dict[str, list[int]]]:
        players = [GameClient(server.url, f"p{i}") for i in range(4)]
        legacy = GameClient(server.url, "old", interest=False)
        watcher = GameClient(server.url, "eye", spectate=True)
        for c in [*players, legacy, watcher]:
            await c.connect()
        seen: dict[str, list[int]] = {"view": [], "legacy": [], "eye": []}

        def count(c: GameClient) -> None:
            if c.state is not None:
                seen["view" if c is players[0] else "eye" if c is watcher else "legacy"].append(len(c.state.ids))

        players[0].on_update = legacy.on_update = watcher.on_update = count
        await walk([*players, legacy], 150)
        players[0].on_update = legacy.on_update = watcher.on_update = None  # leaving players leave the world
        for c in [*players, legacy, watcher]:
            await c.close()
        return players, legacy, watcher, seen

    players, legacy, watcher, seen = asyncio.run(main())
    for c in [*players, legacy, watcher]:
        s = c.stats
        assert s.desyncs == 0 and s.errors == [] and s.missing_base == 0, (c.name, s)
        assert s.updates >= 30, (c.name, s)  # margin: a busy machine delays the others' reading
    for c in players:
        assert c.filtered and c.welcome is not None
        assert c.welcome.interest == ViewShape(400, 0, 200).to_wire()
        assert c.stats.keyframes < c.stats.updates // 2  # entities come and go by deltas (margin: a busy machine lags)
    assert not legacy.filtered and legacy.welcome is not None and legacy.welcome.interest is None
    assert watcher.filtered
    # The whole world is 2000 NPCs and 5 players; a view of 400 units holds a small part of it, asked for or not.
    for held in (seen["view"], seen["legacy"]):
        assert 0 < max(held) < 400
        assert len(set(held)) > 1  # entities entered and left the view
    assert set(seen["eye"]) == {0}  # drift marks no kind always relevant: a spectator's view holds nothing


def test_a_filtered_players_mirror_holds_exactly_what_lies_in_its_cells(start_server: Start) -> None:
    server = start_server(*ARGS, "--option", "view_spectators=1")  # the spectator sees the world to compare with

    async def main() -> tuple[GameClient, GameClient]:
        me = GameClient(server.url, "me")
        everything = GameClient(server.url, "all", interest=False, spectate=True)
        await me.connect()
        await everything.connect()
        await walk([me], 60)
        # Compare at a tick both hold.
        while True:
            await everything.wait_update()
            if me.tick in everything.states and me.state is not None:
                break
        await me.close()
        await everything.close()
        return me, everything

    me, everything = asyncio.run(main())
    assert me.state is not None and me.welcome is not None and me.schema is not None
    world = everything.states[me.state.tick]
    names = me.schema.names()
    x, y = world.cols[names.index("x")], world.cols[names.index("y")]
    mine = world.ids == me.welcome.entity
    cell = 200 * 8
    cx, cy = x // cell, y // cell
    ex, ey = int(x[mine][0]), int(y[mine][0])
    # Nearest position of each entity's cell to my entity.
    nx = np.clip(ex, cx * cell, (cx + 1) * cell - 1) - ex
    ny = np.clip(ey, cy * cell, (cy + 1) * cell - 1) - ey
    inside = nx.astype(np.int64) ** 2 + ny.astype(np.int64) ** 2 <= (400 * 8) ** 2
    assert np.array_equal(me.state.ids, world.ids[inside])
    for got, col in zip(me.state.cols, world.cols):
        assert np.array_equal(got, col[inside])


def test_a_recorded_match_rebuilds_every_update_each_player_was_sent_byte_for_byte(
        start_server: Start, tmp_path: Path) -> None:
    """Visibility is auditable: re-simulating the recording gives back every frame, filtered or not."""
    server = start_server("--ruleset", "arena", "--npcs", "200", "--option", "pellets=600", "--option", "view=350",
                          "--option", "view_cell=150", "--seed", "9", "--hold", "0.2", "--replay-dir", str(tmp_path))
    received: dict[str, list[bytes]] = {}

    async def main() -> list[GameClient]:
        clients = [GameClient(server.url, f"p{i}", on_frame=received.setdefault(f"p{i}", []).append) for i in range(3)]
        clients.append(GameClient(server.url, "old", interest=False, on_frame=received.setdefault("old", []).append))
        clients.append(GameClient(server.url, "eye", spectate=True, on_frame=received.setdefault("eye", []).append))
        for c in clients:
            await c.connect()
        start = clients[0].tick or 0
        while (clients[0].tick or 0) < start + 100:
            await clients[0].wait_update()
            for i, c in enumerate(clients[:4]):
                t = c.tick or 0
                await c.send_input([((t // 20 + i) % 3) - 1, ((t // 30 + i) % 3) - 1, (t * 7 + 60 * i) & 0xFF, int(t % 5 == 0)])
        for c in clients:
            await c.close()
        return clients

    clients = asyncio.run(main())
    assert server.stop(signal.SIGINT) == 0
    (path,) = tmp_path.glob("*.replay")
    audit = ViewAudit(read_replay(path), get_ruleset("arena"))
    frames = sorted((msgpack.unpackb(f)["tick"], c.name, f, c) for c in clients for f in received[c.name]
                    if msgpack.unpackb(f)["t"] == "update")
    assert {name for _, name, _, _ in frames} == {"p0", "p1", "p2", "old", "eye"}
    for tick, name, frame, c in frames:
        assert c.welcome is not None
        assert audit.rebuild(frame, c.welcome.player, interest=c.interest, spectator=c.spectate) == frame, \
            f"{name} at tick {tick}"
        if tick % 10 == 0:  # a player's surplus (minor 2), like its ack, is its queue's: taken from the frame
            told = with_surplus(frame, 3)
            assert audit.rebuild(told, c.welcome.player, interest=c.interest, spectator=c.spectate) == told
    # Events reached each client as its view says: the kill feed everyone, pickups and drone kills near them.
    got = {name: [e for _, n, f, _ in frames if n == name for e in msgpack.unpackb(f).get("ev", [])]
           for name in ("p0", "p1", "p2", "old", "eye")}
    placed = {name: {e[0] for e in evs} - {"kill", "respawn"} for name, evs in got.items()}
    assert placed["p0"] | placed["p1"] | placed["p2"], got  # someone ate or shot something
    assert placed["eye"] == set()
    # What a filtered player could know at its last tick: exactly what its mirror held.
    p0 = clients[0]
    assert p0.welcome is not None and p0.state is not None
    held = audit.view(p0.welcome.player, p0.state.tick)
    assert np.array_equal(held.ids, p0.state.ids) and held.checksum == p0.state.checksum
    assert len(frames) > 400

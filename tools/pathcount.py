"""``python -m tools.pathcount``: the server's work per client per tick, counted, not timed.

One process: a drift match in a real ``GameServer`` on a loopback port and
``--players`` raw client sockets, ticks driven by hand (no ticker, no
clock), so the same arguments do the same work every run. Each of
``--ticks`` rounds every client sends one ``input`` frame (prebuilt, masked
with a zero key) and the loop runs until the server has read them all; then

- ``--mode recv``: the match's input queues are committed
  (``InputTable.commit``) and nothing is sent: the receive path (socket
  read, event loop, frame split, decode, checks, the input queue);
- ``--mode full``: the match ticks (inputs, simulation, one encode per base,
  one update to every client) and the clients read their updates.

Run under ``valgrind --tool=callgrind``, the instructions of a run with
``--ticks N`` less those of ``--ticks 0`` (connecting, joining), over
``N * players``, are the instructions per client per tick; ``full - recv``
is the sending side plus the simulation's share (``--npcs``, fixed per
tick). ``--callgrind`` does the three runs and prints those figures. The
client side (one ``send`` and one ``recv`` a client per tick) is counted
too, the same in every tree. Kernel work is not counted.

To compare two trees, run this file from the other tree's directory with
that tree first on the path: ``PYTHONPATH=/tmp/before python
/work/tools/pathcount.py --callgrind``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from game.rules import get_ruleset
from server.app import GameServer
from server.config import ServerConfig
from server.match import Match
from server.protocol.codec import encode_client
from server.protocol.messages import Hello, Input


def masked(payload: bytes) -> bytes:
    """A client's binary frame of ``payload`` (under 126 bytes), masked with a zero key."""
    assert len(payload) < 126
    return bytes((0x82, 0x80 | len(payload))) + b"\x00\x00\x00\x00" + payload


def drain(socks: list[socket.socket]) -> int:
    """Read whatever each client was sent; returns the bytes read."""
    total = 0
    for s in socks:
        while True:
            try:
                data = s.recv(1 << 20)
            except BlockingIOError:
                break
            if not data:
                raise SystemExit("the server closed a client")
            total += len(data)
    return total


async def settle(server: GameServer, messages: int, limit: int = 1000) -> None:
    """Let the loop run until the server has taken ``messages`` messages in all."""
    for i in range(limit):
        if server.traffic.messages_in >= messages:
            return
        await asyncio.sleep(0 if i < 10 else 0.001)
    raise SystemExit(f"the server took {server.traffic.messages_in} of {messages} messages ({server.stats})")


async def run(players: int, ticks: int, mode: str, npcs: int) -> dict[str, Any]:
    match = Match(get_ruleset("drift"), match_id="m", seed=1, options={"npcs": npcs})
    with tempfile.TemporaryDirectory() as replays:
        server = GameServer(ServerConfig(port=0, record=False, replay_dir=Path(replays),
                                         max_per_address=0, ping_interval_s=3600, ping_timeout_s=3600), match)
        port = await server.start()
        socks = []
        for i in range(players):
            s = socket.create_connection(("127.0.0.1", port))
            s.setblocking(False)
            key = base64.b64encode(os.urandom(16)).decode()
            s.send((f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
                   + masked(encode_client(Hello(1, f"p{i}"))))
            socks.append(s)
            if i % 50 == 49:
                await asyncio.sleep(0.01)  # let the listener accept
        for _ in range(500):
            await asyncio.sleep(0.005)
            if len(match.members) == players:
                break
        if len(match.members) != players:
            raise SystemExit(f"{len(match.members)} of {players} clients joined")
        now = 0.0
        for _ in range(3):  # joins, welcomes, rosters, keyframes
            now += 1 / 30
            match.tick(now)
            for _ in range(3):
                await asyncio.sleep(0)
            drain(socks)
        start = match.tick_count
        frames = [[masked(encode_client(Input(t + 1, ((t + i) % 3 - 1, (t // 7 + i) % 3 - 1),
                                               ack=start + t if mode == "full" else start)))
                   for i in range(players)] for t in range(ticks)]
        taken = server.traffic.messages_in
        received = 0
        for t in range(ticks):
            for s, frame in zip(socks, frames[t]):
                s.send(frame)
            taken += players
            await settle(server, taken)
            if mode == "full":
                now += 1 / 30
                match.tick(now)
                for _ in range(2):
                    await asyncio.sleep(0)
                received += drain(socks)
            else:
                match.inputs.commit(match.world.tick + 1)
        result = {"players": players, "ticks": ticks, "mode": mode, "updates_bytes": received,
                  "frames_sent": match.stats.frames_sent, "keyframes": match.stats.keyframes_sent}
        for s in socks:
            s.close()
        server.stop()
        return result


def collected(args: list[str]) -> int:
    """Instructions callgrind counts for ``python -m tools.pathcount <args>`` (this file, this interpreter)."""
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    m = re.search(r"Collected : (\d+)", out.stderr)
    if m is None:
        raise SystemExit(f"no count from callgrind:\n{out.stderr[-2000:]}")
    return int(m.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.pathcount", description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", type=int, default=100, help="clients (default 100)")
    parser.add_argument("--ticks", type=int, default=60, help="counted rounds (default 60)")
    parser.add_argument("--npcs", type=int, default=2000, help="drift NPCs (default 2000)")
    parser.add_argument("--mode", choices=("recv", "full"), default="full",
                        help="recv: inputs only; full: inputs, tick and updates (default)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (default: asyncio's own loop)")
    parser.add_argument("--callgrind", action="store_true",
                        help="run --ticks 0, recv and full under callgrind; print instructions per client per tick")
    args = parser.parse_args(argv)
    if not args.callgrind:
        factory = None
        if args.uvloop:
            import uvloop
            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            print(runner.run(run(args.players, args.ticks, args.mode, args.npcs)))
        return 0
    common = ["--players", str(args.players), "--npcs", str(args.npcs), *(["--uvloop"] if args.uvloop else [])]
    base = collected([*common, "--ticks", "0"])
    recv = collected([*common, "--ticks", str(args.ticks), "--mode", "recv"])
    full = collected([*common, "--ticks", str(args.ticks), "--mode", "full"])
    n = args.ticks * args.players
    print(f"players={args.players} ticks={args.ticks} npcs={args.npcs} loop={'uvloop' if args.uvloop else 'asyncio'} "
          f"base={base}")
    print(f"instructions per client per tick: recv {(recv - base) / n:,.0f}  full {(full - base) / n:,.0f}  "
          f"full-recv {(full - recv) / n:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

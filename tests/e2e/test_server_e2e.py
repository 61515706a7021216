"""End to end: the real server on a free loopback port, real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import attrs
import msgpack
import pytest
from websockets.asyncio.client import connect

from server.protocol.codec import encode_client
from server.protocol.delta import Snapshot, checksum
from server.protocol.messages import Error, Hello, Input, Ping
from tests.conftest import ROOT, ServerProcess
from tests.e2e.helpers import messages_until_closed
from tests.netem import DelayProxy
from tools.client import GameClient, ServerClosed

Start = Callable[..., ServerProcess]


async def play(url: str, count: int, ticks: int, inputs: int) -> list[GameClient]:
    clients = [GameClient(url, f"p{i}") for i in range(count)]
    for c in clients:
        await c.connect()
    start = clients[0].tick or 0
    while (clients[0].tick or 0) < start + ticks:
        await clients[0].wait_update()
        for i, c in enumerate(clients):
            values = [0] * inputs
            values[0] = ((c.tick or 0) // 20 + i) % 3 - 1
            if inputs > 1:
                values[1] = ((c.tick or 0) // 30 + 2 * i) % 3 - 1
            await c.send_input(values)
    await asyncio.sleep(0.1)
    for c in clients:
        await c.close()
    return clients


@pytest.mark.parametrize("ruleset", ["drift", "arena"])
def test_several_clients_play_hundreds_of_ticks_and_every_mirror_matches_the_server(start_server: Start, ruleset: str) -> None:
    server = start_server("--ruleset", ruleset, "--npcs", "300")
    clients = asyncio.run(play(server.url, 5, 240, 4 if ruleset == "arena" else 2))
    for c in clients:
        s = c.stats
        assert s.desyncs == 0 and s.errors == [] and s.missing_base == 0
        # 240 ticks on a quiet machine; a busy one skips ticks and sends late acks a keyframe (bounded bases).
        assert s.updates >= 240 * 2 // 3
        assert 1 <= s.keyframes <= s.updates // 4  # one on join, deltas after (all but a few on a busy machine)
        assert c.acked_input == c.seq or c.acked_input >= c.seq - 2


def test_a_malformed_frame_closes_only_its_own_connection(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "100")

    async def main() -> tuple[Any, int | None, int, int]:
        good = GameClient(server.url, "good")
        await good.connect()
        async with connect(server.url) as bad:
            await bad.send(encode_client(Hello(1, "bad")))
            await bad.send(b"\xc1\xc1\xc1")
            frames = await messages_until_closed(bad)
            code = bad.close_code
        before = good.tick or 0
        await good.wait_tick(before + 15)
        after = good.tick or 0
        await good.close()
        return frames, code, before, after

    frames, code, before, after = asyncio.run(main())
    assert code == 1002
    errors = [f for f in frames if isinstance(f, Error)]
    assert errors and errors[-1].code == 1002 and "msgpack" in errors[-1].reason
    assert after >= before + 15
    assert server.get_json("/healthz")["status"] == "ok"


async def close_code_for(url: str, *frames: bytes | str | list[bytes], text: bool | None = None) -> tuple[int | None, list[Any]]:
    """Send ``frames`` (a list: one message in several frames; ``text=True``: bytes as text frames),
    then read until closed: the code and the messages."""
    async with connect(url, max_size=None) as ws:
        for f in frames:
            await ws.send(f, text=text)
        got = await messages_until_closed(ws)
        return ws.close_code, got


@pytest.mark.parametrize(
    "frames, code",
    [
        (["hello as text"], 1003),
        ([b"\x00" * 2000], 1009),
        ([encode_client(Hello(1, "x")), encode_client(Input(1, (5, 0)))], 1007),
        ([msgpack.packb({"t": "hello", "v": 99, "name": "x"})], 1002),
        ([encode_client(Input(1, (0, 0)))], 1002),
        ([encode_client(Hello(1, "x")), [encode_client(Ping(1))[:3], encode_client(Ping(1))[3:]]], 1008),
    ],
)
def test_bad_frames_get_an_error_message_and_the_matching_close_code(start_server: Start, frames: list[Any], code: int) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "10")
    got_code, messages = asyncio.run(close_code_for(server.url, *frames))
    assert got_code == code
    assert isinstance(messages[-1], Error) and messages[-1].code == code


def test_a_frame_over_the_websocket_limit_gets_an_error_message_and_1009(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "10")
    got_code, messages = asyncio.run(close_code_for(server.url, b"\x00" * 100_000))
    assert got_code == 1009
    assert isinstance(messages[-1], Error) and messages[-1].code == 1009
    assert "100000" in messages[-1].reason


def test_invalid_utf8_in_a_text_frame_gets_an_error_message_and_1007(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "10")
    # A text frame whose payload is not UTF-8: the websockets library itself
    # fails the connection; the server still says why first.
    got_code, messages = asyncio.run(close_code_for(server.url, b"\xff\xfe", text=True))
    assert got_code == 1007
    assert isinstance(messages[-1], Error) and messages[-1].code == 1007


def test_a_connection_without_hello_is_closed_with_1008(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "10", "--hello-timeout", "0.3")
    got_code, messages = asyncio.run(close_code_for(server.url))
    assert got_code == 1008 and "no hello" in messages[-1].reason


def test_a_full_match_answers_1013(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "10", "--max-players", "1")

    async def main() -> int | None:
        first = GameClient(server.url, "first")
        await first.connect()
        assert first.welcome is not None
        # That match by its id (/ws itself goes on to another match of the default room: test_rooms.py).
        second = GameClient(f"{server.url}/{first.welcome.match}", "second")
        with pytest.raises(ServerClosed) as info:
            await second.connect()
        await first.close()
        assert "full" in info.value.reason
        return info.value.code

    assert asyncio.run(main()) == 1013


def test_a_player_reconnects_with_its_token_to_the_same_entity(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "10")

    async def main() -> tuple[Any, Any]:
        a = GameClient(server.url, "ann")
        w1 = await a.connect()
        await a.send_input([1, 0])  # a player who played is held; one who never did is released at once
        await a.wait_tick((a.tick or 0) + 3)
        await a.close(1001)  # going away, not leaving: the player is held
        b = GameClient(server.url, "ann", token=w1.token)
        w2 = await b.connect()
        await b.wait_tick((b.tick or 0) + 3)
        await b.close()
        assert b.stats.desyncs == 0
        return w1, w2

    w1, w2 = asyncio.run(main())
    assert w2.resumed and w2.entity == w1.entity and w2.player == w1.player


async def steer(server: ServerProcess, url: str, name: str, updates: int) -> tuple[GameClient, dict[str, int]]:
    """A player that answers every batch of updates (``GameClient.answer``), changing direction now and
    then, until its prediction was checked against ``updates`` updates; and its input queue's counts."""
    c = GameClient(url, name)
    await c.connect()
    seen = c.stats.updates
    while c.stats.predicted < updates and not c.closed:
        now_seen = await c.wait_updates(seen)
        new, seen = now_seen - seen, now_seen
        tick = c.tick or 0
        await c.answer([(tick // 20) % 3 - 1, (tick // 33) % 3 - 1], new)
    stats = attrs.evolve(c.stats)  # as it stands: the ticks the server repeats from now on are not its business
    await asyncio.sleep(0.3)  # every input sent applied
    queue = await asyncio.to_thread(lambda: next(p["inputs"] for p in server.get_json("/api/match")["players"]
                                                 if p["name"] == name))
    await c.close()
    c.stats = stats
    return c, queue


def test_the_python_clients_prediction_is_exact_on_loopback_and_through_100_ms_of_jitter(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "50")

    async def main() -> list[tuple[GameClient, dict[str, int]]]:
        direct = await steer(server, server.url, "direct", 300)
        proxy = await DelayProxy(server.port, 0.1, 0.03).start()  # 100 ms +- 30 ms each way
        try:
            jittered = await steer(server, f"ws://127.0.0.1:{proxy.port}/ws", "jittered", 300)
        finally:
            await proxy.close()
        return [direct, jittered]

    runs = asyncio.run(main())
    for c, queue in runs:
        s = c.stats
        assert s.desyncs == 0 and s.errors == [] and s.predicted >= 300
        # Strict: every input sent is applied once, in order; a starved tick (our input late, a busy machine)
        # stands the player still, which the prediction does not feel. So a correction can only be an input
        # the server dropped, and with none dropped (the rule on a quiet machine) there is none.
        assert s.corrections <= queue["dropped"], (s, queue)
        # The sends the client skipped because the server said its queue held more of ours than it needed
        # (update.surplus): each a gap in seq, counted by the server once the next input came (none dropped).
        assert queue["skipped"] <= s.skipped and queue["stale"] == 0, (s, queue)
        # What can still drop an input: a queue the client did not skip down in time (a trim), or more than the
        # queue's 8 arriving at once (the server or the path held our inputs for over a quarter second, which
        # only a busy machine does). The margin is that machine's; the newest-input-wins rule this replaced
        # corrected 65% of the ticks through the proxy (4-6% direct).
        assert queue["dropped"] <= 0.03 * s.predicted, (s, queue)


def names_on(server: ServerProcess) -> dict[str, bool]:
    """The match's players on the server: name -> online."""
    return {p["name"]: p["online"] for p in server.get_json("/api/match")["players"]}


def test_leave_and_a_close_with_1000_remove_the_player_at_once_and_only_a_dropped_connection_holds_it(
        start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "10", "--hold", "30")

    async def main() -> tuple[dict[str, bool], GameClient, GameClient, int]:
        proxy = await DelayProxy(server.port, 0.0).start()
        leaver, closer = GameClient(server.url, "leaver"), GameClient(server.url, "closer")
        dropped = GameClient(f"ws://127.0.0.1:{proxy.port}/ws", "dropped")
        watcher = GameClient(server.url, "watcher")
        for c in (leaver, closer, dropped, watcher):
            await c.connect()
        await dropped.send_input([1, 0])  # a player who played: held when dropped (one who never did is not)
        await watcher.wait_tick((watcher.tick or 0) + 3)
        start = watcher.tick or 0
        await leaver.leave()
        await closer.close()  # code 1000
        proxy.cut()  # no close frame at all
        await watcher.wait_tick((watcher.tick or 0) + 5)
        gone_after = (watcher.tick or 0) - start
        names = names_on(server)
        await watcher.close()
        await proxy.close()
        return names, leaver, watcher, gone_after

    names, leaver, watcher, ticks = asyncio.run(main())
    assert leaver.close_code == 1000 and leaver.close_reason == "left the match"
    # Within a few ticks, not the 30 s hold: the leavers are gone, the dropped player is held offline.
    assert names == {"dropped": False, "watcher": True}, (names, ticks)
    roster = watcher.roster
    assert roster is not None and {e.name for e in roster.players} == {"dropped", "watcher"}


def test_a_client_joining_mid_ramp_ends_with_the_roster_of_a_fresh_joiner(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "50")

    async def main() -> tuple[list[GameClient], dict[str, int]]:
        roster_bytes: dict[str, int] = {}

        def client(name: str, **kw: Any) -> GameClient:
            def count(frame: bytes) -> None:
                if msgpack.unpackb(frame)["t"] in ("roster", "roster_delta"):
                    roster_bytes[name] = roster_bytes.get(name, 0) + len(frame)
            return GameClient(server.url, name, decode=False, on_frame=count, **kw)

        early, old = client("early"), client("old", roster_deltas=False)  # old: whole rosters, as before deltas
        await early.connect()
        await old.connect()
        ramp: list[GameClient] = []
        mid: GameClient | None = None
        for wave in range(8):  # 5 joins a wave, each wave in one or two ticks; a leave every other wave
            joining = [client(f"w{wave}j{i}") for i in range(5)]
            if wave == 4:
                mid = client("mid")
                joining.append(mid)
            await asyncio.gather(*(c.connect() for c in joining))
            ramp += joining
            if wave % 2:
                await ramp.pop(0).leave()
        fresh = client("fresh")
        await fresh.connect()
        everyone = [early, old, mid, fresh] + ramp
        async with asyncio.timeout(5):  # a player enters the roster at its first ack: fresh's own entry follows
            while fresh.roster is None or len(fresh.roster.players) < 2 + 8 * 5 + 1 - 4 + 1:
                await fresh.wait_update()
        want = fresh.rosters.rev
        for c in everyone:
            assert c is not None
            async with asyncio.timeout(5):
                while c.rosters.rev != want:
                    await c.wait_update()
        await asyncio.gather(*(c.close() for c in everyone if c is not None))
        return [c for c in everyone if c is not None], roster_bytes

    clients, roster_bytes = asyncio.run(main())
    early, old, mid, fresh = clients[:4]
    assert fresh.roster is not None and len(fresh.roster.players) == 2 + 8 * 5 + 1 - 4 + 1
    for c in clients:
        assert c.roster == fresh.roster, c.name
        assert c.rosters.gaps == 0 and c.stats.errors == []
    # The old client got the whole roster at each change, the others the changes: a fraction of its bytes.
    assert roster_bytes["early"] < roster_bytes["old"] / 2, roster_bytes


def test_http_serves_the_page_health_and_nothing_outside_client_web(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "10")
    with urllib.request.urlopen(server.http + "/", timeout=5) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/html")
    health = server.get_json("/healthz")
    assert health["status"] == "ok" and health["ruleset"] == "drift" and health["tick"] > 0
    for path in ("/nope.js", "/../pyproject.toml", "/%2e%2e/pyproject.toml"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(server.http + path, timeout=5)
        assert info.value.code == 404
    with urllib.request.urlopen(server.http + "/metrics", timeout=5) as resp:
        assert b"tickserver_ticks_total" in resp.read()


def test_sigint_closes_clients_with_1001_and_exits_cleanly(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "10")

    async def main() -> int | None:
        c = GameClient(server.url, "ann")
        await c.connect()
        await c.wait_tick((c.tick or 0) + 2)
        server.proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(c._reader, 10) if c._reader else None
        return c.close_code

    assert asyncio.run(main()) == 1001
    assert server.proc.wait(10) == 0
    assert "Traceback" not in "".join(server.log)


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_bots_cli_plays_and_reports_json_with_no_desyncs_at_30_updates_per_second(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "2000")
    done = run_cli("-m", "tools.bots", "--url", server.url, "--count", "10", "--duration", "4", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("bots", "connected", "duration_s", "ticks_received", "updates_per_s", "bytes_per_s",
                "bytes_per_update", "rtt_ms_p50", "rtt_ms_p99", "desyncs", "errors"):
        assert key in summary
    assert summary["bots"] == summary["connected"] == 10
    assert summary["desyncs"] == 0 and summary["errors"] == 0
    assert 20 <= summary["updates_per_s"] <= 33  # 30 on a quiet machine; margin for a busy one
    assert summary["rtt_ms_p50"] is not None and summary["bytes_per_update"] > 0


def test_bots_cli_against_no_server_says_so_without_a_traceback() -> None:
    done = run_cli("-m", "tools.bots", "--url", "ws://127.0.0.1:9/ws", "--count", "1", "--duration", "1")
    assert done.returncode == 1
    assert "no bot could join ws://127.0.0.1:9/ws: nothing listens" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["--ruleset", "chess"], "unknown ruleset 'chess'"),
        (["--tick-rate", "0"], "must be positive"),
        (["--npcs", "-5"], "npcs=-5 is outside"),
        (["--option", "gravity=3", "--ruleset", "drift"], "unknown option"),
        (["--option", "oops"], "expected NAME=INT"),
        (["--port", "70000"], "port must be in 0..65535"),
        (["--host", "203.0.113.77"], "cannot listen"),
    ],
)
def test_server_rejects_bad_flags_with_one_clear_line_and_exit_code_2(args: list[str], words: str) -> None:
    done = run_cli("-m", "server", "--port", "0", *args, timeout=30)
    assert done.returncode == 2
    assert words in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("module", ["server", "tools.bots"])
def test_help_documents_every_flag(module: str) -> None:
    done = run_cli("-m", module, "--help")
    assert done.returncode == 0
    flags = ["--host", "--port", "--ruleset", "--tick-rate", "--seed", "--npcs", "--max-players"] if module == "server" else \
        ["--url", "--count", "--duration", "--json", "--seed", "--verify"]
    for flag in flags:
        assert flag in done.stdout


def test_a_client_that_stops_reading_is_dropped_without_slowing_the_others(start_server: Start) -> None:
    import base64
    import os
    import socket

    server = start_server("--ruleset", "drift", "--npcs", "20000", "--max-buffer", "65536", "--slow-timeout", "1")

    async def main() -> tuple[int, int]:
        good = GameClient(server.url, "good")
        await good.connect()
        # A raw client with a tiny receive buffer that says hello and then never reads.
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        payload = encode_client(Hello(1, "slow"))
        sock.sendall(bytes([0x82, 0x80 | len(payload)]) + b"\x00\x00\x00\x00" + payload)
        start = good.tick or 0
        dropped = 0
        for _ in range(150):  # at most ~15 s
            await asyncio.sleep(0.1)
            metrics = urllib.request.urlopen(server.http + "/metrics", timeout=5).read().decode()
            # Closed for its full buffer, or (a client that never acks gets no more than --max-unacked
            # bytes ahead of its acks) for acknowledging nothing for --ack-timeout: dropped either way.
            if "tickserver_slow_closed_total 1" in metrics or "tickserver_ack_closed_total 1" in metrics:
                dropped = 1
                break
        ticks = (good.tick or 0) - start
        sock.close()
        await good.close()
        assert good.stats.desyncs == 0
        return dropped, ticks

    dropped, ticks = asyncio.run(main())
    assert dropped == 1
    health = server.get_json("/healthz")
    assert ticks > 20
    assert health["ticks_dropped"] <= max(3, ticks // 10)  # 0 on a quiet machine: the reader costs the tick nothing


def test_a_client_whose_mirror_goes_wrong_counts_one_desync_asks_once_and_recovers(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "200")

    joining_keyframes: list[int] = []

    async def main() -> GameClient:
        # 100 ms each way: three updates are in flight when the client asks for a keyframe.
        proxy = await DelayProxy(server.port, 0.1).start()
        c = GameClient(f"ws://127.0.0.1:{proxy.port}/ws", "victim")
        await c.connect()
        await c.wait_tick((c.tick or 0) + 30)
        joining_keyframes.append(c.stats.keyframes)  # keyframes until the server heard an ack: ~ RTT x 30
        # Corrupt every state the client holds, as a decoder bug would: the next delta
        # cannot match its checksum, and the deltas already in flight lose their base.
        for tick, snap in list(c.states.items()):
            cols = list(snap.cols)
            cols[1] = cols[1] + 1  # x of every entity, off by one unit
            c.states[tick] = Snapshot.of(tick, snap.ids, cols)
        await c.wait_tick((c.tick or 0) + 60)
        await c.close()
        await proxy.close()
        return c

    c = asyncio.run(main())
    s = c.stats
    assert s.desyncs == 1 and s.resyncs == 1  # one mismatch, one request: no keyframe storm
    assert s.missing_base >= 3  # the deltas in flight, dropped quietly
    # The keyframes asked for: again about one round trip's worth, not one per dropped delta.
    assert 1 <= s.keyframes - joining_keyframes[0] <= joining_keyframes[0] + 2
    assert s.errors == []
    assert c.state is not None and c.state.checksum == checksum(c.state.ids, c.state.cols)


def test_the_server_speaks_wss_and_https_with_a_certificate(start_server: Start, tmp_path: Any) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    server = start_server("--ruleset", "drift", "--npcs", "50", "--tls-cert", str(cert_file), "--tls-key", str(key_file))
    assert "listening on wss://" in "".join(server.log)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)

    async def main() -> GameClient:
        c = GameClient(f"wss://127.0.0.1:{server.port}/ws", "secure", ssl_context=ctx)
        await c.connect()
        await c.wait_tick((c.tick or 0) + 10)
        await c.close()
        return c

    c = asyncio.run(main())
    assert c.stats.updates >= 10 and c.stats.desyncs == 0
    with urllib.request.urlopen(f"https://127.0.0.1:{server.port}/healthz", context=ctx, timeout=5) as resp:
        assert json.loads(resp.read())["status"] == "ok"


def test_a_missing_certificate_file_is_one_clear_line(tmp_path: Any) -> None:
    done = run_cli("-m", "server", "--port", "0", "--tls-cert", str(tmp_path / "nope.pem"), timeout=30)
    assert done.returncode == 2 and "nope.pem: no such file" in done.stderr and "Traceback" not in done.stderr

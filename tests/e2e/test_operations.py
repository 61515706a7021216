"""What an operator reads from the real server: its log on stderr, its /metrics, and the Grafana dashboard on them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from server.protocol.codec import encode_client
from server.protocol.messages import Hello
from tests.conftest import ROOT, ServerProcess
from tests.replay.helpers import record_match
from tools.client import GameClient

Start = Callable[..., ServerProcess]

DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"


def json_lines(server: ServerProcess) -> list[dict[str, Any]]:
    """Every line the server logged, each parsed: a line that is not one JSON object fails the test."""
    return [json.loads(line) for line in server.log]


def events(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [x for x in lines if x.get("event") == name]


async def play_then_leave(url: str, name: str, updates: int = 10) -> int:
    client = GameClient(url, name)
    welcome = await client.connect()
    for _ in range(updates):
        await client.wait_update()
    await client.close()
    return welcome.player


async def say_hello_then_text(url: str) -> None:
    """Join, then send a text frame: refused (1003) after the hello."""
    async with connect(url) as ws:
        await ws.send(encode_client(Hello(1, "texter")))
        await ws.recv()  # the welcome
        await ws.send("a text frame")
        try:
            while True:
                await ws.recv()
        except Exception:
            pass


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_json_log_has_a_line_per_match_start_join_leave_kick_and_match_end_with_their_fields(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "10", "--log-format", "json", "--hold", "0.5")
    player = asyncio.run(play_then_leave(server.url, "ann"))
    asyncio.run(say_hello_then_text(server.url))
    wait_for(lambda: len(events(json_lines(server), "gone")) >= 1 and len(events(json_lines(server), "leave")) >= 2)
    assert server.stop() == 0
    lines = json_lines(server)
    assert all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    (start,) = events(lines, "match_start")
    match = start["match"]
    assert start["ruleset"] == "drift"
    (listening,) = events(lines, "listening")
    assert listening["port"] == server.port
    joins = events(lines, "join")
    assert [(j["match"], j["player_name"]) for j in joins] == [(match, "ann"), (match, "texter")]
    assert joins[0]["player"] == player and joins[0]["peer"].startswith("127.0.0.1:")
    leaves = {x["player"]: x for x in events(lines, "leave")}
    assert (leaves[player]["code"], leaves[player]["by"]) == (1000, "client")
    (kick,) = events(lines, "kick")
    assert (kick["code"], kick["match"], kick["player"]) == (1003, match, joins[1]["player"])
    assert "text" in kick["reason"] and "1003" in kick["message"]
    assert leaves[kick["player"]]["by"] == "server"
    assert any(g["player"] == player for g in events(lines, "gone"))
    assert all(g["player"] != kick["player"] for g in events(lines, "gone"))  # it never answered: its leave says all
    (end,) = events(lines, "match_end")
    assert end["match"] == match and "shutting down" in end["reason"]


async def refused_at_once(url: str, count: int) -> None:
    """``count`` connections at once, each sending a text frame for its first message (1003, before any hello)."""

    async def one() -> None:
        async with connect(url) as ws:
            await ws.send("not a hello")
            try:
                while True:
                    await ws.recv()
            except Exception:
                pass

    await asyncio.gather(*(one() for _ in range(count)))


def test_a_flood_of_kicks_takes_a_few_lines_and_says_how_many_more_were_held_back(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "10")
    asyncio.run(refused_at_once(server.url, 60))
    wait_for(lambda: server.get_json("/healthz") is not None)
    time.sleep(0.3)
    kicks = [line for line in server.log if "kicked" in line]
    assert 20 <= len(kicks) < 60, kicks  # a burst of 20, then 5 a second: not one line each
    assert any("held back" in line for line in kicks)
    metrics = urllib.request.urlopen(server.http + "/metrics", timeout=5).read().decode()
    assert 'tickserver_disconnects_total{by="server",code="1003"} 60.0' in metrics  # counted, every one


def served_names(text: str) -> set[str]:
    """The sample names an exposition can have: each ``# TYPE``'s, a histogram's with its suffixes."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names


def test_every_metric_the_grafana_dashboard_queries_is_served(start_server: Start) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "10")
    asyncio.run(play_then_leave(server.url, "ann", updates=5))
    text = urllib.request.urlopen(server.http + "/metrics", timeout=5).read().decode()
    served = served_names(text)
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert len(dashboard["panels"]) >= 10 and all(p["targets"] for p in dashboard["panels"])
    queried = {name for e in exprs for name in re.findall(r"\b((?:tickserver|process)_[a-z_]+)\b", e)}
    assert queried and queried <= served, sorted(queried - served)
    # The dashboard covers what the issue asks for.
    for name in ("tickserver_tick_duration_seconds_bucket", "tickserver_tick_phase_duration_seconds_bucket",
                 "tickserver_ticks_dropped_total", "tickserver_players", "tickserver_open_connections",
                 "tickserver_received_bytes_total", "tickserver_sent_messages_total", "tickserver_disconnects_total",
                 "tickserver_resyncs_total", "tickserver_keyframes_sent_total", "tickserver_replay_written_bytes_total",
                 "tickserver_connections_refused_total", "tickserver_ack_closed_total"):
        assert name in queried, name


def test_the_replay_player_logs_like_the_server_not_every_http_request(tmp_path: Path) -> None:
    record_match(tmp_path, "drift", ticks=60, players=1)
    proc = subprocess.Popen([sys.executable, "-m", "tools.replay", "play", str(tmp_path), "--port", "0", "--log-format",
                             "json"], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        m = re.search(r"(http://127\.0\.0\.1:\d+)/", proc.stdout.readline())
        assert m
        for path in ("/", "/replay.html", "/api/replays", "/healthz", "/metrics") * 4:
            urllib.request.urlopen(m.group(1) + path, timeout=5).read()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    lines = [json.loads(line) for line in err.splitlines()]
    assert [x.get("event") for x in lines] == ["limits", "listening"], lines  # and not a line per request

"""``tools.bots`` says in one line what is wrong with where it was sent, and what to use instead; never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from tests.conftest import ROOT, ServerProcess
from tools.bots import join_error


def run_bots(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.bots", "--count", "2", "--duration", "1", *args], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60,
                          check=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_url_without_a_websocket_path_is_a_usage_error_naming_the_one_to_use() -> None:
    res = run_bots("--url", "ws://127.0.0.1:8765/")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.splitlines() == ["python -m tools.bots: error: --url ws://127.0.0.1:8765/ names no match: use "
                                       "ws://127.0.0.1:8765/ws (the default match) or ws://127.0.0.1:8765/ws/MATCH "
                                       "(one of GET http://127.0.0.1:8765/api/matches)"]


def test_an_unknown_match_gets_one_line_naming_the_servers_matches(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server("--ruleset", "drift", "--npcs", "10")
    (match,) = [m["match"] for m in server.get_json("/api/matches")["matches"]]
    res = run_bots("--url", f"ws://127.0.0.1:{server.port}/ws/nope")
    assert res.returncode == 1 and res.stdout == "" and "Traceback" not in res.stderr
    [line] = res.stderr.splitlines()
    assert "no match 'nope' here" in line and f"its matches: {match}" in line
    assert f"use ws://127.0.0.1:{server.port}/ws" in line


def test_a_dead_port_gets_one_line_and_no_none() -> None:
    port = closed_port()
    res = run_bots("--url", f"ws://127.0.0.1:{port}/ws")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.splitlines() == [f"python -m tools.bots: error: no bot could join ws://127.0.0.1:{port}/ws: "
                                       f"nothing listens at 127.0.0.1:{port} (connection refused): is the server "
                                       "running there?"]
    json_run = run_bots("--url", f"ws://127.0.0.1:{port}/ws", "--json")
    assert json_run.returncode == 1 and "None" not in json_run.stderr


@pytest.mark.parametrize("status, body, words", [
    (403, b'{"error": "origin not allowed"}', "refused the WebSocket with HTTP 403: origin not allowed"),
    (503, b"busy", "refused the WebSocket with HTTP 503"),
    (200, b"<html>", "is not a WebSocket path of the server (HTTP 200); use ws://h:1/ws"),
])
def test_a_refused_upgrade_says_what_the_server_answered(status: int, body: bytes, words: str) -> None:
    exc = InvalidStatus(Response(status, "", Headers(), body))
    assert words in join_error("ws://h:1/ws/x", exc)

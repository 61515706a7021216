"""The deployment files' command lines, run here as they are (docker is not on these machines).

Each command is taken from ``Dockerfile`` or ``compose.yaml`` as written (the exec form and the
compose commands are JSON arrays), and run with loopback addresses, free ports and a temporary
folder in place of the container's.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, ServerProcess, wait_ready
from tools.localcluster import LocalRedis, free_port


def dockerfile() -> dict[str, list[str]]:
    """The last stage's instructions, continuation lines joined: keyword -> its arguments (one per keyword)."""
    text = (ROOT / "Dockerfile").read_text()
    lines = re.sub(r"\\\n\s*", " ", text).splitlines()
    stage: dict[str, list[str]] = {}
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, rest = line.strip().partition(" ")
        if keyword == "FROM":
            stage = {}
        stage[keyword] = [rest]
    return stage


def compose_services() -> dict[str, dict[str, list[str]]]:
    """Each service of ``compose.yaml`` and its one-line JSON arrays (``command``, the healthcheck's ``test``)."""
    services: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in (ROOT / "compose.yaml").read_text().splitlines():
        if m := re.fullmatch(r"  ([\w-]+):\s*", line):
            current = services.setdefault(m.group(1), {})
        elif current is not None and (m := re.fullmatch(r"\s+(command|test): (\[.*\])\s*", line)):
            current[m.group(1)] = exec_form(m.group(2))
    return services


def exec_form(text: str) -> list[str]:
    """A Dockerfile exec-form command (a JSON array)."""
    cmd = json.loads(text[text.index("["):])
    assert isinstance(cmd, list) and all(isinstance(a, str) for a in cmd)
    return cmd


def localize(cmd: list[str], subs: dict[str, str]) -> list[str]:
    """``cmd`` with ``python`` this interpreter and each substring of ``subs`` replaced (addresses, ports, paths)."""
    out = []
    for arg in cmd:
        for old, new in subs.items():
            arg = arg.replace(old, new)
        out.append(sys.executable if arg == "python" else arg)
    return out


def server_args(cmd: list[str]) -> list[str]:
    assert cmd[:3] == [sys.executable, "-m", "server"], cmd
    return cmd[3:]


def test_the_image_runs_as_a_user_exposes_its_port_and_stops_on_sigterm() -> None:
    df = dockerfile()
    assert df["FROM"] == ["python:3.11-slim"]
    assert df["USER"] == ["tickserver"]
    assert df["STOPSIGNAL"] == ["SIGTERM"]
    cmd = exec_form(df["CMD"][0])
    assert cmd[:3] == ["python", "-m", "server"] and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert df["EXPOSE"] == [cmd[cmd.index("--port") + 1]]
    assert "pip install -e ." in df["RUN"][0] and "[dev]" not in df["RUN"][0]


def test_the_images_command_serves_passes_its_healthcheck_and_stops_cleanly(tmp_path: Path) -> None:
    df = dockerfile()
    exposed = df["EXPOSE"][0]
    server = ServerProcess(server_args(localize(exec_form(df["CMD"][0]),
                                                {"0.0.0.0": "127.0.0.1", exposed: "0", "/app/replays": str(tmp_path)})))
    try:
        health = localize(exec_form(df["HEALTHCHECK"][0]), {exposed: str(server.port)})
        assert "/healthz" in " ".join(health)
        assert run(health).returncode == 0
        assert server.stop(signal.SIGTERM) == 0
        assert run(health).returncode != 0  # and a stopped server fails it
    finally:
        server.stop()
    assert [p.suffix for p in tmp_path.iterdir()] == [".replay"]


def run(cmd: list[str], timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_the_compose_files_redis_and_two_nodes_share_their_matches(tmp_path: Path) -> None:
    services = compose_services()
    assert set(services) == {"redis", "node1", "node2"}
    with LocalRedis(services["redis"]["command"]) as redis:
        ping = services["redis"]["test"]
        assert ping[0] == "CMD"
        assert run([ping[1], "-p", str(redis.port), *ping[2:]]).stdout.strip() == "PONG"
        ports = {"node1": free_port(), "node2": free_port()}
        subs = {"0.0.0.0": "127.0.0.1", "redis://redis:6379": redis.url, "/app/replays": str(tmp_path),
                "localhost:8001": f"127.0.0.1:{ports['node1']}", "localhost:8002": f"127.0.0.1:{ports['node2']}"}
        nodes = {}
        try:
            for name, port in ports.items():
                cmd = localize(services[name]["command"], {**subs, "8765": str(port)})
                nodes[name] = ServerProcess(server_args(cmd))
                assert nodes[name].port == port
            for node in nodes.values():
                wait_ready(node.port)
            urls = {f"ws://127.0.0.1:{port}" for port in ports.values()}
            listed = nodes["node1"].get_json("/api/matches")["matches"]
            assert {m["url"].rsplit("/ws/", 1)[0] for m in listed} == urls  # both nodes' default matches
        finally:
            for node in nodes.values():
                node.stop()

"""``python -m server --workers N``: the real supervisor and its real worker processes on loopback ports."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT, stop_process, wait_ready
from tests.redis_server import RedisServer

READY = re.compile(r"supervisor: worker (\d+) \(pid (\d+)\) listening on ws://127\.0\.0\.1:(\d+)/ws")


class Supervised:
    """A running ``python -m server --workers ...`` (or ``module``'s) whose log is read line by line."""

    def __init__(self, *args: str, module: str = "server") -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--host", "127.0.0.1", "--no-record", *args],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def expect(self, pattern: str | re.Pattern[str], timeout: float = 30.0) -> re.Match[str]:
        """The next log line that matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"the supervisor exited ({self.proc.wait()}): {''.join(self.log[-20:])}")
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no line matching {pattern!r} within {timeout:g} s: {''.join(self.log[-20:])}")

    def ready(self, count: int) -> dict[int, tuple[int, int]]:
        """Each worker's (pid, port) once all ``count`` listen."""
        found: dict[int, tuple[int, int]] = {}
        while len(found) < count:
            m = self.expect(READY)
            found[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        return stop_process(self.proc, sig, timeout)


@pytest.fixture
def supervise() -> Iterator[Any]:
    started: list[Supervised] = []

    def start(*args: str, module: str = "server") -> Supervised:
        s = Supervised(*args, module=module)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return json.loads(resp.read())


def post_json(port: int, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_workers_listen_apart_share_the_directory_and_stop_on_sigterm(supervise: Any,
                                                                          own_redis: RedisServer) -> None:
    s = supervise("--workers", "2", "--port", "0", "--redis", own_redis.url, "--ruleset", "drift", "--npcs", "10",
                  "--max-players", "4", "--drain-deadline", "2")
    workers = s.ready(2)
    ports = {port for _, port in workers.values()}
    assert len(ports) == 2
    for port in ports:
        wait_ready(port)  # registered in Redis
    seats = [post_json(min(ports), "/api/matchmake", {"ruleset": "drift", "mode": "create"}) for _ in range(4)]
    listed = get_json(max(ports), "/api/matches")["matches"]
    urls = {f"ws://127.0.0.1:{port}" for port in ports}
    assert {m["url"].rsplit("/ws/", 1)[0] for m in listed} == urls  # both workers' matches, from either
    assert {seat["match"] for seat in seats} <= {m["match"] for m in listed}
    assert {seat["url"].rsplit("/ws/", 1)[0] for seat in seats} == urls  # new matches placed on both
    started = time.monotonic()
    assert s.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 20
    assert not any(alive(pid) for pid, _ in workers.values())


def test_a_killed_worker_is_restarted_and_sigterm_stops_everything(supervise: Any) -> None:
    s = supervise("--workers", "1", "--port", "0", "--ruleset", "drift", "--npcs", "10")
    (pid, port), = s.ready(1).values()
    assert get_json(port, "/healthz")["status"] == "ok"
    os.kill(pid, signal.SIGKILL)
    s.expect(rf"worker 1 \(pid {pid}\) exited unexpectedly \(status -9, after [\d.]+ s\); restarting in 1 s")
    (pid2, port2), = s.ready(1).values()
    assert pid2 != pid and get_json(port2, "/healthz")["status"] == "ok"
    assert s.stop(signal.SIGTERM) == 0
    assert not alive(pid2)
    assert any(f"worker 1 (pid {pid2}) stopped (exit status 0)" in line for line in s.log)


def test_a_worker_that_cannot_listen_stops_the_supervisor_with_status_2(supervise: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        s = supervise("--workers", "1", "--port", str(port), "--ruleset", "drift", "--npcs", "10")
        assert s.proc.wait(30) == 2
    assert any(f"[w1] python -m server: error: cannot listen on 127.0.0.1:{port}" in line for line in s.log)
    assert any("worker 1 refused its command line or port" in line for line in s.log)


def test_the_local_cluster_runs_its_own_redis_and_stops_it_after_the_workers(supervise: Any) -> None:
    s = supervise("--workers", "1", "--port", "0", "--ruleset", "drift", "--npcs", "10", module="tools.localcluster")
    redis = int(s.expect(r"redis-server \(pid (\d+)\) on redis://127\.0\.0\.1:\d+").group(1))
    (pid, port), = s.ready(1).values()
    wait_ready(port)  # registered in that Redis
    assert s.stop(signal.SIGINT) == 0  # Ctrl-C
    assert not alive(pid) and not alive(redis)
    assert s.log[-1].strip() == "tools.localcluster: redis-server stopped"

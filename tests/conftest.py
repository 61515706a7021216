"""Shared fixtures: the real server as a subprocess on a free loopback port."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.redis_server import own_redis, redis_prefix, redis_server  # noqa: F401  (fixtures: a real redis-server)

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


class ServerProcess:
    """A running ``python -m server`` and where to reach it.

    ``pythonpath``: folders importable by the server besides the repository (a user's package).
    """

    def __init__(self, args: list[str], timeout: float = 30.0, pythonpath: Sequence[Path] = ()) -> None:
        if "--replay-dir" not in args and "--no-record" not in args:
            args = [*args, "--no-record"]  # tests that want a replay say where
        self.args = args
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, [ROOT, *pythonpath])), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0", *args],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.log: list[str] = []
        deadline = time.monotonic() + timeout
        self.port = 0
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError(f"server exited early ({self.proc.wait()}): {''.join(self.log)}")
            self.log.append(line)
            m = re.search(r"listening on wss?://127\.0\.0\.1:(\d+)/ws", line)
            if m:
                self.port = int(m.group(1))
                break
        else:
            self.stop()
            raise RuntimeError("server did not start in time")
        # Keep draining stderr so the server never blocks on a full pipe.
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _read_rest(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)

    def wait_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The first log line matching ``pattern`` (a regex), waiting up to ``timeout`` s for it to be logged and read."""
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.log):
                m = re.search(pattern, line)
                if m:
                    return m
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not in the server log within {timeout:g} s:\n{''.join(self.log)}")
            time.sleep(0.05)

    def wait_exit(self, timeout: float) -> int:
        """The server's exit status once it exits by itself within ``timeout`` s; else an AssertionError with
        where it is stuck (SIGUSR1: every thread's stack, ``python -m server`` registers faulthandler) and its
        log's last lines (the process is left to the fixture's stop)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            raise AssertionError(f"the server did not exit within {timeout:g} s; its stacks and log's end:\n"
                                 f"{''.join(self.log[-80:])}") from None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.http + path, timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        return stop_process(self.proc, sig, timeout)


def wait_ready(port: int, timeout: float = 20.0) -> None:
    """Until ``GET /healthz?ready`` on ``127.0.0.1:port`` answers 200 (registered in its directory)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz?ready", timeout=5) as resp:
                if json.loads(resp.read()).get("ready"):
                    return
        except OSError:  # 503 (an HTTPError) or not answering yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the server on port {port} was not ready within {timeout:g} s")
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen[str], sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
    """Send ``sig``, wait ``timeout`` seconds, else SIGKILL; the exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with extra CLI args (and ``pythonpath=``); all are stopped (SIGINT) at teardown."""
    started: list[ServerProcess] = []

    def start(*args: str, pythonpath: Sequence[Path] = ()) -> ServerProcess:
        server = ServerProcess(list(args), pythonpath=pythonpath)
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS

"""``python -m tools.localcluster [SERVER ARGS]``: ``make run-cluster``, a cluster of workers on this machine.

Starts a private ``redis-server`` on a free loopback port (no persistence,
its files in a temporary folder), then ``python -m server --workers auto
--redis redis://127.0.0.1:PORT SERVER ARGS`` (the arguments come last, so
``--workers 3`` or ``--port 9000`` there win). With ``--redis URL`` among
the arguments no Redis is started: that one is used.

Ctrl-C (SIGINT) or SIGTERM goes to the supervisor once (it runs in its own
process group, as Redis does, so a terminal's Ctrl-C reaches only this
process); Redis is stopped after every worker has stopped, since a draining
worker still needs the directory. The exit status is the supervisor's.

``LocalRedis`` is the same private Redis for the benchmark (``tools.bench --workers``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from server.workers import die_with_parent

ROOT = Path(__file__).resolve().parent.parent


class LocalRedisError(Exception):
    """``redis-server`` is missing or did not start."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (another process may take it before it is used)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a Redis answers ``PING`` at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class LocalRedis:
    """A private ``redis-server`` on a free loopback port, for as long as the ``with`` block runs.

    No persistence (``--save ''``, no append-only file), its log and files in a temporary folder, its own
    session (a terminal's Ctrl-C does not reach it), SIGTERM when this process dies. ``command``: the
    ``redis-server`` command line to run (its address, port, folder and log file are added).
    """

    def __init__(self, command: Sequence[str] = ("redis-server", "--save", "", "--appendonly", "no"),
                 timeout: float = 10.0) -> None:
        self.command = list(command)
        self.timeout = timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> LocalRedis:
        path = shutil.which(self.command[0])
        if path is None:
            raise LocalRedisError(f"{self.command[0]} not found: install Redis (Debian: apt-get install redis-server) "
                                  "or give --redis URL")
        self._dir = tempfile.TemporaryDirectory(prefix="tickserver-redis-")
        log = Path(self._dir.name) / "redis.log"
        self.port = free_port()
        self.proc = subprocess.Popen(
            [path, *self.command[1:], "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self._dir.name,
             "--logfile", str(log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent())
        deadline = time.monotonic() + self.timeout
        while not ping("127.0.0.1", self.port, timeout=0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
                raise LocalRedisError(f"redis-server did not start on 127.0.0.1:{self.port}: {' | '.join(tail)}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def gives_redis(args: list[str]) -> bool:
    return any(a == "--redis" or a.startswith("--redis=") for a in args)


def run_supervisor(args: list[str]) -> int:
    """``python -m server --workers auto ARGS`` in its own process group, SIGINT/SIGTERM forwarded; its status."""
    cmd = [sys.executable, "-m", "server", "--workers", "auto", *args]
    received: list[int] = []
    proc: subprocess.Popen[bytes] | None = None

    def forward(sig: int, _frame: object) -> None:
        received.append(sig)
        if proc is not None:
            proc.send_signal(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    proc = subprocess.Popen(cmd, cwd=ROOT, process_group=0, preexec_fn=die_with_parent())
    if received:  # a signal came before it started
        proc.send_signal(received[0])
    return proc.wait()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if gives_redis(args):
        return run_supervisor(args)
    try:
        redis = LocalRedis().start()
    except LocalRedisError as exc:
        print(f"python -m tools.localcluster: error: {exc}", file=sys.stderr)
        return 1
    print(f"tools.localcluster: redis-server (pid {redis.proc.pid if redis.proc else 0}) on {redis.url}",
          file=sys.stderr, flush=True)
    try:
        return run_supervisor(["--redis", redis.url, *args])
    finally:
        redis.stop()
        print("tools.localcluster: redis-server stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

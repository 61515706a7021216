"""``python -m server --workers N``: N server processes of one command line on one machine, and their supervisor.

The supervisor owns nothing of the game: it starts N workers, each
``python -m server`` with the same arguments plus its own port and public
URL, forwards their logs (each line prefixed ``[wK]``), says where each one
listens, forwards SIGTERM and SIGINT to them and waits for them to stop
(their drain) up to a deadline, and restarts a worker that dies on its own.

**Each worker has its own port**, not one shared port with SO_REUSEPORT.
A player's WebSocket must reach the process that hosts its match: the
matchmaker hands out each node's exact URL (``<public URL>/ws/<match
id>``), and the workers share the match directory (``--redis``), not their
matches. SO_REUSEPORT would let the kernel pick the process by a hash of
the connection's addresses, blind to the match in the path, so most
players would land on a process that does not host their match. ``--port
P`` gives the workers P, P+1, ..., P+N-1 (stable, for a proxy's
configuration); ``--port 0`` lets each pick a free one, reported when it
listens. A restarted worker gets the same command line again.

**Public URLs.** With more than one worker, ``--public-url`` must name
each worker apart: ``{worker}`` (1..N, filled in by the supervisor) and
``{port}`` (the port the worker listens on, filled in by the worker) are
replaced, as in ``ws://10.0.0.5:{port}`` or ``wss://games.example.com/w{worker}``
behind a proxy that routes ``/wK/`` to worker K.

**Restarts** (``Restarts``, a pure policy on an injected clock): a worker
that exits while the supervisor is not stopping is started again after a
delay that doubles from ``initial_s`` up to ``max_s`` and falls back to
``initial_s`` once a worker has run ``stable_s``. A worker that dies before
it listens counts as a failed start; ``max_start_failures`` in a row and
the supervisor stops the others and exits 1. A worker whose very first
start fails on its command line or its port (exit status 2) stops them all
at once with status 2: retrying cannot help.

Workers run in their own process groups (a terminal's Ctrl-C reaches the
supervisor alone, which forwards it once) and get SIGTERM if the supervisor
dies (``PR_SET_PDEATHSIG`` on Linux), so none outlives it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO

from attrs import define, frozen

from server.cli import count

log = logging.getLogger("server.workers")

#: The worker's log line that says it is ready, and its WebSocket base (``ws://127.0.0.1:8765``).
LISTENING = re.compile(r"listening on (wss?://\S+)/ws ")
#: Placeholders of ``--public-url``: the supervisor fills in ``{worker}``, the worker ``{port}``.
PLACEHOLDERS = ("{worker}", "{port}")
#: The exit status of a command-line or listening error (``python -m server``): retrying cannot help.
EXIT_USAGE = 2


def worker_count(text: str) -> int:
    """An argparse type for ``--workers``: a number of processes, or ``auto`` / ``0`` for one per CPU (0)."""
    if text == "auto":
        return 0
    try:
        return count(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of workers: expected 1 or more, or auto / 0 for one per CPU") from None


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask, as ``taskset`` or a container limits it)."""
    return len(os.sched_getaffinity(0)) or 1


@frozen
class WorkerSpec:
    """What one worker is told on top of the supervisor's command line.

    Attributes:
        index: 1..N, in its log prefix ``[wK]`` and its ``{worker}``.
        port: the port it listens on (0: a free one it picks).
        public_url: its ``--public-url`` with ``{worker}`` filled in (``{port}`` is left to it), or None.
    """

    index: int
    port: int
    public_url: str | None

    def command(self, argv: Sequence[str], python: str = sys.executable) -> list[str]:
        """``python -m server`` with the supervisor's ``argv`` and this worker's own settings last (they win)."""
        own = ["--worker-index", str(self.index), "--port", str(self.port)]
        if self.public_url is not None:
            own += ["--public-url", self.public_url]
        return [python, "-m", "server", *argv, *own]


def plan(count: int, port: int, public_url: str | None) -> list[WorkerSpec]:
    """The ``count`` workers' ports and public URLs.

    Raises:
        ValueError: the ports run past 65535, or several workers would share one ``--public-url``.
    """
    if port and port + count - 1 > 65535:
        raise ValueError(f"--port {port} with --workers {count}: the last worker's port {port + count - 1} is past 65535")
    if public_url is not None and count > 1 and not any(p in public_url for p in PLACEHOLDERS):
        raise ValueError(f"--public-url {public_url} names one address for {count} workers: put {{port}} or {{worker}} "
                         "in it (ws://HOST:{port}, wss://HOST/w{worker}; see DEPLOY.md)")
    return [WorkerSpec(k, port + k - 1 if port else 0,
                       None if public_url is None else public_url.replace("{worker}", str(k)))
            for k in range(1, count + 1)]


@define
class Restarts:
    """When to start a worker again after it exited (see the module docstring); pure, seconds on any clock.

    Attributes:
        initial_s, max_s, factor: the delay before a restart: ``initial_s``, times ``factor`` after each
            exit, at most ``max_s``.
        stable_s: a worker that ran this long resets the delay.
        max_start_failures: consecutive exits before listening after which the supervisor gives up.
    """

    initial_s: float = 1.0
    max_s: float = 30.0
    factor: float = 2.0
    stable_s: float = 30.0
    max_start_failures: int = 5
    delay_s: float = -1.0
    start_failures: int = 0

    def exited(self, *, ready: bool, ran_s: float) -> float | None:
        """A worker exited after ``ran_s`` seconds, having listened (``ready``) or not: the delay before it is
        started again, or None to give up."""
        if self.delay_s < 0 or ran_s >= self.stable_s:
            self.delay_s = self.initial_s
        self.start_failures = 0 if ready else self.start_failures + 1
        if self.start_failures >= self.max_start_failures:
            return None
        delay, self.delay_s = self.delay_s, min(self.delay_s * self.factor, self.max_s)
        return delay


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to SIGTERM the child when this process dies, or None elsewhere."""
    name = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or name is None:
        return None
    prctl = ctypes.CDLL(name, use_errno=True).prctl
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class Worker:
    """One worker slot: its spec, the process running it now (if any) and its restart policy."""

    def __init__(self, spec: WorkerSpec, restarts: Restarts) -> None:
        self.spec = spec
        self.restarts = restarts
        self.proc: asyncio.subprocess.Process | None = None
        self.url: str | None = None
        self.starts = 0
        self.ready = False

    @property
    def name(self) -> str:
        return f"worker {self.spec.index}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)


class Supervisor:
    """Run ``specs``' workers with the command line ``argv`` until a signal, then stop them (module docstring).

    Args:
        argv: the supervisor's own arguments, given to every worker.
        specs: the workers (``plan``).
        stop_timeout: seconds the workers get to stop after the first SIGTERM/SIGINT before SIGKILL.
        restarts: a new restart policy per worker.
        out: where the workers' log lines go, prefixed ``[wK]``.
        python: the interpreter the workers run on.
    """

    def __init__(self, argv: Sequence[str], specs: Sequence[WorkerSpec], *, stop_timeout: float = 30.0,
                 restarts: Callable[[], Restarts] = Restarts, out: IO[str] | None = None,
                 python: str = sys.executable) -> None:
        self.argv = list(argv)
        self.workers = [Worker(spec, restarts()) for spec in specs]
        self.stop_timeout = stop_timeout
        self.out = out if out is not None else sys.stderr
        self.python = python
        self.stopping = False
        self.status = 0
        self._stop = asyncio.Event()
        self._preexec = die_with_parent()

    async def run(self) -> int:
        """Start the workers, keep them running until a signal or a failure, stop them; the exit status."""
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, self.stop, sig)
        log.info("supervisor (pid %d): starting %d worker%s of python -m server", os.getpid(), len(self.workers),
                 "s" if len(self.workers) > 1 else "")
        try:
            tasks = [asyncio.create_task(self._keep(w), name=w.name) for w in self.workers]
            await asyncio.gather(*tasks)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
        log.info("supervisor: every worker stopped%s", "" if self.status == 0 else f"; exit status {self.status}")
        return self.status

    def stop(self, sig: int = signal.SIGTERM, status: int = 0) -> None:
        """Forward ``sig`` to every worker; the first call starts the deadline after which they are killed."""
        if not self.stopping:
            self.stopping = True
            self.status = self.status or status
            log.info("supervisor: %s: stopping %d workers (up to %g s each, then SIGKILL)",
                     signal.Signals(sig).name, sum(w.running for w in self.workers), self.stop_timeout)
            self._stop.set()
        for w in self.workers:
            # One still starting has no handler yet: SIGTERM ends it quietly (SIGINT would be a traceback).
            w.signal(sig if w.ready else signal.SIGTERM)

    async def _keep(self, w: Worker) -> None:
        """Run worker ``w`` again and again until the supervisor stops."""
        while not self.stopping:
            started = time.monotonic()
            try:
                await self._start(w)
            except OSError as exc:
                log.error("supervisor: cannot start %s: %s", w.name, exc)
                self.stop(status=1)
                return
            code = await self._watch(w)
            if self.stopping:
                break
            ran = time.monotonic() - started
            if w.starts == 1 and not w.ready and code == EXIT_USAGE:
                log.error("supervisor: %s refused its command line or port (exit status 2, above): stopping",
                          w.name)
                self.stop(status=EXIT_USAGE)
                break
            delay = w.restarts.exited(ready=w.ready, ran_s=ran)
            how = f"after {ran:.1f} s" if w.ready else f"before listening, {w.restarts.start_failures} in a row"
            if delay is None:
                log.error("supervisor: %s (pid %d) keeps dying at start (exit status %s, %s): stopping",
                          w.name, _pid(w), code, how)
                self.stop(status=1)
                break
            log.warning("supervisor: %s (pid %d) exited unexpectedly (status %s, %s); restarting in %g s",
                        w.name, _pid(w), code, how, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()

    async def _start(self, w: Worker) -> None:
        w.ready, w.url = False, None
        w.starts += 1
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        w.proc = await asyncio.create_subprocess_exec(
            *w.spec.command(self.argv, self.python), stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=env, process_group=0, preexec_fn=self._preexec)

    async def _watch(self, w: Worker) -> int:
        """Forward ``w``'s log until it exits, killing it if it outlives the stop deadline; its exit status."""
        proc = w.proc
        assert proc is not None and proc.stderr is not None
        forward = asyncio.create_task(self._forward(w, proc.stderr))
        waiting = asyncio.create_task(proc.wait())
        stopping = asyncio.create_task(self._stop.wait())
        await asyncio.wait([waiting, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not waiting.done():
            try:
                async with asyncio.timeout(self.stop_timeout):
                    await asyncio.shield(waiting)
            except TimeoutError:
                log.error("supervisor: %s (pid %d) did not stop within %g s: killed", w.name, proc.pid,
                          self.stop_timeout)
                self.status = self.status or 1
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        code = await waiting
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):  # the last lines of its log
                await forward
        forward.cancel()
        if self.stopping:
            log.info("supervisor: %s (pid %d) stopped (exit status %d)", w.name, proc.pid, code)
        return code

    async def _forward(self, w: Worker, stream: asyncio.StreamReader) -> None:
        prefix = f"[w{w.spec.index}] "
        rest = b""
        while chunk := await stream.read(1 << 16):
            *lines, rest = (rest + chunk).split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                self.out.write(prefix + line + "\n")
                if not w.ready and (m := LISTENING.search(line)):
                    w.ready, w.url = True, m.group(1)
                    self._report(w)
            self.out.flush()
        if rest:
            self.out.write(prefix + rest.decode(errors="replace") + "\n")
            self.out.flush()

    def _report(self, w: Worker) -> None:
        public = w.spec.public_url
        if public is not None and w.url is not None:
            port = w.url.rsplit(":", 1)[-1]
            public = public.replace("{port}", port)
        log.info("supervisor: %s (pid %d) listening on %s/ws%s", w.name, _pid(w), w.url,
                 f", public URL {public}" if public else "")


def _pid(w: Worker) -> int:
    return w.proc.pid if w.proc is not None else 0


def supervise(argv: Sequence[str], count: int, port: int, public_url: str | None, stop_timeout: float) -> int:
    """Run ``count`` workers (0: one per CPU) of ``argv`` until SIGINT or SIGTERM; the exit status.

    Raises:
        ValueError: the ports or public URLs cannot be given out (``plan``).
    """
    specs = plan(count or cpu_count(), port, public_url)
    return asyncio.run(Supervisor(argv, specs, stop_timeout=stop_timeout).run())

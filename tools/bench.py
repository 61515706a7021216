"""``python -m tools.bench``: the standard benchmark of WORKLOAD.md.

Starts the real server (``python -m server --ruleset drift``) as a
subprocess, pinned to one CPU with ``--pin`` and the load generator
(``tools.loadgen``) to another, connects P players (all but ``--verify`` of
them lean), warms up, then measures for ``--duration`` seconds between two
marks: the clients' counters, the server's CPU time (``/proc/PID/stat``),
its tick and skipped ticks (``/healthz``) and counters (``/metrics``). Tick
durations are the window's: the difference of /metrics' histograms at both
marks (``tickserver_tick_duration_seconds`` and its phases): the mean exact,
the p99 interpolated within its bucket as Prometheus' ``histogram_quantile``
does (buckets from 50 µs, ``server.metrics.TICK_BUCKETS``). With
``--ceiling`` the same clients then run against ``tools.ceiling`` with frames
of the measured mean update size, and the server's CPU per client per tick
is given as a ratio of the ceiling's.

``--variant interest`` (WORKLOAD.md's, and issue 13's): the match filters
views (``--option view=R``, ``--view``, default 600 units) and the arena
grows with E so that the density stays WORKLOAD's (2000 NPCs on 4000 x 4000:
a side of ``4000 * sqrt(E / 2000)`` units, ``--option size``). ``--npcs``
takes several values (``10000,100000``): each is measured in turn, in the
same run, and each run is compared with the first (``vs_first``). An E
given more than once is pooled: ``by_E`` has each E's mean over its runs and
its ratio to the first E's (``10000,100000,100000,10000`` repeated, A-B-B-A:
a drift of the machine's speed over the run weighs on both E alike, and
the repeats average out what it does to a single window).

Prints a table, or with ``--json`` one JSON line (the last line; with
several E, one per run and then the comparison).

``--sweep`` is players per core instead (``tools.sweep``): P stepped up until
the server and then the ceiling fall behind, with the C load generator
(``make loadgen``), one JSON line and with ``--plot`` a PNG of the curves.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import re
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from attrs import frozen
from prometheus_client.parser import text_string_to_metric_families

from server.app import default_max_connections
from server.cli import seed_int
from tools.ceiling import min_frame_bytes
from tools.cli import Parser, number, run_or_exit
from tools.loadgen import LoadGen, LoadGenError, window_stats
from tools.progress import Bar

ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"listening on ws://127\.0\.0\.1:(?P<port>\d+)/ws")
_CLK_TCK = os.sysconf("SC_CLK_TCK")

#: Every key of the JSON line, in order (the ceiling's are None without --ceiling).
KEYS = (
    "variant", "E", "P", "arena", "view", "duration_s", "warmup_s", "pinned", "server_cpu", "loadgen_cpus", "loadgen_procs",
    "clients_connected", "clients_still_connected", "updates_per_s", "updates_per_s_min",
    "bytes_per_s", "bytes_per_update", "server_cpu_user", "server_cpu_system", "server_cpu_total",
    "server_peak_rss_mb", "tick_ms_mean", "tick_ms_p99", "sim_ms_mean", "sim_ms_p99", "encode_ms_mean",
    "encode_ms_p99", "send_ms_mean", "send_ms_p99", "ticks", "ticks_skipped", "server_us_per_client_tick",
    "frames_sent_per_s", "frames_dropped", "encodes_per_tick", "keyframes_sent", "loadgen_cpu_user",
    "loadgen_cpu_system", "loadgen_cpu_total", "loadgen_to_server_cpu", "other_cpu",
    "server_cpu_wait", "rtt_ms_p50", "rtt_ms_p99", "desyncs",
    "errors", "error_messages",
    "ceiling_frame_bytes", "ceiling_clients_still_connected", "ceiling_updates_per_s", "ceiling_updates_per_s_min",
    "ceiling_cpu_total", "ceiling_us_per_client_tick", "ceiling_ticks_skipped", "ceiling_loadgen_cpu_total",
    "ceiling_other_cpu", "ceiling_cpu_wait",
    "server_to_ceiling",
)


#: Seconds per second a measured process waited for its CPU past which the table warns.
WAIT_WARNING = 0.02


class BenchError(Exception):
    """The benchmark could not run (a process did not start, died, or did not answer)."""


# -- subprocesses ------------------------------------------------------------------


def cpu_of(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process ``pid`` so far (``/proc/PID/stat``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError as exc:
        raise BenchError(f"process {pid} is gone: {exc}") from None
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK


def run_queue_wait_of(pid: int) -> float:
    """Seconds process ``pid`` was runnable but waiting for a CPU (``/proc/PID/schedstat``), so far."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def nofile_for(connections: int) -> int:
    """The smallest open-file limit under which the server's default ``--max-connections`` admits
    ``connections`` (it keeps a burst of accepts and a reserve below the limit: ``default_max_connections``)."""
    files = connections
    while default_max_connections(files) < connections:
        files += connections - default_max_connections(files)
    return files


class Proc:
    """A server-like subprocess that logs ``count`` lines matching ``ready`` on stderr when it is ready
    (default: one ``listening on ws://127.0.0.1:PORT/ws``); ``port`` is the first one's ``port`` group,
    ``ready_lines`` all of them."""

    def __init__(self, args: list[str], name: str, cpu: int | None, timeout: float = 30.0, *, root: Path = ROOT,
                 nofile: int | tuple[int, int] | None = None, ready: re.Pattern[str] = _LISTENING,
                 count: int = 1, log_file: Path | None = None, path: tuple[Path, ...] = ()) -> None:
        """Run ``python ARGS`` in ``root`` (another checkout: its code), with at most ``nofile`` open files
        (a soft and hard limit, or a (soft, hard) pair); ``log_file``: where to keep its whole log too;
        ``path``: more directories on its ``PYTHONPATH``, after ``root``."""
        self.name = name
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, (root, *path))), PYTHONUNBUFFERED="1")
        limits = (nofile, nofile) if isinstance(nofile, int) else nofile
        limit = None if limits is None else lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limits)
        self.proc = subprocess.Popen([sys.executable, *args], cwd=root, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=limit)
        if cpu is not None:
            os.sched_setaffinity(self.proc.pid, {cpu})
        self.log: list[str] = []
        #: Lines it has logged in all, and of them the tracebacks' first lines (the last 200 are in ``log``).
        self.log_lines = 0
        self.tracebacks = 0
        self._log_file = None if log_file is None else open(log_file, "w")  # noqa: SIM115 - closed by _drain
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._want = count
        self.ready_lines: list[re.Match[str]] = []
        threading.Thread(target=self._drain, daemon=True).start()
        self.port = 0
        deadline = time.monotonic() + timeout
        while len(self.ready_lines) < count:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise BenchError(f"{name} did not start within {timeout:g} s") from None
            if line is None:
                code = self.proc.wait(5)
                raise BenchError(f"{name} exited ({code}) before listening: {self.tail()}")
            m = ready.search(line)
            if m:
                self.ready_lines.append(m)
                self.port = self.port or int(m.group("port"))
            elif time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"{name} did not start within {timeout:g} s")

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        ready = True
        for line in self.proc.stderr:
            self.log.append(line)
            del self.log[:-200]
            self.log_lines += 1
            self.tracebacks += "Traceback (most recent call last)" in line
            if self._log_file is not None:
                self._log_file.write(line)
            if ready:
                self._lines.put(line)
                ready = len(self.ready_lines) < self._want  # once it is ready nobody reads the queue: no growing
        if self._log_file is not None:
            self._log_file.close()
        self._lines.put(None)

    def tail(self) -> str:
        return " | ".join(line.strip() for line in self.log[-3:])

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def get(self, path: str, timeout: float = 5.0, port: int | None = None) -> bytes:
        """``GET path`` from its port (or ``port``: one of a supervisor's workers)."""
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} died (exit code {self.proc.returncode}): {self.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port or self.port}{path}", timeout=timeout) as resp:
                body: bytes = resp.read()
                return body
        except OSError as exc:
            raise BenchError(f"GET {path} from {self.name} failed: {exc}") from None

    def get_json(self, path: str, port: int | None = None, timeout: float = 5.0) -> dict[str, Any]:
        obj: dict[str, Any] = json.loads(self.get(path, timeout=timeout, port=port))
        return obj

    def cpu(self) -> tuple[float, float]:
        """User and system CPU seconds so far (``/proc/PID/stat``)."""
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} is gone (exit code {self.proc.returncode}): {self.tail()}")
        return cpu_of(self.pid)

    def run_queue_wait(self) -> float:
        """Seconds the process was runnable but waiting for a CPU (``/proc/PID/schedstat``), so far."""
        return run_queue_wait_of(self.pid)

    def peak_rss_mb(self) -> float | None:
        return status_mib(self.pid, "VmHWM")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT (a clean shutdown), then SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def status_mib(pid: int, key: str) -> float | None:
    """A memory figure of process ``pid`` from ``/proc/PID/status`` (``VmRSS``, ``VmHWM``...), MiB; None if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def machine_busy() -> float:
    """CPU seconds all CPUs spent busy so far (``/proc/stat``: everything but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / _CLK_TCK


#: Parsed /metrics: each sample's value by its name and its labels (sorted pairs).
Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Scrape:
    """Every sample of a Prometheus text exposition (``prometheus_client``'s parser)."""
    out: Scrape = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = float(sample.value)
    return out


def metric_sum(scrape: Scrape, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (over every ruleset, say)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in scrape.items() if n == name and want <= set(ls))


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a histogram's cumulative ``(upper bound, count)`` buckets, ascending, as
    Prometheus' ``histogram_quantile`` finds it: linear within the bucket it falls in. None: no observation."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower  # past the last finite bound: that bound is all we know
            return lower + (upper - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = upper, count
    return lower


#: The histograms of a tick and of its phases, by the bench's name for them.
PHASE_HISTOGRAMS = {"total": ("tickserver_tick_duration_seconds", {}),
                    "sim": ("tickserver_tick_phase_duration_seconds", {"phase": "simulation"}),
                    "encode": ("tickserver_tick_phase_duration_seconds", {"phase": "encoding"}),
                    "send": ("tickserver_tick_phase_duration_seconds", {"phase": "sending"})}


def histogram_window(before: Scrape, after: Scrape, phase: str) -> tuple[float, float, list[tuple[float, float]]]:
    """The ticks between two scrapes in ``phase``'s histogram (a key of ``PHASE_HISTOGRAMS``): their count, the
    sum of their durations (seconds) and the cumulative ``(upper bound, count)`` buckets, over every ruleset."""
    name, labels = PHASE_HISTOGRAMS[phase]
    count = metric_sum(after, f"{name}_count", **labels) - metric_sum(before, f"{name}_count", **labels)
    total = metric_sum(after, f"{name}_sum", **labels) - metric_sum(before, f"{name}_sum", **labels)
    earlier = _buckets(before, name, labels)
    return count, total, [(le, n - earlier.get(le, 0.0)) for le, n in sorted(_buckets(after, name, labels).items())]


def window_ms(before: Scrape, after: Scrape, phase: str) -> tuple[float | None, float | None]:
    """The mean and p99 duration of ``phase`` over the ticks between two scrapes, in milliseconds; None without
    a tick."""
    count, total, buckets = histogram_window(before, after, phase)
    if count <= 0:
        return None, None
    p99 = quantile(0.99, buckets)
    return total / count * 1000, None if p99 is None else p99 * 1000


def _buckets(scrape: Scrape, name: str, labels: dict[str, str]) -> dict[float, float]:
    """A histogram's cumulative bucket counts by upper bound, summed over the labels not in ``labels``."""
    want = set(labels.items())
    out: dict[float, float] = {}
    for (n, ls), v in scrape.items():
        if n == f"{name}_bucket" and want <= set(ls):
            le = float(dict(ls)["le"])
            out[le] = out.get(le, 0.0) + v
    return out


# -- one measured run --------------------------------------------------------------


def wait(seconds: float, bar: Bar) -> None:
    """Sleep ``seconds``, advancing ``bar`` as they pass."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        step = min(0.25, left)
        time.sleep(step)
        bar.advance(step)


def cpus_for(pin: bool) -> tuple[int | None, set[int] | None]:
    """``--pin``: the CPU for the measured server and the CPUs for its clients (None, None without it)."""
    if not pin:
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise BenchError("--pin needs at least 2 CPUs")
    return cpus[0], {cpus[1]}


@frozen
class Measured:
    """The raw figures of one measured window (CPU figures in seconds per second of wall time).

    Attributes:
        connected, still: clients that joined, and that were still open at the end.
        window: the load generator's per-client rates (``tools.loadgen.window_stats``).
        wall: the window's length, seconds.
        ticks, ticks_skipped: the measured process's ticks in the window, and those it dropped.
        cpu_user, cpu_system, cpu_total: the measured process's CPU.
        us_per_client_tick: its CPU per client per tick, microseconds (None without ticks).
        wait: seconds per second it was runnable but waiting for a CPU.
        other_cpu: everything else the machine ran (neither it nor the load generator).
        rss_mb: its peak resident memory, MiB.
        metrics0, metrics: /metrics at both marks.
        errors, desyncs, missing_base: what the clients saw go wrong.
        rtt_p50, rtt_p99: verifying clients' round trips, milliseconds.
    """

    connected: int
    still: int
    window: dict[str, float]
    wall: float
    ticks: int
    ticks_skipped: int
    cpu_user: float
    cpu_system: float
    cpu_total: float
    us_per_client_tick: float | None
    wait: float
    other_cpu: float
    rss_mb: float | None
    metrics0: Scrape
    metrics: Scrape
    errors: list[str]
    desyncs: int
    missing_base: int
    rtt_p50: float | None
    rtt_p99: float | None


def measure(proc: Proc, args: argparse.Namespace, verify: int, lg_cpus: set[int] | None) -> Measured:
    """Connect the clients to ``proc``, warm up, measure; the raw figures of the window."""
    with LoadGen(proc.url, args.players, procs=args.procs, verify=verify, seed=args.seed,
                 connect_rate=args.connect_rate, connect_timeout=30.0,
                 lifetime=args.warmup + args.duration + 600, name="bench", cpus=lg_cpus) as lg:
        connected = lg.start(timeout=60.0 + args.players / max(args.connect_rate, 1.0))
        if connected == 0:
            raise BenchError(f"no client could join {proc.url}: {lg.connect_errors[:1]}")
        bar = Bar.for_stderr(f"{proc.name}: warming up", args.warmup + args.duration, unit="s")
        wait(args.warmup, bar)
        m0 = lg.mark()
        cpu0, busy0, wait0, t0 = proc.cpu(), machine_busy(), proc.run_queue_wait(), time.monotonic()
        h0, met0 = proc.get_json("/healthz"), _metrics(proc)
        bar.update(args.warmup, f"{proc.name}: measuring")
        wait(args.duration, bar)
        bar.close()
        m1 = lg.mark()
        cpu1, busy1, wait1, t1 = proc.cpu(), machine_busy(), proc.run_queue_wait(), time.monotonic()
        h1, met1 = proc.get_json("/healthz"), _metrics(proc)
        rss = proc.peak_rss_mb()
        final = lg.stop()
        errors = lg.connect_errors + final["errors"]
    wall = t1 - t0
    ticks = int(h1["tick"]) - int(h0["tick"])
    still = sum(1 for c in m1.clients.values() if c[3])
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    client_ticks = ticks * still
    rtts = sorted(final["rtts_ms"])
    lg_cpu = window_stats(m0, m1)["loadgen_cpu_per_s"]
    return Measured(
        other_cpu=(busy1 - busy0) / wall - (user + system) / wall - lg_cpu,
        wait=(wait1 - wait0) / wall,
        connected=connected, still=still, window=window_stats(m0, m1), wall=wall, ticks=ticks,
        ticks_skipped=int(h1.get("ticks_dropped", 0)) - int(h0.get("ticks_dropped", 0)),
        cpu_user=user / wall, cpu_system=system / wall, cpu_total=(user + system) / wall,
        us_per_client_tick=(user + system) / client_ticks * 1e6 if client_ticks else None,
        rss_mb=rss, metrics0=met0, metrics=met1,
        errors=errors, desyncs=final["desyncs"], missing_base=final["missing_base"],
        rtt_p50=rtts[len(rtts) // 2] if rtts else None,
        rtt_p99=rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))] if rtts else None,
    )


def _metrics(proc: Proc) -> Scrape:
    if proc.name != "server":
        return {}
    return parse_metrics(proc.get("/metrics").decode())


def _r(v: float | None, digits: int = 3) -> float | None:
    return None if v is None else round(v, digits)


#: WORKLOAD.md's density: 2000 NPCs on 4000 x 4000 units.
DENSITY_E, DENSITY_SIDE = 2000, 4000


def arena_side(variant: str, npcs: int) -> int:
    """The arena's side for a run: WORKLOAD's 4000, or (interest) the side that keeps its density with ``npcs``."""
    if variant != "interest":
        return DENSITY_SIDE
    return max(100, round(DENSITY_SIDE * math.sqrt(npcs / DENSITY_E)))


def server_command(npcs: int, players: int, seed: int, extra: list[str]) -> list[str]:
    """The benchmark server's command line (after the interpreter): drift with ``npcs``, room for ``players``."""
    return ["-m", "server", "--host", "127.0.0.1", "--port", "0", "--ruleset", "drift", "--npcs", str(npcs),
            "--max-players", str(players + 10), "--seed", str(seed),
            "--max-per-address", "0",  # every client is 127.0.0.1 here
            *extra]


def run(args: argparse.Namespace) -> dict[str, Any]:
    server_cpu, lg_cpus = cpus_for(args.pin)
    side = arena_side(args.variant, args.npcs)
    variant = ["--option", f"size={side}", "--option", f"view={args.view}", "--option", f"view_cell={args.view_cell}"] \
        if args.variant == "interest" else []
    server_cmd = server_command(args.npcs, args.players, args.seed, [*variant, *([] if args.record else ["--no-record"]),
                                                                     *args.server_arg])
    proc = Proc(server_cmd, "server", server_cpu)
    try:
        r = measure(proc, args, args.verify, lg_cpus)
    finally:
        proc.stop()
    w, met0, met = r.window, r.metrics0, r.metrics

    def delta(name: str) -> float:
        return metric_sum(met, name) - metric_sum(met0, name)

    (tick_mean, tick_p99), (sim_mean, sim_p99), (enc_mean, enc_p99), (send_mean, send_p99) = (
        window_ms(met0, met, phase) for phase in PHASE_HISTOGRAMS)
    lg_total = w["loadgen_cpu_per_s"]
    out: dict[str, Any] = {
        "variant": args.variant, "E": args.npcs, "P": args.players, "arena": side,
        "view": args.view if args.variant == "interest" else None, "duration_s": _r(r.wall), "warmup_s": args.warmup,
        "pinned": args.pin, "server_cpu": server_cpu, "loadgen_cpus": sorted(lg_cpus) if lg_cpus else None,
        "loadgen_procs": args.procs,
        "clients_connected": r.connected, "clients_still_connected": r.still,
        "updates_per_s": _r(w["updates_per_s"], 2), "updates_per_s_min": _r(w["updates_per_s_min"], 2),
        "bytes_per_s": _r(w["bytes_per_s"], 1), "bytes_per_update": _r(w["bytes_per_update"], 1),
        "server_cpu_user": _r(r.cpu_user), "server_cpu_system": _r(r.cpu_system),
        "server_cpu_total": _r(r.cpu_total), "server_peak_rss_mb": _r(r.rss_mb, 1),
        "tick_ms_mean": _r(tick_mean), "tick_ms_p99": _r(tick_p99), "sim_ms_mean": _r(sim_mean), "sim_ms_p99": _r(sim_p99),
        "encode_ms_mean": _r(enc_mean), "encode_ms_p99": _r(enc_p99), "send_ms_mean": _r(send_mean),
        "send_ms_p99": _r(send_p99),
        "ticks": r.ticks, "ticks_skipped": r.ticks_skipped, "server_us_per_client_tick": _r(r.us_per_client_tick, 2),
        "frames_sent_per_s": _r(delta("tickserver_updates_sent_total") / r.wall, 1),
        "frames_dropped": int(delta("tickserver_frames_dropped_total")),
        "encodes_per_tick": _r(delta("tickserver_encodes_total") / r.ticks, 2) if r.ticks else None,
        "keyframes_sent": int(delta("tickserver_keyframes_sent_total")),
        "loadgen_cpu_user": _r(w["loadgen_cpu_user_s"] / w["window_s"]) if w["window_s"] else None,
        "loadgen_cpu_system": _r(w["loadgen_cpu_system_s"] / w["window_s"]) if w["window_s"] else None,
        "loadgen_cpu_total": _r(lg_total), "loadgen_to_server_cpu": _r(lg_total / r.cpu_total, 2) if r.cpu_total else None,
        "other_cpu": _r(r.other_cpu), "server_cpu_wait": _r(r.wait),
        "rtt_ms_p50": _r(r.rtt_p50), "rtt_ms_p99": _r(r.rtt_p99),
        "desyncs": r.desyncs, "errors": len(r.errors), "error_messages": r.errors[:5],
    }
    out.update({k: None for k in KEYS if k.startswith("ceiling_")}, server_to_ceiling=None)
    if args.ceiling:
        frame = max(min_frame_bytes(), round(w["bytes_per_update"]))
        cproc = Proc(["-m", "tools.ceiling", "--port", "0", "--frame-bytes", str(frame)], "ceiling", server_cpu)
        try:
            c = measure(cproc, args, 0, lg_cpus)
        finally:
            cproc.stop()
        cw = c.window
        out.update({
            "ceiling_frame_bytes": frame, "ceiling_clients_still_connected": c.still,
            "ceiling_updates_per_s": _r(cw["updates_per_s"], 2), "ceiling_updates_per_s_min": _r(cw["updates_per_s_min"], 2),
            "ceiling_cpu_total": _r(c.cpu_total), "ceiling_us_per_client_tick": _r(c.us_per_client_tick, 2),
            "ceiling_ticks_skipped": c.ticks_skipped, "ceiling_loadgen_cpu_total": _r(cw["loadgen_cpu_per_s"]),
            "ceiling_other_cpu": _r(c.other_cpu), "ceiling_cpu_wait": _r(c.wait),
        })
        if c.us_per_client_tick and r.us_per_client_tick:
            out["server_to_ceiling"] = _r(r.us_per_client_tick / c.us_per_client_tick, 2)
        out["errors"] += len(c.errors)
        out["error_messages"] = (out["error_messages"] + [f"ceiling: {e}" for e in c.errors])[:5]
    return {k: out[k] for k in KEYS}


# -- output and CLI ----------------------------------------------------------------


def print_table(o: dict[str, Any]) -> None:
    def row(label: str, value: object) -> None:
        print(f"  {label:<34} {value}")

    pin = f"server on CPU {o['server_cpu']}, load generator on CPU {o['loadgen_cpus']}" if o["pinned"] else "not pinned"
    view = f", view {o['view']} units, arena {o['arena']} x {o['arena']}" if o["view"] is not None else ""
    print(f"drift/{o['variant']}: E={o['E']} P={o['P']}{view}, {o['duration_s']} s measured after {o['warmup_s']} s "
          f"warm-up ({pin})")
    row("clients connected / still", f"{o['clients_connected']} / {o['clients_still_connected']}")
    row("updates/s per client (mean, min)", f"{o['updates_per_s']}, {o['updates_per_s_min']}")
    row("bytes/s, bytes/update per client", f"{o['bytes_per_s']}, {o['bytes_per_update']}")
    row("server CPU (cores: user+sys)", f"{o['server_cpu_total']} ({o['server_cpu_user']} + {o['server_cpu_system']})")
    row("server µs CPU per client per tick", o["server_us_per_client_tick"])
    row("server peak RSS (MB)", o["server_peak_rss_mb"])
    row("tick ms mean / p99", f"{o['tick_ms_mean']} / {o['tick_ms_p99']}")
    row("  sim ms mean / p99", f"{o['sim_ms_mean']} / {o['sim_ms_p99']}")
    row("  encode ms mean / p99", f"{o['encode_ms_mean']} / {o['encode_ms_p99']}")
    row("  send ms mean / p99", f"{o['send_ms_mean']} / {o['send_ms_p99']}")
    row("ticks / skipped", f"{o['ticks']} / {o['ticks_skipped']}")
    row("frames sent/s, dropped", f"{o['frames_sent_per_s']}, {o['frames_dropped']}")
    row("encodes per tick, keyframes", f"{o['encodes_per_tick']}, {o['keyframes_sent']}")
    row("load generator CPU (cores)", f"{o['loadgen_cpu_total']} ({o['loadgen_to_server_cpu']} of the server's)")
    row("other processes' CPU (cores)", o["other_cpu"])
    row("server waiting for its CPU (s/s)", o["server_cpu_wait"])
    row("rtt ms p50 / p99", f"{o['rtt_ms_p50']} / {o['rtt_ms_p99']}")
    row("desyncs, errors", f"{o['desyncs']}, {o['errors']}")
    for e in o["error_messages"]:
        print(f"    {e}")
    if o["ceiling_frame_bytes"] is not None:
        print(f"ceiling: websockets.broadcast of {o['ceiling_frame_bytes']}-byte frames to the same clients")
        row("clients still connected", o["ceiling_clients_still_connected"])
        row("updates/s per client (mean, min)", f"{o['ceiling_updates_per_s']}, {o['ceiling_updates_per_s_min']}")
        row("ceiling CPU (cores)", o["ceiling_cpu_total"])
        row("ceiling µs CPU per client per tick", o["ceiling_us_per_client_tick"])
        row("ticks skipped", o["ceiling_ticks_skipped"])
        row("load generator CPU (cores)", o["ceiling_loadgen_cpu_total"])
        row("other processes' CPU (cores)", o["ceiling_other_cpu"])
        row("ceiling waiting for its CPU (s/s)", o["ceiling_cpu_wait"])
        row("server / ceiling (µs per client-tick)", o["server_to_ceiling"])
    waits = [v for v in (o["server_cpu_wait"], o["ceiling_cpu_wait"]) if v is not None and v > WAIT_WARNING]
    if waits:
        print(f"warning: the server waited {max(waits):.2f} s/s for its CPU (other processes on it?): "
              "the figures are not reliable")


def build_parser() -> argparse.ArgumentParser:
    can_pin = len(os.sched_getaffinity(0)) >= 2
    p = Parser(prog="python -m tools.bench", description="The standard benchmark against the real server: the drift "
               "workload defined in WORKLOAD.md (this repository), figures in BENCHMARKS.md.")
    p.add_argument("--npcs", type=_counts, default=[2000], metavar="E[,E...]",
                   help="NPCs (default 2000); several: each measured in turn, compared with the first; an E given more "
                   "than once is pooled (the mean over its runs, compared with the first E's: repeat A,B,B,A)")
    p.add_argument("--players", type=number(int, 1, "at least 1"), default=100, metavar="P", help="players (default 100)")
    p.add_argument("--duration", type=number(float, 0.5, "at least 0.5"), default=15.0, metavar="SECONDS",
                   help="measured time (default 15)")
    p.add_argument("--warmup", type=number(float, 0, "at least 0"), default=5.0, metavar="SECONDS",
                   help="time between the last join and the measurement (default 5)")
    p.add_argument("--variant", choices=["full", "interest"], default="full",
                   help="what each client receives: the whole world, or its view (default full)")
    p.add_argument("--view", type=number(int, 1, "at least 1"), default=600, metavar="UNITS",
                   help="interest: the view's radius, world units (default 600)")
    p.add_argument("--view-cell", type=number(int, 0, "at least 0"), default=0, metavar="UNITS",
                   help="interest: the grid's cell side, world units (default 0: the server's choice)")
    p.add_argument("--ceiling", action="store_true", help="also measure tools.ceiling with the same clients and frame size")
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=can_pin,
                   help=f"server on one CPU, load generator on another (default {'on' if can_pin else 'off'}: "
                        f"{len(os.sched_getaffinity(0))} CPUs)")
    p.add_argument("--verify", type=number(int, 0, "at least 0"), default=2, metavar="N",
                   help="clients that decode and verify every update (default 2)")
    p.add_argument("--procs", type=number(int, 1, "at least 1"), default=1, metavar="K", help="load generator processes (default 1)")
    p.add_argument("--connect-rate", type=number(float, 1, "at least 1"), default=500.0, metavar="PER_S",
                   help="client connections per second (default 500)")
    p.add_argument("--seed", type=seed_int, default=1, help="match and random-walk seed, 0 to 2**63-1 (default 1)")
    p.add_argument("--record", action="store_true", help="let the server record its replay (default: --no-record)")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for python -m server (repeatable, e.g. --server-arg=--max-buffer=2000000)")
    p.add_argument("--json", action="store_true", help="print one JSON line (the last line) instead of a table")
    p.add_argument("--sweep", action="store_true",
                   help="players per core (tools.sweep): step P until the server, then the ceiling, fall behind "
                        "(29+ updates/s for every client, 0 ticks skipped), with the C load generator (make loadgen)")
    p.add_argument("--sweep-start", type=number(int, 2, "at least 2"), default=250, metavar="P", help="first P (default 250)")
    p.add_argument("--sweep-step", type=number(int, 1, "at least 1"), default=250, metavar="N", help="P added per step (default 250)")
    p.add_argument("--sweep-max", type=number(int, 2, "at least 2"), default=4000, metavar="P", help="last P (default 4000)")
    p.add_argument("--sweep-budget", type=number(float, 10, "at least 10"), default=1200.0, metavar="SECONDS",
                   help="no new step after this many seconds (default 1200)")
    p.add_argument("--sweep-all", action="store_true",
                   help="with --sweep: measure every P up to --sweep-max, not stopping at the first that falls behind")
    p.add_argument("--plot", type=Path, metavar="PNG", help="with --sweep: draw updates/s and CPU against P into this PNG")
    return p


def _counts(text: str) -> list[int]:
    """An argparse type: ``E`` or ``E,E,...``, each at least 0."""
    parse = number(int, 0, "at least 0")
    return [parse(part) for part in text.split(",")]


#: The figures ``compare`` sets side by side, each as a ratio to the first run's.
COMPARED = ("bytes_per_update", "server_us_per_client_tick", "tick_ms_mean", "tick_ms_p99", "server_cpu_total")


def compare(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every run's ``COMPARED`` figures divided by the first run's (the baseline of the same sitting), and
    ``by_E``: each E's runs pooled (the mean of each figure over them), divided by the first E's."""
    first = runs[0]
    groups: dict[int, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(r["E"], []).append(r)
    means = {e: {k: _mean([r[k] for r in rs]) for k in COMPARED} for e, rs in groups.items()}
    base = means[first["E"]]
    return {"variant": first["variant"], "P": first["P"], "baseline_E": first["E"], "vs_first": [
        {"E": r["E"], **{k: _ratio(r[k], first[k]) for k in COMPARED}} for r in runs],
        "by_E": [{"E": e, "runs": len(groups[e]), "mean": {k: _r(v) for k, v in m.items()},
                  **{k: _ratio(m[k], base[k]) for k in COMPARED}} for e, m in means.items()]}


def _mean(values: list[Any]) -> float | None:
    """The mean of ``values``, None if any is missing."""
    return None if any(v is None for v in values) else sum(values) / len(values)


def _ratio(a: float | None, b: float | None) -> float | None:
    return _r(a / b, 3) if a and b else None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.pin and len(os.sched_getaffinity(0)) < 2:
        parser.error(f"--pin needs at least 2 CPUs, this process may use {len(os.sched_getaffinity(0))}")
    if args.sweep:
        if len(args.npcs) > 1 or args.variant != "full":
            parser.error("--sweep measures one E (--npcs) of the full variant")
        return _sweep_main(parser, args)
    runs = []
    for e in args.npcs:
        one = argparse.Namespace(**{**vars(args), "npcs": e})
        out = run_or_exit(parser.prog, lambda: run(one), BenchError, LoadGenError)
        runs.append(out)
        if args.json:
            print(json.dumps(out), flush=True)
        else:
            print_table(out)
    if len(runs) > 1:
        summary = compare(runs)
        if args.json:
            print(json.dumps(summary))
        else:
            print(f"compared with E={summary['baseline_E']} (the same run):")
            for v in summary["vs_first"]:
                print(f"  E={v['E']:<8} " + "  ".join(f"{k} x{v[k]}" for k in COMPARED))
            if len(summary["by_E"]) < len(runs):
                print(f"each E pooled (the mean over its runs), compared with E={summary['baseline_E']}'s:")
                for v in summary["by_E"]:
                    print(f"  E={v['E']:<8} ({v['runs']} run{'s' if v['runs'] != 1 else ''}) " + "  ".join(f"{k} x{v[k]}" for k in COMPARED))
    ok = all(o["desyncs"] == 0 and o["errors"] == 0 and o["clients_still_connected"] == args.players for o in runs)
    return 0 if ok else 1


def _sweep_main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from tools import bench, plots, sweep  # sweep imports this module (as tools.bench): only when asked

    if args.plot is not None:
        run_or_exit(parser.prog, plots.require, plots.PlotError)
    # run as __main__, this module's BenchError is not tools.bench's (which tools.sweep raises)
    out = run_or_exit(parser.prog, lambda: sweep.run_sweep(args, *cpus_for(args.pin)), BenchError, bench.BenchError)
    if args.plot is not None:
        run_or_exit(parser.prog, lambda: sweep.plot_sweep(out, args.plot), plots.PlotError)
    print(json.dumps(out))
    return 0 if out["largest_P_server"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())

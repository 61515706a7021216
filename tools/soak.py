"""``python -m tools.soak``: the real server under bots and every hostile kind at once, for a while; what held.

It starts ``python -m server --ruleset R --no-record`` (plus ``--server-arg``s;
from ``--root``, another checkout, for a "before" figure; at most ``--nofile``
open files), lets ``--bots`` bots play (``tools.bots``; two of them decode
and verify every update) for ``--duration`` seconds, and meanwhile sends
waves of hostile clients, every kind at once in each wave, until the time is
up:

- the attacks of ``tools.attacks``: ``stall`` (players that stop reading, as
  under SIGSTOP, then answer the backlog), ``spread_acks`` (each acking a
  different old tick), ``no_ack`` (never acknowledging), ``non_reader``
  (never reading), ``fd_flood`` (connections held without a request: near a
  connection or file-descriptor cap with ``--server-arg`` and ``--nofile``),
  ``seat_hold`` (join and drop), ``http_probe`` (bad paths, a cross-origin
  upgrade);
- and two of its own: ``flood`` (players sending far more messages than the
  rate limit lets through) and ``bad_frames`` (one connection per kind of
  bad frame, ``BAD_FRAMES``: a text frame, bytes that are not msgpack, a
  message over the size limit, an input out of range, an unknown message
  type, a fragmented message), each counted with how the server closed it.

Each wave's counts are ``WAVE`` times ``--scale``; each attack lasts
``--attack-seconds``, but stalled clients stall and non-readers do not read
for ``--long-seconds`` (past the server's 5 s limits). Everything runs on
loopback, every count and wait is bounded: the soak ends at most one wave
(about 30 s) after ``--duration``.

At the end it prints a table (rich), or with ``--json`` one line: frames
(WebSocket messages) the server sent, bad frames by kind, the attacks'
outcomes, disconnects by close code (the server's /metrics), tick p50 and
p99 over the whole soak (its histograms; and each phase's p99), ticks
skipped, the server's CPU (cores) and the machine's load average (on a
shared machine, wall-clock tick times are the scheduler's as much as the
server's), the server's RSS at start, peak and end and its kernel send
queues' peak, the bots' updates a second and desyncs, the server's log
lines and tracebacks (``--server-log FILE`` keeps the whole log). ``--plot FILE``
draws RSS, send queues and tick p99 over time (matplotlib).

Exit status: 0 when the server lived through it, the bots stayed connected
with no desync and its log has no traceback; 1 otherwise; 2 bad flags.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgpack
from attrs import define, field

from server.cli import positive
from tools.attacks import (
    ATTACKS,
    WAIT_S,
    AttackReport,
    Hostile,
    Sampler,
    Target,
    close_all,
    joined,
    open_clients,
    report_of,
    rss_mib,
)
from tools.bench import ROOT, BenchError, Proc, Scrape, histogram_window, metric_sum, parse_metrics, quantile
from tools.bots import Bot
from tools.cli import Parser
from tools.loadgen import OP_BINARY, OP_TEXT, mask_frame
from tools import plots
from tools.plots import Panel, PlotError, Series, save_panels
from tools.progress import Bar

PROG = "python -m tools.soak"

#: Hostile connections of each kind in one wave (times ``--scale``, at least 1 each).
WAVE: dict[str, int] = {
    "stall": 2, "spread_acks": 32, "no_ack": 100, "non_reader": 30, "fd_flood": 200, "seat_hold": 20,
    "http_probe": 2, "flood": 4, "bad_frames": 1,
}

#: Messages a flooding player sends at once: far over any rate limit's burst.
FLOOD_MESSAGES = 2000


def _bad_frame(kind: str, key: bytes) -> bytes:
    """A whole client frame of ``kind`` (``BAD_FRAMES``), masked with ``key``."""
    if kind == "text":
        return mask_frame(OP_TEXT, b'{"t": "input"}', key)
    if kind == "fragmented":
        frame = mask_frame(OP_BINARY, msgpack.packb({"t": "ping", "id": 1, "time": 0}), key)
        return bytes((frame[0] & 0x7F,)) + frame[1:]  # no FIN: the first fragment of a message
    payload = {
        "not_msgpack": b"\xc1\xc1\xc1\xc1",
        "oversize": msgpack.packb({"t": "ping", "id": 1, "time": 0, "pad": "x" * 4000}),
        "bad_field": msgpack.packb({"t": "input", "seq": 1, "in": [99, 99], "ack": 0}),
        "unknown_type": msgpack.packb({"t": "teleport", "x": 1}),
    }[kind]
    return mask_frame(OP_BINARY, payload, key)


#: The kinds of bad frame ``bad_frames`` sends, one connection each.
BAD_FRAMES = ("text", "not_msgpack", "oversize", "bad_field", "unknown_type", "fragmented")


async def bad_frames(target: Target, count: int = 1, seconds: float = 0.0) -> AttackReport:
    """``count`` connections per kind of ``BAD_FRAMES``: each joins, sends its bad frame and waits to be closed.

    ``notes[kind]``: the close codes the server answered that kind with.
    """
    kinds = [k for k in BAD_FRAMES for _ in range(count)]
    clients = await open_clients(target, lambda i: Hostile(target, f"bad{i + 1}", i, answer="none"), len(kinds))
    await joined(clients)
    for kind, c in zip(kinds, clients):
        if c.open and c.transport is not None:
            c.transport.write(_bad_frame(kind, os.urandom(4)))
    await asyncio.wait([c.closed for c in clients], timeout=WAIT_S)
    await close_all(clients)
    report = report_of("bad_frames", clients)
    codes: dict[str, Counter[int]] = {}
    for kind, c in zip(kinds, clients):
        codes.setdefault(kind, Counter())[c.close_code or 1006] += 1
    report.notes.update({k: dict(v) for k, v in codes.items()})
    return report


async def flood(target: Target, count: int = 4, seconds: float = 0.0) -> AttackReport:
    """``count`` players each send ``FLOOD_MESSAGES`` acks at once, then wait (bounded) to be closed."""
    clients = await open_clients(target, lambda i: Hostile(target, f"flood{i + 1}", i, answer="none"), count)
    await joined(clients)
    for c in clients:
        if c.open and c.transport is not None:
            frame = mask_frame(OP_BINARY, msgpack.packb({"t": "ack", "tick": 1}), os.urandom(4))
            c.transport.write(frame * FLOOD_MESSAGES)
            c.sent += FLOOD_MESSAGES
    await asyncio.wait([c.closed for c in clients], timeout=max(seconds, WAIT_S))
    await close_all(clients)
    return report_of("flood", clients)


#: Every hostile kind of a wave: ``tools.attacks``' and this module's; not ``no_ack_waves``, which is ``no_ack``
#: again and again, as the soak's waves already are.
HOSTILE: dict[str, Callable[[Target, int, float], Awaitable[AttackReport]]] = {
    **{kind: attack for kind, attack in ATTACKS.items() if kind != "no_ack_waves"}, "flood": flood,
    "bad_frames": bad_frames,
}


#: Notes of the attacks' reports that count something (summed over the waves); the others are the last wave's.
COUNTED_NOTES = frozenset({"survived", "connect_failed"})

#: The kinds that last ``--long-seconds``: the server's limits on them take seconds to act (ack and slow timeouts).
LONG = frozenset({"stall", "non_reader"})


@define
class Tally:
    """What every wave's hostile clients saw, by kind."""

    waves: int = 0
    reports: dict[str, AttackReport] = field(factory=dict)

    def add(self, report: AttackReport) -> None:
        into = self.reports.get(report.kind)
        if into is None:
            self.reports[report.kind] = report
            return
        for name in ("connections", "upgraded", "joined", "messages_sent", "updates", "keyframes", "bytes_received"):
            setattr(into, name, getattr(into, name) + getattr(report, name))
        into.http_statuses.update(report.http_statuses)
        into.close_codes.update(report.close_codes)
        into.errors = (into.errors + report.errors)[:8]
        for key, value in report.notes.items():
            old = into.notes.get(key)
            if isinstance(value, dict) and isinstance(old, dict):
                into.notes[key] = dict(Counter(old) + Counter(value))
            elif key in COUNTED_NOTES and isinstance(value, int) and isinstance(old, int):
                into.notes[key] = old + value
            else:
                into.notes[key] = value  # a setting or an answer of the last wave


@define
class Options:
    duration: float
    bots: int
    ruleset: str
    scale: float
    attack_seconds: float
    long_seconds: float
    root: Path
    nofile: int | None
    server_args: tuple[str, ...]
    plot: Path | None
    server_log: Path | None
    progress: bool


def counts(scale: float) -> dict[str, int]:
    """Each hostile kind's connections in a wave."""
    return {kind: max(1, round(n * scale)) for kind, n in WAVE.items()}


def soak(opts: Options) -> dict[str, Any]:
    """Start the server, soak it, stop it; the figures (``--json``'s object)."""
    args = ["-m", "server", "--host", "127.0.0.1", "--port", "0", "--ruleset", opts.ruleset, "--no-record",
            *opts.server_args]
    server = Proc(args, "server", None, root=opts.root, nofile=opts.nofile, log_file=opts.server_log)
    try:
        out = asyncio.run(_soak(server, opts))
    finally:
        server.stop()
    out["server_exit"] = server.proc.returncode
    out["server_log_lines"] = server.log_lines
    out["server_tracebacks"] = server.tracebacks
    return out


async def _scrape(server: Proc, tries: int = 1) -> Scrape:
    """The server's /metrics; ``tries`` times a second apart (a scrape may fail while a flood of hostile
    connections fills the accept queue; /metrics is never refused by --max-per-address)."""
    for _ in range(tries - 1):
        try:
            return parse_metrics((await asyncio.to_thread(server.get, "/metrics")).decode())
        except BenchError:
            await asyncio.sleep(1.0)
    return parse_metrics((await asyncio.to_thread(server.get, "/metrics")).decode())


async def _soak(server: Proc, opts: Options) -> dict[str, Any]:
    target = Target(port=server.port)
    wave = counts(opts.scale)
    bots = [Bot(i, target.url, f"bot{i + 1}", 1, i < 2) for i in range(opts.bots)]
    start = time.perf_counter()
    playing = [asyncio.create_task(b.play(start + opts.duration + 120, 1.0)) for b in bots]
    sampler = Sampler(server.pid, server.port)
    sampled_from = time.perf_counter()
    timeline: list[tuple[float, float | None]] = []  # (seconds, tick p99 ms of the last period)
    tally = Tally()
    bar = Bar.for_stderr("soaking", opts.duration, quiet=not opts.progress, unit="s")
    try:
        await asyncio.sleep(1.0)  # the bots join
        rss0 = rss_mib(server.pid)
        m0 = await _scrape(server)
        updates0 = [b.client.stats.updates for b in bots]
        cpu0 = server.cpu()
        t0 = time.perf_counter()
        watch = asyncio.create_task(_watch(server, t0, timeline, bar))
        while time.perf_counter() - t0 < opts.duration:
            tally.waves += 1
            reports = await asyncio.gather(
                *(HOSTILE[k](target, n, opts.long_seconds if k in LONG else opts.attack_seconds) for k, n in wave.items()),
                return_exceptions=True)
            for kind, r in zip(wave, reports):
                if isinstance(r, BaseException):
                    tally.add(AttackReport(kind, errors=[f"{type(r).__name__}: {r}"]))
                else:
                    tally.add(r)
        # The rest of the time (a short soak's one wave may have taken longer) with the bots alone.
        await asyncio.sleep(max(0.0, t0 + opts.duration - time.perf_counter()))
        window = time.perf_counter() - t0
        cpu1 = server.cpu()
        watch.cancel()
        updates1 = [b.client.stats.updates for b in bots]
        m1 = await _scrape(server, tries=10)
        health = await asyncio.to_thread(server.get_json, "/healthz")
        rss_end = rss_mib(server.pid)
    finally:
        bar.close()
        sampler.stop()
        for b in bots:
            if b.client.ws is not None:
                await b.client.close()
        await asyncio.gather(*playing, return_exceptions=True)
    count, _, buckets = histogram_window(m0, m1, "total")
    rates = [(b - a) / window for a, b in zip(updates0, updates1)]
    disconnects = {f"{dict(ls)['code']} by {dict(ls)['by']}": int(v - m0.get((n, ls), 0.0))
                   for (n, ls), v in sorted(m1.items()) if n == "tickserver_disconnects_total" and v > m0.get((n, ls), 0)}
    bad = tally.reports.get("bad_frames")
    out: dict[str, Any] = {
        "duration_s": round(window, 1), "ruleset": opts.ruleset, "bots": opts.bots, "waves": tally.waves,
        "wave": wave,
        "frames_sent": int(metric_sum(m1, "tickserver_sent_messages_total") - metric_sum(m0, "tickserver_sent_messages_total")),
        "updates_sent": int(metric_sum(m1, "tickserver_updates_sent_total") - metric_sum(m0, "tickserver_updates_sent_total")),
        "bad_frames": {k: v for k, v in (bad.notes if bad is not None else {}).items() if k in BAD_FRAMES},
        "attacks": {k: _attack_summary(r) for k, r in sorted(tally.reports.items())},
        "disconnects": disconnects,
        "tick_ms_p50": _ms(quantile(0.5, buckets)), "tick_ms_p99": _ms(quantile(0.99, buckets)),
        "phase_ms_p99": {name: _ms(quantile(0.99, histogram_window(m0, m1, phase)[2]))
                         for phase, name in (("sim", "simulation"), ("encode", "encoding"), ("send", "sending"))},
        "ticks": int(count),
        "server_cpu_cores": round((sum(cpu1) - sum(cpu0)) / window, 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "ticks_skipped": int(metric_sum(m1, "tickserver_ticks_dropped_total") - metric_sum(m0, "tickserver_ticks_dropped_total")),
        "rss_mib_start": _r(rss0), "rss_mib_peak": _r(max(sampler.rss, default=None)), "rss_mib_end": _r(rss_end),
        "kernel_send_queue_mib_peak": _r(max(sampler.sendq, default=None)),
        "bots_updates_per_s": round(sum(rates) / len(rates), 2) if rates else None,
        "bots_updates_per_s_min": round(min(rates), 2) if rates else None,
        "bots_still_connected": sum(1 for b in bots if b.connected and b.error is None),
        "desyncs": sum(b.client.stats.desyncs for b in bots),
        "bot_errors": [b.error for b in bots if b.error][:5],
        "connected_at_end": health.get("connected"),
    }
    if opts.plot is not None:
        try:
            plot(opts.plot, sampler, t0 - sampled_from, timeline, out)
        except PlotError as exc:  # the figures are still worth printing
            out["plot_error"] = str(exc)
    return out


async def _watch(server: Proc, t0: float, timeline: list[tuple[float, float | None]], bar: Bar,
                 period: float = 2.0) -> None:
    """Every ``period`` s: the progress bar, and the tick p99 since the last scrape that answered (for the plot)."""
    before = await _scrape(server)
    while True:
        await asyncio.sleep(period)
        bar.update(time.perf_counter() - t0)
        try:
            after = await _scrape(server)
        except BenchError:
            continue  # not answered in time meanwhile (a flood fills the accept queue): a point less
        _, _, buckets = histogram_window(before, after, "total")
        before = after
        elapsed = time.perf_counter() - t0
        timeline.append((elapsed, _ms(quantile(0.99, buckets))))


def _attack_summary(r: AttackReport) -> dict[str, Any]:
    j = r.to_json()
    return {k: j[k] for k in ("connections", "joined", "http_statuses", "close_codes", "notes", "errors")}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def ok(out: dict[str, Any]) -> bool:
    """The server lived through it: it exited cleanly, the bots stayed with no desync, its log has no traceback."""
    return bool(out["server_exit"] == 0 and out["desyncs"] == 0 and out["bots_still_connected"] == out["bots"]
                and out["server_tracebacks"] == 0)


# -- output -----------------------------------------------------------------------


def print_table(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"soak: {out['duration_s']} s, {out['ruleset']}, {out['bots']} bots, {out['waves']} waves "
                        f"of hostile clients", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("frames sent (updates)", f"{out['frames_sent']} ({out['updates_sent']})"),
        ("tick p50 / p99", f"{out['tick_ms_p50']} / {out['tick_ms_p99']} ms over {out['ticks']} ticks"),
        ("  p99 of simulation / encoding / sending", " / ".join(str(v) for v in out["phase_ms_p99"].values()) + " ms"),
        ("ticks skipped", out["ticks_skipped"]),
        ("server CPU (cores); machine load average", f"{out['server_cpu_cores']}; {out['load_average']}"),
        ("server RSS start / peak / end", f"{out['rss_mib_start']} / {out['rss_mib_peak']} / {out['rss_mib_end']} MiB"),
        ("kernel send queues, peak", f"{out['kernel_send_queue_mib_peak']} MiB"),
        ("bots: updates/s mean (min)", f"{out['bots_updates_per_s']} ({out['bots_updates_per_s_min']})"),
        ("bots still connected", f"{out['bots_still_connected']}/{out['bots']}"),
        ("desyncs", out["desyncs"]),
        ("disconnects by close code", ", ".join(f"{k}: {v}" for k, v in out["disconnects"].items()) or "none"),
        ("bad frames (close codes)", ", ".join(f"{k}: {v}" for k, v in out["bad_frames"].items())),
        ("server log lines (tracebacks)", f"{out['server_log_lines']} ({out['server_tracebacks']})"),
    ]
    for kind, a in out["attacks"].items():
        answers = {**{f"HTTP {k}": v for k, v in a["http_statuses"].items()}, **a["close_codes"]}
        rows.append((f"  {kind}", f"{a['connections']} connection{'' if a['connections'] == 1 else 's'}, "
                     f"{a['joined']} joined; "
                     + (", ".join(f"{k}: {v}" for k, v in answers.items()) or "no refusal")))
    for label, value in rows:
        table.add_row(label, str(value))
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    for e in out["bot_errors"]:
        console.print(f"  bot error: {e}", markup=False)


def plot(path: Path, sampler: Sampler, offset: float, timeline: list[tuple[float, float | None]],
         out: dict[str, Any]) -> None:
    """RSS and kernel send queues (every sample) and tick p99 (every 2 s) over the soak, in one PNG; the
    sampler started ``offset`` seconds before the soak's clock."""
    points = [(t, p) for t, p in timeline if p is not None]
    times = [t - offset for t in sampler.times]
    save_panels(path, [
        Panel("MiB", [Series("server RSS", times, sampler.rss), Series("kernel send queues", times, sampler.sendq)]),
        Panel("ms", [Series("tick p99 (2 s windows)", [t for t, _ in points], [p for _, p in points])]),
    ], title=f"soak: {out['ruleset']}, {out['bots']} bots, {out['waves']} waves", xlabel="seconds")


# -- command line ------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Soak the real server: bots play while waves of every hostile kind of issue 12 "
               "run (loopback only, bounded); print what held. See the module docstring for the kinds.")
    p.add_argument("--duration", type=positive(float), default=60.0, metavar="SECONDS",
                   help="how long the bots play and waves start (default 60; the last wave may run up to ~30 s over)")
    p.add_argument("--bots", type=positive(int), default=20, help="bots playing throughout (default 20)")
    p.add_argument("--ruleset", default="arena", help="the server's ruleset (default arena)")
    p.add_argument("--scale", type=positive(float), default=1.0,
                   help="multiplies each wave's hostile connections (default 1: " + ", ".join(
                       f"{k} {n}" for k, n in WAVE.items()) + ")")
    p.add_argument("--attack-seconds", type=positive(float), default=5.0, metavar="SECONDS",
                   help="how long each attack of a wave misbehaves (default 5)")
    p.add_argument("--long-seconds", type=positive(float), default=12.0, metavar="SECONDS",
                   help="how long stalled clients stall and non-readers do not read, past the server's 5 s limits "
                   "(default 12)")
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout whose server runs (default this one)")
    p.add_argument("--nofile", type=positive(int), default=None, help="the server's open-file limit, soft and hard")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="one more argument of python -m server (repeat: --server-arg=--max-players --server-arg=100)")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="draw RSS, kernel send queues and tick p99 over time to PNG (needs matplotlib)")
    p.add_argument("--server-log", type=Path, default=None, metavar="FILE",
                   help="keep the server's whole log (its stderr) in FILE")
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.root / "server" / "__main__.py").is_file():
        parser.error(f"--root {args.root}: not a checkout of this project (no server/__main__.py)")
    if args.plot is not None:
        try:
            plots.require()
        except PlotError as exc:
            parser.error(f"--plot: {exc}")
    opts = Options(args.duration, args.bots, args.ruleset, args.scale, args.attack_seconds, args.long_seconds,
                   args.root.resolve(),
                   args.nofile, tuple(args.server_arg), args.plot, args.server_log,
                   not args.no_progress and not args.json)
    try:
        out = soak(opts)
    except BenchError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(out))
    else:
        print_table(out)
    if "plot_error" in out:
        print(f"{PROG}: error: --plot: {out['plot_error']}", file=sys.stderr)
        return 1
    return 0 if ok(out) else 1


if __name__ == "__main__":
    sys.exit(main())

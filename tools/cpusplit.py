"""``python -m tools.cpusplit``: where the server's CPU goes in one window under the C load generator, and A/B pairs.

One window: the server (``python -m server --ruleset drift --npcs E``, of this
checkout or of ``--root DIR``) pinned to the first CPU of this process's
affinity, the C load generator (``build/loadgen`` of this checkout, ``make
loadgen``) with ``--players`` clients pinned to the second; after the
generator's warm-up, the window (``--duration``). Read at both ends: the
server's user and system CPU (``/proc/PID/stat``), its ``/healthz`` (ticks,
ticks skipped) and ``/metrics`` (the tick's and the send phase's mean). Reported:
cores, **µs of server CPU per client per tick** (user, system, both), the
generator's figures (every client connected, updates/s, its own µs per update).

Optional, over the same window:

- ``--syscalls``: ``perf stat -e 'syscalls:sys_enter_*'`` on the server's pid:
  ``read``, ``write``, ``epoll_wait``/``epoll_pwait`` and all system calls per
  client per tick;
- ``--segments``: ``ss -ti`` over the server's sockets and the generator's:
  data segments and pure ACKs sent per update, each side;
- ``--perf FILE``: ``perf record -e cpu-clock -g`` of the server, written to FILE
  (``perf report -i FILE``), and its samples split (% of all): the kernel in the
  ``write``s, the peer socket's receive run inside them (loopback), the ``read``s,
  ``epoll``, the rest of the kernel, user space;
- ``--gc``: every collection of the garbage collector inside the window, by
  generation (count, total and largest ms; and the count and largest since the
  server started, the ramp of joins included), from ``tools/gcprobe/sitecustomize.py``
  put on the server's ``PYTHONPATH`` (the server's code is unchanged).

``--pairs K --before DIR`` alternates K windows of DIR's server (before) with K
of ``--root``'s (after), each pair back to back, and prints every pair's
after ÷ before and the median of each ratio: the A/B method of BENCHMARKS.md
(a noisy, shared machine drifts between sittings, less within a pair). Loopback
only; every window is bounded in time (the generator's own ``--timeout`` and ours).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.bench import ROOT, BenchError, Proc, nofile_for, parse_metrics, server_command, window_ms
from tools.cli import Parser, number, run_or_exit
from tools.sweep import LOADGEN, read_window, start_loadgen

PROG = "python -m tools.cpusplit"
GCPROBE = ROOT / "tools" / "gcprobe"
SYSCALLS = ("read", "write", "epoll_wait", "epoll_pwait")
#: The figures of a window that ``--pairs`` divides, after by before.
RATIOS = ("us_per_client_tick", "us_user", "us_system", "user_cores", "system_cores", "tick_ms", "send_ms")
CONNECT_RATE = 500


def _ss(port: int, side: str) -> dict[tuple[str, str], tuple[int, int]]:
    """Each established socket on ``port``'s ``side`` (by its two addresses): segments and data segments sent so
    far (``ss -ti``)."""
    flt = f"( sport = :{port} )" if side == "server" else f"( dport = :{port} )"
    out = subprocess.run(["ss", "-tiHn", "state", "established", flt], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise BenchError(f"ss failed: {out.stderr.strip()[-200:]}")
    sockets: dict[tuple[str, str], tuple[int, int]] = {}
    key: tuple[str, str] | None = None
    for line in out.stdout.splitlines():
        if line and not line[0].isspace():  # "Recv-Q Send-Q LOCAL PEER", then its details on the next line(s)
            fields = line.split()
            key = (fields[2], fields[3]) if len(fields) >= 4 else None
            continue
        counts = dict(tok.partition(":")[::2] for tok in line.split() if ":" in tok)
        if key is not None and counts.get("segs_out", "").isdigit():
            sockets[key] = (int(counts["segs_out"]), int(counts.get("data_segs_out", "0") or 0))
    return sockets


def _segments(before: dict[tuple[str, str], tuple[int, int]], after: dict[tuple[str, str], tuple[int, int]],
              ticks: int) -> tuple[float, float]:
    """Data segments and pure ACKs sent per update (per socket per tick) between two ``_ss`` reads, over the
    sockets open at both."""
    both = before.keys() & after.keys()
    if not both or ticks <= 0:
        raise BenchError("ss saw no socket open at both ends of the window")
    data = sum(after[k][1] - before[k][1] for k in both)
    pure = sum((after[k][0] - after[k][1]) - (before[k][0] - before[k][1]) for k in both)
    return round(data / (ticks * len(both)), 3), round(pure / (ticks * len(both)), 3)


def _segments_window(proc: Proc, seconds: float) -> dict[str, float]:
    """Data segments and pure ACKs sent per update by the server's sockets and the generator's over the next
    ``seconds`` (inside the window: the generator closes its sockets as soon as the window ends)."""
    def read() -> tuple[int, dict[tuple[str, str], tuple[int, int]], dict[tuple[str, str], tuple[int, int]]]:
        return int(proc.get_json("/healthz")["tick"]), _ss(proc.port, "server"), _ss(proc.port, "client")

    (k0, srv0, cli0) = read()
    time.sleep(seconds)
    (k1, srv1, cli1) = read()
    out: dict[str, float] = {}
    for side, before, after in (("server", srv0, srv1), ("loadgen", cli0, cli1)):
        data, pure = _segments(before, after, k1 - k0)
        out |= {f"{side}_data_out": data, f"{side}_pure_acks_out": pure}
    return out


#: The kernel's paths ``perf_split`` sorts samples by: a call stack is the first whose pattern it matches.
_WRITE = re.compile(r"\b(ksys_write|__x64_sys_write|__sys_sendto|__sys_sendmsg|tcp_sendmsg)\b")
_PEER_RX = re.compile(r"\b(__netif_receive_skb\w*|net_rx_action|tcp_v4_rcv|ip_rcv\w*|process_backlog)\b")
_READ = re.compile(r"\b(ksys_read|__x64_sys_read|__sys_recvfrom|tcp_recvmsg)\b")
_EPOLL = re.compile(r"\b(do_epoll_wait|ep_poll)\b")


def perf_split(data: Path) -> dict[str, float]:
    """Where ``perf record -g``'s samples of the server were (``perf script -i DATA``), % of all samples: the
    kernel in its ``write``s (transmit), the peer socket's receive run inside them (loopback bills it to the
    sender), its ``read``s, ``epoll``, the rest of the kernel; user space (Python, uvloop, numpy) as one."""
    script = subprocess.run(["perf", "script", "-i", str(data)], capture_output=True, text=True, timeout=300)
    counts = dict.fromkeys(("kernel_write", "kernel_peer_receive_in_write", "kernel_read", "kernel_epoll", "kernel_other",
                            "user"), 0)
    for sample in script.stdout.split("\n\n"):
        frames = [line for line in sample.splitlines()[1:] if line.strip()]
        if not frames:
            continue
        if "kernel" not in frames[0]:
            key = "user"
        elif _WRITE.search(sample):
            key = "kernel_peer_receive_in_write" if _PEER_RX.search(sample) else "kernel_write"
        elif _READ.search(sample):
            key = "kernel_read"
        else:
            key = "kernel_epoll" if _EPOLL.search(sample) else "kernel_other"
        counts[key] += 1
    total = sum(counts.values())
    if not total:
        raise BenchError(f"perf recorded no sample of the server: {script.stderr.strip()[-200:] or 'none'}")
    return {"samples": total, **{k: round(100 * v / total, 1) for k, v in counts.items()}}


def _perf(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(["perf", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(profiler: subprocess.Popen[str], what: str) -> None:
    try:
        _, err = profiler.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.communicate()
        raise BenchError(f"{what} did not finish within 120 s") from None
    if profiler.returncode != 0:
        raise BenchError(f"{what} failed: {(err.strip().splitlines() or ['exit status %d' % profiler.returncode])[-1]}")


def _gc_window(path: Path, t0: float, t1: float) -> dict[str, dict[str, float]]:
    """The collections the probe saw start inside ``[t0, t1]``, by generation: count, total and largest ms; and
    since the server started (the ramp of joins too): count and largest ms."""
    deadline = time.monotonic() + 5
    while True:  # the probe rewrites its file every 0.25 s: wait for one written after the window
        try:
            if path.stat().st_mtime > time.time() - (time.monotonic() - t1) + 0.05:
                break
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise BenchError("the gc probe wrote nothing (tools/gcprobe/sitecustomize.py not loaded?)")
        time.sleep(0.05)
    seen = json.loads(path.read_text())
    out: dict[str, dict[str, float]] = {}
    for gen in (0, 1, 2):
        ms = [d * 1000 for start, d, g, _ in seen if g == gen and t0 <= start <= t1]
        run = [d * 1000 for start, d, g, _ in seen if g == gen and start <= t1]
        out[str(gen)] = {"collections": len(ms), "ms_total": round(sum(ms), 1), "ms_max": round(max(ms, default=0), 1),
                         "run_collections": len(run), "run_ms_max": round(max(run, default=0), 1)}
    return out


async def _window(proc: Proc, root: Path, args: argparse.Namespace, lg_cpu: int, gc_file: Path | None) -> dict[str, Any]:
    players: int = args.players
    lg = await start_loadgen(proc.port, players, CONNECT_RATE, args.warmup, args.duration, 1, {lg_cpu})
    segments: asyncio.Future[dict[str, float]] | None = None
    profilers: list[tuple[subprocess.Popen[str], str]] = []
    stat_file = Path(tempfile.mkstemp(prefix="cpusplit-", suffix=".perfstat")[1]) if args.syscalls else None
    # perf counts for most of the window, so that it ends inside it whatever its start-up costs
    perf_s = args.duration * 0.9

    def mark(event: str) -> tuple[float, tuple[float, float], dict[str, Any], Any]:
        nonlocal segments
        taken = time.monotonic(), proc.cpu(), proc.get_json("/healthz"), parse_metrics(proc.get("/metrics").decode())
        if event == "window_start" and args.segments:
            segments = asyncio.ensure_future(asyncio.to_thread(_segments_window, proc, perf_s))
        if event == "window_start" and args.perf is not None:
            profilers.append((_perf(["record", "-q", "-e", "cpu-clock", "-g", "-p", str(proc.pid),
                                     "-o", str(args.perf), "--", "sleep", f"{perf_s:.3f}"]), "perf record"))
        if event == "window_start" and stat_file is not None:
            events = ",".join(["raw_syscalls:sys_enter", *(f"syscalls:sys_enter_{n}" for n in SYSCALLS)])
            profilers.append((_perf(["stat", "-x,", "-e", events, "-p", str(proc.pid), "-o", str(stat_file),
                                     "--", "sleep", f"{perf_s:.3f}"]), "perf stat"))
        return taken

    try:
        try:
            async with asyncio.timeout(120 + players / CONNECT_RATE + args.warmup + args.duration):
                summary, marks = await read_window(lg, mark)
        except TimeoutError:
            raise BenchError("the window did not end in time (the load generator hung?)") from None
        except json.JSONDecodeError as exc:
            raise BenchError(f"the load generator printed something not JSON: {exc}") from None
        for profiler, what in profilers:
            _finish(profiler, what)
        (t0, c0, h0, m0), (t1, c1, h1, m1) = marks["window_start"], marks["window_end"]
        wall = t1 - t0
        ticks = int(h1["tick"]) - int(h0["tick"])
        if ticks <= 0:
            raise BenchError("the server ran no tick in the window")
        user, system = (c1[0] - c0[0]) / wall, (c1[1] - c0[1]) / wall

        def per(cores: float) -> float:
            return round(cores * wall / (ticks * players) * 1e6, 2)

        tick_ms, send_ms = window_ms(m0, m1, "total")[0], window_ms(m0, m1, "send")[0]
        out: dict[str, Any] = {
            "root": str(root), "P": players, "E": args.npcs, "warmup_s": args.warmup, "duration_s": args.duration,
            "connected": summary["connected"], "errors": summary["errors"], "error_messages": summary["error_messages"][:5],
            "updates_per_s_p1": summary["updates_per_s_p1"], "updates_per_s_p50": summary["updates_per_s_p50"],
            "ticks": ticks, "ticks_skipped": int(h1.get("ticks_dropped", 0)) - int(h0.get("ticks_dropped", 0)),
            "user_cores": round(user, 3), "system_cores": round(system, 3), "cores": round(user + system, 3),
            "us_per_client_tick": per(user + system), "us_user": per(user), "us_system": per(system),
            "tick_ms": None if tick_ms is None else round(tick_ms, 2), "send_ms": None if send_ms is None else round(send_ms, 2),
            "loadgen_cpu": summary["cpu_per_s"], "loadgen_us_per_update": summary["cpu_us_per_update"],
            "bytes_per_update": summary["bytes_per_update"], "load_average": round(os.getloadavg()[0], 2),
        }
        if stat_file is not None:
            out["syscalls_per_client_tick"] = _syscalls(stat_file, ticks * players * perf_s / wall)
        if segments is not None:
            out["segments_per_update"] = await segments
        if gc_file is not None:
            out["gc"] = _gc_window(gc_file, t0, t1)
        if args.perf is not None:
            out["perf_data"] = str(args.perf)
            out["perf_split"] = perf_split(args.perf)
        return out
    finally:
        if segments is not None and not segments.done():
            segments.cancel()
        for profiler, _ in profilers:
            if profiler.poll() is None:
                profiler.kill()
                profiler.wait()
        if lg.returncode is None:
            lg.kill()
            await lg.wait()
        if stat_file is not None:
            stat_file.unlink(missing_ok=True)


def _syscalls(stat_file: Path, updates: float) -> dict[str, float]:
    """``perf stat -x,``'s counts, per client per tick (``updates``: clients × ticks over perf's time)."""
    counts: dict[str, int] = {}
    for line in stat_file.read_text().splitlines():
        fields = line.split(",")
        if len(fields) > 3 and fields[0].strip().isdigit():
            name = fields[2].split(":")[-1]
            counts["all" if name == "sys_enter" else name.removeprefix("sys_enter_")] = int(fields[0])
    if "all" not in counts:
        raise BenchError(f"perf stat counted nothing: {stat_file.read_text().strip()[-200:]}")
    out = {name: round(counts.get(name, 0) / updates, 3) for name in ("read", "write", "all")}
    out["epoll"] = round((counts.get("epoll_wait", 0) + counts.get("epoll_pwait", 0)) / updates, 3)
    return out


def measure(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One window of ``root``'s server (pinned to the first CPU of ours) under the generator (the second)."""
    server_cpu, lg_cpu = sorted(os.sched_getaffinity(0))[:2]
    with tempfile.TemporaryDirectory(prefix="cpusplit-") as tmp:
        gc_file = Path(tmp) / "gc.json" if args.gc else None
        if gc_file is not None:
            os.environ["TICKSERVER_GCPROBE"] = str(gc_file)  # inherited by the server (Proc copies os.environ)
        try:
            proc = Proc(server_command(args.npcs, args.players, 1, ["--no-record", *args.server_arg]), "server", server_cpu,
                        root=root, nofile=nofile_for(args.players + 16), path=(GCPROBE,) if gc_file is not None else ())
        finally:
            os.environ.pop("TICKSERVER_GCPROBE", None)
        try:
            return asyncio.run(_window(proc, root, args, lg_cpu, gc_file))
        finally:
            proc.stop()


def _ratio(after: Any, before: Any) -> float | None:
    return round(after / before, 3) if isinstance(after, (int, float)) and isinstance(before, (int, float)) and before else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One window of ``--root``, or ``--pairs`` alternated windows of ``--before`` and ``--root`` with their ratios."""
    if not LOADGEN.exists():
        raise BenchError(f"{LOADGEN.relative_to(ROOT)} is missing: build it with `make loadgen`")
    if args.before is None:
        return measure(args.root, args)
    pairs: list[dict[str, Any]] = []
    for i in range(args.pairs):
        before = measure(args.before, args)
        after = measure(args.root, args)
        pairs.append({"pair": i + 1, "before": before, "after": after,
                      "after_to_before": {k: _ratio(after[k], before[k]) for k in RATIOS}})
        if not args.json:
            print(_pair_line(pairs[-1]), file=sys.stderr, flush=True)
    medians = {}
    for k in RATIOS:
        values = [p["after_to_before"][k] for p in pairs if p["after_to_before"][k] is not None]
        medians[k] = round(statistics.median(values), 3) if values else None
    return {"before": str(args.before), "after": str(args.root), "P": args.players, "pairs": pairs,
            "ticks_skipped_before": sum(p["before"]["ticks_skipped"] for p in pairs),
            "ticks_skipped_after": sum(p["after"]["ticks_skipped"] for p in pairs),
            "after_to_before_median": medians}


def _line(w: dict[str, Any]) -> str:
    text = (f"{w['root']}: P={w['P']}, {w['connected']}/{w['P']} connected, {w['errors']} errors, p1 {w['updates_per_s_p1']} "
            f"updates/s; server {w['cores']} cores ({w['user_cores']} user + {w['system_cores']} system), "
            f"{w['us_per_client_tick']} µs/client/tick ({w['us_user']} user + {w['us_system']} system); tick {w['tick_ms']} ms, "
            f"send {w['send_ms']} ms, {w['ticks_skipped']} ticks skipped; load generator {w['loadgen_cpu']} cores, "
            f"{w['loadgen_us_per_update']} µs/update")
    for key in ("syscalls_per_client_tick", "segments_per_update", "gc"):
        if key in w:
            text += f"\n  {key}: {json.dumps(w[key])}"
    if "perf_data" in w:
        text += f"\n  perf_split (% of samples): {json.dumps(w['perf_split'])}; perf report -i {w['perf_data']}"
    return text


def _pair_line(p: dict[str, Any]) -> str:
    b, a = p["before"], p["after"]
    return (f"pair {p['pair']}: µs/client/tick {b['us_per_client_tick']} -> {a['us_per_client_tick']} "
            f"(x{p['after_to_before']['us_per_client_tick']}), user cores {b['user_cores']} -> {a['user_cores']}, "
            f"tick ms {b['tick_ms']} -> {a['tick_ms']}, ticks skipped {b['ticks_skipped']} -> {a['ticks_skipped']}")


def _checkout(text: str) -> Path:
    """An argparse type: a checkout of this repository (a directory with ``server/__main__.py``)."""
    path = Path(text).resolve()
    if not (path / "server" / "__main__.py").is_file():
        raise argparse.ArgumentTypeError(f"{text!r} is not a checkout of tickserver (no server/__main__.py in it)")
    return path


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Where the server's CPU goes over one window under the C load generator "
               "(make loadgen): server pinned to one CPU, generator to another; --pairs: before/after ratios.")
    p.add_argument("--players", type=number(int, 1), default=1200, metavar="P", help="clients (default 1200)")
    p.add_argument("--npcs", type=number(int, 0), default=2000, metavar="E", help="NPCs of the drift ruleset (default 2000)")
    p.add_argument("--warmup", type=number(float, 0), default=3.0, metavar="SECONDS",
                   help="seconds after the last join before the window (default 3)")
    p.add_argument("--duration", type=number(float, 1), default=8.0, metavar="SECONDS", help="the window (default 8)")
    p.add_argument("--root", type=_checkout, default=ROOT, metavar="DIR",
                   help="the checkout whose server is measured (default this one); the load generator is this one's")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for python -m server (repeatable, e.g. --server-arg=--max-buffer=2000000)")
    p.add_argument("--syscalls", action="store_true",
                   help="count the server's system calls over the window (perf stat): read, write, epoll per client per tick")
    p.add_argument("--segments", action="store_true",
                   help="TCP segments over the window (ss -ti): data segments and pure ACKs sent per update, each side")
    p.add_argument("--perf", type=Path, metavar="FILE",
                   help="perf record -e cpu-clock -g of the server over the window, into FILE (perf report -i FILE), "
                        "and its samples split: kernel write, the peer's receive inside it, read, epoll, other, user")
    p.add_argument("--gc", action="store_true",
                   help="the garbage collector's collections in the window by generation (tools/gcprobe/sitecustomize.py)")
    p.add_argument("--pairs", type=number(int, 1), default=1, metavar="K",
                   help="with --before: K before/after pairs of windows, alternated (default 1)")
    p.add_argument("--before", type=_checkout, metavar="DIR",
                   help="A/B: the checkout measured before each window of --root, and the after/before ratios")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.pairs > 1 and args.before is None:
        parser.error("--pairs needs --before DIR (the checkout to compare with)")
    if args.players > 20000:
        parser.error(f"--players must be at most 20000, got {args.players}")
    if args.pairs > 20:
        parser.error(f"--pairs must be at most 20, got {args.pairs}")
    if len(os.sched_getaffinity(0)) < 2:
        parser.error(f"needs 2 CPUs (server on one, load generator on another), this process may use "
                     f"{len(os.sched_getaffinity(0))}")
    if args.perf is not None and args.before is not None:
        parser.error("--perf records one window: not with --before")
    for flag, tool in (("--syscalls", "perf"), ("--perf", "perf"), ("--segments", "ss")):
        if getattr(args, flag[2:]) not in (None, False) and shutil.which(tool) is None:
            print(f"{PROG}: error: {flag} needs {tool}, which is not on PATH", file=sys.stderr)
            return 1
    out = run_or_exit(PROG, lambda: run(args), BenchError)
    if args.json:
        print(json.dumps(out))
    elif args.before is None:
        print(_line(out))
    else:
        for p in out["pairs"]:
            print(_line(p["before"]), _line(p["after"]), _pair_line(p), sep="\n")
        print(f"after / before, median of {len(out['pairs'])} pairs: {json.dumps(out['after_to_before_median'])}; ticks "
              f"skipped {out['ticks_skipped_before']} before, {out['ticks_skipped_after']} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())

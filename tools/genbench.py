"""``python -m tools.genbench``: what the C load generator itself costs per update, against a feeder that keeps up.

The sweep (``tools.bench --sweep``) must find the server's capacity, not the
load generator's, so the generator (``build/loadgen``) has to be measured on
its own: against a server that can really feed ``--clients`` clients at 30
updates/s on this machine. Neither the game server nor ``tools.ceiling`` can
at 4,000 clients, so the far side is ``build/feeder`` (``tools/loadgen_c/feeder.c``,
``make loadgen``): a C program that writes one prebuilt ``update``-shaped
frame of ``--frame-bytes`` bytes to every client 30 times a second and checks
their inputs (``seq`` in order, ``ack`` a tick it sent).

Each run starts a fresh feeder pinned to the first CPU of this process's
affinity and one generator binary pinned to the second (``--pin``), waits for
the generator's ``window_start`` and ``window_end`` lines, and reads at both:
the generator's and the feeder's CPU from ``/proc/PID/stat`` (user and system,
clock ticks) and ``/proc/PID/schedstat`` (run time, ns), the CPU of the
``ksoftirqd`` threads (loopback work deferred out of both processes' context),
and the feeder's counters. The generator's **µs per update** is its user +
system CPU over the window divided by the updates its clients received (each
answered with one ``input``).

What is charged to whom (this kernel: tick-based accounting, no
``IRQ_TIME_ACCOUNTING``, so softirq work is billed to the task it interrupts):
on loopback a ``send`` runs TCP's transmit path *and* the peer socket's
receive path in the sender's context. The feeder pays for delivering updates
into the generator's sockets (and waking it); the generator pays for copying
them out (``recv``), for its inputs' whole way into the feeder's sockets, and
for any ACK or window update its ``recv`` sends. Work the kernel defers to
``ksoftirqd`` is reported apart.

``--baseline REV`` also builds ``tools/loadgen_c/loadgen.c`` as of git
revision REV (``build/loadgen-REV``, the same gcc flags) and measures it in
the same run, alternating with the current one ``--rounds`` times (the
median of each is compared), so the figures are a before/after ratio on the
same busy machine. ``--together`` runs both at the same time instead, on the
same CPU against one feeder: on a machine whose load changes from one window
to the next (other people's tests), only that compares like with like.
``--perf`` also profiles the current generator over its window (``perf record -e
cpu-clock -g``) and splits its samples: user space, its sends' transmit path,
the feeder socket's receive path run inside its sends, its receives, waiting.
``--json`` prints one object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import queue
import signal
import subprocess
import statistics
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tools.bench import ROOT, BenchError
from tools.cli import Parser, number, run_or_exit

PROG = "python -m tools.genbench"
BUILD = ROOT / "build"
LOADGEN = BUILD / "loadgen"
FEEDER = BUILD / "feeder"
CFLAGS = ["-O2", "-Wall", "-Wextra"]
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> tuple[float, float, float]:
    """Process ``pid``'s user and system CPU seconds (``/proc/PID/stat``) and its run time (``schedstat``), so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    run_ns = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK, run_ns / 1e9


def ksoftirqd_pids() -> list[int]:
    """The pids of the kernel's per-CPU softirq threads."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().startswith("ksoftirqd/"):
                    pids.append(int(d.name))
            except OSError:
                continue
    return pids


def build_baseline(rev: str) -> Path:
    """``build/loadgen-REV``: ``tools/loadgen_c/loadgen.c`` as of git revision ``rev``, compiled like ``make loadgen``."""
    if not re.fullmatch(r"[\w./~^-]{1,64}", rev):
        raise BenchError(f"--baseline: not a git revision: {rev!r}")
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "tools/loadgen_c"], cwd=ROOT, capture_output=True,
                             timeout=30)
    if archive.returncode:
        raise BenchError(f"--baseline: {archive.stderr.decode().strip()}")
    safe = re.sub(r"[^\w.-]", "_", rev)
    src, binary = BUILD / f"src-{safe}", BUILD / f"loadgen-{safe}"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(src, filter="data")
    out = subprocess.run(["gcc", *CFLAGS, "-o", str(binary), str(src / "tools" / "loadgen_c" / "loadgen.c")],
                         capture_output=True, text=True, timeout=120)
    if out.returncode:
        raise BenchError(f"--baseline: gcc failed: {out.stderr[-300:]}")
    return binary


def _pinned(cpu: int | None) -> Callable[[], None] | None:
    return None if cpu is None else lambda: os.sched_setaffinity(0, {cpu})


def _read_json(stream: IO[str], deadline: float, what: str) -> dict[str, Any]:
    line = stream.readline()
    if not line or time.monotonic() > deadline:
        raise BenchError(f"{what} ended early")
    obj: dict[str, Any] = json.loads(line)
    return obj


def _follow(index: int, lg: subprocess.Popen[str], events: queue.Queue[tuple[int, dict[str, Any], float, tuple[float, float, float]]]) -> None:
    """Put each JSON line of generator ``lg`` on ``events`` with the time and its CPU then; a last ``{}`` at its end."""
    assert lg.stdout is not None
    for line in lg.stdout:
        try:
            obj = json.loads(line)
            events.put((index, obj, time.monotonic(), proc_cpu(lg.pid)))
        except (ValueError, OSError):
            continue
    events.put((index, {}, time.monotonic(), (0.0, 0.0, 0.0)))


PERF_DATA = BUILD / "genbench.perf.data"


def _start_perf(pid: int, duration: float) -> subprocess.Popen[bytes] | None:
    """``perf record`` of process ``pid``'s call stacks (cpu-clock) for most of the window; None without perf."""
    if shutil.which("perf") is None:
        return None
    return subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-g", "-p", str(pid), "-o", str(PERF_DATA), "--",
                             "sleep", str(max(1.0, duration - 1))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _perf_split(profiler: subprocess.Popen[bytes] | None) -> dict[str, Any]:
    """Where the profiled generator's samples were: user space, its sends' transmit path, the peer socket's receive
    path run inside its sends (loopback), its receives, waiting, the rest; percentages of all samples."""
    if profiler is None:
        return {"note": "perf is not installed"}
    profiler.wait(timeout=120)
    script = subprocess.run(["perf", "script", "-i", str(PERF_DATA)], capture_output=True, text=True, timeout=300)
    counts = dict.fromkeys(("user", "send", "peer_receive_in_send", "receive", "wait", "other"), 0)
    for sample in script.stdout.split("\n\n"):
        frames = [line for line in sample.splitlines()[1:] if line.strip()]
        if not frames:
            continue
        if "kernel" not in frames[0]:
            counts["user"] += 1
        elif re.search(r"\b(io_send|__sys_sendto)\b", sample):
            counts["peer_receive_in_send" if "net_rx_action" in sample else "send"] += 1
        elif re.search(r"\b(io_recv|__sys_recvfrom)\b", sample):
            counts["receive"] += 1
        elif re.search(r"\b(io_cqring_wait|do_epoll_wait|schedule)\b", sample):
            counts["wait"] += 1
        else:
            counts["other"] += 1
    total = sum(counts.values())
    if not total:
        return {"note": f"perf recorded nothing: {script.stderr.strip()[-200:] or 'no samples'}"}
    return {"samples": total, **{k: round(100 * v / total, 1) for k, v in counts.items()}}


def measure(binaries: list[Path], args: argparse.Namespace, feeder_cpu: int | None, lg_cpu: int | None) -> list[dict[str, Any]]:
    """One window of each of ``binaries`` (all at once when several, on the same CPU), each with ``args.clients``
    clients, against one fresh feeder; their figures. The feeder's are read at the first one's window."""
    feeder = subprocess.Popen([str(FEEDER), "--frame-bytes", str(args.frame_bytes), "--lifetime", "900"],
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, preexec_fn=_pinned(feeder_cpu))
    lgs: list[subprocess.Popen[str]] = []
    split: dict[str, Any] | None = None
    try:
        assert feeder.stdout is not None
        deadline = time.monotonic() + 120 + len(binaries) * args.clients / args.connect_rate + args.warmup + args.duration
        port = _read_json(feeder.stdout, deadline, "the feeder")["port"]
        events: queue.Queue[tuple[int, dict[str, Any], float, tuple[float, float, float]]] = queue.Queue()
        for i, binary in enumerate(binaries):
            lgs.append(subprocess.Popen(
                [str(binary), "--port", str(port), "--clients", str(args.clients), "--rate", str(args.connect_rate),
                 "--warmup", str(args.warmup), "--duration", str(args.duration),
                 "--timeout", str(60 + len(binaries) * args.clients / args.connect_rate)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, preexec_fn=_pinned(lg_cpu)))
            threading.Thread(target=_follow, args=(i, lgs[-1], events), daemon=True).start()
        soft = ksoftirqd_pids()
        profiler: subprocess.Popen[bytes] | None = None
        marks: list[dict[str, Any]] = [{} for _ in binaries]
        feeder_marks: dict[str, dict[str, Any]] = {}
        summaries: list[dict[str, Any]] = [{} for _ in binaries]
        ended = 0
        while ended < len(binaries):
            try:
                i, obj, t, cpu = events.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchError("the generators did not finish in time") from None
            event = obj.get("event")
            if not obj:
                ended += 1
            elif event in ("window_start", "window_end"):
                marks[i][event] = (t, cpu)
                if event == "window_start" and args.perf and binaries[i] == LOADGEN:
                    profiler = _start_perf(lgs[i].pid, args.duration)
                if i == 0:
                    feeder.send_signal(signal.SIGUSR1)
                    feeder_marks[event] = {"feeder": proc_cpu(feeder.pid), "soft": sum(sum(proc_cpu(p)[:2]) for p in soft),
                                           "counters": _read_json(feeder.stdout, deadline, "the feeder")}
            else:
                summaries[i] = obj
        if profiler is not None:
            split = _perf_split(profiler)
        for i, (binary, lg) in enumerate(zip(binaries, lgs)):
            lg.wait(timeout=30)
            if not summaries[i] or len(marks[i]) < 2:
                assert lg.stderr is not None
                raise BenchError(f"{binary.name} failed: {lg.stderr.read()[-300:]}")
    finally:
        for p in (*lgs, feeder):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    fa, fb = feeder_marks["window_start"], feeder_marks["window_end"]
    (t0, _), (t1, _) = marks[0]["window_start"], marks[0]["window_end"]
    all_updates = sum(x["updates_per_s_mean"] * x["clients"] * x["window_s"] for x in summaries)
    feeder_run = fb["feeder"][2] - fa["feeder"][2]
    ca, cb = fa["counters"], fb["counters"]
    out = []
    for binary, summary, m in zip(binaries, summaries, marks):
        (a_t, a), (b_t, b) = m["window_start"], m["window_end"]
        wall = b_t - a_t
        user, system, run = b[0] - a[0], b[1] - a[1], b[2] - a[2]
        updates = summary["updates_per_s_mean"] * summary["clients"] * summary["window_s"]
        per = 1e6 / updates if updates else 0.0
        out.append({
            "binary": binary.name, "together": len(binaries), "clients": args.clients, "connected": summary["connected"],
            "window_s": round(wall, 3), "updates_per_s_p1": summary["updates_per_s_p1"],
            "updates_per_s_p50": summary["updates_per_s_p50"], "updates_per_s_mean": summary["updates_per_s_mean"],
            "updates": int(updates), "frame_bytes": cb["frame_bytes"], "lg_cpu_user": round(user / wall, 3),
            "lg_cpu_system": round(system / wall, 3), "lg_cpu": round(run / wall, 3), "lg_us_per_update": round(run * per, 2),
            "lg_us_user": round(user * per, 2), "lg_us_system": round(system * per, 2),
            "lg_self_us_per_update": summary["cpu_us_per_update"], "lg_io": summary.get("io", "epoll"),
            "lg_updates_per_wait": round(updates / wall / summary["waits_per_s"], 1) if summary.get("waits_per_s") else None,
            "feeder_cpu": round(feeder_run / (t1 - t0), 3),
            "feeder_us_per_update": round(feeder_run * 1e6 / all_updates, 2) if all_updates else None,
            "ksoftirqd_cpu": round((fb["soft"] - fa["soft"]) / (t1 - t0), 3),
            "feeder_ticks_skipped": cb["ticks_skipped"] - ca["ticks_skipped"],
            "frames_skipped": cb["frames_skipped"] - ca["frames_skipped"],
            "inputs_per_update": round((cb["inputs"] - ca["inputs"]) / max(1, cb["frames_sent"] - ca["frames_sent"]), 3),
            "bad_inputs": cb["bad_inputs"], "errors": summary["errors"] + cb["errors"],
            "error_messages": summary["error_messages"] + ([cb["first_error"]] if cb["first_error"] else []),
            **({"perf_split": split} if split is not None and binary == LOADGEN else {}),
        })
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every run: the baseline (if any) and the current generator one after the other, or all at once with
    ``--together``, ``args.rounds`` times."""
    for binary in (LOADGEN, FEEDER):
        if not binary.exists():
            raise BenchError(f"{binary.relative_to(ROOT)} is missing: build it with `make loadgen`")
    binaries = ([build_baseline(args.baseline)] if args.baseline else []) + [LOADGEN]
    cpus = sorted(os.sched_getaffinity(0))
    feeder_cpu, lg_cpu = (cpus[0], cpus[1]) if args.pin else (None, None)
    runs: list[dict[str, Any]] = []
    for r in range(args.rounds):
        order = binaries if r % 2 == 0 else binaries[::-1]  # neither always first
        for group in ([order] if args.together else [[b] for b in order]):
            for x in measure(group, args, feeder_cpu, lg_cpu):
                runs.append(dict(x, round=r + 1))
                if not args.json:
                    print(_line(runs[-1]), file=sys.stderr, flush=True)
    out: dict[str, Any] = {"clients": args.clients, "frame_bytes": args.frame_bytes, "pinned": args.pin, "together": args.together,
                           "feeder_cpu": feeder_cpu, "loadgen_cpu": lg_cpu, "duration_s": args.duration, "runs": runs}
    if args.baseline:
        def median(name: str) -> float:
            return float(statistics.median(float(x["lg_us_per_update"]) for x in runs if x["binary"] == name))
        out["baseline_us_per_update"] = median(binaries[0].name)
        out["current_us_per_update"] = median(LOADGEN.name)
        out["current_to_baseline"] = round(out["current_us_per_update"] / out["baseline_us_per_update"], 3)
    return out


def _line(x: dict[str, Any]) -> str:
    return (f"{x['binary']} round {x['round']}: {x['connected']}/{x['clients']} clients, updates/s p1 {x['updates_per_s_p1']} "
            f"p50 {x['updates_per_s_p50']}; generator {x['lg_cpu']} cores ({x['lg_cpu_user']} user + {x['lg_cpu_system']} "
            f"system, {x['lg_io']}, {x['lg_updates_per_wait']} updates per wait), {x['lg_us_per_update']} µs/update ({x['lg_us_user']} user + {x['lg_us_system']} system); "
            f"feeder {x['feeder_cpu']} cores, ksoftirqd {x['ksoftirqd_cpu']}; feeder ticks skipped "
            f"{x['feeder_ticks_skipped']}, inputs per update {x['inputs_per_update']}, errors {x['errors']}"
            + (f"; perf % of samples {x['perf_split']}" if "perf_split" in x else ""))


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog=PROG, description="The C load generator's own CPU per update, against build/feeder (make loadgen).")
    p.add_argument("--clients", type=number(int, 1), default=4000, help="clients of the generator (default 4000)")
    p.add_argument("--frame-bytes", type=number(int, 32), default=1200, help="bytes of each update (default 1200)")
    p.add_argument("--warmup", type=number(float, 0), default=3.0, help="seconds before the window (default 3)")
    p.add_argument("--duration", type=number(float, 1), default=10.0, help="seconds of the window (default 10)")
    p.add_argument("--connect-rate", type=number(float, 1), default=2000.0, help="connections per second (default 2000)")
    p.add_argument("--rounds", type=number(int, 1), default=1, help="runs of each binary, alternating (default 1)")
    p.add_argument("--baseline", metavar="REV", help="also measure loadgen.c as of this git revision, in the same run")
    p.add_argument("--together", action="store_true",
                   help="run the baseline and the current generator at the same time (same CPU, same feeder), "
                        "so that both see the same machine; each has --clients clients")
    can_pin = len(os.sched_getaffinity(0)) >= 2
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=can_pin,
                   help=f"feeder on one CPU, generator on another (default {'on' if can_pin else 'off'})")
    p.add_argument("--perf", action="store_true",
                   help="also profile the current generator with perf (cpu-clock call stacks) over its window and split its "
                        "samples: user, send, the peer socket's receive inside its sends, receive, wait, other")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.clients > 20000:
        p.error(f"--clients must be at most 20000, got {args.clients}")
    if args.frame_bytes > 65535:
        p.error(f"--frame-bytes must be at most 65535, got {args.frame_bytes}")
    if args.pin and not can_pin:
        p.error("--pin needs at least 2 CPUs")
    out = run_or_exit(PROG, lambda: run(args), BenchError)
    if args.json:
        print(json.dumps(out))
    else:
        for key in ("baseline_us_per_update", "current_us_per_update", "current_to_baseline"):
            if key in out:
                print(f"{key}: {out[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

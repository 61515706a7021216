"""``python -m tools.browser_bench``: the browser client's frame time with many entities on screen.

Starts a server (``drift`` with ``--npcs`` NPCs by default; it records no
replay), opens the page in headless Chromium (Debian's ``/usr/bin/chromium``,
through Playwright) as a spectator showing the whole arena (or as a player,
``--view player``), and measures inside the page: the
interval between ``requestAnimationFrame`` callbacks and the time spent in
the frame's work (interpolation, camera, drawing). Prints one JSON object.

Example::

    .venv/bin/python -m tools.browser_bench --npcs 2000 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from game.rules import RULESET_NAMES
from tools.cli import Parser, number

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


def _drain(stream: Iterable[str]) -> None:
    for _ in stream:
        pass


def start_server(ruleset: str, npcs: int) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0", "--ruleset", ruleset, "--npcs", str(npcs),
         "--no-record"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"browser_bench: the server exited ({proc.wait()})")
        m = re.search(r"listening on ws://127\.0\.0\.1:(\d+)/ws", line)
        if m:
            # Keep reading stderr so the server never blocks on a full pipe.
            threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()
            return proc, int(m.group(1))
    proc.kill()
    raise SystemExit("browser_bench: the server did not start in time")


def measure(port: int, args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    view = args.view
    spectate = "1" if view == "arena" else "0"
    url = f"http://127.0.0.1:{port}/?autojoin=1&spectate={spectate}&view={view}&name=bench"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": args.width, "height": args.height}, device_scale_factor=args.dpr)
            page.goto(url)
            page.wait_for_function(
                f"() => window.__game && window.__game.state().phase === 'live' && window.__game.state().entityCount >= {args.npcs}",
                timeout=20_000,
            )
            time.sleep(args.warmup)
            page.evaluate("window.__game.resetFrameStats()")
            time.sleep(args.seconds)
            stats = page.evaluate("window.__game.frameStats()")
            state = page.evaluate("window.__game.state()")
            if args.screenshot:
                page.screenshot(path=args.screenshot)
        finally:
            browser.close()
    frame = stats["frame"]
    return {
        "ruleset": args.ruleset,
        "npcs": args.npcs,
        "view": view,
        "viewport": [args.width, args.height, args.dpr],
        "seconds": args.seconds,
        "entities": state["entityCount"],
        "drawn": state["drawnTotal"],
        "fps": round(1000 / frame["mean"], 1) if frame.get("mean") else 0,
        "frame_interval_ms": {k: round(v, 2) for k, v in frame.items()},
        "frame_work_ms": {k: round(v, 3) for k, v in stats["render"].items()},
        "desyncs": state["desyncs"],
        "updates_per_s": state["updatesPerSec"],
        "bytes_per_s": round(state["bytesPerSec"]),
    }


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m tools.browser_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--ruleset", choices=RULESET_NAMES, default="drift", help="ruleset of the server (default drift)")
    p.add_argument("--npcs", type=number(int, 0), default=2000, help="NPCs in the match, all on screen (default 2000)")
    p.add_argument("--seconds", type=number(float, 0.1), default=5.0, help="measuring time (default 5)")
    p.add_argument("--warmup", type=number(float, 0), default=1.0, help="seconds before measuring (default 1)")
    p.add_argument("--view", choices=["arena", "player"], default="arena",
                   help="arena: a spectator seeing the whole arena (default); player: playing, the camera on the player")
    p.add_argument("--width", type=number(int, 100), default=1280, help="viewport width, CSS pixels (default 1280)")
    p.add_argument("--height", type=number(int, 100), default=720, help="viewport height, CSS pixels (default 720)")
    p.add_argument("--dpr", type=number(float, 0.25), default=1.0, help="device pixel ratio (default 1)")
    p.add_argument("--chromium", default="/usr/bin/chromium", help="browser binary (default Debian's /usr/bin/chromium)")
    p.add_argument("--screenshot", default=None, metavar="PNG", help="save a screenshot at the end")
    args = p.parse_args(argv)
    if shutil.which(args.chromium) is None:
        p.error(f"--chromium {args.chromium}: no such browser (install Debian's chromium, or name one)")
    proc, port = start_server(args.ruleset, args.npcs)
    try:
        result = measure(port, args)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

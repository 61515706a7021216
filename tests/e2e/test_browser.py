"""The browser client in real headless Chromium against the real server.

Debian's Chromium (``/usr/bin/chromium``) through Playwright; never a
downloaded browser. Each test starts its own server (``start_server``),
opens the page, plays it with keys and the mouse, and checks the result on
the server side (``/api/match``) and through the page's debug hook
(``window.__game``). Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import ROOT, ServerProcess
from tests.netem import DelayProxy

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
    # Keep every page running at full speed though none has focus.
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
]
VIEWPORT = {"width": 1280, "height": 720}

#: Only where Debian's chromium is missing (``make test`` installs it, so the suite never skips there).
NEEDS_CHROMIUM = pytest.mark.skipif(not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
                                    reason="Debian's chromium is not installed")

pytestmark = [pytest.mark.timeout(90), NEEDS_CHROMIUM]

T = TypeVar("T")


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (``launch`` gives it a fresh temporary profile)."""
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                               args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Pages:
    """Pages in separate browser contexts (separate storage), closed at teardown; page errors collected."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.contexts: list[Any] = []
        self.errors: list[str] = []

    def open(self, url: str) -> Any:
        ctx = self.browser.new_context(viewport=VIEWPORT)
        self.contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("console", lambda m: self.errors.append(f"console.error: {m.text}") if m.type == "error" else None)
        page.goto(url)
        page.wait_for_function("() => window.__game !== undefined", timeout=10_000)
        return page

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.close()


@pytest.fixture
def pages(browser: Any) -> Iterator[Pages]:
    p = Pages(browser)
    yield p
    p.close()
    # The page must not throw; failed resource loads of a stopped server are expected in some tests.
    assert not [e for e in p.errors if e.startswith("pageerror")], p.errors


class LoopThread:
    """An asyncio loop in a background thread, for Python clients next to Playwright's sync API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Subprocesses (bots) a test starts; terminated by their own handles at teardown."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def start_bots(procs: list[subprocess.Popen[bytes]], server: ServerProcess, count: int, duration: float = 40) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "tools.bots", "--url", server.url, "--count", str(count), "--duration", str(duration),
         "--connect-rate", "0"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    ))


# -- helpers -------------------------------------------------------------------------


def state(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate("window.__game.state()")
    return result


def join(page: Any, name: str, spectate: bool = False) -> dict[str, Any]:
    page.fill("#name", name)
    page.click("#watch" if spectate else "#play")
    page.wait_for_function("() => { const s = window.__game.state(); return s.phase === 'live' && s.tick !== null; }", timeout=10_000)
    return state(page)


def wait_until(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def server_player(server: ServerProcess, name: str) -> dict[str, Any]:
    for p in server.get_json("/api/match")["players"]:
        if p["name"] == name:
            return dict(p)
    raise AssertionError(f"no player {name!r} on the server")


def hold(page: Any, key: str, seconds: float) -> None:
    page.keyboard.down(key)
    time.sleep(seconds)
    page.keyboard.up(key)


def settle(page: Any, server: ServerProcess, name: str, timeout: float = 5.0) -> dict[str, Any]:
    """Wait until the player stands still on the server (two reads a few ticks apart agree)."""
    def still() -> dict[str, Any] | None:
        a = server_player(server, name)
        time.sleep(0.15)
        b = server_player(server, name)
        return b if (a["x"], a["y"]) == (b["x"], b["y"]) else None
    return wait_until(still, timeout, what=f"{name} to stop")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def delay_proxy(loop: LoopThread, upstream_port: int, delay: float, jitter: float = 0.0) -> Iterator[DelayProxy]:
    """A ``DelayProxy`` (``delay`` seconds each way, give or take ``jitter``) running in ``loop`` while the block runs."""
    proxy = loop.run(DelayProxy(upstream_port, delay, jitter).start())
    try:
        yield proxy
    finally:
        loop.run(proxy.close())


def cut(loop: LoopThread, proxy: DelayProxy) -> None:
    """Drop the proxy's connections from outside the page, as a network failure would."""
    async def now() -> None:
        proxy.cut()
    loop.run(now())


# -- tests ---------------------------------------------------------------------------


def test_player_joins_and_moves_the_way_the_keys_say(start_server: Callable[..., ServerProcess], pages: Pages,
                                                      artifacts: Path) -> None:
    server = start_server("--ruleset", "arena", "--npcs", "0")  # no drones: nobody dies during the walk
    page = pages.open(server.http + "/")
    page.screenshot(path=str(artifacts / "browser-join-screen.png"))
    s = join(page, "Walker")
    assert s["ruleset"] == "arena" and s["me"] is not None and not s["spectate"]
    start = settle(page, server, "Walker")
    # Walk towards the middle (the spawn point is random), so no wall clamps a step.
    sx = 1 if start["x"] < 12000 else -1
    sy = 1 if start["y"] < 12000 else -1

    hold(page, "d" if sx > 0 else "a", 0.8)  # +x or -x only
    horiz = settle(page, server, "Walker")
    assert (horiz["x"] - start["x"]) * sx >= 48 * 10 and horiz["y"] == start["y"], (start, horiz)

    hold(page, "ArrowDown" if sy > 0 else "ArrowUp", 0.6)  # +y (screen down) or -y only
    vert = settle(page, server, "Walker")
    assert (vert["y"] - horiz["y"]) * sy >= 48 * 8 and vert["x"] == horiz["x"], (horiz, vert)

    keys = ("d" if sx > 0 else "a", "s" if sy > 0 else "w")  # the diagonal: 34 per axis per tick
    for k in keys:
        page.keyboard.down(k)
    time.sleep(0.6)
    for k in keys:
        page.keyboard.up(k)
    diag = settle(page, server, "Walker")
    dx, dy = (diag["x"] - vert["x"]) * sx, (diag["y"] - vert["y"]) * sy
    # n diagonal steps of 34 per axis; ticks may fall between the two key presses (or
    # releases), so each axis may add straight steps of 48: one or two on a quiet machine,
    # more when the browser is slow to take the second key (a busy machine). The
    # diagonal's own length per axis stays exact.
    assert any((dx - 48 * a) == (dy - 48 * b) >= 34 * 8 and (dx - 48 * a) % 34 == 0
               for a in range(10) for b in range(10)), (vert, diag)

    # Standing still, the prediction sits exactly on the server's position.
    wait_until(lambda: (p := state(page)["mePredicted"]) and (p["x"], p["y"]) == (diag["x"] / 8, diag["y"] / 8),
               5, what="the prediction to settle on the server position")
    s = state(page)
    assert s["desyncs"] == 0 and s["checksumOk"]
    # The prediction agrees with the server tick after tick: a tick whose input came late (its queue ran
    # dry: a busy machine) stands the player still, which the prediction does not feel; a correction is
    # an input the server says it dropped, none is at an update that applied one new input per tick
    # (unexplained). A wrong rule or a misread ack disagrees at every key change and more, unexplained.
    queue = server_player(server, "Walker")["inputs"]
    assert s["unexplained"] == 0 and s["corrections"] <= queue["dropped"], (s, queue)
    assert s["corrections"] <= 5, (s, queue)
    page.screenshot(path=str(artifacts / "browser-walker.png"))


def test_mouse_aims_and_click_fires(start_server: Callable[..., ServerProcess], pages: Pages, artifacts: Path) -> None:
    server = start_server("--ruleset", "arena", "--npcs", "0")
    page = pages.open(server.http + "/")
    join(page, "Gunner")
    # Aim straight down from the player (drawn at the centre of the view): angle 64.
    page.mouse.move(VIEWPORT["width"] / 2, VIEWPORT["height"] / 2 + 200)
    page.mouse.down()
    # The muzzle flash shows as soon as fire is sent, before any bullet comes back, and so does the shot
    # itself, predicted (shots.js): drawn as a bullet while none of the server's has come yet.
    wait_until(lambda: state(page)["flashes"] >= 1, 2, interval=0.01, what="the local muzzle flash")
    wait_until(lambda: (s := state(page))["ownShots"]["fired"] >= 1 and s["drawn"].get("bullet", 0) >= 1, 2,
               interval=0.01, what="our shot drawn at once")
    page.screenshot(path=str(artifacts / "browser-muzzle-flash.png"))
    bullets = wait_until(lambda: [b for b in page.evaluate("window.__game.entities('bullet')") if b["vy"] > 0], 5,
                         what="a bullet")
    page.mouse.up()
    assert all(b["vx"] == 0 for b in bullets), bullets
    wait_until(lambda: server_player(server, "Gunner")["aim"] == 64, 3, what="aim 64 on the server")
    # The server's bullets of our shots are claimed by the predicted ones (drawn instead of them).
    wait_until(lambda: state(page)["ownShots"]["hidden"] >= 1, 3, what="a server bullet claimed by our shot")


def test_bots_are_mirrored_and_drawn(start_server: Callable[..., ServerProcess], pages: Pages,
                                     processes: list[subprocess.Popen[bytes]], artifacts: Path) -> None:
    server = start_server("--ruleset", "arena")
    start_bots(processes, server, 5)
    wait_until(lambda: server.get_json("/healthz")["players"] >= 5, 15, what="bots to join")
    page = pages.open(server.http + "/")
    join(page, "Watcher", spectate=True)
    s = wait_until(lambda: (st := state(page))["drawn"].get("player", 0) >= 5 and st, 10, what="bots drawn")
    assert s["kinds"]["player"] >= 5 and s["kinds"]["drone"] == 40 and s["kinds"]["pellet"] == 150
    assert s["drawn"]["drone"] == 40 and s["drawn"]["pellet"] == 150  # the whole arena is on screen
    bots = [p for p in s["roster"] if p["name"].startswith("bot")]
    assert len(bots) >= 5 and all(p["online"] for p in bots)
    mirrored = {e["id"] for e in page.evaluate("window.__game.entities('player')")}
    assert {p["entity"] for p in bots} <= mirrored
    time.sleep(1.5)  # let the leaderboard and the kill feed fill in
    page.screenshot(path=str(artifacts / "browser-spectator-arena.png"))

    # Follow a bot with Tab, then back to the whole arena with V.
    page.keyboard.press("Tab")
    s = wait_until(lambda: (st := state(page))["follow"] is not None and not st["arenaView"] and st, 3, what="follow")
    assert s["follow"] in {p["entity"] for p in s["roster"]}
    first = s["follow"]
    page.keyboard.press("Tab")
    assert wait_until(lambda: state(page)["follow"] != first, 3, what="the next player")
    time.sleep(0.6)
    page.screenshot(path=str(artifacts / "browser-spectator-follow.png"))
    page.keyboard.press("v")
    assert wait_until(lambda: state(page)["arenaView"], 3, what="whole arena view")
    assert state(page)["desyncs"] == 0


HUD_RECTS = """() => {
  const rect = (id) => { const r = document.getElementById(id).getBoundingClientRect();
                         return r.height > 0 ? [r.left, r.top, r.right, r.bottom] : null; };
  const g = window.__game.game, s = g.schema, r = g.renderer;
  const [x0, y0] = r.toScreen(0, 0), [x1, y1] = r.toScreen(s.width, s.height);
  const rows = [...document.querySelectorAll('#scores li')].filter((li) => li.getBoundingClientRect().height > 0).length;
  return { arena: [x0, y0, x1, y1], rows, w: innerWidth, h: innerHeight,
           ...Object.fromEntries(['me-card', 'leave', 'leaderboard', 'killfeed', 'netstats', 'spectating'].map((id) => [id, rect(id)])) };
}"""


def overlap(a: list[float] | None, b: list[float] | None) -> bool:
    return a is not None and b is not None and a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_hud_panels_leave_the_arena_and_each_other_clear_on_desktop_and_mobile(
        start_server: Callable[..., ServerProcess], pages: Pages, processes: list[subprocess.Popen[bytes]],
        artifacts: Path) -> None:
    server = start_server("--ruleset", "arena")
    start_bots(processes, server, 6)
    wait_until(lambda: server.get_json("/healthz")["players"] >= 6, 15, what="bots to join")
    feed = "() => { for (const [a, b] of [['bot1', 'bot2'], ['a drone', 'bot3'], ['bot4', 'bot5']]) window.__game.kill(a, b); }"
    # Desktop, the whole arena: the bottom bars sit below the arena; Leave takes the empty card's place.
    desk = pages.open(server.http + "/")
    join(desk, "Wide", spectate=True)
    time.sleep(1.0)  # the camera settles on the fitted zoom
    r = desk.evaluate(HUD_RECTS)
    assert r["arena"][3] <= min(r["spectating"][1], r["netstats"][1]), r
    assert r["me-card"] is None and r["leave"][1] <= 20, r
    desk.screenshot(path=str(artifacts / "browser-hud-desktop-arena.png"))
    # A 390 px phone, playing: a folded leaderboard, and the kill feed under the panels.
    ctx = pages.browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    pages.contexts.append(ctx)
    phone = ctx.new_page()
    phone.goto(server.http + "/")
    phone.wait_for_function("() => window.__game !== undefined")
    join(phone, "Narrow")
    phone.evaluate(feed)
    time.sleep(0.6)
    r = phone.evaluate(HUD_RECTS)
    assert r["rows"] <= 4, r
    for a, b in [("killfeed", "me-card"), ("killfeed", "leaderboard"), ("killfeed", "leave"), ("me-card", "leaderboard")]:
        assert not overlap(r[a], r[b]), (a, b, r)
    assert r["leaderboard"][2] <= r["w"] and r["killfeed"][2] <= r["w"], r
    phone.screenshot(path=str(artifacts / "browser-hud-mobile-player.png"))
    phone.click("#lb-toggle")
    wait_until(lambda: phone.evaluate(HUD_RECTS)["rows"] > 4, 10, what="the unfolded leaderboard")


def test_two_pages_see_each_other(start_server: Callable[..., ServerProcess], pages: Pages, artifacts: Path) -> None:
    server = start_server("--ruleset", "arena", "--npcs", "0")
    a, b = pages.open(server.http + "/"), pages.open(server.http + "/")
    sa, sb = join(a, "Alice"), join(b, "Bob")
    for page, other in ((a, sb["me"]), (b, sa["me"])):
        wait_until(lambda page=page, other=other: any(p["entity"] == other for p in state(page)["roster"]), 5,
                   what="the other player in the roster")
        wait_until(lambda page=page, other=other: any(e["id"] == other for e in page.evaluate("window.__game.entities('player')")),
                   5, what="the other player in the mirror")
    # Alice was live before Bob joined: his entry came to her as a roster_delta, Bob's roster came whole.
    ra, rb = state(a), state(b)
    assert ra["roster"] == rb["roster"] and ra["rosterRev"] == rb["rosterRev"] >= 2 and ra["rosterGaps"] == 0
    # Bob walks; Alice's mirror follows him to where the server has him.
    hold(b, "d", 0.5)
    bob = settle(b, server, "Bob")
    wait_until(lambda: [(e["x"], e["y"]) for e in a.evaluate("window.__game.entities('player')") if e["id"] == sb["me"]]
               == [(bob["x"], bob["y"])], 5, what="Alice to see Bob where the server has him")
    assert state(a)["desyncs"] == 0 and state(b)["desyncs"] == 0
    a.screenshot(path=str(artifacts / "browser-two-pages-alice.png"))


def test_page_mirror_checksum_matches_the_server(start_server: Callable[..., ServerProcess], pages: Pages,
                                                 processes: list[subprocess.Popen[bytes]], loop: LoopThread) -> None:
    from tools.client import GameClient

    server = start_server("--ruleset", "arena")
    start_bots(processes, server, 3)
    page = pages.open(server.http + "/")
    join(page, "Checker")
    # An independent reference: the Python client's verified mirror of the same match.
    ref = GameClient(server.url, "reference", spectate=True)
    loop.run(ref.connect())
    try:
        hold(page, "d", 0.3)
        matched = missed = 0
        for _ in range(20):
            got = page.evaluate("window.__game.mirrorChecksum()")
            loop.run(ref.wait_tick(got["tick"] + 1))
            snap = ref.states.get(got["tick"])
            if snap is None:
                # The reference was sent no update for that tick (a client lagging behind its acks gets
                # none until it acks, issue 12): compare another tick, every compared one strictly.
                missed += 1
            else:
                assert got["sum"] == snap.checksum and got["count"] == len(snap.ids)
                matched += 1
                if matched == 5:
                    break
            time.sleep(0.2)
        assert matched == 5, f"{matched} ticks compared, {missed} the reference was not sent"
        s = state(page)
        # Checksums strict; the update rate only shows the page keeps up (30 on a quiet machine,
        # 18 seen with two suites running at once, 10 at load 11).
        assert s["desyncs"] == 0 and s["checksumOk"] and s["updatesPerSec"] >= 6
    finally:
        loop.run(ref.close())


def test_dropped_connection_shows_a_banner_and_resumes_the_same_player(
        start_server: Callable[..., ServerProcess], pages: Pages, artifacts: Path) -> None:
    server = start_server("--ruleset", "arena", "--npcs", "0", "--hold", "20")
    page = pages.open(server.http + "/")
    before = join(page, "Phoenix")
    page.evaluate("window.__game.drop()")
    banner = wait_until(lambda: state(page)["banner"], 3, interval=0.01, what="the reconnect banner")
    assert "Reconnecting" in banner
    page.screenshot(path=str(artifacts / "browser-reconnecting.png"))
    after = wait_until(lambda: (s := state(page))["reconnects"] == 1 and s["phase"] == "live" and s, 10, what="resume")
    assert after["resumed"] is True
    assert (after["me"], after["player"], after["token"]) == (before["me"], before["player"], before["token"])
    assert "welcome back" in (after["banner"] or "")
    players = server.get_json("/api/match")["players"]
    assert [p["name"] for p in players] == ["Phoenix"] and players[0]["online"]
    # Still playable after the resume.
    start = settle(page, server, "Phoenix")
    hold(page, "a", 0.4)
    assert settle(page, server, "Phoenix")["x"] < start["x"]
    assert state(page)["desyncs"] == 0


def test_connection_cut_outside_the_page_shows_a_banner_and_resumes_the_same_player(
        start_server: Callable[..., ServerProcess], pages: Pages, loop: LoopThread) -> None:
    server = start_server("--ruleset", "arena", "--npcs", "0", "--hold", "20")
    with delay_proxy(loop, server.port, 0.0) as proxy:
        page = pages.open(f"http://127.0.0.1:{proxy.port}/")
        before = join(page, "Tunnel")
        held = server_player(server, "Tunnel")
        assert (held["player"], held["entity"], held["online"]) == (before["player"], before["me"], True)
        # Watch the server's side of the drop in the background: the player goes offline, held.
        seen: list[dict[str, Any]] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.append(server_player(server, "Tunnel"))
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            time.sleep(0.1)
            cut(loop, proxy)  # no close frame: the page only sees its socket die (1006)
            banner = wait_until(lambda: state(page)["banner"], 3, interval=0.01, what="the reconnect banner")
            assert "Reconnecting" in banner, banner
            after = wait_until(lambda: (s := state(page))["reconnects"] == 1 and s["phase"] == "live" and s, 10,
                               what="the resume")
        finally:
            stop.set()
            watcher.join(5)
        assert after["resumed"] is True and "welcome back" in (after["banner"] or "")
        assert (after["me"], after["player"], after["token"]) == (before["me"], before["player"], before["token"])
        # On the server: the same player and entity, held offline during the drop and back online after it.
        assert any(not p["online"] for p in seen), "the server never saw the player go offline"
        assert all((p["player"], p["entity"]) == (held["player"], held["entity"]) for p in seen)
        players = server.get_json("/api/match")["players"]
        assert [(p["name"], p["player"], p["entity"], p["online"]) for p in players] == \
            [("Tunnel", held["player"], held["entity"], True)]
        # Still played through the proxy after the resume.
        start = settle(page, server, "Tunnel")
        hold(page, "d" if start["x"] < 12000 else "a", 0.4)
        assert settle(page, server, "Tunnel")["x"] != start["x"]
        assert state(page)["desyncs"] == 0


def test_escape_asks_before_leaving_and_a_second_escape_leaves(start_server: Callable[..., ServerProcess],
                                                               pages: Pages) -> None:
    server = start_server("--ruleset", "arena", "--npcs", "0")
    page = pages.open(server.http + "/")
    join(page, "Careful")
    page.keyboard.press("Escape")
    s = wait_until(lambda: (st := state(page))["confirmLeave"] and st, 2, what="the leave question")
    assert s["phase"] == "live" and s["connected"]
    page.click("#confirm-leave-no")  # Stay
    assert not state(page)["confirmLeave"]
    time.sleep(0.3)
    assert state(page)["phase"] == "live" and server_player(server, "Careful")["online"]
    page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    wait_until(lambda: state(page)["phase"] == "idle", 2, what="the join screen")
    assert not state(page)["confirmLeave"] and page.is_visible("#join")
    # Leaving is leaving: the player is removed at once, not held for a reconnect.
    wait_until(lambda: all(p["name"] != "Careful" for p in server.get_json("/api/match")["players"]), 3,
               what="the player to be removed")


def test_server_restart_reconnects_with_backoff_as_a_new_player(start_server: Callable[..., ServerProcess],
                                                                pages: Pages) -> None:
    port = free_port()
    server = start_server("--ruleset", "arena", "--port", str(port))
    page = pages.open(server.http + "/")
    before = join(page, "Survivor")
    server.stop()
    wait_until(lambda: "Reconnecting" in (state(page)["banner"] or ""), 5, what="the reconnect banner")
    time.sleep(1.0)  # a failed attempt or two while the server is down
    assert state(page)["phase"] == "reconnecting"
    start_server("--ruleset", "arena", "--port", str(port))
    after = wait_until(lambda: (s := state(page))["phase"] == "live" and s["reconnects"] == 1 and s, 20,
                       what="the reconnect")
    # The new server never saw the old token: a new player, said so on the banner.
    assert after["resumed"] is False and after["token"] != before["token"]
    assert "new player" in (after["banner"] or "")
    assert after["desyncs"] == 0


def test_a_page_sent_to_another_server_asks_that_server_and_plays_there(
        start_server: Callable[..., ServerProcess], pages: Pages) -> None:
    home = start_server("--ruleset", "arena", "--npcs", "0")
    # Another site's page may open WebSockets only where its origin is allowed (--allowed-origin, issue 12).
    other = start_server("--ruleset", "drift", "--npcs", "50", "--allowed-origin", home.http)
    ctx = pages.browser.new_context(viewport=VIEWPORT)
    pages.contexts.append(ctx)
    page = ctx.new_page()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    page.goto(f"{home.http}/?server={other.url}")
    page.wait_for_function("() => window.__game !== undefined")
    wait_until(lambda: f"{other.http}/healthz" in asked, 5, what="the other server's /healthz")
    assert f"{home.http}/healthz" not in asked, asked
    # The join screen runs no timers; a match does, until it is left.
    assert page.evaluate("window.__game.game.timers") is None
    s = join(page, "Visitor")
    assert s["ruleset"] == "drift" and page.evaluate("window.__game.game.timers !== null")
    assert [p["name"] for p in other.get_json("/api/match")["players"]] == ["Visitor"]
    assert home.get_json("/api/match")["players"] == []
    page.click("#leave")
    wait_until(lambda: state(page)["phase"] == "idle", 3, what="the join screen")
    assert page.evaluate("window.__game.game.timers") is None


def test_full_match_and_unreachable_server_get_clear_messages(start_server: Callable[..., ServerProcess],
                                                              pages: Pages, loop: LoopThread) -> None:
    from tools.client import GameClient

    server = start_server("--ruleset", "arena", "--max-players", "1")
    first = GameClient(server.url, "first")
    loop.run(first.connect())
    assert first.welcome is not None
    try:
        # That match by its id: /ws itself would go on to another match of the default room (issue 9).
        page = pages.open(f"{server.http}/?match={first.welcome.match}")
        page.fill("#name", "Latecomer")
        page.click("#play")
        page.wait_for_selector("#join-error:not([hidden])", timeout=10_000)
        text = page.inner_text("#join-error")
        assert "full" in text.lower(), text
        assert state(page)["phase"] == "idle"
    finally:
        loop.run(first.close())
    server.stop()
    page.click("#play")
    page.wait_for_function("() => (window.__game.state().joinError || '').includes(\"Can't reach\")", timeout=10_000)


def test_prediction_is_immediate_and_exact_at_100ms_latency(start_server: Callable[..., ServerProcess], pages: Pages,
                                                            loop: LoopThread, artifacts: Path) -> None:
    server = start_server("--ruleset", "arena", "--npcs", "0")
    with delay_proxy(loop, server.port, 0.050) as proxy:  # 50 ms each way: 100 ms round trip
        page = pages.open(f"http://127.0.0.1:{proxy.port}/")
        join(page, "Laggy")
        wait_until(lambda: (r := state(page)["rtt"]) is not None and r > 90, 5, what="a 100 ms round trip")
        start = settle(page, server, "Laggy")
        key = "d" if start["x"] < 12000 else "a"
        page.evaluate("""() => {
          // Note, in the page, when the predicted position first moves and where the server had us then.
          const g = window.__game.game, p = g.prediction.predictor, x0 = p.x, t0 = performance.now();
          window.__moved = null;
          const poll = () => {
            if (p.x !== x0) {
              const me = window.__game.entities("player").find((e) => e.id === g.me);
              window.__moved = { ms: performance.now() - t0, serverX: me.x, x0 };
            } else requestAnimationFrame(poll);
          };
          poll();
        }""")
        page.keyboard.down(key)
        moved = wait_until(lambda: page.evaluate("window.__moved"), 1, interval=0.01, what="the predicted move")
        # The player moves on screen at once, while the page's own copy of the server state
        # (100 ms old) still has it where it stood: that order is the strict check. On a quiet
        # machine the move comes within a tick or two (under 90 ms); a busy one delays the
        # page's frames, hence the margin on the time.
        assert moved["ms"] < 500, moved
        assert moved["serverX"] == moved["x0"] == start["x"], moved
        time.sleep(0.8)
        page.keyboard.up(key)
        end = settle(page, server, "Laggy")
        wait_until(lambda: (p := state(page)["mePredicted"]) and (p["x"], p["y"]) == (end["x"] / 8, end["y"] / 8), 3,
                   what="the prediction to land on the server position")
        s = state(page)
        # Holding a key at a steady 100 ms the prediction agrees with every update: a tick whose input
        # came late stands the player still, which the prediction does not feel; a correction is an input
        # the server dropped. A wrong rule disagrees on every update (about 25).
        queue = server_player(server, "Laggy")["inputs"]
        assert s["unexplained"] == 0 and s["corrections"] <= queue["dropped"], (s, queue)
        assert s["corrections"] <= 3, (s, queue)
        assert s["desyncs"] == 0
        page.screenshot(path=str(artifacts / "browser-latency.png"))


def test_a_player_in_a_filtered_match_sees_its_view_verified_and_entities_fade_at_its_edge(
        start_server: Callable[..., ServerProcess], pages: Pages, loop: LoopThread) -> None:
    from game.rules import get_ruleset
    from server.protocol.interest import ViewGrid, ViewShape, reference_state
    from tools.client import GameClient

    options = {"npcs": 1500, "size": 2500, "view": 350, "view_cell": 150}
    server = start_server("--ruleset", "drift", "--seed", "3", *(a for k, v in options.items() for a in ("--option", f"{k}={v}")),
                          "--option", "view_spectators=1")
    page = pages.open(server.http + "/")
    s = join(page, "Scout")
    assert s["interest"] == {"shape": "circle", "radius": 350, "cell": 150}
    # The whole world, for reference: a spectator sees everything (view_spectators=1).
    ref = GameClient(server.url, "reference", spectate=True)
    loop.run(ref.connect())
    try:
        hold(page, "d", 1.0)
        hold(page, "s", 1.0)
        spec = get_ruleset("drift").spec
        grid = ViewGrid(spec.resolve(spec.resolve_options(options)), ViewShape.from_options(options))
        for _ in range(3):
            got = page.evaluate("window.__game.mirrorChecksum()")
            loop.run(ref.wait_tick(got["tick"] + 1))
            world = ref.states.get(got["tick"])
            assert world is not None, f"the reference client lacks tick {got['tick']}"
            view = reference_state(grid, world, s["me"])
            assert (got["sum"], got["count"]) == (view.checksum, len(view.ids)) and 0 < got["count"] < len(world.ids)
            time.sleep(0.2)
        s = state(page)
        assert s["desyncs"] == 0 and s["checksumOk"]
        assert s["faded"]["in"] > 0 and s["faded"]["out"] > 0, s["faded"]  # walking, it met entities and left some
    finally:
        loop.run(ref.close())

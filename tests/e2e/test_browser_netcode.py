"""The browser client's netcode in real headless Chromium against the real server (issue 11).

Presses are never lost (a press shorter than a tick fires, ten quick presses
fire ten times), the prediction agrees with the server's every update on
loopback and nearly every one through the delay proxy with jitter, a frozen
page answers its backlog with one input and plays on, and leaving removes the
player at once. Launched as ``test_browser.py`` does (its ``browser``
fixture, ``Pages`` and helpers). The server's own counts of each player's
input queue (``/api/match``: ``inputs.starved``, ``inputs.dropped``) say
which ticks had no new input (the player stood still there, which the
prediction does not feel) and which inputs were never applied; every
correction the page counts must be one of the latter.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from tests.conftest import ServerProcess
from tests.e2e.test_browser import (  # noqa: F401 (fixtures)
    NEEDS_CHROMIUM, VIEWPORT, LoopThread, Pages, browser, delay_proxy, join, loop, pages, server_player, settle, state,
    wait_until,
)

pytestmark = [pytest.mark.timeout(120), NEEDS_CHROMIUM]

#: Milliseconds of one tick of the default 30 Hz match.
TICK_MS = 1000 / 30
#: Arena's gun: ticks from one shot to the next (game/arena/spec.py).
COOLDOWN = 6

#: Collects the id of every bullet the page's mirror holds (a bullet lives 40 ticks: none is missed).
COLLECT_BULLETS = """() => {
  window.__bullets = new Set();
  setInterval(() => { for (const b of window.__game.entities('bullet')) window.__bullets.add(b.id); }, 15);
}"""

#: Logs every update the page processes: its tick, when, whether it was stale, and how many inputs the page sent for it.
LOG_UPDATES = """() => {
  const g = window.__game.game, handle = g.onUpdate.bind(g);
  window.__updates = [];
  g.onUpdate = (ev, now) => {
    const seq = g.seq;
    handle(ev, now);
    window.__updates.push({ tick: ev.msg.tick, at: now, stale: ev.stale, sent: g.seq - seq });
  };
}"""


def capture(page: Any) -> list[bytes]:
    """Every binary frame the page sends on its WebSockets from now on, in order."""
    frames: list[bytes] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: frames.append(payload)))
    return frames


def sent_inputs(frames: list[bytes]) -> list[dict[str, Any]]:
    """The ``input`` messages among ``frames``."""
    return [m for m in (msgpack.unpackb(f) for f in frames if isinstance(f, bytes)) if m.get("t") == "input"]


def all_sent(page: Any, frames: list[bytes]) -> list[dict[str, Any]]:
    """The inputs the page says it has sent so far, once ``frames`` holds them all (Playwright hands its
    events over while it runs a call): every ``seq`` it numbered but those it skipped (the server's ``surplus``)."""
    s = state(page)
    count = s["seq"] - s["skipped"]
    wait_until(lambda: len(sent_inputs(frames)) >= count, 3, what="the page's inputs")
    return sent_inputs(frames)[:count]


def names(server: ServerProcess) -> list[str]:
    return [p["name"] for p in server.get_json("/api/match")["players"]]


def aim_at_the_middle(page: Any, server: ServerProcess, name: str) -> None:
    """Point the mouse from the player (drawn at the view's centre) towards the arena's middle: no bullet hits a wall at once."""
    me = server_player(server, name)
    angle = math.atan2(12000 - me["y"], 12000 - me["x"])
    page.mouse.move(VIEWPORT["width"] / 2 + 150 * math.cos(angle), VIEWPORT["height"] / 2 + 150 * math.sin(angle))


def bullets(page: Any) -> int:
    count: int = page.evaluate("window.__bullets.size")
    return count


def walk(page: Any, seconds: float, seed: int) -> int:
    """Hold a new set of direction keys (or none) every 0.25-0.4 s for ``seconds``; returns how many changes."""
    rng = random.Random(seed)
    combos = [(), ("d",), ("s",), ("a",), ("w",), ("d", "s"), ("a", "w"), ("d", "w"), ("a", "s")]
    held: tuple[str, ...] = ()
    changes = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        nxt = rng.choice([c for c in combos if c != held])
        for k in held:
            if k not in nxt:
                page.keyboard.up(k)
        for k in nxt:
            if k not in held:
                page.keyboard.down(k)
        held = nxt
        changes += 1
        time.sleep(rng.uniform(0.25, 0.4))
    for k in held:
        page.keyboard.up(k)
    return changes


COUNTS = ("corrections", "unexplained", "reconciled", "starved", "dropped")


def counts(page: Any, server: ServerProcess, name: str) -> dict[str, int]:
    """The page's counts of its prediction, then the server's of the player's input queue (read after: never fewer)."""
    s = state(page)
    queue = server_player(server, name)["inputs"]
    return {k: int(s[k]) if k in s else int(queue[k]) for k in COUNTS}


def assert_prediction_agrees(page: Any, server: ServerProcess, name: str, most: float,
                             since: dict[str, int] | None = None) -> dict[str, int]:
    """After play: the prediction lands on the server's position; no correction is the prediction's fault; and
    the corrections (``since`` a reading of ``counts``), each an input the server says it dropped, are
    ``most`` of the updates at most."""
    end = settle(page, server, name)
    wait_until(lambda: (p := state(page)["mePredicted"]) and (p["x"], p["y"]) == (end["x"] / 8, end["y"] / 8), 3,
               what="the prediction to land on the server position")
    now = counts(page, server, name)
    d = {k: now[k] - (since or {}).get(k, 0) for k in COUNTS}
    # Strict whatever the machine's load: a correction at an update whose ticks each applied a new input
    # of ours (the server starved none, dropped none) can only be a wrong rule or a misread ack.
    assert d["unexplained"] == 0, d
    assert d["corrections"] <= d["dropped"], d
    assert d["corrections"] <= most * d["reconciled"], d
    s = state(page)
    assert s["desyncs"] == 0 and s["checksumOk"]
    return d


# -- tests ---------------------------------------------------------------------------


def test_a_press_shorter_than_a_tick_fires_once_and_ten_quick_presses_fire_ten_times(
        start_server: Callable[..., ServerProcess], pages: Pages) -> None:
    server = start_server("--ruleset", "arena", "--npcs", "0")
    ctx = pages.browser.new_context(viewport=VIEWPORT, has_touch=True)  # a laptop with a touch screen
    pages.contexts.append(ctx)
    page = ctx.new_page()
    page.on("pageerror", lambda e: pages.errors.append(f"pageerror: {e}"))
    frames = capture(page)
    page.goto(server.http + "/")
    page.wait_for_function("() => window.__game !== undefined", timeout=10_000)
    join(page, "Tapper")
    settle(page, server, "Tapper")
    aim_at_the_middle(page, server, "Tapper")
    page.evaluate(COLLECT_BULLETS)
    # One Space press released at once, in one task of the page: no input can sample it held. (Two
    # keyboard calls from here take a round trip each: a few ms, but more than a tick on a busy machine.)
    lasted = page.evaluate("""() => { const t = performance.now();
      for (const type of ['keydown', 'keyup']) dispatchEvent(new KeyboardEvent(type, { code: 'Space', key: ' ' }));
      return performance.now() - t; }""")
    assert lasted < 5, lasted
    wait_until(lambda: bullets(page) == 1, 3, what="the short press's bullet")
    time.sleep(0.5)
    assert bullets(page) == 1  # one press, one shot
    # Ten instant presses, Space and clicks in turn, 400 ms apart (the gun's cooldown is 200 ms), then a tap
    # on the right half of the screen (the aiming thumb's).
    for i in range(10):
        if i % 2:
            page.mouse.down()
            page.mouse.up()
        else:
            page.keyboard.press(" ")
        time.sleep(0.4)
    page.touchscreen.tap(VIEWPORT["width"] * 3 / 4, VIEWPORT["height"] / 2)
    time.sleep(0.5)  # its input goes out with the next update
    # Every press the page saw between two sends went out in one input with fire (a run of them while
    # held): twelve on a quiet machine; a busy one may hold two presses' events until the same send.
    fires = [m["in"][3] for m in all_sent(page, frames)]
    presses = sum(1 for i, f in enumerate(fires) if f and (i == 0 or not fires[i - 1]))
    assert presses >= 10, fires
    # Strict: the server applies those inputs one per tick in order, so each of them fires as the gun's
    # cooldown lets it (presses a stall bunched within six inputs share a shot).
    shots, cooldown = 0, 0
    for f in fires:
        cooldown = max(cooldown - 1, 0)
        if f and cooldown == 0:
            shots, cooldown = shots + 1, COOLDOWN
    assert shots >= 10, (shots, fires)
    queue = server_player(server, "Tapper")["inputs"]
    wait_until(lambda: bullets(page) >= shots - queue["dropped"], 6, what=f"{shots} bullets")
    time.sleep(0.3)
    # No more either, but for the cooldown's own clock: a tick that found the server's queue empty (a busy
    # machine) rests the button, so it never shoots again by itself (server and Node tests: exactly once),
    # though it lets the cooldown run a tick further in a held run.
    queue = server_player(server, "Tapper")["inputs"]
    assert bullets(page) <= shots + queue["starved"] // COOLDOWN, (bullets(page), shots, queue)
    assert state(page)["desyncs"] == 0


def test_prediction_agrees_with_every_update_over_15_s_of_play_on_loopback(
        start_server: Callable[..., ServerProcess], pages: Pages) -> None:
    server = start_server("--ruleset", "arena", "--npcs", "0")  # nothing hits the player: only the inputs move it
    page = pages.open(server.http + "/")
    join(page, "Runner")
    changes = walk(page, 15.0, seed=11)
    # 0, also on a busy machine: an input that reaches the server after its tick leaves a starved tick
    # (the player stands still there), which the prediction does not feel, and the page skips the sends a
    # queue left too deep does not need (update.surplus) before a trim would drop a moving input. Only an
    # input the server dropped corrects (strict); what can still drop one is more than 8 inputs arriving at
    # once (the server held them for a quarter second: a busy machine's margin, 3%). A wrong movement rule or
    # a misread ack disagrees at every change of the keys (about 45 here), and those are unexplained (none
    # allowed).
    d = assert_prediction_agrees(page, server, "Runner", most=0.03)
    assert changes >= 35 and d["reconciled"] >= 300, (changes, d)


def test_prediction_through_the_jittery_proxy_corrects_under_one_percent_of_ticks(
        start_server: Callable[..., ServerProcess], pages: Pages, loop: LoopThread) -> None:
    server = start_server("--ruleset", "arena", "--npcs", "0")
    with delay_proxy(loop, server.port, 0.100, jitter=0.030) as proxy:  # 100 ms ± 30 ms each way
        # The interpolation delay from the URL (the default is tuned for this; the parameter is for tests).
        page = pages.open(f"http://127.0.0.1:{proxy.port}/?interp=150")
        join(page, "Roamer")
        wait_until(lambda: (r := state(page)["rtt"]) is not None and r > 150, 5, what="a 200 ms round trip")
        # The server's queue deepens to the path's jitter in the first seconds (a few starved ticks, each
        # the player standing still, which the prediction does not feel); the rate is measured after that,
        # over 15 s of play. Before starved ticks stood still: under 1% (1 in 466 updates at a load
        # average of 7), up to 5.4% on a busy machine (every one a starved tick or a dropped input). Now
        # only a dropped input corrects, and a queue left too deep is skipped down rather than trimmed. The
        # rate bound is the busy machine's margin (3%); what stays strict is that every correction is a
        # dropped input and nothing is unexplained: a wrong rule is unexplained at every change of the keys.
        walk(page, 3.0, seed=13)
        settle(page, server, "Roamer")
        since = counts(page, server, "Roamer")
        walk(page, 15.0, seed=12)
        behind = page.evaluate("""() => { const f = window.__game.game.feed, now = performance.now();
                                  f.sample(now); return f.clock.tickAt(now) - f.renderTick; }""")
        assert state(page)["interpMs"] == 150 and abs(behind - 150 / TICK_MS) < 1e-6, behind
        d = assert_prediction_agrees(page, server, "Roamer", most=0.03, since=since)
        assert d["reconciled"] >= 300, d


def test_a_frozen_page_answers_its_backlog_with_one_input_and_plays_on(
        start_server: Callable[..., ServerProcess], pages: Pages) -> None:
    server = start_server("--ruleset", "arena", "--npcs", "0")
    page = pages.open(server.http + "/")
    frames = capture(page)
    join(page, "Sleeper")
    start = settle(page, server, "Sleeper")
    page.evaluate(LOG_UPDATES)
    key = "d" if start["x"] < 12000 else "a"
    page.keyboard.down(key)
    time.sleep(0.5)
    # The tab freezes for 2 s (its main thread busy: no timers, no frames, no messages), then resumes.
    _, resumed = page.evaluate("""() => { const t = performance.now(); while (performance.now() - t < 2000);
                                             return [t, performance.now()]; }""")
    time.sleep(1.5)
    page.keyboard.up(key)
    log = page.evaluate("window.__updates")
    # The backlog: what the page processed first once it ran again, as long as it was stale (far later
    # than its clock expects) or right behind a stale one. The server stops sending every tick to a
    # client that stopped acknowledging, so a 2 s freeze leaves some 20 updates rather than 60.
    after = [u for u in log if u["at"] >= resumed]
    assert after[0]["stale"], after
    backlog = [after[0]]
    for u in after[1:]:
        if not (u["stale"] or u["at"] - max(b["at"] for b in backlog if b["stale"]) < TICK_MS / 2):
            break
        backlog.append(u)
    assert len(backlog) >= 10, after
    # All of it answered with one input, not one each as in play as usual (strict); processed at once on a
    # quiet machine (under 50 ms), within seconds when two suites share the machine with their browsers
    # (1.7 s seen: the page's main thread gets the CPU in slices).
    assert sum(u["sent"] for u in backlog) == 1, backlog
    assert backlog[-1]["at"] - resumed < 5000, backlog
    # Then play as before, an input per update, once the page has caught up (a busy machine takes a while:
    # updates still far behind the clock are part of the backlog).
    after = [u for u in log if u["at"] >= resumed + 1000]
    # Most updates answered one by one again (a busy machine still delivers a few late, answered together:
    # 21 of 25 seen at load 8, 15 of 21 with two suites at once), against one input for the whole backlog above.
    assert len(after) >= 10 and sum(u["sent"] for u in after) >= 0.5 * len(after), after
    s = state(page)
    assert s["phase"] == "live" and s["connected"] and s["reconnects"] == 0, s
    assert s["backlogs"] >= 1 and s["lastBacklog"]["updates"] >= len(backlog), s
    # Every input went out as one frame of its own, and the player went on walking: by exactly the inputs
    # the page sent with the key held, one step each (48), those the server dropped aside (none unless a
    # trim found no idle input). Through the freeze it stood still: the server had no input of ours.
    inputs = all_sent(page, frames)
    seqs = [m["seq"] for m in inputs]
    # In order, each once; a gap only where the page skipped a send the server said it did not need.
    assert seqs == sorted(set(seqs)) and seqs[-1] - len(seqs) <= s["skipped"] and s["seq"] - s["skipped"] <= len(seqs)
    end = settle(page, server, "Sleeper")
    walked = (end["x"] - start["x"]) * (1 if key == "d" else -1)
    moving = sum(1 for m in inputs if m["in"][0] != 0)
    dropped = server_player(server, "Sleeper")["inputs"]["dropped"]
    assert moving >= 30 and 48 * (moving - dropped) <= walked <= 48 * moving, (walked, moving, dropped)
    wait_until(lambda: (p := state(page)["mePredicted"]) and (p["x"], p["y"]) == (end["x"] / 8, end["y"] / 8), 3,
               what="the prediction to land on the server position")


def test_leaving_removes_the_player_at_once_and_the_join_screen_counts_afresh(
        start_server: Callable[..., ServerProcess], pages: Pages, loop: LoopThread) -> None:
    from tools.client import GameClient

    server = start_server("--ruleset", "arena", "--npcs", "0", "--hold", "20")
    page = pages.open(server.http + "/")
    wait_until(lambda: "0 players" in page.inner_text("#server-status"), 5, what="the count before joining")
    join(page, "Goer")
    assert names(server) == ["Goer"]
    page.click("#leave")
    # Gone at once, not held for the 20 s a dropped connection is; the join screen says so.
    wait_until(lambda: names(server) == [], 2, what="the player to be removed")
    wait_until(lambda: "0 players" in page.inner_text("#server-status"), 3, what="the count after leaving")
    # The count stays fresh while the join screen shows.
    other = GameClient(server.url, "Other")
    loop.run(other.connect())
    try:
        wait_until(lambda: "1 player " in page.inner_text("#server-status"), 6, what="the newcomer counted")
    finally:
        loop.run(other.close())

"""The lobby in real headless Chromium against the real server: quick play, joining from the list, spectating.

Debian's Chromium through Playwright, launched as ``test_browser.py`` does
(its ``browser`` fixture and ``Pages``). Each test starts its own server
(``start_server``), reaches the lobby from the play page's "Lobby" link,
gets a seat there (``POST /api/matchmake``), and checks through the play
page's debug hook (``window.__game``) that it landed in the match; the
lobby's own hook is ``window.__lobby``.

These need the server's rooms wiring (issue 9: ``/api/matchmake``,
``/api/matches`` with seats, the seat in ``hello``, ``--ruleset
package.module:Attr``): until it lands they fail, saying what the lobby
was told.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.e2e.test_browser import NEEDS_CHROMIUM, Pages, browser, pages, state, wait_until  # noqa: F401 (fixtures)
from tests.userpkg.conftest import USERPKG

pytestmark = [pytest.mark.timeout(120), NEEDS_CHROMIUM]

#: The play page is in a match: welcomed, with a tick.
LIVE = "() => { const s = window.__game && window.__game.state(); return !!s && s.phase === 'live' && s.tick !== null; }"
#: ... or the lobby (still on screen) says why it is not.
LIVE_OR_REFUSED = f"() => ({LIVE})() || !!(window.__lobby && window.__lobby.state().error)"


@pytest.fixture
def userpkg_on_server_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers started in this test import a user's package from ``tests/fixtures/userpkg`` too.

    ``ServerProcess`` sets the server's ``PYTHONPATH`` to the repository
    alone; this adds the user's package folder to the server processes it
    starts (and to nothing else).
    """
    popen = subprocess.Popen

    def with_userpkg(args: Any, *rest: Any, **kwargs: Any) -> Any:
        env = kwargs.get("env")
        if env is not None and list(args[1:3]) == ["-m", "server"]:
            kwargs["env"] = {**env, "PYTHONPATH": os.pathsep.join([env["PYTHONPATH"], str(USERPKG)])}
        return popen(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", with_userpkg)


# -- helpers -------------------------------------------------------------------------


def lobby(pages: Pages, server: ServerProcess) -> Any:
    """A new page (its own storage) on the play page's join screen, then on the lobby through its link."""
    page = pages.open(server.http + "/")
    page.click("#lobby-link")
    page.wait_for_function("() => window.__lobby !== undefined && window.__lobby.state().refreshes > 0", timeout=10_000)
    return page


def lobby_state(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate("window.__lobby.state()")
    return result


def until_in_match(page: Any, what: str) -> dict[str, Any]:
    """Wait until the page plays (or watches) a match; fail with the lobby's words if it refused."""
    page.wait_for_function(LIVE_OR_REFUSED, timeout=15_000)
    if page.evaluate("!!window.__lobby"):
        raise AssertionError(f"{what}: the lobby says {lobby_state(page)['error']!r}")
    return state(page)


def listed(page: Any, match: str) -> dict[str, Any]:
    """Wait until the lobby lists ``match``; its entry."""
    page.wait_for_function(f"() => window.__lobby.state().matches.some((m) => m.match === {match!r})", timeout=10_000)
    return next(m for m in lobby_state(page)["matches"] if m["match"] == match)


def quick_play(page: Any, name: str, ruleset: str) -> dict[str, Any]:
    page.fill("#lobby-name", name)
    page.fill("#quick-ruleset", ruleset)
    page.click("#quick-play")
    return until_in_match(page, f"quick play {ruleset} as {name}")


def roster_names(page: Any) -> set[str]:
    return {p["name"] for p in state(page)["roster"]}


# -- tests ---------------------------------------------------------------------------


def test_quick_play_joins_a_match_and_a_second_page_joins_the_same_one_from_the_list(
        start_server: Callable[..., ServerProcess], pages: Pages) -> None:
    server = start_server("--ruleset", "arena", "--npcs", "0")
    ann = lobby(pages, server)
    a = quick_play(ann, "Ann", "arena")
    match = a["match"]
    assert match and a["ruleset"] == "arena" and a["me"] is not None and not a["spectate"]
    assert a["seat"] is None and "seat=" not in ann.url  # spent: a reload does not present it again
    assert a["url"].endswith(f"/ws/{match}")

    bob = lobby(pages, server)
    entry = listed(bob, match)
    assert entry["ruleset"] == "arena" and entry["players"] + entry["reserved"] >= 1
    bob.fill("#lobby-name", "Bob")
    bob.click(f'#matches button.join[data-match="{match}"]')
    b = until_in_match(bob, f"join {match} from the list as Bob")
    assert b["match"] == match and b["me"] is not None and b["me"] != a["me"]

    wait_until(lambda: roster_names(ann) >= {"Ann", "Bob"} and roster_names(bob) >= {"Ann", "Bob"}, 10,
               what="both players in both rosters")

    # A third page watches the same match from the list, without a seat; the players stay two.
    cat = lobby(pages, server)
    listed(cat, match)
    cat.click(f'#matches button.spectate[data-match="{match}"]')
    c = until_in_match(cat, f"spectate {match} from the list")
    assert c["match"] == match and c["spectate"] and c["me"] is None
    assert roster_names(cat) == {"Ann", "Bob"}
    for page in (ann, bob, cat):
        s = state(page)
        assert s["checksumOk"] and s["desyncs"] == 0, s


def test_a_user_ruleset_from_the_lobby_is_drawn_by_the_generic_look(
        userpkg_on_server_path: None, start_server: Callable[..., ServerProcess], pages: Pages) -> None:
    server = start_server("--ruleset", "tagarena:TagRuleset")
    player = lobby(pages, server)
    p = quick_play(player, "Tagger", "tagarena")
    assert p["ruleset"] == "tagarena" and p["me"] is not None
    kinds = wait_until(lambda: state(player)["kinds"].get("runner") and state(player)["kinds"], 10, what="runners")
    assert set(kinds) <= {"runner", "player", "it"} and kinds.get("player", 0) + kinds.get("it", 0) >= 1, kinds

    # A spectator sees the whole field: every runner drawn, with the generic look (arena's kinds nowhere).
    watcher = lobby(pages, server)
    listed(watcher, p["match"])
    watcher.click(f'#matches button.spectate[data-match="{p["match"]}"]')
    w = until_in_match(watcher, "spectate the tagarena match")
    assert w["arenaView"] and w["ruleset"] == "tagarena"

    def all_drawn() -> dict[str, int] | None:
        s = state(watcher)
        return s["drawn"] if s["drawn"] and s["drawn"] == s["kinds"] else None

    drawn = wait_until(all_drawn, 10, what="every entity drawn")
    assert drawn["runner"] >= 1 and not set(drawn) & {"pellet", "drone", "bullet"}, drawn

"""Replays on disk: small header reads, a listing cached by (name, size, mtime) and read off the event loop,
and the library that resolves a viewer's replay name safely."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Self

import pytest

from game.rules import get_ruleset
from server.app import GameServer
from server.config import ServerConfig
from server.match import Match
from server.replay import listing
from server.replay.format import HEADER, BadReplay, CorruptReplay, NoSuchReplay, UnknownRuleset
from server.replay.listing import HEADER_MAX, HEADER_PROBE, ReplayIndex, ReplayLibrary, list_replays, read_header
from tests.replay.helpers import edit_records, record_match

MANY = 500


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of ``MANY`` replays (copies of one), each with its own mtime."""
    directory = tmp_path_factory.mktemp("many")
    path, _, _ = record_match(directory, "drift", ticks=60, players=2, options={"npcs": 50})
    for i in range(MANY - 1):
        copy = directory / f"r{i:03d}.replay"
        shutil.copyfile(path, copy)
        os.utime(copy, ns=(1_700_000_000_000_000_000 + i * 1_000_000, 1_700_000_000_000_000_000 + i * 1_000_000))
    return directory


def test_a_listing_reads_each_header_once_until_the_file_changes(many: Path, tmp_path: Path) -> None:
    directory = tmp_path / "d"
    shutil.copytree(many, directory)
    index = ReplayIndex(directory)
    listing = index.list()
    assert len(listing) == MANY and index.reads == MANY
    assert [e["name"] for e in listing][-3:] == ["r002.replay", "r001.replay", "r000.replay"]  # newest first
    assert all(e["ruleset"] == "drift" and "error" not in e for e in listing)
    assert index.list() == listing and index.reads == MANY  # all from the cache
    with open(directory / "r005.replay", "ab") as f:  # a replay still being recorded grows
        f.write(b"\0")
    (directory / "r006.replay").unlink()
    again = index.list()
    assert index.reads == MANY + 1 and len(again) == MANY - 1
    assert next(e for e in again if e["name"] == "r005.replay")["size"] == (many / "r005.replay").stat().st_size + 1


def test_read_header_reads_a_small_probe_and_more_only_for_a_longer_header(
        many: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = (many / "r000.replay").read_bytes()

    def with_writer(text: str) -> Path:
        path = tmp_path / f"w{len(text)}.replay"
        path.write_bytes(edit_records(data, lambda rec: [HEADER, {**rec[1], "writer": text}] if rec[0] == HEADER else None))
        return path

    asked: list[int] = []  # the sizes of the reads
    real_open = open

    class Counting:
        def __init__(self, f: Any) -> None:
            self.f = f

        def __enter__(self) -> Self:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def read(self, n: int) -> bytes:
            asked.append(n)
            out: bytes = self.f.read(n)
            return out

    monkeypatch.setattr(listing, "open", lambda *a: Counting(real_open(*a)), raising=False)
    assert read_header(many / "r000.replay").ruleset == "drift" and asked == [HEADER_PROBE]
    asked.clear()
    long = with_writer("x" * 10_000)
    assert read_header(long).extra["writer"] == "x" * 10_000
    header_end = 12 + 8 + int.from_bytes(long.read_bytes()[12:16], "little")
    assert asked == [HEADER_PROBE, header_end - HEADER_PROBE]  # the probe, then just the rest of the header
    with pytest.raises(CorruptReplay, match=f"over {HEADER_MAX}"):
        read_header(with_writer("x" * HEADER_MAX))


def _get(port: int, path: str) -> Any:
    """A plain HTTP GET on a thread of its own (urllib), decoded from JSON."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as r:
        return json.loads(r.read())


def test_the_game_server_lists_many_replays_off_the_event_loop(many: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    real = listing.list_replays

    def slow_listing(directory: Path) -> list[dict[str, Any]]:
        threads.append(threading.current_thread().name)
        time.sleep(0.5)  # a slow disk: the tick loop and other requests must go on meanwhile
        return real(directory)

    monkeypatch.setattr("server.replay.listing.list_replays", slow_listing)
    config = ServerConfig(port=0, ruleset="drift", options=(("npcs", 10),), record=False, replay_dir=many)
    server = GameServer(config, Match(get_ruleset("drift"), match_id="m", options={"npcs": 10}))

    async def main() -> None:
        port = await server.start()
        runner = asyncio.create_task(server.run())
        try:
            listing = asyncio.create_task(asyncio.to_thread(_get, port, "/api/replays"))
            await asyncio.sleep(0.1)
            tick = server.match.tick_count
            health = await asyncio.to_thread(_get, port, "/healthz")  # answered while the listing is under way
            assert not listing.done() and health["status"] == "ok"
            await asyncio.sleep(0.2)
            assert server.match.tick_count > tick  # the tick loop kept ticking
            body = await listing
            assert body["playback"] is True and len(body["replays"]) == MANY
            assert threads and threads[0] != threading.main_thread().name
        finally:
            server.stop()
            await asyncio.wait_for(runner, 10)

    asyncio.run(main())


def test_a_replay_server_lists_many_replays_from_the_cache(many: Path) -> None:
    server = GameServer(ServerConfig(port=0, record=False, replay_dir=many), library=ReplayLibrary(many))

    async def main() -> None:
        port = await server.start()
        runner = asyncio.create_task(server.run())
        try:
            first = await asyncio.to_thread(_get, port, "/api/replays")
            reads = listing.replay_index(many).reads
            second = await asyncio.to_thread(_get, port, "/api/replays")
            assert first == second and first["playback"] is True and len(first["replays"]) == MANY
            assert listing.replay_index(many).reads == reads  # nothing read again
        finally:
            server.stop()
            await asyncio.wait_for(runner, 10)

    asyncio.run(main())


def test_the_listing_shows_headers_newest_first_and_errors_for_bad_files(tmp_path: Path) -> None:
    record_match(tmp_path, "drift", ticks=3, players=1, seed=1)
    (tmp_path / "junk.replay").write_bytes(b"nothing to see")
    (tmp_path / "notes.txt").write_text("ignored")
    listing = list_replays(tmp_path)
    assert {e["name"] for e in listing} == {"test-drift-1.replay", "junk.replay"}
    good = next(e for e in listing if e["name"] == "test-drift-1.replay")
    assert good["ruleset"] == "drift" and good["seed"] == 1 and good["size"] > 0 and "error" not in good
    assert "not a replay" in next(e for e in listing if e["name"] == "junk.replay")["error"]
    assert list_replays(tmp_path / "missing") == []


# -- the library --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> ReplayLibrary:
    directory = tmp_path_factory.mktemp("library")
    record_match(directory, "drift", ticks=40, players=2, seed=1)
    (directory / "junk.replay").write_bytes(b"nothing to see")
    (directory / "notes.txt").write_text("not a replay")
    (directory / "sub.replay").mkdir()
    outside = tmp_path_factory.mktemp("outside")
    record_match(outside, "drift", ticks=5, players=1, seed=2)
    (directory / "link.replay").symlink_to(outside / "test-drift-2.replay")
    return ReplayLibrary(directory)


def test_the_library_resolves_a_listed_name_to_its_file(library: ReplayLibrary) -> None:
    assert library.resolve("test-drift-1.replay") == (library.directory / "test-drift-1.replay").resolve()
    loaded = library.load("test-drift-1.replay")
    assert loaded.name == "test-drift-1.replay" and loaded.ruleset.spec.name == "drift"
    assert loaded.replay.complete and loaded.replay.last_tick == 40


@pytest.mark.parametrize("name", [
    None, "", "missing.replay", "notes.txt", "sub.replay", "../outside/test-drift-2.replay", "link.replay",
    "/etc/passwd", "..\\test-drift-1.replay", "test-drift-1", ".",
])
def test_the_library_refuses_every_name_that_is_not_one_of_its_replays(library: ReplayLibrary, name: str | None) -> None:
    with pytest.raises(NoSuchReplay) as info:
        library.resolve(name)
    assert isinstance(info.value, BadReplay) and info.value.name == (name or None)


def test_a_library_of_one_replay_serves_it_by_default_and_nothing_else(library: ReplayLibrary) -> None:
    one = ReplayLibrary(library.directory, only="test-drift-1.replay")
    assert one.resolve(None).name == "test-drift-1.replay"
    with pytest.raises(NoSuchReplay, match="this server plays only test-drift-1.replay"):
        one.resolve("junk.replay")
    assert [e["name"] for e in one.list()] == ["test-drift-1.replay"]
    assert {"test-drift-1.replay", "junk.replay"} <= {e["name"] for e in library.list()}


def test_loading_a_bad_file_or_an_unknown_ruleset_is_a_bad_replay(library: ReplayLibrary, tmp_path: Path) -> None:
    with pytest.raises(BadReplay, match="not a replay"):
        library.load("junk.replay")
    data = (library.directory / "test-drift-1.replay").read_bytes()
    (tmp_path / "chess.replay").write_bytes(
        edit_records(data, lambda rec: [HEADER, {**rec[1], "ruleset": "chess"}] if rec[0] == HEADER else None))
    with pytest.raises(UnknownRuleset, match="chess"):
        ReplayLibrary(tmp_path).load("chess.replay")

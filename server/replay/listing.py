"""Replays on disk: their headers read cheaply, listed newest first, and resolved by name.

``read_header`` reads only a file's header frame (a small probe, more only
for a longer header); ``ReplayIndex`` lists one directory, newest first,
reading each file's header once until the file changes; ``list_replays``
is the process's cached listing of a directory (``GET /api/replays``,
REPLAY.md *Listing replays*). ``ReplayLibrary`` is the replays one server
offers: it resolves a name a viewer sends to a file of its directory, never
outside it, and loads it for playback.

Blocking file I/O: call it off the event loop (``asyncio.to_thread``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from attrs import frozen

from game.rules import Ruleset
from server.replay.format import (
    FRAME_HEAD,
    PREAMBLE,
    CorruptReplay,
    FrameDecoder,
    Header,
    NoSuchReplay,
    Replay,
    ReplayError,
    TruncatedReplay,
    header_of,
    parse_replay,
    utc_iso,
)
from server.replay.resim import ruleset_for

#: File name suffix of replays.
SUFFIX = ".replay"
#: Bytes read first from a file to find its header when listing (headers are a few hundred bytes).
HEADER_PROBE = 4 << 10
#: The longest header frame a listing reads; a longer one is listed with an error.
HEADER_MAX = 64 << 10
#: Most replays listed (newest first).
MAX_LISTED = 500


def read_header(path: Path, probe: int = HEADER_PROBE) -> Header:
    """The header of the replay at ``path``: reads ``probe`` bytes, more only if the header frame is longer.

    Raises:
        OSError; ReplayError (NotAReplay, UnsupportedFormat, TruncatedReplay, CorruptReplay).
    """
    dec = FrameDecoder()
    with open(path, "rb") as f:
        data = f.read(probe)
        size = len(data)
        dec.feed(data)
        for at, payload in dec.frames():
            return header_of(at, payload)
        if dec.version is not None and size == probe and size >= PREAMBLE.size + FRAME_HEAD.size:
            # A preamble, then a header frame longer than the probe: read the rest of it, within reason.
            need = PREAMBLE.size + FRAME_HEAD.size + FRAME_HEAD.unpack_from(data, PREAMBLE.size)[0]
            if need > HEADER_MAX:
                raise CorruptReplay(PREAMBLE.size, f"a header frame of {need - PREAMBLE.size} bytes, over {HEADER_MAX}")
            more = f.read(need - size)
            size += len(more)
            dec.feed(more)
            for at, payload in dec.frames():
                return header_of(at, payload)
    dec.eof()
    raise TruncatedReplay(size)


def _summary(path: Path, st: os.stat_result) -> dict[str, Any]:
    item: dict[str, Any] = {"name": path.name, "path": str(path), "size": st.st_size, "mtime": utc_iso(st.st_mtime)}
    try:
        h = read_header(path)
        item.update(match=h.match, ruleset=h.ruleset, ruleset_version=h.ruleset_version, seed=h.seed,
                    options=h.options, tick_rate=h.tick_rate, start_time=h.start_time)
    except (OSError, ReplayError) as exc:
        item["error"] = str(exc)
    return item


class ReplayIndex:
    """The replays of one directory, newest first, each file's header read once.

    A file's summary is kept while its (name, size, mtime_ns) stays the
    same, so a listing stats every file but reads only new or changed ones
    (a replay being recorded changes at every flush). Blocking: call
    ``list()`` off the event loop (``asyncio.to_thread``); listings run one
    at a time.

    Attributes:
        reads: headers read so far (cache misses).
    """

    def __init__(self, directory: Path, limit: int = MAX_LISTED) -> None:
        self.directory = directory
        self.limit = limit
        self.reads = 0
        self._cache: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def list(self) -> list[dict[str, Any]]:
        """Name, path, size, mtime and the header's summary (or an ``error``) per replay; [] without the directory."""
        with self._lock:
            entries = []
            try:
                with os.scandir(self.directory) as it:
                    for e in it:
                        try:
                            if e.name.endswith(SUFFIX) and e.is_file():
                                entries.append((self.directory / e.name, e.stat()))
                        except OSError:  # gone since the directory was read
                            continue
            except OSError:
                return []
            entries.sort(key=lambda e: (-e[1].st_mtime, e[0].name))
            fresh: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
            for path, st in entries[: self.limit]:
                key = (st.st_size, st.st_mtime_ns)
                hit = self._cache.get(path.name)
                if hit is None or hit[0] != key:
                    hit = (key, _summary(path, st))
                    self.reads += 1
                fresh[path.name] = hit
            self._cache = fresh
            return [dict(item) for _, item in fresh.values()]


_indexes: dict[Path, ReplayIndex] = {}
_indexes_lock = threading.Lock()


def replay_index(directory: Path) -> ReplayIndex:
    """The process's ``ReplayIndex`` of ``directory`` (one per directory, shared by every caller)."""
    key = directory.resolve()
    with _indexes_lock:
        index = _indexes.get(key)
        if index is None:
            index = _indexes[key] = ReplayIndex(directory)
        return index


def list_replays(directory: Path, *, limit: int = MAX_LISTED) -> list[dict[str, Any]]:
    """The replays in ``directory``, newest first (``ReplayIndex.list``, cached per directory). Blocking.

    A file that cannot be read is listed with an ``error``; a missing directory lists nothing.
    """
    return replay_index(directory).list()[:limit]


def read_replay(path: Path) -> Replay:
    """Read and parse the replay at ``path``.

    Raises:
        OSError: it cannot be read (missing, a directory, no permission).
        BadReplay: it is not a replay this build can parse.
    """
    return parse_replay(path.read_bytes())


@frozen
class LoadedReplay:
    """A replay read from a library, with the ruleset that re-simulates it: ready to play."""

    name: str
    path: Path
    replay: Replay
    ruleset: Ruleset


@frozen
class ReplayLibrary:
    """The replays one server offers: those of ``directory``, or only the one named ``only``.

    Names are what the listing shows (``name``: a file name, no directory
    part); ``resolve`` maps one to its file and refuses anything else (a
    path, another suffix, a link out of the directory), so a viewer's request
    can never read a file the listing does not show.
    """

    directory: Path
    only: str | None = None
    #: ``(ruleset name, load_ruleset reference)`` for the rulesets this build does not ship (``--ruleset``):
    #: the replays of those are re-simulated with them (``ruleset_for``).
    refs: tuple[tuple[str, str], ...] = ()

    def resolve(self, name: str | None) -> Path:
        """The file of replay ``name`` (None: the one served, with ``only``).

        Raises:
            NoSuchReplay: no name, another name than ``only``, or no replay of that name here.
        """
        name = name or self.only
        if not name:
            raise NoSuchReplay(None, "name a replay (see /api/replays)")
        if self.only is not None and name != self.only:
            raise NoSuchReplay(name, f"this server plays only {self.only}")
        path = (self.directory / name).resolve()
        if "/" in name or "\\" in name or path.suffix != SUFFIX or not path.is_relative_to(self.directory.resolve()) \
                or not path.is_file():
            raise NoSuchReplay(name, f"no replay {name!r} here")
        return path

    def list(self) -> list[dict[str, Any]]:
        """``list_replays`` of the directory (only ``only`` with it). Blocking."""
        replays = list_replays(self.directory)
        return replays if self.only is None else [r for r in replays if r["name"] == self.only]

    def load(self, name: str | None) -> LoadedReplay:
        """Read, parse and check replay ``name``. Blocking.

        Raises:
            OSError: the file cannot be read.
            BadReplay: ``NoSuchReplay``, a file that is not a sound replay, or ``UnknownRuleset``.
        """
        path = self.resolve(name)
        replay = read_replay(path)
        return LoadedReplay(path.name, path, replay, ruleset_for(replay.header, dict(self.refs).get(replay.header.ruleset)))

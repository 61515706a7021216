"""The recorder: a match observer that writes a replay file without ever blocking the tick.

``Recorder`` is a ``MatchObserver``. On the tick it only encodes the tick's
small record (``ReplayEncoder``), a checkpoint every ``checkpoint_every``
ticks, and copies the world's arrays for a keyframe every
``keyframe_every`` ticks, appending them to an in-memory list. A writer
thread wakes every ``flush_interval`` seconds (and at close), encodes and
compresses the keyframes, writes everything and flushes, so a killed server
loses at most the last interval. A recorder that fails (a full disk) logs
once and stops recording; the match goes on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from game.rules import Event, InputBatch
from game.world import PlayerId, state_hash
from server.protocol.delta import Snapshot
from server.replay.format import (
    CHECKPOINT_EVERY,
    KEYFRAME_EVERY,
    EndRecord,
    Header,
    KeyframeData,
    ReplayEncoder,
    utc_iso,
)
from server.replay.listing import SUFFIX

if TYPE_CHECKING:
    from server.match import Match

log = logging.getLogger("server.replay.recorder")

#: The writer thread flushes this often (seconds): a killed server loses at most about this much.
FLUSH_INTERVAL = 0.5
#: Bytes waiting for the writer past which recording gives up (the disk cannot keep up).
MAX_PENDING = 64 << 20
#: Ticks whose recording time is kept for the closing log's percentiles.
RECENT = 3000


def default_match_id(ruleset: str, seed: int, t: float, node: str) -> str:
    """``<ruleset>-<UTC timestamp>-<node>-<seed>``: sortable, safe as a file name, and unique per run even when
    several nodes of one cluster start their default match in the same millisecond with the same seed (``node``:
    the starting node's own tag, e.g. the 8 random hex digits of its node id)."""
    stamp = datetime.fromtimestamp(t, UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"
    return f"{ruleset}-{stamp}-{node}-{seed}"


def open_new(directory: Path, stem: str) -> tuple[Path, IO[bytes]]:
    """Create ``directory/stem.replay`` (``stem-2.replay``... if taken); never overwrites."""
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = directory / (f"{stem}{SUFFIX}" if n == 1 else f"{stem}-{n}{SUFFIX}")
        try:
            return path, open(path, "xb")
        except FileExistsError:
            continue
    raise FileExistsError(f"{directory / stem}{SUFFIX}: too many replays with this name")


class Recorder:
    """Streams one match to one replay file. Attach with ``match.observers.append(recorder)``.

    Args:
        match: the match, before its first tick (or a later one: a keyframe is written first).
        out: a binary file opened for writing; the recorder closes it.
        path: its path, for logs.
        start_time: UNIX time of the match's start (for the header).
        extra: more header keys (a match handed over names the recording before it: ``previous``).

    Attributes:
        end_extra: more keys for the end record (a match handed over names where it went: ``handed_over``).
    """

    def __init__(self, match: Match, out: IO[bytes], *, path: Path | None = None, start_time: float | None = None,
                 checkpoint_every: int = CHECKPOINT_EVERY, keyframe_every: int = KEYFRAME_EVERY,
                 flush_interval: float = FLUSH_INTERVAL, perf_counter: Callable[[], float] = time.perf_counter,
                 wall_clock: Callable[[], float] = time.time, extra: dict[str, Any] | None = None) -> None:
        self.path = path
        self.checkpoint_every = checkpoint_every
        self.keyframe_every = keyframe_every
        self.flush_interval = flush_interval
        self._perf = perf_counter
        self._wall = wall_clock
        spec = match.ruleset.spec
        self.header = Header.for_spec(
            spec, match=match.match_id, seed=match.seed, options=match.options, tick_rate=match.tick_rate,
            start_time=utc_iso(start_time if start_time is not None else wall_clock()), start_tick=match.world.tick,
            checkpoint_every=checkpoint_every, keyframe_every=keyframe_every,
            extra={"writer": "tickserver", **(extra or {})}, lag_max=match.inputs.max_lag,
        )
        self.end_extra: dict[str, Any] = {}
        self.encoder = ReplayEncoder(self.header)
        #: Players in the match: id -> (name, entity).
        self.players: dict[int, tuple[str, int | None]] = {}
        #: Ticks recorded, bytes handed to the writer, and the time spent on the tick (seconds).
        self.ticks = 0
        self.bytes = 0
        self.tick_time = 0.0
        self.max_tick_time = 0.0
        #: Time on the tick of the last ``RECENT`` ticks, seconds (for percentiles).
        self.recent: deque[float] = deque(maxlen=RECENT)
        self.failed: str | None = None
        self.closed = False
        #: The final ``state_hash``, once ``on_close`` wrote the end record.
        self.final_hash: str | None = None
        self._out = out
        self._pending: list[bytes | KeyframeData] = []
        self._pending_bytes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # The header goes out at once (this is the match's start, not a tick): a replay file
        # is never empty, even if the server dies before the first flush.
        head = self.encoder.start()
        out.write(head)
        out.flush()
        self.bytes = len(head)
        if match.world.tick != 0:
            # Joining a match in progress: who is in it, and the inputs in force, go in the keyframe.
            for m in match.members.values():
                if m.joined and not m.spectator:
                    self.players[m.player] = (m.name, m.entity)
            self.encoder.track.players = match.inputs.players.astype("int32", copy=True)
            self.encoder.track.values = np.column_stack([match.inputs.current, match.inputs.lag]).astype("int16")
            self._append(KeyframeData.capture(match.world, self.encoder.track, self._player_list()))
        self._thread = threading.Thread(target=self._run, name=f"replay-writer-{match.match_id}", daemon=True)
        self._thread.start()

    @classmethod
    def create(cls, match: Match, directory: Path, **kw: Any) -> Recorder:
        """A recorder writing to a new file ``directory/<match id>.replay``."""
        path, out = open_new(directory, match.match_id)
        return cls(match, out, path=path, **kw)

    # -- the tick side ---------------------------------------------------------

    def on_tick(self, match: Match, tick: int, leaves: list[PlayerId], joins: list[tuple[PlayerId, str]],
                inputs: InputBatch, events: list[Event]) -> None:
        if self.failed is not None or self.closed:
            return
        t0 = self._perf()
        try:
            for p in leaves:
                self.players.pop(p, None)
            for p, name in joins:
                member = match.members.get(p)
                self.players[p] = (name, None if member is None else member.entity)
            data = self.encoder.step(tick, leaves, joins, inputs)
            if tick % self.checkpoint_every == 0:
                data += self.encoder.checkpoint(tick, state_hash(match.world), self._checksum(match))
            self._append(data)
            if tick % self.keyframe_every == 0:
                self._append(KeyframeData.capture(match.world, self.encoder.track, self._player_list()))
        except Exception as exc:  # never let recording break the tick loop
            self._fail(f"recording failed at tick {tick}: {type(exc).__name__}: {exc}")
            log.exception("replay recorder")
        dt = self._perf() - t0
        self.ticks += 1
        self.tick_time += dt
        self.max_tick_time = max(self.max_tick_time, dt)
        self.recent.append(dt)

    def on_close(self, match: Match) -> None:
        """Write the end record, flush everything, close the file."""
        if self.closed:
            return
        if self.failed is None:
            world = match.world
            end = EndRecord(world.tick, state_hash(world), self._checksum(match),
                            match.ruleset.scores(world), utc_iso(self._wall()), dict(self.end_extra))
            self.final_hash = end.hash
            self._append(self.encoder.end(end))
        self.close()

    def close(self) -> None:
        """Stop the writer after a last flush and close the file (no end record unless ``on_close``)."""
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        self._thread.join(timeout=30)
        if self.failed is None:
            recent = sorted(self.recent)
            p99 = recent[int(len(recent) * 0.99)] * 1e6 if recent else 0.0
            log.info("replay %s: %d ticks, %d bytes; on the tick %.1f us mean, %.1f us p99, %.1f us max",
                     self.path or "(stream)", self.ticks, self.bytes, self.mean_tick_us, p99, self.max_tick_time * 1e6)

    @property
    def mean_tick_us(self) -> float:
        return self.tick_time / self.ticks * 1e6 if self.ticks else 0.0

    def _checksum(self, match: Match) -> int:
        snap = match.snapshot
        return snap.checksum if snap.tick == match.world.tick else Snapshot.capture(match.world).checksum

    def _player_list(self) -> list[tuple[int, str, int | None]]:
        return [(p, n, e) for p, (n, e) in sorted(self.players.items())]

    def _append(self, item: bytes | KeyframeData) -> None:
        size = len(item) if isinstance(item, bytes) else sum(c.nbytes for c in item.cols)
        with self._lock:
            self._pending.append(item)
            self._pending_bytes += size
            over = self._pending_bytes > MAX_PENDING
        if over:
            self._fail(f"over {MAX_PENDING} bytes waiting for the disk")

    def _fail(self, reason: str) -> None:
        if self.failed is None:
            self.failed = reason
            log.error("replay %s: %s; recording stopped", self.path or "(stream)", reason)
        with self._lock:
            self._pending.clear()
            self._pending_bytes = 0

    # -- the writer thread -----------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                stopping = self._stop.wait(self.flush_interval)
                self._drain()
                if stopping:
                    break
            if self.failed is None:
                self._out.flush()
                try:
                    fd = self._out.fileno()
                except (OSError, ValueError):  # not a real file (a test's stream)
                    fd = None
                if fd is not None:
                    os.fsync(fd)
        except (OSError, ValueError) as exc:
            self._fail(f"cannot write: {exc}")
        finally:
            try:
                self._out.close()
            except OSError:
                pass

    def _drain(self) -> None:
        with self._lock:
            items, self._pending = self._pending, []
            self._pending_bytes = 0
        if not items or self.failed is not None:
            return
        chunks = [it if isinstance(it, bytes) else ReplayEncoder.keyframe(it) for it in items]
        data = b"".join(chunks)
        self._out.write(data)
        self._out.flush()
        self.bytes += len(data)

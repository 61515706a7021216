"""Re-simulation: a replay played back through its ruleset, and ``verify``, the engine that checks one.

``Replayer`` re-simulates a parsed replay tick by tick from the seed (or
its start keyframe) with the recorded joins, leaves and inputs, and seeks
anywhere through the keyframes. ``verify`` compares the re-simulation with
every checkpoint, keyframe and the end record and returns what it found
(``Verification``); with ``jobs`` > 1 it cuts the replay at its keyframes
(``segments``) and re-simulates the pieces in worker processes
(``check_segment`` each), each piece also proving that it arrives exactly at
the next keyframe. REPLAY.md, *Reading, damage and exit codes*, says what is
compared and what the result holds.

Nothing here prints: progress goes to a callback, results are values, and a
file that cannot be re-simulated raises ``BadReplay`` (``CorruptReplay``,
``UnknownRuleset``).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
from attrs import frozen

from game.errors import GameError
from game.rules import RULESET_NAMES, Event, InputBatch, Ruleset, join_players, leave_players
from game.world import PlayerId, World, state_hash
from server.protocol.delta import Snapshot
from server.replay.format import (
    BadReplay,
    CorruptReplay,
    Header,
    Keyframe,
    Replay,
    ReplayUsageError,
    UnknownRuleset,
)
from server.replay.inputs import InputTrack, apply_inputs
from server.rulesets import entry_point_names, ruleset_for_replay

#: Called with the number of ticks re-simulated since the last call.
Progress = Callable[[int], None]


# -- the ruleset ---------------------------------------------------------------------


def check_ruleset(header: Header, ruleset: Ruleset) -> None:
    """UnknownRuleset unless ``ruleset`` is the one (and version, and columns, and inputs) recorded."""
    spec = ruleset.spec
    if spec.name != header.ruleset:
        raise UnknownRuleset(header.ruleset, header.ruleset_version, f"this is ruleset {spec.name!r}")
    if spec.version != header.ruleset_version:
        raise UnknownRuleset(header.ruleset, header.ruleset_version, f"this build has version {spec.version}")
    if tuple((c.name, c.dtype, c.wire) for c in spec.columns) != header.columns or \
            tuple((f.name, f.lo, f.hi) for f in spec.inputs) != header.inputs:
        raise UnknownRuleset(header.ruleset, header.ruleset_version, "its columns or inputs differ from this build's")


def ruleset_for(header: Header, ref: str | None = None) -> Ruleset:
    """The ruleset a replay needs, at the recorded version with the recorded columns and inputs.

    Args:
        ref: a reference to load it by (``server.rulesets.load_ruleset``: ``mypkg.mygame:Ruleset``, what
            ``--ruleset`` gives) for a ruleset this build does not ship; it must be the one the header names.
            None: the header's name among the built-ins and the installed entry points.

    Raises:
        UnknownRuleset: no such ruleset here (or ``ref`` does not load, or is another one), or another version.
    """
    try:
        ruleset = ruleset_for_replay(header.ruleset, ref)
    except GameError as exc:
        known = ref is not None or header.ruleset in RULESET_NAMES or header.ruleset in entry_point_names()
        reason = str(exc) if known else (
            f"this build knows {', '.join(RULESET_NAMES + entry_point_names())}; "
            "for a ruleset of your own, name it: --ruleset package.module:Attr")
        raise UnknownRuleset(header.ruleset, header.ruleset_version, reason) from None
    check_ruleset(header, ruleset)
    return ruleset


# -- re-simulation -----------------------------------------------------------------------


class Replayer:
    """Re-simulates a replay: ``step()`` one tick at a time, ``seek()`` anywhere via keyframes.

    Raises ``CorruptReplay`` for a record that does not fit the simulation
    (a join of a player already in, a malformed input change), ``GameError``
    never escapes as such.
    """

    def __init__(self, replay: Replay, ruleset: Ruleset) -> None:
        check_ruleset(replay.header, ruleset)
        self.replay = replay
        self.ruleset = ruleset
        self.header = replay.header
        self.dtypes = replay.header.input_dtypes
        self.world: World
        self.track: InputTrack
        #: Players in the match: id -> (name, entity).
        self.players: dict[int, tuple[str, int | None]]
        self.reset()

    def reset(self) -> None:
        """Back to the start of the replay."""
        h = self.header
        if h.start_tick:
            k = self.replay.keyframe_at_or_before(h.start_tick)
            if k is None or k.tick != h.start_tick:
                raise CorruptReplay(None, f"the recording starts at tick {h.start_tick} without a keyframe there")
            self.restore(k)
            return
        try:
            self.world = self.ruleset.create(h.seed, dict(h.options))
        except GameError as exc:
            raise CorruptReplay(None, f"the ruleset refuses the recorded options: {exc}") from None
        self.track = h.new_track()
        self.players = {}

    @property
    def tick(self) -> int:
        return self.world.tick

    @property
    def last_tick(self) -> int:
        return self.replay.last_tick

    def restore(self, keyframe: Keyframe) -> None:
        try:
            data = keyframe.decode(self.header)
        except ValueError as exc:
            raise CorruptReplay(keyframe.offset, str(exc)) from None
        self.world = data.world(self.ruleset.spec.resolve(self.header.options), self.header.seed)
        self.track = data.inputs.copy()
        self.players = {p: (n, e) for p, n, e in data.players}

    def step(self) -> tuple[InputBatch, list[Event]]:
        """Simulate the next tick; returns the inputs applied and the tick's events."""
        rec = self.replay.ticks[self.world.tick - self.header.start_tick]
        world, ruleset = self.world, self.ruleset
        try:
            leave_players(ruleset, world, [PlayerId(p) for p in rec.leaves])
            for p in rec.leaves:
                self.players.pop(p, None)
            entities = join_players(ruleset, world, [PlayerId(p) for p, _ in rec.joins])
            for (p, name), entity in zip(rec.joins, entities):
                self.players[p] = (name, int(entity))
            self.track.membership(rec.leaves, rec.joins)
            apply_inputs(self.dtypes, self.track, rec.inputs)
            batch = self.track.batch()
            events = ruleset.step(world, batch)
        except (GameError, ValueError) as exc:
            raise CorruptReplay(None, f"tick {rec.tick}: {exc}") from None
        if world.tick != rec.tick:
            raise CorruptReplay(None, f"the ruleset reached tick {world.tick} where the record says {rec.tick}")
        return batch, events

    def seek(self, tick: int) -> list[Event]:
        """Go to ``tick`` (``first_tick``..``last_tick``): the nearest keyframe at or before it, then step.

        Returns the events of the ticks stepped through (the last one's last).
        """
        if not self.replay.first_tick <= tick <= self.last_tick:
            raise ReplayUsageError(f"tick {tick} is outside the replay ({self.replay.first_tick}..{self.last_tick})")
        k = self.replay.keyframe_at_or_before(tick)
        if tick < self.world.tick or (k is not None and self.world.tick < k.tick):
            if k is None:
                self.reset()
            else:
                self.restore(k)
        events: list[Event] = []
        while self.world.tick < tick:
            events = self.step()[1]
        return events

    def hash(self) -> str:
        return state_hash(self.world)
# -- verify ----------------------------------------------------------------------------


@frozen
class Segment:
    """What re-simulating ticks ``(start, end]`` found.

    Attributes:
        divergence: (tick, reason, expected, got) of the first difference, if any.
        final_hash, scores: of the last tick, when ``end`` is the replay's last.
        error: the piece could not be re-simulated (a worker's answer; ``check_segment`` raises it).
    """

    start: int
    end: int
    checkpoints_checked: int = 0
    keyframes_checked: int = 0
    divergence: tuple[int, str, Any, Any] | None = None
    final_hash: str | None = None
    scores: dict[int, int] | None = None
    error: BadReplay | None = None


def check_segment(replay: Replay, start: int, end: int, progress: Progress | None = None,
                  ruleset: Ruleset | None = None) -> Segment:
    """Re-simulate ``(start, end]`` from the start of the replay or from the keyframe at ``start``.

    Compares every checkpoint in the range, and every keyframe (its world,
    input table and players) with the re-simulation; stops at the first
    difference.

    ``ruleset``: the one to re-simulate with (None: ``ruleset_for`` the header).

    Raises:
        BadReplay: the replay cannot be re-simulated (a corrupt record or keyframe, an unknown ruleset).
    """
    sim = Replayer(replay, ruleset if ruleset is not None else ruleset_for(replay.header))
    h = replay.header
    if start != replay.first_tick:
        sim.restore(next(k for k in replay.keyframes if k.tick == start))
    checkpoints = {c.tick: c for c in replay.checkpoints if start < c.tick <= end}
    keyframes = {k.tick: k for k in replay.keyframes if start < k.tick <= end}
    n_cp = n_kf = 0

    def stop(tick: int, reason: str, expected: Any, got: Any) -> Segment:
        return Segment(start, end, n_cp, n_kf, (tick, reason, expected, got))

    while sim.tick < end:
        sim.step()
        t = sim.tick
        cp = checkpoints.get(t)
        if cp is not None:
            got = sim.hash()
            if got != cp.hash:
                return stop(t, "checkpoint state_hash differs", cp.hash, got)
            checksum = Snapshot.capture(sim.world).checksum
            if checksum != cp.checksum:
                return stop(t, "checkpoint checksum differs", cp.checksum, checksum)
            n_cp += 1
        kf = keyframes.get(t)
        if kf is not None:
            try:
                data = kf.decode(h)
            except ValueError as exc:
                raise CorruptReplay(kf.offset, str(exc)) from None
            got_kf = state_hash(data.world(sim.ruleset.spec.resolve(h.options), h.seed))
            if got_kf != sim.hash():
                return stop(t, "keyframe differs from the re-simulation", got_kf, sim.hash())
            if not (np.array_equal(data.inputs.players, sim.track.players)
                    and np.array_equal(data.inputs.values, sim.track.values)):
                return stop(t, "keyframe input table differs from the re-simulation", None, None)
            if {p: (n, e) for p, n, e in data.players} != sim.players:
                return stop(t, "keyframe players differ from the re-simulation", None, None)
            n_kf += 1
        if progress is not None:
            progress(1)
    final = sim.hash() if end == replay.last_tick else None
    scores = sim.ruleset.scores(sim.world) if final is not None else None
    return Segment(start, end, n_cp, n_kf, None, final, scores)


def segments(replay: Replay, jobs: int) -> list[tuple[int, int]]:
    """``(start, end]`` ranges to re-simulate: the whole replay for one job, else keyframe to keyframe."""
    if jobs <= 1 or not replay.keyframes:
        return [(replay.first_tick, replay.last_tick)]
    starts = [replay.first_tick] + [k.tick for k in replay.keyframes if replay.first_tick < k.tick < replay.last_tick]
    return list(zip(starts, starts[1:] + [replay.last_tick]))


def default_jobs(replay: Replay) -> int:
    """One process per CPU, but no more than the replay has keyframe-to-keyframe pieces."""
    return max(1, min(os.cpu_count() or 1, len(segments(replay, 2))))


#: The replay a forked worker checks and its ruleset (set before the pool forks, inherited).
_SHARED: tuple[Replay, Ruleset] | None = None


def _check_in_worker(span: tuple[int, int]) -> Segment:
    assert _SHARED is not None
    replay, ruleset = _SHARED
    try:
        return check_segment(replay, *span, ruleset=ruleset)
    except BadReplay as exc:
        return Segment(span[0], span[1], error=exc)


@frozen
class Verification:
    """What ``verify`` found: the fields of REPLAY.md's ``verify --json`` object but ``file``, in its order.

    ``ok`` is False at the first difference: ``diverged_at`` is its tick,
    ``last_good`` the last matching checkpoint (the divergence happened in
    between), ``reason``, ``expected`` and ``got`` say what differed.
    ``seconds``, ``ticks_per_s`` and ``speedup`` (times faster than real
    time) measure the re-simulation.
    """

    ok: bool
    ruleset: str
    first_tick: int
    last_tick: int
    ticks: int
    jobs: int
    checkpoints: int
    checkpoints_checked: int
    keyframes_checked: int
    diverged_at: int | None
    last_good: int
    reason: str | None
    expected: Any
    got: Any
    final_hash: str | None
    final_hash_recorded: str | None
    final_match: bool | None
    scores_match: bool | None
    complete: bool
    truncated: bool
    warnings: tuple[str, ...]
    seconds: float
    ticks_per_s: float | None
    speedup: float | None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready map, in order."""
        return {**attrs.asdict(self, recurse=False), "warnings": list(self.warnings)}


def verify(replay: Replay, *, jobs: int | None = 1, progress: Progress | None = None,
           clock: Callable[[], float] = time.perf_counter, ruleset: Ruleset | None = None) -> Verification:
    """Re-simulate ``replay`` and compare every checkpoint, keyframe and the end record.

    With ``jobs`` > 1 the replay is cut at its keyframes and the pieces are
    re-simulated in parallel processes, each from its keyframe; each piece
    also checks that it arrives exactly at the next keyframe (world, input
    table, players), so the chain proves what one re-simulation from the
    seed proves. ``jobs`` None: ``default_jobs(replay)``.

    Args:
        progress: called with the ticks re-simulated since its last call (per tick in one
            process, per finished piece with several).
        clock: measures ``seconds``.
        ruleset: the ruleset to re-simulate with (None: ``ruleset_for`` the header: a built-in or an entry
            point); checked against the header all the same.

    Raises:
        BadReplay: the replay cannot be re-simulated (an unknown ruleset, a corrupt record or
            keyframe): raised before any worker starts when the start already fails.
    """
    global _SHARED
    if ruleset is None:
        ruleset = ruleset_for(replay.header)
    Replayer(replay, ruleset)  # a bad ruleset or start fails here, before any worker starts
    if jobs is None:
        jobs = default_jobs(replay)
    h = replay.header
    spans = segments(replay, jobs)
    t0 = clock()
    if len(spans) == 1:
        results = [check_segment(replay, *spans[0], progress, ruleset)]
    else:
        _SHARED = replay, ruleset
        try:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(min(jobs, len(spans))) as pool:
                results = []
                for seg in pool.imap_unordered(_check_in_worker, spans):
                    if seg.error is not None:
                        raise seg.error
                    results.append(seg)
                    if progress is not None:
                        progress(seg.end - seg.start)
        finally:
            _SHARED = None
    elapsed = clock() - t0
    results.sort(key=lambda seg: seg.start)
    ticks = replay.last_tick - replay.first_tick
    diverged = [seg.divergence for seg in results if seg.divergence is not None]
    first = min(diverged, key=lambda d: d[0]) if diverged else None
    limit = first[0] if first is not None else replay.last_tick + 1
    good = [c.tick for c in replay.checkpoints if c.tick < limit]
    last = results[-1]
    end = replay.end
    final_match = None if first is not None or end is None else last.final_hash == end.hash
    scores_match = None if first is not None or end is None else last.scores == end.scores
    if first is None and final_match is False:
        assert end is not None
        first = (replay.last_tick, "final state_hash differs from the end record", end.hash, last.final_hash)
    elif first is None and scores_match is False:
        assert end is not None
        first = (replay.last_tick, "final scores differ from the end record", end.scores, last.scores)
    diverged_early = bool(diverged)
    return Verification(
        ok=first is None, ruleset=h.ruleset, first_tick=replay.first_tick, last_tick=replay.last_tick, ticks=ticks,
        jobs=min(jobs, len(spans)), checkpoints=len(replay.checkpoints),
        checkpoints_checked=len(good) if diverged_early else sum(seg.checkpoints_checked for seg in results),
        keyframes_checked=sum(1 for k in replay.keyframes if replay.first_tick < k.tick < limit) if diverged_early
        else sum(seg.keyframes_checked for seg in results),
        diverged_at=None if first is None else first[0], last_good=good[-1] if good else replay.first_tick,
        reason=None if first is None else first[1], expected=None if first is None else first[2],
        got=None if first is None else first[3],
        final_hash=None if diverged_early else last.final_hash, final_hash_recorded=end.hash if end else None,
        final_match=final_match, scores_match=scores_match, complete=replay.complete,
        truncated=replay.torn is not None, warnings=tuple(replay.warnings()), seconds=round(elapsed, 3),
        ticks_per_s=round(ticks / elapsed, 1) if elapsed > 0 else None,
        speedup=round(ticks / elapsed / h.tick_rate, 1) if elapsed > 0 else None,
    )

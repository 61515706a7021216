"""The server's Prometheus metrics (``/metrics``): one ``CollectorRegistry`` per ``GameServer``.

Names follow Prometheus' naming guide: the ``tickserver_`` prefix, base
units in the name (``_seconds``, ``_bytes``), ``_total`` on counters, a
``# HELP`` and ``# TYPE`` for each. Labels are bounded: ``ruleset`` (the
rulesets the server offers), ``phase``, ``code`` (a WebSocket close code
among ``CLOSE_CODES``, else ``other``) and ``by``; never a match, player or
address. Every hosted match counts, however many come and go: a match that
ends leaves its counts behind (``retire``), so counters never go down.

Two kinds of source, so that the tick pays next to nothing:

- **Tick durations** are observed as they happen: each match's ``timings``
  hook is ``tick_timer(ruleset)``, four histogram observations a tick
  (about 10 µs). The buckets start at 50 µs (``TICK_BUCKETS``): the
  library's default smallest, 5 ms, is coarser than a whole tick here.
- **Everything else** is counted in plain integers where it happens (each
  match's ``MatchStats`` and ticker, the server's ``Traffic`` and ``stats``,
  the recorders' bytes) and read by a collector at scrape time.

The process's own (``process_resident_memory_bytes``, CPU, open file
descriptors) come from the library's ``ProcessCollector``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from attrs import define
from prometheus_client import CollectorRegistry, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from server.match import Match
from server.replay.recorder import Recorder

if TYPE_CHECKING:
    from server.app import GameServer

#: The ``Content-Type`` of ``/metrics``: the text format every Prometheus scrapes.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

#: Tick duration buckets, seconds: sub-millisecond at the bottom, a whole 30 Hz tick (33 ms) and beyond at the top;
#: every half millisecond from 2 to 5 ms, where a quiet arena's p99 lies (a p99 is interpolated within its bucket:
#: with 3, 4, 5 ms alone, two runs' p99 could differ by 0.5 ms from where in a bucket they fell, BENCHMARKS.md).
TICK_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.0025, 0.003, 0.0035, 0.004,
                0.0045, 0.005, 0.006, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.0333, 0.05, 0.075, 0.1, 0.25, 1.0)

#: The phases of a tick (``Match.tick``): the label values of ``tickserver_tick_phase_duration_seconds``.
PHASES = ("simulation", "encoding", "sending")

#: Close codes a disconnect is counted under by number; any other is ``other`` (a peer picks its code freely).
CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                         4401, 4403, 4409, 4410})

#: The help of the server's own counters (``GameServer.stats``), exported as ``tickserver_<key>_total``.
STAT_HELP = {
    "connections": "WebSocket connections opened",
    "frames_dropped": "Updates not sent to a client whose send buffer was full",
    "slow_closed": "Clients closed for staying over the send buffer limit",
    "ack_closed": "Clients closed for acknowledging nothing for --ack-timeout while updates waited",
    "protocol_errors": "Connections closed for breaking the protocol",
    "resyncs": "Resync requests from clients (a keyframe asked for)",
    "ack_closed": "Clients closed for acknowledging nothing for --ack-timeout",
    "connections_refused": "Connections refused over --max-connections (HTTP 503)",
    "address_refused": "Connections refused over --max-per-address (HTTP 429)",
    "ignored_keys": "Keys of client messages the server does not know (a newer client's, ignored)",
}


@define
class Traffic:
    """What went over every connection: WebSocket messages, and bytes on the wire (HTTP and framing included)."""

    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


#: Per-ruleset counts of matches (``MatchCounts`` fields), as exported: name, help.
MATCH_COUNTERS = {
    "ticks": ("tickserver_ticks", "Ticks run"),
    "ticks_dropped": ("tickserver_ticks_dropped", "Ticks skipped because the loop fell behind"),
    "updates": ("tickserver_updates_sent", "State updates sent to clients"),
    "update_bytes": ("tickserver_update_sent_bytes", "Bytes of state updates sent to clients"),
    "keyframes": ("tickserver_keyframes_sent", "Updates sent as keyframes (no delta base)"),
    "encodes": ("tickserver_encodes", "Update encodings (one per tick and delta base)"),
    "joins": ("tickserver_joins", "Players who joined a match"),
    "leaves": ("tickserver_leaves", "Players who left a match (not back within the hold)"),
    "replay_bytes": ("tickserver_replay_written_bytes", "Bytes of replays written"),
    "started": ("tickserver_matches_started", "Matches started"),
    "ended": ("tickserver_matches_ended", "Matches ended"),
}


@define
class MatchCounts:
    """Counts of one ruleset's matches (see ``MATCH_COUNTERS``)."""

    ticks: int = 0
    ticks_dropped: int = 0
    updates: int = 0
    update_bytes: int = 0
    keyframes: int = 0
    encodes: int = 0
    joins: int = 0
    leaves: int = 0
    replay_bytes: int = 0
    started: int = 0
    ended: int = 0

    def add_match(self, match: Match) -> None:
        s = match.stats
        self.ticks += s.ticks
        self.ticks_dropped += match.ticks_dropped
        self.updates += s.frames_sent
        self.update_bytes += s.bytes_sent
        self.keyframes += s.keyframes_sent
        self.encodes += s.encodes
        self.joins += s.joins
        self.leaves += s.leaves

    def copy(self) -> MatchCounts:
        return MatchCounts(**{k: getattr(self, k) for k in MATCH_COUNTERS})


def ruleset_of(match: Match) -> str:
    return match.ruleset.spec.name


def code_label(code: int | None) -> str:
    """A close code as a bounded label value."""
    return str(code) if code in CLOSE_CODES else "other"


class ServerMetrics:
    """A server's registry and what feeds it. ``render()`` is the body of ``/metrics``.

    Args:
        server: the server whose matches, connections and counters are read at scrape time.
    """

    def __init__(self, server: GameServer) -> None:
        self.server = server
        self.registry = CollectorRegistry()
        self.tick_seconds = Histogram(
            "tickserver_tick_duration_seconds", "Duration of a match's tick (simulation, encoding and sending)",
            ["ruleset"], buckets=TICK_BUCKETS, registry=self.registry)
        self.phase_seconds = Histogram(
            "tickserver_tick_phase_duration_seconds", "Duration of one phase of a match's tick",
            ["ruleset", "phase"], buckets=TICK_BUCKETS, registry=self.registry)
        #: Counts of the matches that ended, by ruleset, and the recorders of ended matches still writing.
        self.retired: dict[str, MatchCounts] = {}
        self._closing: list[tuple[str, Recorder]] = []
        #: Each hosted match's recorders (found among its observers when it was hosted).
        self._recorders: dict[int, list[Recorder]] = {}
        #: WebSocket connections gone, by (close code label, who closed: server or client).
        self.disconnects: Counter[tuple[str, str]] = Counter()
        #: Other layers' counters, read at scrape time: ``tickserver_<prefix>_<key>_total`` (``add_counters``).
        self.counters: dict[str, Mapping[str, int]] = {}
        self.registry.register(_Collector(self))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    # -- what the server tells it ------------------------------------------------------

    def tick_timer(self, ruleset: str) -> Callable[[float, float, float], None]:
        """The ``timings`` hook of a match of ``ruleset``: observes a tick's phases and its whole, in seconds."""
        total = self.tick_seconds.labels(ruleset).observe
        sim, enc, send = (self.phase_seconds.labels(ruleset, phase).observe for phase in PHASES)

        def observe(simulation: float, encoding: float, sending: float) -> None:
            sim(simulation)
            enc(encoding)
            send(sending)
            total(simulation + encoding + sending)

        return observe

    def host(self, match: Match) -> None:
        """``match`` is hosted from now on: time its ticks, find its recorders, count it started."""
        ruleset = ruleset_of(match)
        match.timings = self.tick_timer(ruleset)
        self._recorders[id(match)] = [obs for obs in match.observers if isinstance(obs, Recorder)]
        self._retired(ruleset).started += 1

    def retire(self, match: Match) -> None:
        """``match`` is no longer hosted: keep its counts (its recorders' bytes once they are closed)."""
        ruleset = ruleset_of(match)
        counts = self._retired(ruleset)
        counts.add_match(match)
        counts.ended += 1
        match.timings = None
        self._closing += [(ruleset, r) for r in self._recorders.pop(id(match), [])]

    def add_counters(self, prefix: str, counts: Mapping[str, int]) -> None:
        """Export ``counts`` (a mapping the caller keeps counting in) as ``tickserver_<prefix>_<key>_total``."""
        self.counters[prefix] = counts

    def disconnect(self, code: int | None, by: str) -> None:
        """A WebSocket connection is gone: ``code`` the close code (ours when ``by`` is ``server``)."""
        self.disconnects[code_label(code), by] += 1

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def _retired(self, ruleset: str) -> MatchCounts:
        counts = self.retired.get(ruleset)
        if counts is None:
            counts = self.retired[ruleset] = MatchCounts()
        return counts

    # -- read at scrape time ---------------------------------------------------------

    def match_counts(self) -> dict[str, MatchCounts]:
        """Every ruleset's counts: those of ended matches and of the hosted ones."""
        for ruleset, recorder in list(self._closing):
            if recorder.closed:
                self._retired(ruleset).replay_bytes += recorder.bytes
                self._closing.remove((ruleset, recorder))
        out = {r: c.copy() for r, c in self.retired.items()}
        for ruleset, recorder in self._closing:
            out[ruleset].replay_bytes += recorder.bytes
        for match in self.server.matches.values():
            counts = out.setdefault(ruleset_of(match), MatchCounts())
            counts.add_match(match)
            counts.replay_bytes += sum(r.bytes for r in self._recorders.get(id(match), ()))
        return out


class _Collector(Collector):
    """Reads the plain counters of a server at scrape time (see the module docstring)."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        server = m.server
        matches = server.matches
        counts = m.match_counts()
        for key, (name, help_text) in MATCH_COUNTERS.items():
            family = CounterMetricFamily(name, help_text, labels=["ruleset"])
            for ruleset, c in sorted(counts.items()):
                family.add_metric([ruleset], getattr(c, key))
            yield family
        gauges: dict[str, dict[str, Any]] = {"matches": {}, "players": {}, "spectators": {}, "entities": {}}
        for ruleset in counts:
            for g in gauges.values():
                g[ruleset] = 0
        for match in matches.values():
            ruleset = ruleset_of(match)
            players = match.player_count()
            gauges["matches"][ruleset] += 1
            gauges["players"][ruleset] += players
            gauges["spectators"][ruleset] += sum(1 for mb in match.members.values() if mb.spectator)
            gauges["entities"][ruleset] += match.world.count()
        for key, help_text in (("matches", "Matches hosted"), ("players", "Players in the hosted matches, held ones included"),
                               ("spectators", "Spectators of the hosted matches"),
                               ("entities", "Entities in the hosted matches' worlds")):
            gauge = GaugeMetricFamily(f"tickserver_{key}", help_text, labels=["ruleset"])
            for ruleset, value in sorted(gauges[key].items()):
                gauge.add_metric([ruleset], value)
            yield gauge
        yield GaugeMetricFamily("tickserver_playbacks", "Replays being played to viewers",
                                value=len(server.feeds) - len(matches))
        yield GaugeMetricFamily("tickserver_open_connections", "Open TCP connections (HTTP and WebSocket)",
                                value=len(server.connections))
        t = server.traffic
        for name, help_text, value in (
            ("tickserver_received_messages", "WebSocket messages received from clients", t.messages_in),
            ("tickserver_sent_messages", "WebSocket messages sent to clients", t.messages_out),
            ("tickserver_received_bytes", "Bytes received from clients (HTTP and framing included)", t.bytes_in),
            ("tickserver_sent_bytes", "Bytes sent to clients (HTTP and framing included)", t.bytes_out),
        ):
            yield CounterMetricFamily(name, help_text, value=value)
        disconnects = CounterMetricFamily("tickserver_disconnects", "WebSocket connections gone, by close code and by "
                                     "who closed (server or client; 1006: no close frame)", labels=["code", "by"])
        for (code, by), value in sorted(m.disconnects.items()):
            disconnects.add_metric([code, by], value)
        yield disconnects
        for key, value in server.stats.items():
            yield CounterMetricFamily(f"tickserver_{key}", STAT_HELP.get(key, f"{key.replace('_', ' ')} (server counter)"),
                                      value=value)
        for prefix, more in m.counters.items():
            for key, value in more.items():
                yield CounterMetricFamily(f"tickserver_{prefix}_{key}", f"{prefix}: {key.replace('_', ' ')}", value=value)

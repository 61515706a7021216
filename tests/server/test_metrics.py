"""The server's Prometheus metrics, read as a scraper reads them: every hosted match, named by the guide."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from game.rules import get_ruleset
from server.app import GameServer
from server.config import ServerConfig
from server.match import Match
from server.metrics import TICK_BUCKETS, code_label
from tests.server.test_match import join


def scrape(server: GameServer) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of ``/metrics``'s body, by name and labels."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(server.metrics.render().decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def value(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


def hosting(tmp_path: Path, *specs: tuple[str, str]) -> GameServer:
    matches = [Match(get_ruleset(ruleset), match_id=mid, options={"npcs": 5} if ruleset == "drift" else None)
               for mid, ruleset in specs]
    return GameServer(ServerConfig(record=False, replay_dir=tmp_path), matches)


def test_every_hosted_match_is_counted_by_ruleset_not_only_the_default_one(tmp_path: Path) -> None:
    server = hosting(tmp_path, ("a", "drift"), ("b", "drift"), ("c", "arena"))
    for mid, ticks in (("a", 3), ("b", 5), ("c", 2)):
        match = server.matches[mid]
        join(match, "ann")
        for t in range(ticks):
            match.tick(t / 30)
    got = scrape(server)
    assert value(got, "tickserver_ticks_total", ruleset="drift") == 8
    assert value(got, "tickserver_ticks_total", ruleset="arena") == 2
    assert value(got, "tickserver_matches", ruleset="drift") == 2
    assert value(got, "tickserver_players", ruleset="drift") == 2
    drift = [server.matches[m].stats for m in ("a", "b")]
    assert value(got, "tickserver_updates_sent_total", ruleset="drift") == sum(s.frames_sent for s in drift) > 0
    assert value(got, "tickserver_keyframes_sent_total", ruleset="drift") == sum(s.keyframes_sent for s in drift) > 0
    assert value(got, "tickserver_tick_duration_seconds_count", ruleset="drift") == 8
    assert value(got, "tickserver_tick_phase_duration_seconds_count", ruleset="arena", phase="sending") == 2


def test_a_match_that_ends_leaves_its_counts_behind(tmp_path: Path) -> None:
    server = hosting(tmp_path, ("a", "drift"), ("b", "drift"))
    for match in server.matches.values():
        join(match)
        for t in range(4):
            match.tick(t / 30)
    sent = sum(m.stats.frames_sent for m in server.matches.values())
    server.remove_feed("b")
    got = scrape(server)
    assert value(got, "tickserver_ticks_total", ruleset="drift") == 8
    assert value(got, "tickserver_updates_sent_total", ruleset="drift") == sent > 0
    assert value(got, "tickserver_matches", ruleset="drift") == 1
    assert value(got, "tickserver_matches_started_total", ruleset="drift") == 2
    assert value(got, "tickserver_matches_ended_total", ruleset="drift") == 1
    assert server.matches["a"].timings is not None


def test_tick_durations_have_sub_millisecond_buckets() -> None:
    assert TICK_BUCKETS[0] <= 0.0001 and sum(b < 0.001 for b in TICK_BUCKETS) >= 4
    assert list(TICK_BUCKETS) == sorted(TICK_BUCKETS) and TICK_BUCKETS[-1] >= 0.1


def test_a_tick_is_observed_in_the_bucket_of_its_duration(tmp_path: Path) -> None:
    server = hosting(tmp_path, ("a", "drift"))
    observe = server.metrics.tick_timer("drift")
    observe(0.0002, 0.0001, 0.0003)  # 0.6 ms in all
    got = scrape(server)
    assert value(got, "tickserver_tick_duration_seconds_bucket", ruleset="drift", le="0.0005") == 0
    assert value(got, "tickserver_tick_duration_seconds_bucket", ruleset="drift", le="0.00075") == 1
    assert value(got, "tickserver_tick_phase_duration_seconds_bucket", ruleset="drift", phase="encoding",
                 le="0.0001") == 1
    assert value(got, "tickserver_tick_duration_seconds_sum", ruleset="drift") == pytest.approx(0.0006)


def test_every_metric_has_help_and_type_and_a_base_unit_name(tmp_path: Path) -> None:
    server = hosting(tmp_path, ("a", "drift"))
    server.metrics.disconnect(1008, "server")
    text = server.metrics.render().decode()
    helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert helps == set(types)
    for name, kind in types.items():
        if not name.startswith("tickserver_"):
            continue
        assert not re.search(r"_(ms|milliseconds|kb|mb|percent)(_|$)", name), name
        if kind == "counter":
            assert name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith("_seconds"), name
        if "bytes" in name:
            assert name.endswith(("_bytes", "_bytes_total")), name
    assert "process_resident_memory_bytes" in types


def test_labels_are_bounded_no_match_or_player_id_and_close_codes_outside_the_known_are_other(tmp_path: Path) -> None:
    server = hosting(tmp_path, ("some-match-id", "drift"))
    join(server.matches["some-match-id"], "ann")
    server.matches["some-match-id"].tick(0.0)
    for code in (1000, 1008, 3999, 4123, None):
        server.metrics.disconnect(code, "client")
    text = server.metrics.render().decode()
    assert "some-match-id" not in text and "ann" not in text
    got = scrape(server)
    assert value(got, "tickserver_disconnects_total", code="other", by="client") == 3
    assert value(got, "tickserver_disconnects_total", code="1008", by="client") == 1
    assert code_label(4410) == "4410"
    label_names = {k for samples in got.values() for labels in samples for k, _ in labels}
    assert label_names <= {"ruleset", "phase", "code", "by", "le", "implementation", "major", "minor", "patchlevel",
                           "version"}


def test_another_layers_counters_are_exported_as_they_count(tmp_path: Path) -> None:
    server = hosting(tmp_path, ("a", "drift"))
    counts = {"seats_refused": 0}
    server.metrics.add_counters("rooms", counts)
    counts["seats_refused"] += 3
    assert value(scrape(server), "tickserver_rooms_seats_refused_total") == 3


def test_each_server_has_its_own_registry(tmp_path: Path) -> None:
    one, two = hosting(tmp_path, ("a", "drift")), hosting(tmp_path, ("a", "drift"))
    one.matches["a"].tick(0.0)
    one.traffic.messages_in += 5
    assert one.metrics.registry is not two.metrics.registry
    assert value(scrape(one), "tickserver_ticks_total", ruleset="drift") == 1
    assert value(scrape(two), "tickserver_ticks_total", ruleset="drift") == 0
    assert value(scrape(two), "tickserver_received_messages_total") == 0

"""The command lines' value types: one clear line for each bad value."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

import pytest

import server.__main__ as server_main
from server.__main__ import build_parser, config_from_args, rooms_from_args
from server.cli import MAX_SEED, name_equals_int, port, positive, seed_int
from server.host import open_directory
from server.rooms.redis_directory import RedisDirectory


@pytest.mark.parametrize("text", ["-1", str(MAX_SEED + 1), "123456789012345678901234", "1.5", "x"])
def test_seed_int_refuses_what_is_not_an_unsigned_63_bit_integer(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        seed_int(text)


def test_seed_int_takes_the_whole_range() -> None:
    assert seed_int("0") == 0 and seed_int(str(MAX_SEED)) == MAX_SEED


@pytest.mark.parametrize("text", ["-1", "65536", "99999", "http"])
def test_port_refuses_what_is_not_a_port(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        port(text)


def test_positive_and_name_equals_int_say_what_is_wrong() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="must be positive"):
        positive(float)("0")
    with pytest.raises(argparse.ArgumentTypeError, match="expected NAME=INT"):
        name_equals_int("npcs")
    assert name_equals_int("npcs=7") == ("npcs", 7)


def test_server_flags_reach_the_config() -> None:
    args = build_parser().parse_args(["--seed", "9", "--tick-rate", "60", "--max-msg-rate", "500", "--npcs", "12"])
    config = config_from_args(args)
    assert (config.seed, config.tick_rate, config.msg_rate) == (9, 60, 500.0)
    assert dict(config.options) == {"npcs": 12}


def test_server_rejects_a_seed_out_of_range_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--seed", str(2**64)])
    assert info.value.code == 2
    assert "seed must be in 0..2**63-1" in capsys.readouterr().err


def test_the_cluster_flags_reach_the_rooms_settings() -> None:
    args = build_parser().parse_args(["--redis", "redis://:pw@10.0.0.2:6380/1", "--heartbeat", "1", "--node-ttl", "4"])
    rooms = rooms_from_args(args)
    assert (rooms.redis, rooms.heartbeat_s, rooms.node_ttl) == ("redis://:pw@10.0.0.2:6380/1", 1.0, 4.0)
    assert rooms_from_args(build_parser().parse_args([])).redis is None


def test_each_cluster_sharing_a_redis_keeps_its_keys_under_its_own_redis_prefix() -> None:
    rooms = rooms_from_args(build_parser().parse_args(["--redis", "redis://r/0", "--redis-prefix", "ts-eu:"]))
    directory, _, _ = open_directory(rooms)
    assert isinstance(directory, RedisDirectory) and directory.prefix == "ts-eu:"
    assert rooms_from_args(build_parser().parse_args([])).redis_prefix == "tickserver:"


@pytest.mark.parametrize("argv, words", [
    (["--redis", "127.0.0.1:6379"], "expected redis://HOST:PORT/DB"),
    (["--redis", "redis://"], "expected redis://HOST:PORT/DB"),
    (["--heartbeat", "0"], "must be positive"),
    (["--redis-prefix", "a prefix"], "expected 1-64 of A-Z a-z 0-9 _ . : -"),
    (["--redis-prefix", ""], "expected 1-64 of A-Z a-z 0-9 _ . : -"),
])
def test_a_bad_cluster_flag_is_one_line(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2 and words in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["--heartbeat", "3", "--node-ttl", "3"], "--node-ttl 3 must be more than --heartbeat 3"),
    (["--redis", "redis://r/0", "--heartbeat", "6"], "--heartbeat 6 must be less than the node TTL (6)"),
])
def test_a_node_ttl_not_over_the_heartbeat_is_refused(argv: list[str], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        rooms_from_args(build_parser().parse_args(argv))


def test_the_event_loop_flag_defaults_to_the_environment_then_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_parser().parse_args([]).event_loop == "auto"
    assert build_parser().parse_args(["--event-loop", "asyncio"]).event_loop == "asyncio"
    monkeypatch.setenv("TICKSERVER_EVENT_LOOP", "asyncio")
    assert build_parser().parse_args([]).event_loop == "asyncio"


def test_a_node_task_that_ignores_its_cancellation_is_logged_with_where_it_waits_not_waited_for(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(server_main, "STOP_WAIT_S", 0.2)

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(60)  # swallows the first cancellation: a stuck shutdown

    async def main() -> tuple[bool, bool]:
        quick = asyncio.create_task(asyncio.sleep(60), name="quick")
        stuck = asyncio.create_task(stubborn(), name="stubborn")
        await asyncio.sleep(0)
        async with asyncio.timeout(5):
            await server_main.stop_tasks([quick, stuck])
        done = quick.cancelled(), stuck.done()
        stuck.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stuck
        return done

    with caplog.at_level(logging.WARNING, logger="server"):
        quick_cancelled, stuck_done = asyncio.run(main())
    assert quick_cancelled and not stuck_done
    (record,) = [r for r in caplog.records if "stopping:" in r.getMessage()]
    message = record.getMessage()
    assert message.startswith("stopping: the task 'stubborn' has not finished 0.2 s after its cancellation; it waits here:")
    assert "in stubborn" in message

"""The supervisor's plan and policy: ports, public URLs, command lines, restarts (pure; e2e in tests/e2e/test_workers.py)."""

from __future__ import annotations

import argparse

import pytest

from server.__main__ import build_parser, config_from_args, main, page_origin, public_url_arg, worker_origins
from server.workers import Restarts, WorkerSpec, cpu_count, plan, worker_count


def test_workers_takes_a_count_or_auto_for_one_per_cpu() -> None:
    assert worker_count("3") == 3
    assert worker_count("auto") == worker_count("0") == 0
    assert cpu_count() >= 1
    for bad in ("-1", "two", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            worker_count(bad)


def test_a_fixed_port_gives_consecutive_ports_and_port_0_a_free_one_each() -> None:
    assert [s.port for s in plan(3, 9000, None)] == [9000, 9001, 9002]
    assert [s.port for s in plan(2, 0, None)] == [0, 0]
    assert [s.index for s in plan(2, 0, None)] == [1, 2]


def test_ports_past_65535_are_refused() -> None:
    with pytest.raises(ValueError, match="past 65535"):
        plan(2, 65535, None)


def test_each_worker_gets_its_own_public_url_from_the_template() -> None:
    assert [s.public_url for s in plan(2, 0, "wss://games.example.com/w{worker}")] == [
        "wss://games.example.com/w1", "wss://games.example.com/w2"]
    # {port} is the worker's to fill in: with --port 0 only it knows its port.
    assert [s.public_url for s in plan(2, 0, "ws://10.0.0.5:{port}")] == ["ws://10.0.0.5:{port}"] * 2


def test_one_public_url_for_several_workers_is_refused() -> None:
    with pytest.raises(ValueError, match=r"put \{port\} or \{worker\} in it"):
        plan(2, 8765, "wss://games.example.com")
    assert plan(1, 8765, "wss://games.example.com")[0].public_url == "wss://games.example.com"


def test_a_worker_runs_the_supervisors_command_line_with_its_own_settings_last() -> None:
    spec = WorkerSpec(2, 9001, "wss://h/w2")
    cmd = spec.command(["--workers", "2", "--port", "9000", "--ruleset", "drift"], python="py")
    assert cmd == ["py", "-m", "server", "--workers", "2", "--port", "9000", "--ruleset", "drift",
                   "--worker-index", "2", "--port", "9001", "--public-url", "wss://h/w2"]
    args = build_parser().parse_args(cmd[3:])
    assert (args.port, args.public_url, args.worker_index, args.ruleset) == (9001, "wss://h/w2", 2, "drift")


@pytest.mark.parametrize("url", ["ws://127.0.0.1:8765", "wss://games.example.com", "wss://games.example.com/w1/",
                                 "ws://10.0.0.5:{port}", "ws://[::1]:9000"])
def test_public_url_takes_a_host_a_port_a_path_prefix_and_the_port_placeholder(url: str) -> None:
    assert public_url_arg(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://h", "ws://", "wss://h/?x=1", "ws://h:port", "ws://h/{worker}", "ws://h:{prt}"])
def test_public_url_refuses_anything_else(url: str) -> None:
    with pytest.raises(ValueError, match="--public-url"):
        public_url_arg(url)


def test_several_workers_without_redis_are_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--workers", "2", "--port", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--workers 2 needs --redis URL" in err


def test_a_bad_ruleset_stops_the_supervisor_before_any_worker_starts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--workers", "1", "--port", "0", "--ruleset", "nope"])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("python -m server: error: unknown ruleset 'nope'")


def test_restarts_back_off_and_reset_once_a_worker_ran_long_enough() -> None:
    r = Restarts(initial_s=1, max_s=4, factor=2, stable_s=30)
    assert [r.exited(ready=True, ran_s=5) for _ in range(4)] == [1, 2, 4, 4]
    assert r.exited(ready=True, ran_s=31) == 1


def test_restarts_give_up_after_failed_starts_in_a_row_only() -> None:
    r = Restarts(initial_s=1, max_s=8, max_start_failures=3)
    assert r.exited(ready=False, ran_s=0.1) == 1
    assert r.exited(ready=False, ran_s=0.1) == 2
    assert r.exited(ready=True, ran_s=1) == 4  # it listened: the count starts again
    assert r.exited(ready=False, ran_s=0.1) == 8
    assert r.exited(ready=False, ran_s=0.1) == 8
    assert r.exited(ready=False, ran_s=0.1) is None


def test_the_page_origin_of_a_websocket_base_drops_the_path_and_keeps_the_port() -> None:
    assert page_origin("ws://127.0.0.1:8765") == "http://127.0.0.1:8765"
    assert page_origin("wss://games.example.com/w1") == "https://games.example.com"


def test_pages_from_the_public_urls_origin_may_open_websockets() -> None:
    args = build_parser().parse_args(["--public-url", "wss://games.example.com/n1", "--allowed-origin", "https://a.b"])
    assert config_from_args(args).allowed_origins == ("https://a.b", "https://games.example.com")
    args = build_parser().parse_args(["--public-url", "ws://10.0.0.5:{port}", "--port", "9000"])
    assert config_from_args(args).allowed_origins == ("http://10.0.0.5:9000",)
    args = build_parser().parse_args(["--public-url", "ws://10.0.0.5:{port}", "--port", "0"])
    assert config_from_args(args).allowed_origins == ()


def test_workers_on_known_ports_let_each_others_pages_open_their_websockets() -> None:
    args = build_parser().parse_args(["--port", "9000", "--host", "0.0.0.0"])
    assert worker_origins(config_from_args(args), plan(2, 9000, None)) == [
        "http://127.0.0.1:9000", "http://127.0.0.1:9001"]
    specs = plan(2, 9000, "ws://10.0.0.5:{port}")
    assert worker_origins(config_from_args(args), specs) == ["http://10.0.0.5:9000", "http://10.0.0.5:9001"]
    args = build_parser().parse_args(["--port", "0"])
    assert worker_origins(config_from_args(args), plan(2, 0, None)) == []

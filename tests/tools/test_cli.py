"""Every tool refuses a bad flag in one line, ``PROG: error: MESSAGE``, with exit status 2: no usage dump, no traceback."""

from __future__ import annotations

import importlib

import pytest

from tools.cli import number

CASES = [
    ("attacks", ["nope"], "argument kind: invalid choice: 'nope'"),
    ("attacks", ["stall", "--seconds", "0"], "argument --seconds: '0' must be positive"),
    ("bench", ["--players", "0"], "argument --players: '0' must be at least 1"),
    ("bots", ["--verify", "-1"], "argument --verify: '-1' must be at least 0"),
    ("bots", ["--connect-rate", "x"], "argument --connect-rate: 'x' is not a number"),
    ("bots", ["--url", "ws://127.0.0.1:8765/"], "--url ws://127.0.0.1:8765/ names no match: use ws://127.0.0.1:8765/ws"),
    ("browser_bench", ["--npcs", "-1"], "argument --npcs: '-1' must be at least 0"),
    ("browser_bench", ["--chromium", "/no/such/browser"], "--chromium /no/such/browser: no such browser"),
    ("ceiling", ["--port", "99999"], "--port must be in 0..65535, got 99999"),
    ("genbench", ["--clients", "0"], "argument --clients: '0' must be at least 1"),
    ("genbench", ["--clients", "30000"], "--clients must be at most 20000, got 30000"),
    ("loadgen", ["--url", "nope"], "--url must be ws://HOST:PORT/PATH"),
    ("mmbench", ["--requests", "0"], "--requests must be in 1..10000"),
    ("mmbench", ["--nodes", "9"], "--nodes must be in 1..8"),
    ("replay", ["nope"], "argument COMMAND: invalid choice: 'nope'"),
    ("replay", ["play", "--port", "x"], "argument --port: 'x' is not a port number"),
    ("simbench", ["--steps", "0"], "argument --steps: '0' must be at least 1"),
    ("simbench", ["--npcs", "x"], "argument --npcs: 'x' is not an integer"),
    ("soak", ["--scale", "-1"], "argument --scale: '-1' must be positive"),
    ("viewbench", ["--players", "0"], "argument --players: '0' must be at least 1"),
    ("viewbench", ["--npcs", "10,x"], "argument --npcs: 'x' is not an integer"),
]


@pytest.mark.parametrize("tool, argv, message", CASES, ids=[f"{t} {' '.join(a)}" for t, a, _ in CASES])
def test_a_bad_flag_is_one_line_and_exit_status_2(tool: str, argv: list[str], message: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    main = importlib.import_module(f"tools.{tool}").main
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    assert info.value.code == 2 and out.out == ""
    [line] = out.err.splitlines()
    assert line.startswith(f"python -m tools.{tool}") and ": error: " in line and message in line, line


def test_number_parses_at_least_its_bound_and_says_what_else() -> None:
    assert number(int, 0)("3") == 3 and number(float, 0.5)("0.5") == 0.5
    with pytest.raises(Exception, match="must be at least 2"):
        number(int, 2)("1")
    with pytest.raises(Exception, match="'x' is not an integer"):
        number(int, 0)("x")

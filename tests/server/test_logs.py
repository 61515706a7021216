"""The log's formats and its rate limit, on records made here and a clock driven by hand."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from server import logs


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(msg: str, *args: object, level: int = logging.INFO, name: str = "server", **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    ws_level = logging.getLogger("websockets").level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    logging.getLogger("websockets").setLevel(ws_level)


def test_json_lines_carry_the_message_and_the_events_fields() -> None:
    line = logs.JsonFormatter().format(record("%s: player %d joined", "m1", 3,
                                              **logs.fields("join", match="m1", player=3)))
    obj = json.loads(line)
    assert obj["message"] == "m1: player 3 joined" and obj["level"] == "info" and obj["logger"] == "server"
    assert (obj["event"], obj["match"], obj["player"]) == ("join", "m1", 3)
    assert obj["time"].endswith("Z") and "\n" not in line


def test_a_traceback_stays_on_the_json_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = logging.LogRecord("server", logging.ERROR, __file__, 1, "failed", (), __import__("sys").exc_info())
    line = logs.JsonFormatter().format(rec)
    assert "\n" not in line and "RuntimeError: boom" in json.loads(line)["exc"]


def test_fields_refuse_a_name_every_record_has() -> None:
    with pytest.raises(ValueError, match="name"):
        logs.fields("join", name="ann")


def test_each_kind_of_line_passes_its_burst_then_its_rate_and_the_next_one_says_how_many_were_held() -> None:
    clock = Clock()
    limit = logs.RateLimit(rate=2.0, burst=3, clock=clock)
    joins = [limit.filter(record("%s joined", i)) for i in range(10)]
    assert joins == [True] * 3 + [False] * 7
    assert limit.filter(record("another kind of line"))  # its own bucket
    clock.now = 0.5  # one more token
    passed = record("%s joined", 99)
    assert limit.filter(passed) and passed.suppressed == 7
    assert not limit.filter(record("%s joined", 100))


def test_the_line_that_empties_the_bucket_says_more_are_held_back() -> None:
    limit = logs.RateLimit(rate=1.0, burst=2, clock=Clock())
    first, last = record("x"), record("x")
    assert limit.filter(first) and limit.filter(last)
    assert not getattr(first, "suppressing", False) and last.suppressing
    assert "held back" in logs.TextFormatter().format(last)


def test_setup_writes_json_to_the_stream_and_quiets_the_library(restore_root: None) -> None:
    out = io.StringIO()
    logs.setup("info", "json", out)
    logging.getLogger("server").info("hello %s", "there", extra=logs.fields("listening", port=1))
    logging.getLogger("websockets.server").info("connection rejected (200 OK)")
    lines = out.getvalue().splitlines()
    assert [json.loads(x)["message"] for x in lines] == ["hello there"]


def test_setup_refuses_an_unknown_format(restore_root: None) -> None:
    with pytest.raises(ValueError, match="text, json"):
        logs.setup("info", "xml")

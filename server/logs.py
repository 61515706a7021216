"""The server's log: what an operator reads, as text or as one JSON object per line, never a flood.

``setup(level, fmt)`` installs the one handler on the root logger (stderr)
for ``python -m server`` and ``tools.replay play`` alike:

- ``fmt="text"``: ``TIME LEVEL LOGGER: MESSAGE``, as before;
  ``fmt="json"``: one JSON object per line for log shippers (``time``, UTC,
  ISO 8601; ``level``; ``logger``; ``message``; ``exc`` with a traceback
  when there is one), plus the event's fields (``event`` and what it names).
- **Events** carry their fields through ``extra``: ``log.info("...",
  extra=fields("join", match=..., player=...))``. Text shows only the
  message, which says the same in words; JSON adds the fields, so a shipper
  can filter by ``event``, ``match``, ``code``. The events: ``listening``,
  ``join``, ``resume``, ``leave``, ``gone`` (a player's seat freed, one that answered an update),
  ``kick`` (the server closes a connection with an error code: ``code`` and
  ``reason``), ``match_start``, ``match_end``, ``ticks_dropped``, ``slow_client``; a drain's
  (``server.handover.drain``): ``drain``, ``handover_out``, ``handover_in``, ``handover_failed``,
  ``handover_refused``, ``drained``.
- **Rate limit** (``RateLimit``): each kind of line (its logger, level and
  message template) may come ``burst`` times at once and ``rate`` times a
  second; past that, lines are counted, not written. The first line held
  back is announced; the next one written says how many were held back
  (``suppressed``). It applies to every logger, asyncio's and the library's
  too: a thousand clients joining, or a thousand ``accept`` failures a
  second when file descriptors run out, take a few lines, not megabytes.
- The websockets library logs at WARNING and up only (below it, it logs
  every HTTP answer: our own lines say what matters).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from attrs import define

#: The formats ``--log-format`` offers.
FORMATS = ("text", "json")
#: The levels ``--log-level`` offers.
LEVELS = ("debug", "info", "warning", "error")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: A kind of line may be written this many times at once, and this many times a second sustained.
BURST = 20
RATE_PER_S = 5.0

#: Attributes every ``LogRecord`` has: anything else on a record came from ``extra`` (an event's fields).
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


def fields(event: str, **values: Any) -> dict[str, Any]:
    """The ``extra`` of an event's line: its name and what it names (JSON-able values).

    Raises:
        ValueError: a field named like an attribute every log record has (``name``, ``msg``...).
    """
    clash = _STANDARD.intersection(values)
    if clash:
        raise ValueError(f"log fields {sorted(clash)} would overwrite the log record's own")
    return {"event": event, **values}


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields ``extra`` put on ``record`` (the event and what it names), in the order they were given."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback is a string field, ``exc``)."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in event_fields(record).items():
            obj.setdefault(key, value)
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            obj["exc"] = record.exc_text
        return json.dumps(obj, default=str)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE``, and how many lines like it were held back before it."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        held = getattr(record, "suppressed", None)
        if held:
            text += f" ({held} more like this held back)"
        elif getattr(record, "suppressing", False):
            text += f" (more like this are held back: at most {RATE_PER_S:g} a second)"
        return text


@define
class _Bucket:
    tokens: float
    last: float
    held: int = 0


class RateLimit(logging.Filter):
    """Lets each kind of line through ``burst`` times at once and ``rate`` times a second (a token bucket
    per logger, level and message template); holds back the rest and counts them.

    The line that empties the bucket says more are held back (``suppressing``), and the next one let
    through carries their count (``suppressed``): in words in text, as a field in JSON.
    """

    def __init__(self, rate: float = RATE_PER_S, burst: int = BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[tuple[str, int, str], _Bucket] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        key = (record.name, record.levelno, record.msg if isinstance(record.msg, str) else type(record.msg).__name__)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > 10_000:  # templates are few; a computed message must not grow this forever
                self._buckets.clear()
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.last) * self.rate)
            bucket.last = now
        if bucket.tokens < 1.0:
            bucket.held += 1
            return False
        bucket.tokens -= 1.0
        if bucket.held:
            record.suppressed = bucket.held
            bucket.held = 0
        elif bucket.tokens < 1.0:
            record.suppressing = True
        return True


def setup(level: str = "info", fmt: str = "text", stream: TextIO | None = None, *,
          rate: float = RATE_PER_S, burst: int = BURST) -> logging.Handler:
    """Send every log line to ``stream`` (stderr) in ``fmt`` from ``level`` up, rate-limited; returns the handler.

    Replaces the root logger's handlers (calling it again reconfigures). The
    websockets library is quieted to warnings unless ``level`` is debug.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RateLimit(rate, burst))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("websockets").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    return handler

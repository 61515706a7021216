"""The garbage collector's probe of ``python -m tools.cpusplit --gc`` (not part of the server).

``tools.cpusplit --gc`` puts this directory on the measured server's ``PYTHONPATH``
(after its checkout) and sets ``TICKSERVER_GCPROBE`` to a file name; Python then
imports this module at start-up (``site``'s ``sitecustomize`` hook), before the
server's code, so the server's own code is measured unchanged and any checkout can
be (``--root``, ``--before``). Without that variable it does nothing.

A ``gc.callbacks`` hook records every collection: its start (``time.monotonic()``,
the clock ``tools.cpusplit`` marks its window with), its duration (seconds), its
generation and what it collected, the last ``KEEP`` of them; a daemon thread
rewrites the file (JSON, replaced atomically) every ``EVERY`` seconds.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import threading
import time
from typing import Any

KEEP = 100_000
EVERY = 0.25


def _install(path: str) -> None:
    seen: collections.deque[tuple[float, float, int, int]] = collections.deque(maxlen=KEEP)
    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.monotonic()
        else:
            seen.append((started[0], time.monotonic() - started[0], int(info["generation"]), int(info.get("collected", 0))))

    def dump() -> None:
        while True:
            time.sleep(EVERY)
            with open(path + ".tmp", "w") as f:
                json.dump(list(seen), f)
            os.replace(path + ".tmp", path)

    gc.callbacks.append(callback)
    threading.Thread(target=dump, name="gcprobe", daemon=True).start()


if os.environ.get("TICKSERVER_GCPROBE"):
    _install(os.environ["TICKSERVER_GCPROBE"])

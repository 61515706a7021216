"""Fixtures shared by the replay tests."""

from __future__ import annotations

import pytest

from tests.replay.helpers import record_match


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a 330-tick drift match of three players, one of whom leaves at tick 200."""
    path, _, _ = record_match(tmp_path_factory.mktemp("rec"), "drift", ticks=330, players=3, leave_at=200)
    return path.read_bytes()

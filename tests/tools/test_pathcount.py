"""tools.pathcount drives a real server in one process: every client's inputs are read, every update is delivered."""

from __future__ import annotations

import asyncio

import pytest

from tools.pathcount import run


@pytest.mark.parametrize("mode", ["recv", "full"])
def test_each_round_every_client_sends_one_input_and_in_full_mode_reads_one_update(mode: str) -> None:
    out = asyncio.run(run(3, 4, mode, 50))
    assert (out["players"], out["ticks"], out["mode"], out["keyframes"]) == (3, 4, mode, 3)  # one each, on joining
    if mode == "full":
        assert out["frames_sent"] == out["keyframes"] + 3 * 4 and out["updates_bytes"] > 0
    else:
        assert out["updates_bytes"] == 0

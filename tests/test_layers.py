"""Imports point down: game/ below the protocol, the protocol below the server shell.

Every ``.py`` file under each layer is parsed (files added later are covered
too) and each import is resolved to its absolute dotted name, including
relative imports, ``from pkg import module`` and literal
``importlib.import_module("...")`` / ``__import__("...")`` calls.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

GAME_FORBIDDEN = ("server", "tools", "asyncio", "websockets", "socket", "time", "random")
PROTOCOL_FORBIDDEN = ("asyncio", "websockets", "socket", "server.app", "server.match", "tools")
SERVER_FORBIDDEN = ("tools",)


def python_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str | None = None) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) for every import in ``path`` (the module ``module``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = (module or module_name(path)).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{module}.{alias.name}"
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield node.lineno, arg.value


def is_within(module: str, forbidden: str) -> bool:
    return module == forbidden or module.startswith(forbidden + ".")


def violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in python_files(package):
        for line, module in imports_of(path):
            for bad in forbidden:
                if is_within(module, bad):
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


# -- the checker itself ------------------------------------------------------------


def test_the_walk_finds_every_layer_and_nested_packages():
    game = {module_name(p) for p in python_files("game")}
    assert {"game", "game.world", "game.drift", "game.rules"} <= game
    assert any(m.startswith("game.arena.") for m in game)
    assert "server.protocol.codec" in {module_name(p) for p in python_files("server/protocol")}
    assert "server.app" in {module_name(p) for p in python_files("server")}


def test_import_resolution_handles_relative_from_and_dynamic_imports(tmp_path):
    src = (
        "import time, os.path\n"
        "from . import app\n"
        "from .. import match\n"
        "from ..protocol.codec import x\n"
        "from asyncio import sleep\n"
        "import importlib\n"
        "importlib.import_module('websockets.sync')\n"
        "__import__('socket')\n"
    )
    fake = tmp_path / "fake.py"
    fake.write_text(src)
    got = [m for _, m in imports_of(fake, "server.protocol.fake")]
    assert got[:3] == ["time", "os.path", "server.protocol"]
    assert "server.protocol.app" in got
    assert "server.match" in got
    assert "server.protocol.codec.x" in got
    assert "asyncio.sleep" in got
    assert "websockets.sync" in got
    assert "socket" in got


def test_is_within_matches_whole_dotted_prefixes_only():
    assert is_within("time", "time")
    assert is_within("server.app.routes", "server.app")
    assert not is_within("timeit", "time")
    assert not is_within("server.application", "server.app")
    assert not is_within("randomness", "random")


# -- the layers ---------------------------------------------------------------------


def test_nothing_in_game_imports_the_server_tools_io_clocks_or_global_random():
    assert violations("game", GAME_FORBIDDEN) == []


def test_nothing_in_the_protocol_imports_io_or_the_server_shell():
    assert violations("server/protocol", PROTOCOL_FORBIDDEN) == []


def test_nothing_in_the_server_imports_tools():
    assert violations("server", SERVER_FORBIDDEN) == []


@pytest.mark.parametrize("package", ["game", "server"])
def test_every_module_of_a_layer_parses(package):
    for path in python_files(package):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

"""Each layer imports only what its whitelist names; anything else fails.

The layers (../shared/STYLE.md), lowest first:

- ``game/``: pure and deterministic. numpy (not ``numpy.random``), attrs,
  ``game.*`` and the few pure stdlib modules it uses.
- the protocol, ``server/protocol/``: sans-I/O. game, msgpack, numpy, attrs,
  zlib and a few pure stdlib modules.
- the sans-I/O modules that live in the shell (``SANS_IO``): the same, plus
  the protocol, each other, math, struct, datetime without its clock and
  websockets' pure ``apply_mask``; no clock, loop, socket, thread or file.
- the shell, ``server/``: the protocol, game, websockets, numpy, attrs,
  msgpack, the stdlib and uvloop (the event loop it runs on when installed,
  ``server/loop.py``); never ``tools``. The Redis client only in
  ``server/rooms/redis_directory.py`` (the directory's one shell in the
  rooms package), so that nothing else depends on it.
- ``tools/``: anything; no layer's whitelist names it, so nothing in
  ``server/`` or ``game/`` may import it.

Every ``.py`` file under a layer is parsed (files added later are covered
too), and every name it reaches is resolved to an absolute dotted name:
imports (relative ones and ``from pkg import module`` included), literal
``importlib.import_module("...")`` / ``__import__("...")`` calls, attributes
of an imported module (``np.random``, ``datetime.datetime.now``), and the builtins that do I/O or run
code (``open``, ``print``, ``exec``...) as ``builtins.<name>``. A computed
import (a non-literal argument) is ``<computed>``, allowed only in the files
a layer names, each saying what it loads. A name passes a layer
when it lies within one of the layer's allowed prefixes and within none of
its exceptions.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from attrs import frozen

ROOT = Path(__file__).resolve().parent.parent

COMPUTED = "<computed>"
#: Builtins that reach the outside world or run code that no import shows.
REACHING_BUILTINS = frozenset({"open", "print", "input", "breakpoint", "exec", "eval", "compile"})


@frozen
class Layer:
    """A set of modules and the names they may reach.

    Attributes:
        name: how failures name the layer.
        paths: packages (directories) or single ``.py`` files, relative to the root.
        allowed: dotted prefixes the layer's modules may reach.
        denied: dotted prefixes within ``allowed`` that they may not.
        computed: files allowed a computed import (each entry says what it loads).
    """

    name: str
    paths: tuple[str, ...]
    allowed: frozenset[str]
    denied: tuple[str, ...] = ()
    computed: tuple[str, ...] = ()

    def refuses(self, name: str) -> bool:
        return not any(is_within(name, a) for a in self.allowed) or any(is_within(name, d) for d in self.denied)

    def files(self) -> list[Path]:
        found: list[Path] = []
        for p in self.paths:
            path = ROOT / p
            found += python_files(p) if path.is_dir() else [path] if path.is_file() else []
        return found


#: Annotations only: every layer may use them (``collections.abc``: the abstract types annotations name, such as
#: ``Sequence``).
PURE_TYPING = ("__future__", "typing", "collections.abc")

GAME = Layer(
    "game",
    ("game",),
    frozenset({
        "game", "numpy", "attrs", *PURE_TYPING,
        "math",
        "hashlib",  # state_hash: blake2b of the columns
        "importlib",  # the ruleset registry: import_module of a game module by name
    }),
    denied=("numpy.random", "importlib.resources", "importlib.metadata"),
    computed=("game/rules.py",),  # RULESETS: game modules only (test_the_ruleset_registry_loads_only_game_modules)
)

PROTOCOL = Layer(
    "protocol",
    ("server/protocol",),
    frozenset({"server.protocol", "game", "msgpack", "numpy", "attrs", "zlib", *PURE_TYPING, "collections", "enum",
               "struct"}),  # codec.decode_input: the input's ints, read from its bytes
    denied=("numpy.random",),
)

#: Modules of the shell that must stay sans-I/O: bytes, objects and ``now`` in, bytes and objects out.
SANS_IO_FILES = (
    "server/frames.py",
    "server/inputs.py",
    "server/ticker.py",
    "server/feed.py",
    "server/replay/format.py",
    "server/replay/inputs.py",
    "server/handover/format.py",
    "server/rooms/catalog.py",
    "server/rooms/directory.py",
    "server/rooms/errors.py",
    "server/rooms/index.py",
    "server/rooms/lifecycle.py",
    "server/rooms/requests.py",
    "server/rooms/roomtype.py",
    # Not server/rooms/matchmaker.py (asyncio: concurrent creations share a future), memory.py (secrets:
    # it draws seat tokens; asyncio: its mailboxes wait), the package's __init__.py, which imports both,
    # nor redis_directory.py, a shell (it talks to Redis).
    # TODO(replay package): enable once playback.py is sans-I/O. Today it reaches logging,
    # secrets (its viewers' tokens), server.replay.resim (which imports multiprocessing, os
    # and time for verify's jobs) and, for a type, server.replay.listing.
    # "server/replay/playback.py",
)

SANS_IO = Layer(
    "sans-I/O",
    SANS_IO_FILES,
    PROTOCOL.allowed | {
        "math", "struct",
        "re", "json", "urllib.parse", "heapq", "types",  # rooms: parsing requests, deadlines, read-only mappings
        "datetime",  # formatting a timestamp it is given; its clock is denied below
        "websockets.speedups", "websockets.utils",  # apply_mask, a pure function (frames.py)
        *(".".join(Path(f).with_suffix("").parts) for f in SANS_IO_FILES),
    },
    denied=("numpy.random", "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today",
            "datetime.date.today"),
)

SHELL = Layer(
    "shell",
    ("server",),
    frozenset(sys.stdlib_module_names) | {"server", "game", "websockets", "numpy", "attrs", "msgpack", "redis",
                                          "prometheus_client",  # server/metrics.py
                                          "uvloop"},  # server/loop.py: the event loop when installed
    computed=("server/rulesets.py",),  # the user's own ruleset module, named on the command line
)
#: The one module of the shell that may reach the Redis client.
REDIS_SHELL = "server/rooms/redis_directory.py"

LAYERS = (GAME, PROTOCOL, SANS_IO, SHELL)


def python_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _origin(node: ast.ImportFrom, package: list[str]) -> str:
    """The absolute module a ``from ... import`` names (``package``: the importing module's package)."""
    if not node.level:
        return node.module or ""
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _chain(node: ast.expr) -> list[str]:
    """``a.b.c`` as ``["a", "b", "c"]``; ``[""]`` when the chain does not start at a name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    return [node.id, *parts] if isinstance(node, ast.Name) else [""]


def names_reached(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) for every name the source of ``module`` reaches (see the module docstring)."""
    tree = ast.parse(source)
    package = module.split(".") if is_package else module.split(".")[:-1]
    aliases: dict[str, str] = {}  # local name -> the module (or module attribute) an import binds it to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                aliases[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{_origin(node, package)}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            origin = _origin(node, package)
            yield node.lineno, origin
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{origin}.{alias.name}"
        elif isinstance(node, ast.Attribute):
            chain = _chain(node)
            if chain[0] in aliases:
                yield node.lineno, ".".join([aliases[chain[0]], *chain[1:]])
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__"):
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield node.lineno, arg.value
                else:
                    yield node.lineno, COMPUTED
            elif isinstance(func, ast.Name) and func.id in REACHING_BUILTINS and func.id not in aliases:
                yield node.lineno, f"builtins.{func.id}"


def is_within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def refusals(layer: Layer, source: str, module: str, *, where: str = "", is_package: bool = False) -> list[str]:
    """What ``layer`` refuses in ``source`` (the module ``module``), one line each."""
    where = where or module
    found = []
    for line, name in names_reached(source, module, is_package):
        if name == COMPUTED and where in layer.computed:
            continue
        if layer.refuses(name):
            found.append(f"{where}:{line} reaches {name}, not in the {layer.name} layer's whitelist")
    return found


def violations(layer: Layer) -> list[str]:
    found = []
    for path in layer.files():
        found += refusals(layer, path.read_text(encoding="utf-8"), module_name(path),
                          where=path.relative_to(ROOT).as_posix(), is_package=path.name == "__init__.py")
    return found


# -- the checker itself ------------------------------------------------------------


def test_the_walk_finds_every_layer_and_nested_packages() -> None:
    game = {module_name(p) for p in GAME.files()}
    assert {"game", "game.world", "game.drift", "game.rules"} <= game
    assert any(m.startswith("game.arena.") for m in game)
    assert "server.protocol.codec" in {module_name(p) for p in PROTOCOL.files()}
    shell = {module_name(p) for p in SHELL.files()}
    assert {"server.app", "server.protocol.codec", "server.ticker"} <= shell


def test_every_sans_io_module_listed_exists() -> None:
    assert [f for f in SANS_IO_FILES if not (ROOT / f).is_file()] == []


def test_name_resolution_handles_relative_from_dynamic_attribute_and_builtin_reach() -> None:
    src = (
        "import time, os.path\n"
        "from . import app\n"
        "from .. import match\n"
        "from ..protocol.codec import x\n"
        "from asyncio import sleep\n"
        "import importlib\n"
        "importlib.import_module('websockets.sync')\n"
        "__import__('socket')\n"
        "importlib.import_module(name)\n"
        "import numpy as np\n"
        "np.random.seed(1)\n"
        "import datetime as dt\n"
        "dt.datetime.now()\n"
        "open('f')\n"
    )
    got = [m for _, m in names_reached(src, "server.protocol.fake")]
    assert got[:3] == ["time", "os.path", "server.protocol"]
    assert "server.protocol.app" in got
    assert "server.match" in got
    assert "server.protocol.codec.x" in got
    assert "asyncio.sleep" in got
    assert "websockets.sync" in got
    assert "socket" in got
    assert COMPUTED in got
    assert "numpy.random" in got and "numpy.random.seed" in got
    assert "datetime.datetime.now" in got
    assert "builtins.open" in got


def test_a_package_resolves_relative_imports_from_itself() -> None:
    got = [m for _, m in names_reached("from . import format\nfrom .format import Header\n", "server.replay", True)]
    assert got == ["server.replay", "server.replay.format", "server.replay.format", "server.replay.format.Header"]


def test_a_local_name_that_shadows_a_builtin_is_not_the_builtin() -> None:
    got = [m for _, m in names_reached("from gzip import open\nopen('f')\n", "game.fake")]
    assert "builtins.open" not in got


def test_is_within_matches_whole_dotted_prefixes_only() -> None:
    assert is_within("time", "time")
    assert is_within("server.app.routes", "server.app")
    assert not is_within("timeit", "time")
    assert not is_within("server.application", "server.app")
    assert not is_within("randomness", "random")


# -- every rule bites: synthetic modules, never written into the tree ----------------

REFUSED = [
    (GAME, "game.fake", "import numpy.random"),
    (GAME, "game.fake", "from numpy import random"),
    (GAME, "game.fake", "from numpy.random import default_rng"),
    (GAME, "game.fake", "import numpy as np\nnp.random.default_rng(1)"),
    (GAME, "game.fake", "import numpy\nnumpy.random.seed(1)"),
    (GAME, "game.fake", "import secrets"),
    (GAME, "game.fake", "import time"),
    (GAME, "game.fake", "from time import monotonic"),
    (GAME, "game.fake", "import threading"),
    (GAME, "game.fake", "import random"),
    (GAME, "game.fake", "import os"),
    (GAME, "game.fake", "import asyncio"),
    (GAME, "game.fake", "import socket"),
    (GAME, "game.fake", "import json"),  # pure, but not named: a whitelist
    (GAME, "game.fake", "import scipy"),
    (GAME, "game.fake", "import msgpack"),
    (GAME, "game.fake", "from server.protocol import codec"),
    (GAME, "game.arena.fake", "from ...server import match"),
    (GAME, "game.fake", "import tools.client"),
    (GAME, "game.fake", "import importlib\nimportlib.import_module('time')"),
    (GAME, "game.fake", "import importlib\nimportlib.import_module(name)"),
    (GAME, "game.fake", "import importlib.resources"),
    (GAME, "game.fake", "__import__('random')"),
    (GAME, "game.fake", "print('tick')"),
    (GAME, "game.fake", "open('state.bin', 'wb')"),
    (GAME, "game.fake", "exec('import time')"),
    (PROTOCOL, "server.protocol.fake", "import asyncio"),
    (PROTOCOL, "server.protocol.fake", "import websockets"),
    (PROTOCOL, "server.protocol.fake", "from websockets.frames import Frame"),
    (PROTOCOL, "server.protocol.fake", "import socket"),
    (PROTOCOL, "server.protocol.fake", "import time"),
    (PROTOCOL, "server.protocol.fake", "import threading"),
    (PROTOCOL, "server.protocol.fake", "import secrets"),
    (PROTOCOL, "server.protocol.fake", "import json"),
    (PROTOCOL, "server.protocol.fake", "import numpy.random"),
    (PROTOCOL, "server.protocol.fake", "from server.match import Match"),
    (PROTOCOL, "server.protocol.fake", "from .. import app"),
    (PROTOCOL, "server.protocol.fake", "from server.frames import FrameSplitter"),
    (PROTOCOL, "server.protocol.fake", "from tools import client"),
    (PROTOCOL, "server.protocol.fake", "open('replay.bin')"),
    (SANS_IO, "server.frames", "import time"),
    (SANS_IO, "server.ticker", "import asyncio"),
    (SANS_IO, "server.ticker", "from time import monotonic"),
    (SANS_IO, "server.inputs", "import threading"),
    (SANS_IO, "server.frames", "import socket"),
    (SANS_IO, "server.frames", "import websockets"),
    (SANS_IO, "server.frames", "import os"),
    (SANS_IO, "server.replay.format", "from pathlib import Path"),
    (SANS_IO, "server.replay.playback", "from server.match import Match"),
    (SANS_IO, "server.replay.playback", "from server.loop import run_ticker"),
    (SANS_IO, "server.replay.playback", "from . import recorder"),
    (SANS_IO, "server.ticker", "from server import app"),
    (SANS_IO, "server.inputs", "import numpy as np\nnp.random.default_rng()"),
    (SANS_IO, "server.replay.format", "open('match.replay', 'rb')"),
    (SANS_IO, "server.replay.format", "from datetime import datetime\ndatetime.now()"),
    (SANS_IO, "server.replay.format", "import datetime\ndatetime.datetime.now(datetime.UTC)"),
    (SANS_IO, "server.replay.format", "from datetime import date\ndate.today()"),
    (SANS_IO, "server.frames", "import tools.client"),
    (SHELL, "server.fake", "import tools.client"),
    (SHELL, "server.fake", "from tools import bots"),
    (SHELL, "server.fake", "from tools.client import GameClient"),
    (SHELL, "server.fake", "import importlib\nimportlib.import_module('tools.bench')"),
    (SHELL, "server.fake", "import importlib\nimportlib.import_module(name)"),
    (SHELL, "server.fake", "import playwright"),
    (SHELL, "server.fake", "import trustme"),
]


@pytest.mark.parametrize(("layer", "module", "source"), REFUSED,
                         ids=[f"{layer.name}:{source}" for layer, _, source in REFUSED])
def test_a_layer_refuses_a_module_that_reaches_outside_its_whitelist(layer: Layer, module: str, source: str) -> None:
    assert refusals(layer, source, module) != []


ACCEPTED = [
    (GAME, "game.arena.fake", "import math\nimport numpy as np\nimport numpy.typing as npt\nfrom attrs import frozen\n"
                              "from game.world import World\nfrom ..rules import Event\nx = np.int32(1)\n"),
    (GAME, "game.rules", "import importlib\nimportlib.import_module(module)\n"),
    (PROTOCOL, "server.protocol.fake", "import msgpack, zlib\nfrom game.schema import Column\nfrom .delta import Snapshot\n"),
    (SANS_IO, "server.ticker", "import math\nfrom attrs import define\n"),
    (SANS_IO, "server.replay.format", "from datetime import UTC, datetime\ndatetime.fromtimestamp(0, UTC)\n"),
    (SANS_IO, "server.inputs", "import struct\nfrom server.ticker import Ticker\n"
                               "from server.protocol.history import SnapshotHistory\n"),
    (SHELL, "server.fake", "import asyncio, socket, time\nfrom websockets.server import ServerProtocol\n"
                           "from server.protocol import codec\nprint(open('f').read())\n"),
]


@pytest.mark.parametrize(("layer", "module", "source"), ACCEPTED,
                         ids=[f"{layer.name}:{module}" for layer, module, _ in ACCEPTED])
def test_a_layer_accepts_what_its_whitelist_names(layer: Layer, module: str, source: str) -> None:
    assert refusals(layer, source, module, where=module.replace(".", "/") + ".py") == []


@pytest.mark.parametrize("layer", LAYERS, ids=[layer.name for layer in LAYERS])
def test_no_layer_may_import_tools(layer: Layer) -> None:
    assert layer.refuses("tools") and layer.refuses("tools.client")


def test_the_ruleset_registry_loads_only_game_modules() -> None:
    """game/rules.py's computed import: each registered ruleset is a module of game/."""
    from game.rules import RULESETS

    for module, _ in RULESETS.values():
        assert is_within(module, "game")
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file()


# -- the layers ---------------------------------------------------------------------


def test_game_reaches_only_numpy_attrs_itself_and_named_pure_stdlib() -> None:
    assert violations(GAME) == []


def test_the_protocol_reaches_only_game_msgpack_numpy_attrs_zlib_and_named_pure_stdlib() -> None:
    assert violations(PROTOCOL) == []


def test_the_sans_io_modules_of_the_shell_reach_no_clock_loop_socket_thread_or_file() -> None:
    assert violations(SANS_IO) == []


def test_the_shell_reaches_only_the_protocol_game_websockets_its_libraries_and_the_stdlib() -> None:
    assert violations(SHELL) == []


def test_only_the_redis_directory_reaches_the_redis_client() -> None:
    reaching = {path.relative_to(ROOT).as_posix() for path in SHELL.files()
                for _, name in names_reached(path.read_text(encoding="utf-8"), module_name(path),
                                             path.name == "__init__.py")
                if is_within(name, "redis")}
    assert reaching == {REDIS_SHELL}
    assert REDIS_SHELL not in SANS_IO_FILES


@pytest.mark.parametrize("package", ["game", "server", "tools"])
def test_every_module_of_a_layer_parses(package: str) -> None:
    for path in python_files(package):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

"""The server uses websockets (and every other library) through its public API only.

Read from the source with ``ast``: no attribute whose name starts with ``_``
on anything but ``self``/``cls`` unless our own code defines that name, no
``__class__`` assignment, no ``_``-prefixed name imported from websockets,
and no subclass of a websockets class (overriding its methods ties us to
one release as surely as touching its private attributes does). Dunder names
other than ``__class__`` are Python's, not a library's, and are allowed; so
are a named tuple's documented methods (``_replace``, ``_asdict``, ``_make``,
``_fields``: the standard library prefixes them only to keep clear of field
names, ``urllib.parse.SplitResult`` among them).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "server"


def parsed(root: Path) -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(), str(path)) for path in sorted(root.rglob("*.py"))}


#: ``collections.namedtuple``'s public methods (documented, underscored so no field name collides).
NAMEDTUPLE_API = frozenset({"_replace", "_asdict", "_make", "_fields", "_field_defaults"})


def is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def own_names(trees: list[ast.Module]) -> set[str]:
    """Every name our code defines: functions, classes, assigned names and attributes of ``self``/``cls``."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)  # module and class attributes, attrs fields
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                    and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                names.add(node.attr)
    return names


def websockets_names(tree: ast.Module) -> set[str]:
    """The names a module binds to websockets' modules, classes and functions."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] == "websockets"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "websockets":
            names |= {a.asname or a.name for a in node.names}
    return names


def violations(tree: ast.Module, own: set[str]) -> list[str]:
    """Each place ``tree`` reaches past a library's public API, as ``line: what``."""
    found: list[str] = []
    library = websockets_names(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute):
            name = node.attr
            if name == "__class__" and isinstance(node.ctx, ast.Store):
                found.append(f"{line}: assigns __class__")
            elif name.startswith("_") and not is_dunder(name) and name not in own and name not in NAMEDTUPLE_API \
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{line}: .{name}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("getattr", "setattr", "delattr", "hasattr") and len(node.args) >= 2:
            key = node.args[1]
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.startswith("_") \
                    and (key.value == "__class__" or not (is_dunder(key.value) or key.value in own)):
                found.append(f"{line}: {node.func.id}(..., {key.value!r})")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "websockets":
            parts = (node.module or "").split(".")
            found += [f"{line}: imports {node.module}" for p in parts if p.startswith("_")][:1]
            found += [f"{line}: imports {a.name} from {node.module}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [f"{line}: imports {a.name}" for a in node.names
                      if a.name.split(".")[0] == "websockets" and any(p.startswith("_") for p in a.name.split("."))]
        elif isinstance(node, ast.ClassDef):
            for base in node.bases:
                root = base
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in library:
                    found.append(f"{line}: class {node.name} subclasses {ast.unparse(base)}")
    return found


def test_the_server_touches_no_private_attribute_and_subclasses_nothing_of_websockets() -> None:
    trees = parsed(SERVER)
    own = own_names(list(trees.values()))
    found = [f"{path.relative_to(ROOT)}:{v}" for path, tree in trees.items() for v in violations(tree, own)]
    assert found == []


@pytest.mark.parametrize("source", [
    "protocol.__class__ = GameProtocol",
    "from websockets.server import ServerProtocol\nclass GameProtocol(ServerProtocol): pass",
    "import websockets.asyncio.server\nclass C(websockets.asyncio.server.ServerConnection): pass",
    "from websockets.protocol import _private",
    "from websockets._internal import thing",
    "connection.protocol._state = 1",
    "x = ws._abort_things",
    "getattr(ws, '_secret')",
])
def test_the_check_catches_what_the_old_transport_did(source: str) -> None:
    assert violations(ast.parse(source), own={"_ours"}) != []


@pytest.mark.parametrize("source", [
    "self._held = b''\nself._held.clear()",
    "other._ours()",
    "cls._cache = {}",
    "name = m.cls.__name__",
    "from websockets.server import ServerProtocol\nclass Mine:\n    def __init__(self): self.protocol = ServerProtocol()",
])
def test_the_check_lets_our_own_names_and_pythons_dunders_through(source: str) -> None:
    assert violations(ast.parse(source), own={"_ours"}) == []

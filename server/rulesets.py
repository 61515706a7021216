"""Rulesets by reference: built in, from an installed distribution, or from the user's own module.

``game.rules`` keeps the fixed registry of the rulesets that ship with us;
this shell module also reaches user code, which ``game/`` never imports. A
reference is one of:

- a built-in name (``arena``, ``drift``);
- a name an installed distribution registers under the entry-point group
  ``tickserver.rulesets`` (``tagarena = tagarena:TagRuleset`` in its
  ``[project.entry-points."tickserver.rulesets"]``);
- ``package.module:Attr`` (``Attr`` may be dotted): a class, instantiated
  with no arguments, or an instance.

Whatever the route, the object must look like a ``game.rules.Ruleset``: a
``spec`` that is a ``RulesetSpec`` and callable ``create``, ``join``,
``leave``, ``step`` and ``scores``. Every failure is a ``GameError`` with one
line saying what was tried and what went wrong. Built-in names win over
entry points of the same name.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from typing import cast

from game.errors import GameError
from game.rules import RULESET_NAMES, Ruleset, get_ruleset
from game.schema import RulesetSpec

#: The entry-point group installed distributions register their rulesets under.
ENTRY_POINT_GROUP = "tickserver.rulesets"
#: The methods a ruleset must have, besides ``spec`` (``game.rules.Ruleset``).
METHODS = ("create", "join", "leave", "step", "scores")

_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_REFERENCE = re.compile(rf"({_DOTTED}):({_DOTTED})")


def load_ruleset(ref: str) -> Ruleset:
    """The ruleset ``ref`` names: a built-in name, an entry-point name, or ``package.module:Attr``.

    Raises:
        GameError: one line naming ``ref`` and the failure (no such module or
            attribute, the import or the constructor raised, not a ruleset
            because..., an unknown name with the known ones and the entry
            points found).
    """
    if ":" in ref:
        return _from_reference(ref)
    if ref in RULESET_NAMES:
        return get_ruleset(ref)
    found = [ep for ep in _entry_points() if ep.name == ref]
    if not found:
        raise GameError(f"unknown ruleset {ref!r}; {_known()}")
    targets = sorted({ep.value for ep in found})
    if len(targets) > 1:
        raise GameError(f"ruleset {ref!r}: several entry points in {ENTRY_POINT_GROUP!r} claim it: {', '.join(targets)}")
    ep = found[0]
    if not ep.attr:
        raise GameError(f"entry point {ref!r} ({ENTRY_POINT_GROUP}): {ep.value!r} names a module; expected package.module:Attr")
    try:
        return _from_reference(f"{ep.module}:{ep.attr}")
    except GameError as exc:
        raise GameError(f"entry point {ref!r} ({ENTRY_POINT_GROUP}): {exc}") from exc.__cause__


def ruleset_for_replay(name: str, ref: str | None = None) -> Ruleset:
    """The ruleset to re-simulate a replay whose header names ruleset ``name`` (its ``spec.name``).

    Without ``ref``, ``name`` is looked up like ``load_ruleset`` does (a
    built-in or an entry point; register yours under its ``spec.name``);
    with ``ref`` (``--ruleset mypkg.mygame:Ruleset``), that ruleset is loaded
    and must be the one named. The caller still checks the version, columns
    and inputs against the header (``server.replayfile.check_ruleset``).

    Raises:
        GameError: as ``load_ruleset``, or the ruleset found is another one.
    """
    ruleset = load_ruleset(ref if ref is not None else name)
    if ruleset.spec.name != name:
        raise GameError(f"the replay is of ruleset {name!r}, but {ref or name!r} is ruleset {ruleset.spec.name!r}")
    return ruleset


def entry_point_names() -> tuple[str, ...]:
    """The names registered under ``tickserver.rulesets`` by the installed distributions, sorted."""
    return tuple(sorted({ep.name for ep in _entry_points()}))


def _entry_points() -> importlib.metadata.EntryPoints:
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def _known() -> str:
    eps = ", ".join(entry_point_names()) or "none"
    return (f"built in: {', '.join(RULESET_NAMES)}; entry points ({ENTRY_POINT_GROUP}): {eps}; "
            "or give package.module:Attr")


def _from_reference(ref: str) -> Ruleset:
    m = _REFERENCE.fullmatch(ref)
    if m is None:
        raise GameError(f"ruleset {ref!r}: not a reference of the form package.module:Attr")
    module_name, attr_path = m.group(1), m.group(2)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and _is_prefix(exc.name, module_name):
            raise GameError(f"ruleset {ref!r}: no module named {exc.name!r}") from exc
        raise GameError(f"ruleset {ref!r}: importing {module_name!r} raised {_describe(exc)}") from exc
    except Exception as exc:  # the user's module may raise anything at import
        raise GameError(f"ruleset {ref!r}: importing {module_name!r} raised {_describe(exc)}") from exc
    obj: object = module
    done = module_name
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise GameError(f"ruleset {ref!r}: {done!r} has no attribute {part!r}")
        obj = getattr(obj, part)
        done = f"{done}:{part}" if done == module_name else f"{done}.{part}"
    if isinstance(obj, type):
        try:
            obj = obj()
        except Exception as exc:  # the user's constructor may raise anything
            raise GameError(f"ruleset {ref!r}: {attr_path}() raised {_describe(exc)}") from exc
    problem = why_not_a_ruleset(obj)
    if problem is not None:
        raise GameError(f"ruleset {ref!r}: not a ruleset: {problem}")
    return cast(Ruleset, obj)


def why_not_a_ruleset(obj: object) -> str | None:
    """Why ``obj`` is not a ``game.rules.Ruleset`` (None when it looks like one)."""
    spec = getattr(obj, "spec", None)
    if spec is None:
        return f"{_kind(obj)} has no attribute 'spec'"
    if not isinstance(spec, RulesetSpec):
        return f"its spec is {_kind(spec)}, not a game.schema.RulesetSpec"
    missing = [name for name in METHODS if not hasattr(obj, name)]
    if missing:
        return f"{_kind(obj)} has no method {', '.join(missing)} (a ruleset has {', '.join(METHODS)})"
    inert = [name for name in METHODS if not callable(getattr(obj, name))]
    if inert:
        return f"{_kind(obj)}'s {', '.join(inert)} is not callable"
    return None


def _is_prefix(name: str, dotted: str) -> bool:
    return dotted == name or dotted.startswith(name + ".")


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _kind(obj: object) -> str:
    if isinstance(obj, type):
        return f"class {obj.__qualname__}"
    cls = type(obj)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    return f"{'an' if name[0] in 'aeiouAEIOU' else 'a'} {name}"

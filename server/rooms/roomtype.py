"""Room types: what a match is created from (a ruleset, its options, the match's settings, labels).

``RoomType`` is a frozen value, validated on construction: an invalid one
cannot exist. The checks on labels and option names are plain functions
returning a problem (or None), shared with the matchmake request parser,
which reports them as HTTP 400 instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from attrs import evolve, field, frozen

from server.rooms.errors import InvalidRoomType

#: At most this many labels on a room type, a match or a query.
MAX_LABELS = 16
#: Label keys: lower-case, a letter first (``mode``, ``region``, ``map_pool``).
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,31}")
#: Label values: 1 to 64 printable characters.
MAX_LABEL_VALUE = 64
#: Option names: identifiers, as ``game.schema.Option`` names are.
OPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: A ruleset reference: a name, or ``package.module:Attr`` (``server.rulesets``).
RULESET_REF = re.compile(r"[A-Za-z_][\w.-]*(?::[A-Za-z_][\w.]*)?")
MAX_TICK_RATE = 240
MAX_PLAYERS = 100_000
MAX_SEED = 2**63 - 1


def label_problem(key: object, value: object) -> str | None:
    """What is wrong with the label ``key=value``, or None."""
    if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
        return f"label key {key!r} must be 1-32 of a-z 0-9 _ -, starting with a letter"
    if not isinstance(value, str):
        return f"label {key}: expected a string, got {type(value).__name__}"
    if not 1 <= len(value) <= MAX_LABEL_VALUE or not value.isprintable():
        return f"label {key}: expected 1 to {MAX_LABEL_VALUE} printable characters"
    return None


def option_problem(name: object, value: object) -> str | None:
    """What is wrong with the option ``name=value`` in form (not against a ruleset), or None."""
    if not isinstance(name, str) or not OPTION_NAME.fullmatch(name):
        return f"option name {name!r} is not an identifier"
    if type(value) is not int:
        return f"option {name}: expected an integer, got {type(value).__name__}"
    return None


class ItemProblem(ValueError):
    """A bad entry of a mapping of labels or options: its key (None: the whole mapping) and what is wrong."""

    def __init__(self, key: str | None, problem: str) -> None:
        super().__init__(problem)
        self.key = key
        self.problem = problem


def checked_mapping(value: object, check: Callable[[object, object], str | None], limit: int | None = None) -> Mapping[Any, Any]:
    """``value`` as a read-only mapping sorted by key, once ``check`` finds no problem with any entry.

    Raises:
        ItemProblem: not a mapping, more than ``limit`` entries, or a bad entry.
    """
    if not isinstance(value, Mapping):
        raise ItemProblem(None, f"expected a mapping, not {type(value).__name__}")
    if limit is not None and len(value) > limit:
        raise ItemProblem(None, f"at most {limit} entries, got {len(value)}")
    for k, v in value.items():
        problem = check(k, v)
        if problem is not None:
            raise ItemProblem(str(k), problem)
    return MappingProxyType(dict(sorted(value.items())))


def _labels(value: Mapping[str, str]) -> Mapping[str, str]:
    try:
        return checked_mapping(value, label_problem, MAX_LABELS)
    except ItemProblem as exc:
        raise InvalidRoomType("labels", exc.problem) from None


def _options(value: Mapping[str, int]) -> Mapping[str, int]:
    try:
        return checked_mapping(value, option_problem)
    except ItemProblem as exc:
        raise InvalidRoomType("options", exc.problem) from None


def _ruleset(_: object, __: Any, value: Any) -> None:
    if not isinstance(value, str) or not RULESET_REF.fullmatch(value):
        raise InvalidRoomType("ruleset", f"expected a name or package.module:Attr, got {value!r}")


def _int_in(lo: int, hi: int, *, optional: bool = False) -> Any:
    def check(_: object, attribute: Any, value: object) -> None:
        if optional and value is None:
            return
        if type(value) is not int or not lo <= value <= hi:
            raise InvalidRoomType(attribute.name, f"expected an integer in [{lo}, {hi}]{' or None' if optional else ''}, got {value!r}")
    return check


@frozen
class RoomType:
    """A kind of match the server creates on demand.

    Attributes:
        ruleset: reference to the rules: ``arena``, an entry-point name, or
            ``package.module:Attr`` (``server.rulesets.load_ruleset``).
        options: ruleset options (``npcs``...); the rest take the ruleset's
            defaults. Names and ranges are checked against the ruleset by
            ``Catalog``, which loads it.
        tick_rate: ticks per second, 1-240.
        max_players: players per match (spectators aside), 1-100000.
        seed: the match seed, or None for a fresh random one per match (the
            shell draws it; this layer reads no randomness).
        labels: up to 16 ``key: value`` strings (``mode: duel``,
            ``region: eu``) copied onto every match made from this type and
            matched by listings and matchmaking.
    """

    ruleset: str = field(validator=_ruleset)
    options: Mapping[str, int] = field(factory=dict, converter=_options, hash=False)
    tick_rate: int = field(default=30, validator=_int_in(1, MAX_TICK_RATE))
    max_players: int = field(default=16, validator=_int_in(1, MAX_PLAYERS))
    seed: int | None = field(default=None, validator=_int_in(0, MAX_SEED, optional=True))
    labels: Mapping[str, str] = field(factory=dict, converter=_labels, hash=False)

    def customized(self, options: Mapping[str, int], labels: Mapping[str, str]) -> RoomType:
        """This type with ``options`` and ``labels`` laid over its own (a client's ``create``)."""
        return evolve(self, options={**self.options, **options}, labels={**self.labels, **labels})

    def to_json(self) -> dict[str, Any]:
        """This type as plain JSON-able data (``MatchInfo.room``: another node starts a match from it)."""
        return {"ruleset": self.ruleset, "options": dict(self.options), "tick_rate": self.tick_rate,
                "max_players": self.max_players, "seed": self.seed, "labels": dict(self.labels)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RoomType:
        """The room type ``to_json`` made ``data`` from (read back from a directory, possibly another node's).

        Raises:
            InvalidRoomType: a key missing or unknown, or a bad value (validated as any room type).
        """
        if not isinstance(data, Mapping):
            raise InvalidRoomType("room", f"expected a mapping, not {type(data).__name__}")
        unknown = sorted(set(data) - _JSON_KEYS)
        if unknown:
            raise InvalidRoomType(unknown[0], "unknown key of a room type")
        if "ruleset" not in data:
            raise InvalidRoomType("ruleset", "missing")
        return cls(**{key: data[key] for key in _JSON_KEYS if key in data})


_JSON_KEYS = frozenset({"ruleset", "options", "tick_rate", "max_players", "seed", "labels"})

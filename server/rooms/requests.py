"""Clients' rooms requests, parsed and validated: ``POST /api/matchmake`` bodies and ``GET /api/matches`` queries.

Bytes and strings in, frozen values out; anything malformed is a
``MatchmakeError`` with status 400 (413 for an oversized body) and the field
at fault, for a JSON answer. Checks against what this server offers (the
ruleset, its options) are the catalog's (``server.rooms.catalog``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

from attrs import frozen

from server.rooms.errors import MatchmakeError
from server.rooms.roomtype import MAX_LABELS, ItemProblem, checked_mapping, label_problem, option_problem

#: Matchmake modes: join an open match or create one; always create; only join.
JOIN_OR_CREATE, CREATE, JOIN = "join_or_create", "create", "join"
MODES = (JOIN_OR_CREATE, CREATE, JOIN)
#: Largest matchmake body accepted, bytes.
MAX_BODY = 4096
#: Match ids: what the shell generates and what a ``/ws/<match id>`` path can carry.
MATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_LIMIT = 1000

_FIELDS = ("ruleset", "mode", "labels", "options", "match_id")


@frozen
class MatchmakeRequest:
    """A valid ``POST /api/matchmake`` body.

    Attributes:
        ruleset: the ruleset name (``spec.name``) to play.
        mode: ``join_or_create`` (default), ``create`` or ``join``.
        labels: labels the match must have (join) or gets (create).
        options: ruleset options for a match this request creates.
        match_id: with ``join`` only: that very match.
    """

    ruleset: str
    mode: str = JOIN_OR_CREATE
    labels: Mapping[str, str] = MappingProxyType({})
    options: Mapping[str, int] = MappingProxyType({})
    match_id: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.mode not in MODES:
            raise MatchmakeError(400, f"unknown mode {self.mode!r}; expected one of {', '.join(MODES)}", "mode")
        if self.match_id is not None and self.mode != JOIN:
            raise MatchmakeError(400, "a match_id goes with mode join only", "match_id")
        if self.options and self.mode == JOIN:
            raise MatchmakeError(400, "options go with a mode that may create a match", "options")


@frozen
class ListQuery:
    """A valid ``GET /api/matches`` query: ``?ruleset=arena&label=mode:duel&label=region:eu&open=1&limit=50``."""

    ruleset: str | None = None
    labels: Mapping[str, str] = MappingProxyType({})
    open_only: bool = False
    limit: int = 100


def parse_matchmake(body: bytes) -> MatchmakeRequest:
    """The request in ``body`` (UTF-8 JSON object); MatchmakeError 400 (413: too big) naming the field at fault."""
    if len(body) > MAX_BODY:
        raise MatchmakeError(413, f"request body of {len(body)} bytes is over the limit of {MAX_BODY}")
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise MatchmakeError(400, "request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise MatchmakeError(400, f"request body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise MatchmakeError(400, "request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise MatchmakeError(400, f"request body must be a JSON object, not {_json_type(data)}")
    for key in data:
        if key not in _FIELDS:
            raise MatchmakeError(400, f"unknown field; expected {', '.join(_FIELDS)}", key)
    if "ruleset" not in data:
        raise MatchmakeError(400, "missing", "ruleset")
    return MatchmakeRequest(
        ruleset=_string(data["ruleset"], "ruleset"),
        mode=_string(data.get("mode", JOIN_OR_CREATE), "mode"),
        labels=labels_from(data.get("labels", {}), "labels"),
        options=_options(data.get("options", {})),
        match_id=None if data.get("match_id") is None else _match_id(data["match_id"]),
    )


def parse_listing(query: str) -> ListQuery:
    """The listing filters in a URL query string (without ``?``); MatchmakeError 400 naming the parameter at fault."""
    ruleset: str | None = None
    labels: dict[str, str] = {}
    open_only, limit = False, 100
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "ruleset":
            ruleset = value or None
        elif key == "label":
            k, sep, v = value.partition(":")
            if not sep:
                raise MatchmakeError(400, f"expected key:value, got {value!r}", "label")
            labels[k] = v
        elif key == "open":
            if value not in ("0", "1"):
                raise MatchmakeError(400, f"expected 0 or 1, got {value!r}", "open")
            open_only = value == "1"
        elif key == "limit":
            if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
                raise MatchmakeError(400, f"expected an integer in [1, {MAX_LIMIT}], got {value!r}", "limit")
            limit = int(value)
        else:
            raise MatchmakeError(400, "unknown parameter; expected ruleset, label, open, limit", key)
    return ListQuery(ruleset, labels_from(labels, "label"), open_only, limit)


def labels_from(value: object, field: str) -> Mapping[str, str]:
    """``value`` (a JSON object) as read-only labels; MatchmakeError 400 naming ``field.key`` for a bad one."""
    return _mapping(value, field, label_problem, MAX_LABELS)


def _options(value: object) -> Mapping[str, int]:
    return _mapping(value, "options", option_problem)


def _mapping(value: object, field: str, check: Callable[[object, object], str | None], limit: int | None = None) -> Mapping[Any, Any]:
    if not isinstance(value, dict):
        raise MatchmakeError(400, f"expected an object, not {_json_type(value)}", field)
    try:
        return checked_mapping(value, check, limit)
    except ItemProblem as exc:
        raise MatchmakeError(400, exc.problem, field if exc.key is None else f"{field}.{exc.key}") from None


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise MatchmakeError(400, f"expected a string, not {_json_type(value)}", field)
    return value


def _match_id(value: object) -> str:
    text = _string(value, "match_id")
    if not MATCH_ID.fullmatch(text):
        raise MatchmakeError(400, "expected 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit", "match_id")
    return text


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)

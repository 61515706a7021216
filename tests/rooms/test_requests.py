"""Parsing ``POST /api/matchmake`` bodies and ``GET /api/matches`` queries: every bad input a 400 naming its field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.rooms import MatchmakeError, MatchmakeRequest, parse_listing, parse_matchmake
from server.rooms.requests import CREATE, JOIN, JOIN_OR_CREATE, MAX_BODY


def test_a_minimal_request_joins_or_creates_without_labels_or_options() -> None:
    assert parse_matchmake(b'{"ruleset": "arena"}') == MatchmakeRequest("arena", JOIN_OR_CREATE)


def test_a_full_request_keeps_every_field() -> None:
    body = json.dumps({"ruleset": "arena", "mode": "join", "labels": {"region": "eu"}, "match_id": "m-1.a_b"})
    request = parse_matchmake(body.encode())
    assert (request.ruleset, request.mode, dict(request.labels), request.match_id) == ("arena", JOIN, {"region": "eu"}, "m-1.a_b")
    created = parse_matchmake(b'{"ruleset": "arena", "mode": "create", "options": {"npcs": 3}}')
    assert (created.mode, dict(created.options)) == (CREATE, {"npcs": 3})


@pytest.mark.parametrize(("body", "status", "field", "reason"), [
    (b"{", 400, None, "request body is not JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    (b"\xff", 400, None, "request body is not UTF-8"),
    (b"[" * 2000 + b"]" * 2000, 400, None, "request body is nested too deeply"),
    (b"[]", 400, None, "request body must be a JSON object, not an array"),
    (b"{}", 400, "ruleset", "missing"),
    (b'{"ruleset": 3}', 400, "ruleset", "expected a string, not a number"),
    (b'{"ruleset": "arena", "colour": "red"}', 400, "colour", "unknown field; expected ruleset, mode, labels, options, match_id"),
    (b'{"ruleset": "arena", "mode": "spectate"}', 400, "mode", "unknown mode 'spectate'; expected one of join_or_create, create, join"),
    (b'{"ruleset": "arena", "mode": null}', 400, "mode", "expected a string, not null"),
    (b'{"ruleset": "arena", "labels": ["eu"]}', 400, "labels", "expected an object, not an array"),
    (b'{"ruleset": "arena", "labels": {"region": 1}}', 400, "labels.region", "label region: expected a string, got int"),
    (b'{"ruleset": "arena", "labels": {"Region": "eu"}}', 400, "labels.Region",
     "label key 'Region' must be 1-32 of a-z 0-9 _ -, starting with a letter"),
    (b'{"ruleset": "arena", "options": {"npcs": "many"}}', 400, "options.npcs", "option npcs: expected an integer, got str"),
    (b'{"ruleset": "arena", "options": {"npcs": 1.5}}', 400, "options.npcs", "option npcs: expected an integer, got float"),
    (b'{"ruleset": "arena", "mode": "join", "options": {"npcs": 1}}', 400, "options",
     "options go with a mode that may create a match"),
    (b'{"ruleset": "arena", "match_id": "m1"}', 400, "match_id", "a match_id goes with mode join only"),
    (b'{"ruleset": "arena", "mode": "join", "match_id": "../etc"}', 400, "match_id",
     "expected 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit"),
    (b'{"ruleset": "arena", "mode": "join", "match_id": 7}', 400, "match_id", "expected a string, not a number"),
    (b" " * (MAX_BODY + 1), 413, None, f"request body of {MAX_BODY + 1} bytes is over the limit of {MAX_BODY}"),
])
def test_a_bad_matchmake_body_is_refused_naming_the_field(body: bytes, status: int, field: str | None, reason: str) -> None:
    with pytest.raises(MatchmakeError) as info:
        parse_matchmake(body)
    assert (info.value.status, info.value.field, info.value.reason) == (status, field, reason)
    json.dumps(info.value.to_json())


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_no_body_raises_anything_but_a_matchmake_error(body: bytes) -> None:
    try:
        parse_matchmake(body)
    except MatchmakeError as exc:
        assert exc.status in (400, 413)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12))
def test_no_json_value_raises_anything_but_a_matchmake_error(value: object) -> None:
    for body in (value, {"ruleset": "arena", "labels": value}, {"ruleset": "arena", "options": value, "mode": value}):
        try:
            parse_matchmake(json.dumps(body).encode())
        except MatchmakeError as exc:
            assert exc.status == 400


def test_a_listing_query_filters_by_ruleset_labels_and_free_seats() -> None:
    q = parse_listing("ruleset=arena&label=mode:duel&label=region:eu%3Awest&open=1&limit=5")
    assert (q.ruleset, dict(q.labels), q.open_only, q.limit) == ("arena", {"mode": "duel", "region": "eu:west"}, True, 5)
    assert parse_listing("") == parse_listing("ruleset=")


@pytest.mark.parametrize(("query", "field"), [
    ("label=mode", "label"), ("label=Mode:x", "label.Mode"), ("open=yes", "open"), ("limit=0", "limit"),
    ("limit=-3", "limit"), ("sort=name", "sort"),
])
def test_a_bad_listing_query_is_refused_naming_the_parameter(query: str, field: str) -> None:
    with pytest.raises(MatchmakeError) as info:
        parse_listing(query)
    assert (info.value.status, info.value.field) == (400, field)

"""``RedisDirectory`` beyond the contract (``test_directory_contract.py``): many clients at once, Redis going
away and coming back, garbage collection by Redis's own expiry, and the same answers as ``MemoryDirectory``."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.rooms import (
    DirectoryError,
    DirectoryUnavailable,
    MatchFull,
    MatchId,
    MemoryDirectory,
    NodeId,
    RoomError,
    UnknownNode,
)
from server.rooms.redis_directory import RedisDirectory, redacted
from tests.redis_server import RedisServer
from tests.rooms.helpers import NODE, URL

M1 = MatchId("m1")
B = NodeId("node-b")


def test_a_url_is_shown_without_its_password() -> None:
    assert redacted("redis://user:s3cret@10.0.0.1:6379/2") == "redis://user@10.0.0.1:6379/2"
    assert redacted("redis://:s3cret@host/0") == "redis://host/0"
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_a_bad_url_is_refused_at_once() -> None:
    with pytest.raises(ValueError):
        RedisDirectory("http://127.0.0.1:6379")


def test_two_hundred_reservations_through_three_clients_fill_a_hundred_seats_exactly(redis_server: RedisServer,
                                                                                      redis_prefix: str) -> None:
    async def scenario() -> tuple[list[object], int, int]:
        # A generous timeout: on a busy machine 200 calls may wait their turn for a connection a while.
        clients = [RedisDirectory(redis_server.url, prefix=redis_prefix, node_ttl=1e9, timeout=10.0) for _ in range(3)]
        try:
            a = clients[0]
            await a.heartbeat(NODE, URL, 0, now=0.0)
            await a.add_match(M1, NODE, "drift", {}, 100, now=0.0)

            async def reserve(i: int) -> object:
                try:
                    return await clients[i % 3].reserve(M1, ttl=15.0, now=1.0)
                except MatchFull:
                    return "full"

            results = await asyncio.gather(*(reserve(i) for i in range(200)))
            seats = [s for s in results if s != "full"]
            await asyncio.gather(*(clients[i % 3].take(s.token, M1, now=2.0)  # type: ignore[attr-defined]
                                   for i, s in enumerate(seats)))
            info = await a.get_match(M1, now=2.0)
            assert info is not None
            return results, info.players, info.reserved
        finally:
            for c in clients:
                await c.aclose()

    results, players, reserved = asyncio.run(scenario())
    assert results.count("full") == 100
    assert len({s.token for s in results if s != "full"}) == 100  # type: ignore[attr-defined]
    assert (players, reserved) == (100, 0)


def test_a_message_posted_by_one_node_is_received_by_another_that_waits(redis_server: RedisServer,
                                                                       redis_prefix: str) -> None:
    async def scenario() -> tuple[list[bytes], float]:
        sender = RedisDirectory(redis_server.url, prefix=redis_prefix)
        receiver = RedisDirectory(redis_server.url, prefix=redis_prefix)
        try:
            await receiver.heartbeat(B, "ws://b", 0, now=time.time())

            async def post_later() -> None:
                await asyncio.sleep(0.1)
                await sender.post(B, b"state" * 1000, now=time.time())
                await sender.post(B, b"end", now=time.time())

            start = time.monotonic()
            got, _ = await asyncio.gather(receiver.receive(B, timeout=5.0), post_later())
            if len(got) < 2:
                got += await receiver.receive(B, timeout=5.0)
            return got, time.monotonic() - start
        finally:
            await sender.aclose()
            await receiver.aclose()

    got, waited = asyncio.run(scenario())
    assert got == [b"state" * 1000, b"end"]
    assert waited < 4.0  # woke up by the message, not by the timeout


# -- Redis going away -------------------------------------------------------------------------

#: Every call of the directory, as (name, call) on a directory.
CALLS: list[tuple[str, Callable[[RedisDirectory], Awaitable[Any]]]] = [
    ("heartbeat", lambda d: d.heartbeat(NODE, URL, 0, now=1.0)),
    ("remove_node", lambda d: d.remove_node(NODE, now=1.0)),
    ("nodes", lambda d: d.nodes(now=1.0)),
    ("add_match", lambda d: d.add_match(MatchId("m2"), NODE, "drift", {}, 4, now=1.0)),
    ("node_matches", lambda d: d.node_matches(NODE, now=1.0)),
    ("move_match", lambda d: d.move_match(M1, NODE, now=1.0)),
    ("change_players", lambda d: d.change_players(M1, 1, now=1.0)),
    ("remove_match", lambda d: d.remove_match(M1, now=1.0)),
    ("get_match", lambda d: d.get_match(M1, now=1.0)),
    ("list_matches", lambda d: d.list_matches(now=1.0, ruleset="drift")),
    ("reserve", lambda d: d.reserve(M1, ttl=15.0, now=1.0)),
    ("take", lambda d: d.take("token", M1, now=1.0)),
    ("expire", lambda d: d.expire(now=1.0)),
    ("post", lambda d: d.post(NODE, b"x", now=1.0)),
    ("receive", lambda d: d.receive(NODE, timeout=0.2)),
]


def _outage(directory: RedisDirectory) -> list[tuple[str, str, float]]:
    """Every call against ``directory``, all at once: (name, what it raised, seconds it took)."""
    async def one(name: str, call: Callable[[RedisDirectory], Awaitable[Any]]) -> tuple[str, str, float]:
        start = time.monotonic()
        try:
            await call(directory)
            raised = "nothing"
        except DirectoryUnavailable as exc:
            raised = str(exc)
        return name, raised, time.monotonic() - start

    async def each() -> list[tuple[str, str, float]]:
        try:
            return await asyncio.gather(*(one(name, call) for name, call in CALLS))
        finally:
            await directory.aclose()
    return asyncio.run(each())


def test_every_call_raises_directory_unavailable_at_once_when_redis_is_gone(own_redis: RedisServer) -> None:
    url = f"redis://user:s3cret@127.0.0.1:{own_redis.port}/0"
    own_redis.stop()
    for name, raised, took in _outage(RedisDirectory(url, timeout=0.5)):
        assert raised.startswith(f"match directory redis://user@127.0.0.1:{own_redis.port}/0 unavailable: "), name
        assert "s3cret" not in raised and "\n" not in raised
        assert took < 0.5 + 1.0, name  # within the timeout (margin for a busy machine)
    assert issubclass(DirectoryUnavailable, DirectoryError) and issubclass(DirectoryUnavailable, RoomError)


def test_a_redis_that_stops_answering_makes_every_call_give_up_at_the_timeout(own_redis: RedisServer) -> None:
    assert own_redis.proc is not None
    os.kill(own_redis.proc.pid, signal.SIGSTOP)
    try:
        results = _outage(RedisDirectory(own_redis.url, timeout=0.3))
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    for name, raised, took in results:
        assert raised.endswith("unavailable: no answer within 0.3 s"), (name, raised)
        assert took < 0.3 + 0.2 + 1.0, name  # receive waits its own 0.2 s first; margin for a busy machine


def test_after_redis_restarts_empty_a_heartbeat_says_so_and_everything_works_again(own_redis: RedisServer) -> None:
    async def scenario() -> None:
        d = RedisDirectory(own_redis.url, node_ttl=1e9, timeout=2.0)
        try:
            assert await d.heartbeat(NODE, URL, 0, now=0.0) is False
            await d.add_match(M1, NODE, "drift", {}, 4, now=0.0)
            own_redis.stop()
            with pytest.raises(DirectoryUnavailable):
                await d.reserve(M1, ttl=15.0, now=1.0)
            own_redis.start()
            assert await d.get_match(M1, now=2.0) is None  # what was stored is gone...
            assert await d.heartbeat(NODE, URL, 0, now=2.0) is False  # ...so the node registers again
            await d.add_match(M1, NODE, "drift", {}, 4, now=2.0)  # and lists its matches again
            seat = await d.reserve(M1, ttl=15.0, now=3.0)
            assert (await d.take(seat.token, M1, now=3.0)).players == 1
            await d.post(NODE, b"back", now=3.0)
            assert await d.receive(NODE, timeout=1.0) == [b"back"]
        finally:
            await d.aclose()

    asyncio.run(scenario())


def test_after_redis_restarts_concurrent_calls_do_not_fail_on_the_connections_it_closed(own_redis: RedisServer) -> None:
    async def scenario() -> None:
        d = RedisDirectory(own_redis.url, node_ttl=1e9, timeout=2.0)
        try:
            # Twenty calls at once: twenty pooled connections, idle once answered.
            await asyncio.gather(*(d.heartbeat(NodeId(f"n{i}"), URL, 0, now=0.0) for i in range(20)))
            own_redis.stop()
            with pytest.raises(DirectoryUnavailable):
                await d.nodes(now=1.0)
            own_redis.start()
            assert await asyncio.gather(*(d.nodes(now=2.0) for _ in range(20))) == [[]] * 20
        finally:
            await d.aclose()

    asyncio.run(scenario())


# -- garbage collection -----------------------------------------------------------------------


def test_every_key_it_writes_expires_by_itself_so_a_dead_cluster_leaves_nothing_behind(redis_server: RedisServer,
                                                                                        redis_prefix: str) -> None:
    async def scenario() -> None:
        d = RedisDirectory(redis_server.url, prefix=redis_prefix, node_ttl=6.0, tombstone_s=60.0)
        try:
            now = time.time()
            await d.heartbeat(NODE, URL, 0, now=now)
            await d.heartbeat(B, "ws://b", 0, now=now)
            await d.add_match(M1, NODE, "drift", {"mode": "ffa", "region": "eu"}, 4, now=now, room={"seed": 1})
            await d.add_match(MatchId("m2"), B, "drift", {}, 4, now=now)
            taken = await d.reserve(M1, ttl=15.0, now=now)
            await d.take(taken.token, M1, now=now)
            await d.reserve(M1, ttl=0.001, now=now)
            await d.reserve(M1, ttl=15.0, now=now)
            await d.post(NODE, b"mail", now=now)
            await d.expire(now=now + 1.0)  # a lapsed seat
            await d.heartbeat(B, "ws://b", 0, now=now + 5.0)
            await d.heartbeat(B, "ws://b", 0, now=now + 6.5)  # NODE died: lapsed lists
            await d.move_match(MatchId("m2"), B, now=now + 6.5)
            await d.reserve(MatchId("m2"), ttl=15.0, now=now + 6.5)
        finally:
            await d.aclose()

    asyncio.run(scenario())
    r = redis.Redis.from_url(redis_server.url)
    try:
        keys = sorted(r.scan_iter(match=f"{redis_prefix}*"))
        assert {k.decode().removeprefix(redis_prefix).split(":")[0] for k in keys} >= {
            "nodes", "node", "nodematches", "match", "matchseats", "seat", "seats", "idx", "lapsed"}
        ttls = {k.decode(): r.ttl(k) for k in keys}
        assert [k for k, ttl in ttls.items() if not 0 < ttl <= 60 + 15 + 60] == [], ttls
    finally:
        r.close()


# -- the same answers as MemoryDirectory ------------------------------------------------------

NODES = [NODE, B]
MATCHES = [MatchId("m1"), MatchId("m2"), MatchId("m3")]
op = st.one_of(
    st.tuples(st.just("heartbeat"), st.sampled_from(NODES), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("remove_node"), st.sampled_from(NODES)),
    st.tuples(st.just("add_match"), st.sampled_from(MATCHES), st.sampled_from(NODES), st.sampled_from(["a", "b"]),
              st.sampled_from([{}, {"mode": "duel"}, {"mode": "ffa"}]), st.integers(1, 3)),
    st.tuples(st.just("move_match"), st.sampled_from(MATCHES), st.sampled_from(NODES)),
    st.tuples(st.just("change_players"), st.sampled_from(MATCHES), st.integers(-2, 2)),
    st.tuples(st.just("remove_match"), st.sampled_from(MATCHES)),
    st.tuples(st.just("reserve"), st.sampled_from(MATCHES), st.sampled_from([1.0, 5.0])),
    st.tuples(st.just("take"), st.integers(0, 12), st.sampled_from(MATCHES)),
    st.tuples(st.just("post"), st.sampled_from(NODES)),
    st.tuples(st.just("wait"), st.sampled_from([0.5, 2.0, 7.0])),
    st.tuples(st.just("expire"),),
)


async def _apply(d: Any, step: tuple[Any, ...], now: float, tokens: list[str]) -> object:
    """One step on one directory: what it answered, or the class of what it raised (tokens by issue order)."""
    name, *args = step
    try:
        if name == "heartbeat":
            return await d.heartbeat(args[0], f"ws://{args[0]}", args[1], now=now, accepting=args[2])
        if name == "remove_node":
            return await d.remove_node(args[0], now=now)
        if name == "add_match":
            return await d.add_match(args[0], args[1], args[2], args[3], args[4], now=now)
        if name == "move_match":
            return await d.move_match(args[0], args[1], now=now)
        if name == "change_players":
            return await d.change_players(args[0], args[1], now=now)
        if name == "remove_match":
            return await d.remove_match(args[0], now=now)
        if name == "reserve":
            seat = await d.reserve(args[0], ttl=args[1], now=now)
            tokens.append(seat.token)
            return (seat.match_id, seat.url, seat.expires)
        if name == "take":
            token = tokens[args[0]] if args[0] < len(tokens) else "never"
            return await d.take(token, args[1], now=now)
        if name == "post":
            return await d.post(args[0], b"m", now=now)
        return await d.expire(now=now)
    except DirectoryError as exc:
        return type(exc)
    except RoomError as exc:
        return type(exc)


_examples = itertools.count()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(op, max_size=40))
def test_any_sequence_of_calls_gets_the_same_answers_as_from_the_memory_directory(redis_server: RedisServer,
                                                                                  steps: list[tuple[Any, ...]]) -> None:
    async def scenario() -> None:
        memory = MemoryDirectory(node_ttl=6.0, tombstone_s=10.0)
        rd = RedisDirectory(redis_server.url, prefix=f"diff-{uuid.uuid4().hex[:8]}-{next(_examples)}:",
                            node_ttl=6.0, tombstone_s=10.0)
        try:
            now, tokens_m, tokens_r = 0.0, [], []  # type: ignore[var-annotated]
            for step in steps:
                if step[0] == "wait":
                    now += step[1]
                    continue
                want = await _apply(memory, step, now, tokens_m)
                got = await _apply(rd, step, now, tokens_r)
                assert got == want, (step, now)
                for kw in ({}, {"ruleset": "a"}, {"labels": {"mode": "duel"}}, {"ruleset": "b", "open_only": True}):
                    assert await rd.list_matches(now=now, **kw) == await memory.list_matches(now=now, **kw), kw
                assert await rd.nodes(now=now) == await memory.nodes(now=now)
                for n in NODES:
                    assert await rd.node_matches(n, now=now) == await memory.node_matches(n, now=now)
                    assert await rd.receive(n, timeout=0.0) == await memory.receive(n, timeout=0.0)
        finally:
            await rd.aclose()

    asyncio.run(scenario())


def test_a_post_to_a_node_that_is_not_alive_is_refused(redis_server: RedisServer, redis_prefix: str) -> None:
    async def scenario() -> None:
        d = RedisDirectory(redis_server.url, prefix=redis_prefix)
        try:
            with pytest.raises(UnknownNode, match="no live node 'node-b'"):
                await d.post(B, b"x", now=0.0)
        finally:
            await d.aclose()

    asyncio.run(scenario())


def test_a_listing_reads_at_most_its_budget_of_index_entries(redis_server: RedisServer, redis_prefix: str) -> None:
    async def scenario() -> tuple[list[str], list[str], int]:
        d = RedisDirectory(redis_server.url, prefix=redis_prefix, node_ttl=1e9, list_budget=5)
        try:
            await d.heartbeat(NODE, URL, 0, now=0.0)
            for i in range(8):
                await d.add_match(MatchId(f"full{i}"), NODE, "drift", {}, 1, now=float(i), players=1)
            await d.add_match(MatchId("open"), NODE, "drift", {}, 1, now=9.0)
            before = d.examined
            open_ = [m.match_id for m in await d.list_matches(now=9.0, ruleset="drift", open_only=True)]
            examined = d.examined - before
            first = [m.match_id for m in await d.list_matches(now=9.0, ruleset="drift", limit=2)]
            return open_, first, examined
        finally:
            await d.aclose()

    open_, first, examined = asyncio.run(scenario())
    assert (open_, examined) == ([], 5)  # the open one is past the budget: a listing never reads everything
    assert first == ["full0", "full1"]


def test_two_clusters_with_their_own_prefix_share_one_redis_without_seeing_each_other(redis_server: RedisServer,
                                                                                     redis_prefix: str) -> None:
    async def scenario() -> None:
        eu, us = (RedisDirectory(redis_server.url, prefix=f"{redis_prefix}{name}:") for name in ("eu", "us"))
        try:
            await eu.heartbeat(NODE, URL, 0, now=0.0)
            await eu.add_match(M1, NODE, "drift", {}, max_players=4, now=0.0)
            assert await us.nodes(now=0.0) == [] and await us.list_matches(now=0.0) == []
            assert await us.heartbeat(NODE, "ws://us:1", 0, now=0.0) is False  # new there: its own registration
            await us.add_match(M1, NODE, "arena", {}, max_players=2, now=0.0)  # the same id in the other cluster
            assert [(n.url, m.ruleset) for n, m in zip(await eu.nodes(now=0.0), await eu.list_matches(now=0.0))] == [
                (URL, "drift")]
        finally:
            await eu.aclose()
            await us.aclose()

    asyncio.run(scenario())


def test_a_receive_cancelled_at_any_moment_raises_cancelled_error(redis_server: RedisServer, redis_prefix: str) -> None:
    """redis-py 8.1 can swallow the cancellation of a BLPOP in its first moments (it returned None); the directory
    never does, or the hand-over mailbox loop that calls it again would never end (the drained node that did not
    exit)."""
    async def scenario() -> list[str]:
        directory = RedisDirectory(redis_server.url, prefix=redis_prefix)
        outcomes = []
        try:
            for delay in [0.0, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.05] * 6:
                task = asyncio.create_task(directory.receive(NODE, timeout=1.0))
                await asyncio.sleep(delay)
                task.cancel()
                try:
                    outcomes.append(f"returned {await task!r} after {delay}")
                except asyncio.CancelledError:
                    outcomes.append("cancelled")
        finally:
            await directory.aclose()
        return outcomes

    outcomes = asyncio.run(scenario())
    assert set(outcomes) == {"cancelled"}, [o for o in outcomes if o != "cancelled"]

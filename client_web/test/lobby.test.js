// The lobby's pure parts: the requests it sends, how it reads the answers,
// where its buttons lead, and the lists' markup.

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  LobbyError, callApi, isFull, labelsFrom, labelsText, listPath, matchRowsHtml, matchmakeBody, parseOptions,
  playUrl, readAnswer, readMatches, readSeat, replayRowsHtml, replayUrl, rulesetNames, seatsText,
} from "../lobby.js";

const HERE = { protocol: "http:", host: "game.example:8765" };

// -- requests

test("a matchmake body carries only what is given", () => {
  assert.deepEqual(matchmakeBody({ ruleset: " arena " }), { ruleset: "arena", mode: "join_or_create" });
  assert.deepEqual(
    matchmakeBody({ ruleset: "arena", mode: "create", labels: { mode: "ffa", region: "eu" }, options: { npcs: 40 } }),
    { ruleset: "arena", mode: "create", labels: { mode: "ffa", region: "eu" }, options: { npcs: 40 } });
  assert.deepEqual(matchmakeBody({ ruleset: "tagarena", mode: "join", matchId: "m7" }), { ruleset: "tagarena", mode: "join", match_id: "m7" });
});

test("a blank ruleset is the person's mistake, named by its field", () => {
  assert.throws(() => matchmakeBody({ ruleset: "  " }), (e) => e instanceof LobbyError && e.line === "ruleset: pick a ruleset (arena, for one)");
});

test("a match id without join, options with join, or an unknown mode is the caller's mistake", () => {
  const misuse = (e) => !(e instanceof LobbyError);
  assert.throws(() => matchmakeBody({ ruleset: "arena", mode: "create", matchId: "m1" }), misuse);
  assert.throws(() => matchmakeBody({ ruleset: "arena", mode: "join", options: { npcs: 1 } }), misuse);
  assert.throws(() => matchmakeBody({ ruleset: "arena", mode: "joinOrCreate" }), misuse);
});

test("options are typed as name=integer pairs, by commas or spaces", () => {
  assert.deepEqual(parseOptions("npcs=40, pellets=100"), { npcs: 40, pellets: 100 });
  assert.deepEqual(parseOptions(" npcs=-1 pellets=0 "), { npcs: -1, pellets: 0 });
  assert.deepEqual(parseOptions(""), {});
  for (const bad of ["npcs", "npcs=4.5", "npcs=x", "1npcs=3", "npcs=99999999999999999999", "a=1,a=2"]) {
    assert.throws(() => parseOptions(bad), (e) => e instanceof LobbyError && e.field === "options", bad);
  }
  assert.throws(() => parseOptions("=3", "npcs"), (e) => e.line === `npcs: expected name=integer (like npcs=40), got "=3"`);
});

test("blank labels are left out", () => {
  assert.deepEqual(labelsFrom({ mode: " ffa ", region: "", map: null }), { mode: "ffa" });
});

test("the listing's path names each filter the server reads", () => {
  assert.equal(listPath(), "/api/matches?limit=100");
  assert.equal(listPath({ ruleset: "arena", labels: { mode: "ffa", region: "eu west" }, open: true, limit: 20 }),
    "/api/matches?ruleset=arena&label=mode%3Affa&label=region%3Aeu+west&open=1&limit=20");
});

// -- answers

test("a refusal is the server's one-line reason and field", () => {
  const body = JSON.stringify({ error: "unknown ruleset 'tag'; this server offers arena, drift", field: "ruleset" });
  assert.throws(() => readAnswer(400, "Bad Request", body), (e) =>
    e instanceof LobbyError && e.status === 400 && e.field === "ruleset" &&
    e.line === "ruleset: unknown ruleset 'tag'; this server offers arena, drift");
  assert.throws(() => readAnswer(409, "", JSON.stringify({ error: "match 'm1' is full (2 players)", field: null })),
    (e) => e.status === 409 && e.line === "match 'm1' is full (2 players)");
});

test("a refusal without the server's JSON says the status", () => {
  assert.throws(() => readAnswer(502, "Bad Gateway", "<html>oops</html>"), (e) => e.status === 502 && e.line === "the server answered HTTP 502 Bad Gateway");
  assert.throws(() => readAnswer(404, "", JSON.stringify({ nope: 1 })), (e) => e.line === "the server answered HTTP 404");
  assert.throws(() => readAnswer(200, "OK", "not json"), (e) => e.status === 200 && /without a JSON object/.test(e.line));
  assert.deepEqual(readAnswer(200, "OK", `{"matches": []}`), { matches: [] });
});

test("a seat is read with its url, token and time left", () => {
  assert.deepEqual(readSeat({ match: "m1", url: "ws://h:1/ws/m1", seat: "tok", expires_in: 15.0 }),
    { match: "m1", url: "ws://h:1/ws/m1", seat: "tok", expiresIn: 15 });
  assert.throws(() => readSeat({ match: "m1", url: "ws://h:1/ws/m1", expires_in: 15 }), (e) => e.line === "the server's seat has no seat");
});

test("the match list is read as the server lists it, entries without an id left out", () => {
  const listing = {
    matches: [
      { match: "m1", url: "ws://h/ws/m1", ruleset: "arena", labels: { mode: "ffa" }, players: 3, reserved: 1, max_players: 16 },
      { url: "ws://h/ws/x" },
      { match: "m2", ruleset: "tagarena" },
    ],
  };
  assert.deepEqual(readMatches(listing), [
    { match: "m1", url: "ws://h/ws/m1", ruleset: "arena", labels: { mode: "ffa" }, players: 3, reserved: 1, max: 16 },
    { match: "m2", url: null, ruleset: "tagarena", labels: {}, players: 0, reserved: 0, max: null },
  ]);
  assert.throws(() => readMatches({}), LobbyError);
});

test("an API call posts JSON and reads the answer; no answer at all is an error without a status", async () => {
  const calls = [];
  const fake = async (path, init) => {
    calls.push([path, init]);
    return { status: 200, statusText: "OK", text: async () => `{"match":"m1","url":"ws://h/ws/m1","seat":"s","expires_in":15}` };
  };
  assert.equal((await callApi(fake, "/api/matchmake", { ruleset: "arena" })).seat, "s");
  assert.equal(calls[0][0], "/api/matchmake");
  assert.equal(calls[0][1].method, "POST");
  assert.equal(calls[0][1].headers["Content-Type"], "application/json");
  assert.deepEqual(JSON.parse(calls[0][1].body), { ruleset: "arena" });
  await callApi(fake, "/api/matches?limit=100");
  assert.equal(calls[1][1].method, undefined);
  const down = async () => { throw new TypeError("Failed to fetch"); };
  await assert.rejects(callApi(down, "/api/matches"), (e) => e instanceof LobbyError && e.status === null && e.line === "can't reach the server (Failed to fetch)");
});

// -- where the buttons lead

test("a seat leads to the play page with the match, the seat and the name", () => {
  assert.equal(playUrl({ match: "m1", seat: "a+b/c", url: "ws://game.example:8765/ws/m1", name: "Zoë" }, HERE),
    "index.html?match=m1&seat=a%2Bb%2Fc&name=Zo%C3%AB");
});

test("a seat on another node passes its URL on", () => {
  assert.equal(playUrl({ match: "m1", seat: "s", url: "ws://node2:9000/ws/m1" }, HERE),
    "index.html?match=m1&seat=s&ws=ws%3A%2F%2Fnode2%3A9000%2Fws%2Fm1");
});

test("a spectator goes without a seat", () => {
  assert.equal(playUrl({ match: "m1", seat: "s", spectate: true, url: "ws://game.example:8765/ws/m1" }, HERE), "index.html?match=m1&spectate=1");
});

test("a replay is watched on the replay page", () => {
  assert.equal(replayUrl("arena 2024-01-01.tsr"), "replay.html?replay=arena+2024-01-01.tsr");
});

// -- markup

test("labels and seats read as short text", () => {
  assert.equal(labelsText({ region: "eu", mode: "ffa" }), "mode ffa · region eu");
  assert.equal(labelsText({}), "");
  assert.equal(seatsText({ players: 3, reserved: 0, max: 16 }), "3/16");
  assert.equal(seatsText({ players: 3, reserved: 2, max: 16 }), "3/16 (+2 joining)");
  assert.equal(seatsText({ players: 3, reserved: 0, max: null }), "3");
  assert.equal(isFull({ players: 15, reserved: 1, max: 16 }), true);
  assert.equal(isFull({ players: 15, reserved: 0, max: 16 }), false);
});

test("each match row names its match on both buttons; a full one cannot be joined", () => {
  const html = matchRowsHtml([
    { match: "m1", ruleset: "arena", labels: { mode: "ffa" }, players: 2, reserved: 0, max: 2 },
    { match: "m2", ruleset: "drift", labels: {}, players: 0, reserved: 0, max: 8 },
  ]);
  assert.match(html, /<tr data-match="m1">.*<button type="button" class="join" data-match="m1" disabled[^>]*>Join<\/button>/);
  assert.match(html, /<button type="button" class="spectate secondary" data-match="m1">Spectate/);
  assert.match(html, /<tr data-match="m2">.*class="join" data-match="m2">Join/);
  assert.match(html, /mode ffa/);
  assert.match(matchRowsHtml([]), /No matches yet/);
});

test("whatever the server lists goes into the markup as text", () => {
  const evil = `<img src=x onerror="alert(1)">`;
  const html = matchRowsHtml([{ match: `m"1`, ruleset: evil, labels: { mode: evil }, players: 0, reserved: 0, max: 4 }]);
  assert.ok(!html.includes("<img"), html);
  assert.match(html, /data-match="m&quot;1"/);
  const replays = replayRowsHtml({ playback: true, replays: [{ name: `"><script>`, ruleset: evil, seed: 1, size: 10 }] });
  assert.ok(!replays.includes("<script>") && !replays.includes("<img"), replays);
});

test("each readable replay has a Watch link; an unreadable one says why", () => {
  const html = replayRowsHtml({
    playback: true,
    replays: [
      { name: "a.tsr", ruleset: "arena", seed: 7, start_time: "2024-05-01T10:00:00Z", size: 2048 },
      { name: "b.tsr", error: "truncated", mtime: "2024-05-01T09:00:00Z", size: 3 },
    ],
  });
  assert.match(html, /<tr data-replay="a.tsr">.*arena · seed 7.*2024-05-01 10:00:00.*<a class="watch" href="replay.html\?replay=a.tsr">Watch<\/a>/);
  assert.match(html, /<tr data-replay="b.tsr">.*truncated.*<td><\/td><\/tr>/);
  assert.match(replayRowsHtml({ replays: [] }), /No replays/);
});

test("a server that only records its replays gets the command that plays one instead of a link", () => {
  const html = replayRowsHtml({ playback: false, replays: [{ name: "a.tsr", path: "replays/a.tsr", ruleset: "arena", seed: 7, size: 1 }] });
  assert.ok(!html.includes("<a "), html);
  assert.match(html, /<code[^>]*>python -m tools.replay play replays\/a.tsr<\/code>/);
});

test("the rulesets offered are the listed ones and arena, once each", () => {
  assert.deepEqual(rulesetNames([{ ruleset: "tagarena" }, { ruleset: "arena" }, { ruleset: "drift" }]), ["arena", "drift", "tagarena"]);
});

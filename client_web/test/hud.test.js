// What the join screen says when a connection ends for good.

import { test } from "node:test";
import assert from "node:assert/strict";

import { closeNotice } from "../hud.js";

const URL = "ws://h:1/ws";

test("a refused join says why: full, unreachable, or the server's reason", () => {
  assert.match(closeNotice({ code: 1013, reason: "", wasEstablished: false }, null, URL), /^Can't join right now: the match is full\./);
  assert.equal(closeNotice({ code: 1006, reason: "", wasEstablished: false }, null, URL),
    "Can't reach the game server at ws://h:1/ws. Is it running?");
  assert.equal(closeNotice({ code: 1008, reason: "x", wasEstablished: false }, { code: 1008, reason: "rate limit" }, URL),
    "The server refused the connection (1008): rate limit");
});

test("a match that ends says whether another window took over", () => {
  assert.equal(closeNotice({ code: 1000, reason: "replaced by a new connection", wasEstablished: true }, null, URL),
    "You joined from another window, so this one was disconnected.");
  assert.equal(closeNotice({ code: 1002, reason: "", wasEstablished: true }, null, URL), "Disconnected by the server (1002): protocol error");
});

test("a bad seat sends the player back to the lobby, whatever the server's words", () => {
  for (const code of [4401, 4403, 4409, 4410]) {
    const notice = closeNotice({ code, reason: "x", wasEstablished: false }, { code, reason: "seat expired (seats are held 15 s)" }, URL);
    assert.match(notice, /^Your seat in this match is not valid: .*seat.*\. Go back to the lobby to get a new one\.$/, String(code));
  }
  assert.match(closeNotice({ code: 4410, reason: "", wasEstablished: false }, null, URL), /expired/);
});

test("a match that cannot be reached may have ended: the lobby has others", () => {
  assert.equal(closeNotice({ code: 1006, reason: "", wasEstablished: false }, null, "ws://h:1/ws/m1", "m1"),
    "Can't reach match m1 at ws://h:1/ws/m1: it may have ended. Find another one in the lobby.");
});

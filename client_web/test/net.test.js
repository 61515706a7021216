// The WebSocket shell: backoff, and which closes reconnect.

import { test } from "node:test";
import assert from "node:assert/strict";

import { decode, encode } from "@msgpack/msgpack";

import { Backoff, Link, httpUrl, openFeed, shouldReconnect, socketUrl } from "../net.js";
import { Feed } from "../feed.js";

test("the status of a server comes from its own origin: ws -> http, wss -> https", () => {
  assert.equal(httpUrl("ws://127.0.0.1:8765/ws", "/healthz"), "http://127.0.0.1:8765/healthz");
  assert.equal(httpUrl("wss://game.example:443/ws?x=1#y", "/healthz"), "https://game.example/healthz");
  assert.equal(httpUrl("ws://other.example/sub/ws", "/healthz"), "http://other.example/healthz");
  assert.throws(() => httpUrl("not a url", "/healthz"));
});

test("the play page connects to the seat's URL, else to the match on its server, else to the default match", () => {
  const here = { protocol: "http:", host: "game.example:8765" };
  const url = (q, loc = here) => socketUrl(new URLSearchParams(q), loc);
  assert.equal(url(""), "ws://game.example:8765/ws");
  assert.equal(url("", { protocol: "https:", host: "game.example" }), "wss://game.example/ws");
  assert.equal(url("match=m-1.a&seat=s"), "ws://game.example:8765/ws/m-1.a");
  assert.equal(url("match=a/b?c"), "ws://game.example:8765/ws/a%2Fb%3Fc"); // never another path
  assert.equal(url("server=ws://other:1/ws/&match=m1"), "ws://other:1/ws/m1");
  assert.equal(url("server=ws://other:1/ws"), "ws://other:1/ws");
  assert.equal(url("match=m1&ws=ws%3A%2F%2Fnode2%3A9000%2Fws%2Fm1"), "ws://node2:9000/ws/m1");
});

test("backoff doubles from half a second to eight, with jitter, and resets", () => {
  const b = new Backoff({ random: () => 0.5 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => b.next()), [500, 1000, 2000, 4000, 8000, 8000]);
  b.reset();
  assert.equal(b.next(), 500);
  const j = new Backoff({ random: () => 1 });
  assert.equal(j.next(), 600);
});

test("drops, restarts and slow-reader closes reconnect; our own close, protocol errors and bad seats do not", () => {
  for (const code of [1001, 1005, 1006, 1008, 1011, 1012, 1013]) assert.equal(shouldReconnect(code), true, code);
  for (const code of [1000, 1002, 1003, 1007, 1009]) assert.equal(shouldReconnect(code), false, code);
  for (const code of [4401, 4403, 4409, 4410]) assert.equal(shouldReconnect(code), false, code); // a bad seat: matchmake again
});

class FakeWS {
  static all = [];
  constructor(url) { this.url = url; this.readyState = 0; this.sent = []; FakeWS.all.push(this); }
  send(b) { this.sent.push(b); }
  close(code = 1000) { this.readyState = 3; if (this.onclose) this.onclose({ code, reason: "" }); }
  open() { this.readyState = 1; this.onopen(); }
  drop(code = 1006) { this.readyState = 3; this.onclose({ code, reason: "" }); }
}

function fakeTimers() {
  const t = { queue: [], setTimeout(fn, ms) { t.queue.push({ fn, ms }); return t.queue.length; }, clearTimeout(id) { t.queue[id - 1] = null; } };
  t.fire = () => { const q = t.queue.filter(Boolean); t.queue = []; q.forEach((e) => e.fn()); return q.map((e) => e.ms); };
  return t;
}

test("an established link reconnects after a drop with growing delays; a refused first connection does not", () => {
  FakeWS.all = [];
  const timers = fakeTimers();
  const events = [];
  const link = new Link("ws://x/ws", {
    onOpen: () => events.push("open"),
    onClose: (i) => events.push(`close ${i.code} retry=${i.willRetry}`),
    onRetry: (i) => events.push(`retry ${i.attempt}`),
  }, { WebSocketImpl: FakeWS, timers, backoff: new Backoff({ random: () => 0.5 }) });
  link.start();
  FakeWS.all[0].open();
  link.welcomed();
  FakeWS.all[0].drop();
  assert.deepEqual(timers.fire(), [500]);
  FakeWS.all[1].drop(); // the server is still down
  assert.deepEqual(timers.fire(), [1000]);
  FakeWS.all[2].open();
  link.welcomed();
  assert.ok(link.open);
  assert.deepEqual(events, ["open", "close 1006 retry=true", "retry 1", "close 1006 retry=true", "retry 2", "open"]);

  const refused = new Link("ws://x/ws", { onClose: (i) => events.push(`refused ${i.code} retry=${i.willRetry}`) },
    { WebSocketImpl: FakeWS, timers });
  refused.start();
  FakeWS.all[3].drop(1013);
  assert.equal(events.at(-1), "refused 1013 retry=false");
  assert.deepEqual(timers.fire(), []);
});

test("stop() closes for good and cancels a pending retry", () => {
  FakeWS.all = [];
  const timers = fakeTimers();
  const link = new Link("ws://x/ws", {}, { WebSocketImpl: FakeWS, timers });
  link.start();
  FakeWS.all[0].open();
  link.welcomed();
  FakeWS.all[0].drop();
  link.stop();
  assert.deepEqual(timers.fire(), []);
  assert.equal(FakeWS.all.length, 1);
});

test("stop() closes with the code given, after what was sent, and resolves when the socket has closed", async () => {
  FakeWS.all = [];
  const closes = [];
  const link = new Link("ws://x/ws", { onClose: (i) => closes.push(i) }, { WebSocketImpl: FakeWS, timers: fakeTimers() });
  link.start();
  const ws = FakeWS.all[0];
  ws.open();
  link.welcomed();
  ws.close = (code, reason) => { ws.closedWith = [code, reason, ws.sent.length]; };
  link.send(new Uint8Array([1]));
  let closed = false;
  const done = link.stop(1000, "left").then(() => { closed = true; });
  assert.deepEqual(ws.closedWith, [1000, "left", 1]);
  await Promise.resolve();
  assert.equal(closed, false); // the closing handshake is not over yet
  ws.onclose({ code: 1000, reason: "left" });
  await done;
  assert.equal(closed, true);
  assert.deepEqual(closes, []); // our own close is no event: the page has moved on
  await link.stop(); // nothing open: at once
});

test("openFeed says hello on open, feeds every frame to the feed, sends its acks and is established by the welcome", () => {
  FakeWS.all = [];
  const timers = fakeTimers();
  const feed = new Feed();
  const seen = [];
  const link = openFeed("ws://x/ws", feed, {
    hello: () => encode({ t: "hello", v: 1, name: "viewer", spectate: true }),
    onEvent: (ev) => seen.push(`${ev.type} acks=${ws.sent.length - 1}`),
    now: () => 0,
  }, { WebSocketImpl: FakeWS, timers });
  link.start();
  const ws = FakeWS.all[0];
  ws.open();
  assert.deepEqual(decode(ws.sent[0]), { t: "hello", v: 1, name: "viewer", spectate: true });
  const frame = (m) => ws.onmessage({ data: encode(m).slice().buffer });
  const ruleset = { name: "t", columns: [{ name: "x", dtype: "int16" }, { name: "y", dtype: "int16" }] };
  assert.equal(link.established, false);
  frame({ t: "welcome", v: 1, player: 1, entity: null, tick_rate: 30, tick: 5, token: "k", ruleset });
  assert.equal(link.established, true);
  frame({ t: "update", tick: 5, base: null, sum: 0, ack: 0 });
  // The ack goes out before the page hears of the update.
  assert.deepEqual(seen, ["welcome acks=0", "update acks=1"]);
  assert.deepEqual(decode(ws.sent[1]), { t: "ack", tick: 5 });
  assert.equal(feed.latest.tick, 5);
});

test("a moved message sends the link to the new server at once, where the same hello resumes the player", () => {
  FakeWS.all = [];
  const timers = fakeTimers();
  const feed = new Feed();
  let token = null;
  const link = openFeed("ws://a:1/ws/m1", feed, {
    hello: () => encode({ t: "hello", v: 1, name: "ann", ...(token ? { token } : {}) }),
    onEvent: (ev) => { if (ev.type === "welcome") token = ev.msg.token; },
    now: () => 0,
  }, { WebSocketImpl: FakeWS, timers, backoff: new Backoff({ random: () => 0.5 }) });
  link.start();
  const a = FakeWS.all[0];
  a.open();
  const frame = (ws, m) => ws.onmessage({ data: encode(m).slice().buffer });
  const ruleset = { name: "t", columns: [{ name: "x", dtype: "int16" }] };
  frame(a, { t: "welcome", v: 1, player: 3, entity: 7, tick_rate: 30, tick: 5, token: "tok", ruleset });
  frame(a, { t: "moved", url: "ws://b:2/ws/m1" });
  a.drop(1012);
  assert.deepEqual(timers.fire(), [0]); // no backoff
  const b = FakeWS.all[1];
  assert.equal(b.url, "ws://b:2/ws/m1");
  b.open();
  assert.deepEqual(decode(b.sent[0]), { t: "hello", v: 1, name: "ann", token: "tok" });
  b.drop(1006); // a later drop reconnects to the new server, with the usual backoff
  assert.deepEqual(timers.fire(), [500]);
  assert.equal(FakeWS.all[2].url, "ws://b:2/ws/m1");
});

// The spectator core both pages share: welcome -> mirror, updates applied
// from the shared delta vectors (the Python encoder's bytes), acks and the
// one resync after a mismatch, the interpolation clock, the roster.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { decode, encode } from "@msgpack/msgpack";

import { Feed } from "../feed.js";
import { INTERP_DELAY_MS } from "../interp.js";
import { RESYNC_RETRY_MS } from "../world.js";

const VECTORS = JSON.parse(readFileSync(fileURLToPath(new URL("../../tests/vectors/deltas.json", import.meta.url)), "utf8"));
const b64 = (s) => new Uint8Array(Buffer.from(s, "base64"));
const sequence = (name) => VECTORS.sequences.find((s) => s.name === name);
const TICK_MS = 1000 / 30;

function welcome(ruleset, { entity = null, tick = 1 } = {}) {
  return encode({
    t: "welcome", v: 1, match: "m", player: 7, entity, tick_rate: 30, tick, token: "tok", hold_s: 10, resumed: false, ruleset,
  });
}

/** The messages the feed asks to send, decoded. */
const sent = (feed) => feed.dataToSend().map((b) => decode(b));

test("a welcome builds the mirror and the clock from the ruleset", () => {
  const seq = sequence("drift/player");
  const feed = new Feed();
  assert.equal(feed.sample(0), null);
  const ev = feed.receiveData(welcome(seq.ruleset), 0);
  assert.equal(ev.type, "welcome");
  assert.equal(ev.schema.name, "drift");
  assert.equal(feed.tickMs, TICK_MS);
  assert.equal(feed.spectator, true);
  assert.equal(feed.latest, null);
  assert.deepEqual(sent(feed), []);
});

test("a spectator applies a keyframe then deltas, and acknowledges each update's tick", () => {
  const seq = sequence("drift/player");
  const feed = new Feed();
  feed.receiveData(welcome(seq.ruleset), 0);
  seq.frames.forEach((frame, i) => {
    const ev = feed.receiveData(b64(frame.data), i * TICK_MS);
    assert.equal(ev.type, "update");
    assert.equal(ev.status, "ok", `tick ${frame.tick}`);
    assert.equal(ev.state.sum, frame.expect.sum);
    assert.deepEqual(sent(feed), [{ t: "ack", tick: frame.tick }]);
  });
  const last = seq.frames[seq.frames.length - 1];
  assert.deepEqual(feed.mirrorChecksum(), { tick: last.tick, sum: last.expect.sum, count: feed.latest.ids.length });
  assert.deepEqual(feed.stats().desyncs, 0);
  assert.equal(feed.stats().keyframes, 1);
  assert.equal(feed.stats().updates, seq.frames.length);
  assert.equal(feed.entities().length, feed.latest.ids.length);
  assert.ok(feed.entities("player").every((e) => e.kindName === "player" && e.kind === 4));
  const counts = feed.kindCounts();
  assert.equal(Object.values(counts).reduce((a, b) => a + b, 0), feed.latest.ids.length);
});

test("a player acknowledges in its inputs: the feed sends no acks but says which tick to acknowledge", () => {
  const seq = sequence("drift/player");
  const feed = new Feed();
  feed.receiveData(welcome(seq.ruleset, { entity: 99 }), 0);
  assert.equal(feed.spectator, false);
  for (const frame of seq.frames.slice(0, 5)) {
    feed.receiveData(b64(frame.data), 0);
    assert.equal(feed.ackTick(), frame.tick);
  }
  assert.deepEqual(sent(feed), []);
});

test("a checksum mismatch asks for exactly one resync, stops the acks, and a keyframe restores both", () => {
  const seq = sequence("synthetic-errors");
  const [keyframe, wrongSum, ...rest] = seq.frames;
  assert.equal(wrongSum.expect.error, "checksum");
  const feed = new Feed();
  feed.receiveData(welcome(seq.ruleset), 0);
  feed.receiveData(b64(keyframe.data), 0);
  assert.deepEqual(sent(feed), [{ t: "ack", tick: keyframe.tick }]);

  assert.equal(feed.receiveData(b64(wrongSum.data), 10).status, "desync");
  // Every delta still in flight against the forgotten base, within the retry window.
  const after = rest.map((f, i) => feed.receiveData(b64(f.data), 20 + i).status);
  assert.ok(after.every((s) => s === "dropped"), after);
  assert.deepEqual(sent(feed), [{ t: "resync" }]);
  assert.equal(feed.stats().desyncs, 1);
  assert.equal(feed.stats().checksumOk, false);
  assert.equal(feed.ackTick(), null);

  const back = feed.receiveData(b64(keyframe.data), 30);
  assert.equal(back.status, "ok");
  assert.deepEqual(sent(feed), [{ t: "ack", tick: keyframe.tick }]);
  assert.equal(feed.stats().checksumOk, true);
});

test("a resync that brings no keyframe is asked for again once the retry time has passed", () => {
  const seq = sequence("synthetic-errors");
  const [keyframe, wrongSum, delta] = seq.frames;
  const feed = new Feed();
  feed.receiveData(welcome(seq.ruleset), 0);
  feed.receiveData(b64(keyframe.data), 0);
  feed.receiveData(b64(wrongSum.data), 0);
  feed.receiveData(b64(delta.data), RESYNC_RETRY_MS - 1);
  feed.receiveData(b64(delta.data), RESYNC_RETRY_MS + 1);
  assert.deepEqual(sent(feed).map((m) => m.t), ["ack", "resync", "resync"]);
});

test("an update before any welcome and a frame that is not msgpack are reported, not thrown", () => {
  const seq = sequence("drift/player");
  const feed = new Feed();
  assert.equal(feed.receiveData(b64(seq.frames[0].data), 0).status, "early");
  assert.equal(feed.receiveData(new Uint8Array([0xc1]), 0).type, "invalid");
  assert.equal(feed.receive({ t: "welcome", ruleset: {} }, 0).type, "invalid");
  assert.deepEqual(feed.receive({ t: "pong", id: 1 }, 0), { type: "pong", msg: { t: "pong", id: 1 } });
  assert.deepEqual(sent(feed), []);
});

test("the picture is drawn INTERP_DELAY_MS behind the tick clock, or held on the newest state", () => {
  const seq = sequence("drift/player");
  const feed = new Feed();
  feed.receiveData(welcome(seq.ruleset), 0);
  for (const frame of seq.frames.slice(0, 10)) feed.receiveData(b64(frame.data), frame.tick * TICK_MS);
  const now = 10 * TICK_MS;
  const view = feed.sample(now);
  assert.equal(view, feed.view);
  assert.ok(Math.abs(feed.renderTick - (10 - INTERP_DELAY_MS / TICK_MS)) < 1e-9, feed.renderTick);
  assert.equal(view.n, feed.latest.ids.length);
  feed.sample(now, { hold: true });
  assert.equal(feed.renderTick, 10);
  // A playback at 2x: the delay is in the playback's ticks, and a new clock holds until the next update.
  feed.setSpeed(2);
  feed.sample(now + 5);
  assert.equal(feed.renderTick, 10);
  feed.receiveData(b64(seq.frames[10].data), now + 5);
  feed.sample(now + 5);
  assert.ok(Math.abs(feed.renderTick - (11 - (2 * INTERP_DELAY_MS) / TICK_MS)) < 1e-9, feed.renderTick);
});

test("a page may draw further behind; an input's view is the tick shown, floored, within the states held", () => {
  const seq = sequence("drift/player");
  const feed = new Feed({ interpDelayMs: 200 });
  feed.receiveData(welcome(seq.ruleset, { entity: 99 }), 0);
  assert.equal(feed.viewTick(), null); // nothing shown yet
  for (const frame of seq.frames.slice(0, 10)) feed.receiveData(b64(frame.data), frame.tick * TICK_MS);
  feed.sample(10 * TICK_MS);
  assert.ok(Math.abs(feed.renderTick - 4) < 1e-9, feed.renderTick); // 200 ms: six ticks behind tick 10
  assert.equal(feed.viewTick(), 4);
  feed.sample(10.5 * TICK_MS);
  assert.equal(feed.viewTick(), 4);
  feed.sample(30 * TICK_MS); // updates stopped: the picture runs on past the newest state, the view does not
  assert.equal(feed.viewTick(), 10);
  feed.sample(-30 * TICK_MS);
  assert.equal(feed.viewTick(), feed.buffer.states[0].tick);
});

test("a live feed reports a frozen page's backlog as stale and keeps it out of the clock", () => {
  const seq = sequence("drift/player");
  const live = new Feed({ staleTicks: 6 }), replay = new Feed();
  for (const feed of [live, replay]) {
    feed.receiveData(welcome(seq.ruleset, { entity: 99 }), 0);
    const stale = seq.frames.map((frame, i) => feed.receiveData(b64(frame.data), i < 5 ? frame.tick * TICK_MS : 3000 + i).stale);
    assert.deepEqual(stale.slice(0, 5), [false, false, false, false, false]);
    if (feed === live) {
      assert.ok(stale.slice(5).every(Boolean), JSON.stringify(stale));
      assert.ok(Math.abs(feed.clock.tickAt(3000) - 3000 / TICK_MS) < 0.5); // the clock kept its timing
    } else {
      assert.ok(stale.every((x) => !x)); // a replay's clock has no backlogs: it starts afresh
    }
  }
});

test("a live spectator answers a frozen page's backlog with one ack, then acks every update again", () => {
  const seq = sequence("drift/spectator"); // an update at most ticks from 1 on, all of 9 to 67
  const feed = new Feed({ staleTicks: 6 });
  feed.receiveData(welcome(seq.ruleset), 0);
  const acks = new Map();
  for (const [i, frame] of seq.frames.entries()) {
    // On time up to tick 20; frozen until 150 ms after tick 48 was due, then 21-48 at once; on time again.
    const at = frame.tick <= 20 || frame.tick > 48 ? frame.tick * TICK_MS : 48 * TICK_MS + 150 + i * 0.2;
    feed.receiveData(b64(frame.data), at);
    acks.set(frame.tick, sent(feed).filter((m) => m.t === "ack").length);
  }
  const count = (lo, hi) => [...acks].filter(([t]) => t >= lo && t <= hi).reduce((n, [, a]) => n + a, 0);
  assert.equal(count(1, 20), seq.frames.filter((f) => f.tick <= 20).length); // one per update
  assert.equal(count(21, 48), 1); // stale: far later than the clock, or late right behind those
  assert.deepEqual([49, 50, 56].map((t) => acks.get(t)), [1, 1, 1]);
});

test("a replay's keyframe starts the timeline afresh; a live keyframe goes on", () => {
  const seq = sequence("drift/spectator");
  const [first, second] = seq.frames.filter((f) => f.base == null); // its first two keyframes
  for (const restartOnKeyframe of [false, true]) {
    const feed = new Feed({ restartOnKeyframe });
    feed.receiveData(welcome(seq.ruleset), 0);
    feed.receiveData(b64(first.data), 0);
    feed.receiveData(b64(second.data), 0);
    assert.deepEqual(feed.buffer.states.map((s) => s.tick), restartOnKeyframe ? [second.tick] : [first.tick, second.tick]);
  }
});

test("events are reported once per tick; the roster names entities; standings rank by score", () => {
  const seq = sequence("synthetic-errors");
  const feed = new Feed();
  feed.receiveData(welcome(seq.ruleset), 0);
  const msg = decode(b64(seq.frames[0].data));
  assert.deepEqual(feed.receive({ ...msg, ev: [["kill", 1, 2]] }, 0).events, [["kill", 1, 2]]);
  assert.equal(feed.receive({ ...msg, ev: [["kill", 1, 2]] }, 0).events, null);
  const ids = [...feed.latest.ids];
  const ev = feed.receive({ t: "roster", players: [[1, ids[0], "ann", true], [2, null, "bob", false], [3, ids[1], "cy", true]] }, 0);
  assert.equal(ev.type, "roster");
  assert.deepEqual([...feed.names.keys()], [ids[0], ids[1]]);
  assert.equal(feed.names.get(ids[1]).name, "cy");
  const rows = feed.standings();
  assert.deepEqual(rows.map((p) => p.name).sort(), ["ann", "bob", "cy"]);
  assert.equal(rows.find((p) => p.name === "bob").row, -1);
  for (let i = 1; i < rows.length; i++) {
    assert.ok(rows[i - 1].score > rows[i].score || (rows[i - 1].score === rows[i].score && rows[i - 1].player < rows[i].player));
  }
});

test("roster changes apply to the revision before them; a gap asks for one resync and waits for a whole roster", () => {
  const feed = new Feed();
  feed.receiveData(welcome(sequence("drift/player").ruleset), 0);
  const names = () => feed.roster.map((p) => `${p.player}:${p.name}:${p.online}`);
  const roster = (rev, players) => encode({ t: "roster", players, rev });
  const delta = (rev, players, gone) => encode({ t: "roster_delta", rev, players, gone });
  assert.equal(feed.receiveData(roster(4, [[2, 20, "bob", true], [1, 10, "ann", true]]), 0).type, "roster");
  assert.deepEqual(names(), ["1:ann:true", "2:bob:true"]);
  assert.equal(feed.rosterRev, 4);
  const ev = feed.receiveData(delta(5, [[3, 30, "cy", true], [2, 20, "bob", false]], [1]), 0);
  assert.equal(ev.type, "roster");
  assert.deepEqual(names(), ["2:bob:false", "3:cy:true"]);
  assert.deepEqual([...feed.names.keys()], [20, 30]);
  assert.deepEqual(sent(feed), []);
  // Revision 6 was dropped (a slow reader): 7 and 8 are gaps, one resync for both, the roster held meanwhile.
  assert.equal(feed.receiveData(delta(7, [[4, 40, "dee", true]], []), 0).type, "roster_gap");
  assert.equal(feed.receiveData(delta(8, [], [2]), 0).type, "roster_gap");
  assert.deepEqual(sent(feed), [{ t: "resync" }]);
  assert.deepEqual(names(), ["2:bob:false", "3:cy:true"]);
  assert.equal(feed.rosterGaps, 2);
  feed.receiveData(roster(8, [[3, 30, "cy", true], [4, 40, "dee", true]]), 0);
  feed.receiveData(delta(9, [[5, null, "eve", true]], [3]), 0);
  assert.deepEqual(names(), ["4:dee:true", "5:eve:true"]);
  assert.deepEqual(sent(feed), []);
});

test("a roster from a server without revisions is held whole; a malformed roster change is invalid", () => {
  const feed = new Feed();
  feed.receiveData(welcome(sequence("drift/player").ruleset), 0);
  feed.receive({ t: "roster", players: [[1, 10, "ann", true]] }, 0);
  assert.equal(feed.rosterRev, null);
  assert.deepEqual(feed.roster, [{ player: 1, entity: 10, name: "ann", online: true }]);
  assert.equal(feed.receive({ t: "roster_delta", rev: 1, players: [[1, 10, "ann"]], gone: [] }, 0).type, "invalid");
  assert.equal(feed.receive({ t: "roster_delta", rev: 1, players: [] }, 0).type, "invalid");
});

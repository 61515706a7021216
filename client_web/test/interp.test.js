// Snapshot interpolation: the tick clock, bracketing, and per-entity blending.

import { test } from "node:test";
import assert from "node:assert/strict";

import { parseSchema, makeState } from "../protocol.js";
import { MAX_EXTRAPOLATE_TICKS, STALE_TICKS, StateBuffer, TickClock, View, sample } from "../interp.js";

const SCHEMA = parseSchema({
  name: "t", width: 4000, height: 4000, kinds: ["a", "b"],
  columns: [
    { name: "kind", dtype: "uint8" }, { name: "x", dtype: "int16", scale: 8 }, { name: "y", dtype: "int16", scale: 8 },
    { name: "vx", dtype: "int8", scale: 8 }, { name: "vy", dtype: "int8", scale: 8 },
  ],
  motion: [{ pos: "x", vel: "vx", lo: 0, hi: 32000 }, { pos: "y", vel: "vy", lo: 0, hi: 32000 }],
});

function state(tick, rows) {
  const ids = Uint32Array.from(rows.map((r) => r[0]));
  const col = (i, A) => A.from(rows.map((r) => r[i]));
  return makeState(tick, ids, [col(1, Uint8Array), col(2, Int16Array), col(3, Int16Array), col(4, Int8Array), col(5, Int8Array)]);
}

test("the tick clock locks onto the earliest arrivals and ignores late ones", () => {
  const c = new TickClock(1000 / 30);
  assert.equal(c.tickAt(0), null);
  // Updates every 33.3 ms with jitter of up to 20 ms late.
  for (let t = 1; t <= 300; t++) c.observe(t, 500 + (t * 1000) / 30 + ((t * 7919) % 20));
  const est = c.tickAt(500 + 10_000 + 0.0);
  assert.ok(Math.abs(est - 300) < 0.4, `${est}`);
  // A replay's clock (no stale updates): a big jump (a seek, a pause) resets instead of drifting.
  c.observe(5, 60_000);
  assert.ok(Math.abs(c.tickAt(60_000) - 5) < 1e-9);
});

test("a live clock keeps a frozen page's backlog out, and takes a lasting shift after three ticks", () => {
  const T = 1000 / 30, c = new TickClock(T, { staleTicks: STALE_TICKS });
  for (let t = 1; t <= 100; t++) assert.equal(c.observe(t, 1000 + t * T + ((t * 7919) % 20)), false);
  const before = c.tickAt(5000);
  // Frozen from tick 100 to 160: the 60 updates held meanwhile are processed within a few ms.
  const stale = [];
  for (let t = 101; t <= 160; t++) stale.push(c.observe(t, 1000 + 160 * T + 5 + (t - 101) * 0.1));
  // Stale: the backlog, and the late ticks right behind it; its last three are within jitter.
  assert.deepEqual(stale.map(Number).join(""), "1".repeat(57) + "000");
  assert.ok(Math.abs(c.tickAt(5000) - before) < 0.2, `${c.tickAt(5000)} vs ${before}`);
  // Every update from now on comes 300 ms later (the server dropped nine ticks): stale at the server's
  // pace, which after three ticks is the new timing.
  const shifted = [];
  for (let t = 161; t <= 170; t++) shifted.push(c.observe(t, 1000 + t * T + 300));
  assert.deepEqual(shifted.slice(0, 4), [true, true, true, false]);
  assert.ok(shifted.slice(4).every((x) => !x));
  assert.ok(Math.abs(c.tickAt(1000 + 170 * T + 300) - 170) < 0.5);
});

test("after a backlog drained at once, late arrivals at the server's pace are a shift within a few ticks", () => {
  const T = 1000 / 30, c = new TickClock(T, { staleTicks: STALE_TICKS });
  for (let t = 1; t <= 100; t++) c.observe(t, 1000 + t * T);
  // The page froze at tick 100 for 5 s; the server froze with it after 60 ticks and skipped the rest. At the
  // resume: the 60 updates held (stale), then one a tick, each 3 s later than the clock says.
  const resume = 1000 + 250 * T;
  for (let t = 101; t <= 160; t++) assert.equal(c.observe(t, resume + (t - 101) * 0.1), true);
  const after = [];
  for (let t = 161; t <= 200; t++) after.push(c.observe(t, resume + 6 + (t - 160) * T));
  // Its third arrival, three ticks at the server's pace after the backlog's last, is the shift: not twice the
  // backlog's length (120 ticks) after it.
  assert.equal(after.indexOf(false), 2);
  assert.ok(after.slice(2).every((x) => !x));
  assert.ok(Math.abs(c.tickAt(resume + 6 + 40 * T) - 200) < 0.5);
});

test("the buffer brackets a render tick between the states around it", () => {
  const b = new StateBuffer(4);
  assert.equal(b.bracket(3), null);
  for (const t of [10, 11, 13, 14, 15]) b.push(state(t, [[1, 0, 0, 0, 0, 0]]));
  assert.deepEqual(b.states.map((s) => s.tick), [11, 13, 14, 15]);
  const br = b.bracket(12.5);
  assert.deepEqual([br.a.tick, br.b.tick, br.alpha], [11, 13, 0.75]);
  assert.deepEqual([b.bracket(5).a.tick, b.bracket(5).alpha], [11, 0]);
  const ahead = b.bracket(30);
  assert.deepEqual([ahead.a.tick, ahead.b.tick, ahead.ahead], [15, 15, MAX_EXTRAPOLATE_TICKS]);
  // A keyframe after a resync replaces whatever claimed a later tick.
  b.push(state(14, [[2, 0, 0, 0, 0, 0]]));
  assert.deepEqual(b.states.map((s) => s.tick), [11, 13, 14]);
});

test("entities blend by id; new ones stand where they appear; gone ones are not drawn; jumps snap", () => {
  const a = state(10, [[1, 0, 1000, 1000, 0, 0], [2, 0, 5000, 5000, 0, 0], [4, 1, 100, 100, 0, 0], [7, 0, 0, 0, 0, 0]]);
  const b = state(12, [[1, 0, 1100, 900, 50, -50], [4, 1, 200, 100, 0, 0], [7, 0, 30000, 30000, 0, 0], [9, 1, 300, 300, 0, 0]]);
  const v = sample(SCHEMA, { a, b, alpha: 0.25, ahead: 0 }, new View());
  assert.equal(v.n, 4);
  assert.equal(v.state, b);
  assert.deepEqual([...v.x.slice(0, 4)], [1025, 125, 30000, 300]);
  assert.deepEqual([...v.y.slice(0, 4)], [975, 100, 30000, 300]);
  assert.deepEqual([...v.row.slice(0, 4)], [0, 1, 2, 3]);
});

test("past the newest state, entities coast along their velocity, within the walls", () => {
  const s = state(10, [[1, 0, 1000, 31990, 40, 20]]);
  const v = sample(SCHEMA, { a: s, b: s, alpha: 0, ahead: 1.5 }, new View());
  assert.deepEqual([v.x[0], v.y[0]], [1060, 32000]);
});

test("the view grows for thousands of entities", () => {
  const rows = [];
  for (let i = 0; i < 3000; i++) rows.push([i, i % 2, i, i, 1, 1]);
  const s = state(1, rows);
  const v = sample(SCHEMA, { a: s, b: s, alpha: 0, ahead: 0 }, new View());
  assert.equal(v.n, 3000);
  assert.equal(v.x[2999], 2999);
});

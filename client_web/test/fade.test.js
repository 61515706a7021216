// Fading at the edge of a filtered view: what enters fades in, what leaves near the edge fades
// out where it was going, what disappears inside the view goes at once.

import { test } from "node:test";
import assert from "node:assert/strict";

import { FADE_MS, Fader, nearEdge } from "../fade.js";
import { parseSchema } from "../protocol.js";

const SCHEMA = parseSchema({
  name: "t", width: 4000, height: 4000, kinds: ["npc", "player"],
  columns: [{ name: "kind", dtype: "uint8" }, { name: "x", dtype: "int32", scale: 8 }, { name: "y", dtype: "int32", scale: 8 },
    { name: "vx", dtype: "int8", scale: 8 }, { name: "vy", dtype: "int8", scale: 8 }],
  motion: [{ pos: "x", vel: "vx", lo: 0, hi: 32000 }, { pos: "y", vel: "vy", lo: 0, hi: 32000 }],
});
const VIEW = { shape: "circle", radius: 600, cell: 300 };
const ME = 1;

/** A state of `tick` with entities [id, x, y, vx, vy] (world units for positions), ids ascending. */
function state(tick, rows) {
  const col = (Ctor, f) => Ctor.from(rows, f);
  return {
    tick, ids: Uint32Array.from(rows, (r) => r[0]),
    cols: [col(Uint8Array, (r) => (r[0] === ME ? 1 : 0)), col(Int32Array, (r) => r[1] * 8), col(Int32Array, (r) => r[2] * 8),
      col(Int8Array, (r) => r[3] ?? 0), col(Int8Array, (r) => r[4] ?? 0)],
  };
}

test("a position near the edge of the view is within one cell of its border, or beyond", () => {
  const me = { x: 1000 * 8, y: 1000 * 8 };
  assert.equal(nearEdge(VIEW, 8, me, 1200 * 8, 1000 * 8), false);
  assert.equal(nearEdge(VIEW, 8, me, 1400 * 8, 1000 * 8), true); // 400 units: within 300 of the 600 border
  assert.equal(nearEdge(VIEW, 8, me, 1000 * 8, 2000 * 8), true);
  const rect = { shape: "rect", half_w: 800, half_h: 450, cell: 100 };
  assert.equal(nearEdge(rect, 8, me, 1600 * 8, 1000 * 8), false);
  assert.equal(nearEdge(rect, 8, me, 1000 * 8, 1400 * 8), true);
});

test("an entity entering the view fades in over FADE_MS; one already there is opaque", () => {
  const f = new Fader();
  f.observe(SCHEMA, state(1, [[ME, 1000, 1000], [5, 1100, 1000]]), 0, VIEW, ME);
  f.observe(SCHEMA, state(2, [[ME, 1000, 1000], [5, 1100, 1000], [9, 1550, 1000]]), 100, VIEW, ME);
  assert.equal(f.alpha(5, 100), 1);
  assert.equal(f.alpha(9, 100), 0);
  assert.equal(f.alpha(9, 100 + FADE_MS / 2), 0.5);
  assert.equal(f.alpha(9, 100 + FADE_MS), 1);
  assert.ok(f.fadingIn);
  f.observe(SCHEMA, state(3, [[ME, 1000, 1000], [5, 1100, 1000], [9, 1550, 1000]]), 100 + FADE_MS, VIEW, ME);
  assert.ok(!f.fadingIn);
});

test("the first state and a keyframe long after do not fade: they start afresh", () => {
  const f = new Fader();
  f.observe(SCHEMA, state(1, [[ME, 1000, 1000], [5, 1100, 1000]]), 0, VIEW, ME);
  assert.equal(f.alpha(5, 0), 1);
  f.observe(SCHEMA, state(80, [[ME, 1000, 1000], [7, 1100, 1000]]), 10, VIEW, ME);
  assert.equal(f.alpha(7, 10), 1);
  assert.deepEqual(f.ghostsAt(SCHEMA, 10, 33), []);
});

test("an entity leaving near the edge fades out as a ghost carried on along its velocity", () => {
  const f = new Fader();
  f.observe(SCHEMA, state(1, [[ME, 1000, 1000], [9, 1580, 1000, 16, 0]]), 0, VIEW, ME);
  f.observe(SCHEMA, state(2, [[ME, 1000, 1000]]), 50, VIEW, ME);
  const [g] = f.ghostsAt(SCHEMA, 50 + FADE_MS / 2, 1000 / 30);
  assert.equal(g.id, 9);
  assert.equal(g.alpha, 0.5);
  assert.equal(g.y, 1000 * 8);
  assert.ok(Math.abs(g.x - (1580 * 8 + 16 * (FADE_MS / 2) / (1000 / 30))) < 1e-6);
  assert.equal(g.state.ids[g.row], 9);
  assert.deepEqual(f.ghostsAt(SCHEMA, 50 + FADE_MS, 33), []);
  assert.deepEqual([f.fadedIn, f.fadedOut], [0, 1]);
});

test("an entity that disappears well inside the view (destroyed) leaves no ghost", () => {
  const f = new Fader();
  f.observe(SCHEMA, state(1, [[ME, 1000, 1000], [4, 1050, 1000]]), 0, VIEW, ME);
  f.observe(SCHEMA, state(2, [[ME, 1000, 1000]]), 30, VIEW, ME);
  assert.deepEqual(f.ghostsAt(SCHEMA, 40, 33), []);
});

test("without a view (a match that does not filter) nothing fades out", () => {
  const f = new Fader();
  f.observe(SCHEMA, state(1, [[ME, 1000, 1000], [9, 3000, 1000]]), 0, null, ME);
  f.observe(SCHEMA, state(2, [[ME, 1000, 1000]]), 30, null, ME);
  assert.deepEqual(f.ghostsAt(SCHEMA, 40, 33), []);
});

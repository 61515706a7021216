// The shared camera: zooms, the whole-arena framing, following, cycling, and
// easing that does not depend on the frame rate.

import { test } from "node:test";
import assert from "node:assert/strict";

import { Camera, FOLLOW_MS, cycle, entityAt, fitZoom, followZoom, wholeArena } from "../camera.js";
import { parseSchema } from "../protocol.js";
import { View } from "../interp.js";

const close = (a, b, eps = 1e-9) => Math.abs(a - b) < eps;

test("the first move jumps to the target; later ones ease a fixed fraction per elapsed time", () => {
  const c = new Camera();
  c.move({ x: 100, y: 50 }, 2, 16);
  assert.deepEqual([c.x, c.y, c.zoom, c.ready], [100, 50, 2, true]);
  c.move({ x: 200, y: 50 }, 2, FOLLOW_MS);
  assert.ok(close(c.x, 200 - 100 * Math.exp(-1)), c.x);
  // Far from the target after one frame, there after a second of frames.
  for (let i = 0; i < 60; i++) c.move({ x: 300, y: 80 }, 1, 1000 / 60);
  assert.ok(close(c.x, 300, 0.01) && close(c.y, 80, 0.01) && close(c.zoom, 1, 0.001), c);
  c.reset();
  c.move({ x: -5, y: -6 }, 3, 16);
  assert.deepEqual([c.x, c.y, c.zoom], [-5, -6, 3]);
});

test("easing is the same at 30, 60 and 150 frames a second", () => {
  const run = (fps) => {
    const c = new Camera().move({ x: 0, y: 0 }, 1, 0);
    for (let i = 0; i < fps / 5; i++) c.move({ x: 1000, y: -400 }, 3, 1000 / fps);
    return c;
  };
  const [a, b, d] = [run(30), run(60), run(150)]; // 200 ms each
  for (const c of [b, d]) assert.ok(close(c.x, a.x, 1e-6) && close(c.y, a.y, 1e-6) && close(c.zoom, a.zoom, 1e-9), [a, c]);
});

test("a locked camera sits on its target (the predicted player) while its zoom still eases", () => {
  const c = new Camera().move({ x: 0, y: 0 }, 1, 0);
  c.move({ x: 40, y: 30 }, 2, 16, { lock: true });
  assert.deepEqual([c.x, c.y], [40, 30]);
  assert.ok(c.zoom > 1 && c.zoom < 2, c.zoom);
});

test("the whole arena fits between the HUD's bars and is centred in the room they leave", () => {
  const schema = parseSchema({ width: 3000, height: 3000, columns: [{ name: "x", dtype: "int16" }, { name: "y", dtype: "int16" }] });
  const a = wholeArena(schema, 1280, 720, { top: 20, bottom: 20 });
  assert.equal(a.zoom, fitZoom(1280, 720, 3000, 3000));
  assert.deepEqual([a.x, a.y], [1500, 1500]);
  const b = wholeArena(schema, 1280, 720, { top: 40, bottom: 110 });
  assert.ok(b.zoom < a.zoom);
  assert.ok(close(b.y, 1500 + 35 / b.zoom));
  // Where it lands on screen: the arena's top and bottom edges clear both bars.
  const top = (0 - b.y) * b.zoom + 360, bottom = (3000 - b.y) * b.zoom + 360;
  assert.ok(top >= 40 && bottom <= 720 - 110, [top, bottom]);
  assert.ok(close(followZoom(1100, 1100), 1) && followZoom(100, 100) === 0.35);
});

test("an entity is found in the sampled view by id; cycling through a list wraps round", () => {
  const schema = parseSchema({ columns: [{ name: "x", dtype: "int16", scale: 8 }, { name: "y", dtype: "int16", scale: 8 }] });
  const view = new View();
  view.state = { ids: Uint32Array.from([3, 9]) };
  view.n = 2;
  view.x.set([80, 160]);
  view.y.set([8, 16]);
  assert.deepEqual(entityAt(schema, view, 9), { x: 20, y: 2 });
  assert.equal(entityAt(schema, view, 4), null);
  assert.equal(entityAt(schema, view, null), null);
  assert.equal(cycle([5, 6, 7], 7, 1), 5);
  assert.equal(cycle([5, 6, 7], 5, -1), 7);
  assert.equal(cycle([5, 6, 7], null, 1), 5);
  assert.equal(cycle([5, 6, 7], 42, -1), 7);
  assert.equal(cycle([], 5, 1), null);
});

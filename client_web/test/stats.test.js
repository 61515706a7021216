// The page's own measurements.

import { test } from "node:test";
import assert from "node:assert/strict";

import { Meters, Ring, summary } from "../stats.js";

test("a ring keeps the newest values, oldest first", () => {
  const r = new Ring(3);
  [1, 2, 3, 4, 5].forEach((v) => r.push(v));
  assert.deepEqual(r.values(), [3, 4, 5]);
  r.clear();
  assert.deepEqual(r.values(), []);
  assert.deepEqual(summary([]), { n: 0 });
  assert.deepEqual(summary([4, 1, 3, 2]), { n: 4, mean: 2.5, p50: 3, p95: 4, p99: 4, max: 4 });
});

test("updates per second, bytes per second and frames per second", () => {
  const m = new Meters();
  assert.equal(m.frame(0), 16);
  for (let t = 1; t <= 120; t++) m.frame(t * 20);
  for (let t = 0; t < 40; t++) m.update(1000 + t * 50);
  m.rates(1000, 0);
  const { ups, bps, fps } = m.rates(3000, 4096);
  assert.equal(ups, 20); // the updates of the last second
  assert.equal(bps, 2048);
  assert.equal(fps, 50);
  assert.equal(m.frameStats().frame.n, 120);
  m.resetFrames();
  assert.equal(m.frameStats().frame.n, 0);
});

// Controls: angles, input fields, and when inputs go out.

import { test } from "node:test";
import assert from "node:assert/strict";

import { InputScheduler, angleToByte, byteToAngle, inputValues, moveFromHeld } from "../input.js";

test("aim angles use the server's convention: 0 = +x, 64 = +y (screen down)", () => {
  assert.equal(angleToByte(0), 0);
  assert.equal(angleToByte(Math.PI / 2), 64);
  assert.equal(angleToByte(Math.PI), 128);
  assert.equal(angleToByte(-Math.PI / 2), 192);
  assert.equal(angleToByte(Math.atan2(1, 1)), 32);
  for (let b = 0; b < 256; b++) assert.equal(angleToByte(byteToAngle(b)), b);
});

test("inputs follow the schema's fields by name, clamped to their ranges", () => {
  const fields = [{ name: "dx", lo: -1, hi: 1 }, { name: "dy", lo: -1, hi: 1 }, { name: "aim", lo: 0, hi: 255 },
    { name: "fire", lo: 0, hi: 1 }, { name: "future", lo: 2, hi: 5 }];
  assert.deepEqual(inputValues(fields, { dx: 1, dy: -1, aim: 300, fire: true }), [1, -1, 255, 1, 2]);
  assert.deepEqual(inputValues(fields.slice(0, 2), { dx: -3, dy: NaN }), [-1, 0]);
});

test("held keys give the direction; opposite keys cancel", () => {
  assert.deepEqual(moveFromHeld(new Set(["up", "right"])), { dx: 1, dy: -1 });
  assert.deepEqual(moveFromHeld(new Set(["left", "right", "down"])), { dx: 0, dy: 1 });
});

test("one input per update, bursts included, and a timer only when updates stall", () => {
  const s = new InputScheduler(33);
  assert.equal(s.onUpdate(0), true); s.sent(0);
  assert.equal(s.onUpdate(33), true); s.sent(33);
  assert.equal(s.onUpdate(34), true); s.sent(34); // a burst after a stall: as many inputs as ticks
  assert.equal(s.onTimer(100), false);
  assert.equal(s.onTimer(200), true); s.sent(200); // no update for > 4 ticks
  assert.equal(s.onTimer(210), false);
  assert.equal(s.onTimer(240), true);
});

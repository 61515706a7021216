// Client messages the pages build (the decoder is tested against the shared
// vectors in vectors.test.js).

import { test } from "node:test";
import assert from "node:assert/strict";
import { decode } from "@msgpack/msgpack";

import {
  CLOSE_REASONS, SEAT_CLOSE_CODES, cleanName, encodeControl, encodeHello, encodeInput, encodeLeave, kindName, parseSchema,
} from "../protocol.js";

test("a name is trimmed, stripped of control characters and cut at 24 code points", () => {
  assert.equal(cleanName("  Ann\u0007 \u200b "), "Ann");
  assert.equal(cleanName("\n\t"), "");
  assert.equal(cleanName(null), "");
  assert.equal(cleanName("🙂".repeat(30)), "🙂".repeat(24)); // never half a surrogate pair
  assert.equal(cleanName("a".repeat(23) + " b"), "a".repeat(23));
});

test("a playback control carries only the keys given", () => {
  assert.deepEqual(decode(encodeControl({ pause: true })), { t: "control", pause: true });
  assert.deepEqual(decode(encodeControl({ speed: 0.25, seek: 90 })), { t: "control", speed: 0.25, seek: 90 });
  assert.deepEqual(decode(encodeControl()), { t: "control" });
});

test("an input carries its seq, values, the tick acknowledged and the tick shown, when known; leave is one tag", () => {
  assert.deepEqual(decode(encodeInput(1, [1, -1, 64, 1], 40, 36)), { t: "input", seq: 1, in: [1, -1, 64, 1], ack: 40, view: 36 });
  assert.deepEqual(decode(encodeInput(2, [0, 0, 0, 0], null)), { t: "input", seq: 2, in: [0, 0, 0, 0] });
  assert.deepEqual(decode(encodeLeave()), { t: "leave" });
});

test("a kind value the schema does not name still has a name", () => {
  const schema = parseSchema({ kinds: ["player"], columns: [{ name: "kind", dtype: "uint8" }] });
  assert.equal(kindName(schema, 0), "player");
  assert.equal(kindName(schema, 3), "kind3");
});

test("a hello carries the keys given: a spectator's flag, a resume token, a seat token", () => {
  assert.deepEqual(decode(encodeHello("Ann")), { t: "hello", v: 1, name: "Ann" });
  assert.deepEqual(decode(encodeHello("Ann", { spectate: true })), { t: "hello", v: 1, name: "Ann", spectate: true });
  assert.deepEqual(decode(encodeHello("Ann", { token: "r1" })), { t: "hello", v: 1, name: "Ann", token: "r1" });
  assert.deepEqual(decode(encodeHello("Ann", { seat: "s".repeat(64) })), { t: "hello", v: 1, name: "Ann", seat: "s".repeat(64) });
  assert.deepEqual(decode(encodeHello("Ann", { token: null, seat: null })), { t: "hello", v: 1, name: "Ann" });
});

test("a hello never carries a resume token and a seat together", () => {
  assert.throws(() => encodeHello("Ann", { token: "r1", seat: "s1" }), /not both/);
});

test("every bad-seat close code has words for a person", () => {
  for (const code of SEAT_CLOSE_CODES) assert.match(CLOSE_REASONS[code], /seat/, String(code));
});

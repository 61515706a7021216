// Client messages the pages build (the decoder is tested against the shared
// vectors in vectors.test.js).

import { test } from "node:test";
import assert from "node:assert/strict";
import { decode } from "@msgpack/msgpack";

import {
  applyView, makeState, recordSize, viewSum, ProtocolError,
  CLOSE_REASONS, SEAT_CLOSE_CODES, cleanName, encodeControl, encodeHello, encodeInput, encodeLeave, kindName, parseSchema,
  helloRefused, serverMinor,
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
  assert.deepEqual(decode(encodeHello("Ann", { rosterDeltas: true })), { t: "hello", v: 1, name: "Ann", roster_deltas: true });
  assert.deepEqual(decode(encodeHello("Ann", { seat: "s".repeat(64) })), { t: "hello", v: 1, name: "Ann", seat: "s".repeat(64) });
  assert.deepEqual(decode(encodeHello("Ann", { token: null, seat: null })), { t: "hello", v: 1, name: "Ann" });
  assert.deepEqual(decode(encodeHello("Ann", { interest: true })), { t: "hello", v: 1, name: "Ann", interest: true });
});

test("a hello never carries a resume token and a seat together", () => {
  assert.throws(() => encodeHello("Ann", { token: "r1", seat: "s1" }), /not both/);
});

test("every bad-seat close code has words for a person", () => {
  for (const code of SEAT_CLOSE_CODES) assert.match(CLOSE_REASONS[code], /seat/, String(code));
});

// -- filtered views: what a decoder must refuse (real matches' frames: vectors.test.js) ---------------

const VIEWED = parseSchema({
  name: "v", columns: [{ name: "kind", dtype: "uint8" }, { name: "x", dtype: "int32", scale: 8 }, { name: "hp", dtype: "int16" }],
});
const HELD = makeState(5, Uint32Array.of(2, 7), [Uint8Array.of(1, 1), Int32Array.of(80, 90), Int16Array.of(10, 20)]);
const u32 = (...v) => new Uint8Array(Uint32Array.from(v).buffer);

test("a filtered view's records are an id and every column; its sum adds the entity hashes", () => {
  assert.equal(recordSize(VIEWED), 4 + 1 + 4 + 2);
  assert.equal(viewSum(new Uint32Array(0), VIEWED.columns.map((c) => new c.Array(0))), 0);
  const one = makeState(1, Uint32Array.of(7), [Uint8Array.of(1), Int32Array.of(90), Int16Array.of(20)]);
  const both = viewSum(HELD.ids, HELD.cols);
  assert.equal(both, (viewSum(one.ids, one.cols) + viewSum(Uint32Array.of(2), [Uint8Array.of(1), Int32Array.of(80), Int16Array.of(10)])) >>> 0);
});

test("a filtered update removes, changes and adds, keeping ids ascending", () => {
  const rec = new Uint8Array(11);
  const dv = new DataView(rec.buffer);
  dv.setUint32(0, 4, true); rec[4] = 3; dv.setInt32(5, -8, true); dv.setInt16(9, 99, true);
  // Entity 7: hp changed by +5 (code 1 at column 2: bits 4-5); entity 2 gone; entity 4 added.
  const got = applyView(VIEWED, HELD, { tick: 6, base: 5, gone: u32(2), chg: [u32(7), Uint8Array.of(0b010000), Uint8Array.of(5)], add: rec });
  assert.deepEqual([...got.ids], [4, 7]);
  assert.deepEqual([...got.cols[1]], [-8, 90]);
  assert.deepEqual([...got.cols[2]], [99, 25]);
  assert.equal(got.sum, viewSum(got.ids, got.cols));
  assert.deepEqual([...HELD.cols[2]], [10, 20]); // the base is left as it was
});

for (const [what, msg, words] of [
  ["a gone id not held", { gone: u32(3) }, "does not hold"],
  ["a gone id twice", { gone: u32(2, 2) }, "twice"],
  ["a changed id not held", { chg: [u32(3), Uint8Array.of(0), new Uint8Array(0)] }, "does not hold"],
  ["masks of the wrong size", { chg: [u32(7), Uint8Array.of(0, 0), new Uint8Array(0)] }, "masks"],
  ["a mask bit past the columns", { chg: [u32(7), Uint8Array.of(0b1000000), new Uint8Array(0)] }, "past the last column"],
  ["values shorter than the masks say", { chg: [u32(7), Uint8Array.of(0b11), new Uint8Array(0)] }, "shorter"],
  ["values longer than the masks say", { chg: [u32(7), Uint8Array.of(0), Uint8Array.of(1)] }, "longer"],
  ["an added id held already", { add: (() => { const r = new Uint8Array(11); r[0] = 7; return r; })() }, "holds"],
  ["records of the wrong size", { add: new Uint8Array(10) }, "records"],
]) {
  test(`a filtered update with ${what} is a ProtocolError`, () => {
    assert.throws(() => applyView(VIEWED, HELD, { tick: 6, base: 5, ...msg }), (e) => e instanceof ProtocolError && e.message.includes(words));
  });
}

test("the server's minor version is its welcome's, 0 when it says none; a 1.0 server's refusal of hello's newer keys is recognised", () => {
  assert.equal(serverMinor({ t: "welcome", minor: 1 }), 1);
  assert.equal(serverMinor({ t: "welcome" }), 0); // a 1.0 server announces nothing
  assert.equal(serverMinor(null), 0);
  // What a 1.0 server says to `interest` / `roster_deltas` (its codec refused every unknown key).
  assert.ok(helloRefused(1007, "hello: unknown field(s) interest, roster_deltas"));
  assert.ok(!helloRefused(1007, "name: 1 to 24 printable characters without leading or trailing spaces"));
  assert.ok(!helloRefused(1002, "hello: unknown field(s) interest"));
  assert.ok(!helloRefused(1007, undefined));
});

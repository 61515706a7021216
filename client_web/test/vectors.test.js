// The browser decoder against the shared delta vectors (tests/vectors/deltas.json),
// the very file the Python decoder is tested with: same states, byte for byte.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { applyUpdate, applyView, decodeMessage, leBytes, parseSchema, ProtocolError, checksum, viewSum } from "../protocol.js";
import { Mirror } from "../world.js";

const VECTORS = JSON.parse(readFileSync(fileURLToPath(new URL("../../tests/vectors/deltas.json", import.meta.url)), "utf8"));
const b64 = (s) => new Uint8Array(Buffer.from(s, "base64"));

function sameBytes(actual, expected, what) {
  assert.equal(Buffer.compare(Buffer.from(actual), Buffer.from(expected)), 0, what);
}

for (const seq of VECTORS.sequences) {
  test(`decoder reproduces every expected state of ${seq.name}`, () => {
    const schema = parseSchema(seq.ruleset);
    const held = new Map();
    let checked = 0;
    for (const frame of seq.frames) {
      const where = `${seq.name} tick ${frame.tick} (${frame.note ?? ""})`;
      const msg = decodeMessage(b64(frame.data));
      assert.equal(msg.t, "update", where);
      const base = msg.base == null ? null : held.get(msg.base);
      assert.ok(msg.base == null || base, `${where}: base ${msg.base} not held`);
      let got = null, failure = null;
      try {
        got = (seq.filtered ? applyView : applyUpdate)(schema, base, msg);
        if (got.sum !== msg.sum) failure = "checksum";
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        failure = "invalid";
      }
      const expect = frame.expect;
      if (expect.error) {
        assert.equal(failure, expect.error, where);
        continue;
      }
      assert.equal(failure, null, `${where}: ${failure}`);
      assert.equal(got.tick, expect.tick, where);
      sameBytes(leBytes(got.ids), b64(expect.ids), `${where}: ids`);
      assert.equal(got.cols.length, expect.cols.length, where);
      got.cols.forEach((c, i) => sameBytes(leBytes(c), b64(expect.cols[i]), `${where}: column ${schema.columns[i].name}`));
      assert.equal(got.sum, expect.sum, where);
      assert.equal((seq.filtered ? viewSum : checksum)(got.ids, got.cols), expect.sum, where);
      held.set(got.tick, got);
      checked++;
    }
    assert.ok(checked > 0 || seq.frames.every((f) => f.expect.error));
  });
}

test("the mirror follows every positive sequence without a desync", () => {
  for (const seq of VECTORS.sequences) {
    if (seq.frames.some((f) => f.expect.error)) continue;
    const mirror = new Mirror(parseSchema(seq.ruleset), { keep: 1000, filtered: !!seq.filtered });
    for (const frame of seq.frames) {
      const r = mirror.apply(decodeMessage(b64(frame.data)), 0);
      assert.equal(r.status, "ok", `${seq.name} tick ${frame.tick}`);
      assert.equal(mirror.latest.sum, frame.expect.sum);
      assert.equal(mirror.ackTick(), frame.tick);
    }
    assert.equal(mirror.desyncs, 0);
  }
});

test("the mirror counts a checksum mismatch, forgets its states and asks for a keyframe once", () => {
  const seq = VECTORS.sequences.find((s) => s.name === "synthetic-errors");
  const mirror = new Mirror(parseSchema(seq.ruleset));
  const [keyframe, wrongSum, ...rest] = seq.frames;
  assert.equal(wrongSum.expect.error, "checksum");
  assert.equal(mirror.apply(decodeMessage(b64(keyframe.data)), 0).status, "ok");
  const r = mirror.apply(decodeMessage(b64(wrongSum.data)), 10);
  assert.deepEqual([r.status, r.resync], ["desync", true]);
  assert.equal(mirror.desyncs, 1);
  assert.equal(mirror.checksumOk, false);
  assert.equal(mirror.ackTick(), null);
  assert.equal(mirror.states.size, 0);
  // Deltas in flight against forgotten bases are dropped quietly for a while...
  const again = mirror.apply(decodeMessage(b64(rest[0].data)), 20);
  assert.deepEqual([again.status, again.resync], ["dropped", false]);
  // ...then asked for again; a keyframe restores the mirror.
  assert.equal(mirror.apply(decodeMessage(b64(rest[0].data)), 2000).resync, true);
  assert.equal(mirror.apply(decodeMessage(b64(keyframe.data)), 2010).status, "ok");
  assert.equal(mirror.checksumOk, true);
  assert.equal(mirror.ackTick(), keyframe.tick);
});

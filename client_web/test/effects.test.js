// A tick's events as the play page shows them: rings and texts, the kill
// feed, and who destroyed the player.

import { test } from "node:test";
import assert from "node:assert/strict";

import { Effects, KILLS_SHOWN, KILL_MS } from "../effects.js";
import { INTERP_DELAY_MS } from "../interp.js";
import { makeState, parseSchema } from "../protocol.js";

const SCHEMA = parseSchema({
  name: "t", kinds: ["player", "drone", "bullet", "pellet"],
  columns: [{ name: "kind", dtype: "uint8" }, { name: "x", dtype: "int16", scale: 8 }, { name: "y", dtype: "int16", scale: 8 }],
});
// Entity 1 and 2 players, 5 a drone, 9 a pellet.
const STATE = makeState(10, Uint32Array.from([1, 2, 5, 9]),
  [Uint8Array.from([0, 0, 1, 3]), Int16Array.from([80, 160, 240, 320]), Int16Array.from([8, 16, 24, 32])]);
const NAMES = new Map([[1, { name: "ann" }], [2, { name: "bob" }]]);
const at = { schema: SCHEMA, names: NAMES, cur: STATE, prev: null, now: 1000 };

test("a kill names both sides, rings the victim later and tells the player who got it", () => {
  const fx = new Effects();
  fx.apply([["kill", 5, 2]], { ...at, me: 2 });
  assert.deepEqual(fx.kills, [{ killer: "a drone", victim: "bob", mine: true, t: 1000 }]);
  assert.equal(fx.deathBy, "a drone");
  assert.deepEqual(fx.list, [{ x: 20, y: 2, t0: 1000 + INTERP_DELAY_MS, ms: 700, r0: 10, r1: 90, width: 6, color: "#ff6b6b" }]);
  fx.apply([["respawn", 2]], { ...at, me: 2 });
  assert.equal(fx.deathBy, null);
  assert.equal(fx.list[1].t0, 1000); // the player's own effects show at once
});

test("the player's own kill and pickup float a text; others' only a ring; unknown events are skipped", () => {
  const fx = new Effects();
  fx.apply([["kill", 1, 2], ["pickup", 1, 9], ["pickup", 2, 9], ["nonsense"], "junk", ["drone_kill", 1, 5]], { ...at, me: 1 });
  const texts = fx.list.filter((e) => e.text).map((e) => e.text);
  assert.deepEqual(texts, ["You destroyed bob!", "+1", "+5"]);
  assert.equal(fx.list.length, 6);
  assert.equal(fx.kills.length, 1);
  // Entities in neither state: a name from nowhere, no ring.
  fx.apply([["kill", 77, 78]], { ...at, me: null });
  assert.deepEqual(fx.kills.at(-1), { killer: "something", victim: "something", mine: false, t: 1000 });
  assert.equal(fx.list.length, 6);
});

test("the kill feed keeps the newest few lines for a few seconds", () => {
  const fx = new Effects();
  for (let i = 0; i < KILLS_SHOWN + 2; i++) fx.pushKill(`k${i}`, "v", false, i);
  assert.equal(fx.recentKills(10).length, KILLS_SHOWN);
  assert.equal(fx.recentKills(10)[0].killer, "k2");
  assert.deepEqual(fx.recentKills(KILL_MS + 10), []);
});

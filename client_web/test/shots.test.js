// The player's own shots in the predicted timeline (shots.js).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { parseSchema } from "../protocol.js";
import { OwnShots, shotRule } from "../shots.js";

const WALKS = JSON.parse(readFileSync(fileURLToPath(new URL("../../tests/vectors/movement.json", import.meta.url)), "utf8"));
const ARENA = parseSchema(Object.values(WALKS).find((w) => w.ruleset.name === "arena").ruleset);
const RULE = shotRule(ARENA);
const [IX, IY, IK] = ["x", "y", "kind"].map((n) => ARENA.index[n]);
const BULLET = ARENA.kinds.indexOf("bullet");

/** A state holding `ents`: [id, kind, x, y], ids ascending. */
function state(ents) {
  const cols = ARENA.columns.map(() => new Float64Array(ents.length));
  ents.forEach(([, k, x, y], i) => { cols[IK][i] = k; cols[IX][i] = x; cols[IY][i] = y; });
  return { ids: Uint32Array.from(ents.map((e) => e[0])), cols };
}

test("arena describes its shots and the rule resolves its fields", () => {
  assert.deepEqual({ ...RULE }, { button: 3, aim: 2, kind: BULLET, speed: 112, muzzle: 192, cooldown: 6, life: 40 });
  assert.equal(shotRule({ ...ARENA, shot: null }), null);
});

test("a press fires a shot at the muzzle that flies along the aim, drawn at the playhead from its input's tick", () => {
  const s = new OwnShots(RULE);
  const shot = s.sent([0, 0, 64, 1], 100, 8000, 8000, true); // aim 64: +y
  assert.ok(shot);
  const [p] = s.at(102.5);
  assert.ok(Math.abs(p.x - 8000) < 1e-6 && Math.abs(p.y - (8000 + 192 + 2.5 * 112)) < 1e-6, JSON.stringify(p));
  assert.deepEqual(s.at(99.5), []); // not fired yet at that point of the path
  assert.equal(s.at(141).length, 0); // its life is over
});

test("the gun's cooldown is counted in inputs: held, a shot every 6; dead, none", () => {
  const s = new OwnShots(RULE);
  let shots = 0;
  for (let t = 0; t < 30; t++) shots += s.sent([0, 0, 0, 1], t, 0, 0, true) ? 1 : 0;
  assert.equal(shots, 5);
  assert.equal(new OwnShots(RULE).sent([0, 0, 0, 1], 0, 0, 0, false), null);
  assert.equal(new OwnShots(RULE).sent([0, 0, 0, 0], 0, 0, 0, true), null);
});

test("the server's bullet of a shot is claimed and hidden; when it vanishes early (a hit) the shot ends with it", () => {
  const s = new OwnShots(RULE);
  s.observe(state([[5, 0, 8000, 8000]]), IX, IY, IK);
  s.sent([0, 0, 0, 1], 10, 8000, 8000, true); // aim 0: +x
  // Someone else's bullet, new, far off our line: not ours.
  s.observe(state([[5, 0, 8000, 8000], [6, BULLET, 9000, 12000]]), IX, IY, IK);
  assert.deepEqual([...s.hidden], []);
  // Ours, three ticks into its flight (a tick later than predicted: the server's queue), and a pellet.
  s.observe(state([[5, 0, 8000, 8000], [6, BULLET, 9000, 12000], [7, BULLET, 8000 + 192 + 3 * 112, 8000], [8, 3, 8100, 8000]]), IX, IY, IK);
  assert.deepEqual([...s.hidden], [7]);
  assert.equal(s.at(12).length, 1);
  // Gone from the state while its life is not over: it hit something; the predicted shot ends.
  s.observe(state([[5, 0, 8000, 8000], [6, BULLET, 9100, 12000]]), IX, IY, IK);
  assert.deepEqual([...s.hidden], []);
  assert.equal(s.at(13).length, 0);
});

test("a claimed bullet stays hidden past its predicted shot's life, until it leaves the state", () => {
  const s = new OwnShots(RULE);
  s.sent([0, 0, 0, 1], 10, 8000, 8000, true);
  s.observe(state([[7, BULLET, 8000 + 192 + 2 * 112, 8000]]), IX, IY, IK);
  assert.deepEqual(s.at(60), []); // over in the predicted timeline: not drawn
  assert.deepEqual([...s.hidden], [7]); // but the past still shows the server's copy: kept hidden
  s.observe(state([]), IX, IY, IK); // it expired
  s.at(61);
  assert.deepEqual([...s.hidden], []);
  assert.deepEqual(s.shots, []);
});

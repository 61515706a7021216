// Prediction: the movement rule against the real rulesets' walks
// (tests/vectors/movement.json), and reconciliation with the server's acks.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { parseSchema } from "../protocol.js";
import { Predictor, SNAP_DISTANCE, movementRule, stepMove } from "../predict.js";

const WALKS = JSON.parse(readFileSync(fileURLToPath(new URL("../../tests/vectors/movement.json", import.meta.url)), "utf8"));
const ARENA = parseSchema(Object.values(WALKS).find((w) => w.ruleset.name === "arena").ruleset);
const DRIFT = parseSchema(Object.values(WALKS).find((w) => w.ruleset.name === "drift").ruleset);

for (const [name, walk] of Object.entries(WALKS)) {
  test(`stepMove walks exactly like the server: ${name}`, () => {
    const rule = movementRule(parseSchema(walk.ruleset));
    let [x, y] = walk.start;
    walk.steps.forEach(([dx, dy, ex, ey], i) => {
      [x, y] = stepMove(rule, x, y, dx, dy);
      assert.deepEqual([x, y], [ex, ey], `step ${i} (${dx}, ${dy})`);
    });
  });
}

test("the rule's bounds come from the welcome's width, height and scale", () => {
  assert.deepEqual([movementRule(ARENA).maxX, movementRule(ARENA).maxY], [24000, 24000]);
  assert.deepEqual([movementRule(DRIFT).maxX, movementRule(DRIFT).maxY], [32000, 32000]);
  assert.equal(movementRule({ ...DRIFT, name: "unknown" }), null);
});

/**
 * A server in miniature: applies the newest input it has received at each tick
 * (inputs stay in force), after `latency` ticks on the way; reports (x, y, ack).
 */
function simulate({ rule, inputs, latency, start = [10000, 10000], drops = new Set(), doubles = new Set() }) {
  const p = new Predictor(rule);
  let [sx, sy] = start;
  let current = { seq: 0, dx: 0, dy: 0 };
  const inFlight = [];
  const updates = []; // server -> client, delayed
  p.reconcile(sx, sy, true, 0, 0);
  const corrections = [];
  let seq = 0;
  for (let tick = 1; tick <= inputs.length + 2 * latency + 4; tick++) {
    // The client: an update arrives (sent `latency` ticks ago), then it sends this tick's input.
    while (updates.length && updates[0].due <= tick) {
      const u = updates.shift();
      const c = p.reconcile(u.x, u.y, true, u.ack, u.tick);
      if (c) corrections.push({ tick, c });
    }
    const [dx, dy] = inputs[tick - 1] ?? [0, 0];
    seq++;
    p.push(seq, dx, dy, tick);
    if (!drops.has(seq)) inFlight.push({ seq, dx, dy, due: tick + latency });
    // The server's tick: take the newest input that has arrived (or two, when doubled).
    const arrived = inFlight.filter((m) => m.due <= tick);
    if (arrived.length) {
      current = doubles.has(tick) && arrived.length > 1 ? arrived[arrived.length - 1] : arrived[0];
      inFlight.splice(0, inFlight.indexOf(current) + 1);
    }
    [sx, sy] = stepMove(rule, sx, sy, current.dx, current.dy);
    updates.push({ x: sx, y: sy, ack: current.seq, tick, due: tick + latency });
  }
  return { p, corrections, server: [sx, sy] };
}

const wiggle = [];
for (let i = 0; i < 90; i++) wiggle.push([[1, 0], [1, 1], [0, 1], [-1, 1], [-1, 0], [0, 0], [0, -1], [1, -1]][Math.floor(i / 7) % 8]);

test("with nothing disagreeing, reconciliation never corrects (0 and 100 ms of latency)", () => {
  for (const latency of [0, 1, 3, 6]) {
    const { p, corrections, server } = simulate({ rule: movementRule(ARENA), inputs: wiggle, latency });
    assert.deepEqual(corrections, [], `latency ${latency} ticks`);
    assert.deepEqual([p.x, p.y], server);
    assert.ok(p.pending.length <= 2 * latency + 1);
  }
});

test("prediction moves at once: the input's step shows before the server acknowledges it", () => {
  const rule = movementRule(ARENA);
  const p = new Predictor(rule);
  p.reconcile(5000, 5000, true, 0);
  p.push(1, 1, 0, 1000);
  assert.deepEqual([p.x, p.y], [5048, 5000]);
  // Drawn between the two positions by the time since the input, so 144 Hz frames move smoothly.
  assert.deepEqual(p.position(1000, 33.3), { x: 5000, y: 5000 });
  assert.equal(p.position(1000 + 33.3 / 2, 33.3).x, 5024);
  assert.equal(p.position(1100, 33.3).x, 5048);
  // The server applied it: nothing changes.
  assert.equal(p.reconcile(5048, 5000, true, 1), 0);
  assert.deepEqual([p.x, p.y, p.pending.length], [5048, 5000, 0]);
});

test("a lost turn is corrected at the next update and blended away within frames", () => {
  const rule = movementRule(ARENA);
  const inputs = Array(30).fill([1, 0]);
  inputs[9] = [0, 1]; // the one step down never reaches the server: it re-applies a step right
  const { p, corrections, server } = simulate({ rule, inputs, latency: 3, drops: new Set([10]) });
  assert.ok(corrections.length >= 1 && corrections.length <= 2, JSON.stringify(corrections));
  assert.deepEqual([p.x, p.y], server);
  // The visual offset fades: after 300 ms it is gone.
  p.errX = 48;
  p.decay(16);
  assert.ok(p.errX > 0 && p.errX < 48);
  for (let i = 0; i < 20; i++) p.decay(16);
  assert.equal(p.errX, 0);
});

test("a teleport (respawn) snaps instead of blending", () => {
  const p = new Predictor(movementRule(ARENA));
  p.reconcile(1000, 1000, true, 0);
  p.push(1, 1, 0, 0);
  p.reconcile(20000, 3000, true, 1);
  assert.deepEqual([p.x, p.y, p.errX, p.errY], [20000, 3000, 0, 0]);
  assert.ok(SNAP_DISTANCE < 19000);
});

test("dead arena players stand still; drift players have no hit points to lose", () => {
  const p = new Predictor(movementRule(ARENA));
  p.reconcile(1000, 1000, false, 0);
  p.push(1, 1, 1, 0);
  assert.deepEqual([p.x, p.y], [1000, 1000]);
  const d = new Predictor(movementRule(DRIFT));
  d.reconcile(1000, 1000, false, 0);
  d.push(1, 1, 1, 0);
  assert.deepEqual([d.x, d.y], [1028, 1028]);
});

test("pending inputs are replayed on the server position after an ack", () => {
  const p = new Predictor(movementRule(DRIFT));
  p.reconcile(0, 0, true, 0);
  for (let s = 1; s <= 5; s++) p.push(s, 1, 0, s);
  assert.equal(p.x, 200);
  // The server has applied 1..2 only: 80; 3..5 replay on top.
  assert.equal(p.reconcile(80, 0, true, 2), 0);
  assert.deepEqual([p.pending.map((i) => i.seq), p.x], [[3, 4, 5], 200]);
  // The server disagrees (it was pushed to 100): the replay starts there.
  assert.equal(p.reconcile(140, 0, true, 3), 20);
  assert.equal(p.x, 220);
});

/**
 * Server tick k happens at time k; its update reaches the client at k + delay(k), where
 * the client stalls now and then (updates pile up, then arrive together) and the server
 * sometimes runs two ticks back to back (catching up). The client sends one input per
 * update. Returns the corrections and whether the prediction ends on the server.
 */
function stalls(useTicks) {
  const rule = movementRule(ARENA);
  const p = new Predictor(rule);
  let sx = 12000, sy = 12000;
  p.reconcile(sx, sy, true, 0, useTicks ? 0 : null);
  const delay = (k) => 0.3 + (k % 17 === 0 ? 2.5 : 0) + (k % 23 < 3 ? 1.2 : 0) + (k % 29 === 0 ? -0.29 : 0);
  const events = [];
  let current = { seq: 0, dx: 0, dy: 0 };
  let inbox = [];
  let seq = 0;
  let lastAt = 0;
  const corrections = [];
  for (let k = 1; k <= 240; k++) {
    // Inputs that reached the server since the last tick: the newest wins.
    const arrived = inbox.filter((m) => m.at <= k);
    inbox = inbox.filter((m) => m.at > k);
    if (arrived.length) current = arrived[arrived.length - 1];
    [sx, sy] = stepMove(rule, sx, sy, current.dx, current.dy);
    // One TCP stream: an update never overtakes the one before.
    lastAt = Math.max(lastAt, k + delay(k));
    events.push({ at: lastAt, tick: k, x: sx, y: sy, ack: current.seq });
    // The client handles every update that has arrived by now, in order, one input each.
    while (events.length && events[0].at <= k + 1) {
      const u = events.shift();
      const c = p.reconcile(u.x, u.y, true, u.ack, useTicks ? u.tick : null);
      if (c) corrections.push(c);
      seq++;
      const [dx, dy] = k < 120 ? [1, 0] : k < 190 ? [0, 1] : [0, 0];
      p.push(seq, dx, dy, u.at);
      inbox.push({ seq, dx, dy, at: u.at + 0.3 });
    }
  }
  // Keys released long ago; the last updates in.
  for (const u of events) p.reconcile(u.x, u.y, true, u.ack, useTicks ? u.tick : null);
  return { corrections, rule, exact: p.x === sx && p.y === sy };
}

test("through stalls and bursts, re-applied inputs are booked as a debt: (almost) no corrections", () => {
  // Without the tick, every stall shows: the server re-applied our last input, then skipped.
  const naive = stalls(false);
  assert.ok(naive.corrections.length > 20 && naive.corrections.every((c) => c <= 3 * naive.rule.speed));
  assert.ok(naive.exact);
  // With it, the skip is expected: only the very first input (the server's no-input
  // before it is not ours to book) and a turn inside a stall (a real disagreement) show.
  const booked = stalls(true);
  assert.ok(booked.corrections.length <= 4, `${JSON.stringify(booked.corrections)} vs ${naive.corrections.length}`);
  assert.ok(booked.exact);
});

test("a debt no skip pays back is forgotten", () => {
  const rule = movementRule(DRIFT);
  const p = new Predictor(rule);
  p.reconcile(0, 0, true, 0, 0);
  p.push(1, 1, 0, 0);
  p.reconcile(40, 0, true, 1, 1);
  // From now on the server re-applies every input once more than we sent (it never skips).
  let x = 40, seq = 1;
  for (let t = 2; t < 40; t++) {
    p.push(++seq, 1, 0, t);
    x += 40;
    p.reconcile(x, 0, true, seq - (t % 2), t);
  }
  assert.ok(p.debt <= 1);
});

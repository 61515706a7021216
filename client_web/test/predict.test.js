// Prediction: the movement rule against the real rulesets' walks
// (tests/vectors/movement.json), and reconciliation with the server's acks.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { makeState, parseSchema } from "../protocol.js";
import {
  MARGIN_WINDOW, MAX_MARGIN, PACE_SAFETY, Pacer, Prediction, Predictor, SLEW, SNAP_DISTANCE, movementRule, stepMove,
} from "../predict.js";
import { TickClock } from "../interp.js";

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

test("the rule comes from welcome.ruleset.player; no description, no prediction", () => {
  const arena = movementRule(ARENA), drift = movementRule(DRIFT);
  assert.deepEqual([arena.speed, arena.diagonal, arena.lo, arena.hi, arena.deadStill], [48, 34, 0, 24000, true]);
  assert.deepEqual([drift.speed, drift.diagonal, drift.lo, drift.hi, drift.deadStill], [40, 28, 0, 32000, false]);
  // Columns and input fields by name, wherever the schema puts them.
  assert.deepEqual([arena.x, arena.y, arena.hp, arena.dx, arena.dy], [1, 2, 6, 0, 1]);
  assert.equal(drift.hp, null);
  const desc = Object.values(WALKS).find((w) => w.ruleset.name === "drift").ruleset;
  const { player, ...bare } = desc;
  assert.equal(movementRule(parseSchema(bare)), null);
  assert.equal(movementRule(parseSchema({ ...desc, name: "unknown" })).speed, 40); // not keyed by name
  // A description this client cannot use: no prediction rather than a wrong one.
  for (const bad of [{ dx: "nope" }, { x: "nope" }, { speed: 4.5 }, { lo: 10, hi: 0 }, { dead_still: true, hp: "gone" }]) {
    const columns = bad.hp ? desc.columns.filter((c) => c.name !== "hp") : desc.columns;
    assert.equal(movementRule(parseSchema({ ...desc, columns, player: { ...player, ...bad } })), null, JSON.stringify(bad));
  }
});

/**
 * A server in miniature: applies exactly one input per tick from its queue of
 * those received (the last one again when the queue is empty), after
 * `latency` ticks on the way; reports (x, y, ack). test/netcode.test.js has
 * the whole model: jitter buffer, jittery network, the page's scheduling.
 */
function simulate({ rule, inputs, latency, start = [10000, 10000], drops = new Set(), stalls = new Set() }) {
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
    // The server's tick: the oldest input that has arrived (none: the last one again).
    if (inFlight.length && inFlight[0].due <= tick && !stalls.has(tick)) current = inFlight.shift();
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
  p.reconcile(5000, 5000, true, 0, 10);
  p.push(1, 1, 0, 11);
  assert.deepEqual([p.x, p.y], [5048, 5000]);
  // Drawn along the path by the playhead's tick, so frames at any rate move smoothly.
  assert.deepEqual(p.position(10), { x: 5000, y: 5000 });
  assert.equal(p.position(10.5).x, 5024);
  assert.equal(p.position(11).x, 5048);
  assert.equal(p.position(null).x, 5048);
  // Past the newest point the input's step goes on, for one tick at most.
  assert.equal(p.position(11.5).x, 5072);
  assert.equal(p.position(14).x, 5096);
  // The server applied it: nothing changes, and with nothing pending the player stands.
  assert.equal(p.reconcile(5048, 5000, true, 1, 11), 0);
  assert.deepEqual([p.x, p.y, p.pending.length], [5048, 5000, 0]);
  assert.equal(p.position(14).x, 5048);
});

/** A deterministic generator in [0, 1). */
function lcg(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/**
 * A key held on loopback with jittered arrivals: server tick k at k * T, its update
 * arriving 1..13 ms late (now and then 15 ms more; in order, one TCP stream), one
 * input sent per update and applied by the server at the next tick (one per tick). Frames every
 * `frameMs`, drawn the way main.js draws: the predicted path at the pacer's playhead.
 */
function jittered(frameMs, { holdTicks = 200, ticks = 260 } = {}) {
  const rule = movementRule(ARENA);
  const T = 1000 / 30;
  const clock = new TickClock(T), pacer = new Pacer(T), p = new Predictor(rule);
  const rand = lcg(42);
  let sx = 2000, current = { seq: 0, dx: 0 }, inbox = [], seq = 0, lastAt = 0, k = 1;
  const arrivals = [];
  const serverTick = () => {
    if (inbox.length && inbox[0].at <= k * T) current = inbox.shift(); // one input per tick, in order
    [sx] = stepMove(rule, sx, 3000, current.dx, 0);
    lastAt = Math.max(lastAt, k * T + 1 + 12 * rand() + (k % 37 === 0 ? 15 : 0));
    arrivals.push({ at: lastAt, tick: k, x: sx, ack: current.seq });
    k++;
  };
  const frames = [], sendPaced = [];
  let last = null, prevX = null, newX = null, sentAt = 0;
  for (let f = 0; f * frameMs < ticks * T + 200; f++) {
    const now = f * frameMs;
    // Everything up to this frame, in time order.
    for (;;) {
      const tServer = k <= ticks ? k * T : Infinity, tArrival = arrivals.length ? arrivals[0].at : Infinity;
      if (Math.min(tServer, tArrival) > now) break;
      if (tServer <= tArrival) { serverTick(); continue; }
      const u = arrivals.shift();
      clock.observe(u.tick, u.at);
      pacer.observe(clock.tickAt(u.at) - u.tick);
      p.reconcile(u.x, 3000, true, u.ack, u.tick);
      const dx = u.tick <= holdTicks ? 1 : 0;
      prevX = p.x;
      p.push(++seq, dx, 0, u.tick);
      newX = p.x; sentAt = u.at;
      inbox.push({ seq, dx, at: u.at + 1 });
    }
    if (clock.tickAt(now) == null) continue;
    p.decay(last == null ? frameMs : now - last);
    last = now;
    frames.push({ now, x: p.position(pacer.at(now, clock.tickAt(now))).x });
    // What pacing by send times drew: the newest step spread over a tick since it was sent.
    sendPaced.push(prevX + (newX - prevX) * Math.min(1, (now - sentAt) / T));
  }
  return { frames, sendPaced, p, server: sx, T, holdTicks };
}

for (const hz of [60, 144]) {
  test(`with jittered arrivals the player's own drawn steps stay steady (${hz} Hz)`, () => {
    const frameMs = 1000 / hz;
    const { frames, sendPaced, p, server, T, holdTicks } = jittered(frameMs);
    const expected = (48 * frameMs) / T; // 24 units a frame at 60 Hz
    // While the key is held (after a second to settle the clock), from frame to frame.
    const held = (f) => f.now > 1000 && f.now < holdTicks * T;
    const steps = [];
    for (let i = 1; i < frames.length; i++) if (held(frames[i - 1]) && held(frames[i])) steps.push(frames[i].x - frames[i - 1].x);
    assert.ok(steps.length > 100);
    const lo = Math.min(...steps), hi = Math.max(...steps);
    assert.ok(lo >= expected * (1 - SLEW) - 0.01 && hi <= expected * (1 + SLEW) + 0.01, `steps ${lo}..${hi}, expected ${expected}`);
    // The same arrivals paced by send times: every late update is a visible hitch.
    const old = [];
    for (let i = 1; i < frames.length; i++) if (held(frames[i - 1]) && held(frames[i])) old.push(sendPaced[i] - sendPaced[i - 1]);
    assert.ok(Math.min(...old) < expected * 0.7 || Math.max(...old) > expected * 1.3, "the scenario has no jitter to smooth");
    // Never a step back, not even when the key is let go.
    for (let i = 1; i < frames.length; i++) assert.ok(frames[i].x >= frames[i - 1].x, `frame ${i}: ${frames[i - 1].x} -> ${frames[i].x}`);
    // Reconciliation is untouched: nothing disagreed, and the player ends where the server has it.
    assert.equal(p.corrections, 0);
    assert.equal(frames[frames.length - 1].x, server);
  });
}

test("the pacer's margin covers the latest recent arrival, and forgets it after a while", () => {
  const pacer = new Pacer(1000 / 30);
  pacer.observe(0.2);
  assert.equal(pacer.margin, 0.2);
  pacer.observe(0.6);
  for (let i = 0; i < MARGIN_WINDOW - 1; i++) pacer.observe(0.1);
  assert.equal(pacer.margin, 0.6);
  pacer.observe(0.1);
  assert.equal(pacer.margin, 0.1);
  pacer.observe(100);
  assert.equal(pacer.margin, MAX_MARGIN);
  // The playhead follows its target at a bounded rate, and jumps when far off.
  const q = new Pacer(10);
  assert.equal(q.at(0, null), null);
  const h0 = q.at(0, 100);
  const h1 = q.at(10, 102); // the target moved 2 ticks in 1 tick of time
  assert.ok(Math.abs(h1 - h0 - (1 + SLEW)) < 1e-9, `${h1 - h0}`);
  assert.equal(q.at(5, 102), h1); // time never runs backwards
  assert.equal(q.at(20, 200), 200 - 1 - q.margin - PACE_SAFETY);
});

test("a lost turn is corrected at the next updates and blended away within frames", () => {
  const rule = movementRule(ARENA);
  const inputs = Array(30).fill([1, 0]);
  inputs[9] = [0, 1]; // the one step down never reaches the server
  const { p, corrections, server } = simulate({ rule, inputs, latency: 3, drops: new Set([10]) });
  // Two disagreements: the tick it was due repeats the step right before it, and the ack then skips it.
  assert.equal(corrections.length, 2, JSON.stringify(corrections));
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

test("a tick that repeats our last input (none queued) is one correction; the replay lands on the server", () => {
  const rule = movementRule(ARENA);
  const inputs = Array(40).fill([1, 0]);
  // The server's queue is empty at ticks 12 and 20 (our input late): it moves us with the last one again.
  const { p, corrections, server } = simulate({ rule, inputs, latency: 2, stalls: new Set([12, 20]) });
  assert.equal(corrections.length, 2, JSON.stringify(corrections));
  assert.deepEqual([p.x, p.y], server);
  // Standing still, a repeat changes nothing and is no correction.
  const still = simulate({ rule, inputs: Array(40).fill([0, 0]), latency: 2, stalls: new Set([12, 20]) });
  assert.equal(still.corrections.length, 0);
});

test("a correction is the state for input `ack` disagreeing, not the replay of what the server has not applied", () => {
  const p = new Predictor(movementRule(DRIFT));
  p.reconcile(0, 0, true, 0, 0);
  for (let s = 1; s <= 3; s++) p.push(s, 1, 0, s);
  assert.deepEqual(p.pending.map((i) => [i.seq, i.x]), [[1, 40], [2, 80], [3, 120]]);
  // Input 1 applied where predicted: nothing to correct.
  p.reconcile(40, 0, true, 1, 1);
  assert.deepEqual([p.corrections, p.reconciled], [0, 1]);
  // Input 2 applied, but something pushed us 10 further: one correction, and the replay moves on from there.
  p.reconcile(90, 0, true, 2, 2);
  assert.deepEqual([p.corrections, p.lastCorrection, p.x, p.pending.map((i) => i.x)], [1, 10, 130, [130]]);
  // The next tick agrees with the corrected prediction: no second correction.
  p.reconcile(130, 0, true, 3, 3);
  assert.deepEqual([p.corrections, p.reconciled], [1, 3]);
});

test("the updates of one backlog, processed back to back, are one correction", () => {
  const p = new Predictor(movementRule(DRIFT));
  p.reconcile(0, 0, true, 1, 1);
  p.push(2, 1, 0, 1);
  // Frozen: the server ran out of our inputs and repeated input 1 (a step right) every tick.
  const backlog = { tick: 2, updates: 0 };
  for (let t = 2; t <= 20; t++) p.reconcile(40 * (t - 1), 0, true, 1, t, backlog);
  assert.equal(p.corrections, 1);
  // A later disagreement outside it counts again.
  p.reconcile(2000, 0, true, 2, 21);
  assert.equal(p.corrections, 2);
});

/** An arena state with one player (entity `id`) at (x, y) with `hp`, beside a pellet. */
function arenaState(tick, id, x, y, hp) {
  const row = { kind: 0, x, y, vx: 0, vy: 0, aim: 0, hp, score: 0 };
  const pellet = { kind: 3, x: 100, y: 100, vx: 0, vy: 0, aim: 0, hp: 0, score: 0 };
  const rows = id < 50 ? [row, pellet] : [pellet, row];
  return makeState(tick, Uint32Array.from(id < 50 ? [id, 50] : [50, id]), ARENA.columns.map((c) => c.Array.from(rows.map((r) => r[c.name]))));
}

test("a page predicts only a player of a ruleset that describes its movement", () => {
  assert.equal(Prediction.forWelcome(ARENA, null, 1000 / 30), null);
  const { player, ...bare } = Object.values(WALKS).find((w) => w.ruleset.name === "arena").ruleset;
  assert.equal(Prediction.forWelcome(parseSchema(bare), 7, 1000 / 30), null);
  assert.ok(Prediction.forWelcome(ARENA, 7, 1000 / 30) instanceof Prediction);
});

test("the page's prediction reconciles with its entity's row, books inputs sent and says where to draw", () => {
  const p = Prediction.forWelcome(ARENA, 7, 1000 / 30);
  assert.equal(p.position(), null);
  assert.equal(p.observe(arenaState(10, 99, 0, 0, 100), 0, 0), null); // not in this state
  assert.equal(p.observe(arenaState(10, 7, 5000, 6000, 100), 0, 0), true);
  assert.deepEqual(p.position(), { x: 5000, y: 6000 });
  const values = [1, -1, 0, 0]; // dx, dy, aim, fire
  p.sent(1, values, 10);
  assert.deepEqual([p.predictor.x, p.predictor.y], [5034, 5966]);
  // The server applied it: no correction; then the player dies and stands still (dead_still).
  assert.equal(p.observe(arenaState(11, 7, 5034, 5966, 100), 1, 0.2), true);
  assert.equal(p.observe(arenaState(12, 7, 5034, 5966, 0), 1, 0.2), false);
  assert.equal(p.alive, false);
  p.sent(2, values, 12);
  assert.deepEqual([p.predictor.x, p.predictor.y], [5034, 5966]);
  assert.equal(p.predictor.corrections, 0);
  // Frames: the pacer runs on the clock's reading.
  const at = p.frame(16, 1000, 14);
  assert.deepEqual(at, { x: 5034, y: 5966 });
  assert.ok(p.pacer.head != null);
});

// The page's netcode as a whole, in simulated time: when inputs go out and
// latched buttons (input.js), the tick clock's backlogs (interp.js) and the
// reconciliation (predict.js), against a model of the exactly-once server of
// PROTOCOL.md (`input`): a per-player queue that applies one input per tick
// in `seq` order; an empty queue repeats the last input with its axes and
// buttons at rest (`kind` of `welcome.ruleset.inputs`: the player stands still
// and presses nothing; counted as starved; `ack` stays), which makes the queue
// one deeper from then on (the late input is applied a tick later, and so is
// every one after it); past its
// capacity the oldest input is dropped (counted). (The server also trims a
// queue that stayed deeper than its jitter needs for 10 s: a drop like an
// overflow, left out here.) Both directions are one TCP stream each: in order, delayed, with
// jitter. The page is the play page's loop (main.js) without the DOM: one
// input per update it processes, a timer every 10 ms, and a page that can be
// busy or frozen (its events wait, then run back to back).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { parseSchema } from "../protocol.js";
import { InputScheduler, Latch } from "../input.js";
import { STALE_TICKS, TickClock } from "../interp.js";
import { Predictor, movementRule, stepMove } from "../predict.js";

const WALKS = JSON.parse(readFileSync(fileURLToPath(new URL("../../tests/vectors/movement.json", import.meta.url)), "utf8"));
const RULE = movementRule(parseSchema(Object.values(WALKS).find((w) => w.ruleset.name === "arena").ruleset));
const T = 1000 / 30;
/** Arena's gun: ticks between two shots (game/arena/spec.py FIRE_COOLDOWN). */
const COOLDOWN = 6;

/** A deterministic generator in [0, 1). */
function lcg(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** The server's input queue for one player, as the protocol specifies it. */
class InputQueue {
  /** `rest`: false repeats a starved tick's input whole, buttons and all (the rule before the fields' kinds). */
  constructor({ capacity = 8, rest = true } = {}) {
    this.capacity = capacity;
    this.rest = rest;
    this.queue = [];
    this.last = { seq: 0, dx: 0, dy: 0, fire: 0 };
    this.newest = 0;
    Object.assign(this, { applied: 0, starved: 0, dropped: 0, deepest: 0 });
  }

  receive(input) {
    if (input.seq <= this.newest) return;
    this.newest = input.seq;
    this.queue.push(input);
    if (this.queue.length > this.capacity) { this.queue.shift(); this.dropped++; }
    this.deepest = Math.max(this.deepest, this.queue.length);
  }

  /** The input this tick applies. */
  tick() {
    if (!this.queue.length) {
      if (this.applied) this.starved++;
      if (this.rest) this.last = { ...this.last, dx: 0, dy: 0, fire: 0 }; // axes and buttons rest
      return this.last;
    }
    this.applied++;
    return (this.last = this.queue.shift());
  }
}

/** One direction of a TCP connection: in order, `base` ms late give or take `jitter`. */
class Stream {
  constructor(base, jitter, rand) {
    Object.assign(this, { base, jitter, rand });
    this.lastAt = 0;
  }

  arrival(sentAt) {
    this.lastAt = Math.max(this.lastAt, sentAt + this.base + this.jitter * (2 * this.rand() - 1));
    return this.lastAt;
  }
}

/**
 * Play for `seconds`. `intent(t)`: {dx, dy} the keys hold at page time t;
 * `presses`: [down, up] times of the fire button; `pageBusy` / `serverBusy`:
 * [from, to] windows when the page's events (or the server's ticks) wait;
 * `oneInputPerUpdate`: a page without the backlog rule (sends for every update);
 * `latched`: false sends the button's state at the moment of sending;
 * `ackSkew`: a page that misreads `ack` by that much (a wrong rule); `rest`: false, a server that repeats a
 * starved tick's input whole; `depth`: a server of protocol minor 2 whose queue aims at that depth, each update
 * saying the `surplus` beyond it (before the tick's input is taken), which the page skips (main.js, `Skips`);
 * `skipLate`: a server that skips the ticks it is more than 3 late for instead of running them all (the real
 * ticker: its ticks are numbered by the simulation, so its updates come later than before from then on).
 */
function play({
  seconds = 20, oneWay = 1, jitter = 0.5, seed = 1, intent = () => ({ dx: 0, dy: 0 }), presses = [],
  pageBusy = [], serverBusy = [], oneInputPerUpdate = false, latched = true, ackSkew = 0, rest = true, depth = null,
  skipLate = false,
}) {
  const rand = lcg(seed);
  const down = new Stream(oneWay, jitter, rand), up = new Stream(oneWay, jitter, rand);
  const queue = new InputQueue({ rest }), predictor = new Predictor(RULE), clock = new TickClock(T, { staleTicks: STALE_TICKS });
  const scheduler = new InputScheduler(T), fire = new Latch();
  const server = { x: 12000, y: 12000, cooldown: 0, shots: 0, ticks: 0 };
  const page = { seq: 0, updates: 0, sent: [], held: false, queued: [] };
  predictor.reconcile(server.x, server.y, true, 0, 0);
  const events = []; // {at, order, run}
  let order = 0;
  const at = (time, run) => events.push({ at: time, order: order++, run });
  const waitFor = (windows, time) => {
    for (const [a, b] of windows) if (time >= a && time < b) return b;
    return time;
  };
  // The page: every event of its own waits while it is busy, then runs in order.
  let pageFree = 0;
  const onPage = (time, run) => at(time, () => {
    const start = Math.max(waitFor(pageBusy, time), pageFree);
    if (start > time) { at(start, () => { pageFree = start + 0.05; run(start); }); return; }
    pageFree = time + 0.05;
    run(time);
  });
  const send = (now, tick) => {
    const { dx, dy } = intent(now);
    const input = { seq: ++page.seq, dx, dy, fire: latched ? fire.take() : (page.held ? 1 : 0) };
    predictor.push(input.seq, dx, dy, tick);
    page.sent.push(now);
    at(up.arrival(now), () => queue.receive(input));
  };
  const update = (u) => (now) => {
    page.updates++;
    const stale = clock.observe(u.tick, now);
    const answer = scheduler.onUpdate(u.tick, now, stale) || oneInputPerUpdate;
    scheduler.skips.observe(u.ack, u.surplus);
    predictor.reconcile(u.x, u.y, true, u.ack + ackSkew, u.tick, scheduler.backlog);
    if (answer && scheduler.skips.skip(page.seq + 1)) { page.seq++; scheduler.sent(now); } // numbered, not sent
    else if (answer) { send(now, u.tick); scheduler.sent(now); }
  };
  // The server: tick k due at k T, later while it is busy (then the late ticks run back to back).
  let serverFree = 0, sim = 0;
  const ticks = Math.round((seconds * 1000) / T);
  for (let due = 1; due <= ticks; due++) {
    at(due * T, () => {
      const time = Math.max(waitFor(serverBusy, due * T), serverFree);
      if (skipLate && time - due * T > 3 * T) return; // skipped: never run, never numbered
      serverFree = time + 0.02;
      at(time, () => {
        const k = ++sim;
        const surplus = depth == null ? undefined : Math.max(0, queue.queue.length - depth);
        const input = queue.tick();
        if (queue.applied) server.ticks++;
        [server.x, server.y] = stepMove(RULE, server.x, server.y, input.dx, input.dy);
        server.cooldown = Math.max(server.cooldown - 1, 0);
        if (input.fire && server.cooldown === 0) { server.shots++; server.cooldown = COOLDOWN; }
        onPage(down.arrival(time), update({ tick: k, x: server.x, y: server.y, ack: input.seq, surplus }));
        page.queued.push(queue.queue.length);
      });
    });
  }
  for (let t = 5; t < ticks * T; t += 10) {
    onPage(t, (now) => { const k = scheduler.onTimer(now); if (k != null) { send(now, k); scheduler.sent(now); } });
  }
  for (const [d, u] of presses) {
    onPage(d, () => { fire.press(); page.held = true; });
    onPage(u, () => { fire.release(); page.held = false; });
  }
  for (let i = 0; i < events.length; i++) {
    // The earliest event next (ties in the order they were made).
    let best = i;
    for (let j = i + 1; j < events.length; j++) {
      const a = events[j], b = events[best];
      if (a.at < b.at || (a.at === b.at && a.order < b.order)) best = j;
    }
    [events[i], events[best]] = [events[best], events[i]];
    events[i].run();
  }
  return { predictor, queue, server, page, scheduler, exact: predictor.x === server.x && predictor.y === server.y };
}

/** Keys that change every few ticks, with pauses, and stop for the last two seconds. */
function wiggle(seconds) {
  const dirs = [[1, 0], [1, 1], [0, 1], [0, 0], [-1, 1], [-1, 0], [-1, -1], [0, 0], [0, -1], [1, -1]];
  return (t) => {
    if (t > (seconds - 2) * 1000) return { dx: 0, dy: 0 };
    const [dx, dy] = dirs[Math.floor(t / 230) % dirs.length];
    return { dx, dy };
  };
}

test("the model server applies one input per tick in order, rests the last when starved and drops the oldest past capacity", () => {
  const q = new InputQueue({ capacity: 3 });
  const i = (seq) => ({ seq, dx: seq % 2, dy: 1, fire: 1 });
  assert.equal(q.tick().seq, 0); // nothing yet: neutral, not counted
  q.receive(i(1)); q.receive(i(2)); q.receive(i(2)); // a repeated seq is ignored
  assert.deepEqual([q.tick().seq, q.tick().seq], [1, 2]);
  assert.deepEqual([q.tick(), q.starved], [{ seq: 2, dx: 0, dy: 0, fire: 0 }, 1]); // dry: the last, at rest
  for (const s of [3, 4, 5, 6]) q.receive(i(s));
  assert.deepEqual([q.dropped, q.tick().seq], [1, 4]);
});

test("on loopback every input is applied exactly once: no correction over 20 s of play", () => {
  const r = play({ seconds: 20, oneWay: 1, jitter: 0.8, intent: wiggle(20) });
  assert.equal(r.predictor.corrections, 0);
  assert.deepEqual([r.queue.starved, r.queue.dropped], [0, 0]);
  assert.equal(r.page.sent.length, r.page.updates); // one input per update
  assert.ok(r.exact);
  assert.ok(r.server.ticks > 550);
  // The count is a real check: misreading the ack by one disagrees at every change of the keys (87
  // here), at updates that applied one input per tick: corrections nothing on the server explains.
  const wrong = play({ seconds: 20, oneWay: 1, jitter: 0.8, intent: wiggle(20), ackSkew: -1 }).predictor;
  assert.ok(wrong.corrections > 50 && wrong.unexplained === wrong.corrections, `${wrong.corrections} ${wrong.unexplained}`);
});

test("a busy page and a busy server cost a few starved ticks while the queue grows, then none", () => {
  // The page stalls 40-90 ms every 1.3 s; the server runs 30-70 ms late every 1.7 s.
  const pageBusy = [], serverBusy = [];
  for (let t = 700; t < 18000; t += 1300) pageBusy.push([t, t + 40 + (t % 50)]);
  for (let t = 1100; t < 18000; t += 1700) serverBusy.push([t, t + 30 + (t % 40)]);
  const r = play({ seconds: 20, oneWay: 1, jitter: 0.8, intent: wiggle(20), pageBusy, serverBusy });
  // A starved tick stands the player still: the inputs still to apply land where they were predicted, so
  // the starved ticks cost no correction.
  assert.equal(r.predictor.corrections, 0, `${r.predictor.corrections} corrections, ${r.queue.starved} starved`);
  assert.ok(r.queue.starved >= 1 && r.queue.starved <= 6, `${r.queue.starved} starved`);
  assert.equal(r.queue.dropped, 0);
  assert.ok(r.exact);
});

for (const [oneWay, jitter] of [[50, 15], [100, 30]]) {
  test(`through ${oneWay} ms ± ${jitter} ms each way corrections stay under 1% of ticks`, () => {
    for (const seed of [1, 2, 3]) {
      const r = play({ seconds: 20, oneWay, jitter, seed, intent: wiggle(20) });
      const { corrections } = r.predictor, { starved, dropped } = r.queue;
      // The queue starves a few times while it grows to cover the jitter; a starved tick stands the player
      // still, which the prediction of the inputs after it does not feel: no correction at all.
      assert.equal(corrections, 0, `seed ${seed}: ${JSON.stringify({ corrections, starved, dropped })}`);
      assert.ok(starved < 0.01 * r.server.ticks && dropped === 0, JSON.stringify({ starved, dropped }));
      assert.ok(r.exact);
      // Repeating the starved tick's movement instead, each of those ticks is a correction.
      const repeat = play({ seconds: 20, oneWay, jitter, seed, intent: wiggle(20), rest: false });
      assert.ok(repeat.predictor.corrections <= repeat.queue.starved && repeat.predictor.unexplained === 0);
    }
  });
}

test("a page frozen for 2 s answers the backlog with one input and plays on", () => {
  const hold = () => ({ dx: 1, dy: 0 });
  const r = play({ seconds: 8, oneWay: 5, jitter: 2, intent: (t) => (t < 6000 ? hold() : { dx: 0, dy: 0 }), pageBusy: [[3000, 5000]] });
  const burst = r.page.sent.filter((t) => t >= 5000 && t < 5000 + T / 2);
  assert.equal(burst.length, 1, `${burst.length} inputs in the burst`);
  assert.deepEqual(r.scheduler.lastBacklog.updates >= 55, true, JSON.stringify(r.scheduler.lastBacklog));
  // The server repeated our last input while we were frozen: that is one disagreement; nothing is dropped.
  assert.equal(r.queue.dropped, 0);
  assert.equal(r.predictor.corrections, 0); // it stood still meanwhile: what we sent lands as predicted
  // After it, one input per tick again, and the prediction ends on the server.
  const after = r.page.sent.filter((t) => t >= 5100 && t < 7900).length;
  assert.ok(Math.abs(after - 2800 / T) <= 2, `${after}`);
  assert.ok(r.exact);
  // A page that answered every queued update would flood the server's queue past its capacity.
  const naive = play({ seconds: 8, oneWay: 5, jitter: 2, intent: hold, pageBusy: [[3000, 5000]], oneInputPerUpdate: true });
  assert.ok(naive.queue.dropped > 40, `${naive.queue.dropped}`);
});

test("presses are never lost: ten instant presses fire ten times, a press shorter than a tick once, holding at the gun's rate", () => {
  // Ten presses of 1 ms, 250 ms apart (past the 200 ms cooldown), at every phase of the tick.
  const taps = Array.from({ length: 10 }, (_, i) => [1000 + 250 * i + 3.3 * i, 1001 + 250 * i + 3.3 * i]);
  for (const oneWay of [1, 50]) {
    const r = play({ seconds: 5, oneWay, jitter: oneWay / 5, presses: taps });
    assert.equal(r.server.shots, 10, `${oneWay} ms`);
    // Sent as the state of the moment instead of latched, nearly all of them are lost.
    assert.ok(play({ seconds: 5, oneWay, jitter: oneWay / 5, presses: taps, latched: false }).server.shots <= 1);
  }
  const one = play({ seconds: 2, presses: [[1000.5, 1005]] });
  assert.equal(one.server.shots, 1);
  // Held for 1 s (30 ticks): a shot every 6 ticks.
  const held = play({ seconds: 3, presses: [[1000, 2000]] });
  assert.ok(held.server.shots === 5 || held.server.shots === 6, `${held.server.shots}`);
});

test("a press followed by a long starve fires once: a starved tick rests the buttons, and movement replays exactly", () => {
  // A 1 ms press; the page freezes from just after the input carrying it went out, for 1.5 s (45 ticks the
  // server applies nothing new: seven gun cycles).
  const hold = (t) => (t < 3000 ? { dx: 1, dy: 0 } : { dx: 0, dy: 0 });
  const r = play({ seconds: 4, intent: hold, presses: [[1002, 1003]], pageBusy: [[1040, 2540]] });
  assert.ok(r.queue.starved >= 40, `${r.queue.starved}`);
  assert.equal(r.server.shots, 1);
  assert.equal(r.predictor.corrections, 0);
  assert.ok(r.exact);
  // A server repeating the starved ticks' input whole fires the one press again every cycle, and walks on.
  const repeat = play({ seconds: 4, intent: hold, presses: [[1002, 1003]], pageBusy: [[1040, 2540]], rest: false });
  assert.ok(repeat.server.shots >= 6, `${repeat.server.shots}`);
  assert.ok(repeat.predictor.corrections >= 1);
});

test("a page told the server's surplus skips as many sends: the stalls' extra ticks of queue are given back, nothing lost", () => {
  // The page stalls 100-130 ms every 1.1 s (each stall's updates answered one each when it ends, the server's
  // queue starving meanwhile), so the queue gets as deep as the longest stall and stays so.
  const pageBusy = [];
  for (let t = 700; t < 18000; t += 1100) pageBusy.push([t, t + 100 + (t % 31)]);
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  const plain = play({ seconds: 20, oneWay: 1, jitter: 0.8, intent: wiggle(20), pageBusy });
  const told = play({ seconds: 20, oneWay: 1, jitter: 0.8, intent: wiggle(20), pageBusy, depth: 1 });
  for (const r of [plain, told]) {
    // Either way every input sent is applied once: the starved ticks stood the player still, no correction.
    assert.equal(r.queue.dropped, 0);
    assert.equal(r.predictor.corrections, 0);
    assert.ok(r.exact);
  }
  // Without the surplus the queue keeps the stalls' ticks (latency: 3 ticks on average in the last 10 s); told
  // it, the page skips them after each stall (no input sent for them: seq gaps), and it is back near its depth.
  const late = (r) => mean(r.page.queued.slice(-300));
  assert.ok(late(plain) >= 2.5, `${late(plain)}`);
  assert.ok(late(told) < 1.5 && told.scheduler.skips.skipped >= 10, `${late(told)} ${told.scheduler.skips.skipped}`);
  assert.equal(told.page.sent.length + told.scheduler.skips.skipped, told.page.seq);
  // A server that says nothing (minor 1): no skip.
  assert.equal(plain.scheduler.skips.skipped, 0);
});

test("after the page and the server froze together, the late updates that follow are answered within a few ticks", () => {
  // The page freezes for 5 s; 2 s into it the server freezes too, for 3 s, and skips the ticks it missed: its
  // updates come 3 s later than the page's clock expects from then on. The page resumes to a backlog of 2 s
  // (stale: answered with one input), then updates at the normal rate, each as late as the first: a lasting
  // shift, which the clock must take within a few ticks; until it does, they are stale and get no input.
  const hold = () => ({ dx: 1, dy: 0 });
  const r = play({ seconds: 14, oneWay: 5, jitter: 2, intent: hold, pageBusy: [[3000, 8000]], serverBusy: [[5000, 8000]],
    skipLate: true });
  const answered = (from, to) => r.page.sent.filter((t) => t >= from && t < to).length;
  // The backlog: one input at the resume. From 8.3 s on (the backlog processed, a few ticks to see the shift)
  // every update is answered: one input per tick.
  assert.equal(answered(8000, 8000 + T / 2), 1);
  const after = answered(8300, 13800);
  assert.ok(Math.abs(after - 5500 / T) <= 2, `${after} inputs in 5.5 s, ${Math.round(5500 / T)} ticks`);
  assert.equal(r.queue.dropped, 0);
  assert.equal(r.predictor.corrections, 0);
  assert.ok(r.exact);
});

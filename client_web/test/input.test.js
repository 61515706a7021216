// Controls: angles, input fields, latched buttons, and when inputs go out.

import { test } from "node:test";
import assert from "node:assert/strict";

import { Controls, InputScheduler, Latch, angleToByte, byteToAngle, inputValues, moveFromHeld } from "../input.js";

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

/** A page in miniature for `Controls.attach`: the window and the canvas as EventTargets. */
function page() {
  const win = new EventTarget(), canvas = new EventTarget();
  Object.assign(canvas, { clientWidth: 800, getBoundingClientRect: () => ({ left: 0, top: 0 }) });
  const fire = (target, type, props = {}) => target.dispatchEvent(Object.assign(new Event(type, { cancelable: true }), props));
  return { win, canvas, fire, controls: new Controls(canvas).attach(win) };
}

test("a press and release between two sends still fires once; holding fires in every input", () => {
  const l = new Latch();
  assert.equal(l.take(), 0);
  l.press(); l.release();
  assert.equal(l.take(), 1); // pressed since the last send, though up now
  assert.equal(l.take(), 0); // and only once
  l.press("key"); l.press("key"); // a key's auto-repeat is one press
  assert.deepEqual([l.take(), l.take(), l.take()], [1, 1, 1]); // held: every input
  l.press("mouse"); l.release("key");
  assert.equal(l.take(), 1); // the mouse still holds it
  l.release("mouse");
  assert.equal(l.take(), 0);
  l.press("key"); l.releaseAll(); // focus lost right after a press: the press still goes out
  assert.deepEqual([l.take(), l.take()], [1, 0]);
});

test("ten instant Space presses, clicks and touch taps between sends are ten inputs with fire", () => {
  const { win, canvas, fire, controls } = page();
  const sent = [];
  const send = () => sent.push(controls.take(400, 300).fire);
  for (let i = 0; i < 10; i++) {
    fire(win, "keydown", { code: "Space" }); fire(win, "keyup", { code: "Space" }); send(); send();
    fire(canvas, "mousedown", { button: 0, offsetX: 500, offsetY: 300 }); fire(win, "mouseup", { button: 0 }); send(); send();
    const touch = { identifier: i, clientX: 700, clientY: 300 }; // the right half: the aiming thumb
    fire(canvas, "touchstart", { changedTouches: [touch] }); fire(canvas, "touchend", { changedTouches: [touch] }); send(); send();
  }
  assert.deepEqual(sent, Array(30).fill([1, 0]).flat());
  // A left-half touch is the move stick: no fire.
  fire(canvas, "touchstart", { changedTouches: [{ identifier: 99, clientX: 100, clientY: 300 }] });
  assert.equal(controls.take(400, 300).fire, 0);
  // Held Space: every input fires (the server's cooldown sets the rate), until released.
  fire(win, "keydown", { code: "Space" });
  assert.deepEqual([1, 2, 3].map(() => controls.take(400, 300).fire), [1, 1, 1]);
  fire(win, "keyup", { code: "Space" });
  assert.equal(controls.take(400, 300).fire, 0);
  // `intent` reads without spending: the muzzle flash may look, the next input still fires.
  fire(win, "keydown", { code: "Space" }); fire(win, "keyup", { code: "Space" });
  assert.equal(controls.intent(400, 300).fire, 1);
  assert.equal(controls.take(400, 300).fire, 1);
  controls.detach();
});

test("one input per update, updates that come together included", () => {
  const T = 1000 / 30, s = new InputScheduler(T);
  assert.equal(s.onUpdate(10, 0, false), true); s.sent(0);
  assert.equal(s.onUpdate(11, 33, false), true); s.sent(33);
  // Jitter: two updates at once are two ticks, so two inputs.
  assert.equal(s.onUpdate(12, 80, false), true); s.sent(80);
  assert.equal(s.onUpdate(13, 80.2, false), true); s.sent(80.2);
  assert.equal(s.onUpdate(13, 90, false), false); // never twice for a tick
  assert.equal(s.backlogs, 0);
});

test("a backlog (stale updates and those right behind them) is answered by one input", () => {
  const T = 1000 / 30, s = new InputScheduler(T);
  s.onUpdate(100, 0, false);
  // A page frozen for 2 s resumes: 60 updates in a burst, the early ones stale, the tail fresh.
  const sends = [];
  for (let i = 1; i <= 60; i++) sends.push(s.onUpdate(100 + i, 2000 + i * 0.3, i < 55));
  assert.equal(sends.filter(Boolean).length, 1);
  assert.equal(sends[0], true); // the first answers at once
  assert.deepEqual([s.lastBacklog.tick, s.lastBacklog.updates], [101, 60]);
  // The next update a tick later is play as usual.
  assert.equal(s.onUpdate(161, 2050, false), true);
  assert.equal(s.backlogs, 1);
  // A long frame in the middle of a backlog does not split it, as long as its updates are stale.
  assert.equal(s.onUpdate(162, 4000, true), true);
  assert.deepEqual([163, 164, 165].map((t, i) => s.onUpdate(t, 4030 + 0.3 * i, true)), [false, false, false]);
  assert.equal(s.onUpdate(166, 4040, false), false); // right behind it
  assert.equal(s.onUpdate(167, 4050, false), true); // more than half a tick after the last stale one
  assert.equal(s.onUpdate(168, 4050.5, false), true); // and from then on each its own, however bunched
  assert.deepEqual([s.backlogs, s.lastBacklog.tick, s.lastBacklog.updates], [2, 162, 5]);
});

test("a timer sends one input per tick only while updates stall and the page runs", () => {
  const T = 1000 / 30, s = new InputScheduler(T);
  s.onUpdate(50, 0, false); s.sent(0);
  const timer = (now) => { const t = s.onTimer(now); if (t != null) s.sent(now); return t; };
  assert.equal(timer(10), null);
  assert.equal(timer(100), null); // the page was not running between the checks (a check 90 ms after the last)
  for (let now = 110; now < 140; now += 10) assert.equal(timer(now), null); // 3-4 ticks: jitter, not a stall
  const claimed = [];
  for (let now = 140; now <= 300; now += 10) { const t = timer(now); if (t != null) claimed.push(t); }
  assert.deepEqual(claimed, [51, 52, 53, 54, 55]); // one per tick from 4 ticks on
  // The held updates arrive: the ticks the timer answered send nothing, the rest go on as usual.
  assert.deepEqual([51, 52, 53, 54, 55, 56].map((t) => s.onUpdate(t, 305, false)), [false, false, false, false, false, true]);
});

test("a frozen page does not take its own silence for a stall", () => {
  const T = 1000 / 30, s = new InputScheduler(T);
  s.onUpdate(50, 0, false); s.sent(0);
  assert.equal(s.onTimer(10), null);
  assert.equal(s.onTimer(2000), null); // the first check after a 2 s freeze
  assert.equal(s.onUpdate(51, 2001, true), true); // the backlog answers for it
});

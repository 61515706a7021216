// The renderer's table of looks: arena's kinds by their own functions, any
// other kind by the generic look, drawn on a recording stand-in for a canvas.

import { test } from "node:test";
import assert from "node:assert/strict";

import { GENERIC, LOOKS, Renderer, kindColor, lookFor } from "../render.js";
import { makeState, parseSchema } from "../protocol.js";
import { View, sample } from "../interp.js";

/** A 2D context that records every call (name and arguments) and every style set. */
function recordingCanvas(w = 800, h = 600) {
  const calls = [];
  const ctx = new Proxy({}, {
    get(target, prop) {
      if (prop in target) return target[prop];
      return (...args) => {
        calls.push([prop, ...args]);
        return prop === "createRadialGradient" ? { addColorStop() {} } : undefined;
      };
    },
    set(target, prop, value) {
      target[prop] = value;
      calls.push([`=${String(prop)}`, value]);
      return true;
    },
  });
  return { canvas: { clientWidth: w, clientHeight: h, getContext: () => ctx }, calls };
}

/** A scene of `kinds` ("goblin", ...) with `rows` [id, kind value, x, y] (world units), the camera on the middle. */
function scene(kinds, rows, extra = {}) {
  const schema = parseSchema({
    name: "user", width: 1000, height: 1000, kinds,
    columns: [{ name: "kind", dtype: "uint8" }, { name: "x", dtype: "int16", scale: 8 }, { name: "y", dtype: "int16", scale: 8 }],
  });
  const state = makeState(1, Uint32Array.from(rows.map((r) => r[0])),
    [Uint8Array.from(rows.map((r) => r[1])), Int16Array.from(rows.map((r) => r[2] * 8)), Int16Array.from(rows.map((r) => r[3] * 8))]);
  const view = sample(schema, { a: state, b: state, alpha: 0, ahead: 0 }, new View());
  return { schema, view, camera: { x: 500, y: 500, zoom: 1 }, me: null, mePos: null, names: new Map(), effects: [], now: 0, ...extra };
}

test("a kind the table does not know gets the generic look; arena's kinds their own", () => {
  assert.equal(lookFor("goblin"), GENERIC);
  assert.equal(lookFor("kind7"), GENERIC);
  for (const name of ["player", "drone", "bullet", "pellet"]) {
    assert.notEqual(lookFor(name), GENERIC, name);
    assert.equal(lookFor(name), LOOKS.get(name));
  }
  assert.ok(GENERIC.layer < LOOKS.get("pellet").layer && LOOKS.get("drone").layer < LOOKS.get("player").layer);
});

test("a user ruleset's kinds are drawn as circles in their colours, one path per kind", () => {
  const { canvas, calls } = recordingCanvas();
  const r = new Renderer(canvas);
  r.resize();
  r.showMinimap = false;
  r.draw(scene(["goblin", "coin"], [[1, 0, 500, 500], [2, 1, 510, 500], [3, 1, 490, 520], [4, 0, 9999, 9999]]));
  // Entity 4 is off screen: not drawn.
  assert.deepEqual(r.drawn, { goblin: 1, coin: 2 });
  const fills = calls.filter((c) => c[0] === "=fillStyle").map((c) => c[1]);
  assert.ok(fills.includes(kindColor(0)) && fills.includes(kindColor(1)), fills);
  assert.notEqual(kindColor(0), kindColor(1));
  // The goblin (layer of the generic look, kind 0) first: its colour, then its one circle, then the coins'.
  const afterGoblin = calls.slice(calls.findIndex((c) => c[0] === "=fillStyle" && c[1] === kindColor(0)));
  const firstFill = afterGoblin.findIndex((c) => c[0] === "fill");
  assert.equal(afterGoblin.slice(0, firstFill).filter((c) => c[0] === "arc").length, 1);
});

test("an unnamed kind value and the player's own entity are drawn too", () => {
  const { canvas, calls } = recordingCanvas();
  const r = new Renderer(canvas);
  r.resize();
  // Kind value 5 has no name; entity 2 is ours, drawn at its predicted position (column units) with a ring.
  r.draw(scene(["goblin"], [[1, 0, 500, 500], [2, 5, 400, 400]], { me: 2, mePos: { x: 420 * 8, y: 400 * 8 } }));
  assert.deepEqual(r.drawn, { goblin: 1, kind5: 1 });
  const arcs = calls.filter((c) => c[0] === "arc");
  // World (420, 400) with the camera on (500, 500) at zoom 1 on an 800 x 600 canvas: (320, 200).
  assert.ok(arcs.some((c) => c[1] === 320 && c[2] === 200 && c[3] === 8), arcs);
  assert.ok(arcs.some((c) => c[1] === 320 && c[2] === 200 && c[3] > 8), "the ring round our own");
});

test("arena's kinds draw with their own functions", () => {
  const { canvas, calls } = recordingCanvas();
  const r = new Renderer(canvas);
  r.resize();
  r.draw(scene(["player", "drone", "bullet", "pellet"], [[1, 0, 500, 500], [2, 1, 520, 500], [3, 2, 480, 500], [4, 3, 500, 520]]));
  assert.deepEqual(r.drawn, { player: 1, drone: 1, bullet: 1, pellet: 1 });
  // The player's name label and the drone's hexagon (six corners) are theirs alone.
  assert.ok(calls.some((c) => c[0] === "fillText" && c[1] === "#1"));
  assert.ok(calls.filter((c) => c[0] === "lineTo").length >= 10);
  assert.ok(!calls.some((c) => c[0] === "=fillStyle" && c[1] === kindColor(0)), "no generic circles");
});

test("in a filtered view, an entity fading in and a ghost fading out are drawn at their opacity, by their look", async () => {
  const { Fader } = await import("../fade.js");
  const { canvas, calls } = recordingCanvas();
  const r = new Renderer(canvas);
  r.resize();
  r.showMinimap = false;
  const s = scene(["goblin", "coin"], [[1, 0, 500, 500], [2, 1, 510, 500]]);
  // A fader that has just seen entity 2 appear, and has a ghost of entity 3 (a coin) that left at (450, 480).
  const fade = new Fader();
  fade.born.set(2, 0);
  const gone = makeState(0, Uint32Array.of(3), [Uint8Array.of(1), Int16Array.of(450 * 8), Int16Array.of(480 * 8)]);
  fade.ghosts.set(3, { state: gone, row: 0, t0: 0, tick: 0 });
  r.draw({ ...s, now: 150, fade, tickMs: 1000 / 30 });
  assert.deepEqual(r.drawn, { goblin: 1, coin: 2 });
  const alphas = calls.filter((c) => c[0] === "=globalAlpha").map((c) => c[1]);
  assert.ok(alphas.includes(0.5), alphas); // 150 ms of 300: half in, and the ghost half out
  const arcs = calls.filter((c) => c[0] === "arc");
  // The ghost (no velocity column: it stays) at world (450, 480): (350, 280) on the 800 x 600 canvas.
  assert.ok(arcs.some((c) => c[1] === 350 && c[2] === 280), arcs);
  assert.equal(alphas.at(-1), 1); // left opaque for what is drawn next
});

// Player controls: keyboard (WASD / arrows), mouse aim and fire (click or
// space), touch sticks; and the mapping of an intent onto the ruleset's input
// fields. Listeners are attached by `Controls.attach()`, never at import time,
// so the pure helpers load in Node.

/** uint8 angle (256 steps, 0 = +x, 64 = +y = screen down) of a direction in radians. */
export function angleToByte(rad) {
  return Math.round((rad * 128) / Math.PI) & 255;
}

/** Radians of a uint8 angle. */
export function byteToAngle(b) {
  return (b * Math.PI) / 128;
}

/**
 * One int per input field of the schema (`welcome.ruleset.inputs`), by name
 * (`dx`, `dy`, `aim`, `fire`; unknown fields 0), clamped to the field's range.
 */
export function inputValues(fields, intent) {
  return fields.map((f) => {
    let v = intent[f.name];
    if (typeof v === "boolean") v = v ? 1 : 0;
    v = Number.isFinite(v) ? Math.round(v) : 0;
    return v < f.lo ? f.lo : v > f.hi ? f.hi : v;
  });
}

const KEYMAP = {
  KeyW: "up", ArrowUp: "up", KeyS: "down", ArrowDown: "down",
  KeyA: "left", ArrowLeft: "left", KeyD: "right", ArrowRight: "right",
  KeyZ: "up", KeyQ: "left", // AZERTY layouts (by key position these are W/A)
};

/** (dx, dy) in -1..1 from the set of held directions. */
export function moveFromHeld(held) {
  return {
    dx: (held.has("right") ? 1 : 0) - (held.has("left") ? 1 : 0),
    dy: (held.has("down") ? 1 : 0) - (held.has("up") ? 1 : 0),
  };
}

/**
 * When to send the next input: exactly once per server update received. That
 * keeps our inputs in step with the server's ticks whatever the local timers
 * do, and keeps their count equal to the number of ticks even through a stall:
 * while nothing arrives the server re-applies our last input, and the burst
 * of inputs we send when the updates flood in makes it skip as many, so a
 * held key ends up exactly where the prediction put it. Only when updates stop
 * for several ticks (a downlink stall) does a timer send inputs, so the server
 * still learns of changed keys.
 */
export class InputScheduler {
  constructor(tickMs) {
    this.tickMs = tickMs;
    this.lastSent = -Infinity;
    this.lastUpdate = -Infinity;
  }

  /** An update arrived at `now`: send an input now? */
  onUpdate(now) {
    this.lastUpdate = now;
    return true;
  }

  /** A periodic check at `now`: send an input anyway (updates stalled)? */
  onTimer(now) {
    return now - this.lastUpdate > this.tickMs * 4 && now - this.lastSent >= this.tickMs;
  }

  sent(now) {
    this.lastSent = now;
  }
}

/** Keyboard, mouse and touch state of one page. */
export class Controls {
  constructor(canvas) {
    this.canvas = canvas;
    this.held = new Set();
    this.mouse = { x: 0, y: 0, seen: false, down: false };
    this.fireKey = false;
    this.touch = { move: null, aim: null };
    this.aimAngle = 0;
    /** True once a touch was seen: the page shows touch hints. */
    this.touched = false;
    /** Spectator keys: a callback (action) for next / prev / whole arena. */
    this.onAction = null;
    this._handlers = [];
  }

  attach(win = window) {
    const on = (target, type, fn, opts) => {
      target.addEventListener(type, fn, opts);
      this._handlers.push([target, type, fn, opts]);
    };
    const typing = (e) => e.target && (e.target.tagName === "INPUT" || e.target.tagName === "TEXTAREA");
    on(win, "keydown", (e) => {
      if (typing(e)) return;
      const dir = KEYMAP[e.code];
      if (dir) { this.held.add(dir); e.preventDefault(); }
      if (e.code === "Space") { this.fireKey = true; e.preventDefault(); }
      const action = { Tab: e.shiftKey ? "prev" : "next", KeyE: "next", BracketRight: "next", BracketLeft: "prev",
        KeyV: "arena", Digit0: "arena", KeyM: "minimap", KeyH: "help", Escape: "escape" }[e.code];
      if (action && this.onAction) {
        if (e.code === "Tab") e.preventDefault();
        if (!e.repeat) this.onAction(action, e);
      }
    });
    on(win, "keyup", (e) => {
      const dir = KEYMAP[e.code];
      if (dir) this.held.delete(dir);
      if (e.code === "Space") this.fireKey = false;
    });
    on(win, "blur", () => this.releaseAll());
    on(win, "visibilitychange", () => this.releaseAll());
    on(this.canvas, "mousemove", (e) => { this.mouse.x = e.offsetX; this.mouse.y = e.offsetY; this.mouse.seen = true; });
    on(this.canvas, "mousedown", (e) => { if (e.button === 0) this.mouse.down = true; this.mouse.x = e.offsetX; this.mouse.y = e.offsetY; this.mouse.seen = true; });
    on(win, "mouseup", (e) => { if (e.button === 0) this.mouse.down = false; });
    on(this.canvas, "contextmenu", (e) => e.preventDefault());
    const touchPoint = (t) => {
      const r = this.canvas.getBoundingClientRect();
      return { id: t.identifier, x0: t.clientX - r.left, y0: t.clientY - r.top, x: t.clientX - r.left, y: t.clientY - r.top };
    };
    on(this.canvas, "touchstart", (e) => {
      e.preventDefault();
      this.touched = true;
      for (const t of e.changedTouches) {
        const p = touchPoint(t);
        if (p.x < this.canvas.clientWidth / 2) { if (!this.touch.move) this.touch.move = p; }
        else if (!this.touch.aim) this.touch.aim = p;
      }
    }, { passive: false });
    on(this.canvas, "touchmove", (e) => {
      e.preventDefault();
      for (const t of e.changedTouches) {
        const p = touchPoint(t);
        for (const k of ["move", "aim"]) if (this.touch[k] && this.touch[k].id === t.identifier) { this.touch[k].x = p.x; this.touch[k].y = p.y; }
      }
    }, { passive: false });
    const end = (e) => {
      for (const t of e.changedTouches) for (const k of ["move", "aim"]) if (this.touch[k] && this.touch[k].id === t.identifier) this.touch[k] = null;
    };
    on(this.canvas, "touchend", end);
    on(this.canvas, "touchcancel", end);
    return this;
  }

  detach() {
    for (const [t, type, fn, opts] of this._handlers) t.removeEventListener(type, fn, opts);
    this._handlers.length = 0;
  }

  releaseAll() {
    this.held.clear();
    this.fireKey = false;
    this.mouse.down = false;
    this.touch.move = this.touch.aim = null;
  }

  /**
   * The current intent. `px, py`: the player's position on the canvas (CSS
   * pixels), to aim the mouse from.
   * @returns {{dx: number, dy: number, aim: number, fire: number}}
   */
  intent(px, py) {
    let { dx, dy } = moveFromHeld(this.held);
    const tm = this.touch.move;
    if (tm) {
      const ox = tm.x - tm.x0, oy = tm.y - tm.y0;
      const dead = 12;
      dx = ox > dead ? 1 : ox < -dead ? -1 : 0;
      dy = oy > dead ? 1 : oy < -dead ? -1 : 0;
      // Diagonals only when the stick is well off both axes (within ~22° of 45°).
      if (dx && dy && Math.min(Math.abs(ox), Math.abs(oy)) < 0.4 * Math.max(Math.abs(ox), Math.abs(oy))) {
        if (Math.abs(ox) > Math.abs(oy)) dy = 0; else dx = 0;
      }
    }
    const ta = this.touch.aim;
    if (ta) {
      // Twin-stick: the right thumb's drag from where it landed gives the aim.
      if (Math.hypot(ta.x - ta.x0, ta.y - ta.y0) > 10) this.aimAngle = Math.atan2(ta.y - ta.y0, ta.x - ta.x0);
    } else if (this.mouse.seen) {
      this.aimAngle = Math.atan2(this.mouse.y - py, this.mouse.x - px);
    }
    const fire = this.mouse.down || this.fireKey || !!ta;
    return { dx, dy, aim: angleToByte(this.aimAngle), fire: fire ? 1 : 0 };
  }
}

// Player controls: keyboard (WASD / arrows), mouse aim and fire (click or
// space), touch sticks and taps; buttons latched between sends; when inputs
// go out; and the mapping of an intent onto the ruleset's input fields.
// Listeners are attached by `Controls.attach()`, never at import time, so the
// pure parts load in Node.

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
 * A button latched between sends (fire, and any button-like input): an input
 * carries it pressed when it is held as the input is sampled, or was pressed
 * since the last input went out, so a press and release between two sends
 * still counts once. Several sources (keys, the mouse button, touches) may
 * hold it at once; it is up when none does.
 */
export class Latch {
  constructor() {
    this.held = new Set();
    this.pressed = false;
  }

  /** `source` went down (a repeat while it is held changes nothing). */
  press(source = "") {
    if (!this.held.has(source)) this.pressed = true;
    this.held.add(source);
  }

  release(source = "") {
    this.held.delete(source);
  }

  /** Every source up (the page lost focus); a press not yet sent still counts. */
  releaseAll() {
    this.held.clear();
  }

  /** Whether the next input carries the button pressed. */
  get value() {
    return this.pressed || this.held.size > 0;
  }

  /** The value for the input going out now (0 or 1); the latched press is spent. */
  take() {
    const v = this.value;
    this.pressed = false;
    return v ? 1 : 0;
  }
}

/**
 * Sends left out because the server holds more of our inputs than its queue
 * needs (PROTOCOL.md, *When to send*). An update's `surplus` (protocol minor
 * 2; absent: 0) is how many inputs the player's queue holds beyond its target
 * depth at that tick; a skip made after the input that update applied (`ack`)
 * went out may not show in it yet, so those are taken off: `owed = surplus -
 * skips with seq > ack`. (One that does show already is counted twice: that
 * only skips later, never too many.) A skip numbers an input and never sends
 * it, so the next one sent leaves a gap in `seq`, which the server counts as
 * arrived. Nothing the prediction rests on changes: the server applies every
 * input sent, once, only sooner; an overflowing queue would drop one instead.
 */
export class Skips {
  constructor() {
    this.owed = 0;
    /** The seqs skipped that no update's `ack` has passed yet, oldest first. */
    this.pending = [];
    this.skipped = 0;
  }

  /** An update: our inputs up to `ack` applied, `surplus` (undefined: 0) more held than needed. */
  observe(ack, surplus) {
    while (this.pending.length && this.pending[0] <= ack) this.pending.shift();
    this.owed = Math.max(0, (surplus || 0) - this.pending.length);
  }

  /** Whether input `seq`, about to go out, is to be left out (then counted as skipped). */
  skip(seq) {
    if (this.owed <= 0) return false;
    this.owed--;
    this.pending.push(seq);
    this.skipped++;
    return true;
  }
}

/** Ticks without an update (the page running) before the timer sends inputs: a downlink stall. */
export const STALL_TICKS = 4;

/**
 * When to send an input. The server applies exactly one of our inputs per
 * tick, from a short queue (PROTOCOL.md, `input`), so the page sends one input
 * per update it receives: that keeps the count of inputs equal to the count of
 * ticks whatever the local timers and the network's jitter do (updates that
 * arrive together get one input each).
 *
 * A backlog gets one input: an update that arrives far later than the tick
 * clock expects (`stale`, feed.js: a frozen page resuming, a network that
 * held it) and the updates after it that are stale too (even when the page
 * draws a long frame in between) or processed less than half a tick after
 * the last stale one (the rest of the backlog, on time) are answered by the
 * input sent for the first of them. The server ran out of our inputs meanwhile
 * (we stood still there); an input per queued update would only fill its
 * queue past its depth. When updates stop while the page itself runs (the
 * downlink stalls), a timer sends one input per tick after `STALL_TICKS`, so
 * the server still learns of changed keys; the updates of those ticks then
 * send nothing when they come. An answer the server said it does not need
 * (`skips`, from the updates' `surplus`) goes out as an `ack` instead.
 *
 * Pure: callers pass `now` (ms).
 */
export class InputScheduler {
  constructor(tickMs) {
    this.tickMs = tickMs;
    /** The newest server tick an input answered. */
    this.answered = 0;
    this.lastSent = -Infinity;
    this.lastUpdate = -Infinity;
    this.lastTimer = -Infinity;
    /** The backlog being answered: {tick (the one whose input answered it), updates, staleAt (its last stale one's time)}; null when none. */
    this.backlog = null;
    /** Backlogs answered so far, and the last one's size (the page's debug state). */
    this.backlogs = 0;
    this.lastBacklog = null;
    /** What the updates' `surplus` says to leave out. */
    this.skips = new Skips();
  }

  /** An update of `tick` was processed at `now`, `stale` or not: send an input for it? */
  onUpdate(tick, now, stale) {
    this.lastUpdate = now;
    if (this.backlog && (stale || now - this.backlog.staleAt < this.tickMs / 2)) {
      this.backlog.updates++;
      if (stale) this.backlog.staleAt = now;
      this.answered = Math.max(this.answered, tick);
      return false;
    }
    this.backlog = null;
    if (tick <= this.answered) return false; // the timer answered it already
    this.answered = tick;
    if (stale) {
      this.backlog = this.lastBacklog = { tick, updates: 1, staleAt: now };
      this.backlogs++;
    }
    return true;
  }

  /**
   * The periodic check (every few ms) at `now`: the tick an input sent now
   * would answer when the updates stalled, else null. A check long after the
   * previous one means the page itself was frozen: its updates are queued,
   * not missing, and the backlog will be answered when they are processed.
   */
  onTimer(now) {
    const self = now - this.lastTimer;
    this.lastTimer = now;
    if (self > 2 * this.tickMs || this.lastUpdate === -Infinity) return null; // frozen ourselves, or no update yet
    if (now - this.lastUpdate > STALL_TICKS * this.tickMs && now - this.lastSent >= this.tickMs) return ++this.answered;
    return null;
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
    /** Button-like inputs by field name, latched between sends (Space, the left button, a touch on the right half). */
    this.buttons = { fire: new Latch() };
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
      if (e.code === "Space") { this.buttons.fire.press("key"); e.preventDefault(); }
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
      if (e.code === "Space") this.buttons.fire.release("key");
    });
    on(win, "blur", () => this.releaseAll());
    on(win, "visibilitychange", () => this.releaseAll());
    on(this.canvas, "mousemove", (e) => { this.mouse.x = e.offsetX; this.mouse.y = e.offsetY; this.mouse.seen = true; });
    on(this.canvas, "mousedown", (e) => {
      if (e.button === 0) { this.mouse.down = true; this.buttons.fire.press("mouse"); }
      this.mouse.x = e.offsetX; this.mouse.y = e.offsetY; this.mouse.seen = true;
    });
    on(win, "mouseup", (e) => { if (e.button === 0) { this.mouse.down = false; this.buttons.fire.release("mouse"); } });
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
        else if (!this.touch.aim) { this.touch.aim = p; this.buttons.fire.press(`touch${t.identifier}`); }
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
      for (const t of e.changedTouches) {
        for (const k of ["move", "aim"]) if (this.touch[k] && this.touch[k].id === t.identifier) this.touch[k] = null;
        this.buttons.fire.release(`touch${t.identifier}`); // a tap shorter than a send still fires once
      }
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
    for (const b of Object.values(this.buttons)) b.releaseAll();
    this.mouse.down = false;
    this.touch.move = this.touch.aim = null;
  }

  /**
   * The intent for the input going out now: `intent`, with the latched
   * buttons spent (a press counts in one input).
   */
  take(px, py) {
    const it = this.intent(px, py);
    for (const [name, b] of Object.entries(this.buttons)) it[name] = b.take();
    return it;
  }

  /**
   * The current intent (buttons as latched, not spent). `px, py`: the
   * player's position on the canvas (CSS pixels), to aim the mouse from.
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
    const it = { dx, dy, aim: angleToByte(this.aimAngle) };
    for (const [name, b] of Object.entries(this.buttons)) it[name] = b.value ? 1 : 0;
    return it;
  }
}

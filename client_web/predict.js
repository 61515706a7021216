// Client-side prediction of the player's own movement, and reconciliation
// with the server's acknowledged input sequence (`update.ack`).
//
// The movement rule is the server's, in the same integers, as the welcome
// describes it (`ruleset.player`, PROTOCOL.md): per tick the player moves
// `speed` (column units) along its input (dx, dy) in -1..1, or `diagonal` per
// axis when both are non-zero, clamped to lo..hi; without a description
// there is no prediction.
//
// The server applies exactly one of our inputs per tick, in `seq` order, and
// says which in `update.ack` (PROTOCOL.md, `input`): its state of an update is
// our state after input `ack`. So reconciliation takes that state and replays
// the inputs after `ack`, and when nothing disagrees the prediction lands
// exactly where the server does. A tick that ran out of our inputs (starved)
// applies none: we stand still there, with our axes and buttons at rest, and
// every input still pending is applied later, once, so the replay after `ack`
// lands where it did before: no disagreement. A *correction* is a
// disagreement: the position predicted for input `ack` differs from the
// server's (an input the server dropped, a hit that pushed or killed us, a
// respawn). It is corrected at once and blended away over a few frames when
// small.
//
// Drawing: every input is labelled with the server tick of the update that
// prompted it, and the player is drawn along the predicted path at a
// playhead (`Pacer`) that runs on the smoothed local tick clock (`TickClock`),
// one tick and a jitter margin behind it. Inputs go out when updates arrive,
// so pacing by send times would turn arrival jitter into jitter of the
// player's own motion, and of the camera locked to it; the playhead moves as
// steadily as the interpolated others.
//
// `Prediction` is the glue a page needs: it reconciles with our entity's row
// in each verified state, books each input sent, and says where to draw.
//
// Pure: no DOM, no clock (callers pass `now` in ms).

import { rowIn } from "./world.js";

/**
 * The movement rule of a parsed schema, from `welcome.ruleset.player`, with
 * column and input indices resolved; null (no prediction) when the ruleset
 * describes none or describes one this client cannot use.
 */
export function movementRule(schema) {
  const m = schema.player;
  if (!m) return null;
  const x = schema.index[m.x], y = schema.index[m.y];
  const dx = schema.inputs.findIndex((f) => f.name === m.dx), dy = schema.inputs.findIndex((f) => f.name === m.dy);
  const hp = m.dead_still ? schema.index.hp : null;
  const ints = [m.speed, m.diagonal, m.lo, m.hi].every(Number.isInteger) && m.lo <= m.hi;
  if (x == null || y == null || dx < 0 || dy < 0 || !ints || (m.dead_still && hp == null)) return null;
  return Object.freeze({
    speed: m.speed, diagonal: m.diagonal, lo: m.lo, hi: m.hi, deadStill: !!m.dead_still,
    /** Column indices of the position and of hp (null unless dead players stand still); input field indices. */
    x, y, hp, dx, dy,
  });
}

const clamp = (v, lo, hi) => (v < lo ? lo : v > hi ? hi : v);

/** One tick of the player's move: new [x, y] (integers, column units). */
export function stepMove(rule, x, y, dx, dy) {
  const s = dx !== 0 && dy !== 0 ? rule.diagonal : rule.speed;
  return [clamp(x + dx * s, rule.lo, rule.hi), clamp(y + dy * s, rule.lo, rule.hi)];
}

/** Corrections larger than this (column units) snap instead of blending: respawns, teleports. */
export const SNAP_DISTANCE = 400;
/** Time constant of the blend of small corrections (ms): visible for a few frames at most. */
export const BLEND_MS = 50;
/** Pending inputs kept at most (a server that stopped acknowledging). */
export const MAX_PENDING = 120;
/** Points of the predicted path kept for drawing (about a second of ticks). */
export const TRAIL = 32;

export class Predictor {
  constructor(rule) {
    this.rule = rule;
    /** Inputs sent but not yet applied by the server: {seq, dx, dy, x, y}, (x, y) predicted after it. */
    this.pending = [];
    this.alive = true;
    /** Predicted position after every pending input. */
    this.x = null; this.y = null;
    /**
     * The predicted path, oldest first: {t, x, y}, the position after the input
     * labelled with tick `t` (non-decreasing). Drawn by `position(tick)`.
     */
    this.trail = [];
    /** Visual offset still to blend away after a correction. */
    this.errX = 0; this.errY = 0;
    /** Updates whose state disagreed with the prediction, and by how much the last one did (column units). */
    this.corrections = 0;
    this.lastCorrection = 0;
    /**
     * Corrections at updates where every tick since the one before applied
     * a new input of ours (`ack` moved on by the ticks run): the server
     * starved no tick and dropped no input, so only a wrong rule, or
     * something else moving the player (a hit, a respawn), explains them.
     */
    this.unexplained = 0;
    /** Updates reconciled (the HUD's corrections are per this many). */
    this.reconciled = 0;
    this.ack = 0;
    this._counted = null;
    this._tick = null;
  }

  get ready() {
    return this.x != null;
  }

  /**
   * An input was just sent: it will move the player one tick. `tick` labels it
   * for drawing: the tick of the update it answers (null: one after the last).
   */
  push(seq, dx, dy, tick = null) {
    if (this.x != null && !(this.rule.deadStill && !this.alive)) [this.x, this.y] = stepMove(this.rule, this.x, this.y, dx, dy);
    this.pending.push({ seq, dx, dy, x: this.x, y: this.y });
    if (this.pending.length > MAX_PENDING) this.pending.shift();
    if (this.x == null) return;
    const tr = this.trail;
    const last = tr.length ? tr[tr.length - 1].t : -Infinity;
    const t = tick == null ? last + 1 : Math.max(tick, last);
    tr.push({ t, x: this.x, y: this.y });
    if (tr.length > TRAIL) tr.shift();
  }

  /**
   * The server's state after `tick`: our entity at (x, y), `alive`, input
   * `ack` the last of ours it applied. Replays the newer ones; counts a
   * correction when the position predicted for input `ack` was not (x, y)
   * (when `ack` is no longer pending, as on a tick that repeated it: when the
   * replay moves the prediction). `backlog`: the backlog this update came in
   * (input.js's `InputScheduler.backlog`), whose updates, processed back to
   * back, are one disagreement at most (the ticks that ran out of our inputs
   * while the page was frozen). Returns how far the prediction moved (column
   * units).
   */
  reconcile(x, y, alive, ack, tick = null, backlog = null) {
    const steady = tick != null && this._tick != null && tick - this._tick === ack - this.ack;
    if (tick != null) this._tick = tick;
    this.ack = ack;
    this.alive = alive;
    let drop = 0, at = null;
    for (; drop < this.pending.length && this.pending[drop].seq <= ack; drop++) if (this.pending[drop].seq === ack) at = this.pending[drop];
    if (drop) this.pending.splice(0, drop);
    let px = x, py = y;
    const still = this.rule.deadStill && !alive;
    for (const p of this.pending) {
      if (!still) [px, py] = stepMove(this.rule, px, py, p.dx, p.dy);
      p.x = px; p.y = py;
    }
    if (this.x == null) {
      this.x = px; this.y = py;
      this.trail = [{ t: tick ?? 0, x: px, y: py }];
      return 0;
    }
    this.reconciled++;
    const cx = this.x - px, cy = this.y - py;
    const known = at != null && at.x != null;
    if ((known ? at.x !== x || at.y !== y : cx !== 0 || cy !== 0) && (backlog == null || backlog !== this._counted)) {
      this._counted = backlog;
      this.corrections++;
      if (steady) this.unexplained++;
      this.lastCorrection = known ? Math.hypot(at.x - x, at.y - y) : Math.hypot(cx, cy);
    }
    if (cx !== 0 || cy !== 0) {
      // The whole path moves with the correction; the offset left to blend keeps
      // the drawn player where it was (a snap drops it).
      for (const p of this.trail) { p.x -= cx; p.y -= cy; }
      if (Math.abs(cx) > SNAP_DISTANCE || Math.abs(cy) > SNAP_DISTANCE) {
        this.errX = 0; this.errY = 0;
      } else {
        this.errX += cx; this.errY += cy;
      }
    }
    this.x = px; this.y = py;
    return Math.hypot(cx, cy);
  }

  /** Let the correction offset fade (call once per rendered frame with the elapsed ms). */
  decay(dtMs) {
    const k = Math.exp(-Math.max(0, dtMs) / BLEND_MS);
    this.errX *= k; this.errY *= k;
    if (Math.abs(this.errX) < 0.5) this.errX = 0; // under 1/16 unit: below a pixel
    if (Math.abs(this.errY) < 0.5) this.errY = 0;
  }

  /**
   * Where to draw the player (column units, fractional) at playhead `tick` (a
   * fractional tick from `Pacer.at`): along the predicted path, between the
   * points labelled around it; the oldest point before its start, the newest
   * when `tick` is null. Past the newest point (an update later than the
   * pacer allowed for) the newest input's step goes on for up to one tick, as
   * interpolation extrapolates others: the input is nearly always unchanged,
   * so the late point lands where the player already is instead of the player
   * stopping to wait for it.
   */
  position(tick) {
    if (this.x == null) return null;
    const tr = this.trail;
    let i = tr.length - 1;
    if (tick != null) while (i > 0 && tr[i - 1].t >= tick) i--;
    let a = i > 0 ? tr[i - 1] : tr[i], b = tr[i], f = 1;
    if (tick != null && tick > b.t && this.pending.length && !(this.rule.deadStill && !this.alive)) {
      const last = this.pending[this.pending.length - 1];
      const [nx, ny] = stepMove(this.rule, b.x, b.y, last.dx, last.dy);
      a = b; b = { t: b.t + 1, x: nx, y: ny };
    }
    if (tick != null && b.t > a.t) f = clamp((tick - a.t) / (b.t - a.t), 0, 1);
    return { x: a.x + (b.x - a.x) * f + this.errX, y: a.y + (b.y - a.y) * f + this.errY };
  }

  reset() {
    this.pending.length = 0;
    this.trail = [];
    this._tick = null;
    this.x = this.y = null;
    this.errX = this.errY = 0;
  }
}

/** Ticks kept between the playhead and the clock's newest arrivals besides the measured lateness. */
export const PACE_SAFETY = 0.1;
/** Lateness allowed for at most (ticks): later than that is a stall, and the player stops. */
export const MAX_MARGIN = 3;
/** The margin covers the latest arrival among this many recent updates (4 s at 30 Hz). */
export const MARGIN_WINDOW = 120;
/** The playhead runs at most this much faster or slower than real time to follow its target. */
export const SLEW = 0.1;
/** Gain of that following: rate change per tick of error. */
export const PACE_GAIN = 0.5;
/** A playhead further than this from its target (ticks) jumps to it (a stall, a new clock). */
export const PACE_RESET = 4;

/**
 * The playhead that paces the drawn player: a fractional input tick running
 * at real-time speed, aimed at `clock tick - 1 - margin`, where `margin`
 * covers how late updates (and so the inputs labelled with their ticks)
 * arrive compared with the clock: the latest of the last `MARGIN_WINDOW`
 * arrivals, so it rises at once and relaxes only when a late arrival is a few
 * seconds old. The playhead bends its rate by at most `SLEW`
 * to follow the target, so neither jitter nor a change of margin shows as a
 * jump. Pure: callers pass `now` (ms) and the clock's reading.
 */
export class Pacer {
  constructor(tickMs) {
    this.tickMs = tickMs;
    this.margin = 0.25;
    this._late = new Float64Array(MARGIN_WINDOW);
    this._n = 0;
    this.head = null;
    this.last = null;
  }

  /** An update arrived `late` ticks after the tick clock expected it (clock.tickAt(now) - tick). */
  observe(late) {
    this._late[this._n++ % MARGIN_WINDOW] = clamp(late, 0, MAX_MARGIN);
    let m = 0;
    for (let i = Math.min(this._n, MARGIN_WINDOW) - 1; i >= 0; i--) if (this._late[i] > m) m = this._late[i];
    this.margin = m;
  }

  /** The playhead at `now` (ms) with the clock reading `clockTick`; null before the clock runs. */
  at(now, clockTick) {
    if (clockTick == null) return null;
    const target = clockTick - 1 - this.margin - PACE_SAFETY;
    if (this.head == null || Math.abs(target - this.head) > PACE_RESET) {
      this.head = target;
      this.last = now;
    } else if (now > this.last) {
      const dt = (now - this.last) / this.tickMs;
      this.head += dt * (1 + clamp((target - this.head - dt) * PACE_GAIN, -SLEW, SLEW));
      this.last = now;
    }
    return this.head;
  }

  reset() {
    this.head = this.last = null;
  }
}

/**
 * The prediction of the player's own entity, between the page and the pieces
 * above: a `Predictor` fed from each verified state's row of our entity, and
 * a `Pacer` that paces its drawing by the tick clock.
 */
export class Prediction {
  /** For a welcome: null (no prediction) for a spectator or a ruleset that describes no movement rule. */
  static forWelcome(schema, entity, tickMs) {
    const rule = movementRule(schema);
    return rule && entity != null ? new Prediction(schema, rule, entity, tickMs) : null;
  }

  constructor(schema, rule, entity, tickMs) {
    this.schema = schema;
    this.rule = rule;
    this.entity = entity;
    this.predictor = new Predictor(rule);
    this.pacer = new Pacer(tickMs);
  }

  /**
   * A verified `state` arrived `late` ticks after the tick clock expected it
   * (clock.tickAt(now) - state.tick; null: a stale update of a backlog, which
   * says nothing of how late updates come); the server had applied our inputs
   * up to `ack`; `backlog` as `Predictor.reconcile`. Returns whether our
   * entity is alive (hp > 0, or no hp column), or null when it is not in the
   * state.
   */
  observe(state, ack, late, backlog = null) {
    if (late != null) this.pacer.observe(late);
    const row = rowIn(state.ids, this.entity);
    if (row < 0) return null;
    const ihp = this.schema.index.hp, cols = state.cols;
    const alive = ihp == null || cols[ihp][row] > 0;
    this.predictor.reconcile(cols[this.rule.x][row], cols[this.rule.y][row], alive, ack >>> 0, state.tick, backlog);
    return alive;
  }

  /** Input `seq` went out with `values` (one per schema input field), answering the update of `tick` (null: the timer's). */
  sent(seq, values, tick) {
    this.predictor.push(seq, values[this.rule.dx], values[this.rule.dy], tick);
  }

  /** Whether the player can act as far as we know (dead players' fire shows no flash). */
  get alive() {
    return this.predictor.alive;
  }

  /**
   * Where to draw the player (column units), paced by the tick clock: at frame
   * time `now` with the clock reading `clockTick`, or (`now` null) where the
   * last frame put it, so every frame steps evenly. Null before the first state.
   */
  position(now = null, clockTick = null) {
    if (!this.predictor.ready) return null;
    return this.predictor.position(now == null ? this.pacer.head : this.pacer.at(now, clockTick));
  }

  /** One animation frame of `dt` ms at `now`: the correction offset fades; returns `position(now, clockTick)`. */
  frame(dt, now, clockTick) {
    this.predictor.decay(dt);
    return this.position(now, clockTick);
  }
}

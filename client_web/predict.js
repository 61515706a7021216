// Client-side prediction of the player's own movement, and reconciliation
// with the server's acknowledged input sequence (`update.ack`).
//
// The movement rule is the server's, in the same integers: per tick the
// player moves `speed` (column units) along its input (dx, dy) in -1..1, or
// `diagonal` per axis when both are non-zero, clamped to 0..width*scale and
// 0..height*scale. Inputs the server has not applied yet (seq > ack) are
// replayed on every authoritative position, so when nothing disagrees the
// prediction lands exactly where the server will, and a disagreement is
// corrected at the next update (blended over a few frames when small).
//
// The server applies, each tick, the newest input it has (PROTOCOL.md): when
// ours is late it applies the previous one again, and when two arrive within
// one tick it skips the older. A late input is nearly always followed by a
// skip (the late one and the next arrive together), so a tick that re-applied
// an input (the ack did not advance) is booked as a debt, and the replay
// leaves out that many of the oldest pending inputs, the ones the server
// will skip. A server catching up two ticks at once, or a page that stalls,
// then costs no visible correction at all.
//
// Pure: no DOM, no clock (callers pass `now` in ms).

/**
 * Per-ruleset speeds, column units per tick. Mirrors game/arena/spec.py
 * (PLAYER_SPEED = 6 * 8, DIAGONAL = 34; dead players, hp 0, stand still) and
 * game/drift.py (SPEED = 5 * 8, DIAGONAL = 28). Bounds come from the welcome.
 */
export const MOVEMENT = Object.freeze({
  arena: Object.freeze({ speed: 48, diagonal: 34, deadStill: true }),
  drift: Object.freeze({ speed: 40, diagonal: 28, deadStill: false }),
});

/** The movement rule for a parsed schema, or null when the ruleset is unknown (no prediction). */
export function movementRule(schema, table = MOVEMENT) {
  const t = table[schema.name];
  const ix = schema.index.x, iy = schema.index.y;
  if (!t || ix == null || iy == null) return null;
  const axis = (name, size, col) => {
    const m = schema.motion.find((a) => a.pos === name);
    if (size > 0) return size * schema.columns[col].scale;
    return m ? m.hi : 0;
  };
  return Object.freeze({
    speed: t.speed,
    diagonal: t.diagonal,
    deadStill: t.deadStill && schema.index.hp != null,
    maxX: axis("x", schema.width, ix),
    maxY: axis("y", schema.height, iy),
  });
}

const clamp = (v, lo, hi) => (v < lo ? lo : v > hi ? hi : v);

/** One tick of the player's move: new [x, y] (integers, column units). */
export function stepMove(rule, x, y, dx, dy) {
  const s = dx !== 0 && dy !== 0 ? rule.diagonal : rule.speed;
  return [clamp(x + dx * s, 0, rule.maxX), clamp(y + dy * s, 0, rule.maxY)];
}

/** Corrections larger than this (column units) snap instead of blending: respawns, teleports. */
export const SNAP_DISTANCE = 400;
/** Time constant of the blend of small corrections (ms): visible for a few frames at most. */
export const BLEND_MS = 50;
/** Pending inputs kept at most (a server that stopped acknowledging). */
export const MAX_PENDING = 120;
/** A debt of re-applied inputs that no skip has paid back after this many updates is forgotten. */
export const DEBT_UPDATES = 15;

export class Predictor {
  constructor(rule) {
    this.rule = rule;
    /** Inputs sent but not yet applied by the server: {seq, dx, dy}. */
    this.pending = [];
    this.alive = true;
    /** Predicted position after every pending input, and before the newest one. */
    this.x = null; this.y = null;
    this.prevX = null; this.prevY = null;
    /** Visual offset still to blend away after a correction. */
    this.errX = 0; this.errY = 0;
    this.lastInputAt = 0;
    this.corrections = 0;
    this.lastCorrection = 0;
    this.ack = 0;
    /** Ticks the server re-applied an input of ours, not yet paid back by skips. */
    this.debt = 0;
    this._debtAge = 0;
    this._lastTick = null;
  }

  get ready() {
    return this.x != null;
  }

  /** An input was just sent: it will move the player one tick. */
  push(seq, dx, dy, now) {
    this.pending.push({ seq, dx, dy });
    if (this.pending.length > MAX_PENDING) this.pending.shift();
    this.lastInputAt = now;
    if (this.x == null) return;
    this.prevX = this.x; this.prevY = this.y;
    if (!(this.rule.deadStill && !this.alive)) [this.x, this.y] = stepMove(this.rule, this.x, this.y, dx, dy);
  }

  /**
   * The server's state after `tick`: our entity at (x, y), `alive`, having applied
   * our inputs up to `ack`. Replays the newer ones; returns the correction (column units).
   */
  reconcile(x, y, alive, ack, tick = null) {
    if (tick != null && this._lastTick != null && tick > this._lastTick && this.ack >= 1 && ack >= this.ack) {
      // Ticks run minus new inputs applied: > 0 re-applied, < 0 skipped.
      this.debt += tick - this._lastTick - (ack - this.ack);
    }
    if (tick != null) this._lastTick = tick;
    this.ack = ack;
    this.alive = alive;
    let drop = 0;
    while (drop < this.pending.length && this.pending[drop].seq <= ack) drop++;
    if (drop) this.pending.splice(0, drop);
    this.debt = Math.max(0, Math.min(this.debt, this.pending.length));
    this._debtAge = this.debt > 0 ? this._debtAge + 1 : 0;
    if (this._debtAge > DEBT_UPDATES) this.debt = this._debtAge = 0;
    let px = x, py = y, bx = x, by = y;
    const still = this.rule.deadStill && !alive;
    for (let i = this.debt; i < this.pending.length; i++) {
      const p = this.pending[i];
      bx = px; by = py;
      if (!still) [px, py] = stepMove(this.rule, px, py, p.dx, p.dy);
    }
    if (this.x == null) {
      this.x = px; this.y = py; this.prevX = bx; this.prevY = by;
      return 0;
    }
    const cx = this.x - px, cy = this.y - py;
    if (cx !== 0 || cy !== 0) {
      this.corrections++;
      this.lastCorrection = Math.hypot(cx, cy);
      if (Math.abs(cx) > SNAP_DISTANCE || Math.abs(cy) > SNAP_DISTANCE) {
        this.errX = 0; this.errY = 0;
      } else {
        this.errX += cx; this.errY += cy;
      }
    }
    this.x = px; this.y = py;
    this.prevX = this.pending.length > this.debt ? bx : px;
    this.prevY = this.pending.length > this.debt ? by : py;
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
   * Where to draw the player at `now` (column units, fractional): between the
   * position before and after the newest input, by the time since it was sent.
   */
  position(now, tickMs) {
    if (this.x == null) return null;
    const a = clamp((now - this.lastInputAt) / tickMs, 0, 1);
    return {
      x: this.prevX + (this.x - this.prevX) * a + this.errX,
      y: this.prevY + (this.y - this.prevY) * a + this.errY,
    };
  }

  reset() {
    this.pending.length = 0;
    this.debt = this._debtAge = 0;
    this._lastTick = null;
    this.x = this.y = this.prevX = this.prevY = null;
    this.errX = this.errY = 0;
  }
}

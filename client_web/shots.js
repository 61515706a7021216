// The player's own shots drawn at once, in the predicted timeline.
//
// The server's bullet of a shot arrives a round trip after the press, and is
// drawn in the interpolated past like every other entity; the player, drawn
// predicted ahead, would see its gun fire and nothing leave it. So, as the
// welcome describes shooting (`ruleset.shot`, PROTOCOL.md), every input we send
// that fires (its button pressed, the gun ready by our own count, alive) adds
// a predicted shot: it leaves our predicted position after that input at
// `muzzle` along the input's aim and flies `speed` a tick, labelled with the
// input's tick like the predicted path, so it is drawn at the same playhead as
// the player. When the server's bullet of that shot shows up in a verified
// state (a new entity of the shot's kind on the shot's line, in its direction)
// it is claimed: the page hides it and keeps drawing the predicted one; when a
// claimed bullet leaves the state before its life is over (it hit something)
// the predicted shot ends with it. Unclaimed shots end with their life.
// Cosmetic only: what hits is the server's.
//
// Pure: no DOM, no clock.

/** The shot rule of a parsed schema (`welcome.ruleset.shot`), input and kind indices resolved; null: none usable. */
export function shotRule(schema) {
  const s = schema.shot;
  if (!s) return null;
  const button = schema.inputs.findIndex((f) => f.name === s.button);
  const aim = schema.inputs.findIndex((f) => f.name === s.aim);
  const kind = (schema.kinds || []).indexOf(s.kind);
  const ints = [s.speed, s.muzzle, s.cooldown, s.life].every((v) => Number.isInteger(v) && v >= 0);
  if (button < 0 || aim < 0 || kind < 0 || !ints || schema.index.kind == null) return null;
  return Object.freeze({ button, aim, kind, speed: s.speed, muzzle: s.muzzle, cooldown: s.cooldown, life: s.life });
}

/** How far (column units) a server bullet may lie off a predicted shot's line and still be that shot. */
export const CLAIM_DISTANCE = 96;
/** Predicted shots kept at most (a server that stopped answering). */
export const MAX_SHOTS = 32;

export class OwnShots {
  constructor(rule) {
    this.rule = rule;
    /** Inputs to go before the gun is ready again, by our own count of the inputs we send. */
    this.cooldown = 0;
    /** {t, x, y, vx, vy, id (the server's bullet, once claimed), ended}: the shots, oldest first. */
    this.shots = [];
    /** Ids of the server's bullets claimed by a predicted shot (the page does not draw them). */
    this.hidden = new Set();
    /** The newest entity id seen: a bullet with a higher one is new. */
    this.top = -1;
    this.fired = 0;
  }

  /**
   * An input went out with `values`, labelled `t` (the predicted path's label),
   * our predicted position (x, y) after it (column units), `alive` as far as we
   * know. Returns the predicted shot it fired, or null.
   */
  sent(values, t, x, y, alive) {
    const r = this.rule;
    this.cooldown = Math.max(this.cooldown - 1, 0);
    if (!alive || !(values[r.button] > 0) || this.cooldown > 0 || x == null || t == null) return null;
    this.cooldown = r.cooldown;
    const a = (values[r.aim] * Math.PI) / 128, c = Math.cos(a), s = Math.sin(a);
    const shot = { t, x: x + c * r.muzzle, y: y + s * r.muzzle, vx: c * r.speed, vy: s * r.speed, id: null, ended: false };
    this.shots.push(shot);
    if (this.shots.length > MAX_SHOTS) this.forget(this.shots.shift());
    this.fired++;
    return shot;
  }

  /**
   * A verified state (ids ascending, columns; `ix`, `iy`, `ik` the indices of
   * the x, y and kind columns): claim new bullets of ours, end the shots whose
   * bullet is gone.
   */
  observe(state, ix, iy, ik) {
    const ids = state.ids, xs = state.cols[ix], ys = state.cols[iy], ks = state.cols[ik];
    const present = new Set();
    for (let i = 0; i < ids.length; i++) {
      if (ks[i] !== this.rule.kind) continue;
      present.add(ids[i]);
      if (ids[i] > this.top) this._claim(ids[i], xs[i], ys[i]);
    }
    if (ids.length) this.top = Math.max(this.top, ids[ids.length - 1]);
    for (const s of this.shots) {
      if (s.id != null && !s.ended && !present.has(s.id)) { s.ended = true; this.hidden.delete(s.id); }
    }
  }

  _claim(id, x, y) {
    const r = this.rule, v2 = r.speed * r.speed;
    for (const s of this.shots) {
      if (s.id != null || s.ended || v2 === 0) continue;
      const dx = x - s.x, dy = y - s.y;
      const k = (dx * s.vx + dy * s.vy) / v2; // ticks along its flight
      const off = Math.abs(dx * s.vy - dy * s.vx) / r.speed; // distance off its line
      if (k > -1 && k <= r.life && off <= CLAIM_DISTANCE) {
        s.id = id;
        this.hidden.add(id);
        return;
      }
    }
  }

  forget(s) {
    if (s && s.id != null) this.hidden.delete(s.id);
  }

  /**
   * The shots to draw at playhead `tick` (a fractional tick, the predicted
   * path's): [{x, y, vx, vy}] in column units; drops the ones over.
   */
  at(tick) {
    if (tick == null) return [];
    const out = [];
    const keep = [];
    for (const s of this.shots) {
      const k = tick - s.t;
      if (s.ended) { this.forget(s); continue; }
      if (k > this.rule.life) {
        // Over in the predicted timeline; a claimed bullet stays hidden until it leaves the state (the
        // interpolated past still shows it a round trip longer).
        if (s.id != null) keep.push(s);
        continue;
      }
      keep.push(s);
      if (k >= 0) out.push({ x: s.x + s.vx * k, y: s.y + s.vy * k, vx: s.vx, vy: s.vy });
    }
    this.shots = keep;
    return out;
  }

  reset() {
    this.shots = [];
    this.hidden.clear();
    this.cooldown = 0;
  }
}

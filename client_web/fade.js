// Entities entering and leaving a filtered view (interest management: PROTOCOL.md
// "Filtered views") fade in and out instead of popping at its edge.
//
// The fader watches the states the page draws (the interpolated picture's newest
// state, `View.state`): an entity that appears fades in over `FADE_MS`; one that
// disappears near the view's edge (it left the view, it was not destroyed) is
// kept as a ghost, still moving along its last velocity, fading out. One that
// disappears well inside the view (eaten, exploded) goes at once, as in an
// unfiltered match.
//
// Pure: no DOM; callers pass `now` (ms).

import { rowIn } from "./protocol.js";

/** How long an entity takes to fade in or out (ms). */
export const FADE_MS = 300;

/**
 * Whether a position (column units) lies near the edge of the view centred at `me`:
 * within one cell of its circle's or rectangle's border, or beyond it.
 * @param interest `welcome.interest` ({shape, radius | half_w and half_h, cell}, world units)
 * @param scale the position columns' fixed-point scale
 */
export function nearEdge(interest, scale, me, x, y) {
  const cell = interest.cell * scale, dx = Math.abs(x - me.x), dy = Math.abs(y - me.y);
  if (interest.shape === "rect") {
    return dx >= interest.half_w * scale - cell || dy >= interest.half_h * scale - cell;
  }
  const r = Math.max(0, interest.radius * scale - cell);
  return dx * dx + dy * dy >= r * r;
}

export class Fader {
  constructor({ ms = FADE_MS } = {}) {
    this.ms = ms;
    /** Entity id -> when it appeared (ms), while it fades in. */
    this.born = new Map();
    /** Entity id -> {state, row, t0, tick}: gone from the view, fading out where it went. */
    this.ghosts = new Map();
    this.last = null;
    /** Entities that faded in, and out, so far (a page's debug state). */
    this.fadedIn = 0;
    this.fadedOut = 0;
  }

  clear() {
    this.born.clear();
    this.ghosts.clear();
    this.last = null;
  }

  /**
   * The page draws `state` now. Against the state it drew before: what appeared
   * starts fading in; what disappeared near the edge of the view around the
   * player's entity `me` (`interest`: `welcome.interest`) becomes a ghost. The
   * first state, and one after a gap of more than a second of ticks (a
   * keyframe after a resync), just starts afresh.
   * @param schema from protocol.parseSchema (`x`, `y` columns)
   */
  observe(schema, state, now, interest, me) {
    const prev = this.last;
    if (state === prev) return;
    this.last = state;
    this._prune(now);
    if (prev == null || state == null || state.tick <= prev.tick || state.tick - prev.tick > 30) return;
    const leaving = leavingTest(schema, interest, me, prev);
    const a = prev.ids, b = state.ids, ix = schema.index.x, iy = schema.index.y;
    let i = 0, j = 0;
    while (i < a.length || j < b.length) {
      if (j >= b.length || (i < a.length && a[i] < b[j])) {
        const id = a[i];
        if (leaving(prev.cols[ix][i], prev.cols[iy][i])) {
          this.ghosts.set(id, { state: prev, row: i, t0: now, tick: prev.tick });
          this.fadedOut++;
        }
        this.born.delete(id);
        i++;
      } else if (i >= a.length || b[j] < a[i]) {
        this.born.set(b[j], now);
        this.ghosts.delete(b[j]);
        this.fadedIn++;
        j++;
      } else {
        i++;
        j++;
      }
    }
  }

  /** The opacity (0..1) of entity `id` of the drawn state at `now`: below 1 while it fades in. */
  alpha(id, now) {
    const t = this.born.get(id);
    return t == null ? 1 : Math.min(1, (now - t) / this.ms);
  }

  /** Whether anything is fading in (the renderer then asks `alpha` per entity). */
  get fadingIn() {
    return this.born.size > 0;
  }

  /**
   * The ghosts to draw at `now`: {id, state, row, alpha, x, y} with the position
   * (column units, fractional) carried on along the ghost's velocity for the
   * ticks since (at `tickMs` per tick).
   */
  ghostsAt(schema, now, tickMs) {
    const out = [];
    const ix = schema.index.x, iy = schema.index.y;
    const ax = schema.motion.find((m) => m.p === ix), ay = schema.motion.find((m) => m.p === iy);
    for (const [id, g] of this.ghosts) {
      const alpha = 1 - (now - g.t0) / this.ms;
      if (alpha <= 0) continue;
      const steps = (now - g.t0) / tickMs, c = g.state.cols;
      let x = c[ix][g.row], y = c[iy][g.row];
      if (ax) x = Math.min(ax.hi, Math.max(ax.lo, x + c[ax.v][g.row] * steps));
      if (ay) y = Math.min(ay.hi, Math.max(ay.lo, y + c[ay.v][g.row] * steps));
      out.push({ id, state: g.state, row: g.row, alpha, x, y });
    }
    return out;
  }

  _prune(now) {
    for (const [id, t] of this.born) if (now - t >= this.ms) this.born.delete(id);
    for (const [id, g] of this.ghosts) if (now - g.t0 >= this.ms) this.ghosts.delete(id);
  }
}

/**
 * Whether a position lies near the edge of the view around the player's entity
 * `me` in `state` (never, when there is no view or no entity: nothing fades out).
 */
export function leavingTest(schema, interest, me, state) {
  if (!interest || me == null || !state) return () => false;
  const row = rowIn(state.ids, me);
  if (row < 0) return () => false;
  const ix = schema.index.x, iy = schema.index.y;
  const centre = { x: state.cols[ix][row], y: state.cols[iy][row] };
  const scale = schema.columns[ix].scale;
  return (x, y) => nearEdge(interest, scale, centre, x, y);
}

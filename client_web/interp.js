// Snapshot interpolation: other entities are drawn a little in the past
// (the interpolation delay behind the tick clock, INTERP_DELAY_MS unless the
// page says otherwise), between the two verified states around that moment,
// so motion is smooth whatever the display's refresh rate and however the
// updates are spaced on arrival.
//
// Pure: no DOM; callers pass `now` (ms, e.g. performance.now()).

/**
 * How far behind the tick clock other entities are drawn (ms), by default.
 * Tuned for 100-200 ms of real-world round trip, where arrivals jitter by
 * some tens of ms: three ticks at 30 Hz, so a state arriving up to two ticks
 * later than the earliest ones is still there to interpolate towards; less
 * would shorten the rewind of lag-compensated shots (client_web/README.md,
 * *Netcode*). A page may say otherwise (`?interp=`).
 */
export const INTERP_DELAY_MS = 100;
/** At most this many ticks of extrapolation past the newest state when updates stall. */
export const MAX_EXTRAPOLATE_TICKS = 4;
/**
 * An update later than the clock expects by more than this many ticks is
 * *stale* (a live clock's `observe`): the page was frozen, or the network held
 * its updates, and they arrive in a backlog. Above the server's largest input
 * buffer (4 ticks) plus the arrival jitter of a real network, so a stale
 * update always means the server already ran out of our inputs.
 */
export const STALE_TICKS = 6;

/** Arrivals later than the clock by more than this (ms) are more than jitter: the clock follows them faster. */
const LATE_MS = 100;

/**
 * Maps local time to the server's tick clock from update arrivals. The offset
 * follows the earliest arrivals (least delayed) quickly and later ones slowly,
 * so network jitter does not shake the render clock.
 *
 * A live clock (`staleTicks` given) ignores stale arrivals and the late ones
 * right behind them: a backlog drained at once after a frozen page says
 * nothing about the network, and the server's ticks went on at their pace
 * meanwhile, so the offset stays. Late arrivals that keep coming at the
 * server's pace for three ticks are a lasting shift instead (the server
 * dropped ticks, the route changed): the clock takes it. The pace is measured
 * from the last arrival of the backlog (each arrival more than a tick ahead of
 * the pace since the run's anchor moves the anchor to it), not from the run's
 * first: measured from there, a backlog of B ticks held the shift off for 2B
 * ticks of updates at the normal rate (a page and a server frozen together:
 * seconds of updates, all stale, none answered).
 * Without `staleTicks` (a replay, whose pause and seek move the timeline), a
 * jump of more than a second either way restarts the clock.
 */
export class TickClock {
  constructor(tickMs, { staleTicks = null } = {}) {
    this.tickMs = tickMs;
    this.staleMs = staleTicks == null ? null : staleTicks * tickMs;
    this.offset = null;
    /** The first stale arrival of the current run: {tick, now}. */
    this._run = null;
  }

  /**
   * An update for `tick` arrived at `now`. Returns whether it is stale (and so
   * ignored): later than `staleTicks`, or later than jitter right behind one.
   */
  observe(tick, now) {
    const sample = now - tick * this.tickMs;
    const d = this.offset == null ? Infinity : sample - this.offset;
    if (this.staleMs != null && this.offset != null) {
      // A stale arrival starts a run; the rest of the backlog behind it (later than jitter) belongs to it.
      const run = this._run;
      if (d > (run == null ? this.staleMs : LATE_MS)) {
        if (run == null || (tick - run.tick - 1) * this.tickMs > now - run.now) {
          this._run = { tick, now }; // the run's first, or still the backlog (ahead of the server's pace): from here
        } else if (now - run.now >= 3 * this.tickMs) {
          this._run = null;
          this.offset = sample; // late at the server's pace for three ticks: a lasting shift, not a backlog
          return false;
        }
        return true;
      }
      this._run = null;
    }
    if (Math.abs(d) > 1000) this.offset = sample;
    else if (d < 0) this.offset += d * 0.25; // earlier than thought: catch up quickly
    else this.offset += d * (d > LATE_MS ? 0.2 : 0.03); // later: jitter moves it a little, a lasting delay soon
    return false;
  }

  /** The server tick (fractional) at local time `now`, or null before any update. */
  tickAt(now) {
    return this.offset == null ? null : (now - this.offset) / this.tickMs;
  }

  reset() {
    this.offset = null;
    this._run = null;
  }
}

/** The last verified states, in tick order, to interpolate between. */
export class StateBuffer {
  constructor(size = 32) {
    this.size = size;
    this.states = [];
  }

  push(state) {
    const s = this.states;
    if (s.length && state.tick <= s[s.length - 1].tick) {
      // A keyframe after a resync never goes back in time; anything else is stale.
      while (s.length && s[s.length - 1].tick >= state.tick) s.pop();
    }
    s.push(state);
    if (s.length > this.size) s.shift();
  }

  get newest() {
    return this.states.length ? this.states[this.states.length - 1] : null;
  }

  clear() {
    this.states.length = 0;
  }

  /**
   * The states around `renderTick`: {a, b, alpha} with a.tick <= renderTick <= b.tick,
   * alpha in [0, 1]; past the newest state a = b = newest and `ahead` > 0 ticks.
   */
  bracket(renderTick) {
    const s = this.states;
    if (!s.length) return null;
    const first = s[0];
    const last = s[s.length - 1];
    if (renderTick <= first.tick) return { a: first, b: first, alpha: 0, ahead: 0 };
    if (renderTick >= last.tick) {
      return { a: last, b: last, alpha: 0, ahead: Math.min(renderTick - last.tick, MAX_EXTRAPOLATE_TICKS) };
    }
    let i = s.length - 1;
    while (i > 0 && s[i - 1].tick > renderTick) i--;
    const a = s[i - 1], b = s[i];
    return { a, b, alpha: (renderTick - a.tick) / (b.tick - a.tick), ahead: 0 };
  }
}

/** Reusable output of `sample`: positions (column units, fractional) of the entities of `state`. */
export class View {
  constructor() {
    this.n = 0;
    this.state = null;
    this.x = new Float32Array(256);
    this.y = new Float32Array(256);
    /** Row of each drawn entity in `state` (for its other columns). */
    this.row = new Int32Array(256);
  }

  ensure(n) {
    if (this.x.length >= n) return;
    let size = this.x.length;
    while (size < n) size *= 2;
    this.x = new Float32Array(size);
    this.y = new Float32Array(size);
    this.row = new Int32Array(size);
  }
}

/** Largest believable per-tick move (column units) before a change counts as a teleport. */
function jumpLimit(schema) {
  let limit = 256;
  for (const a of schema.motion) {
    const c = schema.columns[a.v];
    limit = Math.max(limit, 2 ** (8 * c.Array.BYTES_PER_ELEMENT - (c.dtype.startsWith("u") ? 0 : 1)) + 1);
  }
  return limit;
}

/**
 * Fill `view` with every entity of `b` at the moment `alpha` between `a` and `b`
 * (linear, per entity matched by id; entities new in `b` stand at their `b`
 * position; jumps larger than any velocity snap). With `ahead` > 0 (past the
 * newest state), positions are extrapolated along the motion velocities.
 */
export function sample(schema, br, view) {
  const { a, b, alpha, ahead } = br;
  const n = b.ids.length;
  view.ensure(n);
  view.n = n;
  view.state = b;
  const ix = schema.index.x, iy = schema.index.y;
  const bx = b.cols[ix], by = b.cols[iy];
  const out = view;
  if (a === b) {
    const ax = schema.motion.find((m) => m.p === ix), ay = schema.motion.find((m) => m.p === iy);
    const vxc = ahead > 0 && ax ? b.cols[ax.v] : null, vyc = ahead > 0 && ay ? b.cols[ay.v] : null;
    for (let j = 0; j < n; j++) {
      let x = bx[j], y = by[j];
      if (vxc) x = Math.min(ax.hi, Math.max(ax.lo, x + vxc[j] * ahead));
      if (vyc) y = Math.min(ay.hi, Math.max(ay.lo, y + vyc[j] * ahead));
      out.x[j] = x; out.y[j] = y; out.row[j] = j;
    }
    return view;
  }
  const limit = jumpLimit(schema) * (b.tick - a.tick);
  const aids = a.ids, bids = b.ids, ax = a.cols[ix], ay = a.cols[iy];
  let i = 0;
  const na = aids.length;
  for (let j = 0; j < n; j++) {
    const id = bids[j];
    while (i < na && aids[i] < id) i++;
    let x = bx[j], y = by[j];
    if (i < na && aids[i] === id) {
      const dx = x - ax[i], dy = y - ay[i];
      if (dx < limit && dx > -limit && dy < limit && dy > -limit) {
        x = ax[i] + dx * alpha;
        y = ay[i] + dy * alpha;
      }
    }
    out.x[j] = x; out.y[j] = y; out.row[j] = j;
  }
  return view;
}

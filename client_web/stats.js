// What the play page measures about itself: updates and bytes per second for
// the HUD, frame intervals and render times for the debug hook and
// `tools.browser_bench`. Pure: callers pass the times (ms).

/** How many frame intervals and render times are kept. */
export const FRAMES_KEPT = 1200;

/** A fixed-size ring of numbers, oldest dropped first. */
export class Ring {
  constructor(n) { this.a = new Float64Array(n); this.n = 0; this.i = 0; }
  push(v) { this.a[this.i] = v; this.i = (this.i + 1) % this.a.length; if (this.n < this.a.length) this.n++; }
  /** The values, oldest first. */
  values() {
    const out = [];
    for (let k = 0; k < this.n; k++) out.push(this.a[(this.i - this.n + k + this.a.length) % this.a.length]);
    return out;
  }
  clear() { this.n = 0; this.i = 0; }
}

/** Count, mean, percentiles and maximum of `values`; {n: 0} when there are none. */
export function summary(values) {
  if (!values.length) return { n: 0 };
  const s = [...values].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, mean, p50: q(0.5), p95: q(0.95), p99: q(0.99), max: s[s.length - 1] };
}

export class Meters {
  constructor() {
    this.updateTimes = new Ring(120);
    this.bytesMarks = [];
    this.frameIntervals = new Ring(FRAMES_KEPT);
    this.renderTimes = new Ring(FRAMES_KEPT);
    this.lastFrame = null;
  }

  /** A verified update arrived at `now`. */
  update(now) {
    this.updateTimes.push(now);
  }

  /** An animation frame starts at `ts`: returns the ms since the last one (16 for the first). */
  frame(ts) {
    const dt = this.lastFrame == null ? 16 : ts - this.lastFrame;
    if (this.lastFrame != null) this.frameIntervals.push(dt);
    this.lastFrame = ts;
    return dt;
  }

  /** A frame's work took `ms`. */
  rendered(ms) {
    this.renderTimes.push(ms);
  }

  /**
   * Rates at `now`, given the link's byte count so far: updates in the last
   * second, bytes per second over about two, and frames per second over the
   * last 60 frames.
   */
  rates(now, bytesIn) {
    const ups = this.updateTimes.values().filter((t) => now - t <= 1000).length;
    this.bytesMarks.push([now, bytesIn]);
    while (this.bytesMarks.length > 2 && now - this.bytesMarks[0][0] > 2000) this.bytesMarks.shift();
    const [t0, b0] = this.bytesMarks[0];
    const bps = now > t0 ? ((bytesIn - b0) * 1000) / (now - t0) : 0;
    const fr = this.frameIntervals.values().slice(-60);
    const fps = fr.length ? 1000 / (fr.reduce((a, b) => a + b, 0) / fr.length) : 0;
    return { ups, bps, fps };
  }

  frameStats() {
    return { frame: summary(this.frameIntervals.values()), render: summary(this.renderTimes.values()) };
  }

  resetFrames() {
    this.frameIntervals.clear();
    this.renderTimes.clear();
  }
}

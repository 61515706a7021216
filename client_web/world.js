// The client-side mirror of the replicated world: a ring of recent verified
// states by tick (the bases deltas refer to), checksum verification, desync
// counting and the decision to ask for a keyframe (`resync`). A mirror of a
// filtered view (`filtered`: the welcome had `interest`) holds the player's
// view, applied and verified by the filtered rules (PROTOCOL.md "Filtered views").
//
// Pure: the caller passes the clock (`now`, ms) and sends what `apply` asks for.

import { applyUpdate, applyView, ProtocolError, rowIn } from "./protocol.js";

/** States kept as possible delta bases (the server keeps its last 32). */
export const KEEP_STATES = 64;
/** After asking for a keyframe, deltas are dropped quietly this long before asking again (ms). */
export const RESYNC_RETRY_MS = 1000;

export class Mirror {
  /**
   * @param schema from protocol.parseSchema
   * @param filtered the updates are filtered views (`applyView`), not the whole world
   */
  constructor(schema, { keep = KEEP_STATES, filtered = false } = {}) {
    this.schema = schema;
    this.keep = keep;
    this.filtered = filtered;
    /** @type {Map<number, object>} verified states by tick, oldest first */
    this.states = new Map();
    /** The newest verified state (kept for display even after a desync). */
    this.latest = null;
    this.updates = 0;
    this.keyframes = 0;
    this.desyncs = 0;
    this.missingBase = 0;
    this.invalid = 0;
    this.lastError = null;
    /** Whether the newest update's checksum matched (false after a mismatch until a good one). */
    this.checksumOk = true;
    this.awaitingKeyframe = false;
    this._resyncAt = -Infinity;
  }

  /** The tick to acknowledge: the newest verified state still usable as a base, or null. */
  ackTick() {
    return this.awaitingKeyframe || this.latest == null || !this.states.has(this.latest.tick) ? null : this.latest.tick;
  }

  /**
   * Apply one decoded `update` message.
   * @returns {{status: "ok"|"desync"|"missing"|"invalid"|"dropped", state: object|null, resync: boolean}}
   *   `resync`: the caller must send a `resync` message now.
   */
  apply(msg, now = 0) {
    const keyframe = msg.base == null;
    let base = null;
    if (!keyframe) {
      base = this.states.get(msg.base) ?? null;
      if (base == null) {
        if (this.awaitingKeyframe && now - this._resyncAt < RESYNC_RETRY_MS) return { status: "dropped", state: null, resync: false };
        this.missingBase++;
        return { status: "missing", state: null, resync: this._askResync(now) };
      }
    }
    let state;
    try {
      state = (this.filtered ? applyView : applyUpdate)(this.schema, base, msg);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this.invalid++;
      this.lastError = e.message;
      this.states.clear();
      return { status: "invalid", state: null, resync: this._askResync(now) };
    }
    if (state.sum !== msg.sum >>> 0) {
      this.desyncs++;
      this.checksumOk = false;
      this.lastError = `checksum mismatch at tick ${msg.tick}: ${state.sum} != ${msg.sum}`;
      this.states.clear();
      return { status: "desync", state: null, resync: this._askResync(now) };
    }
    this.checksumOk = true;
    this.awaitingKeyframe = false;
    this.updates++;
    if (keyframe) this.keyframes++;
    this.states.set(state.tick, state);
    while (this.states.size > this.keep) this.states.delete(this.states.keys().next().value);
    this.latest = state;
    return { status: "ok", state, resync: false };
  }

  _askResync(now) {
    this.states.clear();
    if (this.awaitingKeyframe && now - this._resyncAt < RESYNC_RETRY_MS) return false;
    this.awaitingKeyframe = true;
    this._resyncAt = now;
    return true;
  }

  /** Forget everything (a new connection). */
  reset(schema = this.schema, filtered = this.filtered) {
    this.schema = schema;
    this.filtered = filtered;
    this.states.clear();
    this.latest = null;
    this.awaitingKeyframe = false;
    this.checksumOk = true;
  }
}

/** Row of entity `id` in ascending `ids` (binary search), or -1. */
export { rowIn };

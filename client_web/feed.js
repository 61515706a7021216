// The spectator core both pages share: server messages in; the world
// mirror, the tick clock, the interpolation buffer and the roster out, and
// the replies the protocol asks for (an `ack` per update from a client
// without an entity, one for a live feed's whole backlog; one `resync` after
// a lost state or a missed roster change) queued for the shell to send
// (`dataToSend`). The roster comes whole (`roster`) after the welcome and a
// resync, and as changes (`roster_delta`, for a hello with `roster_deltas`).
//
// Sans-I/O, like the server's protocol core: no DOM, no WebSocket, no clock
// (callers pass `now`, ms). The play page (main.js) and the replay page
// (replay.js) feed it through net.js's `openFeed`; a page adds only what is
// its own (inputs and prediction; playback controls and checkpoints).

import { ProtocolError, checksum, decodeMessage, encodeAck, encodeResync, kindName, parseSchema, viewSum } from "./protocol.js";
import { Mirror, rowIn } from "./world.js";
import { INTERP_DELAY_MS, StateBuffer, TickClock, View, sample } from "./interp.js";

/**
 * What `receive` reports, by `type`:
 * - `welcome` {msg, schema}: a new mirror (a new connection or a resume);
 * - `roster` {roster}: the players changed (`feed.roster`, `feed.names`): a
 *   whole `roster`, or a `roster_delta` applied to it;
 * - `roster_gap` {msg}: a `roster_delta` that does not follow the roster held
 *   (ignored; the feed asked for a `resync`, which brings the whole roster);
 * - `update` {msg, status, state, prev, events, stale}: `status` as
 *   `Mirror.apply` ("ok" | "desync" | "missing" | "invalid" | "dropped"), or
 *   "early" before any welcome; `state` the verified state ("ok" only), `prev`
 *   the newest one before it, `events` the update's `ev` the first time its
 *   tick is seen (else null); `stale` whether it came in a backlog, far later
 *   than the tick clock expected (a live feed only: `staleTicks`);
 * - `invalid` {error}: a message this client cannot read (ignored);
 * - any other message type {msg}: the page's business (`pong`, `error`, a
 *   playback's `replay_info` and `replay`).
 */
/** One roster entry from the wire, `[player, entity, name, online]`. */
function rosterEntry(e) {
  if (!Array.isArray(e) || e.length !== 4) throw new ProtocolError("roster: each player is [player, entity, name, online]");
  const [player, entity, name, online] = e;
  return { player, entity, name, online };
}

export class Feed {
  /**
   * @param bufferSize verified states kept to interpolate between
   * @param restartOnKeyframe a keyframe starts the timeline afresh (buffer and
   *   clock): a replay's seek may jump either way. Live, a keyframe (after a
   *   resync) goes on from where the timeline was.
   * @param interpDelayMs how far behind the tick clock entities are drawn
   * @param staleTicks a live feed: updates later than this (ticks) are a
   *   backlog, reported `stale` and kept out of the tick clock (interp.js's
   *   `TickClock`); null: no such thing (a replay)
   */
  constructor({ bufferSize = 40, restartOnKeyframe = false, interpDelayMs = INTERP_DELAY_MS, staleTicks = null } = {}) {
    this.buffer = new StateBuffer(bufferSize);
    this.view = new View();
    this.restartOnKeyframe = restartOnKeyframe;
    this.interpDelayMs = interpDelayMs;
    this.staleTicks = staleTicks;
    this._out = [];
    this.reset();
  }

  /** Forget the connection (leaving, or opening another one). */
  reset() {
    this.welcome = null;
    this.schema = null;
    this.mirror = null;
    /** `welcome.interest` (the view's shape: PROTOCOL.md "Filtered views"), or null: the whole world. */
    this.interest = null;
    this.clock = null;
    this.tickMs = null;
    /** Ticks of the server per tick of its rate (a playback's speed). */
    this.speed = 1;
    /** The render tick of the last `sample`. */
    this.renderTick = null;
    /** @type {{player, entity, name, online}[]} */
    this.roster = [];
    /** Roster entries by entity id. */
    this.names = new Map();
    /** Roster entries by player id, and their revision (`roster.rev`; null: none held, or a change was missed). */
    this._players = new Map();
    this.rosterRev = null;
    /** Roster changes that did not follow the revision held (each asked for a resync), and whether one is asked. */
    this.rosterGaps = 0;
    this._rosterAsked = false;
    this.lastEventTick = -1;
    this.buffer.clear();
    this._out.length = 0;
    this._ackedAt = -Infinity;
  }

  /** The newest verified state, or null. */
  get latest() {
    return this.mirror ? this.mirror.latest : null;
  }

  /** Welcomed without an entity (a spectator, a replay viewer): acknowledges every update itself. */
  get spectator() {
    return this.welcome != null && this.welcome.entity == null;
  }

  /** The tick to acknowledge (a player's `input.ack`), or null. */
  ackTick() {
    return this.mirror ? this.mirror.ackTick() : null;
  }

  /** Encoded messages to send, oldest first; the queue is emptied. */
  dataToSend() {
    return this._out.splice(0);
  }

  /** One binary frame from the server. */
  receiveData(bytes, now) {
    let msg;
    try {
      msg = decodeMessage(bytes);
    } catch (error) {
      return { type: "invalid", error };
    }
    return this.receive(msg, now);
  }

  /** One decoded message. */
  receive(msg, now) {
    try {
      switch (msg.t) {
        case "welcome": return this._welcome(msg);
        case "roster": return this._roster(msg);
        case "roster_delta": return this._rosterDelta(msg);
        case "update": return this._update(msg, now);
        default: return { type: msg.t, msg };
      }
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return { type: "invalid", error };
    }
  }

  _welcome(msg) {
    const schema = parseSchema(msg.ruleset);
    this.welcome = msg;
    this.schema = schema;
    // A filtered view (interest management) when the welcome says so: the player's view only.
    this.interest = msg.interest ?? null;
    this.mirror = new Mirror(schema, { filtered: this.interest != null });
    this.buffer.clear();
    this.tickMs = 1000 / msg.tick_rate;
    this.speed = 1;
    this.clock = new TickClock(this.tickMs, { staleTicks: this.staleTicks });
    this.lastEventTick = -1;
    return { type: "welcome", msg, schema };
  }

  _roster(msg) {
    if (!Array.isArray(msg.players)) throw new ProtocolError("roster: players must be an array");
    this._players = new Map(msg.players.map(rosterEntry).map((p) => [p.player, p]));
    this.rosterRev = Number.isInteger(msg.rev) ? msg.rev : null;
    this._rosterAsked = false;
    return this._rosterChanged();
  }

  /**
   * A roster change (PROTOCOL.md `roster_delta`): applied only to the revision
   * before it; after a gap (a change the server dropped for a slow reader) one
   * `resync` asks for the whole roster, and changes wait for it.
   */
  _rosterDelta(msg) {
    if (!Number.isInteger(msg.rev) || !Array.isArray(msg.players) || !Array.isArray(msg.gone)) {
      throw new ProtocolError("roster_delta: expected rev, players and gone");
    }
    const entries = msg.players.map(rosterEntry);
    if (this.rosterRev == null || msg.rev !== this.rosterRev + 1) {
      this.rosterGaps++;
      this.rosterRev = null;
      if (!this._rosterAsked) {
        this._rosterAsked = true;
        this._out.push(encodeResync());
      }
      return { type: "roster_gap", msg };
    }
    for (const id of msg.gone) this._players.delete(id);
    for (const p of entries) this._players.set(p.player, p);
    this.rosterRev = msg.rev;
    return this._rosterChanged();
  }

  _rosterChanged() {
    this.roster = [...this._players.values()].sort((a, b) => a.player - b.player);
    this.names = new Map(this.roster.filter((p) => p.entity != null).map((p) => [p.entity, p]));
    return { type: "roster", roster: this.roster };
  }

  _update(msg, now) {
    if (!this.mirror) return { type: "update", msg, status: "early", state: null, prev: null, events: null, stale: false };
    const prev = this.mirror.latest;
    const r = this.mirror.apply(msg, now);
    if (r.resync) this._out.push(encodeResync());
    let events = null;
    if (Array.isArray(msg.ev) && msg.tick > this.lastEventTick) {
      this.lastEventTick = msg.tick;
      events = msg.ev;
    }
    let stale = false;
    if (r.status === "ok") {
      if (this.restartOnKeyframe && msg.base == null) {
        this.buffer.clear();
        this.clock.reset();
      }
      this.buffer.push(r.state);
      stale = this.clock.observe(r.state.tick, now);
    }
    if (this.spectator) {
      // One ack per update; a backlog's stale updates, processed back to back, get one between them.
      const t = this.mirror.ackTick();
      if (t != null && !(stale && now - this._ackedAt < this.tickMs)) {
        this._out.push(encodeAck(t));
        this._ackedAt = now;
      }
    }
    return { type: "update", msg, status: r.status, state: r.state, prev, events, stale };
  }

  /** The server's tick rate changed by `speed` (a playback's 0.25x..8x): the clock starts afresh at that rate. */
  setSpeed(speed) {
    if (speed === this.speed || !this.tickMs) return;
    this.speed = speed;
    this.clock = new TickClock(this.tickMs / speed, { staleTicks: this.staleTicks });
  }

  /**
   * The picture to draw at `now`: every entity interpolated `interpDelayMs`
   * behind the tick clock (`hold`: exactly the newest state, as while a
   * playback is paused). Fills and returns `this.view`; null before the
   * first verified state.
   */
  sample(now, { hold = false } = {}) {
    const newest = this.buffer.newest, tickNow = this.clock ? this.clock.tickAt(now) : null;
    if (!this.schema || !newest) return null;
    // A clock started afresh (a new speed) reads nothing until the next update: hold till then.
    this.renderTick = hold || tickNow == null ? newest.tick : tickNow - (this.interpDelayMs * this.speed) / this.tickMs;
    return sample(this.schema, this.buffer.bracket(this.renderTick), this.view);
  }

  /**
   * The tick the last `sample` showed the world at, floored, within the
   * states held (never past the newest): an input's `view`, so the server
   * judges its shots against what the player saw. Null before any sample.
   */
  viewTick() {
    const newest = this.buffer.newest, first = this.buffer.states[0];
    if (this.renderTick == null || !newest) return null;
    return Math.max(first.tick, Math.min(newest.tick, Math.floor(this.renderTick)));
  }

  /** The roster with each player's row and score in the newest state, best first (ties: lower player id). */
  standings() {
    const st = this.latest, iscore = this.schema ? this.schema.index.score : null;
    return this.roster.map((p) => {
      const row = st && p.entity != null ? rowIn(st.ids, p.entity) : -1;
      return { ...p, row, score: row >= 0 && iscore != null ? st.cols[iscore][row] : 0 };
    }).sort((a, b) => b.score - a.score || a.player - b.player);
  }

  // -- what tests and debug hooks read -------------------------------------------------

  /** The newest state's tick, its checksum recomputed from its arrays, and its entity count; or null. */
  mirrorChecksum() {
    const st = this.latest;
    const sum = this.mirror.filtered ? viewSum : checksum;
    return st ? { tick: st.tick, sum: sum(st.ids, st.cols) >>> 0, count: st.ids.length } : null;
  }

  /** The newest state as plain objects ({id, column: value, ..., kindName}), optionally of one kind. */
  entities(kind = null) {
    const st = this.latest, s = this.schema;
    if (!st) return [];
    const out = [];
    for (let i = 0; i < st.ids.length; i++) {
      const e = { id: st.ids[i] };
      s.columns.forEach((c, j) => { e[c.name] = st.cols[j][i]; });
      e.kindName = s.index.kind != null ? kindName(s, e.kind) : null;
      if (kind == null || e.kindName === kind) out.push(e);
    }
    return out;
  }

  /** Entities in the newest state per kind name. */
  kindCounts() {
    const st = this.latest, s = this.schema, counts = {};
    if (!st || s.index.kind == null) return counts;
    for (const k of st.cols[s.index.kind]) { const name = kindName(s, k); counts[name] = (counts[name] || 0) + 1; }
    return counts;
  }

  /** The mirror's counters and the newest tick, for a page's debug state. */
  stats() {
    const m = this.mirror, st = this.latest;
    return {
      ruleset: this.schema ? this.schema.name : null,
      tick: st ? st.tick : null,
      checksumOk: m ? m.checksumOk : null,
      desyncs: m ? m.desyncs : 0,
      missingBase: m ? m.missingBase : 0,
      keyframes: m ? m.keyframes : 0,
      updates: m ? m.updates : 0,
      entityCount: st ? st.ids.length : 0,
    };
  }
}

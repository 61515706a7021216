// What the play page makes of a tick's events (`update.ev`, PROTOCOL.md,
// arena's events): rings and floating texts for the renderer, the kill feed,
// and who destroyed the player. Pure: callers pass the states and `now` (ms).

import { INTERP_DELAY_MS } from "./interp.js";
import { kindName } from "./protocol.js";
import { rowIn } from "./world.js";
import { toWorld } from "./camera.js";

/** Effects kept at most; kill feed lines shown at most, and for how long (ms). */
export const MAX_EFFECTS = 200;
export const KILLS_SHOWN = 5;
export const KILL_MS = 6000;

export class Effects {
  constructor() {
    /** For the renderer: {x, y (world units), t0, ms, r0, r1, width, color, text?}. */
    this.list = [];
    /** The kill feed, oldest first: {killer, victim, mine, t}. */
    this.kills = [];
    /** Who destroyed the player last (cleared when it lives again). */
    this.deathBy = null;
  }

  clear() {
    this.list.length = 0;
    this.kills.length = 0;
    this.deathBy = null;
  }

  /**
   * The events of one update. `cur`, `prev`: the states after and before it
   * (either may be null); `names`: roster entries by entity; `me`: the
   * player's entity or null. Effects elsewhere start `delayMs` later (the
   * page's interpolation delay), to line up with the interpolated picture;
   * the player's own at once.
   */
  apply(events, { schema, names, me, cur, prev, now, delayMs = INTERP_DELAY_MS }) {
    const states = [cur, prev], later = now + delayMs;
    const nameOf = (entity) => {
      const p = names.get(entity);
      if (p) return p.name;
      for (const st of states) {
        const row = st && schema.index.kind != null ? rowIn(st.ids, entity) : -1;
        if (row >= 0) return `a ${kindName(schema, st.cols[schema.index.kind][row])}`;
      }
      return "something";
    };
    const at = (entity, order = states) => {
      for (const st of order) {
        const row = st ? rowIn(st.ids, entity) : -1;
        if (row >= 0) return toWorld(schema, st.cols[schema.index.x][row], st.cols[schema.index.y][row]);
      }
      return null;
    };
    const add = (p, t0, ms, r0, r1, width, color, text) => {
      if (p) this.list.push(text ? { ...p, t0, ms, r0, r1, width, color, text } : { ...p, t0, ms, r0, r1, width, color });
    };
    for (const ev of events) {
      if (!Array.isArray(ev) || typeof ev[0] !== "string") continue;
      const [kind, a, b] = ev;
      if (kind === "kill") {
        const killer = nameOf(a), victim = nameOf(b), p = at(b);
        this.pushKill(killer, victim, a === me || b === me, now);
        add(p, later, 700, 10, 90, 6, "#ff6b6b");
        if (b === me) this.deathBy = killer;
        if (a === me) add(at(a) || p || { x: 0, y: 0 }, now, 1100, 0, 0, 0, "#ffd166", `You destroyed ${victim}!`);
      } else if (kind === "drone_kill") {
        const p = at(b, [prev, cur]);
        add(p, later, 450, 6, 55, 4, "#ff8a5a");
        if (a === me) add(p, later, 900, 0, 0, 0, "#ffb84d", "+5");
      } else if (kind === "pickup") {
        const p = at(b, [prev, cur]);
        if (a === me) add(p, now, 700, 4, 26, 2, "#6cf0c2", "+1");
        else add(p, later, 350, 4, 18, 2, "#6cf0c2");
      } else if (kind === "respawn") {
        add(at(a), a === me ? now : later, 800, 60, 18, 3, "#59b8ff");
        if (a === me) this.deathBy = null;
      }
    }
    if (this.list.length > MAX_EFFECTS) this.list.splice(0, this.list.length - MAX_EFFECTS);
  }

  /** A line of the kill feed (`mine`: the player killed or was killed). */
  pushKill(killer, victim, mine, now) {
    this.kills.push({ killer, victim, mine, t: now });
    if (this.kills.length > KILLS_SHOWN) this.kills.shift();
  }

  /** The kill feed lines still shown at `now`. */
  recentKills(now) {
    this.kills = this.kills.filter((k) => now - k.t < KILL_MS);
    return this.kills;
  }
}

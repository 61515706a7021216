// The play page (index.html): join a match to play or spectate. This module
// only wires the pieces together: the spectator core (feed.js) behind the
// WebSocket shell (net.js), the player's inputs (input.js) and their
// prediction (predict.js), the camera (camera.js), the canvas (render.js),
// the DOM of the join screen and the HUD (hud.js), the events' effects
// (effects.js) and the page's own measurements (stats.js); and it keeps a
// debug hook for tests (`window.__game`).
//
// A link from the lobby (lobby.html) names a match and a seat:
// `?match=ID&seat=TOKEN[&ws=URL]` joins that match at once, presenting the
// seat (from `POST /api/matchmake`) in the hello; `?match=ID&spectate=1`
// watches it. The seat is presented once: reconnections resume with the
// welcome's token instead. `?interp=MS` draws the others that far behind the
// tick clock instead of the default (interp.js's INTERP_DELAY_MS; for tests
// and for trying other networks).

import {
  CLOSE_REASONS, cleanName, encodeAck, encodeHello, encodeInput, encodeLeave, encodePing, helloRefused, serverMinor,
} from "./protocol.js";
import { Feed } from "./feed.js";
import { INTERP_DELAY_MS, STALE_TICKS } from "./interp.js";
import { Camera, cycle, entityAt, followZoom, toWorld, wholeArena } from "./camera.js";
import { Prediction } from "./predict.js";
import { OwnShots, shotRule } from "./shots.js";
import { Controls, InputScheduler, inputValues } from "./input.js";
import { httpUrl, openFeed, socketUrl } from "./net.js";
import { Renderer } from "./render.js";
import { Effects } from "./effects.js";
import { Fader } from "./fade.js";
import { Hud, closeNotice } from "./hud.js";
import { Meters } from "./stats.js";
import { rowIn } from "./world.js";
import { $ } from "./dom.js";

const params = new URLSearchParams(location.search);
const WS_URL = socketUrl(params, location);
/** The match the page was sent to (null: the server's default match), and the seat reserved in it, if any. */
const MATCH = params.get("match");
const SEAT = params.get("seat");
/** The local muzzle flash (cosmetic, on sending fire): how long it shows, and at most how often (ms). */
const FLASH_MS = 90;
const FLASH_EVERY_MS = 150;
/** How often the HUD is redrawn (ms). */
const HUD_MS = 250;
/** How often the join screen asks the server how many play (ms), while it shows. */
const STATUS_MS = 3000;

/** `?NAME=` as a number within lo..hi, else `fallback`. */
function numberParam(name, lo, hi, fallback) {
  const raw = params.get(name);
  const v = raw == null || raw === "" ? NaN : Number(raw);
  return Number.isFinite(v) && v >= lo && v <= hi ? v : fallback;
}
/** The interpolation delay (ms): `?interp=` overrides the default. */
const INTERP_MS = numberParam("interp", 0, 1000, INTERP_DELAY_MS);

class Game {
  constructor() {
    this.canvas = $("game");
    this.renderer = new Renderer(this.canvas);
    this.controls = new Controls(this.canvas).attach(window);
    this.controls.onAction = (a) => this.onAction(a);
    this.hud = new Hud();
    this.feed = new Feed({ bufferSize: 40, interpDelayMs: INTERP_MS, staleTicks: STALE_TICKS });
    this.effects = new Effects();
    /** Entities fading in and out at the edge of a filtered view (interest management). */
    this.fader = new Fader();
    this.camera = new Camera();
    this.meters = new Meters();
    this.phase = "idle"; // idle | connecting | live | reconnecting
    this.link = null;
    this.prediction = null;
    this.scheduler = null;
    this.token = null;
    this.seat = SEAT; // spent by the first welcome
    /** A 1.0 server refused minor 1's keys in our hello: hellos go without them from then on. */
    this.plainHello = false;
    this.matchId = null;
    this.name = "";
    this.spectate = false;
    this.me = null;
    this.player = null;
    this.seq = 0; // per connection: the first input of each is 1
    this.follow = null; // spectators: entity followed, null = whole arena
    this.arenaView = params.get("view") === "arena";
    this.rtt = null;
    this.pingId = 0;
    this.reconnects = 0;
    this.resumed = false;
    this.serverError = null;
    this.lastDrop = null;
    this.lastHud = 0;
    this.flashAt = -Infinity;
    this.flashes = 0;
    this.statusAsked = 0;
    this.statusPlayers = null; // the player count the join screen shows
    this.timers = null; // the match's timers: inputs during a downlink stall, the reconnect countdown, pings
    this.statusTimer = null; // the join screen's: the player count stays fresh
    this.hud.wire({
      play: (name) => this.join(name, false),
      watch: (name) => this.join(name, true),
      leave: () => this.leave(),
      retry: () => this.link && this.link.retryNow(),
      // Touch spectators have no Tab key: a tap on the bar shows the next player, then the whole arena.
      tapSpectating: () => {
        const list = this.followable();
        if (!this.arenaView && list.length && list[list.length - 1] === this.follow) this.arenaView = true;
        else this.cycle(1);
        this.lastHud = -Infinity;
      },
    });
    this.hud.prefill(this.defaultName());
    this.statusTimers(true);
    requestAnimationFrame((t) => this.frame(t));
    // A seat is held for seconds only, and a spectator sent by the lobby asked to watch: both join at once.
    const spectate = params.get("spectate") === "1";
    if (params.get("autojoin") || (MATCH && (SEAT || spectate))) this.join(params.get("name") || this.defaultName(), spectate);
  }

  get schema() {
    return this.feed.schema;
  }

  // -- joining and leaving ---------------------------------------------------------------

  defaultName() {
    let n = null;
    try { n = localStorage.getItem("arena.name"); } catch { /* storage may be off */ }
    return n || `Player${Math.floor(100 + Math.random() * 900)}`;
  }

  async fetchStatus() {
    const asked = ++this.statusAsked;
    try {
      const url = MATCH ? `${httpUrl(WS_URL, "/api/match")}?id=${encodeURIComponent(MATCH)}` : httpUrl(WS_URL, "/healthz");
      const r = await fetch(url, { cache: "no-store" });
      const h = await r.json();
      if (!r.ok) throw new Error(h.error);
      const n = typeof h.players === "number" ? h.players : h.players.length;
      if (asked !== this.statusAsked || this.phase !== "idle") return; // a newer answer is coming, or we joined
      this.statusPlayers = n;
      this.hud.setStatus(`${h.ruleset} · ${n} player${n === 1 ? "" : "s"} in the match${MATCH ? ` ${MATCH}` : ""}`);
    } catch {
      if (asked === this.statusAsked && this.phase === "idle") this.hud.setStatus("");
    }
  }

  /** Ask for the status now and every STATUS_MS while the join screen shows (`on`), or stop asking. */
  statusTimers(on) {
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = null;
    if (!on) return;
    this.fetchStatus();
    this.statusTimer = setInterval(() => { if (this.phase === "idle") this.fetchStatus(); }, STATUS_MS);
  }

  /** Run the match's timers (`on`) or stop them: the join screen needs none. */
  matchTimers(on) {
    if (on && !this.timers) {
      this.timers = [setInterval(() => this.tickTimers(), 10), setInterval(() => this.ping(), 1000)];
    } else if (!on && this.timers) {
      this.timers.forEach(clearInterval);
      this.timers = null;
    }
  }

  showJoin(error) {
    this.phase = "idle";
    this.matchTimers(false);
    this.hud.showJoin(error);
    this.statusTimers(true);
  }

  join(rawName, spectate) {
    const name = cleanName(rawName);
    if (!name) { this.showJoin("Pick a name first (1–24 characters)."); return; }
    try { localStorage.setItem("arena.name", name); } catch { /* ignore */ }
    this.name = name;
    this.spectate = spectate;
    this.token = null;
    this.reconnects = 0;
    this.serverError = null;
    this.phase = "connecting";
    this.statusTimers(false);
    this.matchTimers(true);
    this.hud.joining();
    if (this.link) this.link.stop();
    this.link = openFeed(WS_URL, this.feed, {
      // A spectator takes no seat; a resume presents its token instead of the (spent) seat.
      hello: () => encodeHello(this.name, {
        // Minor 1's keys, unless a 1.0 server refused them (onClose): then a plain hello.
        spectate: this.spectate, token: this.token, seat: this.spectate || this.token ? null : this.seat,
        interest: !this.plainHello, rosterDeltas: !this.plainHello,
      }),
      onEvent: (ev) => this.onEvent(ev),
      onClose: (info) => this.onClose(info),
      onRetry: () => { this.phase = "reconnecting"; this.serverError = null; this.showReconnecting(); },
    });
    this.link.start();
  }

  /** Esc: a player is asked first (leaving gives up the player and its reconnect token); Esc again leaves. */
  askLeave() {
    if (this.phase === "idle") return;
    if (this.spectate || this.me == null || this.hud.confirmingLeave) this.leave();
    else this.hud.askLeave();
  }

  /**
   * Leave for good: a player says so (`leave`: the server removes it at once
   * instead of holding it for a reconnect) and closes with 1000; the join
   * screen asks for the player count again once the socket is closed.
   */
  leave() {
    const link = this.link;
    this.link = null;
    this.me = null;
    this.showJoin(null);
    if (!link) return;
    if (!this.spectate && serverMinor(this.feed.welcome) >= 1) link.send(encodeLeave()); // a 1.0 server: the close says it
    link.stop(1000, "left").then(() => { if (this.phase === "idle") this.fetchStatus(); });
  }

  // -- the connection --------------------------------------------------------------------

  onEvent(ev) {
    const now = performance.now();
    switch (ev.type) {
      case "welcome": this.onWelcome(ev.msg, now); break;
      case "roster": this.lastHud = -Infinity; break;
      case "update": this.onUpdate(ev, now); break;
      case "pong":
        if (typeof ev.msg.time === "number") {
          const rtt = now - ev.msg.time;
          this.rtt = this.rtt == null ? rtt : this.rtt * 0.7 + rtt * 0.3;
        }
        break;
      case "error": this.serverError = { code: ev.msg.code, reason: ev.msg.reason }; break;
      default: break; // later minor versions may add messages
    }
  }

  onWelcome(msg, now) {
    const wasReconnecting = this.phase === "reconnecting";
    const schema = this.feed.schema;
    this.prediction = Prediction.forWelcome(schema, msg.entity, this.feed.tickMs);
    const shots = this.prediction && shotRule(schema);
    this.ownShots = shots ? new OwnShots(shots) : null; // our shots drawn at once (shots.js)
    this.scheduler = new InputScheduler(this.feed.tickMs);
    this.seq = 0;
    this.token = msg.token;
    if (!this.spectate && this.seat) {
      // Spent: a reload must not present it again (4409), so it leaves the address too.
      this.seat = null;
      const q = new URLSearchParams(location.search);
      q.delete("seat");
      history.replaceState(null, "", `${location.pathname}?${q}`);
    }
    this.matchId = msg.match;
    this.me = msg.entity ?? null;
    this.player = msg.player;
    this.resumed = !!msg.resumed;
    this.effects.deathBy = null;
    this.fader.clear();
    this.phase = "live";
    const touch = this.controls.touched || (window.matchMedia && window.matchMedia("(pointer: coarse)").matches);
    this.hud.showMatch({ title: `${schema.name[0].toUpperCase()}${schema.name.slice(1)} · ${this.name}`, spectate: this.spectate, touch, now });
    if (this.spectate) {
      if (params.get("view") !== "follow" && this.follow == null) this.arenaView = true;
    } else {
      this.arenaView = false;
    }
    if (wasReconnecting) {
      this.reconnects++;
      this.hud.flashBanner(this.resumed ? "Reconnected — welcome back!" : "Reconnected as a new player (the old one had expired).", "ok");
    } else {
      this.hud.hideBanner();
    }
    this.canvas.focus();
    this.lastHud = -Infinity;
  }

  onUpdate({ msg, status, state, prev, events, stale }, now) {
    if (status === "early") return;
    if (events) {
      this.effects.apply(events, { schema: this.feed.schema, names: this.feed.names, me: this.me, cur: state, prev, now, delayMs: INTERP_MS });
      this.hud.showKills(this.effects.recentKills(now));
    }
    // One input per update; one for a whole backlog (input.js).
    const send = !this.feed.spectator && this.scheduler.onUpdate(msg.tick, now, stale);
    if (!this.feed.spectator) this.scheduler.skips.observe(msg.ack, msg.surplus);
    if (status === "ok") {
      this.meters.update(now);
      const late = stale ? null : this.feed.clock.tickAt(now) - state.tick;
      if (this.prediction && this.prediction.observe(state, msg.ack, late, this.scheduler.backlog)) this.effects.deathBy = null;
      const s = this.feed.schema;
      if (this.ownShots) this.ownShots.observe(state, s.index.x, s.index.y, s.index.kind);
    }
    if (send) this.answer(now, msg.tick);
  }

  /**
   * Answer the update of `tick` with the input of this moment, or leave it out when the server holds more of
   * ours than it needs (input.js, `Skips`): its seq is spent, the update acknowledged, latched presses kept.
   */
  answer(now, tick) {
    if (!this.feed.schema || !this.link || !this.link.open || this.spectate || this.me == null) return;
    if (!this.scheduler.skips.skip(this.seq + 1)) {
      this.sendInput(now, tick);
      return;
    }
    this.seq++;
    const t = this.feed.ackTick();
    if (t != null) this.link.send(encodeAck(t));
    this.scheduler.sent(now);
  }

  /** Send the input of this moment (latched presses spent); `tick`: the update it answers. */
  sendInput(now, tick) {
    const schema = this.feed.schema;
    if (!schema || !this.link || !this.link.open || this.spectate || this.me == null) return;
    const [px, py] = this.myScreenPos();
    const values = inputValues(schema.inputs, this.controls.take(px, py));
    this.seq++;
    const view = serverMinor(this.feed.welcome) >= 1 ? this.feed.viewTick() : null; // a 1.0 server refuses `view`
    this.link.send(encodeInput(this.seq, values, this.feed.ackTick(), view));
    const p = this.prediction;
    if (p) p.sent(this.seq, values, tick);
    if (p && this.ownShots) {
      const pr = p.predictor, tr = pr.trail;
      this.ownShots.sent(values, tr.length ? tr[tr.length - 1].t : null, pr.x, pr.y, p.alive);
    }
    // Fire shows at once at our gun; the bullet itself comes from the server a round trip later.
    const fire = schema.inputs.findIndex((f) => f.name === "fire");
    if (fire >= 0 && values[fire] > 0 && (!p || p.alive) && now - this.flashAt >= FLASH_EVERY_MS) {
      this.flashAt = now;
      this.flashes++;
    }
    this.scheduler.sent(now);
  }

  ping() {
    if (this.phase !== "live" || !this.link || !this.link.open) return;
    this.link.send(encodePing(++this.pingId, performance.now()));
  }

  tickTimers() {
    const now = performance.now();
    const stalled = this.phase === "live" && this.scheduler ? this.scheduler.onTimer(now) : null;
    if (stalled != null) this.sendInput(now, stalled);
    if (this.phase === "reconnecting") this.showReconnecting();
  }

  onClose(info) {
    const reason = (this.serverError && this.serverError.reason) || info.reason;
    if (!this.plainHello && this.phase === "connecting" && helloRefused(info.code, reason)) {
      this.plainHello = true; // a 1.0 server: join again without minor 1's keys
      this.join(this.name, this.spectate);
      return;
    }
    if (info.willRetry) {
      const err = this.serverError;
      this.phase = "reconnecting";
      this.lastDrop = { code: info.code, reason: (err && err.reason) || info.reason || CLOSE_REASONS[info.code] || "" };
      this.showReconnecting();
      return;
    }
    if (this.phase !== "idle") this.showJoin(closeNotice(info, this.serverError, WS_URL, MATCH));
  }

  showReconnecting() {
    const l = this.link;
    if (!l) return;
    const why = (this.lastDrop && (this.lastDrop.reason || CLOSE_REASONS[this.lastDrop.code])) || "connection lost";
    this.hud.showReconnecting(why, l.retryTimer != null ? l.retryAt : null, l.backoff.attempt);
  }

  // -- spectating ------------------------------------------------------------------------

  /** Entities of the roster's players in the newest state, in roster order. */
  followable() {
    const st = this.feed.buffer.newest;
    return st ? this.feed.roster.filter((p) => p.entity != null && rowIn(st.ids, p.entity) >= 0).map((p) => p.entity) : [];
  }

  onAction(action) {
    if (action === "escape") { this.askLeave(); return; }
    if (action === "minimap") { this.renderer.showMinimap = !this.renderer.showMinimap; return; }
    if (!this.spectate) return;
    if (action === "arena") { this.arenaView = !this.arenaView; if (!this.arenaView && this.follow == null) this.cycle(1); return; }
    if (action === "next" || action === "prev") this.cycle(action === "next" ? 1 : -1);
  }

  cycle(dir) {
    this.follow = cycle(this.followable(), this.follow, dir);
    this.arenaView = this.follow == null;
  }

  // -- frame -----------------------------------------------------------------------------

  myScreenPos() {
    const pos = this.prediction && this.prediction.position();
    if (!pos) return [this.renderer.w / 2, this.renderer.h / 2];
    const w = toWorld(this.feed.schema, pos.x, pos.y);
    return this.renderer.toScreen(w.x, w.y);
  }

  frame(ts) {
    requestAnimationFrame((t) => this.frame(t));
    const dt = this.meters.frame(ts);
    const t0 = performance.now();
    const r = this.renderer;
    r.resize();
    if (this.phase === "idle") {
      r.drawIdle(ts);
      return;
    }
    const view = this.feed.sample(ts);
    if (view && this.feed.interest) this.fader.observe(this.feed.schema, view.state, ts, this.feed.interest, this.me);
    if (view) {
      let mePos = null;
      if (this.prediction && this.me != null && rowIn(view.state.ids, this.me) >= 0) {
        mePos = this.prediction.frame(dt, ts, this.feed.clock.tickAt(ts));
      }
      this.updateCamera(view, mePos, dt);
      const aiming = !this.spectate && this.me != null && (this.controls.mouse.seen || this.controls.touch.aim);
      r.draw({
        schema: this.feed.schema, view, camera: this.camera, me: this.me, mePos,
        myAim: aiming ? this.controls.aimAngle : null,
        myFlash: Math.min(1, Math.max(0, 1 - (ts - this.flashAt) / FLASH_MS)),
        names: this.feed.names, effects: this.effects.list, now: ts, wholeArena: this.spectate && this.arenaView,
        fade: this.feed.interest ? this.fader : null, tickMs: this.feed.tickMs,
        ownShots: this.ownShots && mePos ? this.ownShots.at(this.prediction.pacer.head) : null,
        ownShotKind: this.ownShots ? this.ownShots.rule.kind : 0, hidden: this.ownShots ? this.ownShots.hidden : null,
      });
      r.drawSticks(this.controls.touch);
    } else {
      r.drawIdle(ts);
    }
    this.meters.rendered(performance.now() - t0);
    if (ts - this.lastHud > HUD_MS) {
      this.lastHud = ts;
      this.updateHud(ts);
    }
  }

  /** The player's predicted position (locked), the player or the followed entity, or the whole arena. */
  updateCamera(view, mePos, dt) {
    const s = this.feed.schema, r = this.renderer;
    let target = null;
    if (!this.spectate && mePos) target = toWorld(s, mePos.x, mePos.y);
    else if (!this.spectate) target = entityAt(s, view, this.me);
    else if (!this.arenaView) {
      target = entityAt(s, view, this.follow);
      if (!target) this.cycle(1);
    }
    const { zoom, ...at } = target ? { ...target, zoom: followZoom(r.w, r.h) } : wholeArena(s, r.w, r.h, this.hud.insets);
    this.camera.move(at, zoom, dt, { lock: !this.spectate && mePos != null });
  }

  updateHud(now) {
    const s = this.feed.schema, st = this.feed.latest;
    if (!s || !st) return;
    this.hud.showKills(this.effects.recentKills(now));
    const { ups, bps, fps } = this.meters.rates(now, this.link ? this.link.bytesIn : 0);
    let card = null;
    if (this.me != null) {
      const row = rowIn(st.ids, this.me), ihp = s.index.hp, iscore = s.index.score;
      const hp = row >= 0 && ihp != null ? st.cols[ihp][row] : 0;
      card = {
        name: this.name, player: this.player, hp, deathBy: this.effects.deathBy,
        score: row >= 0 && iscore != null ? st.cols[iscore][row] : 0,
        dead: ihp != null && row >= 0 && hp === 0,
      };
    }
    const who = this.arenaView || this.follow == null ? "the whole arena" : (this.feed.names.get(this.follow)?.name ?? `#${this.follow}`);
    this.hud.show({
      standings: this.feed.standings(), me: this.me, card, now,
      spectating: this.spectate ? { who } : null,
      net: {
        ping: this.rtt, tick: st.tick, ups, bps, fps, entities: st.ids.length,
        desyncs: this.feed.stats().desyncs, corrections: this.prediction ? this.prediction.predictor.corrections : 0,
      },
    });
  }

  // -- debug hook --------------------------------------------------------------------------

  debugState() {
    const s = this.feed.schema, fs = this.feed.stats();
    const mePos = this.prediction && this.prediction.position();
    const { ups, bps } = this.meters.rates(performance.now(), this.link ? this.link.bytesIn : 0);
    const banner = this.hud.banner;
    const predictor = this.prediction && this.prediction.predictor;
    return {
      ...fs,
      phase: this.phase,
      connected: !!(this.link && this.link.open),
      kinds: this.feed.kindCounts(),
      drawn: { ...this.renderer.drawn },
      interest: this.feed.interest, // a filtered view's shape, or null: the whole world
      faded: { in: this.fader.fadedIn, out: this.fader.fadedOut },
      drawnTotal: Object.values(this.renderer.drawn).reduce((a, b) => a + b, 0),
      me: this.me,
      player: this.player,
      name: this.name,
      spectate: this.spectate,
      match: this.matchId,
      url: this.link ? this.link.url : WS_URL, // where a moved match took the link
      seat: this.seat,
      arenaView: this.arenaView,
      follow: this.follow,
      token: this.token,
      resumed: this.resumed,
      reconnects: this.reconnects,
      banner: banner && banner.text,
      bannerKind: banner && banner.kind,
      confirmLeave: this.hud.confirmingLeave,
      joinError: this.hud.joinError,
      rtt: this.rtt,
      updatesPerSec: ups,
      bytesPerSec: bps,
      roster: this.feed.roster.map((p) => ({ ...p })),
      rosterRev: this.feed.rosterRev,
      rosterGaps: this.feed.rosterGaps,
      mePredicted: mePos && s ? toWorld(s, mePos.x, mePos.y) : null,
      pending: predictor ? predictor.pending.length : 0,
      corrections: predictor ? predictor.corrections : 0,
      unexplained: predictor ? predictor.unexplained : 0,
      reconciled: predictor ? predictor.reconciled : 0,
      seq: this.seq,
      skipped: this.scheduler ? this.scheduler.skips.skipped : 0,
      backlogs: this.scheduler ? this.scheduler.backlogs : 0,
      lastBacklog: this.scheduler && this.scheduler.lastBacklog ? { ...this.scheduler.lastBacklog } : null,
      interpMs: INTERP_MS,
      statusPlayers: this.statusPlayers,
      flashes: this.flashes,
      /** Our shots drawn at once (shots.js): fired, drawn now, server copies hidden now. */
      ownShots: this.ownShots ? { fired: this.ownShots.fired, flying: this.ownShots.shots.length, hidden: this.ownShots.hidden.size } : null,
      camera: { x: this.camera.x, y: this.camera.y, zoom: this.camera.zoom },
      renderTick: this.feed.renderTick,
    };
  }
}

const game = new Game();

window.__game = {
  game,
  state: () => game.debugState(),
  /** The newest mirror state's checksum, recomputed from its arrays. */
  mirrorChecksum: () => game.feed.mirrorChecksum(),
  /** The newest mirror state as plain objects (optionally one kind). */
  entities: (kind = null) => game.feed.entities(kind),
  frameTimes: () => game.meters.frameIntervals.values(),
  renderTimes: () => game.meters.renderTimes.values(),
  frameStats: () => game.meters.frameStats(),
  resetFrameStats: () => game.meters.resetFrames(),
  drop: () => game.link && game.link.drop(),
  join: (name, spectate = false) => game.join(name, spectate),
  leave: () => game.leave(),
  action: (a) => game.onAction(a),
  /** Show a line in the kill feed (tests of the HUD's layout). */
  kill: (killer, victim, mine = false) => {
    game.effects.pushKill(killer, victim, mine, performance.now());
    game.hud.showKills(game.effects.recentKills(performance.now()));
  },
};

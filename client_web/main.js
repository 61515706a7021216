// The page: join screen, the game loop (network in, inputs out, one render
// per animation frame), HUD, spectating, reconnection, and a debug hook for
// tests (`window.__game`). Everything that can be pure lives in the other
// modules; this one wires them to the DOM.

import {
  CLOSE_REASONS, checksum, decodeMessage, encodeAck, encodeHello, encodeInput, encodePing, encodeResync, parseSchema,
} from "./protocol.js";
import { INTERP_DELAY_MS, StateBuffer, TickClock, View, sample } from "./interp.js";
import { Pacer, Predictor, movementRule } from "./predict.js";
import { Controls, InputScheduler, inputValues } from "./input.js";
import { Link, httpUrl } from "./net.js";
import { Renderer, playerHue } from "./render.js";
import { Mirror, rowIn } from "./world.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const WS_URL = params.get("server") || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
const RING = 1200;
/** The local muzzle flash (cosmetic, on sending fire): how long it shows, and at most how often (ms). */
const FLASH_MS = 90;
const FLASH_EVERY_MS = 150;
/** The "leave the match?" question after Esc goes away by itself after this long (ms). */
const CONFIRM_LEAVE_MS = 4000;

/** A fixed-size ring of numbers (frame intervals, render times). */
class Ring {
  constructor(n) { this.a = new Float64Array(n); this.n = 0; this.i = 0; }
  push(v) { this.a[this.i] = v; this.i = (this.i + 1) % this.a.length; if (this.n < this.a.length) this.n++; }
  values() {
    const out = [];
    for (let k = 0; k < this.n; k++) out.push(this.a[(this.i - this.n + k + this.a.length) % this.a.length]);
    return out;
  }
  clear() { this.n = 0; this.i = 0; }
}

function summary(values) {
  if (!values.length) return { n: 0 };
  const s = [...values].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, mean, p50: q(0.5), p95: q(0.95), p99: q(0.99), max: s[s.length - 1] };
}

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

class Game {
  constructor() {
    this.canvas = $("game");
    this.renderer = new Renderer(this.canvas);
    this.controls = new Controls(this.canvas).attach(window);
    this.controls.onAction = (a) => this.onAction(a);
    this.view = new View();
    this.buffer = new StateBuffer(40);
    this.phase = "idle"; // idle | connecting | live | reconnecting
    this.link = null;
    this.schema = null;
    this.mirror = null;
    this.clock = null;
    this.predictor = null;
    this.scheduler = null;
    this.welcome = null;
    this.token = null;
    this.name = "";
    this.spectate = false;
    this.me = null;
    this.player = null;
    this.seq = 0; // kept across reconnects: the server's ack refers to our player's inputs
    this.roster = [];
    this.names = new Map();
    this.feed = [];
    this.effects = [];
    this.lastEventTick = -1;
    this.follow = null; // spectators: entity followed, null = whole arena
    this.arenaView = params.get("view") === "arena";
    this.camera = { x: 0, y: 0, zoom: 1 };
    /** CSS pixels the HUD's bars take at the top and bottom (kept free in the whole-arena view). */
    this.insets = { top: 20, bottom: 20 };
    this.rtt = null;
    this.pingId = 0;
    this.updateTimes = new Ring(120);
    this.bytesMarks = [];
    this.frameIntervals = new Ring(RING);
    this.renderTimes = new Ring(RING);
    this.lastFrame = null;
    this.reconnects = 0;
    this.resumed = false;
    this.serverError = null;
    this.bannerTimer = null;
    this.lastHud = 0;
    this.deathBy = null;
    this.hintShownAt = 0;
    this.flashAt = -Infinity;
    this.flashes = 0;
    this.wireDom();
    this.fetchStatus();
    requestAnimationFrame((t) => this.frame(t));
    this.timers = null; // the match's timers: inputs during a downlink stall, the reconnect countdown, pings
    if (params.get("autojoin")) this.join(params.get("name") || this.defaultName(), params.get("spectate") === "1");
  }

  // -- join screen -----------------------------------------------------------

  defaultName() {
    let n = null;
    try { n = localStorage.getItem("arena.name"); } catch { /* storage may be off */ }
    return n || `Player${Math.floor(100 + Math.random() * 900)}`;
  }

  wireDom() {
    const nameInput = $("name");
    nameInput.value = this.defaultName();
    $("join-form").addEventListener("submit", (e) => { e.preventDefault(); this.join(nameInput.value, false); });
    $("watch").addEventListener("click", () => this.join(nameInput.value || "spectator", true));
    $("leave").addEventListener("click", () => this.leave());
    $("confirm-leave-yes").addEventListener("click", () => this.leave());
    $("confirm-leave-no").addEventListener("click", () => { this.hideConfirmLeave(); this.canvas.focus(); });
    $("banner-retry").addEventListener("click", () => this.link && this.link.retryNow());
    $("lb-toggle").addEventListener("click", () => {
      const open = $("leaderboard").classList.toggle("open");
      $("lb-toggle").textContent = open ? "▴" : "▾";
      $("lb-toggle").title = open ? "Show the top three" : "Show the whole leaderboard";
      $("lb-toggle").setAttribute("aria-expanded", String(open));
      this.layoutHud();
    });
    // Touch spectators have no Tab key: a tap on the bar shows the next player, then the whole arena.
    $("spectating").addEventListener("click", () => {
      const list = this.followable();
      if (!this.arenaView && list.length && list[list.length - 1].entity === this.follow) this.arenaView = true;
      else this.cycle(1);
      this.lastHud = -Infinity;
    });
    setTimeout(() => nameInput.focus(), 0);
  }

  async fetchStatus() {
    try {
      const r = await fetch(httpUrl(WS_URL, "/healthz"), { cache: "no-store" });
      const h = await r.json();
      $("server-status").textContent = `${h.ruleset} · ${h.players} player${h.players === 1 ? "" : "s"} in the match`;
    } catch {
      $("server-status").textContent = "";
    }
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
    this.hideConfirmLeave();
    document.body.classList.remove("offline");
    $("join").hidden = false;
    $("hud").hidden = true;
    this.hideBanner();
    $("play").disabled = $("watch").disabled = false;
    const box = $("join-error");
    box.hidden = !error;
    box.textContent = error || "";
    this.fetchStatus();
  }

  join(rawName, spectate) {
    const name = String(rawName || "").trim().replace(/[^\P{C}]/gu, "").slice(0, 24).trim();
    if (!name) { this.showJoin("Pick a name first (1–24 characters)."); return; }
    try { localStorage.setItem("arena.name", name); } catch { /* ignore */ }
    this.name = name;
    this.spectate = spectate;
    this.token = null;
    this.reconnects = 0;
    this.serverError = null;
    this.phase = "connecting";
    this.matchTimers(true);
    $("play").disabled = $("watch").disabled = true;
    $("join-error").hidden = true;
    $("server-status").textContent = "Connecting…";
    if (this.link) this.link.stop();
    this.link = new Link(WS_URL, {
      onOpen: () => this.link.send(encodeHello(this.name, { spectate: this.spectate, token: this.token })),
      onMessage: (bytes) => this.onMessage(bytes),
      onClose: (info) => this.onClose(info),
      onRetry: () => { this.phase = "reconnecting"; this.serverError = null; this.showReconnecting(); },
    });
    this.link.start();
  }

  /** Esc: a player is asked first (leaving gives up the player and its reconnect token); Esc again leaves. */
  askLeave() {
    if (this.phase === "idle") return;
    if (this.spectate || this.me == null || !$("confirm-leave").hidden) { this.leave(); return; }
    $("confirm-leave").hidden = false;
    clearTimeout(this.confirmTimer);
    this.confirmTimer = setTimeout(() => this.hideConfirmLeave(), CONFIRM_LEAVE_MS);
  }

  hideConfirmLeave() {
    clearTimeout(this.confirmTimer);
    $("confirm-leave").hidden = true;
  }

  leave() {
    this.hideConfirmLeave();
    if (this.link) this.link.stop(1000, "left");
    this.link = null;
    this.me = null;
    this.showJoin(null);
  }

  // -- network ---------------------------------------------------------------

  onMessage(bytes) {
    let msg;
    try { msg = decodeMessage(bytes); } catch (e) { console.warn(e); return; }
    const now = performance.now();
    switch (msg.t) {
      case "update": this.onUpdate(msg, now); break;
      case "welcome": this.onWelcome(msg, now); break;
      case "roster": this.onRoster(msg); break;
      case "pong":
        if (typeof msg.time === "number") {
          const rtt = now - msg.time;
          this.rtt = this.rtt == null ? rtt : this.rtt * 0.7 + rtt * 0.3;
          this.lastRtt = rtt;
        }
        break;
      case "error": this.serverError = { code: msg.code, reason: msg.reason }; break;
      default: break; // later minor versions may add messages
    }
  }

  onWelcome(msg, now) {
    const wasReconnecting = this.phase === "reconnecting";
    this.welcome = msg;
    const schema = parseSchema(msg.ruleset);
    this.schema = schema;
    this.mirror = new Mirror(schema);
    this.buffer.clear();
    const tickMs = 1000 / msg.tick_rate;
    this.tickMs = tickMs;
    this.clock = new TickClock(tickMs);
    const rule = movementRule(schema);
    this.predictor = rule && msg.entity != null ? new Predictor(rule) : null;
    this.pacer = new Pacer(tickMs);
    this.scheduler = new InputScheduler(tickMs);
    this.token = msg.token;
    this.me = msg.entity ?? null;
    this.player = msg.player;
    this.resumed = !!msg.resumed;
    this.lastEventTick = -1;
    this.deathBy = null;
    this.link.welcomed();
    this.phase = "live";
    document.body.classList.remove("offline");
    $("join").hidden = true;
    $("hud").hidden = false;
    $("leaderboard").hidden = false;
    document.title = `${schema.name[0].toUpperCase()}${schema.name.slice(1)} · ${this.name}`;
    if (this.spectate) {
      $("hint").innerHTML = "";
      if (params.get("view") !== "follow" && this.follow == null) this.arenaView = true;
    } else {
      this.arenaView = false;
      this.hintShownAt = now;
      $("hint").classList.remove("faded");
      const touch = this.controls.touched || (window.matchMedia && window.matchMedia("(pointer: coarse)").matches);
      $("hint").innerHTML = touch
        ? "left thumb: move · right thumb: drag to aim and fire"
        : "<kbd>W</kbd><kbd>A</kbd><kbd>S</kbd><kbd>D</kbd> move · mouse aim · <kbd>click</kbd> / <kbd>space</kbd> fire";
    }
    if (wasReconnecting) {
      this.reconnects++;
      this.flashBanner(this.resumed ? "Reconnected — welcome back!" : "Reconnected as a new player (the old one had expired).", "ok");
    } else {
      this.hideBanner();
    }
    this.canvas.focus();
    this.lastHud = -Infinity;
  }

  onRoster(msg) {
    this.roster = msg.players.map(([player, entity, name, online]) => ({ player, entity, name, online }));
    this.names = new Map();
    for (const p of this.roster) if (p.entity != null) this.names.set(p.entity, p);
    this.lastHud = -Infinity;
  }

  onUpdate(msg, now) {
    if (!this.mirror) return;
    const prev = this.mirror.latest;
    const r = this.mirror.apply(msg, now);
    if (r.resync) this.link.send(encodeResync());
    if (Array.isArray(msg.ev) && msg.tick > this.lastEventTick) {
      this.lastEventTick = msg.tick;
      this.onEvents(msg.ev, prev, r.state, now);
    }
    if (r.status === "ok") {
      const state = r.state;
      this.buffer.push(state);
      this.clock.observe(state.tick, now);
      this.pacer.observe(this.clock.tickAt(now) - state.tick);
      this.updateTimes.push(now);
      if (this.predictor && this.me != null) {
        const row = rowIn(state.ids, this.me);
        if (row >= 0) {
          const s = this.schema, rule = this.predictor.rule;
          const alive = s.index.hp == null || state.cols[s.index.hp][row] > 0;
          this.predictor.reconcile(state.cols[rule.x][row], state.cols[rule.y][row], alive, msg.ack >>> 0, state.tick);
          if (alive) this.deathBy = null;
        }
      }
    }
    if (this.spectate || this.me == null) {
      const t = this.mirror.ackTick();
      if (t != null) this.link.send(encodeAck(t));
    } else if (this.scheduler.onUpdate(now)) {
      this.sendInput(now, msg.tick);
    }
  }

  /** Send the current input; `tick`: the update it answers (null: sent by the timer). */
  sendInput(now, tick = null) {
    if (!this.schema || !this.link || !this.link.open || this.spectate || this.me == null) return;
    const [px, py] = this.myScreenPos();
    const intent = this.controls.intent(px, py);
    const values = inputValues(this.schema.inputs, intent);
    this.seq++;
    this.link.send(encodeInput(this.seq, values, this.mirror.ackTick()));
    const p = this.predictor;
    if (p) p.push(this.seq, values[p.rule.dx], values[p.rule.dy], tick);
    // Fire shows at once at our gun; the bullet itself comes from the server a round trip later.
    const fire = this.schema.inputs.findIndex((f) => f.name === "fire");
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
    if (this.phase === "live" && this.scheduler && this.scheduler.onTimer(now)) this.sendInput(now);
    if (this.phase === "reconnecting") this.showReconnecting();
  }

  onClose(info) {
    const err = this.serverError;
    const reason = (err && err.reason) || info.reason || CLOSE_REASONS[info.code] || "";
    if (info.willRetry) {
      this.phase = "reconnecting";
      this.lastDrop = { code: info.code, reason };
      this.showReconnecting();
      return;
    }
    if (this.phase === "idle") return;
    if (!info.wasEstablished) {
      if (info.code === 1013) this.showJoin(`Can't join right now: ${reason || "the match is full"}. Try again in a moment.`);
      else if (info.code === 1006 && !err) this.showJoin(`Can't reach the game server at ${WS_URL}. Is it running?`);
      else this.showJoin(`The server refused the connection (${info.code}): ${reason}`);
      return;
    }
    if (info.code === 1000 && /replaced/.test(reason)) this.showJoin("You joined from another window, so this one was disconnected.");
    else this.showJoin(`Disconnected by the server (${info.code}): ${reason}`);
  }

  showReconnecting() {
    const l = this.link;
    if (!l) return;
    document.body.classList.add("offline");
    const left = Math.max(0, (l.retryAt - Date.now()) / 1000);
    const why = this.lastDrop ? this.lastDrop.reason || CLOSE_REASONS[this.lastDrop.code] || "connection lost" : "connection lost";
    const text = l.retryTimer != null
      ? `Connection lost (${why}). Reconnecting in ${left.toFixed(1)} s… (attempt ${l.backoff.attempt})`
      : `Connection lost (${why}). Reconnecting…`;
    this.setBanner(text, "warn", l.retryTimer != null);
  }

  setBanner(text, kind = "warn", retry = false) {
    clearTimeout(this.bannerTimer);
    const b = $("banner");
    b.hidden = false;
    b.className = kind === "warn" ? "" : kind;
    b.dataset.kind = kind;
    if ($("banner-text").textContent !== text) $("banner-text").textContent = text;
    $("banner-retry").hidden = !retry;
  }

  flashBanner(text, kind) {
    this.setBanner(text, kind, false);
    this.bannerTimer = setTimeout(() => this.hideBanner(), 3500);
  }

  hideBanner() {
    clearTimeout(this.bannerTimer);
    $("banner").hidden = true;
    $("banner").dataset.kind = "";
  }

  // -- events ----------------------------------------------------------------

  nameOf(entity, states) {
    const p = this.names.get(entity);
    if (p) return p.name;
    const s = this.schema;
    for (const st of states) {
      if (!st || s.index.kind == null) continue;
      const row = rowIn(st.ids, entity);
      if (row >= 0) {
        const k = s.kinds[st.cols[s.index.kind][row]] || "something";
        return `a ${k}`;
      }
    }
    return "something";
  }

  worldPos(entity, states) {
    const s = this.schema;
    for (const st of states) {
      if (!st) continue;
      const row = rowIn(st.ids, entity);
      if (row >= 0) return { x: st.cols[s.index.x][row] / s.columns[s.index.x].scale, y: st.cols[s.index.y][row] / s.columns[s.index.y].scale };
    }
    return null;
  }

  onEvents(events, prev, cur, now) {
    const states = [cur, prev];
    const later = now + INTERP_DELAY_MS; // effects line up with the interpolated picture
    for (const ev of events) {
      if (!Array.isArray(ev) || typeof ev[0] !== "string") continue;
      const [kind, a, b] = ev;
      if (kind === "kill") {
        const killer = this.nameOf(a, states), victim = this.nameOf(b, states);
        this.pushFeed(killer, victim, a === this.me || b === this.me);
        const p = this.worldPos(b, states);
        if (p) this.effects.push({ ...p, t0: later, ms: 700, r0: 10, r1: 90, width: 6, color: "#ff6b6b" });
        if (b === this.me) this.deathBy = killer;
        if (a === this.me) this.effects.push({ ...(this.worldPos(a, states) || p || { x: 0, y: 0 }), t0: now, ms: 1100, r0: 0, r1: 0, width: 0, color: "#ffd166", text: `You destroyed ${victim}!` });
      } else if (kind === "drone_kill") {
        const p = this.worldPos(b, [prev, cur]);
        if (p) this.effects.push({ ...p, t0: later, ms: 450, r0: 6, r1: 55, width: 4, color: "#ff8a5a" });
        if (a === this.me && p) this.effects.push({ ...p, t0: later, ms: 900, r0: 0, r1: 0, width: 0, color: "#ffb84d", text: "+5" });
      } else if (kind === "pickup") {
        const p = this.worldPos(b, [prev, cur]);
        if (p && a === this.me) this.effects.push({ ...p, t0: now, ms: 700, r0: 4, r1: 26, width: 2, color: "#6cf0c2", text: "+1" });
        else if (p) this.effects.push({ ...p, t0: later, ms: 350, r0: 4, r1: 18, width: 2, color: "#6cf0c2" });
      } else if (kind === "respawn") {
        const p = this.worldPos(a, states);
        if (p) this.effects.push({ ...p, t0: a === this.me ? now : later, ms: 800, r0: 60, r1: 18, width: 3, color: "#59b8ff" });
        if (a === this.me) this.deathBy = null;
      }
    }
    if (this.effects.length > 200) this.effects.splice(0, this.effects.length - 200);
  }

  pushFeed(killer, victim, mine) {
    this.feed.push({ killer, victim, mine, t: performance.now() });
    if (this.feed.length > 5) this.feed.shift();
    this.renderFeed();
  }

  renderFeed() {
    const now = performance.now();
    this.feed = this.feed.filter((f) => now - f.t < 6000);
    $("killfeed").innerHTML = this.feed
      .map((f) => `<div class="kill${f.mine ? " mine" : ""}">${escapeHtml(f.killer)}<span class="x">✕</span>${escapeHtml(f.victim)}</div>`)
      .join("");
  }

  // -- spectating ------------------------------------------------------------

  followable() {
    const st = this.buffer.newest;
    return this.roster.filter((p) => p.entity != null && st && rowIn(st.ids, p.entity) >= 0);
  }

  onAction(action) {
    if (action === "escape") { this.askLeave(); return; }
    if (action === "minimap") { this.renderer.showMinimap = !this.renderer.showMinimap; return; }
    if (!this.spectate) return;
    if (action === "arena") { this.arenaView = !this.arenaView; if (!this.arenaView && this.follow == null) this.cycle(1); return; }
    if (action === "next" || action === "prev") this.cycle(action === "next" ? 1 : -1);
  }

  cycle(dir) {
    const list = this.followable();
    if (!list.length) { this.follow = null; this.arenaView = true; return; }
    let i = list.findIndex((p) => p.entity === this.follow);
    i = i < 0 ? (dir > 0 ? 0 : list.length - 1) : (i + dir + list.length) % list.length;
    this.follow = list[i].entity;
    this.arenaView = false;
  }

  // -- frame -----------------------------------------------------------------

  /**
   * Where the player is drawn (column units), paced by the tick clock: at
   * frame time `now`, or where the last frame put it (`now` null: the playhead
   * only moves with frames, so every frame steps evenly). Null when not predicted.
   */
  myDrawnPos(now = null) {
    if (!this.predictor || !this.predictor.ready) return null;
    return this.predictor.position(now == null ? this.pacer.head : this.pacer.at(now, this.clock.tickAt(now)));
  }

  myScreenPos() {
    const s = this.schema;
    const pos = this.myDrawnPos();
    if (!s || !pos) return [this.renderer.w / 2, this.renderer.h / 2];
    return this.renderer.toScreen(pos.x / s.columns[s.index.x].scale, pos.y / s.columns[s.index.y].scale);
  }

  frame(ts) {
    requestAnimationFrame((t) => this.frame(t));
    if (this.lastFrame != null) this.frameIntervals.push(ts - this.lastFrame);
    const dt = this.lastFrame == null ? 16 : ts - this.lastFrame;
    this.lastFrame = ts;
    const t0 = performance.now();
    this.renderer.resize();
    const s = this.schema;
    if (!s || !this.clock || this.phase === "idle") {
      this.drawIdle(ts);
      return;
    }
    const tickNow = this.clock.tickAt(ts);
    let scene = null;
    if (tickNow != null && this.buffer.newest) {
      const renderTick = tickNow - INTERP_DELAY_MS / this.tickMs;
      const br = this.buffer.bracket(renderTick);
      sample(s, br, this.view);
      this.renderTick = renderTick;
      let mePos = null;
      const meRow = this.me != null ? rowIn(this.view.state.ids, this.me) : -1;
      if (this.predictor && meRow >= 0) {
        this.predictor.decay(dt);
        mePos = this.myDrawnPos(ts);
      }
      this.updateCamera(mePos, meRow, dt);
      scene = {
        schema: s, view: this.view, camera: this.camera, me: this.me, mePos,
        myAim: !this.spectate && this.me != null && (this.controls.mouse.seen || this.controls.touch.aim) ? this.controls.aimAngle : null,
        myFlash: Math.min(1, Math.max(0, 1 - (ts - this.flashAt) / FLASH_MS)),
        names: this.names, effects: this.effects, now: ts, wholeArena: this.spectate && this.arenaView,
      };
      this.renderer.draw(scene);
      this.drawTouch();
    } else {
      this.drawIdle(ts);
    }
    this.renderTimes.push(performance.now() - t0);
    if (ts - this.lastHud > 250) {
      this.lastHud = ts;
      this.updateHud(ts);
    }
  }

  drawTouch() {
    const t = this.controls.touch, ctx = this.renderer.ctx;
    for (const stick of [t.move, t.aim]) {
      if (!stick) continue;
      ctx.strokeStyle = "rgba(255,255,255,0.35)";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(stick.x0, stick.y0, 46, 0, Math.PI * 2);
      ctx.stroke();
      ctx.fillStyle = "rgba(255,255,255,0.25)";
      ctx.beginPath();
      ctx.arc(stick.x, stick.y, 20, 0, Math.PI * 2);
      ctx.fill();
    }
  }

  drawIdle(ts) {
    const r = this.renderer;
    const ctx = r.ctx;
    ctx.setTransform(r.dpr, 0, 0, r.dpr, 0, 0);
    ctx.fillStyle = "#060a13";
    ctx.fillRect(0, 0, r.w, r.h);
    // A slowly drifting grid behind the join screen.
    const off = (ts / 60) % 60;
    ctx.strokeStyle = "rgba(110,160,255,0.07)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let x = -off; x < r.w; x += 60) { ctx.moveTo(x + 0.5, 0); ctx.lineTo(x + 0.5, r.h); }
    for (let y = -off; y < r.h; y += 60) { ctx.moveTo(0, y + 0.5); ctx.lineTo(r.w, y + 0.5); }
    ctx.stroke();
  }

  updateCamera(mePos, meRow, dt) {
    const s = this.schema, r = this.renderer, view = this.view;
    const sx = s.columns[s.index.x].scale, sy = s.columns[s.index.y].scale;
    let target = null, zoom = r.followZoom();
    if (!this.spectate && mePos) {
      target = { x: mePos.x / sx, y: mePos.y / sy };
    } else if (!this.spectate && meRow >= 0) {
      target = { x: view.x[meRow] / sx, y: view.y[meRow] / sy };
    } else if (this.spectate && !this.arenaView) {
      const row = this.follow != null ? rowIn(view.state.ids, this.follow) : -1;
      if (row >= 0) target = { x: view.x[row] / sx, y: view.y[row] / sy };
      else this.cycle(1);
    }
    if (!target) {
      // The whole arena, centred in the room the HUD's top and bottom bars leave.
      const { top, bottom } = this.insets;
      zoom = r.fitZoom(s.width, s.height, top, bottom);
      target = { x: s.width / 2, y: s.height / 2 + (bottom - top) / (2 * zoom) };
    }
    const c = this.camera;
    if (!this.cameraInit || (!this.spectate && mePos)) {
      // The player's own camera is locked to the predicted position: no lag, no wobble.
      c.x = target.x; c.y = target.y;
      if (!this.cameraInit) c.zoom = zoom;
      this.cameraInit = true;
    } else {
      const k = 1 - Math.exp(-dt / 90);
      c.x += (target.x - c.x) * k;
      c.y += (target.y - c.y) * k;
    }
    c.zoom += (zoom - c.zoom) * (1 - Math.exp(-dt / 120));
  }

  // -- HUD -------------------------------------------------------------------

  stats(now) {
    const times = this.updateTimes.values();
    const ups = times.filter((t) => now - t <= 1000).length;
    const bytes = this.link ? this.link.bytesIn : 0;
    this.bytesMarks.push([now, bytes]);
    while (this.bytesMarks.length > 2 && now - this.bytesMarks[0][0] > 2000) this.bytesMarks.shift();
    const [t0, b0] = this.bytesMarks[0];
    const bps = now > t0 ? ((bytes - b0) * 1000) / (now - t0) : 0;
    const fr = this.frameIntervals.values().slice(-60);
    const fps = fr.length ? 1000 / (fr.reduce((a, b) => a + b, 0) / fr.length) : 0;
    return { ups, bps, fps };
  }

  updateHud(now) {
    const s = this.schema, st = this.mirror && this.mirror.latest;
    if (!s || !st) return;
    const { ups, bps, fps } = this.stats(now);
    this.renderFeed();
    const online = this.roster.filter((p) => p.online).length;
    const iscore = s.index.score, ihp = s.index.hp;
    // Leaderboard: roster names and the score column.
    const rows = this.roster.map((p) => {
      const row = p.entity != null ? rowIn(st.ids, p.entity) : -1;
      return { ...p, score: row >= 0 && iscore != null ? st.cols[iscore][row] : 0, row };
    }).sort((a, b) => b.score - a.score || a.player - b.player);
    // The top 8, or the top 7 and me (with my rank) when I am further down.
    const mine = rows.findIndex((p) => p.entity === this.me && this.me != null);
    const shown = rows.slice(0, 8).map((p, i) => [i, p]);
    if (mine >= 8) shown.splice(7, 1, [mine, rows[mine]]);
    $("scores").innerHTML = shown.map(([i, p]) =>
      `<li class="${p.entity === this.me ? "me" : ""}${p.online ? "" : " off"}"><span class="r">${i + 1}</span><span class="dot" style="background:hsl(${playerHue(p.player)},75%,58%)"></span><span class="n">${escapeHtml(p.name)}</span><span class="s">${p.score}</span></li>`,
    ).join("");
    $("online").textContent = `${online} online · ${this.roster.length} in match`;
    // My card.
    const meCard = $("me-card");
    if (this.me != null) {
      meCard.hidden = false;
      const row = rowIn(st.ids, this.me);
      const hp = row >= 0 && ihp != null ? st.cols[ihp][row] : 0;
      $("me-name").textContent = this.name;
      $("me-dot").style.background = `hsl(${playerHue(this.player)},75%,58%)`;
      $("me-score").textContent = row >= 0 && iscore != null ? st.cols[iscore][row] : 0;
      const hpEl = $("me-hp");
      hpEl.style.width = `${Math.max(0, Math.min(100, hp))}%`;
      hpEl.classList.toggle("low", hp <= 30);
      const dead = ihp != null && row >= 0 && hp === 0;
      $("death").hidden = !dead;
      if (dead) $("death-by").textContent = this.deathBy ? `by ${this.deathBy}` : "";
    } else {
      meCard.hidden = true;
      $("death").hidden = true;
    }
    // Spectator bar.
    const spec = $("spectating");
    spec.hidden = !this.spectate;
    if (this.spectate) {
      const who = this.arenaView || this.follow == null ? "the whole arena" : (this.names.get(this.follow)?.name ?? `#${this.follow}`);
      const how = document.body.classList.contains("compact")
        ? `<span class="muted">tap to switch</span>` : `<kbd>Tab</kbd> next player · <kbd>V</kbd> whole arena`;
      spec.innerHTML = `Spectating <b>${escapeHtml(who)}</b> · ${how}`;
    }
    if (!this.spectate && now - this.hintShownAt > 9000) $("hint").classList.add("faded");
    // Network numbers.
    const m = this.mirror;
    const ping = this.rtt == null ? "–" : `${Math.round(this.rtt)} ms`;
    const corr = this.predictor ? this.predictor.corrections : 0;
    $("netstats").innerHTML =
      `ping <b>${ping}</b> · tick <b>${st.tick}</b> · <b>${ups}</b> upd/s · <b>${(bps / 1024).toFixed(1)}</b> kB/s<br>` +
      `<b>${st.ids.length}</b> entities · <b>${Math.round(fps)}</b> fps · ` +
      `<span class="${m.desyncs ? "warn" : ""}">desync <b>${m.desyncs}</b></span> · corrections <b>${corr}</b>`;
    this.layoutHud();
  }

  /**
   * Fit the HUD to the window: compact panels on small screens (the
   * leaderboard folds to its top rows, the kill feed goes under the top
   * panels), and the room the bars leave for the whole-arena view.
   */
  layoutHud() {
    const compact = window.innerWidth <= 700 || window.innerHeight <= 500;
    document.body.classList.toggle("compact", compact);
    const h = window.innerHeight;
    let top = 0, bottom = 0;
    for (const id of ["me-card", "leave", "leaderboard"]) {
      const r = $(id).getBoundingClientRect();
      if (r.height > 0) top = Math.max(top, r.bottom);
    }
    for (const id of ["spectating", "netstats"]) {
      const r = $(id).getBoundingClientRect();
      if (r.height > 0) bottom = Math.max(bottom, h - r.top);
    }
    $("killfeed").style.top = compact ? `${Math.round(top + 8)}px` : "";
    this.insets = { top: compact ? top + 8 : 20, bottom: Math.max(20, bottom + 8) };
  }

  // -- debug hook --------------------------------------------------------------

  debugState() {
    const m = this.mirror, st = m && m.latest, s = this.schema;
    const counts = {};
    if (st && s && s.index.kind != null) {
      const kc = st.cols[s.index.kind];
      for (let i = 0; i < kc.length; i++) { const k = s.kinds[kc[i]] ?? `kind${kc[i]}`; counts[k] = (counts[k] || 0) + 1; }
    }
    const now = performance.now();
    const mePos = this.myDrawnPos();
    const { ups, bps } = this.stats(now);
    const b = $("banner");
    return {
      phase: this.phase,
      connected: !!(this.link && this.link.open),
      ruleset: s ? s.name : null,
      tick: st ? st.tick : null,
      checksumOk: m ? m.checksumOk : null,
      desyncs: m ? m.desyncs : 0,
      missingBase: m ? m.missingBase : 0,
      keyframes: m ? m.keyframes : 0,
      updates: m ? m.updates : 0,
      entityCount: st ? st.ids.length : 0,
      kinds: counts,
      drawn: { ...this.renderer.drawn },
      drawnTotal: Object.values(this.renderer.drawn).reduce((a, b2) => a + b2, 0),
      me: this.me,
      player: this.player,
      name: this.name,
      spectate: this.spectate,
      arenaView: this.arenaView,
      follow: this.follow,
      token: this.token,
      resumed: this.resumed,
      reconnects: this.reconnects,
      banner: b.hidden ? null : $("banner-text").textContent,
      confirmLeave: !$("confirm-leave").hidden,
      bannerKind: b.hidden ? null : b.dataset.kind,
      joinError: $("join-error").hidden ? null : $("join-error").textContent,
      rtt: this.rtt,
      updatesPerSec: ups,
      bytesPerSec: bps,
      roster: this.roster.map((p) => ({ ...p })),
      mePredicted: mePos && s ? { x: mePos.x / s.columns[s.index.x].scale, y: mePos.y / s.columns[s.index.y].scale } : null,
      pending: this.predictor ? this.predictor.pending.length : 0,
      corrections: this.predictor ? this.predictor.corrections : 0,
      seq: this.seq,
      flashes: this.flashes,
      camera: { ...this.camera },
      renderTick: this.renderTick ?? null,
    };
  }
}

const game = new Game();

window.__game = {
  game,
  state: () => game.debugState(),
  /** The newest mirror state's checksum, recomputed from its arrays. */
  mirrorChecksum: () => {
    const st = game.mirror && game.mirror.latest;
    return st ? { tick: st.tick, sum: checksum(st.ids, st.cols), count: st.ids.length } : null;
  },
  /** The newest mirror state as plain objects (optionally one kind). */
  entities: (kind = null) => {
    const st = game.mirror && game.mirror.latest, s = game.schema;
    if (!st) return [];
    const out = [];
    for (let i = 0; i < st.ids.length; i++) {
      const e = { id: st.ids[i] };
      s.columns.forEach((c, j) => { e[c.name] = st.cols[j][i]; });
      e.kindName = s.index.kind != null ? s.kinds[e.kind] : null;
      if (kind == null || e.kindName === kind) out.push(e);
    }
    return out;
  },
  frameTimes: () => game.frameIntervals.values(),
  renderTimes: () => game.renderTimes.values(),
  frameStats: () => ({ frame: summary(game.frameIntervals.values()), render: summary(game.renderTimes.values()) }),
  resetFrameStats: () => { game.frameIntervals.clear(); game.renderTimes.clear(); },
  drop: () => game.link && game.link.drop(),
  join: (name, spectate = false) => game.join(name, spectate),
  leave: () => game.leave(),
  action: (a) => game.onAction(a),
};

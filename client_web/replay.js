// The replay viewer: pick a recorded match (GET /api/replays), watch it
// through the live protocol (welcome, roster, update deltas with checksums)
// from `python -m tools.replay play`, and steer the playback with `control`
// messages: pause, speed (0.25x to 8x), seek (REPLAY.md, "Playback").
//
// The mirror is the live client's (world.js); each state that lands on a
// recorded checkpoint tick is compared with the checkpoint's checksum, so the
// page shows that what it draws is what was recorded. `window.__replay` is a
// debug hook for tests.

import { encode } from "@msgpack/msgpack";
import { CLOSE_REASONS, checksum, decodeMessage, encodeAck, encodeHello, encodeResync, parseSchema } from "./protocol.js";
import { INTERP_DELAY_MS, StateBuffer, TickClock, View, sample } from "./interp.js";
import { Link } from "./net.js";
import { Renderer, playerHue } from "./render.js";
import { Mirror, rowIn } from "./world.js";

/** `control` message (REPLAY.md): any of {pause: bool, speed: 0.25..8, seek: tick}. */
export const encodeControl = (fields) => encode({ t: "control", ...fields });

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const HISTORY = 5000;

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmtTime = (ticks, rate) => {
  const s = Math.max(0, Math.floor(ticks / rate));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
};
const fmtSize = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} kB`);

class Viewer {
  constructor() {
    this.canvas = $("game");
    this.renderer = new Renderer(this.canvas);
    this.renderer.showMinimap = false;
    this.view = new View();
    this.buffer = new StateBuffer(64);
    this.camera = { x: 0, y: 0, zoom: 1 };
    this.follow = null;
    this.reset();
    this.listing = null;
    this.wireDom();
    requestAnimationFrame((t) => this.frame(t));
    const name = params.get("replay");
    if (name) this.open(name);
    else this.showPicker(null);
  }

  reset() {
    this.link = null;
    this.name = null;
    this.schema = null;
    this.mirror = null;
    this.clock = null;
    this.welcome = null;
    this.info = null;
    this.status = null;
    this.roster = [];
    this.names = new Map();
    this.checkpoints = new Map();
    this.verified = [];
    this.mismatches = [];
    this.history = [];
    this.error = null;
    this.dragging = false;
    this.buffer.clear();
  }

  // -- the list ----------------------------------------------------------------

  wireDom() {
    $("play").addEventListener("click", () => this.togglePause());
    $("speed").addEventListener("change", (e) => this.setSpeed(Number(e.target.value)));
    const seek = $("seek");
    seek.addEventListener("input", () => { this.dragging = true; this.showClock(Number(seek.value)); });
    seek.addEventListener("change", () => { this.dragging = false; this.seek(Number(seek.value)); });
    $("back").addEventListener("click", () => { this.close(); this.showPicker(null); });
    window.addEventListener("keydown", (e) => {
      if (!this.status || e.target instanceof HTMLInputElement && e.target.type !== "range") return;
      const rate = this.info ? this.info.tick_rate : 30;
      if (e.key === " ") { e.preventDefault(); this.togglePause(); }
      else if (e.key === "ArrowRight") { e.preventDefault(); this.seek(this.status.tick + 10 * rate); }
      else if (e.key === "ArrowLeft") { e.preventDefault(); this.seek(this.status.tick - 10 * rate); }
    });
  }

  async showPicker(error) {
    $("picker").hidden = false;
    for (const id of ["bar", "info", "board"]) $(id).hidden = true;
    const box = $("error");
    box.hidden = !error;
    box.textContent = error || "";
    let listing;
    try {
      const r = await fetch("/api/replays", { cache: "no-store" });
      listing = await r.json();
    } catch (e) {
      $("picker-note").textContent = `Cannot list the replays: ${e.message}`;
      return;
    }
    this.listing = listing;
    const rows = listing.replays || [];
    $("picker-note").innerHTML = rows.length
      ? (listing.playback ? `Replays in <code>${escapeHtml(listing.dir)}</code>: pick one to watch.`
        : `This is the game server: it records its matches to <code>${escapeHtml(listing.dir)}</code>. To watch one, run the command under it and open the address it prints.`)
      : `No replays in <code>${escapeHtml(listing.dir)}</code> yet.`;
    const tbody = $("list").querySelector("tbody");
    tbody.innerHTML = rows.map((r) => {
      const what = r.error ? `<span class="muted">${escapeHtml(r.error)}</span>` : `${escapeHtml(r.ruleset)} v${r.ruleset_version} · seed ${r.seed}`;
      const cmd = listing.playback ? "" : `<br><code>python -m tools.replay play ${escapeHtml(r.path)}</code>`;
      return `<tr class="${listing.playback && !r.error ? "open" : ""}" data-name="${escapeHtml(r.name)}"><td>${escapeHtml(r.name)}${cmd}</td>` +
        `<td>${what}</td><td>${escapeHtml((r.start_time || r.mtime || "").replace("T", " ").replace("Z", ""))}</td><td>${fmtSize(r.size)}</td></tr>`;
    }).join("");
    for (const tr of tbody.querySelectorAll("tr.open")) tr.addEventListener("click", () => this.open(tr.dataset.name));
  }

  // -- the connection ------------------------------------------------------------

  open(name) {
    this.close();
    this.name = name;
    history.replaceState(null, "", `?replay=${encodeURIComponent(name)}`);
    $("picker").hidden = true;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws?replay=${encodeURIComponent(name)}`;
    this.link = new Link(url, {
      onOpen: () => this.link.send(encodeHello("viewer", { spectate: true })),
      onMessage: (bytes) => this.onMessage(bytes),
      onClose: (info) => this.onClose(info),
    });
    this.link.start();
  }

  close() {
    if (this.link) this.link.stop(1000, "closing the replay");
    this.reset();
  }

  onClose(info) {
    if (info.willRetry) return;
    const why = this.error || info.reason || CLOSE_REASONS[info.code] || `closed (${info.code})`;
    const name = this.name;
    this.reset();
    history.replaceState(null, "", location.pathname);
    this.showPicker(`${name}: ${why}`);
  }

  send(fields) {
    if (this.link) this.link.send(encodeControl(fields));
  }

  togglePause() { if (this.status) this.send({ pause: !this.status.paused }); }
  setSpeed(x) { this.send({ speed: x }); }
  seek(tick) {
    if (!this.status) return;
    this.send({ seek: Math.max(this.status.first, Math.min(this.status.last, Math.round(tick))) });
  }

  onMessage(bytes) {
    let msg;
    try { msg = decodeMessage(bytes); } catch (e) { console.warn(e); return; }
    const now = performance.now();
    switch (msg.t) {
      case "update": this.onUpdate(msg, now); break;
      case "welcome": this.onWelcome(msg); break;
      case "replay_info": this.onInfo(msg); break;
      case "replay": this.onStatus(msg); break;
      case "roster":
        this.roster = msg.players.map(([player, entity, name, online]) => ({ player, entity, name, online }));
        this.names = new Map(this.roster.filter((p) => p.entity != null).map((p) => [p.entity, p]));
        break;
      case "error": this.error = msg.reason; break;
      default: break;
    }
  }

  onWelcome(msg) {
    this.welcome = msg;
    this.schema = parseSchema(msg.ruleset);
    this.mirror = new Mirror(this.schema);
    this.tickMs = 1000 / msg.tick_rate;
    this.clock = new TickClock(this.tickMs);
    this.buffer.clear();
    this.link.welcomed();
    this.cameraInit = false;
    for (const id of ["bar", "info", "board"]) $(id).hidden = false;
  }

  onInfo(info) {
    this.info = info;
    this.checkpoints = new Map(info.checkpoints.map(([t, s]) => [t, s >>> 0]));
    $("title").textContent = info.name;
    $("meta").textContent = `${info.ruleset} · seed ${info.seed} · ${info.start_time.replace("T", " ").replace("Z", " UTC")}`;
    $("warn").textContent = (info.warnings || []).join(" · ");
    const seek = $("seek");
    seek.min = info.first;
    seek.max = info.last;
    const span = Math.max(1, info.last - info.first);
    $("marks").innerHTML = info.keyframes.map((t) => `<i style="left:${((t - info.first) / span) * 100}%" title="keyframe ${t}"></i>`).join("");
    document.title = `Replay · ${info.name}`;
  }

  onStatus(st) {
    const prev = this.status;
    this.status = st;
    if (!prev || prev.speed !== st.speed) {
      // The tick clock runs at the playback speed.
      this.clock = new TickClock(this.tickMs / st.speed);
      $("speed").value = String(st.speed);
    }
    $("play").textContent = st.paused ? (st.tick >= st.last ? "Replay" : "Play") : "Pause";
    if (!this.dragging) {
      $("seek").value = st.tick;
      this.showClock(st.tick);
    }
  }

  onUpdate(msg, now) {
    if (!this.mirror) return;
    const r = this.mirror.apply(msg, now);
    if (r.resync) this.link.send(encodeResync());
    if (r.status === "ok") {
      const state = r.state;
      if (msg.base == null) {
        // A keyframe: the start, a seek, or a resync. The timeline may have jumped.
        this.buffer.clear();
        this.clock.reset();
      }
      this.buffer.push(state);
      this.clock.observe(state.tick, now);
      this.history.push([state.tick, state.sum]);
      if (this.history.length > HISTORY) this.history.splice(0, this.history.length - HISTORY);
      const want = this.checkpoints.get(state.tick);
      if (want !== undefined) {
        if (want === state.sum >>> 0) this.verified.push(state.tick);
        else this.mismatches.push({ tick: state.tick, expected: want, got: state.sum >>> 0 });
      }
      if (!this.dragging) {
        $("seek").value = state.tick;
        this.showClock(state.tick);
      }
      this.showCheck();
    }
    const t = this.mirror.ackTick();
    if (t != null) this.link.send(encodeAck(t));
  }

  showClock(tick) {
    const info = this.info;
    if (!info) return;
    const rate = info.tick_rate;
    $("clock").textContent = `${fmtTime(tick - info.first, rate)} / ${fmtTime(info.last - info.first, rate)} · tick ${tick}`;
  }

  showCheck() {
    const el = $("check");
    const n = new Set(this.verified).size;
    if (this.mismatches.length) {
      const m = this.mismatches[0];
      el.className = "mono bad";
      el.textContent = `✗ checksum differs from the recording at tick ${m.tick}`;
    } else if (this.mirror && this.mirror.desyncs) {
      el.className = "mono bad";
      el.textContent = `✗ ${this.mirror.desyncs} desyncs`;
    } else {
      el.className = "mono ok";
      el.textContent = n ? `✓ ${n} checkpoint${n === 1 ? "" : "s"} match the recording` : "";
    }
  }

  // -- drawing -----------------------------------------------------------------

  frame(ts) {
    requestAnimationFrame((t) => this.frame(t));
    const r = this.renderer;
    r.resize();
    const s = this.schema, newest = this.buffer.newest;
    if (!s || !newest || !this.status) {
      const ctx = r.ctx;
      ctx.setTransform(r.dpr, 0, 0, r.dpr, 0, 0);
      ctx.fillStyle = "#060a13";
      ctx.fillRect(0, 0, r.w, r.h);
      return;
    }
    const dt = this.lastFrame == null ? 16 : ts - this.lastFrame;
    this.lastFrame = ts;
    const tickAt = this.clock.tickAt(ts);
    let br;
    if (this.status.paused || tickAt == null) {
      br = this.buffer.bracket(newest.tick); // exactly the newest state: no extrapolation while paused
    } else {
      br = this.buffer.bracket(tickAt - (INTERP_DELAY_MS * this.status.speed) / this.tickMs);
    }
    sample(s, br, this.view);
    this.updateCamera(dt);
    r.draw({
      schema: s, view: this.view, camera: this.camera, me: null, mePos: null, myAim: null,
      names: this.names, effects: [], now: ts, wholeArena: this.follow == null,
    });
    if (ts - (this.lastHud || 0) > 250) {
      this.lastHud = ts;
      this.updateBoard();
    }
  }

  updateCamera(dt) {
    const s = this.schema, r = this.renderer, view = this.view;
    let target = null, zoom = r.followZoom();
    const row = this.follow != null ? rowIn(view.state.ids, this.follow) : -1;
    if (row >= 0) {
      target = { x: view.x[row] / s.columns[s.index.x].scale, y: view.y[row] / s.columns[s.index.y].scale };
    } else {
      // The whole arena, above the control bar (about 70 px high).
      zoom = Math.min(r.fitZoom(s.width, s.height), (r.h - 150) / (s.height * 1.04));
      target = { x: s.width / 2, y: s.height / 2 + 35 / zoom };
    }
    const c = this.camera;
    if (!this.cameraInit) {
      Object.assign(c, target, { zoom });
      this.cameraInit = true;
    } else {
      const k = 1 - Math.exp(-dt / 90);
      c.x += (target.x - c.x) * k;
      c.y += (target.y - c.y) * k;
      c.zoom += (zoom - c.zoom) * (1 - Math.exp(-dt / 120));
    }
  }

  updateBoard() {
    const s = this.schema, st = this.mirror && this.mirror.latest;
    if (!s || !st) return;
    const iscore = s.index.score;
    const rows = this.roster.map((p) => {
      const row = p.entity != null ? rowIn(st.ids, p.entity) : -1;
      return { ...p, score: row >= 0 && iscore != null ? st.cols[iscore][row] : 0 };
    }).sort((a, b) => b.score - a.score || a.player - b.player);
    const ol = $("scores");
    ol.innerHTML = rows.slice(0, 12).map((p) =>
      `<li data-entity="${p.entity}" class="${p.entity === this.follow ? "follow" : ""}"><span class="dot" style="background:hsl(${playerHue(p.player)},75%,58%)"></span>` +
      `<span>${escapeHtml(p.name)}</span><span class="s">${p.score}</span></li>`).join("") || `<li class="muted">nobody yet</li>`;
    for (const li of ol.querySelectorAll("li[data-entity]")) {
      li.addEventListener("click", () => {
        const e = Number(li.dataset.entity);
        this.follow = this.follow === e ? null : e;
      });
    }
  }

  // -- debug hook --------------------------------------------------------------

  debugState() {
    const m = this.mirror, st = m && m.latest;
    return {
      name: this.name,
      connected: !!(this.link && this.link.open),
      ruleset: this.schema ? this.schema.name : null,
      tick: st ? st.tick : null,
      sum: st ? st.sum >>> 0 : null,
      serverTick: this.status ? this.status.tick : null,
      paused: this.status ? this.status.paused : null,
      speed: this.status ? this.status.speed : null,
      first: this.info ? this.info.first : null,
      last: this.info ? this.info.last : null,
      checksumOk: m ? m.checksumOk : null,
      desyncs: m ? m.desyncs : 0,
      updates: m ? m.updates : 0,
      keyframes: m ? m.keyframes : 0,
      checkpoints: this.checkpoints.size,
      verified: [...new Set(this.verified)],
      mismatches: this.mismatches.slice(),
      entityCount: st ? st.ids.length : 0,
      drawnTotal: Object.values(this.renderer.drawn).reduce((a, b) => a + b, 0),
      roster: this.roster.map((p) => ({ ...p })),
      picker: !$("picker").hidden,
      error: $("error").hidden ? null : $("error").textContent,
    };
  }
}

const viewer = new Viewer();

window.__replay = {
  viewer,
  state: () => viewer.debugState(),
  /** The newest mirror state's checksum, recomputed from its arrays. */
  mirrorChecksum: () => {
    const st = viewer.mirror && viewer.mirror.latest;
    return st ? { tick: st.tick, sum: checksum(st.ids, st.cols) >>> 0, count: st.ids.length } : null;
  },
  /** [tick, checksum] of every verified state applied, oldest first (the last 5000). */
  history: () => viewer.history.map(([t, s]) => [t, s >>> 0]),
  listing: () => viewer.listing,
  open: (name) => viewer.open(name),
  pause: () => viewer.status && !viewer.status.paused && viewer.send({ pause: true }),
  play: () => viewer.status && viewer.status.paused && viewer.send({ pause: false }),
  speed: (x) => viewer.setSpeed(x),
  seek: (tick) => viewer.seek(tick),
};

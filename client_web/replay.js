// The replay viewer: pick a recorded match (GET /api/replays), watch it
// through the live protocol (welcome, roster, update deltas with checksums)
// from `python -m tools.replay play`, and steer the playback with `control`
// messages: pause, speed (0.25x to 8x), seek (REPLAY.md, "Playback").
//
// The spectator core is the live pages' (feed.js: mirror, clock,
// interpolation, acks and resyncs; camera.js), with a keyframe restarting
// the timeline, since a seek may jump either way. What is this page's own:
// the list, the controls, and the checkpoints: each state that lands on a
// recorded checkpoint tick is compared with the checkpoint's checksum, so
// the page shows that what it draws is what was recorded. `window.__replay`
// is a debug hook for tests.

import { CLOSE_REASONS, encodeControl, encodeHello } from "./protocol.js";
import { Feed } from "./feed.js";
import { Camera, entityAt, followZoom, wholeArena } from "./camera.js";
import { openFeed } from "./net.js";
import { Renderer, playerHue } from "./render.js";
import { $, escapeHtml } from "./dom.js";

const params = new URLSearchParams(location.search);
const HISTORY = 5000;
/** CSS px the info panel and the control bar take at the top and the bottom (the whole-arena view keeps them free). */
const INSETS = { top: 40, bottom: 110 };

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
    this.feed = new Feed({ bufferSize: 64, restartOnKeyframe: true });
    this.camera = new Camera();
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
    this.info = null;
    this.status = null;
    this.checkpoints = new Map();
    this.verified = [];
    this.mismatches = [];
    this.history = [];
    this.error = null;
    this.dragging = false;
    this.feed.reset();
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
    this.link = openFeed(url, this.feed, {
      hello: () => encodeHello("viewer", { spectate: true, rosterDeltas: true }),
      onEvent: (ev) => this.onEvent(ev),
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

  onEvent(ev) {
    switch (ev.type) {
      case "welcome":
        this.camera.reset();
        for (const id of ["bar", "info", "board"]) $(id).hidden = false;
        break;
      case "update": if (ev.status === "ok") this.onState(ev.state); break;
      case "replay_info": this.onInfo(ev.msg); break;
      case "replay": this.onStatus(ev.msg); break;
      case "error": this.error = ev.msg.reason; break;
      default: break;
    }
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
    this.feed.setSpeed(st.speed); // the tick clock runs at the playback speed
    if (!prev || prev.speed !== st.speed) $("speed").value = String(st.speed);
    $("play").textContent = st.paused ? (st.tick >= st.last ? "Replay" : "Play") : "Pause";
    if (!this.dragging) {
      $("seek").value = st.tick;
      this.showClock(st.tick);
    }
  }

  /** A verified state: checked against the recording's checkpoint for its tick, if any. */
  onState(state) {
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
    } else if (this.feed.stats().desyncs) {
      el.className = "mono bad";
      el.textContent = `✗ ${this.feed.stats().desyncs} desyncs`;
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
    // Paused: exactly the newest state, no extrapolation.
    const view = this.status ? this.feed.sample(ts, { hold: this.status.paused }) : null;
    if (!view) {
      r.clear();
      return;
    }
    const dt = this.lastFrame == null ? 16 : ts - this.lastFrame;
    this.lastFrame = ts;
    this.updateCamera(dt);
    r.draw({
      schema: this.feed.schema, view, camera: this.camera, me: null, mePos: null, myAim: null,
      names: this.feed.names, effects: [], now: ts, wholeArena: this.follow == null,
    });
    if (ts - (this.lastHud || 0) > 250) {
      this.lastHud = ts;
      this.updateBoard();
    }
  }

  /** The followed player, or the whole arena between the info panel and the control bar. */
  updateCamera(dt) {
    const s = this.feed.schema, r = this.renderer;
    const at = entityAt(s, this.feed.view, this.follow);
    const { zoom, ...target } = at ? { ...at, zoom: followZoom(r.w, r.h) } : wholeArena(s, r.w, r.h, INSETS);
    this.camera.move(target, zoom, dt);
  }

  updateBoard() {
    if (!this.feed.latest) return;
    const rows = this.feed.standings();
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
    const st = this.feed.latest, fs = this.feed.stats();
    return {
      name: this.name,
      connected: !!(this.link && this.link.open),
      ruleset: fs.ruleset,
      tick: fs.tick,
      sum: st ? st.sum >>> 0 : null,
      serverTick: this.status ? this.status.tick : null,
      paused: this.status ? this.status.paused : null,
      speed: this.status ? this.status.speed : null,
      first: this.info ? this.info.first : null,
      last: this.info ? this.info.last : null,
      checksumOk: fs.checksumOk,
      desyncs: fs.desyncs,
      updates: fs.updates,
      keyframes: fs.keyframes,
      checkpoints: this.checkpoints.size,
      verified: [...new Set(this.verified)],
      mismatches: this.mismatches.slice(),
      entityCount: fs.entityCount,
      drawnTotal: Object.values(this.renderer.drawn).reduce((a, b) => a + b, 0),
      roster: this.feed.roster.map((p) => ({ ...p })),
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
  mirrorChecksum: () => viewer.feed.mirrorChecksum(),
  /** [tick, checksum] of every verified state applied, oldest first (the last 5000). */
  history: () => viewer.history.map(([t, s]) => [t, s >>> 0]),
  listing: () => viewer.listing,
  open: (name) => viewer.open(name),
  pause: () => viewer.status && !viewer.status.paused && viewer.send({ pause: true }),
  play: () => viewer.status && viewer.status.paused && viewer.send({ pause: false }),
  speed: (x) => viewer.setSpeed(x),
  seek: (tick) => viewer.seek(tick),
};

// The canvas renderer: the arena's floor and walls, every entity by the
// look of its kind, effects and the minimap, drawn from an interpolated View.
//
// Looks are a table (`LOOKS`: kind name -> the function that draws all the
// visible entities of that kind in one batched path, its layer, its minimap
// dot), so thousands of entities cost a few milliseconds and a ruleset's
// kinds are drawn without touching the code that draws the others. Arena's
// kinds (pellet, bullet, drone, player) have their own art; a kind the table
// does not know gets `GENERIC`, a circle in a colour of its kind, so any
// ruleset whose entities have `x`, `y` and a `kind` column is drawn.

import { byteToAngle } from "./input.js";
import { kindName } from "./protocol.js";
import { rowIn } from "./world.js";

const TAU = Math.PI * 2;
const BACKGROUND = "#060a13";
/** Largest backing store the renderer draws into (device pixels). */
const MAX_PIXELS = 4.2e6;
/** Smallest radius anything is drawn with (CSS px). */
const MIN_R = 1.6;
/** The generic look's colours, by kind value. */
export const KIND_COLORS = ["#5ad1ff", "#ffb84d", "#b48cff", "#6ee7a8", "#ff7ab6", "#f2f27a"];
const PELLET_COLORS = ["#6cf0c2", "#ffd166", "#8fb8ff", "#ff9bd2"];

/** A stable, pleasant colour per player id. */
export function playerHue(player) {
  return (player * 137.508 + 200) % 360;
}

/** The generic look's colour of kind value `k`. */
export function kindColor(k) {
  return KIND_COLORS[((k % KIND_COLORS.length) + KIND_COLORS.length) % KIND_COLORS.length];
}

// -- looks -------------------------------------------------------------------------------
//
// A look's `draw(ctx, g, f)` draws the entities `g.idx[0 .. g.n)` (indices
// into the view) with the frame `f`: {schema, state, cols, view, scene, z
// (zoom), now (ms), row(i) (view index -> state row), kindOf(i) (kind
// value), at(i) -> [x, y] CSS px (the player's own entity at its predicted
// position), meRow and meIndex (-1: none), kind (value) and name, alpha (the
// opacity they are drawn at: below 1 while fading in or out, fade.js); a
// look that sets `ctx.globalAlpha` multiplies by it}.

/** Circles along `g`'s entities, radius `r` (CSS px), as one path (fill or stroke it). */
function circles(ctx, g, f, r) {
  ctx.beginPath();
  for (let j = 0; j < g.n; j++) {
    const [px, py] = f.at(g.idx[j]);
    ctx.moveTo(px + r, py);
    ctx.arc(px, py, r, 0, TAU);
  }
}

/** Any kind: a circle of 8 world units in the kind's colour; the player's own entity ringed. */
function drawGeneric(ctx, g, f) {
  const r = Math.max(MIN_R, 8 * f.z);
  ctx.fillStyle = kindColor(f.kind);
  circles(ctx, g, f, r);
  ctx.fill();
  if (f.meIndex < 0 || f.kindOf(f.meIndex) !== f.kind) return;
  const [px, py] = f.at(f.meIndex);
  ctx.strokeStyle = "rgba(255,255,255,0.85)";
  ctx.lineWidth = Math.max(1, 2 * f.z);
  ctx.beginPath();
  ctx.arc(px, py, r + Math.max(3, 5 * f.z), 0, TAU);
  ctx.stroke();
}

/** Pellets: four colours by id, a soft halo, a slow pulse. */
function drawPellets(ctx, g, f) {
  const ids = f.state.ids, base = Math.max(MIN_R, 8 * f.z * 0.7);
  for (let c = 0; c < PELLET_COLORS.length; c++) {
    ctx.fillStyle = PELLET_COLORS[c];
    ctx.globalAlpha = 0.18 * f.alpha;
    ctx.beginPath();
    for (let j = 0; j < g.n; j++) {
      const i = g.idx[j];
      if (ids[f.row(i)] % 4 !== c) continue;
      const [px, py] = f.at(i);
      const r = base * 1.9;
      ctx.moveTo(px + r, py);
      ctx.arc(px, py, r, 0, TAU);
    }
    ctx.fill();
    ctx.globalAlpha = f.alpha;
    ctx.beginPath();
    for (let j = 0; j < g.n; j++) {
      const i = g.idx[j];
      const id = ids[f.row(i)];
      if (id % 4 !== c) continue;
      const [px, py] = f.at(i);
      const r = base * (0.85 + 0.15 * Math.sin(f.now / 300 + id));
      ctx.moveTo(px + r, py);
      ctx.arc(px, py, r, 0, TAU);
    }
    ctx.fill();
  }
}

/** Bullets: a short bright trail along the velocity, and a hot core. */
function drawBullets(ctx, g, f) {
  const { schema, cols, z } = f;
  const ivx = schema.index.vx, ivy = schema.index.vy;
  const scaleX = schema.columns[schema.index.x].scale, scaleY = schema.columns[schema.index.y].scale;
  ctx.strokeStyle = "rgba(255, 200, 110, 0.5)";
  ctx.lineWidth = Math.max(1, 3 * z);
  ctx.lineCap = "round";
  ctx.beginPath();
  for (let j = 0; j < g.n; j++) {
    const i = g.idx[j], row = f.row(i);
    const [px, py] = f.at(i);
    const tx = ivx != null ? cols[ivx][row] / scaleX : 0, ty = ivy != null ? cols[ivy][row] / scaleY : 0;
    ctx.moveTo(px, py);
    ctx.lineTo(px - tx * 2.2 * z, py - ty * 2.2 * z);
  }
  ctx.stroke();
  ctx.fillStyle = "#fff6cf";
  circles(ctx, g, f, Math.max(MIN_R, 4 * z * 1.2));
  ctx.fill();
}

/** Drones: spinning hexagons, body then rim then core. */
function drawDrones(ctx, g, f) {
  const ids = f.state.ids, z = f.z;
  const r = Math.max(2, 14 * z);
  const spin = f.now / 700;
  const hex = (scale) => {
    ctx.beginPath();
    for (let j = 0; j < g.n; j++) {
      const i = g.idx[j];
      const [px, py] = f.at(i);
      const a0 = spin + ids[f.row(i)];
      for (let s = 0; s < 6; s++) {
        const a = a0 + (s * TAU) / 6;
        const qx = px + Math.cos(a) * r * scale, qy = py + Math.sin(a) * r * scale;
        if (s === 0) ctx.moveTo(qx, qy); else ctx.lineTo(qx, qy);
      }
      ctx.closePath();
    }
  };
  ctx.fillStyle = "rgba(255, 70, 85, 0.16)";
  hex(1.7); ctx.fill();
  ctx.fillStyle = "#ff4d5e";
  hex(1); ctx.fill();
  ctx.strokeStyle = "#ffb3ba";
  ctx.lineWidth = Math.max(1, 2 * z);
  ctx.stroke();
  ctx.fillStyle = "#4a0f1a";
  circles(ctx, g, f, r * 0.38);
  ctx.fill();
}

/** Players: body in the player's colour, gun along the aim, health bar and name; the player's own ringed, on top. */
function drawPlayers(ctx, g, f) {
  for (let j = 0; j < g.n; j++) if (g.idx[j] !== f.meIndex) drawPlayer(ctx, g.idx[j], f);
  if (f.meIndex >= 0 && f.kindOf(f.meIndex) === f.kind) drawPlayer(ctx, f.meIndex, f);
}

function drawPlayer(ctx, i, f) {
  const { schema, state, cols, z, scene } = f;
  const iaim = schema.index.aim, ihp = schema.index.hp;
  const names = scene.names || new Map();
  const row = f.row(i);
  const [px, py] = f.at(i);
  const isMe = row === f.meRow;
  const id = state.ids[row];
  const info = names.get(id);
  const hp = ihp != null ? cols[ihp][row] : 100;
  const dead = ihp != null && hp === 0;
  const hue = playerHue(info ? info.player : id);
  const r = Math.max(5, 20 * z);
  ctx.globalAlpha = f.alpha * (dead ? 0.28 : info && !info.online ? 0.55 : 1);
  let aim = iaim != null ? byteToAngle(cols[iaim][row]) : null;
  if (isMe && scene.myAim != null) aim = scene.myAim;
  if (aim != null && !dead) {
    ctx.save();
    ctx.translate(px, py);
    ctx.rotate(aim);
    ctx.fillStyle = "#c9d3e0";
    ctx.strokeStyle = "#1b2333";
    ctx.lineWidth = Math.max(1, 2 * z);
    ctx.beginPath();
    ctx.rect(r * 0.3, -r * 0.3, r * 1.25, r * 0.6);
    ctx.fill();
    ctx.stroke();
    if (isMe && scene.myFlash > 0) muzzleFlash(ctx, r * 1.6, r, scene.myFlash);
    ctx.restore();
  }
  ctx.fillStyle = `hsl(${hue}, 75%, ${dead ? 40 : 58}%)`;
  ctx.strokeStyle = `hsl(${hue}, 60%, 28%)`;
  ctx.lineWidth = Math.max(1.5, 3 * z);
  ctx.beginPath();
  ctx.arc(px, py, r, 0, TAU);
  ctx.fill();
  ctx.stroke();
  if (isMe) {
    ctx.strokeStyle = "rgba(255,255,255,0.85)";
    ctx.lineWidth = Math.max(1, 2 * z);
    ctx.beginPath();
    ctx.arc(px, py, r + Math.max(3, 5 * z), 0, TAU);
    ctx.stroke();
  }
  ctx.globalAlpha = f.alpha;
  if (z < 0.12) return;
  // Health bar under, name above.
  if (ihp != null && !dead) {
    const bw = Math.max(26, r * 2.2), bh = Math.max(3, 5 * z), by = py + r + Math.max(5, 8 * z);
    const fr = Math.min(1, hp / 100);
    ctx.fillStyle = "rgba(0,0,0,0.55)";
    ctx.fillRect(px - bw / 2 - 1, by - 1, bw + 2, bh + 2);
    ctx.fillStyle = fr > 0.5 ? "#52e08a" : fr > 0.25 ? "#ffc94d" : "#ff5a5a";
    ctx.fillRect(px - bw / 2, by, bw * fr, bh);
  }
  const label = info ? info.name : `#${id}`;
  ctx.font = `600 ${Math.round(Math.max(11, Math.min(15, 14 * z)))}px system-ui, "DejaVu Sans", sans-serif`;
  if (z < 0.3 && !isMe && ihp != null) ctx.font = `500 10px system-ui, "DejaVu Sans", sans-serif`;
  ctx.textAlign = "center";
  ctx.textBaseline = "bottom";
  ctx.lineWidth = 3;
  ctx.strokeStyle = "rgba(0,0,0,0.7)";
  const ty = py - r - Math.max(4, 6 * z);
  ctx.strokeText(label, px, ty);
  ctx.fillStyle = isMe ? "#ffffff" : dead ? "#9aa4b5" : "#e8eef8";
  ctx.fillText(label, px, ty);
}

/** A muzzle flash at distance `at` along +x (the gun's rotated frame), for a body of radius `r`, fading with `k` 1 -> 0. */
function muzzleFlash(ctx, at, r, k) {
  const size = r * (0.8 + 0.5 * k);
  const grad = ctx.createRadialGradient(at, 0, 0, at, 0, size);
  grad.addColorStop(0, `rgba(255,250,220,${0.95 * k})`);
  grad.addColorStop(0.35, `rgba(255,200,90,${0.8 * k})`);
  grad.addColorStop(1, "rgba(255,140,40,0)");
  ctx.fillStyle = grad;
  ctx.beginPath();
  ctx.arc(at, 0, size, 0, TAU);
  ctx.fill();
  // A short cone of sparks along the barrel.
  ctx.fillStyle = `rgba(255,230,150,${0.9 * k})`;
  ctx.beginPath();
  ctx.moveTo(at - size * 0.2, -size * 0.3);
  ctx.lineTo(at + size * 1.6, 0);
  ctx.lineTo(at - size * 0.2, size * 0.3);
  ctx.closePath();
  ctx.fill();
}

/** Minimap dots: squares of half-size `r` in `color` for every entity of the kind (`m`: the minimap's frame). */
const miniDots = (color, r) => (ctx, k, m) => {
  ctx.fillStyle = color;
  ctx.beginPath();
  for (let i = 0; i < m.view.n; i++) {
    if (m.kindOf(i) !== k) continue;
    const [px, py] = m.at(i);
    ctx.rect(px - r, py - r, r * 2, r * 2);
  }
  ctx.fill();
};

/** Players on the minimap: round dots in their colours, the player's own white and larger. */
function miniPlayers(ctx, k, m) {
  const names = m.scene.names || new Map();
  for (let i = 0; i < m.view.n; i++) {
    if (m.kindOf(i) !== k) continue;
    const id = m.view.state.ids[m.view.row[i]];
    const info = names.get(id);
    const isMe = id === m.scene.me;
    const [px, py] = m.at(i);
    ctx.fillStyle = isMe ? "#ffffff" : `hsl(${playerHue(info ? info.player : id)}, 80%, 62%)`;
    ctx.beginPath();
    ctx.arc(px, py, isMe ? 3.2 : 2.4, 0, TAU);
    ctx.fill();
  }
}

/** Where effects (rings, floating texts) go among the layers: over everything but players. */
export const EFFECTS_LAYER = 4;

/**
 * The looks, by kind name: `draw` (above), `layer` (lower first), `mini`
 * (the minimap's drawing of the kind, or null for none).
 */
export const LOOKS = new Map([
  ["pellet", { draw: drawPellets, layer: 1, mini: miniDots("rgba(108, 240, 194, 0.45)", 0.7) }],
  ["bullet", { draw: drawBullets, layer: 2, mini: null }],
  ["drone", { draw: drawDrones, layer: 3, mini: miniDots("#ff4d5e", 1.3) }],
  ["player", { draw: drawPlayers, layer: 5, mini: miniPlayers }],
]);

/** The look of any kind `LOOKS` does not name: under the others. */
export const GENERIC = Object.freeze({ draw: drawGeneric, layer: 0, mini: miniDots("rgba(120, 190, 255, 0.45)", 0.6) });

/** The look of the kind named `name`. */
export function lookFor(name) {
  return LOOKS.get(name) ?? GENERIC;
}

export class Renderer {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.w = 0; this.h = 0; this.dpr = 1;
    /** Visible entities by kind value: {idx: Int32Array of view indices, n}. */
    this.groups = new Map();
    this.drawn = {};
    this.showMinimap = true;
    this.camera = { x: 0, y: 0, zoom: 1 };
  }

  resize() {
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    // Sharp on HiDPI screens, but at most ~4 megapixels: filling a bigger canvas every
    // frame costs more than it shows (and all of it without a GPU).
    const cap = Math.sqrt(MAX_PIXELS / Math.max(1, w * h));
    const dpr = Math.max(1, Math.min(2, globalThis.devicePixelRatio || 1, cap));
    if (w !== this.w || h !== this.h || dpr !== this.dpr) {
      this.w = w; this.h = h; this.dpr = dpr;
      this.canvas.width = Math.max(1, Math.round(w * dpr));
      this.canvas.height = Math.max(1, Math.round(h * dpr));
    }
  }

  /** Fill the canvas with the background, in CSS pixels from here on. */
  clear() {
    const ctx = this.ctx;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, this.w, this.h);
  }

  /** The join screen's backdrop: a slowly drifting grid. */
  drawIdle(ts) {
    const ctx = this.ctx;
    this.clear();
    const off = (ts / 60) % 60;
    ctx.strokeStyle = "rgba(110,160,255,0.07)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let x = -off; x < this.w; x += 60) { ctx.moveTo(x + 0.5, 0); ctx.lineTo(x + 0.5, this.h); }
    for (let y = -off; y < this.h; y += 60) { ctx.moveTo(0, y + 0.5); ctx.lineTo(this.w, y + 0.5); }
    ctx.stroke();
  }

  /** The touch sticks (input.js `Controls.touch`: {move, aim}, each {x0, y0, x, y} in CSS px or null), over the frame. */
  drawSticks(touch) {
    const ctx = this.ctx;
    for (const stick of [touch.move, touch.aim]) {
      if (!stick) continue;
      ctx.strokeStyle = "rgba(255,255,255,0.35)";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(stick.x0, stick.y0, 46, 0, TAU);
      ctx.stroke();
      ctx.fillStyle = "rgba(255,255,255,0.25)";
      ctx.beginPath();
      ctx.arc(stick.x, stick.y, 20, 0, TAU);
      ctx.fill();
    }
  }

  toScreen(wx, wy) {
    const c = this.camera;
    return [(wx - c.x) * c.zoom + this.w / 2, (wy - c.y) * c.zoom + this.h / 2];
  }

  _group(k) {
    let g = this.groups.get(k);
    if (!g) { g = { idx: new Int32Array(1024), n: 0 }; this.groups.set(k, g); }
    return g;
  }

  static _push(g, i) {
    if (g.n === g.idx.length) { const a = new Int32Array(g.idx.length * 2); a.set(g.idx); g.idx = a; }
    g.idx[g.n++] = i;
  }

  /**
   * Draw one frame.
   * @param scene {schema, view, camera: {x, y, zoom} (world units), me: entity id or null,
   *   mePos: {x, y} (column units, predicted) or null, myAim: radians or null,
   *   myFlash: 0..1, the local muzzle flash at my gun (1 just fired, 0 none),
   *   names: Map(entity -> {name, player, online}), effects: [{x, y, t0, ms, r0, r1, width, color, text}],
   *   wholeArena: the camera shows the whole arena (no minimap), now (ms),
   *   fade: a fade.js Fader (a filtered view: entities fading in, ghosts fading out) or null,
   *   ownShots: [{x, y, vx, vy}] (column units) our shots in the predicted timeline, drawn as kind
   *   `ownShotKind`; hidden: a Set of entity ids not to draw (the server's copies of those shots),
   *   tickMs: ms per tick (the ghosts' motion)}
   * Sets `drawn`: entities drawn per kind name.
   */
  draw(scene) {
    const { schema, view, now } = scene;
    const ctx = this.ctx;
    this.camera = scene.camera;
    const cam = this.camera, z = cam.zoom, w = this.w, h = this.h;
    this.clear();
    const sx = (x) => (x - cam.x) * z + w / 2;
    const sy = (y) => (y - cam.y) * z + h / 2;
    this._floor(ctx, schema.width, schema.height, sx, sy, z);
    this.drawn = {};
    if (!view || !view.state) return;

    const state = view.state;
    const scaleX = schema.columns[schema.index.x].scale, scaleY = schema.columns[schema.index.y].scale;
    const kindCol = schema.index.kind != null ? state.cols[schema.index.kind] : null;
    const vx = view.x, vy = view.y, vrow = view.row;
    const meRow = scene.me != null ? rowIn(state.ids, scene.me) : -1;
    let meIndex = -1;
    // Group the entities on screen (with a margin for radii and names) by kind; the player's own always.
    const pad = 60 / Math.max(z, 0.01) + 30;
    const x0 = cam.x - w / 2 / z - pad, x1 = cam.x + w / 2 / z + pad;
    const y0 = cam.y - h / 2 / z - pad, y1 = cam.y + h / 2 / z + pad;
    for (const g of this.groups.values()) g.n = 0;
    const fade = scene.fade || null, fading = [];
    const fadingIn = fade != null && fade.fadingIn;
    const hidden = scene.hidden && scene.hidden.size ? scene.hidden : null;
    for (let i = 0, n = view.n; i < n; i++) {
      const wx = vx[i] / scaleX, wy = vy[i] / scaleY;
      if (vrow[i] === meRow) meIndex = i;
      else if (hidden && hidden.has(state.ids[vrow[i]])) continue; // our own shot, drawn predicted (ownShots)
      else if (wx < x0 || wx > x1 || wy < y0 || wy > y1) continue;
      else if (fadingIn) {
        const a = fade.alpha(state.ids[vrow[i]], now);
        if (a < 1) {
          fading.push([i, a]);
          continue;
        }
      }
      Renderer._push(this._group(kindCol ? kindCol[vrow[i]] : 0), i);
    }
    const mePos = meIndex >= 0 && scene.mePos ? [sx(scene.mePos.x / scaleX), sy(scene.mePos.y / scaleY)] : null;
    const f = {
      schema, state, cols: state.cols, view, scene, z, now, meRow, meIndex, kind: 0, name: "", alpha: 1,
      row: (i) => vrow[i],
      kindOf: (i) => (kindCol ? kindCol[vrow[i]] : 0),
      at: (i) => (i === meIndex && mePos ? mePos : [sx(vx[i] / scaleX), sy(vy[i] / scaleY)]),
    };
    const layers = [];
    for (const [k, g] of this.groups) {
      if (!g.n) continue;
      const name = kindName(schema, k);
      this.drawn[name] = g.n;
      layers.push({ k, g, name, look: lookFor(name) });
    }
    layers.sort((a, b) => a.look.layer - b.look.layer || a.k - b.k);
    let effects = false;
    for (const { k, g, name, look } of layers) {
      if (!effects && look.layer > EFFECTS_LAYER) { this._effects(ctx, scene.effects || [], now, sx, sy, z); effects = true; }
      f.kind = k; f.name = name;
      look.draw(ctx, g, f);
    }
    if (!effects) this._effects(ctx, scene.effects || [], now, sx, sy, z);
    if (scene.ownShots && scene.ownShots.length) this._ownShots(ctx, f, scene.ownShots, scene.ownShotKind, sx, sy);
    if (fade) this._fading(ctx, f, fading, fade.ghostsAt(schema, now, scene.tickMs || 1000 / 30), sx, sy);
    if (this.showMinimap && !scene.wholeArena) this._minimap(ctx, scene, f.kindOf);
  }

  /**
   * The player's own shots in the predicted timeline (shots.js): `shots`
   * [{x, y, vx, vy}] in column units, each drawn by the look of `kind`.
   */
  _ownShots(ctx, f, shots, kind, sx, sy) {
    const { schema } = f;
    const scaleX = schema.columns[schema.index.x].scale, scaleY = schema.columns[schema.index.y].scale;
    const cols = schema.columns.map(() => new Float64Array(1));
    const ivx = schema.index.vx, ivy = schema.index.vy, ik = schema.index.kind;
    if (ik != null) cols[ik][0] = kind;
    const state = { ids: new Uint32Array(1), cols };
    let at = [0, 0];
    const frame = { ...f, state, cols, meRow: -1, meIndex: -1, row: () => 0, kindOf: () => kind, at: () => at, kind,
      name: kindName(schema, kind), alpha: 1 };
    const one = { idx: new Int32Array(1), n: 1 };
    const look = lookFor(frame.name);
    for (const s of shots) {
      at = [sx(s.x / scaleX), sy(s.y / scaleY)];
      if (ivx != null) cols[ivx][0] = s.vx;
      if (ivy != null) cols[ivy][0] = s.vy;
      look.draw(ctx, one, frame);
    }
    this.drawn[frame.name] = (this.drawn[frame.name] || 0) + shots.length;
  }

  /**
   * Entities of a filtered view fading in (`[view index, alpha]`) and ghosts of those
   * that left it fading out (fade.js `ghostsAt`), one by one at their opacity, each by
   * the look of its kind, over the rest.
   */
  _fading(ctx, f, fading, ghosts, sx, sy) {
    const one = { idx: new Int32Array(1), n: 1 };
    const { schema } = f;
    const scaleX = schema.columns[schema.index.x].scale, scaleY = schema.columns[schema.index.y].scale;
    const ik = schema.index.kind;
    const draw = (frame, i, alpha, kind) => {
      const name = kindName(schema, kind);
      one.idx[0] = i;
      frame.kind = kind; frame.name = name; frame.alpha = alpha;
      ctx.globalAlpha = alpha;
      lookFor(name).draw(ctx, one, frame);
      this.drawn[name] = (this.drawn[name] || 0) + 1;
    };
    for (const [i, alpha] of fading) draw(f, i, alpha, f.kindOf(i));
    for (const g of ghosts) {
      const at = [sx(g.x / scaleX), sy(g.y / scaleY)];
      const kind = ik != null ? g.state.cols[ik][g.row] : 0;
      const gf = { ...f, state: g.state, cols: g.state.cols, meRow: -1, meIndex: -1, row: () => g.row, kindOf: () => kind, at: () => at };
      draw(gf, 0, g.alpha, kind);
    }
    ctx.globalAlpha = 1;
    f.alpha = 1;
  }

  _floor(ctx, W, H, sx, sy, z) {
    const ax0 = sx(0), ay0 = sy(0), ax1 = sx(W), ay1 = sy(H);
    const grad = ctx.createRadialGradient((ax0 + ax1) / 2, (ay0 + ay1) / 2, 0, (ax0 + ax1) / 2, (ay0 + ay1) / 2, Math.max(ax1 - ax0, ay1 - ay0) * 0.75);
    grad.addColorStop(0, "#142036");
    grad.addColorStop(1, "#0c1424");
    ctx.fillStyle = grad;
    ctx.fillRect(ax0, ay0, ax1 - ax0, ay1 - ay0);
    // Grid: every 100 units (every 500 when zoomed far out), only the visible lines.
    const step = z * 100 < 14 ? 500 : 100;
    const gx0 = Math.max(0, Math.ceil((this.camera.x - this.w / 2 / z) / step) * step);
    const gx1 = Math.min(W, this.camera.x + this.w / 2 / z);
    const gy0 = Math.max(0, Math.ceil((this.camera.y - this.h / 2 / z) / step) * step);
    const gy1 = Math.min(H, this.camera.y + this.h / 2 / z);
    ctx.lineWidth = 1;
    for (const major of [false, true]) {
      ctx.strokeStyle = major ? "rgba(110, 160, 255, 0.13)" : "rgba(110, 160, 255, 0.055)";
      ctx.beginPath();
      for (let x = gx0; x <= gx1; x += step) {
        if ((x % (step * 5) === 0) !== major) continue;
        const p = Math.round(sx(x)) + 0.5;
        ctx.moveTo(p, Math.max(ay0, 0)); ctx.lineTo(p, Math.min(ay1, this.h));
      }
      for (let y = gy0; y <= gy1; y += step) {
        if ((y % (step * 5) === 0) !== major) continue;
        const p = Math.round(sy(y)) + 0.5;
        ctx.moveTo(Math.max(ax0, 0), p); ctx.lineTo(Math.min(ax1, this.w), p);
      }
      ctx.stroke();
    }
    // Walls: a soft glow and a crisp line.
    ctx.strokeStyle = "rgba(70, 170, 255, 0.18)";
    ctx.lineWidth = Math.max(6, 18 * z);
    ctx.strokeRect(ax0, ay0, ax1 - ax0, ay1 - ay0);
    ctx.strokeStyle = "#59b8ff";
    ctx.lineWidth = Math.max(1.5, 3 * z);
    ctx.strokeRect(ax0, ay0, ax1 - ax0, ay1 - ay0);
  }

  _effects(ctx, effects, now, sx, sy, z) {
    for (const e of effects) {
      const t = (now - e.t0) / e.ms;
      if (t < 0 || t > 1) continue;
      const px = sx(e.x), py = sy(e.y);
      const r = (e.r0 + (e.r1 - e.r0) * Math.sqrt(t)) * z;
      ctx.globalAlpha = (1 - t) * 0.9;
      ctx.strokeStyle = e.color;
      ctx.lineWidth = Math.max(1, e.width * z * (1 - t * 0.6));
      ctx.beginPath();
      ctx.arc(px, py, Math.max(1, r), 0, TAU);
      ctx.stroke();
      if (e.text) {
        ctx.globalAlpha = 1 - t;
        ctx.font = "700 14px system-ui, \"DejaVu Sans\", sans-serif";
        ctx.textAlign = "center";
        ctx.fillStyle = e.color;
        ctx.fillText(e.text, px, py - 30 * z - t * 30);
      }
    }
    ctx.globalAlpha = 1;
  }

  /** The whole arena in a corner: each kind as its look's `mini` draws it, and the part on screen. */
  _minimap(ctx, scene, kindOf) {
    const { schema, view } = scene;
    const size = Math.round(Math.min(180, Math.max(110, Math.min(this.w, this.h) * 0.22)));
    const m = 14;
    const x0 = this.w - size - m, y0 = this.h - size - m;
    const scaleX = schema.columns[schema.index.x].scale, scaleY = schema.columns[schema.index.y].scale;
    const kx = size / schema.width / scaleX, ky = size / schema.height / scaleY;
    ctx.fillStyle = "rgba(8, 14, 26, 0.78)";
    ctx.fillRect(x0, y0, size, size);
    ctx.strokeStyle = "rgba(89, 184, 255, 0.6)";
    ctx.lineWidth = 1;
    ctx.strokeRect(x0 + 0.5, y0 + 0.5, size - 1, size - 1);
    const meRow = scene.me != null ? rowIn(view.state.ids, scene.me) : -1;
    const mini = {
      view, scene, kindOf,
      at: (i) => {
        let px = view.x[i], py = view.y[i];
        if (view.row[i] === meRow && scene.mePos) { px = scene.mePos.x; py = scene.mePos.y; }
        return [x0 + px * kx, y0 + py * ky];
      },
    };
    const kinds = schema.kinds.map((name, k) => ({ k, look: lookFor(name) })).filter((e) => e.look.mini);
    kinds.sort((a, b) => a.look.layer - b.look.layer || a.k - b.k);
    for (const { k, look } of kinds) look.mini(ctx, k, mini);
    // The part of the arena on screen.
    const cam = this.camera;
    const vw = this.w / cam.zoom, vh = this.h / cam.zoom;
    const wx = size / schema.width, wy = size / schema.height;
    const rx0 = Math.max(x0, x0 + (cam.x - vw / 2) * wx), ry0 = Math.max(y0, y0 + (cam.y - vh / 2) * wy);
    const rx1 = Math.min(x0 + size, x0 + (cam.x + vw / 2) * wx), ry1 = Math.min(y0 + size, y0 + (cam.y + vh / 2) * wy);
    if (rx1 > rx0 && ry1 > ry0) {
      ctx.strokeStyle = "rgba(255,255,255,0.55)";
      ctx.strokeRect(rx0 + 0.5, ry0 + 0.5, rx1 - rx0 - 1, ry1 - ry0 - 1);
    }
  }
}

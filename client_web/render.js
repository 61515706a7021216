// The canvas renderer: arena floor and walls, pellets, drones, bullets,
// players (names, health, aim), effects and the minimap, drawn from an
// interpolated View. Generic over the schema: kinds it does not know are
// drawn as coloured dots. Entities of one look are batched into one path, so
// thousands cost a few milliseconds.

import { byteToAngle } from "./input.js";
import { rowIn } from "./world.js";

const TAU = Math.PI * 2;
const BACKGROUND = "#060a13";
/** Largest backing store the renderer draws into (device pixels). */
const MAX_PIXELS = 4.2e6;
/** Looks of the kinds the renderer knows, by kind name (radius in world units). */
const LOOKS = {
  player: { shape: "player", r: 20 },
  drone: { shape: "drone", r: 14 },
  bullet: { shape: "bullet", r: 4 },
  pellet: { shape: "pellet", r: 8 },
};
const DOT_COLORS = ["#5ad1ff", "#ffb84d", "#b48cff", "#6ee7a8", "#ff7ab6", "#f2f27a"];
const PELLET_COLORS = ["#6cf0c2", "#ffd166", "#8fb8ff", "#ff9bd2"];

/** A stable, pleasant colour per player id. */
export function playerHue(player) {
  return (player * 137.508 + 200) % 360;
}

export class Renderer {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.w = 0; this.h = 0; this.dpr = 1;
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

  _group(name) {
    let g = this.groups.get(name);
    if (!g) { g = { idx: new Int32Array(1024), n: 0 }; this.groups.set(name, g); }
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
   *   wholeArena: the camera shows the whole arena (no minimap), now (ms)}
   */
  draw(scene) {
    const { schema, view, now } = scene;
    const ctx = this.ctx;
    this.camera = scene.camera;
    const cam = this.camera, z = cam.zoom, w = this.w, h = this.h;
    this.clear();
    const W = schema.width, H = schema.height;
    const sx = (x) => (x - cam.x) * z + w / 2;
    const sy = (y) => (y - cam.y) * z + h / 2;
    this._floor(ctx, W, H, sx, sy, z);
    this.drawn = {};
    if (!view || !view.state) return;

    const state = view.state;
    const ix = schema.index.x, iy = schema.index.y;
    const scaleX = schema.columns[ix].scale, scaleY = schema.columns[iy].scale;
    const kindCol = schema.index.kind != null ? state.cols[schema.index.kind] : null;
    const kinds = schema.kinds;
    // World-space bounds of the screen (with a margin for radii and names).
    const pad = 60 / Math.max(z, 0.01) + 30;
    const x0 = cam.x - w / 2 / z - pad, x1 = cam.x + w / 2 / z + pad;
    const y0 = cam.y - h / 2 / z - pad, y1 = cam.y + h / 2 / z + pad;
    for (const g of this.groups.values()) g.n = 0;
    const meRow = scene.me != null ? rowIn(state.ids, scene.me) : -1;
    const vx = view.x, vy = view.y, vrow = view.row;
    for (let i = 0, n = view.n; i < n; i++) {
      const wx = vx[i] / scaleX, wy = vy[i] / scaleY;
      if (wx < x0 || wx > x1 || wy < y0 || wy > y1) continue;
      const k = kindCol ? kindCol[vrow[i]] : 0;
      const name = kinds[k] ?? `kind${k}`;
      Renderer._push(this._group(name), i);
    }
    const cols = state.cols;
    const at = (i) => [sx(vx[i] / scaleX), sy(vy[i] / scaleY)];
    const minR = 1.6;

    for (const [name, g] of this.groups) {
      if (!g.n) continue;
      this.drawn[name] = g.n;
      const look = LOOKS[name];
      if (look) continue; // drawn below, in a fixed order
      const k = kinds.indexOf(name);
      ctx.fillStyle = DOT_COLORS[(k < 0 ? 0 : k) % DOT_COLORS.length];
      const r = Math.max(minR, 8 * z);
      ctx.beginPath();
      for (let j = 0; j < g.n; j++) {
        const [px, py] = at(g.idx[j]);
        ctx.moveTo(px + r, py);
        ctx.arc(px, py, r, 0, TAU);
      }
      ctx.fill();
    }

    // Pellets: four colours, a slow pulse.
    const pel = this.groups.get("pellet");
    if (pel && pel.n) {
      const base = Math.max(minR, LOOKS.pellet.r * z * 0.7);
      for (let c = 0; c < PELLET_COLORS.length; c++) {
        ctx.fillStyle = PELLET_COLORS[c];
        ctx.globalAlpha = 0.18;
        ctx.beginPath();
        for (let j = 0; j < pel.n; j++) {
          const i = pel.idx[j];
          if (state.ids[vrow[i]] % 4 !== c) continue;
          const [px, py] = at(i);
          const r = base * 1.9;
          ctx.moveTo(px + r, py);
          ctx.arc(px, py, r, 0, TAU);
        }
        ctx.fill();
        ctx.globalAlpha = 1;
        ctx.beginPath();
        for (let j = 0; j < pel.n; j++) {
          const i = pel.idx[j];
          const id = state.ids[vrow[i]];
          if (id % 4 !== c) continue;
          const [px, py] = at(i);
          const r = base * (0.85 + 0.15 * Math.sin(now / 300 + id));
          ctx.moveTo(px + r, py);
          ctx.arc(px, py, r, 0, TAU);
        }
        ctx.fill();
      }
    }

    // Bullets: a short bright trail along the velocity.
    const bul = this.groups.get("bullet");
    if (bul && bul.n) {
      const ivx = schema.index.vx, ivy = schema.index.vy;
      ctx.strokeStyle = "rgba(255, 200, 110, 0.5)";
      ctx.lineWidth = Math.max(1, 3 * z);
      ctx.lineCap = "round";
      ctx.beginPath();
      for (let j = 0; j < bul.n; j++) {
        const i = bul.idx[j], row = vrow[i];
        const [px, py] = at(i);
        const tx = ivx != null ? cols[ivx][row] / scaleX : 0, ty = ivy != null ? cols[ivy][row] / scaleY : 0;
        ctx.moveTo(px, py);
        ctx.lineTo(px - tx * 2.2 * z, py - ty * 2.2 * z);
      }
      ctx.stroke();
      ctx.fillStyle = "#fff6cf";
      const r = Math.max(minR, LOOKS.bullet.r * z * 1.2);
      ctx.beginPath();
      for (let j = 0; j < bul.n; j++) {
        const [px, py] = at(bul.idx[j]);
        ctx.moveTo(px + r, py);
        ctx.arc(px, py, r, 0, TAU);
      }
      ctx.fill();
    }

    // Drones: spinning hexagons, body then rim then core.
    const dr = this.groups.get("drone");
    if (dr && dr.n) {
      const r = Math.max(2, LOOKS.drone.r * z);
      const spin = now / 700;
      const hex = (scale) => {
        ctx.beginPath();
        for (let j = 0; j < dr.n; j++) {
          const i = dr.idx[j];
          const [px, py] = at(i);
          const a0 = spin + state.ids[vrow[i]];
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
      ctx.beginPath();
      for (let j = 0; j < dr.n; j++) {
        const [px, py] = at(dr.idx[j]);
        ctx.moveTo(px + r * 0.38, py);
        ctx.arc(px, py, r * 0.38, 0, TAU);
      }
      ctx.fill();
    }

    this._effects(ctx, scene.effects || [], now, sx, sy, z);

    // Players last: bodies, guns, health and names.
    const pl = this.groups.get("player");
    const iaim = schema.index.aim, ihp = schema.index.hp;
    const names = scene.names || new Map();
    const drawPlayer = (px, py, row, isMe) => {
      const id = state.ids[row];
      const info = names.get(id);
      const hp = ihp != null ? cols[ihp][row] : 100;
      const dead = ihp != null && hp === 0;
      const hue = playerHue(info ? info.player : id);
      const r = Math.max(5, LOOKS.player.r * z);
      ctx.globalAlpha = dead ? 0.28 : info && !info.online ? 0.55 : 1;
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
        if (isMe && scene.myFlash > 0) Renderer._flash(ctx, r * 1.6, r, scene.myFlash);
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
      ctx.globalAlpha = 1;
      if (z < 0.12) return;
      // Health bar under, name above.
      if (ihp != null && !dead) {
        const bw = Math.max(26, r * 2.2), bh = Math.max(3, 5 * z), by = py + r + Math.max(5, 8 * z);
        const f = Math.min(1, hp / 100);
        ctx.fillStyle = "rgba(0,0,0,0.55)";
        ctx.fillRect(px - bw / 2 - 1, by - 1, bw + 2, bh + 2);
        ctx.fillStyle = f > 0.5 ? "#52e08a" : f > 0.25 ? "#ffc94d" : "#ff5a5a";
        ctx.fillRect(px - bw / 2, by, bw * f, bh);
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
    };
    let meDrawn = false;
    if (pl && pl.n) {
      for (let j = 0; j < pl.n; j++) {
        const i = pl.idx[j], row = vrow[i];
        if (row === meRow && scene.mePos) continue;
        const [px, py] = at(i);
        drawPlayer(px, py, row, row === meRow);
        if (row === meRow) meDrawn = true;
      }
    }
    if (meRow >= 0 && scene.mePos && !meDrawn) {
      drawPlayer(sx(scene.mePos.x / scaleX), sy(scene.mePos.y / scaleY), meRow, true);
      this.drawn.player = (this.drawn.player || 0) + (pl && pl.n ? 0 : 1);
    }
    if (this.showMinimap && !scene.wholeArena) this._minimap(ctx, scene, view, scaleX, scaleY, kindCol);
  }

  /** A muzzle flash at distance `at` along +x (the gun's rotated frame), for a body of radius `r`, fading with `k` 1 -> 0. */
  static _flash(ctx, at, r, k) {
    const size = r * (0.8 + 0.5 * k);
    const g = ctx.createRadialGradient(at, 0, 0, at, 0, size);
    g.addColorStop(0, `rgba(255,250,220,${0.95 * k})`);
    g.addColorStop(0.35, `rgba(255,200,90,${0.8 * k})`);
    g.addColorStop(1, "rgba(255,140,40,0)");
    ctx.fillStyle = g;
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

  _minimap(ctx, scene, view, scaleX, scaleY, kindCol) {
    const { schema } = scene;
    const size = Math.round(Math.min(180, Math.max(110, Math.min(this.w, this.h) * 0.22)));
    const m = 14;
    const x0 = this.w - size - m, y0 = this.h - size - m;
    const kx = size / schema.width, ky = size / schema.height;
    ctx.fillStyle = "rgba(8, 14, 26, 0.78)";
    ctx.fillRect(x0, y0, size, size);
    ctx.strokeStyle = "rgba(89, 184, 255, 0.6)";
    ctx.lineWidth = 1;
    ctx.strokeRect(x0 + 0.5, y0 + 0.5, size - 1, size - 1);
    const state = view.state;
    const kinds = schema.kinds;
    const kDrone = kinds.indexOf("drone"), kPellet = kinds.indexOf("pellet"), kPlayer = kinds.indexOf("player"), kBullet = kinds.indexOf("bullet");
    const dot = (k, color, r) => {
      ctx.fillStyle = color;
      ctx.beginPath();
      for (let i = 0; i < view.n; i++) {
        const kk = kindCol ? kindCol[view.row[i]] : 0;
        if (kk !== k) continue;
        const px = x0 + (view.x[i] / scaleX) * kx, py = y0 + (view.y[i] / scaleY) * ky;
        ctx.rect(px - r, py - r, r * 2, r * 2);
      }
      ctx.fill();
    };
    if (kPellet >= 0) dot(kPellet, "rgba(108, 240, 194, 0.45)", 0.7);
    if (kDrone >= 0) dot(kDrone, "#ff4d5e", 1.3);
    for (let k = 0; k < kinds.length; k++) {
      if (k !== kBullet && k !== kDrone && k !== kPellet && k !== kPlayer) dot(k, "rgba(120, 190, 255, 0.45)", 0.6);
    }
    if (kPlayer >= 0) {
      const names = scene.names || new Map();
      for (let i = 0; i < view.n; i++) {
        const row = view.row[i];
        if ((kindCol ? kindCol[row] : 0) !== kPlayer) continue;
        const id = state.ids[row];
        const info = names.get(id);
        const isMe = id === scene.me;
        let px = view.x[i], py = view.y[i];
        if (isMe && scene.mePos) { px = scene.mePos.x; py = scene.mePos.y; }
        ctx.fillStyle = isMe ? "#ffffff" : `hsl(${playerHue(info ? info.player : id)}, 80%, 62%)`;
        ctx.beginPath();
        ctx.arc(x0 + (px / scaleX) * kx, y0 + (py / scaleY) * ky, isMe ? 3.2 : 2.4, 0, TAU);
        ctx.fill();
      }
    }
    // The part of the arena on screen.
    const cam = this.camera;
    const vw = this.w / cam.zoom, vh = this.h / cam.zoom;
    const rx0 = Math.max(x0, x0 + (cam.x - vw / 2) * kx), ry0 = Math.max(y0, y0 + (cam.y - vh / 2) * ky);
    const rx1 = Math.min(x0 + size, x0 + (cam.x + vw / 2) * kx), ry1 = Math.min(y0 + size, y0 + (cam.y + vh / 2) * ky);
    if (rx1 > rx0 && ry1 > ry0) {
      ctx.strokeStyle = "rgba(255,255,255,0.55)";
      ctx.strokeRect(rx0 + 0.5, ry0 + 0.5, rx1 - rx0 - 1, ry1 - ry0 - 1);
    }
  }
}

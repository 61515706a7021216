// The camera both pages share: where it looks (an entity followed, the
// player's predicted position, or the whole arena fitted between the HUD's
// bars), the zooms for each, and the smoothing that eases it there
// frame-rate independently.
//
// Pure: no DOM; callers pass the canvas size (CSS px) and the frame's
// elapsed time (ms).

import { rowIn } from "./world.js";

/** Time constants of the easing (ms): position, zoom. */
export const FOLLOW_MS = 90;
export const ZOOM_MS = 120;

/** Zoom (CSS px per world unit) that shows about 1100 world units across a w x h canvas. */
export function followZoom(w, h) {
  return Math.max(0.35, Math.sqrt(w * h) / 1100);
}

/** Zoom that fits a width x height arena on a w x h canvas between `top` and `bottom` CSS px kept for the HUD. */
export function fitZoom(w, h, width, height, top = 20, bottom = 20) {
  return Math.min(w / (width * 1.06), Math.max(40, h - top - bottom) / (height * 1.06));
}

/**
 * The whole arena of `schema` on a w x h canvas, centred in the room the HUD's
 * bars leave (`insets`: CSS px kept at the top and the bottom).
 * @returns {{x, y, zoom}} world units
 */
export function wholeArena(schema, w, h, { top = 20, bottom = 20 } = {}) {
  const zoom = fitZoom(w, h, schema.width, schema.height, top, bottom);
  return { x: schema.width / 2, y: schema.height / 2 + (bottom - top) / (2 * zoom), zoom };
}

/** Column units -> world units: {x, y}. */
export function toWorld(schema, x, y) {
  return { x: x / schema.columns[schema.index.x].scale, y: y / schema.columns[schema.index.y].scale };
}

/** Where entity `id` is drawn in a sampled `view` (world units), or null when it is not in it. */
export function entityAt(schema, view, id) {
  const row = id != null && view.state ? rowIn(view.state.ids, id) : -1;
  return row >= 0 ? toWorld(schema, view.x[row], view.y[row]) : null;
}

/**
 * The entity after (`dir` 1) or before (-1) `current` in `list` (ids, in
 * display order), wrapping round; the first (or last) when `current` is not
 * in it; null for an empty list.
 */
export function cycle(list, current, dir) {
  if (!list.length) return null;
  const i = list.indexOf(current);
  return list[i < 0 ? (dir > 0 ? 0 : list.length - 1) : (i + dir + list.length) % list.length];
}

export class Camera {
  constructor() {
    this.x = 0; this.y = 0; this.zoom = 1;
    /** False until the first `move`, which jumps to its target. */
    this.ready = false;
  }

  /**
   * Ease towards `target` ({x, y}, world units) and `zoom` over `dt` ms: a
   * fraction 1 - exp(-dt / FOLLOW_MS) of the way (ZOOM_MS for the zoom), so
   * the path is the same at any frame rate. `lock`: the position jumps to the
   * target (the player's own camera, locked to its predicted position: no lag,
   * no wobble); the zoom still eases.
   */
  move(target, zoom, dt, { lock = false } = {}) {
    if (!this.ready) {
      this.x = target.x; this.y = target.y; this.zoom = zoom;
      this.ready = true;
      return this;
    }
    if (lock) {
      this.x = target.x; this.y = target.y;
    } else {
      const k = 1 - Math.exp(-dt / FOLLOW_MS);
      this.x += (target.x - this.x) * k;
      this.y += (target.y - this.y) * k;
    }
    this.zoom += (zoom - this.zoom) * (1 - Math.exp(-dt / ZOOM_MS));
    return this;
  }

  /** The next `move` jumps (a new match, a new replay). */
  reset() {
    this.ready = false;
  }
}

// Wire protocol v1 (PROTOCOL.md): msgpack messages, the schema from `welcome`,
// and column deltas decoded into typed arrays, with the CRC-32 state checksum.
//
// Pure: no DOM, no socket, no clock. Importable in Node (`node --test`) and in
// the browser (the import map resolves `@msgpack/msgpack`).

import { decode, encode } from "@msgpack/msgpack";

export const PROTOCOL_VERSION = 1;

/**
 * Minor versions (PROTOCOL.md, "Versions"): what minor 1 added (`hello.interest`,
 * `hello.roster_deltas`, `input.view`, `leave`) goes only to a server that
 * announces minor 1 or more. A page cannot read the upgrade's response header,
 * so it learns the minor from `welcome.minor` (absent: 0) for what it sends
 * after the welcome, and sends hello's additions in its first hello: a 1.0
 * server refuses them (`helloRefused`), and the page joins again without.
 * Minor 2 added only `update.surplus`, which the page reads when it is there
 * (input.js, `Skips`): nothing to send differently.
 */
export const serverMinor = (welcome) => (welcome && Number.isInteger(welcome.minor) ? welcome.minor : 0);

/** Whether a close (code, reason: the `error`'s or the close frame's) is a 1.0 server refusing hello's minor-1 keys. */
export const helloRefused = (code, reason) => code === 1007 && /^hello: unknown field/.test(reason || "");

/** Column dtypes the wire knows, by name: typed-array constructor. */
export const DTYPES = Object.freeze({
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
});

// `rows` formats and `cols` encodings.
export const ROWS_MASK = 0, ROWS_U16 = 1, ROWS_U32 = 2;
export const ENC_ABS = 0, ENC_D8 = 1, ENC_D16 = 2;

/** True on every real browser host; the slow paths below keep big-endian hosts correct. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The peer sent something this decoder cannot accept (a bad delta, a bad schema). */
export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

// -- schema -------------------------------------------------------------------

/**
 * Parse `welcome.ruleset` into the schema the decoder works from.
 * @returns {{name, version, width, height, columns: {name, dtype, scale, Array, index}[],
 *   index: Object<string, number>, motion: {pos, vel, lo, hi, p, v}[],
 *   inputs: {name, lo, hi}[], kinds: string[]}}
 */
export function parseSchema(desc) {
  if (!desc || !Array.isArray(desc.columns)) throw new ProtocolError("ruleset: no columns");
  const index = Object.create(null);
  const columns = desc.columns.map((c, i) => {
    const Array_ = DTYPES[c.dtype];
    if (!Array_) throw new ProtocolError(`column ${c.name}: unknown dtype ${c.dtype}`);
    if (typeof c.name !== "string" || c.name in index) throw new ProtocolError(`column ${i}: bad or duplicate name`);
    index[c.name] = i;
    return Object.freeze({ name: c.name, dtype: c.dtype, scale: c.scale ?? 1, Array: Array_, index: i });
  });
  const motion = (desc.motion || []).map((a) => {
    if (!(a.pos in index) || !(a.vel in index)) throw new ProtocolError(`motion axis names an unknown column: ${a.pos}/${a.vel}`);
    return Object.freeze({ pos: a.pos, vel: a.vel, lo: a.lo, hi: a.hi, p: index[a.pos], v: index[a.vel] });
  });
  return Object.freeze({
    name: desc.name ?? "",
    version: desc.version ?? 0,
    width: desc.width ?? 0,
    height: desc.height ?? 0,
    columns: Object.freeze(columns),
    index,
    motion: Object.freeze(motion),
    inputs: Object.freeze((desc.inputs || []).map((f) => Object.freeze({ name: f.name, lo: f.lo, hi: f.hi }))),
    kinds: Object.freeze([...(desc.kinds || [])]),
    // How players move (prediction): checked where it is used (predict.js movementRule).
    player: desc.player && typeof desc.player === "object" ? Object.freeze({ ...desc.player }) : null,
    // How players' shots leave them (shots.js, drawn at once): checked where it is used (shotRule).
    shot: desc.shot && typeof desc.shot === "object" ? Object.freeze({ ...desc.shot }) : null,
  });
}

/** The name of value `k` of the `kind` column (`kind<k>` for a value the schema does not name). */
export function kindName(schema, k) {
  return schema.kinds[k] ?? `kind${k}`;
}

// -- state --------------------------------------------------------------------

/**
 * The replicated state at one tick: `ids` Uint32Array ascending, `cols` one
 * typed array per column (wire order), `sum` its checksum.
 */
export function makeState(tick, ids, cols) {
  return { tick, ids, cols, sum: checksum(ids, cols) };
}

export function emptyState(schema, tick = 0) {
  return { tick, ids: new Uint32Array(0), cols: schema.columns.map((c) => new c.Array(0)), sum: 0 };
}

// -- CRC-32 (zlib: reflected 0xEDB88320, init and final XOR 0xFFFFFFFF) ----------

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** Continue a CRC-32 over `bytes` (Uint8Array); start with crc = 0 like zlib.crc32. */
export function crc32(bytes, crc = 0) {
  let c = ~crc;
  for (let i = 0, n = bytes.length; i < n; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** Little-endian bytes of a typed array (a view when the host is little-endian). */
export function leBytes(arr) {
  if (LITTLE_ENDIAN || arr.BYTES_PER_ELEMENT === 1) return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
  const out = new Uint8Array(arr.byteLength);
  const dv = new DataView(out.buffer);
  const size = arr.BYTES_PER_ELEMENT;
  for (let i = 0; i < arr.length; i++) {
    const v = arr[i];
    if (size === 2) dv.setUint16(i * 2, v & 0xffff, true);
    else dv.setUint32(i * 4, v >>> 0, true);
  }
  return out;
}

/** The state checksum: CRC-32 of the ids as uint32 LE, then each column's LE bytes. 0 when empty. */
export function checksum(ids, cols) {
  let crc = crc32(leBytes(ids));
  for (const c of cols) crc = crc32(leBytes(c), crc);
  return crc;
}

// -- little-endian bins -> typed arrays -------------------------------------------

function asBytes(bin, what) {
  if (bin instanceof Uint8Array) return bin;
  if (bin instanceof ArrayBuffer) return new Uint8Array(bin);
  throw new ProtocolError(`${what}: expected bin`);
}

/**
 * A typed array of `Ctor` holding the LE values of `bin` (copied: msgpack hands
 * out unaligned views into the frame). `count` null: any whole number of values.
 */
export function fromLE(bin, Ctor, count, what) {
  const bytes = asBytes(bin, what);
  const size = Ctor.BYTES_PER_ELEMENT;
  if (bytes.length % size || (count != null && bytes.length !== count * size)) {
    throw new ProtocolError(`${what}: ${bytes.length} bytes is not ${count ?? "n"} x ${size}-byte values`);
  }
  const n = bytes.length / size;
  if (LITTLE_ENDIAN || size === 1) {
    const copy = new Uint8Array(bytes.length);
    copy.set(bytes);
    return new Ctor(copy.buffer, 0, n);
  }
  const out = new Ctor(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) {
    if (size === 2) out[i] = dv.getUint16(i * 2, true);
    else out[i] = dv.getUint32(i * 4, true);
  }
  return out;
}

function unpackBits(bin, count, what) {
  const bytes = asBytes(bin, what);
  if (bytes.length !== (count + 7) >> 3) throw new ProtocolError(`${what}: bitmask of ${bytes.length} bytes for ${count} rows`);
  const out = [];
  for (let i = 0; i < count; i++) if ((bytes[i >> 3] >> (i & 7)) & 1) out.push(i);
  return out;
}

// -- motion rule ----------------------------------------------------------------

/**
 * Columns of `state` advanced `steps` ticks with the motion rule (PROTOCOL.md
 * "Extrapolate"): `p = pos + vel`, reflect at lo/hi, stored back wrapped to the
 * column dtype. Moved columns are new arrays; the others are `state.cols`' own.
 * Axes are applied one after the other, each for all steps, as the reference
 * does (the same result as step-major for axes that share no column).
 */
export function extrapolate(schema, cols, steps) {
  const out = cols.slice();
  if (steps <= 0) return out;
  for (const a of schema.motion) {
    const pos = out[a.p] === cols[a.p] ? cols[a.p].slice() : out[a.p];
    const vel = out[a.v] === cols[a.v] ? cols[a.v].slice() : out[a.v];
    const lo = a.lo, hi = a.hi;
    for (let i = 0, n = pos.length; i < n; i++) {
      let p = pos[i], v = vel[i];
      for (let s = 0; s < steps; s++) {
        p += v;
        if (p < lo) { p = 2 * lo - p; v = -v; }
        else if (p > hi) { p = 2 * hi - p; v = -v; }
        // Wrap like the typed-array store does after every step.
        pos[i] = p; vel[i] = v;
        p = pos[i]; v = vel[i];
      }
    }
    out[a.p] = pos;
    out[a.v] = vel;
  }
  return out;
}

// -- applying an update -----------------------------------------------------------

function sortedCopy(arr) {
  const c = arr.slice();
  c.sort();
  return c;
}

/**
 * Steps 1 and 2 of applying an update: the base (null: the empty state) extrapolated
 * to `msg.tick`; columns the motion rule leaves alone are the base's own arrays.
 */
function started(schema, base, msg) {
  if (base == null) {
    if (msg.base != null) throw new ProtocolError("a delta needs its base state");
    return { ids: new Uint32Array(0), cols: schema.columns.map((c) => new c.Array(0)) };
  }
  if (msg.base !== base.tick) throw new ProtocolError(`delta from ${msg.base} applied to ${base.tick}`);
  return { ids: base.ids, cols: extrapolate(schema, base.cols, msg.tick - base.tick) };
}

/** `ids` and `cols` without the ids `gone` (ascending): new arrays. ProtocolError if one is not there. */
function withoutGone(ids, cols, gone, notThere) {
  const keep = new Uint8Array(ids.length);
  let g = 0, kept = 0;
  for (let i = 0; i < ids.length; i++) {
    if (g < gone.length && gone[g] === ids[i]) g++;
    else { keep[i] = 1; kept++; }
  }
  if (g !== gone.length) throw new ProtocolError(`gone: names ids ${notThere}`);
  const nids = new Uint32Array(kept);
  const ncolsArr = cols.map((c) => new c.constructor(kept));
  for (let i = 0, j = 0; i < ids.length; i++) {
    if (!keep[i]) continue;
    nids[j] = ids[i];
    for (let c = 0; c < cols.length; c++) ncolsArr[c][j] = cols[c][i];
    j++;
  }
  return { ids: nids, cols: ncolsArr };
}

/**
 * The state at `msg.tick` from `base` (null: keyframe) and the update's delta
 * fields, exactly per PROTOCOL.md "Applying an update". The checksum of the
 * result is computed into `.sum`: compare it with `msg.sum`.
 * Throws ProtocolError when the delta does not fit the base or the schema.
 */
export function applyUpdate(schema, base, msg) {
  const ncols = schema.columns.length;
  const tick = msg.tick;
  let { ids, cols } = started(schema, base, msg);
  if (base != null) {
    if (msg.gone != null) {
      ({ ids, cols } = withoutGone(ids, cols, sortedCopy(fromLE(msg.gone, Uint32Array, null, "gone")), "the base does not have"));
    } else {
      cols = cols.map((c, i) => (c === base.cols[i] ? c.slice() : c));
    }
  }
  const k = ids.length;

  if (msg.rows != null) {
    if (!Array.isArray(msg.rows) || msg.rows.length !== 2) throw new ProtocolError("rows: expected [format, bin]");
    const [fmt, data] = msg.rows;
    let rows;
    if (fmt === ROWS_MASK) {
      rows = unpackBits(data, k, "rows");
    } else if (fmt === ROWS_U16 || fmt === ROWS_U32) {
      rows = fromLE(data, fmt === ROWS_U16 ? Uint16Array : Uint32Array, null, "rows");
      for (let i = 0; i < rows.length; i++) {
        if (rows[i] >= k || (i && rows[i] <= rows[i - 1])) throw new ProtocolError("rows: indices out of range or not ascending");
      }
    } else {
      throw new ProtocolError(`rows: unknown format ${fmt}`);
    }
    for (const entry of msg.cols || []) {
      if (!Array.isArray(entry) || entry.length !== 4) throw new ProtocolError("cols: expected [column, selection, encoding, bin]");
      const [ci, sel, enc, data] = entry;
      if (!Number.isInteger(ci) || ci < 0 || ci >= ncols) throw new ProtocolError(`cols: column index ${ci} out of range`);
      let which = rows;
      if (sel != null) which = unpackBits(sel, rows.length, "cols selection").map((j) => rows[j]);
      const col = cols[ci];
      const m = which.length;
      if (enc === ENC_ABS) {
        const v = fromLE(data, col.constructor, m, `column ${ci}`);
        for (let j = 0; j < m; j++) col[which[j]] = v[j];
      } else if (enc === ENC_D8 || enc === ENC_D16) {
        const d = fromLE(data, enc === ENC_D8 ? Int8Array : Int16Array, m, `column ${ci}`);
        for (let j = 0; j < m; j++) col[which[j]] = col[which[j]] + d[j]; // the store wraps to the dtype
      } else {
        throw new ProtocolError(`cols: unknown encoding ${enc}`);
      }
    }
  } else if (msg.cols != null && msg.cols.length) {
    throw new ProtocolError("cols without rows");
  }

  if (msg.new != null) {
    if (!Array.isArray(msg.new) || msg.new.length !== 2) throw new ProtocolError("new: expected [ids, columns]");
    const [idsBin, colBins] = msg.new;
    const newIds = fromLE(idsBin, Uint32Array, null, "new ids");
    if (!Array.isArray(colBins) || colBins.length !== ncols) throw new ProtocolError(`new: expected ${ncols} columns`);
    for (let i = 0; i < newIds.length; i++) {
      const prev = i ? newIds[i - 1] : k ? ids[k - 1] : -1;
      if (newIds[i] <= prev) throw new ProtocolError("new: ids must ascend past every existing id");
    }
    const n = k + newIds.length;
    const allIds = new Uint32Array(n);
    allIds.set(ids);
    allIds.set(newIds, k);
    ids = allIds;
    cols = cols.map((c, i) => {
      const add = fromLE(colBins[i], c.constructor, newIds.length, `new column ${i}`);
      const out = new c.constructor(n);
      out.set(c);
      out.set(add, k);
      return out;
    });
  }
  return makeState(tick, ids, cols);
}

// -- filtered views (PROTOCOL.md "Filtered views") ----------------------------------

/** Change codes of a `chg` record, two bits per column. */
export const CHG_SAME = 0, CHG_D8 = 1, CHG_D16 = 2, CHG_ABS = 3;

/** Reads (DataView, offset) -> value of each dtype, little-endian. */
const READ = Object.freeze({
  int8: (dv, o) => dv.getInt8(o), uint8: (dv, o) => dv.getUint8(o),
  int16: (dv, o) => dv.getInt16(o, true), uint16: (dv, o) => dv.getUint16(o, true),
  int32: (dv, o) => dv.getInt32(o, true), uint32: (dv, o) => dv.getUint32(o, true),
});

/** Bytes of one `add` record: the id, then every column. */
export function recordSize(schema) {
  return schema.columns.reduce((n, c) => n + c.Array.BYTES_PER_ELEMENT, 4);
}

/**
 * The view sum of a state: per entity `h = id`, then per column `h = (h ^ v) * 0x01000193`
 * (v as 32-bit two's complement), then murmur3's fmix32; added modulo 2**32. 0 when empty.
 */
export function viewSum(ids, cols) {
  let sum = 0;
  const nc = cols.length;
  for (let i = 0, n = ids.length; i < n; i++) {
    let h = ids[i] | 0;
    for (let c = 0; c < nc; c++) h = Math.imul(h ^ cols[c][i], 0x01000193);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    sum = (sum + (h >>> 0)) >>> 0;
  }
  return sum;
}

function viewOf(bin, what) {
  const b = asBytes(bin, what);
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * The filtered state at `msg.tick` from `base` (null: from nothing) and a filtered
 * update's `gone`, `chg` and `add`, exactly per PROTOCOL.md "Filtered views":
 * extrapolate, remove, change, add (ids kept ascending). `.sum` is the view sum
 * of the result: compare it with `msg.sum`. Throws ProtocolError when the update
 * does not fit the base or the schema.
 */
export function applyView(schema, base, msg) {
  const ncols = schema.columns.length;
  let { ids, cols } = started(schema, base, msg);
  if (base != null) cols = cols.map((c, i) => (c === base.cols[i] ? c.slice() : c)); // changes must not touch the base
  if (msg.gone != null) {
    const gone = sortedCopy(fromLE(msg.gone, Uint32Array, null, "gone"));
    for (let g = 1; g < gone.length; g++) if (gone[g] === gone[g - 1]) throw new ProtocolError("gone: an id twice");
    ({ ids, cols } = withoutGone(ids, cols, gone, "the client does not hold"));
  }
  if (msg.chg != null) {
    if (!Array.isArray(msg.chg) || msg.chg.length !== 3) throw new ProtocolError("chg: expected [ids, masks, values]");
    const cid = fromLE(msg.chg[0], Uint32Array, null, "chg ids");
    const mw = (2 * ncols + 7) >> 3;
    const masks = asBytes(msg.chg[1], "chg masks");
    if (masks.length !== cid.length * mw) throw new ProtocolError(`chg masks: ${masks.length} bytes for ${cid.length} records`);
    const dv = viewOf(msg.chg[2], "chg values");
    const seen = new Set();
    let off = 0;
    for (let r = 0; r < cid.length; r++) {
      const row = rowIn(ids, cid[r]);
      if (row < 0 || seen.has(row)) throw new ProtocolError("chg: names ids the client does not hold, or one twice");
      seen.add(row);
      for (let k = 2 * ncols; k < 8 * mw; k++) {
        if ((masks[r * mw + (k >> 3)] >> (k & 7)) & 1) throw new ProtocolError("chg masks: bits set past the last column");
      }
      for (let j = 0; j < ncols; j++) {
        const code = (masks[r * mw + (j >> 2)] >> ((j & 3) * 2)) & 3;
        if (code === CHG_SAME) continue;
        const col = cols[j], size = code === CHG_ABS ? col.BYTES_PER_ELEMENT : code;
        if (off + size > dv.byteLength) throw new ProtocolError("chg values: shorter than the masks say");
        if (code === CHG_ABS) col[row] = READ[schema.columns[j].dtype](dv, off);
        else col[row] = col[row] + (code === CHG_D8 ? dv.getInt8(off) : dv.getInt16(off, true)); // the store wraps
        off += size;
      }
    }
    if (off !== dv.byteLength) throw new ProtocolError("chg values: longer than the masks say");
  }
  if (msg.add != null) {
    const width = recordSize(schema);
    const dv = viewOf(msg.add, "add");
    if (dv.byteLength % width) throw new ProtocolError(`add: ${dv.byteLength} bytes is not a whole number of ${width}-byte records`);
    const n = dv.byteLength / width;
    const order = Array.from({ length: n }, (_, i) => i);
    const newIds = order.map((i) => dv.getUint32(i * width, true));
    order.sort((a, b) => newIds[a] - newIds[b]);
    const k = ids.length, total = k + n;
    const allIds = new Uint32Array(total);
    const all = cols.map((c) => new c.constructor(total));
    let i = 0, j = 0, o = 0;
    while (o < total) {
      const fromNew = i >= k || (j < n && newIds[order[j]] < ids[i]);
      if (fromNew) {
        const rec = order[j++];
        const id = newIds[rec];
        if ((o && allIds[o - 1] === id) || (i < k && ids[i] === id)) throw new ProtocolError("add: an id the client holds, or one twice");
        allIds[o] = id;
        let at = rec * width + 4;
        for (let c = 0; c < ncols; c++) {
          all[c][o] = READ[schema.columns[c].dtype](dv, at);
          at += cols[c].BYTES_PER_ELEMENT;
        }
      } else {
        if (o && allIds[o - 1] === ids[i]) throw new ProtocolError("add: an id the client holds, or one twice");
        allIds[o] = ids[i];
        for (let c = 0; c < ncols; c++) all[c][o] = cols[c][i];
        i++;
      }
      o++;
    }
    ids = allIds;
    cols = all;
  }
  return { tick: msg.tick, ids, cols, sum: viewSum(ids, cols) };
}

/** Row of entity `id` in ascending `ids` (binary search), or -1. */
export function rowIn(ids, id) {
  let lo = 0, hi = ids.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = ids[mid];
    if (v === id) return mid;
    if (v < id) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

// -- messages ---------------------------------------------------------------------

/** One server frame (ArrayBuffer or Uint8Array) -> the message map. Throws ProtocolError. */
export function decodeMessage(data) {
  let obj;
  try {
    obj = decode(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
  } catch (e) {
    throw new ProtocolError(`not a valid msgpack message: ${e.message}`);
  }
  if (obj == null || typeof obj !== "object" || Array.isArray(obj) || typeof obj.t !== "string") {
    throw new ProtocolError("expected a msgpack map with a type tag 't'");
  }
  return obj;
}

/**
 * A name as `hello` takes it (PROTOCOL.md): control and format characters
 * removed, spaces trimmed, at most 24 code points; "" when nothing is left.
 */
export function cleanName(raw) {
  const name = String(raw ?? "").trim().replace(/[^\P{C}]/gu, "");
  return [...name].slice(0, 24).join("").trim();
}

/**
 * The `hello` (PROTOCOL.md): `token` resumes a player from an earlier
 * `welcome`; `seat` presents a seat token from `POST /api/matchmake`. A
 * connection presents one or the other, never both (a resume is no new seat):
 * asking for both is the caller's mistake and throws. `interest`: this client
 * applies filtered views (a match that filters them then sends only the
 * player's view: `applyView`). `rosterDeltas`: this client applies the
 * roster's changes (`roster_delta`, feed.js) instead of a whole roster at
 * every change.
 */
export function encodeHello(name, { spectate = false, token = null, seat = null, interest = false, rosterDeltas = false } = {}) {
  if (token && seat) throw new Error("encodeHello: a hello carries a resume token or a seat token, not both");
  const m = { t: "hello", v: PROTOCOL_VERSION, name };
  if (spectate) m.spectate = true;
  if (token) m.token = token;
  if (seat) m.seat = seat;
  if (interest) m.interest = true;
  if (rosterDeltas) m.roster_deltas = true;
  return encode(m);
}

/**
 * `values`: one int per `schema.inputs` field; `ack`: the newest tick held, or
 * null; `view`: the tick the page showed the others at when it sampled the
 * input (its interpolated render tick, floored; the server judges the shots
 * against it), or null.
 */
export function encodeInput(seq, values, ack, view = null) {
  const m = { t: "input", seq, in: values };
  if (ack != null) m.ack = ack;
  if (view != null) m.view = view;
  return encode(m);
}

/** Leaving for good: the server removes the player at once (a dropped connection holds it for the reconnect window). */
export const encodeLeave = () => encode({ t: "leave" });

export const encodeAck = (tick) => encode({ t: "ack", tick });
export const encodePing = (id, time) => encode({ t: "ping", id, time });
export const encodeResync = () => encode({ t: "resync" });

/** Playback `control` (REPLAY.md, "Playback"): any of `pause` (bool), `speed` (0.25..8), `seek` (tick). */
export function encodeControl({ pause, speed, seek } = {}) {
  const m = { t: "control" };
  if (pause !== undefined) m.pause = pause;
  if (speed !== undefined) m.speed = speed;
  if (seek !== undefined) m.seek = seek;
  return encode(m);
}

/** Close codes (PROTOCOL.md) and what to tell a person about them. */
export const CLOSE_REASONS = Object.freeze({
  1000: "closed",
  1001: "the server is shutting down",
  1002: "protocol error",
  1003: "unsupported data",
  1006: "connection lost",
  1007: "invalid message",
  1008: "policy violation",
  1009: "message too big",
  1012: "the match moved to another server",
  1013: "the match is full",
  // A bad seat token (server/rooms/errors.py): none is worth retrying, every one means "matchmake again".
  4401: "this seat is unknown to the server",
  4403: "this seat is for another match",
  4409: "this seat was taken already",
  4410: "this seat expired before it was taken",
});

/** The close codes of a bad seat token: the page sends the player back to the lobby for a new one. */
export const SEAT_CLOSE_CODES = Object.freeze([4401, 4403, 4409, 4410]);

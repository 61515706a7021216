// The thin WebSocket shell: one connection at a time, binary frames in and
// out, and reconnection with exponential backoff when an established
// connection drops (`Link`); `openFeed` puts the spectator core (feed.js)
// behind one. What a message means is feed.js's and the pages' business.

import { SEAT_CLOSE_CODES } from "./protocol.js";

/** Delays between reconnection attempts: 0.5 s doubling to 8 s, with ±20 % jitter. */
export class Backoff {
  constructor({ base = 500, max = 8000, factor = 2, jitter = 0.2, random = Math.random } = {}) {
    Object.assign(this, { base, max, factor, jitter, random });
    this.attempt = 0;
  }

  /** The delay before the next attempt (ms); counts the attempt. */
  next() {
    const d = Math.min(this.max, this.base * this.factor ** this.attempt);
    this.attempt++;
    return Math.round(d * (1 + this.jitter * (2 * this.random() - 1)));
  }

  reset() {
    this.attempt = 0;
  }
}

/**
 * The HTTP(S) URL of `path` on the server a WebSocket URL points at (ws: ->
 * http:, wss: -> https:), e.g. its `/healthz`: a page told to play on
 * another server (`?server=`) asks that server, not its own origin.
 */
export function httpUrl(wsUrl, path) {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  u.pathname = path;
  u.search = u.hash = "";
  return u.href;
}

/**
 * The WebSocket URL the play page connects to, from its URL parameters
 * (`params`: URLSearchParams) and its own `location`: `ws` as given (the
 * seat's URL, possibly another node's); else `server` (default: this page's
 * host at `/ws`, `wss:` under https), followed by `/<match id>` when `match`
 * names one.
 */
export function socketUrl(params, location) {
  const ws = params.get("ws");
  if (ws) return ws;
  const base = params.get("server") || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const match = params.get("match");
  return match ? `${base.replace(/\/+$/, "")}/${encodeURIComponent(match)}` : base;
}

/**
 * Whether to reconnect after an established connection closed with `code`:
 * yes for drops, restarts, slow-reader and rate-limit closes; no for a normal
 * close (our own, or replaced by another connection with our token), for
 * protocol errors (retrying would only repeat them) and for a bad seat token
 * (4401, 4403, 4409, 4410: only a new seat from the lobby helps).
 */
export function shouldReconnect(code) {
  return ![1000, 1002, 1003, 1007, 1009].includes(code) && !SEAT_CLOSE_CODES.includes(code);
}

/**
 * Events (callbacks, all optional):
 * - onOpen(): the socket is open (send the hello now);
 * - onMessage(Uint8Array)
 * - onClose({code, reason, wasEstablished, willRetry, delay, attempt})
 * - onRetry({attempt}): a reconnection attempt starts.
 */
export class Link {
  constructor(url, handlers = {}, { WebSocketImpl = globalThis.WebSocket, backoff = new Backoff(), timers = globalThis } = {}) {
    this.url = url;
    this.h = handlers;
    this.WS = WebSocketImpl;
    this.backoff = backoff;
    this.timers = timers;
    this.ws = null;
    /** Set by the app when the server welcomed us: later drops reconnect. */
    this.established = false;
    this.stopped = true;
    this.retryTimer = null;
    this.retryAt = 0;
    /** Set by `moveTo`: the next close reconnects to the new URL at once. */
    this.moving = false;
    this.bytesIn = 0;
    this.framesIn = 0;
  }

  get open() {
    return this.ws != null && this.ws.readyState === 1;
  }

  start() {
    this.stopped = false;
    this._connect();
  }

  _connect() {
    this.retryTimer = null;
    let ws;
    try {
      ws = new this.WS(this.url);
    } catch (e) {
      this._closed(null, 1006, String(e));
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => { if (this.ws === ws && this.h.onOpen) this.h.onOpen(); };
    ws.onmessage = (e) => {
      if (this.ws !== ws) return;
      if (typeof e.data === "string") return; // the protocol has no text frames
      const bytes = new Uint8Array(e.data);
      this.bytesIn += bytes.length;
      this.framesIn++;
      if (this.h.onMessage) this.h.onMessage(bytes);
    };
    ws.onclose = (e) => this._closed(ws, e.code, e.reason);
    ws.onerror = () => {}; // a close event always follows
  }

  _closed(ws, code, reason) {
    if (ws !== null && this.ws !== ws) return;
    this.ws = null;
    const wasEstablished = this.established;
    const moving = this.moving;
    this.moving = false;
    const willRetry = !this.stopped && wasEstablished && (moving || shouldReconnect(code));
    let delay = 0;
    if (willRetry) {
      delay = moving ? 0 : this.backoff.next();
      this.retryAt = Date.now() + delay;
      this.retryTimer = this.timers.setTimeout(() => {
        if (this.stopped) return;
        if (this.h.onRetry) this.h.onRetry({ attempt: this.backoff.attempt });
        this._connect();
      }, delay);
    } else {
      this.stopped = true;
      this.established = false;
    }
    if (this.h.onClose) this.h.onClose({ code, reason, wasEstablished, willRetry, delay, attempt: this.backoff.attempt });
  }

  /** The server welcomed us: drops from now on reconnect, starting with a short delay. */
  welcomed() {
    this.established = true;
    this.backoff.reset();
  }

  send(bytes) {
    if (this.open) {
      this.ws.send(bytes);
      return true;
    }
    return false;
  }

  /**
   * The server moved our match to `url` (a `moved` message, PROTOCOL.md): the close that follows
   * (1012) reconnects there at once; the hello (the same token) resumes the same player.
   */
  moveTo(url) {
    this.url = url;
    this.moving = true;
  }

  /** Retry right now instead of waiting for the backoff. */
  retryNow() {
    if (this.retryTimer == null) return;
    this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.h.onRetry) this.h.onRetry({ attempt: this.backoff.attempt });
    this._connect();
  }

  /**
   * Close for good (no reconnection). Returns a promise of the socket's close
   * (after the closing handshake: what was sent before went first).
   */
  stop(code = 1000, reason = "leaving") {
    this.stopped = true;
    this.established = false;
    if (this.retryTimer != null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const ws = this.ws;
    this.ws = null;
    if (!ws) return Promise.resolve();
    return new Promise((resolve) => {
      ws.onmessage = null;
      ws.onclose = () => resolve();
      try { ws.close(code, reason); } catch { resolve(); /* already closed */ }
    });
  }

  /** Debug/test: drop the connection as if the network failed (the link reconnects). */
  drop() {
    const ws = this.ws;
    if (!ws) return;
    // Detach first so the close is handled as an abnormal drop (1006), not our own close.
    ws.onclose = null; ws.onmessage = null;
    try { ws.close(4000, "dropped for a test"); } catch { /* ignore */ }
    this._closed(ws, 1006, "connection dropped");
  }
}

/**
 * A `Link` to `url` that feeds `feed` (feed.js): `hello()` (encoded) when the
 * socket opens, every frame into the feed, then whatever the feed asks to
 * send (acks, a resync), then `onEvent(event)` with what the feed made of the
 * frame. A welcome marks the link established, so later drops reconnect; a
 * `moved` sends the link to the match's new server.
 * `onClose` and `onRetry` are the Link's; `now()` the clock (ms).
 */
export function openFeed(url, feed, { hello, onEvent = null, onClose = null, onRetry = null, now = () => performance.now() },
  linkOptions = {}) {
  const link = new Link(url, {
    onOpen: () => link.send(hello()),
    onMessage: (bytes) => {
      const ev = feed.receiveData(bytes, now());
      if (ev.type === "welcome") link.welcomed();
      else if (ev.type === "moved" && typeof ev.msg.url === "string") link.moveTo(ev.msg.url);
      for (const data of feed.dataToSend()) link.send(data);
      if (ev.type === "invalid") console.warn(ev.error);
      if (onEvent) onEvent(ev);
    },
    onClose,
    onRetry,
  }, linkOptions);
  return link;
}

// The lobby (lobby.html): the matches this server hosts (GET /api/matches),
// quick play (join or create a match of a ruleset), creating a match with
// labels and options, joining or spectating a listed match, and the recorded
// replays (GET /api/replays) with links to watch them (when the server plays
// them: its `playback`; else the command that does).
//
// Getting a seat is `POST /api/matchmake` (PROTOCOL.md, "Matchmaking"); the
// lobby then sends the player to the play page with it
// (`index.html?match=ID&seat=TOKEN`, `&ws=URL` when the match is on another
// node), which presents the seat in its hello. The seat is held for seconds
// only, so the lobby goes there at once.
//
// The first part of this module is pure (requests, answers, the list's
// markup; tested under Node); `LobbyPage` is the page's thin DOM shell, and
// nothing touches the document before it is constructed.

import { cleanName } from "./protocol.js";
import { socketUrl } from "./net.js";
import { $, escapeHtml } from "./dom.js";

/** Matchmake modes (server/rooms/requests.py): join an open match or create one; always create; only join. */
export const MODES = Object.freeze(["join_or_create", "create", "join"]);
/** The match list is fetched again this often (ms); the replays every `REPLAYS_EVERY` of those. */
export const REFRESH_MS = 3000;
export const REPLAYS_EVERY = 5;
/** Option names as the server takes them (server/rooms/roomtype.py OPTION_NAME). */
const OPTION_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * Something the lobby cannot do, in one line: the server's refusal (`status`
 * and the `field` at fault, from its `{"error", "field"}` answer), no answer
 * at all (`status` null), or a form field filled wrong.
 */
export class LobbyError extends Error {
  constructor(reason, { status = null, field = null } = {}) {
    super(reason);
    this.name = "LobbyError";
    this.reason = reason;
    this.status = status;
    this.field = field;
  }

  /** What the page shows: the field at fault, then the reason. */
  get line() {
    return this.field ? `${this.field}: ${this.reason}` : this.reason;
  }
}

// -- requests ---------------------------------------------------------------------

/**
 * Options typed as `name=value` pairs, separated by commas or spaces
 * (`npcs=40, pellets=100`), as `{name: integer}`. LobbyError naming `field`
 * for anything else; "" is no options.
 */
export function parseOptions(text, field = "options") {
  const options = {};
  for (const item of String(text ?? "").split(/[\s,]+/).filter(Boolean)) {
    const m = /^([^=]+)=(-?\d+)$/.exec(item);
    if (!m || !OPTION_NAME.test(m[1]) || !Number.isSafeInteger(Number(m[2]))) {
      throw new LobbyError(`expected name=integer (like npcs=40), got "${item}"`, { field });
    }
    if (m[1] in options) throw new LobbyError(`${m[1]} is given twice`, { field });
    options[m[1]] = Number(m[2]);
  }
  return options;
}

/** The labels filled in (`{mode, region, ...}`), blanks left out. */
export function labelsFrom(fields) {
  const labels = {};
  for (const [k, v] of Object.entries(fields)) {
    const value = String(v ?? "").trim();
    if (value) labels[k] = value;
  }
  return labels;
}

/**
 * The JSON body of `POST /api/matchmake`: only what is given (the server
 * takes `ruleset` alone). A blank ruleset is the person's mistake
 * (LobbyError); a mode the server does not know, a match id with a mode other
 * than `join`, or options with `join` are the caller's (Error).
 */
export function matchmakeBody({ ruleset, mode = "join_or_create", labels = {}, options = {}, matchId = null }) {
  if (!MODES.includes(mode)) throw new Error(`matchmakeBody: unknown mode ${mode}`);
  if (matchId != null && mode !== "join") throw new Error("matchmakeBody: a match id goes with mode join only");
  if (Object.keys(options).length && mode === "join") throw new Error("matchmakeBody: options go with a mode that may create a match");
  const name = String(ruleset ?? "").trim();
  if (!name) throw new LobbyError("pick a ruleset (arena, for one)", { field: "ruleset" });
  const body = { ruleset: name, mode };
  if (Object.keys(labels).length) body.labels = { ...labels };
  if (Object.keys(options).length) body.options = { ...options };
  if (matchId != null) body.match_id = matchId;
  return body;
}

/** The path of `GET /api/matches` with these filters (`label=key:value` per label). */
export function listPath({ ruleset = null, labels = {}, open = false, limit = 100 } = {}) {
  const q = new URLSearchParams();
  if (ruleset) q.append("ruleset", ruleset);
  for (const [k, v] of Object.entries(labels)) q.append("label", `${k}:${v}`);
  if (open) q.append("open", "1");
  q.append("limit", String(limit));
  return `/api/matches?${q}`;
}

// -- answers ------------------------------------------------------------------------

/**
 * An HTTP answer (status, status text, body text) as its JSON value; a
 * refusal as a LobbyError with the server's one-line reason and field, or
 * the status when the body says nothing (a proxy's error page).
 */
export function readAnswer(status, statusText, text) {
  let data = null;
  try { data = JSON.parse(text); } catch { /* said below */ }
  const ok = status >= 200 && status < 300;
  if (ok && data !== null && typeof data === "object") return data;
  if (!ok && data && typeof data.error === "string" && data.error) {
    throw new LobbyError(data.error, { status, field: typeof data.field === "string" ? data.field : null });
  }
  const what = `HTTP ${status}${statusText ? ` ${statusText}` : ""}`;
  throw new LobbyError(ok ? `the server answered ${what} without a JSON object` : `the server answered ${what}`, { status });
}

/** A matchmake answer as `{match, url, seat, expiresIn}`; LobbyError if a key is missing. */
export function readSeat(data) {
  for (const [key, type] of [["match", "string"], ["url", "string"], ["seat", "string"], ["expires_in", "number"]]) {
    if (typeof data[key] !== type) throw new LobbyError(`the server's seat has no ${key}`, { status: 200 });
  }
  return { match: data.match, url: data.url, seat: data.seat, expiresIn: data.expires_in };
}

/** The matches of a `GET /api/matches` answer (entries without a match id left out). */
export function readMatches(data) {
  if (!Array.isArray(data.matches)) throw new LobbyError("the server's match list has no matches", { status: 200 });
  return data.matches
    .filter((m) => m && typeof m.match === "string")
    .map((m) => ({
      match: m.match, url: typeof m.url === "string" ? m.url : null, ruleset: String(m.ruleset ?? "?"),
      labels: m.labels && typeof m.labels === "object" ? m.labels : {},
      players: m.players | 0, reserved: m.reserved | 0, max: typeof m.max_players === "number" ? m.max_players : null,
    }));
}

/**
 * `fetch` `path` (GET, or POST of `body` as JSON) and read the answer
 * (`readAnswer`); a request that gets no answer is a LobbyError with status
 * null. `fetchImpl`: the page's `fetch`, a stand-in under test.
 */
export async function callApi(fetchImpl, path, body = undefined) {
  const init = body === undefined ? { cache: "no-store" }
    : { method: "POST", cache: "no-store", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  let r, text;
  try {
    r = await fetchImpl(path, init);
    text = await r.text();
  } catch (e) {
    throw new LobbyError(`can't reach the server (${e.message})`);
  }
  return readAnswer(r.status, r.statusText, text);
}

// -- where the buttons lead -----------------------------------------------------------

/**
 * The play page's address for a match: `seat` (a player's; none for a
 * spectator), `url` the match's WebSocket URL, passed on as `ws` only when it
 * is not this page's own server's `/ws/<match>` (another node), `name`
 * the player's name. `location`: this page's.
 */
export function playUrl({ match, seat = null, url = null, spectate = false, name = null }, location) {
  const q = new URLSearchParams({ match });
  if (seat && !spectate) q.set("seat", seat);
  if (spectate) q.set("spectate", "1");
  if (url && url !== socketUrl(new URLSearchParams({ match }), location)) q.set("ws", url);
  if (name) q.set("name", name);
  return `index.html?${q}`;
}

/** The replay page's address for a replay (replay.js opens `?replay=NAME`). */
export function replayUrl(name) {
  return `replay.html?${new URLSearchParams({ replay: name })}`;
}

// -- the lists' markup ------------------------------------------------------------------

/** `mode ffa · region eu`, keys sorted; "" without labels. */
export function labelsText(labels) {
  return Object.keys(labels).sort().map((k) => `${k} ${labels[k]}`).join(" · ");
}

/** Players over seats (`3/16`), with the seats reserved for players on their way (`3/16 (+2 joining)`). */
export function seatsText(m) {
  const base = m.max == null ? `${m.players}` : `${m.players}/${m.max}`;
  return m.reserved > 0 ? `${base} (+${m.reserved} joining)` : base;
}

/** Whether every seat of a listed match is taken or reserved. */
export const isFull = (m) => m.max != null && m.players + m.reserved >= m.max;

/** The match table's rows: id, ruleset, labels, seats, and a Join and a Spectate button that name the match. */
export function matchRowsHtml(matches) {
  if (!matches.length) return `<tr class="empty"><td colspan="5" class="muted">No matches yet: quick play starts one.</td></tr>`;
  return matches.map((m) => {
    const id = escapeHtml(m.match), full = isFull(m);
    return `<tr data-match="${id}"><td class="mono">${id}</td><td>${escapeHtml(m.ruleset)}</td>` +
      `<td>${escapeHtml(labelsText(m.labels)) || `<span class="muted">none</span>`}</td>` +
      `<td class="seats${full ? " full" : ""}">${escapeHtml(seatsText(m))}</td>` +
      `<td class="actions"><button type="button" class="join" data-match="${id}"${full ? " disabled title=\"The match is full\"" : ""}>Join</button>` +
      `<button type="button" class="spectate secondary" data-match="${id}">Spectate</button></td></tr>`;
  }).join("");
}

/**
 * The replay table's rows (`listing`: a `GET /api/replays` answer): a Watch
 * link per readable replay when the server plays them (`playback`);
 * otherwise the command that does.
 */
export function replayRowsHtml(listing) {
  const rows = Array.isArray(listing.replays) ? listing.replays : [];
  if (!rows.length) return `<tr class="empty"><td colspan="4" class="muted">No replays recorded yet.</td></tr>`;
  return rows.map((r) => {
    const what = r.error ? `<span class="muted">${escapeHtml(r.error)}</span>` : `${escapeHtml(r.ruleset)} · seed ${escapeHtml(r.seed)}`;
    const when = escapeHtml(String(r.start_time || r.mtime || "").replace("T", " ").replace("Z", ""));
    const watch = r.error ? ""
      : listing.playback ? `<a class="watch" href="${escapeHtml(replayUrl(r.name))}">Watch</a>`
        : `<code class="muted" title="This server records matches; this command plays them">python -m tools.replay play ${escapeHtml(r.path ?? r.name)}</code>`;
    return `<tr data-replay="${escapeHtml(r.name)}"><td class="mono">${escapeHtml(r.name)}</td><td>${what}</td><td>${when}</td><td>${watch}</td></tr>`;
  }).join("");
}

/** Ruleset names to offer: those of the listed matches, and `known` ones, sorted, once each. */
export function rulesetNames(matches, known = ["arena"]) {
  return [...new Set([...known, ...matches.map((m) => m.ruleset)])].sort();
}

// -- the page -------------------------------------------------------------------------------

/**
 * The lobby page's DOM: it reads the forms, calls the API through
 * `callApi`, shows the lists and the one-line error, and goes to the play
 * page with a seat. Injected: `fetch`, `navigate(url)`, `storage`
 * (localStorage, shared with the play page's name), `timers`.
 */
export class LobbyPage {
  constructor({ fetchImpl = (...a) => fetch(...a), navigate = (url) => location.assign(url), storage = globalThis.localStorage,
    timers = globalThis, here = location } = {}) {
    Object.assign(this, { fetchImpl, navigate, storage, timers, here });
    this.matches = [];
    this.replays = null;
    this.error = null;
    this.busy = false;
    this.refreshes = 0;
    this.listed = 0; // answers shown: an older answer arriving late is dropped
    this.timer = null;
  }

  /** Wire the forms, show the lists, refresh them every `REFRESH_MS`; returns this. */
  start() {
    let name = null;
    try { name = this.storage.getItem("arena.name"); } catch { /* storage may be off */ }
    $("lobby-name").value = name || `Player${Math.floor(100 + Math.random() * 900)}`;
    $("quick-form").addEventListener("submit", (e) => { e.preventDefault(); this.quickPlay($("quick-ruleset").value); });
    $("create-form").addEventListener("submit", (e) => { e.preventDefault(); this.createFromForm(); });
    $("list-form").addEventListener("submit", (e) => { e.preventDefault(); this.refresh(true); });
    $("list-open").addEventListener("change", () => this.refresh());
    $("list-ruleset").addEventListener("change", () => this.refresh());
    $("matches").addEventListener("click", (e) => {
      const button = e.target.closest("button[data-match]");
      if (!button) return;
      const m = this.matches.find((x) => x.match === button.dataset.match);
      if (m && button.classList.contains("join")) this.join(m);
      else if (m) this.spectate(m);
    });
    document.addEventListener("visibilitychange", () => { if (!document.hidden) this.refresh(); });
    this.refresh(true);
    this.timer = this.timers.setInterval(() => { if (!document.hidden) this.refresh(); }, REFRESH_MS);
    return this;
  }

  /** The player's name from the form (saved for the play page too); LobbyError if there is none. */
  playerName() {
    const name = cleanName($("lobby-name").value);
    if (!name) throw new LobbyError("pick a name first (1 to 24 characters)", { field: "name" });
    try { this.storage.setItem("arena.name", name); } catch { /* ignore */ }
    return name;
  }

  showError(err) {
    this.error = err ? (err instanceof LobbyError ? err.line : String(err.message || err)) : null;
    const box = $("lobby-error");
    box.hidden = !this.error;
    box.textContent = this.error || "";
  }

  setBusy(busy, note = "") {
    this.busy = busy;
    for (const b of document.querySelectorAll("#quick-form button, #create-form button, #matches button.join")) {
      b.disabled = busy || (b.classList.contains("join") && isFull(this.matches.find((m) => m.match === b.dataset.match) || {}));
    }
    $("lobby-note").textContent = note;
  }

  // -- getting a seat ------------------------------------------------------------------

  /** Ask for a seat (`request`: matchmakeBody's arguments) and go to the play page with it. */
  async matchmake(request, doing) {
    if (this.busy) return;
    let name, body;
    try {
      name = this.playerName();
      body = matchmakeBody(request);
    } catch (e) {
      this.showError(e);
      return;
    }
    this.showError(null);
    this.setBusy(true, doing);
    try {
      const seat = readSeat(await callApi(this.fetchImpl, "/api/matchmake", body));
      this.setBusy(true, `Seat reserved in ${seat.match}: joining…`);
      this.navigate(playUrl({ match: seat.match, seat: seat.seat, url: seat.url, name }, this.here));
    } catch (e) {
      this.setBusy(false);
      this.showError(e);
    }
  }

  quickPlay(ruleset) {
    return this.matchmake({ ruleset, mode: "join_or_create" }, `Finding a ${String(ruleset).trim()} match…`);
  }

  createFromForm() {
    let labels, options;
    try {
      labels = labelsFrom({ mode: $("create-mode").value, region: $("create-region").value });
      options = parseOptions($("create-options").value);
      const npcs = $("create-npcs").value.trim();
      if (npcs) options = { ...parseOptions(`npcs=${npcs}`, "npcs"), ...options };
    } catch (e) {
      this.showError(e);
      return Promise.resolve();
    }
    return this.matchmake({ ruleset: $("create-ruleset").value, mode: "create", labels, options }, "Creating a match…");
  }

  join(m) {
    return this.matchmake({ ruleset: m.ruleset, mode: "join", matchId: m.match }, `Joining ${m.match}…`);
  }

  /** Spectators take no seat: straight to the play page. */
  spectate(m) {
    this.navigate(playUrl({ match: m.match, url: m.url, spectate: true, name: cleanName($("lobby-name").value) || null }, this.here));
  }

  // -- the lists ------------------------------------------------------------------------

  async refresh(withReplays = false) {
    const n = ++this.refreshes;
    const ruleset = $("list-ruleset").value.trim() || null;
    try {
      const matches = readMatches(await callApi(this.fetchImpl, listPath({ ruleset, open: $("list-open").checked })));
      if (n < this.listed) return;
      this.listed = n;
      this.matches = matches;
      $("matches").querySelector("tbody").innerHTML = matchRowsHtml(matches);
      $("rulesets").innerHTML = rulesetNames(matches).map((r) => `<option value="${escapeHtml(r)}">`).join("");
      $("list-note").textContent = `${matches.length} match${matches.length === 1 ? "" : "es"} · updated ${new Date().toLocaleTimeString()}`;
      this.setBusy(this.busy, $("lobby-note").textContent);
    } catch (e) {
      $("list-note").textContent = `Cannot list the matches: ${e instanceof LobbyError ? e.line : e.message}`;
    }
    if (withReplays || n % REPLAYS_EVERY === 1) await this.refreshReplays();
  }

  async refreshReplays() {
    try {
      this.replays = await callApi(this.fetchImpl, "/api/replays");
      $("replays").querySelector("tbody").innerHTML = replayRowsHtml(this.replays);
      $("replays-note").textContent = "";
    } catch (e) {
      $("replays-note").textContent = `Cannot list the replays: ${e instanceof LobbyError ? e.line : e.message}`;
    }
  }

  /** The debug hook's view (tests): the listed matches, the replays' names, the error shown, busy. */
  state() {
    return {
      matches: this.matches.map((m) => ({ ...m })),
      replays: this.replays && Array.isArray(this.replays.replays) ? this.replays.replays.map((r) => r.name) : null,
      error: this.error,
      busy: this.busy,
      refreshes: this.refreshes,
    };
  }
}

// The play page's DOM (index.html): the join screen, the banner, the "leave
// the match?" question, and the HUD (leaderboard, the player's card, the
// spectator bar, the kill feed, the hint, network numbers), laid out to fit
// the window. It shows what it is given and reports clicks through the
// callbacks of `wire`; what to show is main.js's business. Nothing touches
// the document before the constructor runs.

import { $, escapeHtml } from "./dom.js";
import { CLOSE_REASONS, SEAT_CLOSE_CODES } from "./protocol.js";
import { playerHue } from "./render.js";

/** The "leave the match?" question goes away by itself after this long (ms). */
export const CONFIRM_LEAVE_MS = 4000;
/** A banner that says all is well again goes away after this long (ms). */
export const FLASH_BANNER_MS = 3500;
/** The controls hint fades after this long in a match (ms). */
export const HINT_MS = 9000;

/**
 * What the join screen says after a connection closed for good (`info` as
 * net.js's `onClose`; `serverError` the `error` message before the close, if
 * any; `url` the server's; `match` the match the page was sent to, if any).
 */
export function closeNotice(info, serverError, url, match = null) {
  const reason = (serverError && serverError.reason) || info.reason || CLOSE_REASONS[info.code] || "";
  if (SEAT_CLOSE_CODES.includes(info.code)) {
    return `Your seat in this match is not valid: ${CLOSE_REASONS[info.code]}. Go back to the lobby to get a new one.`;
  }
  if (!info.wasEstablished) {
    if (info.code === 1013) return `Can't join right now: ${reason || "the match is full"}. Try again in a moment.`;
    if (info.code === 1006 && !serverError) {
      // A browser tells a refused handshake (an unknown match: HTTP 404) from an unreachable server no better.
      return match ? `Can't reach match ${match} at ${url}: it may have ended. Find another one in the lobby.`
        : `Can't reach the game server at ${url}. Is it running?`;
    }
    return `The server refused the connection (${info.code}): ${reason}`;
  }
  if (info.code === 1000 && /replaced/.test(reason)) return "You joined from another window, so this one was disconnected.";
  return `Disconnected by the server (${info.code}): ${reason}`;
}

export class Hud {
  constructor() {
    this.bannerTimer = null;
    this.confirmTimer = null;
    this.hintShownAt = 0;
    /** CSS pixels the HUD's bars take at the top and bottom (kept free in the whole-arena view). */
    this.insets = { top: 20, bottom: 20 };
  }

  /**
   * Wire the page's controls to `on`: play(name), watch(name), leave(),
   * retry(), tapSpectating().
   */
  wire(on) {
    const nameInput = $("name");
    $("join-form").addEventListener("submit", (e) => { e.preventDefault(); on.play(nameInput.value); });
    $("watch").addEventListener("click", () => on.watch(nameInput.value || "spectator"));
    $("leave").addEventListener("click", () => on.leave());
    $("confirm-leave-yes").addEventListener("click", () => on.leave());
    $("confirm-leave-no").addEventListener("click", () => { this.hideConfirmLeave(); $("game").focus(); });
    $("banner-retry").addEventListener("click", () => on.retry());
    $("lb-toggle").addEventListener("click", () => {
      const open = $("leaderboard").classList.toggle("open");
      $("lb-toggle").textContent = open ? "▴" : "▾";
      $("lb-toggle").title = open ? "Show the top three" : "Show the whole leaderboard";
      $("lb-toggle").setAttribute("aria-expanded", String(open));
      this.layout();
    });
    $("spectating").addEventListener("click", () => on.tapSpectating());
  }

  // -- join screen -------------------------------------------------------------------

  /** The join screen, with `name` in the field (focused). */
  prefill(name) {
    $("name").value = name;
    setTimeout(() => $("name").focus(), 0);
  }

  showJoin(error) {
    this.hideConfirmLeave();
    document.body.classList.remove("offline");
    $("join").hidden = false;
    $("hud").hidden = true;
    this.hideBanner();
    $("play").disabled = $("watch").disabled = false;
    const box = $("join-error");
    box.hidden = !error;
    box.textContent = error || "";
  }

  /** Joining: the buttons wait. */
  joining() {
    $("play").disabled = $("watch").disabled = true;
    $("join-error").hidden = true;
    this.setStatus("Connecting…");
  }

  setStatus(text) {
    $("server-status").textContent = text;
  }

  get joinError() {
    return $("join-error").hidden ? null : $("join-error").textContent;
  }

  /** In a match: the HUD instead of the join screen. `touch`: the hint for touch screens. */
  showMatch({ title, spectate, touch, now }) {
    document.body.classList.remove("offline");
    $("join").hidden = true;
    $("hud").hidden = false;
    $("leaderboard").hidden = false;
    document.title = title;
    const hint = $("hint");
    if (spectate) {
      hint.innerHTML = "";
      return;
    }
    this.hintShownAt = now;
    hint.classList.remove("faded");
    hint.innerHTML = touch
      ? "left thumb: move · right thumb: drag to aim and fire"
      : "<kbd>W</kbd><kbd>A</kbd><kbd>S</kbd><kbd>D</kbd> move · mouse aim · <kbd>click</kbd> / <kbd>space</kbd> fire";
  }

  // -- banner and the leave question -----------------------------------------------------

  /** The banner while reconnecting (the page greys out). `retryAt`: Date.now() of the next attempt, or null while one runs. */
  showReconnecting(why, retryAt, attempt) {
    document.body.classList.add("offline");
    const text = retryAt != null
      ? `Connection lost (${why}). Reconnecting in ${Math.max(0, (retryAt - Date.now()) / 1000).toFixed(1)} s… (attempt ${attempt})`
      : `Connection lost (${why}). Reconnecting…`;
    this.setBanner(text, "warn", retryAt != null);
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
    this.bannerTimer = setTimeout(() => this.hideBanner(), FLASH_BANNER_MS);
  }

  hideBanner() {
    clearTimeout(this.bannerTimer);
    $("banner").hidden = true;
    $("banner").dataset.kind = "";
  }

  /** {text, kind} of the banner shown, or null. */
  get banner() {
    const b = $("banner");
    return b.hidden ? null : { text: $("banner-text").textContent, kind: b.dataset.kind };
  }

  askLeave() {
    $("confirm-leave").hidden = false;
    clearTimeout(this.confirmTimer);
    this.confirmTimer = setTimeout(() => this.hideConfirmLeave(), CONFIRM_LEAVE_MS);
  }

  hideConfirmLeave() {
    clearTimeout(this.confirmTimer);
    $("confirm-leave").hidden = true;
  }

  get confirmingLeave() {
    return !$("confirm-leave").hidden;
  }

  // -- the HUD -----------------------------------------------------------------------------

  /** The kill feed: {killer, victim, mine} lines, oldest first. */
  showKills(kills) {
    $("killfeed").innerHTML = kills
      .map((f) => `<div class="kill${f.mine ? " mine" : ""}">${escapeHtml(f.killer)}<span class="x">✕</span>${escapeHtml(f.victim)}</div>`)
      .join("");
  }

  /**
   * Everything else, a few times a second:
   * - `standings`: feed.standings() rows; `me` the player's entity or null;
   * - `card`: {name, player, score, hp, dead, deathBy} of the player, or null for a spectator;
   * - `spectating`: {who, compact} for a spectator, else null;
   * - `net`: {ping (ms or null), tick, ups, bps, entities, fps, desyncs, corrections};
   * - `now` (ms), for the hint's fading.
   */
  show({ standings, me, card, spectating, net, now }) {
    const online = standings.filter((p) => p.online).length;
    // The top 8, or the top 7 and me (with my rank) when I am further down.
    const mine = me == null ? -1 : standings.findIndex((p) => p.entity === me);
    const shown = standings.slice(0, 8).map((p, i) => [i, p]);
    if (mine >= 8) shown.splice(7, 1, [mine, standings[mine]]);
    $("scores").innerHTML = shown.map(([i, p]) =>
      `<li class="${p.entity === me ? "me" : ""}${p.online ? "" : " off"}"><span class="r">${i + 1}</span><span class="dot" style="background:hsl(${playerHue(p.player)},75%,58%)"></span><span class="n">${escapeHtml(p.name)}</span><span class="s">${p.score}</span></li>`,
    ).join("");
    $("online").textContent = `${online} online · ${standings.length} in match`;
    $("me-card").hidden = !card;
    $("death").hidden = !(card && card.dead);
    if (card) {
      $("me-name").textContent = card.name;
      $("me-dot").style.background = `hsl(${playerHue(card.player)},75%,58%)`;
      $("me-score").textContent = card.score;
      const hpEl = $("me-hp");
      hpEl.style.width = `${Math.max(0, Math.min(100, card.hp))}%`;
      hpEl.classList.toggle("low", card.hp <= 30);
      if (card.dead) $("death-by").textContent = card.deathBy ? `by ${card.deathBy}` : "";
    }
    const spec = $("spectating");
    spec.hidden = !spectating;
    if (spectating) {
      const how = document.body.classList.contains("compact")
        ? `<span class="muted">tap to switch</span>` : `<kbd>Tab</kbd> next player · <kbd>V</kbd> whole arena`;
      spec.innerHTML = `Spectating <b>${escapeHtml(spectating.who)}</b> · ${how}`;
    } else if (now - this.hintShownAt > HINT_MS) {
      $("hint").classList.add("faded");
    }
    const ping = net.ping == null ? "–" : `${Math.round(net.ping)} ms`;
    $("netstats").innerHTML =
      `ping <b>${ping}</b> · tick <b>${net.tick}</b> · <b>${net.ups}</b> upd/s · <b>${(net.bps / 1024).toFixed(1)}</b> kB/s<br>` +
      `<b>${net.entities}</b> entities · <b>${Math.round(net.fps)}</b> fps · ` +
      `<span class="${net.desyncs ? "warn" : ""}">desync <b>${net.desyncs}</b></span> · corrections <b>${net.corrections}</b>`;
    this.layout();
  }

  /**
   * Fit the HUD to the window: compact panels on small screens (the
   * leaderboard folds to its top rows, the kill feed goes under the top
   * panels), and the room the bars leave for the whole-arena view (`insets`).
   */
  layout() {
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
}

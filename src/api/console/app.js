// The console's shell: who is logged in, which views their role opens, the view named in
// the URL (#live, #review?...), and helpers every view uses (escaping, the API with the
// session's CSRF token, times in the site's zone with UTC on hover).
import { liveView, startLive } from "./live.js";
import { startStatus } from "./status.js";

export const session = { user: null, role: null, csrf: null, timeZone: undefined };
const ROLES = ["viewer", "operator", "investigator", "admin"];

/** Whether the session's role is `role` or above. */
export function atLeast(role) {
  return ROLES.indexOf(session.role) >= ROLES.indexOf(role);
}

export function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }[c]));
}

/** Calls the API; JSON in and out. Throws an Error with the API's message on a 4xx/5xx. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = session.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) { location.href = "/login"; throw new Error("not logged in"); }
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.error || `HTTP ${r.status}`);
  return j;
}

/** RFC 3339 UTC of a time in ms since the epoch (µs precision kept when given). */
export function iso(ms) {
  return new Date(Math.floor(ms)).toISOString();
}

const formats = {};
function format(kind) {
  if (!formats[kind]) {
    const o = { timeZone: session.timeZone, hourCycle: "h23" };
    if (kind !== "time") Object.assign(o, { year: "numeric", month: "2-digit", day: "2-digit" });
    if (kind !== "date") Object.assign(o, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    if (kind === "precise") o.fractionalSecondDigits = 3;
    formats[kind] = new Intl.DateTimeFormat("sv-SE", o); // ISO-like: 2026-11-30 14:05:09
  }
  return formats[kind];
}
/** A time in the site's zone: kind "datetime" (default), "date", "time" or "precise". */
export function local(ms, kind = "datetime") {
  // (sv-SE writes fractions of a second with a comma: the point, as in ISO 8601 text.)
  return format(kind).format(new Date(ms)).replace(",", ".");
}
/** A <time> element's HTML: site-local text, UTC on hover. */
export function timeHtml(ms, kind = "datetime") {
  return `<time datetime="${iso(ms)}" title="${iso(ms)} UTC">${esc(local(ms, kind))}</time>`;
}
/** The site zone's offset from UTC at `ms`, in ms (for day boundaries and presets). */
export function zoneOffset(ms) {
  const p = Object.fromEntries(new Intl.DateTimeFormat("en-US", {
    timeZone: session.timeZone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
    hour: "numeric", minute: "numeric", second: "numeric",
  }).formatToParts(new Date(ms)).map(x => [x.type, x.value]));
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}
/** UTC ms of a wall-clock time in the site zone (y, m 1-based, d, h). */
export function siteTime(y, m, d, h = 0) {
  const guess = Date.UTC(y, m - 1, d, h);
  return guess - zoneOffset(guess - zoneOffset(guess));
}

// Views: each starts once, when first shown; `show` is called on every visit with the
// URL's parameters, `hide` (if it has one) when another view is shown.
const views = {
  live: { role: "viewer", load: async () => liveView },
  review: { role: "investigator", load: async () => (await import("./review.js")).startReview() },
  search: { role: "investigator", load: async () => (await import("./search.js")).startSearch() },
  setup: { role: "admin", load: async () => (await import("./setup.js")).startSetup() },
  audit: { role: "admin", load: async () => (await import("./audit.js")).startAudit() },
};
const started = {};

function parseHash() {
  const [name, query] = location.hash.replace(/^#/, "").split("?");
  return { name: views[name] ? name : "live", params: new URLSearchParams(query || "") };
}

async function route() {
  let { name, params } = parseHash();
  // A view above the role: Live, and the URL says so.
  if (!atLeast(views[name].role)) { name = "live"; history.replaceState(null, "", "#live"); }
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${name}`;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === name);
  for (const [other, view] of Object.entries(started)) if (other !== name) (await view).hide?.();
  started[name] ??= views[name].load();
  (await started[name]).show(params);
}

async function main() {
  const r = await fetch("/api/session");
  if (r.status === 401) { location.href = "/login"; return; }
  const s = await r.json();
  Object.assign(session, { user: s.user, role: s.role, csrf: s.csrf, timeZone: s.time_zone || undefined });
  for (const a of document.querySelectorAll("#nav a[data-role]")) a.hidden = !atLeast(a.dataset.role);
  document.getElementById("who").innerHTML = `${esc(s.user)} (${esc(s.role)}) <button id="logout">Log out</button>`;
  document.getElementById("logout").onclick = async () => {
    await fetch("/api/logout", { method: "POST", headers: { "X-CSRF-Token": session.csrf } });
    location.href = "/login";
  };
  startLive(s.role);
  startStatus();
  window.addEventListener("hashchange", route);
  await route();
}
main();

// Audit (admin): who saw, searched and exported what. The log's records filtered by user,
// action and time (newest first), and the hash chain's verification.
import { api, esc, iso, siteTime, timeHtml } from "./app.js";

const $ = id => document.getElementById(id);
const state = { records: [], verified: null };
window.vigilAudit = state;

function range() {
  const day = $("audit-date").value;
  if (day) {
    const [y, m, d] = day.split("-").map(Number);
    return [siteTime(y, m, d), siteTime(y, m, d + 1)];
  }
  const now = Date.now();
  return [now - +$("audit-hours").value * 3600e3, now + 60e3];
}

function params(r) {
  const p = r.params || {};
  const parts = [];
  // The query as the user would read it (not percent-encoded again).
  const query = p.query && typeof p.query === "object" ? Object.entries(p.query).map(([k, v]) => v === "" ? k : `${k}=${v}`).join("&") : p.query || "";
  if (p.path) parts.push(p.path + (query ? "?" + query : ""));
  if (p.body && Object.keys(p.body).length) parts.push(JSON.stringify(p.body));
  for (const [k, v] of Object.entries(p)) if (!["path", "query", "body", "status"].includes(k)) parts.push(`${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  return parts.join(" ");
}

async function load() {
  const [a, b] = range();
  const q = new URLSearchParams({ start: iso(a), end: iso(b), order: "desc", limit: "1000" });
  const user = $("audit-user").value.trim(), action = $("audit-action").value.trim();
  if (user) q.set("user", user);
  if (action) q.set("action", action);
  try {
    const { records } = await api(`/api/audit?${q}`);
    state.records = records;
    $("audit-rows").innerHTML = records.map(r => `<tr data-seq="${r.seq}">
      <td class="num">${r.seq}</td><td>${timeHtml(Date.parse(r.time))}</td><td>${esc(r.user)}</td><td>${esc(r.source)}</td>
      <td>${esc(r.action)}</td><td class="num">${esc(r.params?.status ?? "")}</td><td class="params">${esc(params(r))}</td></tr>`).join("")
      || `<tr><td colspan="7">No records match.</td></tr>`;
    $("audit-count").textContent = `${records.length} records${records.length === 1000 ? " (the newest 1000: narrow the filters)" : ""}`;
  } catch (e) {
    $("audit-rows").innerHTML = `<tr><td colspan="7" class="err">${esc(e.message)}</td></tr>`;
  }
}

async function verify() {
  $("audit-verify-state").textContent = "verifying…";
  try {
    const v = await api("/api/audit/verify");
    state.verified = v;
    $("audit-verify-state").innerHTML = v.intact
      ? `<span class="ok">intact</span>: ${v.records} records, each chained to the one before`
      : `<span class="err">broken</span>: ${v.problems.map(esc).join("; ")}`;
  } catch (e) { $("audit-verify-state").textContent = e.message; }
}

export async function startAudit() {
  for (const id of ["audit-user", "audit-action", "audit-hours", "audit-date"]) $(id).onchange = load;
  $("audit-verify").onclick = verify;
  return {
    show(p) {
      if (p.get("user")) $("audit-user").value = p.get("user");
      if (p.get("action")) $("audit-action").value = p.get("action");
      load();
    },
  };
}

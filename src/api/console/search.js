// Search (investigator): draw a polygon on one or several cameras' pictures, choose a
// range, and get when anything moved inside it (POST /api/search/region, from the motion
// history: no video is decoded), as marks on a timeline and as a list of intervals with
// the recorded picture of each; a click plays it in Review. The search runs as soon as a
// polygon is drawn or changed; the time from drawing to results is shown (and kept in
// window.vigilSearch.lastMs).
import { api, esc, iso, local, siteTime, timeHtml, zoneOffset } from "./app.js";
import { firstCameras } from "./status.js";
import { Scale, draw } from "./timeline.js";

const $ = id => document.getElementById(id);
const state = {
  cameras: [],
  polygons: {},   // camera -> [[x, y], ...] normalised 0..1
  range: null,    // [a, b] ms
  results: [],    // intervals
  lastMs: null,
  searches: 0,
};
window.vigilSearch = state;

function picture(camera) {
  const fig = document.createElement("figure");
  fig.dataset.camera = camera;
  fig.innerHTML = `<div class="pic"><img alt="${esc(camera)}" src="/api/cameras/${encodeURIComponent(camera)}/snapshot.jpg?${Date.now()}"><canvas></canvas></div>
    <figcaption>${esc(camera)} <button class="clear">Clear</button></figcaption>`;
  const img = fig.querySelector("img"), c = fig.querySelector("canvas");
  const poly = () => (state.polygons[camera] ??= []);
  const redraw = () => {
    const w = c.width = img.clientWidth, h = c.height = img.clientHeight;
    const g = c.getContext("2d");
    g.clearRect(0, 0, w, h);
    const p = poly();
    if (!p.length) return;
    g.beginPath();
    p.forEach(([x, y], i) => (i ? g.lineTo(x * w, y * h) : g.moveTo(x * w, y * h)));
    if (p.length > 2) g.closePath();
    g.fillStyle = "rgba(120, 60, 220, 0.25)";
    g.strokeStyle = "#7a3cdc";
    g.lineWidth = 2;
    if (p.length > 2) g.fill();
    g.stroke();
    g.fillStyle = "#fff";
    for (const [x, y] of p) { g.beginPath(); g.arc(x * w, y * h, 4, 0, 7); g.fill(); g.stroke(); }
  };
  img.onload = redraw;
  // Click adds a corner; dragging a corner moves it; the search follows each change.
  let drag = null;
  const at = e => [Math.min(1, Math.max(0, e.offsetX / c.clientWidth)), Math.min(1, Math.max(0, e.offsetY / c.clientHeight))];
  c.addEventListener("pointerdown", e => {
    c.setPointerCapture(e.pointerId);
    const [x, y] = at(e);
    const near = poly().findIndex(([px, py]) => Math.hypot((px - x) * c.clientWidth, (py - y) * c.clientHeight) < 8);
    if (near >= 0) drag = near; else { poly().push([x, y]); drag = poly().length - 1; }
    redraw();
  });
  c.addEventListener("pointermove", e => { if (drag != null) { poly()[drag] = at(e); redraw(); } });
  c.addEventListener("pointerup", () => { drag = null; search(); });
  fig.querySelector(".clear").onclick = () => { state.polygons[camera] = []; redraw(); search(); };
  fig.redraw = redraw;
  return fig;
}

let seq = 0;
/** Runs the search for every camera with a polygon of 3 corners or more. */
async function search() {
  const mine = ++seq;
  const t0 = performance.now();
  const asked = state.cameras.filter(c => (state.polygons[c] || []).length >= 3);
  if (!asked.length) { state.results = []; render(); $("search-state").textContent = "Draw a polygon (3 corners or more) on a picture."; return; }
  $("search-state").textContent = "searching…";
  try {
    const found = await Promise.all(asked.map(camera => api("/api/search/region", {
      method: "POST",
      body: { cameras: [camera], polygon: state.polygons[camera], start: iso(state.range[0]), end: iso(state.range[1]) },
    })));
    if (mine !== seq) return;
    state.results = found.flatMap(f => f.intervals).sort((a, b) => a.start_us - b.start_us);
    render();
    state.lastMs = performance.now() - t0;
    state.searches++;
    state.lastPolygons = JSON.stringify(asked.map(c => state.polygons[c]));
    $("search-state").textContent = `${state.results.length} intervals in ${Math.round(state.lastMs)} ms`;
  } catch (e) {
    if (mine === seq) $("search-state").textContent = e.message;
  }
}

function render() {
  const rows = $("search-rows");
  rows.innerHTML = state.results.map((r, i) => {
    const mid = (r.start_us + r.end_us) / 2000;
    return `<tr data-i="${i}"><td>${timeHtml(r.start_us / 1000)}</td><td>${esc(r.camera)}</td>
      <td class="num">${r.seconds} s</td><td class="num">${r.peak_score.toFixed(3)}</td>
      <td><img loading="lazy" alt="${esc(r.camera)} at ${esc(iso(mid))}" src="/api/cameras/${encodeURIComponent(r.camera)}/frame.jpg?t=${iso(mid)}&width=160"></td></tr>`;
  }).join("") || `<tr><td colspan="5">Nothing moved there in this range.</td></tr>`;
  for (const tr of rows.querySelectorAll("tr[data-i]")) tr.onclick = () => play(state.results[+tr.dataset.i]);
  caseButton();
  // The timeline: one lane per camera, the intervals found as marks.
  const c = $("search-timeline");
  const scale = new Scale(state.range[0], state.range[1], c.clientWidth || 800);
  const lanes = state.cameras.map(camera => ({
    camera,
    strip: {
      start_us: state.range[0] * 1000, end_us: state.range[1] * 1000, columns: 0, motion: [], peak: [],
      zones: [], events: [], gaps: [], holds: [], bookmarks: [],
      found: state.results.filter(r => r.camera === camera),
    },
  }));
  draw(c, scale, lanes, { now: Date.now(), selection: null }, (t, step, major) => local(t, major || step >= 86400e3 ? "date" : "time").slice(0, major ? 10 : 5), zoneOffset);
  c.onclick = e => {
    const t = scale.t(e.offsetX) * 1000;
    const r = state.results.find(r => r.start_us - 2e6 <= t && t <= r.end_us + 2e6);
    if (r) play(r);
  };
}

/** Plays an interval in Review, from its start. */
function play(r) {
  const span = Math.max(300, Math.round((r.end_us - r.start_us) / 1e6 * 4));
  location.hash = `#review?cameras=${encodeURIComponent(r.camera)}&t=${iso(r.start_us / 1000)}&span=${span}&play=1`;
}

/** The results into the picked case: one item per camera searched, with its polygon
 * and the range searched (the intervals found are kept with it; its recording held). */
async function addToCase() {
  const id = $("search-case").value;
  const asked = state.cameras.filter(c => (state.polygons[c] || []).length >= 3 && state.results.some(r => r.camera === c));
  if (!id || !asked.length) return;
  const added = [];
  try {
    for (const camera of asked) {
      const r = await api(`/api/cases/${id}/items`, {
        method: "POST",
        body: { kind: "search", cameras: [camera], polygon: state.polygons[camera], start: iso(state.range[0]), end: iso(state.range[1]) },
      });
      added.push(r.item.n);
    }
    $("search-state").textContent = `added to case ${id} as item(s) ${added.join(", ")}; their recording is held`;
  } catch (e) { $("search-state").textContent = e.message; }
  state.caseAdded = { items: added, error: $("search-state").textContent };
}

function caseButton() {
  $("search-to-case").disabled = !$("search-case").value || !state.results.length;
}

async function loadCases() {
  try {
    const { cases } = await api("/api/cases");
    const sel = $("search-case"), keep = sel.value;
    sel.innerHTML = `<option value="">—</option>` + cases.map(c =>
      `<option value="${c.id}">${esc(c.title)}${c.reference ? " (" + esc(c.reference) + ")" : ""}</option>`).join("");
    sel.value = keep;
  } catch { /* not an investigator: no cases */ }
  caseButton();
}

function setRange(a, b) {
  state.range = [a, b];
  $("search-span").textContent = `${local(a)} – ${local(b)}`;
  search();
}

export async function startSearch() {
  const all = (await firstCameras).map(c => c.name);
  const box = $("search-cameras");
  loadCases();
  $("search-case").onchange = caseButton;
  $("search-to-case").onclick = addToCase;
  box.innerHTML = "<legend>Cameras</legend>" + all.map(c => `<label><input type="checkbox" value="${esc(c)}"> ${esc(c)}</label>`).join(" ");
  const pick = names => {
    state.cameras = names;
    for (const i of box.querySelectorAll("input")) i.checked = names.includes(i.value);
    const pics = $("search-pictures");
    pics.innerHTML = "";
    for (const c of names) pics.appendChild(picture(c));
    search();
  };
  for (const i of box.querySelectorAll("input")) {
    i.onchange = () => pick([...box.querySelectorAll("input:checked")].map(x => x.value));
  }
  for (const b of document.querySelectorAll("[data-search-range]")) {
    b.onclick = () => { const now = Date.now(); setRange(now - +b.dataset.searchRange * 3600e3, now); };
  }
  $("search-date").onchange = e => {
    const [y, m, d] = e.target.value.split("-").map(Number);
    if (y) setRange(siteTime(y, m, d), siteTime(y, m, d + 1));
  };
  window.addEventListener("resize", () => { if (!$("view-search").hidden) { for (const f of $("search-pictures").children) f.redraw(); render(); } });
  const now = Date.now();
  // The last hour first (a day's results are a few pixels wide until zoomed); the
  // buttons and dates give more.
  state.range = [now - 3600e3, now];
  return {
    show(params) {
      loadCases();
      const want = (params.get("cameras") || "").split(",").filter(c => all.includes(c));
      if (want.length || !state.cameras.length) pick(want.length ? want : all.slice(0, 1));
      const a = Date.parse(params.get("start") || ""), b = Date.parse(params.get("end") || "");
      // A link's range, else the one chosen before.
      if (a && b && b > a) setRange(a, b); else setRange(...state.range);
    },
  };
}

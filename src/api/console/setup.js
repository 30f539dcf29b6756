// Setup (admin): the zone and mask editor over the camera's live picture (corners
// clicked, dragged, or the whole polygon dragged; per-zone sensitivity and arming
// schedule), saved with PUT /api/cameras/{name}/zones (the config file rewritten, the
// zones applied to the running analysis as soon as no event is open); and the
// installer's acceptance report per camera over a chosen period: state and uptime,
// frame rate and bitrate, frames dropped or lost, recording coverage with each gap and
// its reason, and motion coverage per zone; printable to PDF from the browser (a print
// style sheet keeps only the report).
import { api, esc, iso, local, session, siteTime, timeHtml } from "./app.js";
import { cameras as cameraList, firstCameras } from "./status.js";

const $ = id => document.getElementById(id);
const state = { reports: {}, editor: null, overlay: { frames: 0, last: null, socket: null } };
window.vigilSetup = state;

function duration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} days`;
}
const pct = x => `${(100 * x).toFixed(x < 0.001 && x > 0 ? 3 : 1)}%`;

function period() {
  const day = $("health-date").value;
  if (day) {
    const [y, m, d] = day.split("-").map(Number);
    return [siteTime(y, m, d), Math.min(Date.now(), siteTime(y, m, d + 1))];
  }
  const now = Date.now();
  return [now - +$("health-hours").value * 3600e3, now];
}

/** One camera's report over [a, b) (ms). */
async function report(camera, a, b) {
  const s = cameraList.find(c => c.name === camera) || {};
  const q = `camera=${encodeURIComponent(camera)}&start=${iso(a)}&end=${iso(b)}`;
  // Whole minutes for the motion history's buckets.
  const minutes = Math.max(1, Math.ceil((b - a) / 60e3));
  const [rec, act, counts] = await Promise.all([
    api(`/api/recordings?${q}`),
    api(`/api/activity?camera=${encodeURIComponent(camera)}&start=${iso(a)}&end=${iso(a + minutes * 60e3)}&bucket=${minutes * 60}`),
    api(`/api/events/counts?${q}`),
  ]);
  const gaps = rec.gaps.map(g => ({ ...g, a: Date.parse(g.start), b: Date.parse(g.end) }));
  const missing = gaps.reduce((t, g) => t + (Math.min(g.b, b) - Math.max(g.a, a)), 0);
  // (The buckets are aligned to whole multiples of their width: the period can span two.)
  const zones = {};
  let motionSeconds = 0;
  for (const k of act.buckets) {
    motionSeconds += k.motion_seconds;
    for (const [z, n] of Object.entries(k.zones)) zones[z] = (zones[z] || 0) + n;
  }
  const r = {
    camera, a, b, status: s, gaps,
    recorded: Math.max(0, 1 - missing / (b - a)),
    motionSeconds,
    zones,
    counts: counts.counts[camera] || {},
  };
  state.reports[camera] = r;
  return r;
}

function render(r) {
  const s = r.status, span = r.b - r.a;
  const up = s.state === "streaming" ? `streaming since ${timeHtml(Date.parse(s.since))} (${duration(Date.now() - Date.parse(s.since))})` : esc(s.state || "unknown");
  const zoneRows = Object.keys({ ...r.zones, ...Object.fromEntries(Object.keys(r.counts || {}).filter(z => z).map(z => [z, 0])) })
    .filter(z => z).sort()
    .map(z => `<tr><td>${esc(z)}</td><td class="num">${pct((r.zones[z] || 0) / (span / 1000))}</td><td class="num">${r.counts?.[z] ?? 0}</td></tr>`).join("");
  return `<article class="health" data-camera="${esc(r.camera)}">
    <h3>${esc(r.camera)}</h3>
    <p>${local(r.a)} – ${local(r.b)} (${duration(span)}), site time</p>
    <table class="kv">
      <tr><th>State</th><td>${up}</td></tr>
      <tr><th>Video</th><td>${esc(s.codec || "")} ${s.width || ""}×${s.height || ""}, ${(s.fps ?? 0).toFixed(1)} fps, ${((s.bitrate_bps ?? 0) / 1e6).toFixed(2)} Mbit/s (now)</td></tr>
      <tr><th>Since the daemon started</th><td>${s.frames ?? 0} frames written, ${s.dropped_frames ?? 0} dropped by the writer, ${s.dropped_pictures ?? 0} pictures dropped after loss, ${s.lost_packets ?? 0} packets lost, ${s.reconnects ?? 0} reconnects, ${s.timeouts ?? 0} timeouts</td></tr>
      <tr><th>Recorded</th><td class="recorded">${pct(r.recorded)} of the period; ${r.gaps.length} gap(s)</td></tr>
      <tr><th>Motion</th><td>${r.motionSeconds} s with motion (${pct(r.motionSeconds / (span / 1000))}); ${r.counts?.[""] ?? 0} events</td></tr>
      <tr><th>Last error</th><td${s.last_error ? ' class="err"' : ""}>${esc(s.last_error || "none")}</td></tr>
    </table>
    <table class="gaps"><thead><tr><th>Gap from</th><th>to</th><th>Length</th><th>Reason</th></tr></thead><tbody>
      ${r.gaps.map(g => `<tr><td>${timeHtml(g.a)}</td><td>${timeHtml(g.b)}</td><td class="num">${duration(g.b - g.a)}</td><td>${esc(g.reason)}</td></tr>`).join("") || `<tr><td colspan="4">No gaps.</td></tr>`}
    </tbody></table>
    <table class="zones"><thead><tr><th>Zone</th><th>Time with motion</th><th>Events</th></tr></thead><tbody>
      ${zoneRows || `<tr><td colspan="3">No zones with motion.</td></tr>`}
    </tbody></table>
  </article>`;
}

let loadSeq = 0;
async function load() {
  const seq = ++loadSeq;
  const [a, b] = period();
  const picked = [...document.querySelectorAll("#health-cameras input:checked")].map(i => i.value);
  // Nothing on screen that is not the report asked for last: a stale one could be
  // printed as if it were current.
  $("health-reports").innerHTML = "";
  if (b <= a) { $("health-state").textContent = "that day has not begun yet: pick a day up to today"; return; }
  if (!picked.length) { $("health-state").textContent = "pick a camera"; return; }
  $("health-state").textContent = "loading…";
  try {
    const reports = await Promise.all(picked.map(c => report(c, a, b)));
    if (seq !== loadSeq) return; // a later choice is loading
    const made = local(Date.now());
    $("health-reports").innerHTML =
      `<h2 class="print-only">Camera health report</h2><p class="print-only">Made ${esc(made)} (site time) by ${esc(session.user || "")}</p>` +
      reports.map(render).join("");
    $("health-state").textContent = `made ${made}`;
    state.loaded = reports.length;
  } catch (e) { if (seq === loadSeq) $("health-state").textContent = e.message; }
}

// --- Zone and mask editor --------------------------------------------------------
const COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];

async function openEditor(camera) {
  const z = await api(`/api/cameras/${encodeURIComponent(camera)}/zones`);
  // (`was`: the name as read, so that a renamed zone keeps its table in the file.)
  for (const zone of z.zones) zone.was = zone.name;
  state.editor = { camera, zones: z.zones, masks: z.masks, schedules: z.schedules, sha: z.config_sha256, selected: z.zones.length ? ["zone", 0] : null };
  $("zone-picture").src = `/api/cameras/${encodeURIComponent(camera)}/snapshot.jpg?${Date.now()}`;
  $("zone-state").textContent = "";
  renderList();
  drawShapes();
}

function shapes() {
  const e = state.editor;
  return [...e.zones.map((z, i) => ["zone", i, z.polygon]), ...e.masks.map((m, i) => ["mask", i, m])];
}

function drawShapes() {
  const e = state.editor, img = $("zone-picture"), c = $("zone-canvas");
  if (!e) return;
  const w = c.width = img.clientWidth, h = c.height = img.clientHeight;
  const g = c.getContext("2d");
  g.clearRect(0, 0, w, h);
  drawOverlay(g, w, h);
  for (const [kind, i, p] of shapes()) {
    if (!p.length) continue;
    const sel = e.selected && e.selected[0] === kind && e.selected[1] === i;
    const colour = kind === "mask" ? "#555" : COLOURS[i % COLOURS.length];
    g.beginPath();
    p.forEach(([x, y], k) => (k ? g.lineTo(x * w, y * h) : g.moveTo(x * w, y * h)));
    g.closePath();
    g.globalAlpha = kind === "mask" ? 0.55 : sel ? 0.35 : 0.2;
    g.fillStyle = colour;
    g.fill();
    g.globalAlpha = 1;
    g.lineWidth = sel ? 3 : 1.5;
    g.strokeStyle = colour;
    g.stroke();
    if (kind === "zone") {
      g.font = "bold 13px system-ui";
      g.fillStyle = "#fff";
      g.fillText(e.zones[i].name, p[0][0] * w + 4, p[0][1] * h + 15);
    }
    if (sel) for (const [x, y] of p) { g.beginPath(); g.arc(x * w, y * h, 5, 0, 7); g.fillStyle = "#fff"; g.fill(); g.stroke(); }
  }
}

// --- Live motion overlay -----------------------------------------------------------
// Changed pixels (before blobs are filtered) in red, the grid cells the kept blobs cover
// outlined in yellow, and what the frame meant: score, zones, lighting, calibrating.
function drawOverlay(g, w, h) {
  const o = state.overlay.last;
  if (!o || !state.overlay.socket) return;
  const bits = o.changed.match(/../g)?.map(x => parseInt(x, 16)) || [];
  g.fillStyle = "rgba(255, 0, 0, 0.55)";
  const cw = w / o.changed_cols, ch = h / o.changed_rows;
  for (let i = 0; i < o.changed_cols * o.changed_rows; i++) {
    if (bits[i >> 3] >> (i & 7) & 1) g.fillRect((i % o.changed_cols) * cw, Math.floor(i / o.changed_cols) * ch, cw + 0.5, ch + 0.5);
  }
  g.strokeStyle = "#ffd400";
  g.lineWidth = 2;
  const gw = w / o.grid_cols, gh = h / o.grid_rows;
  o.cells.forEach((v, i) => { if (v) g.strokeRect((i % o.grid_cols) * gw + 1, Math.floor(i / o.grid_cols) * gh + 1, gw - 2, gh - 2); });
}

function overlayText(o) {
  const what = o.calibrating ? "calibrating (learning the background)" : o.lighting_change ? "a lighting change (ignored)"
    : o.motion ? `motion, score ${(o.score * 100).toFixed(2)}%, zones: ${o.zones.join(", ") || "none"}` : `no motion (score ${(o.score * 100).toFixed(2)}%)`;
  return `${what}${o.event_open ? "; event open" : ""}`;
}

function toggleOverlay(on) {
  const ov = state.overlay;
  ov.socket?.close();
  ov.socket = null;
  ov.last = null;
  $("overlay-state").textContent = "";
  if (on && state.editor) {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/cameras/${encodeURIComponent(state.editor.camera)}/motion`);
    ws.onmessage = m => {
      ov.last = JSON.parse(m.data);
      ov.frames++;
      $("overlay-state").textContent = overlayText(ov.last);
      drawShapes();
    };
    ws.onclose = () => { if (ov.socket === ws) $("overlay-state").textContent = "overlay disconnected"; };
    ov.socket = ws;
    // The picture under it follows too (the 2 s snapshot).
    clearInterval(ov.timer);
    ov.timer = setInterval(() => { $("zone-picture").src = `/api/cameras/${encodeURIComponent(state.editor.camera)}/snapshot.jpg?${Date.now()}`; }, 2000);
  } else clearInterval(ov.timer);
  drawShapes();
}

function renderList() {
  const e = state.editor;
  const opts = v => `<option value="">always armed</option>` + e.schedules.map(s => `<option${s === v ? " selected" : ""}>${esc(s)}</option>`).join("");
  $("zone-list").innerHTML = e.zones.map((z, i) => `<tr data-i="${i}" class="${e.selected?.[0] === "zone" && e.selected[1] === i ? "sel" : ""}">
      <td><span style="color:${COLOURS[i % COLOURS.length]}">■</span> <input class="z-name" value="${esc(z.name)}" size="10"></td>
      <td><input class="z-frac" type="number" min="0" max="1" step="0.005" value="${z.min_fraction ?? ""}" placeholder="default" size="6"></td>
      <td><select class="z-arm">${opts(z.arm)}</select></td>
      <td class="num">${z.polygon.length}</td><td><button class="z-del">Delete</button></td></tr>`).join("")
    + e.masks.map((m, i) => `<tr data-mask="${i}" class="${e.selected?.[0] === "mask" && e.selected[1] === i ? "sel" : ""}">
      <td>▩ mask ${i + 1}</td><td></td><td></td><td class="num">${m.length}</td><td><button class="z-del">Delete</button></td></tr>`).join("");
  for (const tr of $("zone-list").querySelectorAll("tr")) {
    const zi = tr.dataset.i != null ? +tr.dataset.i : null, mi = tr.dataset.mask != null ? +tr.dataset.mask : null;
    tr.onclick = ev => { if (ev.target.matches("input, select, button")) return; e.selected = zi != null ? ["zone", zi] : ["mask", mi]; renderList(); drawShapes(); };
    tr.querySelector(".z-del").onclick = () => {
      if (zi != null) e.zones.splice(zi, 1); else e.masks.splice(mi, 1);
      e.selected = null; renderList(); drawShapes();
    };
    if (zi == null) continue;
    tr.querySelector(".z-name").onchange = ev => { e.zones[zi].name = ev.target.value.trim(); drawShapes(); };
    tr.querySelector(".z-frac").onchange = ev => { e.zones[zi].min_fraction = ev.target.value === "" ? undefined : +ev.target.value; };
    tr.querySelector(".z-arm").onchange = ev => { e.zones[zi].arm = ev.target.value || undefined; };
  }
}

function editorInput() {
  const c = $("zone-canvas");
  let drag = null;
  const at = ev => [Math.min(1, Math.max(0, ev.offsetX / c.clientWidth)), Math.min(1, Math.max(0, ev.offsetY / c.clientHeight))];
  const near = ([x, y], [px, py]) => Math.hypot((px - x) * c.clientWidth, (py - y) * c.clientHeight) < 9;
  const inside = (p, [x, y]) => {
    let r = false;
    for (let i = 0, j = p.length - 1; i < p.length; j = i++) {
      if ((p[i][1] > y) !== (p[j][1] > y) && x < (p[j][0] - p[i][0]) * (y - p[i][1]) / (p[j][1] - p[i][1]) + p[i][0]) r = !r;
    }
    return r;
  };
  const poly = sel => sel[0] === "zone" ? state.editor.zones[sel[1]].polygon : state.editor.masks[sel[1]];
  c.addEventListener("pointerdown", ev => {
    const e = state.editor;
    if (!e) return;
    c.setPointerCapture(ev.pointerId);
    const pt = at(ev);
    // A corner of any shape: drag it (the shape becomes the selected one).
    for (const [kind, i, p] of shapes()) {
      const k = p.findIndex(q => near(pt, q));
      if (k >= 0) { e.selected = [kind, i]; drag = { corner: k }; renderList(); drawShapes(); return; }
    }
    // Inside the selected shape: drag it whole.
    if (e.selected && inside(poly(e.selected), pt)) { drag = { from: pt, orig: poly(e.selected).map(q => [...q]) }; return; }
    // Elsewhere: a new corner of the selected shape.
    if (e.selected) { poly(e.selected).push(pt); drag = { corner: poly(e.selected).length - 1 }; renderList(); drawShapes(); }
  });
  c.addEventListener("pointermove", ev => {
    const e = state.editor;
    if (!drag || !e?.selected) return;
    const pt = at(ev), p = poly(e.selected);
    if (drag.corner != null) p[drag.corner] = pt;
    else {
      const dx = pt[0] - drag.from[0], dy = pt[1] - drag.from[1];
      drag.orig.forEach(([x, y], k) => { p[k] = [Math.min(1, Math.max(0, x + dx)), Math.min(1, Math.max(0, y + dy))]; });
    }
    drawShapes();
  });
  c.addEventListener("pointerup", () => { drag = null; });
  // Right-click on a corner removes it.
  c.addEventListener("contextmenu", ev => {
    const e = state.editor;
    if (!e?.selected) return;
    ev.preventDefault();
    const p = poly(e.selected), k = p.findIndex(q => near(at(ev), q));
    if (k >= 0) { p.splice(k, 1); renderList(); drawShapes(); }
  });
}

async function saveZones() {
  const e = state.editor;
  const clean = z => Object.fromEntries(Object.entries(z).filter(([, v]) => v !== undefined && v !== null));
  $("zone-state").textContent = "saving…";
  try {
    const r = await api(`/api/cameras/${encodeURIComponent(e.camera)}/zones`, {
      method: "PUT",
      body: { zones: e.zones.map(clean), masks: e.masks, config_sha256: e.sha },
    });
    e.sha = r.config_sha256;
    for (const zone of e.zones) zone.was = zone.name;
    state.saved = (state.saved || 0) + 1;
    $("zone-state").textContent = r.applied === "pending"
      ? "saved to the config file; motion analysis takes the new zones as soon as no event is open (recording goes on)"
      : "saved to the config file (motion analysis is off for this camera)";
  } catch (err) {
    $("zone-state").textContent = err.message;
    state.saveError = err.message;
  }
}

export async function startSetup() {
  const all = (await firstCameras).map(c => c.name);
  $("health-cameras").innerHTML = "<legend>Cameras</legend>" + all.map(c => `<label><input type="checkbox" value="${esc(c)}" checked> ${esc(c)}</label>`).join(" ");
  for (const el of [...document.querySelectorAll("#health-cameras input"), $("health-hours"), $("health-date")]) el.onchange = load;
  $("health-print").onclick = () => window.print();
  const analysed = (await firstCameras).filter(c => c.motion_enabled).map(c => c.name);
  $("zone-camera").innerHTML = analysed.map(c => `<option>${esc(c)}</option>`).join("");
  $("zone-camera").onchange = async ev => { await openEditor(ev.target.value); toggleOverlay($("overlay-on").checked); };
  $("overlay-on").onchange = ev => toggleOverlay(ev.target.checked);
  $("zone-picture").onload = drawShapes;
  window.addEventListener("resize", drawShapes);
  editorInput();
  for (const id of ["zone-add", "mask-add", "zone-save", "zone-reload", "overlay-on"]) $(id).disabled = !analysed.length;
  $("zone-add").onclick = () => {
    const e = state.editor, names = new Set(e.zones.map(z => z.name));
    let n = e.zones.length + 1;
    while (names.has(`zone${n}`)) n++;
    e.zones.push({ name: `zone${n}`, polygon: [] });
    e.selected = ["zone", e.zones.length - 1];
    renderList(); drawShapes();
  };
  $("mask-add").onclick = () => { const e = state.editor; e.masks.push([]); e.selected = ["mask", e.masks.length - 1]; renderList(); drawShapes(); };
  $("zone-save").onclick = saveZones;
  $("zone-reload").onclick = () => openEditor(state.editor.camera);
  return {
    async show(p) {
      const cam = p.get("camera");
      if (cam && analysed.includes(cam)) $("zone-camera").value = cam;
      load();
      // (Unsaved edits stay while the same camera is shown.)
      if (analysed.length && state.editor?.camera !== $("zone-camera").value) await openEditor($("zone-camera").value);
      toggleOverlay($("overlay-on").checked);
    },
    hide() { toggleOverlay(false); },
  };
}

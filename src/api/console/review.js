// Review (investigator): pick cameras and a range, read the timeline (motion heat,
// events by zone, gaps, holds, bookmarks, now), play any instant of up to four cameras on
// one clock, page through the events, bookmark, export MP4s or place a hold. The view's
// state (cameras, instant, zoom) is in the URL: #review?cameras=a,b&t=RFC3339&from=RFC3339&span=s
// (the playhead, the start of the visible range and its length; without `from` the range
// is centred on `t`).
import { api, esc, iso, local, session, siteTime, timeHtml, zoneOffset } from "./app.js";
import { firstCameras, cameras as cameraList } from "./status.js";
import { AXIS, LANE, MAX_SPAN, MIN_SPAN, Scale, draw, under, zoneColour } from "./timeline.js";
import { Clock, Player, setWindow } from "./player.js";

const $ = id => document.getElementById(id);
const MAX_PLAYERS = 4;

const state = {
  cameras: [],      // shown, in order
  scale: null,
  strips: {},       // camera -> strip
  selection: null,  // {a, b, camera} in ms
  follow: false,    // keep "now" in view
  clock: null,
  players: [],
  cursor: null,     // the event list's next page
};
window.vigilReview = state;
state.fps = () => fps();
/** For tests: players loading windows of `before`/`after` ms (so that playback crosses
 * windows in seconds), rebuilt at the clock's instant. */
state.setWindow = (before, after) => {
  const t = state.clock.now();
  setWindow(before, after);
  buildPlayers();
  return state.clock.seek(t);
};

function canvasWidth() { return $("timeline").clientWidth || 800; }

function fps() {
  const c = cameraList.find(c => c.name === state.cameras[0]);
  return c && c.fps > 0 ? c.fps : 25;
}

// --- URL ------------------------------------------------------------------------
let urlTimer = null;
function saveUrl() {
  clearTimeout(urlTimer);
  urlTimer = setTimeout(() => {
    const t = state.clock ? state.clock.now() : (state.scale.start + state.scale.end) / 2;
    const q = new URLSearchParams({
      cameras: state.cameras.join(","), t: iso(t), from: iso(state.scale.start), span: Math.round(state.scale.span / 1000),
    });
    history.replaceState(null, "", `#review?${q.toString().replace(/%2C/g, ",").replace(/%3A/g, ":")}`);
  }, 300);
}

// --- Timeline --------------------------------------------------------------------
function tickLabel(t, step, major) {
  if (major || step >= 86400e3) return local(t, "date");
  const s = local(t, "time");
  return step < 60e3 ? s : s.slice(0, 5);
}
function redraw() {
  if (!state.scale) return;
  const c = $("timeline");
  state.scale = state.scale.resized(canvasWidth());
  const playhead = state.clock ? state.clock.now() : null;
  draw(c, state.scale, state.cameras.map(camera => ({ camera, strip: state.strips[camera] })),
    { playhead, selection: state.selection && [state.selection.a, state.selection.b], now: Date.now() },
    tickLabel, zoneOffset);
  const span = state.scale.span / 1000;
  $("zoom-span").textContent = span >= 86400 ? `${(span / 86400).toFixed(1)} days`
    : span >= 3600 ? `${(span / 3600).toFixed(1)} h` : `${Math.round(span / 60)} min`;
}

let fetchTimer = null, fetchSeq = 0;
/** Fetches the visible range's strips (debounced), then redraws; also the event list. */
function refetch(delay = 150) {
  clearTimeout(fetchTimer);
  fetchTimer = setTimeout(async () => {
    const seq = ++fetchSeq, s = state.scale;
    const t0 = performance.now();
    await Promise.all(state.cameras.map(async camera => {
      try {
        const strip = await api(`/api/timeline/strip?camera=${encodeURIComponent(camera)}&start=${iso(s.start)}&end=${iso(s.end)}&columns=${Math.min(4096, Math.round(s.width))}`);
        if (seq === fetchSeq) state.strips[camera] = strip;
      } catch (e) { $("player-state").textContent = `${camera}: ${e.message}`; }
    }));
    if (seq !== fetchSeq) return;
    state.stripMs = performance.now() - t0;
    redraw();
    loadEvents();
    loadBookmarks();
  }, delay);
}

/** The scale moved back so that no more than a tenth of it is in the future (zooming
 * out around a playhead near now would otherwise show mostly empty future). */
function lessFuture(s) {
  const end = Date.now() + s.span * 0.1;
  return s.end > end ? new Scale(end - s.span, end, s.width) : s;
}

function setScale(s) {
  state.scale = s;
  redraw();
  refetch();
  saveUrl();
}

function lanesAt(y) {
  const n = Math.floor((y - AXIS) / LANE);
  return n >= 0 && n < state.cameras.length ? state.cameras[n] : null;
}

function timelineInput() {
  const c = $("timeline"), tip = $("timeline-tip");
  let drag = null;
  c.addEventListener("pointerdown", e => {
    c.setPointerCapture(e.pointerId);
    drag = { x: e.offsetX, scale: state.scale, select: e.shiftKey, camera: lanesAt(e.offsetY), moved: false };
  });
  c.addEventListener("pointermove", e => {
    if (drag) {
      if (Math.abs(e.offsetX - drag.x) > 3) drag.moved = true;
      if (!drag.moved) return;
      if (drag.select) {
        const a = drag.scale.t(drag.x), b = drag.scale.t(e.offsetX);
        state.selection = { a: Math.min(a, b), b: Math.max(a, b), camera: drag.camera || state.cameras[0] };
        showSelection();
        redraw();
      } else {
        state.follow = false;
        state.scale = drag.scale.pan(e.offsetX - drag.x);
        redraw();
      }
      return;
    }
    hover(e, tip);
  });
  c.addEventListener("pointerup", e => {
    const d = drag;
    drag = null;
    if (!d) return;
    // A click seeks there and drops the selection (shift-click keeps it).
    if (!d.moved) { if (!d.select) clearSelection(); seek(state.scale.t(e.offsetX)); return; }
    if (!d.select) { refetch(); saveUrl(); }
  });
  c.addEventListener("pointerleave", () => { tip.hidden = true; });
  c.addEventListener("wheel", e => {
    e.preventDefault();
    state.follow = false;
    setScale(state.scale.zoom(Math.exp(e.deltaY * 0.002), e.offsetX));
  }, { passive: false });
}

function hover(e, tip) {
  const camera = lanesAt(e.offsetY);
  const t = state.scale.t(e.offsetX);
  const lines = [`${local(t, "precise")}  (${iso(t)} UTC)`];
  if (camera) {
    const u = under(state.strips[camera], state.scale, e.offsetX);
    for (const ev of u.events.slice(0, 3)) {
      const zones = ev.zones.map(z => state.strips[camera].zones[z]).join(", ") || "no zone";
      lines.push(`event ${ev.id}: ${zones}, ${((ev.end_us - ev.start_us) / 1e6).toFixed(1)} s, score ${ev.peak_score.toFixed(3)}`);
    }
    for (const b of u.bookmarks.slice(0, 3)) lines.push(`bookmark: ${b.text} (${b.user})`);
    for (const h of u.holds.slice(0, 3)) lines.push(`hold: ${h.text} (${h.user})`);
    if (u.gap) lines.push(`no recording (${u.gap.reason})`);
  }
  tip.textContent = lines.join("\n");
  tip.hidden = false;
  tip.style.left = `${e.clientX + 12}px`;
  tip.style.top = `${e.clientY + 12}px`;
}

// --- Players ---------------------------------------------------------------------
function buildPlayers() {
  state.clock?.stop();
  const box = $("players");
  box.innerHTML = "";
  state.players = state.cameras.slice(0, MAX_PLAYERS).map(camera => {
    const fig = document.createElement("figure");
    fig.dataset.camera = camera;
    fig.innerHTML = `<div class="screen"><video muted playsinline preload="auto"></video></div><figcaption><span>${esc(camera)}</span><span class="utc"></span></figcaption>`;
    box.appendChild(fig);
    return new Player(camera, fig);
  });
  state.clock = new Clock(state.players, onTick);
  state.clock.onLiveEdge = () => {
    $("speed").value = "1";
    $("player-state").textContent = "at the live edge: playing at 1×";
  };
}

let lastDraw = 0;
function onTick() {
  const t = state.clock.now();
  $("clock").innerHTML = timeHtml(t, "precise");
  // Paused, each caption gives the time of the picture on screen (from its frame), not
  // the instant asked for, which can be up to a frame later.
  for (const p of state.players) {
    const u = !state.clock.playing && p.shown != null && p.target == null && !p.video.seeking ? p.shown : p.utc();
    if (u != null) p.caption.innerHTML = timeHtml(u, "precise");
  }
  $("play").textContent = state.clock.playing ? "Pause" : "Play";
  // Keep the playhead (or, following, now) in view.
  const s = state.scale;
  if (state.follow && Date.now() > s.end - s.span * 0.05) setScale(s.centred(Date.now() - s.span * 0.3));
  else if (state.clock.playing && (t > s.end || t < s.start)) setScale(s.centred(t));
  else if (performance.now() - lastDraw > 250) { lastDraw = performance.now(); redraw(); }
  markCurrentEvent(t);
}

async function seek(t) {
  $("player-state").textContent = "";
  await state.clock.seek(t);
  saveUrl();
  redraw();
}

function togglePlay() {
  if (state.clock.playing) state.clock.pause(); else state.clock.play();
  onTick();
}

async function jumpEvent(dir) {
  const t = state.clock.now();
  const cams = state.cameras.map(c => `camera=${encodeURIComponent(c)}`).join("&");
  const range = dir > 0 ? `start=${iso(t + 500)}&end=${iso(t + 366 * 86400e3)}&order=asc`
    : `start=${iso(t - 366 * 86400e3)}&end=${iso(t - 500)}&order=desc`;
  try {
    const page = await api(`/api/events?${cams}&${range}&limit=20`);
    const ev = page.events.find(e => dir > 0 ? e.start_ms > t + 500 : e.start_ms < t - 500);
    if (!ev) { $("player-state").textContent = dir > 0 ? "no later event" : "no earlier event"; return; }
    if (ev.start_ms < state.scale.start || ev.start_ms > state.scale.end) setScale(state.scale.centred(ev.start_ms));
    await seek(ev.start_ms);
  } catch (e) { $("player-state").textContent = e.message; }
}

// --- Events list -----------------------------------------------------------------
function eventQuery() {
  const s = state.scale;
  const q = new URLSearchParams({ start: iso(s.start), end: iso(s.end), limit: "50" });
  for (const c of state.cameras) q.append("camera", c);
  const zone = $("f-zone").value.trim(), score = $("f-score").value, dur = $("f-duration").value, ack = $("f-ack").value;
  if (zone) q.set("zone", zone);
  if (score) q.set("min_score", score);
  if (dur) q.set("min_duration", dur);
  if (ack) q.set("acknowledged", ack);
  return q;
}
async function loadEvents(more = false) {
  const q = eventQuery();
  if (more && state.cursor) q.set("cursor", state.cursor);
  const rows = $("event-rows");
  try {
    const page = await api(`/api/events?${q}`);
    if (!more) rows.innerHTML = "";
    for (const e of page.events) rows.appendChild(eventRow(e));
    state.cursor = page.next_cursor ?? null;
    state.eventsTotal = page.total;
    $("more-events").hidden = !state.cursor;
    if (!rows.children.length) rows.innerHTML = `<tr><td colspan="8">No events in this range.</td></tr>`;
  } catch (e) {
    rows.innerHTML = `<tr><td colspan="8" class="err">${esc(e.message)}</td></tr>`;
  }
}
function eventRow(e) {
  const tr = document.createElement("tr");
  tr.dataset.event = e.id;
  tr.dataset.start = e.start_ms;
  tr.dataset.end = e.end_ms;
  const zones = e.zones.map(z => `<span style="color:${zoneColour(z)}">■</span> ${esc(z)}`).join(", ");
  tr.innerHTML = `<td>${timeHtml(e.start_ms)}</td><td>${esc(e.camera)}</td><td>${zones || "—"}</td>
    <td class="num">${((e.end_ms - e.start_ms) / 1000).toFixed(1)} s</td><td class="num">${e.peak_score.toFixed(3)}</td>
    <td>${e.has_thumbnail ? `<img loading="lazy" alt="event ${e.id}" src="/api/events/${e.id}/thumbnail.jpg">` : ""}</td>
    <td>${e.acknowledged ? `${esc(e.acknowledged.by)}${e.acknowledged.note ? ": " + esc(e.acknowledged.note) : ""}` : ""}</td>
    <td><button class="to-case" title="Add this event to the case picked above">+ case</button></td>`;
  tr.onclick = async () => { await seek(e.start_ms); state.clock.play(); onTick(); };
  tr.querySelector(".to-case").onclick = ev => { ev.stopPropagation(); addItem({ kind: "event", event_id: e.id }, `event ${e.id}`); };
  return tr;
}
function markCurrentEvent(t) {
  for (const tr of $("event-rows").children) {
    tr.classList.toggle("current", tr.dataset.start && +tr.dataset.start <= t && t < +tr.dataset.end);
  }
}

// --- Bookmarks, export, holds ------------------------------------------------------
async function loadBookmarks() {
  const s = state.scale;
  const q = new URLSearchParams({ start: iso(s.start), end: iso(s.end) });
  for (const c of state.cameras) q.append("camera", c);
  const text = $("bookmark-q").value.trim();
  if (text) q.set("q", text);
  try {
    const { bookmarks } = await api(`/api/bookmarks?${q}`);
    $("bookmark-list").innerHTML = bookmarks.map(b =>
      `<li data-start="${b.start_us / 1000}">${timeHtml(b.start_us / 1000)} ${esc(b.camera)}: ${esc(b.note)} <small>(${esc(b.user)})</small>
        <button class="to-case" data-bookmark="${b.id}" title="Add this bookmark to the case picked above">+ case</button></li>`).join("")
      || "<li>No bookmarks in this range.</li>";
    for (const li of $("bookmark-list").querySelectorAll("li[data-start]")) li.onclick = () => seek(+li.dataset.start);
    for (const b of $("bookmark-list").querySelectorAll("button[data-bookmark]")) {
      b.onclick = ev => { ev.stopPropagation(); addItem({ kind: "bookmark", bookmark_id: +b.dataset.bookmark }, `bookmark ${b.dataset.bookmark}`); };
    }
  } catch (e) { $("bookmark-list").innerHTML = `<li class="err">${esc(e.message)}</li>`; }
}

/** Forgets the selection: Bookmark marks the playhead again. */
function clearSelection() {
  if (!state.selection) return;
  state.selection = null;
  showSelection();
  redraw();
}

function showSelection() {
  const s = state.selection;
  $("export").disabled = $("hold").disabled = $("clear-selection").disabled = !s;
  caseButtons();
  $("selection").innerHTML = s
    ? `Selected ${timeHtml(s.a)} – ${timeHtml(s.b, "time")} (${((s.b - s.a) / 1000).toFixed(0)} s) on ${esc(state.cameras.join(", "))}`
    : "Shift-drag on the timeline to select a range.";
}

/** Says so and returns false when no camera is shown (nothing to act on). */
function haveCameras() {
  if (state.cameras.length) return true;
  $("action-state").textContent = "pick a camera first";
  return false;
}

async function bookmark() {
  if (!haveCameras()) return;
  const note = $("mark-note").value.trim();
  if (!note) { $("action-state").textContent = "write a note first"; return; }
  const s = state.selection;
  // On every camera shown, as a hold is (the selection bar names them).
  const body = camera => s ? { camera, start: iso(s.a), end: iso(s.b), note }
    : { camera, start: iso(state.clock.now()), note };
  try {
    for (const camera of state.cameras) await api("/api/bookmarks", { method: "POST", body: body(camera) });
    $("action-state").textContent = `bookmarked on ${state.cameras.length} camera(s)`;
    $("mark-note").value = "";
    refetch(0);
  } catch (e) { $("action-state").textContent = e.message; }
}

async function hold() {
  if (!haveCameras()) return;
  const reason = $("mark-note").value.trim();
  if (!reason) { $("action-state").textContent = "write the hold's reason (a case number) first"; return; }
  const s = state.selection;
  try {
    for (const camera of state.cameras) await api("/api/holds", { method: "POST", body: { camera, start: iso(s.a), end: iso(s.b), reason } });
    $("action-state").textContent = `held on ${state.cameras.length} camera(s)`;
    refetch(0);
  } catch (e) { $("action-state").textContent = e.message; }
}

/** Files up to this size (bytes) download through the page, with its progress bar;
 * larger ones go to the browser's own downloads (streamed to disk, its progress shown
 * there), so that the page never holds more than this per camera. */
state.exportInMemoryMax = 256e6;

// --- Cases: the selection into a case, the case out as an evidence package -----------
async function loadCases(pick) {
  const r = await api("/api/cases");
  state.cases = r.cases;
  const sel = $("case-pick"), keep = pick ?? sel.value;
  sel.innerHTML = `<option value="">—</option>` + r.cases.map(c =>
    `<option value="${c.id}">${esc(c.title)}${c.reference ? " (" + esc(c.reference) + ")" : ""} · ${c.items} item(s)</option>`).join("");
  sel.value = keep;
  caseButtons();
}

function caseButtons() {
  const picked = !!$("case-pick").value;
  $("case-add").disabled = !picked || !state.selection;
  $("case-export").disabled = !picked;
}

/** An event or a bookmark into the picked case (its recording held). */
async function addItem(body, what) {
  const id = $("case-pick").value;
  if (!id) { $("case-state").textContent = "pick or open a case first (above)"; return; }
  try {
    const r = await api(`/api/cases/${id}/items`, { method: "POST", body });
    $("case-state").textContent = `${what} added to case ${id} as item ${r.item.n}; held (holds ${r.item.holds.join(", ")})`;
    await loadCases(id);
    refetch(0);
  } catch (e) { $("case-state").textContent = e.message; }
}

/** The picked case's packages on the recorder, each a link to its ZIP (a download is
 * recorded in the package's chain of custody and in the audit log). */
async function loadPackages() {
  const id = $("case-pick").value, box = $("case-packages");
  if (!id) { box.innerHTML = ""; return; }
  try {
    const { packages } = await api(`/api/cases/${id}/packages`);
    box.innerHTML = packages.length ? "Packages: " + packages.map(p =>
      `<a href="/api/cases/${id}/packages/${encodeURIComponent(p.name)}.zip" download="${esc(p.name)}.zip" title="${esc(p.package_id || "")}: ${p.files} files, ${p.custody_records} custody record(s)">${esc(p.name)}.zip</a> (${(p.bytes / 1e6).toFixed(1)} MB)`).join(", ") : "";
  } catch (e) { box.innerHTML = `<span class="err">${esc(e.message)}</span>`; }
}

async function openCase() {
  const title = $("case-title").value.trim();
  if (!title) { $("case-state").textContent = "give the case a title"; return; }
  try {
    const c = await api("/api/cases", { method: "POST", body: { title, reference: $("case-ref").value.trim() } });
    $("case-title").value = $("case-ref").value = "";
    await loadCases(String(c.id));
    $("case-state").textContent = `case ${c.id} opened`;
  } catch (e) { $("case-state").textContent = e.message; }
}

/** The selection, on every camera shown, as a range item of the picked case (its
 * recording held). */
async function addToCase() {
  const s = state.selection, id = $("case-pick").value;
  if (!s || !id || !haveCameras()) return;
  try {
    const r = await api(`/api/cases/${id}/items`, {
      method: "POST",
      body: { kind: "range", cameras: state.cameras, start: iso(s.a), end: iso(s.b), note: $("mark-note").value.trim() },
    });
    $("case-state").textContent = `item ${r.item.n} added to case ${id}; held (holds ${r.item.holds.join(", ")})`;
    await loadCases(id);
    refetch(0);
  } catch (e) { $("case-state").textContent = e.message; }
}

async function exportCase() {
  const id = $("case-pick").value;
  if (!id) return;
  $("case-state").textContent = "exporting…";
  try {
    const r = await api(`/api/cases/${id}/export`, { method: "POST", body: {} });
    state.caseExport = r;
    $("case-state").innerHTML = `package ${esc(r.package_id)}: ${r.files} files, ${(r.media_bytes / 1e6).toFixed(1)} MB of video, in ${esc(r.dir)} on the recorder. <a id="case-download" href="${esc(r.download)}" download>Download it (ZIP)</a>`;
    loadPackages();
  } catch (e) { $("case-state").textContent = e.message; state.caseExport = { error: e.message }; }
}

/** Downloads one MP4 per camera of the selection, with a progress bar each. */
async function exportSelection() {
  if (!haveCameras()) return;
  const s = state.selection;
  const box = $("exports");
  state.exports = [];
  await Promise.all(state.cameras.map(async camera => {
    const row = document.createElement("div");
    row.innerHTML = `${esc(camera)} <span class="bar"><span></span></span> <span class="pct">starting…</span>`;
    box.appendChild(row);
    const bar = row.querySelector(".bar span"), pct = row.querySelector(".pct");
    const job = { camera, done: false, bytes: 0, error: null };
    state.exports.push(job);
    const url = `/api/clips/${encodeURIComponent(camera)}.mp4?start=${iso(s.a)}&end=${iso(s.b)}&purpose=export`;
    const fileName = r => (r.headers.get("content-disposition") || "").match(/filename="([^"]+)"/)?.[1] || `${camera}.mp4`;
    try {
      // The size first (a HEAD reads no video).
      const h = await fetch(url, { method: "HEAD" });
      if (!h.ok) throw new Error((await fetch(url).then(r => r.json()).catch(() => ({}))).error || `HTTP ${h.status}`);
      const size = +h.headers.get("content-length") || 0;
      if (size > state.exportInMemoryMax) {
        const a = document.createElement("a");
        a.href = url;
        a.download = fileName(h);
        document.body.appendChild(a);
        a.click();
        a.remove();
        bar.style.width = "100%";
        pct.textContent = `${a.download}: ${(size / 1e6).toFixed(1)} MB, in the browser's downloads`;
        job.done = true;
        job.file = a.download;
        job.mode = "browser";
        return;
      }
      const r = await fetch(url);
      if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || `HTTP ${r.status}`);
      const total = +r.headers.get("content-length") || 0;
      const reader = r.body.getReader(), parts = [];
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parts.push(value);
        job.bytes += value.length;
        if (total) { bar.style.width = `${100 * job.bytes / total}%`; pct.textContent = `${Math.round(100 * job.bytes / total)}%`; }
      }
      const name = fileName(r);
      const a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob(parts, { type: "video/mp4" }));
      a.download = name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60e3);
      bar.style.width = "100%";
      pct.textContent = `${name}: ${(job.bytes / 1e6).toFixed(1)} MB`;
      job.done = true;
      job.file = name;
      job.mode = "page";
    } catch (e) {
      job.error = e.message;
      pct.textContent = e.message;
      pct.className = "err";
    }
  }));
}

// --- Controls ----------------------------------------------------------------------
function cameraPicker(all) {
  const box = $("review-cameras");
  box.innerHTML = "<legend>Cameras</legend>" + all.map(c =>
    `<label><input type="checkbox" value="${esc(c)}"${state.cameras.includes(c) ? " checked" : ""}> ${esc(c)}</label>`).join(" ");
  for (const i of box.querySelectorAll("input")) {
    i.onchange = () => {
      const picked = [...box.querySelectorAll("input:checked")].map(x => x.value);
      if (!picked.length) { i.checked = true; return; }
      const t = state.clock.now();
      state.cameras = picked;
      state.strips = {};
      buildPlayers();
      state.clock.seek(t);
      setScale(state.scale);
    };
  }
}

function preset(kind) {
  const now = Date.now();
  state.follow = false;
  if (kind === "hour") { state.follow = true; setScale(new Scale(now - 3600e3, now + 60e3, canvasWidth())); seek(now - 3600e3); return; }
  // Last night: yesterday 18:00 to today 08:00 on the site's clock.
  const d = new Date(now + zoneOffset(now));
  const today = [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate()];
  const end = siteTime(...today, 8), start = end - 14 * 3600e3;
  setScale(new Scale(start, end, canvasWidth()));
  seek(start);
}

function controls() {
  timelineInput();
  for (const b of document.querySelectorAll("[data-preset]")) b.onclick = () => preset(b.dataset.preset);
  $("review-date").onchange = e => {
    const [y, m, d] = e.target.value.split("-").map(Number);
    if (!y) return;
    const a = siteTime(y, m, d), b = siteTime(y, m, d + 1);
    state.follow = false;
    setScale(new Scale(a, b, canvasWidth()));
    seek(a);
  };
  $("zoom-in").onclick = () => setScale(state.scale.zoom(0.5, state.scale.x(state.clock.now())));
  $("zoom-out").onclick = () => setScale(lessFuture(state.scale.zoom(2, state.scale.x(state.clock.now()))));
  $("follow").onclick = () => { state.follow = true; setScale(state.scale.centred(Date.now() - state.scale.span * 0.3)); };
  $("play").onclick = togglePlay;
  $("step-back").onclick = () => state.clock.step(-1, fps());
  $("step-fwd").onclick = () => state.clock.step(1, fps());
  $("prev-event").onclick = () => jumpEvent(-1);
  $("next-event").onclick = () => jumpEvent(1);
  $("speed").onchange = e => state.clock.setRate(+e.target.value);
  $("bookmark").onclick = bookmark;
  $("hold").onclick = hold;
  $("export").onclick = exportSelection;
  $("clear-selection").onclick = clearSelection;
  $("case-pick").onchange = () => { caseButtons(); loadPackages(); };
  $("case-new").onclick = openCase;
  $("case-add").onclick = addToCase;
  $("case-export").onclick = exportCase;
  loadCases().catch(() => {});
  $("more-events").onclick = () => loadEvents(true);
  for (const id of ["f-zone", "f-score", "f-duration", "f-ack"]) $(id).onchange = () => loadEvents();
  $("bookmark-q").oninput = () => loadBookmarks();
  window.addEventListener("resize", () => { redraw(); refetch(); });
  document.addEventListener("keydown", e => {
    if ($("view-review").hidden || e.target.closest?.("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    const keys = {
      " ": togglePlay, ",": () => state.clock.step(-1, fps()), ".": () => state.clock.step(1, fps()),
      n: () => jumpEvent(1), p: () => jumpEvent(-1),
      "+": () => $("zoom-in").click(), "=": () => $("zoom-in").click(), "-": () => $("zoom-out").click(),
      ArrowLeft: () => seek(state.clock.now() - 5000), ArrowRight: () => seek(state.clock.now() + 5000),
      Home: () => $("follow").click(),
      Escape: clearSelection,
    };
    const f = keys[e.key];
    if (f) { e.preventDefault(); f(); }
  });
}

/** Starts the view once; `show` applies the URL's cameras, instant and zoom. */
export async function startReview() {
  const all = (await firstCameras).map(c => c.name);
  controls();
  return {
    show(params) {
      // Back to the view without a link: as it was left.
      if (state.clock && !params.get("cameras") && !params.get("t")) { state.clock.start(); redraw(); return; }
      const want = (params.get("cameras") || "").split(",").filter(c => all.includes(c));
      const cams = want.length ? want : all.slice(0, 2);
      const span = Math.min(MAX_SPAN, Math.max(MIN_SPAN, (+params.get("span") || 3600) * 1000));
      // Without a link: just before now, so that a new site shows its latest pictures.
      const t = Date.parse(params.get("t") || "") || Date.now() - 10e3;
      const from = Date.parse(params.get("from") || "");
      if (cams.join() !== state.cameras.join() || !state.clock) {
        state.cameras = cams;
        state.strips = {};
        buildPlayers();
      }
      state.clock.start();
      cameraPicker(all);
      state.follow = !params.get("t");
      requestAnimationFrame(async () => {
        state.scale = from ? new Scale(from, from + span, canvasWidth()) : new Scale(t - span / 2, t + span / 2, canvasWidth());
        setScale(state.follow ? state.scale.centred(Date.now() - span * 0.3) : state.scale);
        await seek(t);
        // From a search result: play it.
        if (params.get("play") === "1") { state.clock.play(); onTick(); }
      });
    },
    hide() { if (state.clock?.playing) state.clock.pause(); state.clock?.stop(); },
  };
}

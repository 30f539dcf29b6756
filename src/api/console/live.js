// The live wall: each camera's video from /api/cameras/{name}/live (fMP4 fragments into
// Media Source Extensions). Each fragment's prft box carries its picture's UTC; the tile
// shows how far the picture on screen is behind the wall clock. A codec this browser
// cannot play (H.265 in Debian's Chromium) falls back to the 2 s snapshot. Operators get
// the alert queue beside the wall. The wall's connections close while another view is
// shown (nothing is packaged for nobody).
import { esc, session, timeHtml } from "./app.js";

const live = {};
window.vigilLive = live;
const sockets = {};

function ntpToMs(view, at) {
  const secs = view.getUint32(at) - 2208988800;
  return secs * 1000 + view.getUint32(at + 4) / 4294967296 * 1000;
}
/** The UTC (ms) of a fragment's picture and its decode time (s), from its prft box. */
export function prft(buf) {
  const v = new DataView(buf);
  if (v.byteLength < 32 || v.getUint32(4) !== 0x70726674) return null; // 'prft'
  const version = v.getUint8(8);
  const utc = ntpToMs(v, 16);
  const media = version === 1 ? Number(v.getBigUint64(24)) : v.getUint32(24);
  return { utc, media: media / 90000 };
}

function startTile(name) {
  const fig = document.createElement("figure");
  fig.dataset.camera = name;
  fig.innerHTML = `<video muted autoplay playsinline></video><figcaption><span>${esc(name)}<span class="state"></span></span><span class="lat"></span></figcaption>`;
  // One click to the camera's full view, another back to the wall.
  fig.onclick = () => fig.classList.toggle("full");
  document.getElementById("wall").appendChild(fig);
  const video = fig.querySelector("video"), lat = fig.querySelector(".lat");
  const st = live[name] = { fragments: 0, latencyMs: null, mode: "connecting", times: [] };
  let timer = null;
  const fallback = () => {
    st.mode = "snapshot";
    const img = document.createElement("img");
    img.alt = `${name} snapshot`;
    const tick = () => { img.src = `/api/cameras/${encodeURIComponent(name)}/snapshot.jpg?${Date.now()}`; };
    tick(); timer = setInterval(tick, 2000);
    video.replaceWith(img);
    lat.textContent = "snapshot";
  };
  sockets[name] = { close: () => { clearInterval(timer); ws?.close(); fig.remove(); delete live[name]; } };
  let ws = null;
  if (!window.MediaSource) { fallback(); return; }
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/cameras/${encodeURIComponent(name)}/live`);
  ws.binaryType = "arraybuffer";
  let ms = null, sb = null, queue = [];
  const pump = () => {
    if (!sb || sb.updating || !queue.length) return;
    const buf = queue.shift();
    try { sb.appendBuffer(buf); } catch (e) { queue = []; }
  };
  const open = (codec) => {
    const type = `video/mp4; codecs="${codec}"`;
    if (!MediaSource.isTypeSupported(type)) { ws.close(); ws = null; fallback(); return; }
    ms = new MediaSource();
    video.src = URL.createObjectURL(ms);
    ms.addEventListener("sourceopen", () => {
      sb = ms.addSourceBuffer(type);
      sb.mode = "segments";
      sb.addEventListener("updateend", () => {
        // Keep 10 s behind the live edge; stay at the edge.
        const b = sb.buffered;
        if (b.length) {
          const end = b.end(b.length - 1);
          if (video.currentTime < b.start(0) || end - video.currentTime > 1.0) video.currentTime = Math.max(b.start(b.length - 1), end - 0.05);
          if (!sb.updating && b.start(0) < end - 10) { try { sb.remove(0, end - 10); return; } catch (e) { /* next time */ } }
        }
        pump();
      });
      st.mode = "video";
      pump();
    }, { once: true });
  };
  ws.onmessage = (m) => {
    if (typeof m.data === "string") { const init = JSON.parse(m.data); queue = []; if (!ms) open(init.codec); return; }
    if (st.mode === "snapshot") return;
    const p = prft(m.data);
    if (p) { st.fragments++; st.times.push(p); if (st.times.length > 300) st.times.shift(); }
    queue.push(m.data);
    pump();
  };
  ws.onclose = () => { if (st.mode !== "snapshot") { st.mode = "closed"; lat.textContent = "disconnected"; } };
  // The picture on screen: its media time to its UTC, against the wall clock.
  const onFrame = (now, meta) => {
    const t = meta.mediaTime;
    let best = null;
    for (const x of st.times) if (x.media <= t + 0.001) best = x;
    if (best) {
      st.latencyMs = Date.now() - (best.utc + (t - best.media) * 1000);
      lat.textContent = `${Math.round(st.latencyMs)} ms behind`;
    }
    video.requestVideoFrameCallback(onFrame);
  };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onFrame);
}

let visible = false;
let cameras = [];

/** The camera list changed or was refreshed (from the status poll): tiles follow it, with
 * each camera's motion state, its score and the zones of its events under way. */
export function updateWall(list) {
  cameras = list;
  if (!visible) return;
  for (const c of list) if (!(c.name in sockets) && c.state !== "disabled") startTile(c.name);
  for (const c of list) {
    const fig = document.querySelector(`#wall figure[data-camera="${CSS.escape(c.name)}"]`);
    if (!fig) continue;
    fig.classList.toggle("motion", !!c.motion);
    const zones = activeZones[c.name] ? [...activeZones[c.name]].join(", ") : "";
    fig.querySelector(".state").textContent = c.motion
      ? ` ● motion ${(c.motion_score * 100).toFixed(1)}%${zones ? " in " + zones : ""}` : "";
  }
}

/** The wall's view: its connections open while it is shown. */
export const liveView = {
  show() { visible = true; updateWall(cameras); },
  hide() {
    visible = false;
    for (const name of Object.keys(sockets)) { sockets[name].close(); delete sockets[name]; }
  },
};

// Live alerts (operator role and above): one row per event, newest first; its zones
// and state follow the alerts; Acknowledge posts with the session's CSRF token.
export function startLive(role) {
  const state = document.getElementById("alerts-state");
  if (role === "viewer") {
    state.textContent = "Live alerts need the operator role.";
    document.getElementById("live-area").classList.add("wall-only");
    return;
  }
  const es = new EventSource("/api/alerts/stream");
  es.onopen = () => { state.textContent = "Waiting for motion…"; };
  es.onerror = () => { state.textContent = "Alert stream interrupted; reconnecting…"; };
  es.addEventListener("alert", ev => { state.textContent = ""; onAlert(JSON.parse(ev.data)); });
}
// Zones with motion now, per camera, from the live alerts (start adds, end clears).
const activeZones = {};
function alertRow(a) {
  let row = document.querySelector(`#alert-rows tr[data-event="${a.event_id}"]`);
  if (row || a.kind !== "start") return row;
  row = document.createElement("tr");
  row.dataset.event = a.event_id;
  // Three columns that fit beside the wall: the picture; time (site time), camera,
  // zones and state; the note and the button.
  row.innerHTML = `<td><img alt="event ${a.event_id}" onerror="this.style.visibility='hidden'"></td>
    <td><div>${timeHtml(Date.parse(a.time), "time")} <b>${esc(a.camera)}</b></div>
      <div class="zones"></div><div class="state"></div></td>
    <td class="ackcell"><input class="note" maxlength="500" placeholder="note (optional)"><button class="ack">Acknowledge</button></td>`;
  row.querySelector(".ack").onclick = () => acknowledge(a.event_id, row, row.querySelector(".note").value);
  const rows = document.getElementById("alert-rows");
  rows.prepend(row);
  while (rows.children.length > 50) rows.lastChild.remove();
  return row;
}
function onAlert(a) {
  if (a.zone && a.kind === "start") (activeZones[a.camera] ??= new Set()).add(a.zone);
  if (a.zone && a.kind === "end") activeZones[a.camera]?.delete(a.zone);
  if (a.kind === "end" && !a.zone) delete activeZones[a.camera];
  const row = alertRow(a);
  if (!row) return;
  // Someone's acknowledgement (this page's own answer says by whom, in either order).
  if (a.kind === "ack") { if (!row.classList.contains("acked")) acked(row, "acknowledged"); return; }
  if (a.zone) {
    const z = row.querySelector(".zones");
    const names = z.textContent ? z.textContent.split(", ") : [];
    if (!names.includes(a.zone)) z.textContent = names.concat([a.zone]).join(", ");
    return;
  }
  row.className = a.kind;
  row.querySelector(".state").textContent = a.kind === "start" ? "motion" : "ended";
  // The thumbnail: the first motion frame at the start, the peak frame at the end.
  const img = row.querySelector("img");
  img.style.visibility = "";
  img.src = a.thumbnail_url + "?" + a.kind;
}
function acked(row, text) {
  row.classList.add("acked");
  row.lastElementChild.textContent = text;
}
async function acknowledge(id, row, note) {
  const r = await fetch(`/api/events/${id}/ack`, {
    method: "POST",
    headers: { "X-CSRF-Token": session.csrf, "Content-Type": "application/json" },
    body: JSON.stringify({ note }),
  });
  const j = await r.json().catch(() => ({}));
  if (r.ok) acked(row, `acknowledged by ${j.by}`);
  else if (r.status === 409) acked(row, j.error);
  else row.querySelector(".state").textContent = j.error || ("HTTP " + r.status);
}

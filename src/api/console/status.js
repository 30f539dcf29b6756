// The cameras' state (the table under the wall) and the storage line, polled every 2 s;
// the same poll feeds the wall its camera list and motion state.
import { esc, timeHtml } from "./app.js";
import { updateWall } from "./live.js";

function mbps(b) { return (b / 1e6).toFixed(2) + " Mbit/s"; }
function size(b) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (i ? b.toFixed(1) : b) + " " + u[i];
}

/** The last camera list, for views that need one (names, fps). */
export let cameras = [];

async function refresh() {
  try {
    const r = await fetch("/api/cameras");
    if (r.status === 401) { location.href = "/login"; return; }
    const j = await r.json();
    cameras = j.cameras;
    updateWall(j.cameras);
    if (document.getElementById("view-live").hidden) return;
    document.getElementById("cams").innerHTML = j.cameras.map(c => `<tr>
      <td>${esc(c.name)}</td>
      <td>${c.motion_enabled ? `<img class="live" alt="${esc(c.name)} live" src="/api/cameras/${encodeURIComponent(c.name)}/snapshot.jpg?${Date.now()}" onerror="this.style.visibility='hidden'">` : ""}</td>
      <td class="${esc(c.state)}">${esc(c.state)}${c.recording ? " ● rec" : ""}</td>
      <td>${c.since ? timeHtml(Date.parse(c.since)) : ""}</td>
      <td class="num">${c.fps.toFixed(1)}</td>
      <td class="num">${mbps(c.bitrate_bps)}</td>
      <td>${c.codec ? esc(c.codec) + " " + c.width + "×" + c.height : ""}</td>
      <td class="num">${c.frames}</td>
      <td class="num">${c.segments_written}</td>
      <td class="num">${c.reconnects}</td>
      <td class="num">${c.dropped_frames}</td>
      <td class="err">${esc(c.last_error)}${c.last_error_at ? " (" + esc(c.last_error_at) + ")" : ""}</td>
    </tr>`).join("");
    const s = await (await fetch("/api/storage")).json();
    document.getElementById("storage").innerHTML =
      `Storage <code>${esc(s.dir)}</code>: ${size(s.total_bytes)} in ${s.segments} segments` +
      (s.free_bytes != null ? `, ${size(s.free_bytes)} free` : "") +
      `; retention deleted ${s.deleted_segments} segments` +
      (s.last_error ? ` <span class="err">${esc(s.last_error)}</span>` : "");
  } catch (e) {
    document.getElementById("cams").innerHTML = `<tr><td colspan="12" class="err">cannot reach the daemon: ${esc(e)}</td></tr>`;
  }
}

/** A promise of the first camera list. */
export const firstCameras = new Promise(resolve => {
  const first = async () => { await refresh(); resolve(cameras); };
  first();
});

export function startStatus() {
  setInterval(refresh, 2000);
}

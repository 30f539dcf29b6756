// The review timeline: a time scale (time ↔ pixel, zoom, pan) and the canvas drawing of
// one lane per camera from its strip (GET /api/timeline/strip: motion per pixel column,
// events with zones, gaps, holds, bookmarks). The scale is pure (no DOM) so that it is
// unit-tested on its own (tests/console.rs). Times are ms since the epoch here; the API's
// strips are in µs.

/** The narrowest and widest views: 5 minutes and 7 days across. */
export const MIN_SPAN = 5 * 60e3;
export const MAX_SPAN = 7 * 86400e3;

/** A view of [start, end) ms drawn over `width` pixels. */
export class Scale {
  constructor(start, end, width) {
    this.start = start;
    this.end = end;
    this.width = Math.max(1, width);
  }
  get span() { return this.end - this.start; }
  /** The pixel (fractional) of instant t. */
  x(t) { return (t - this.start) * this.width / this.span; }
  /** The instant at pixel x. */
  t(x) { return this.start + x * this.span / this.width; }
  /** The pixel column holding t: the server's bucket for `columns=width` over the same
   * range (src/events/strip.rs, Columns::of); -1 or `width` outside. */
  column(t) {
    if (t < this.start) return -1;
    if (t >= this.end) return this.width;
    return Math.floor((t - this.start) * this.width / this.span);
  }
  /** Zoomed by `factor` (< 1 zooms in) around pixel `anchorX`, which keeps its instant;
   * the span stays within [MIN_SPAN, MAX_SPAN]. */
  zoom(factor, anchorX = this.width / 2) {
    const span = Math.min(MAX_SPAN, Math.max(MIN_SPAN, this.span * factor));
    const at = this.t(anchorX);
    const start = at - anchorX / this.width * span;
    return new Scale(start, start + span, this.width);
  }
  /** Moved by `dx` pixels (dragging right shows earlier times). */
  pan(dx) {
    const dt = dx * this.span / this.width;
    return new Scale(this.start - dt, this.end - dt, this.width);
  }
  /** The same span centred on t. */
  centred(t) { return new Scale(t - this.span / 2, t + this.span / 2, this.width); }
  /** The same range over another width. */
  resized(width) { return new Scale(this.start, this.end, width); }
}

const STEPS = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800]
  .map(s => s * 1000);
/** Axis ticks at least `minPx` apart, at round times of the site's clock:
 * [{t, major}] where major ticks fall on the site's midnights. `offset(t)` gives the site
 * zone's offset from UTC at t (ms). */
export function ticks(scale, offset = () => 0, minPx = 90) {
  const step = STEPS.find(s => s * scale.width / scale.span >= minPx) ?? STEPS[STEPS.length - 1];
  const out = [];
  let local = Math.ceil((scale.start + offset(scale.start)) / step) * step;
  for (let i = 0; i < 200; i++, local += step) {
    const t = local - offset(local - offset(local));
    if (t >= scale.end) break;
    out.push({ t, step, major: local % 86400e3 === 0 });
  }
  return out;
}

/** The pixel span [x0, x1) of each column of a strip in `scale`: [{i, x0, x1}] for the
 * columns that are at least partly visible. A strip fetched for another view (while the
 * next one loads) lands where its times are. */
export function stripColumns(strip, scale) {
  const t0 = strip.start_us / 1000, t1 = strip.end_us / 1000, n = strip.columns;
  const out = [];
  const first = Math.max(0, Math.floor((scale.start - t0) * n / (t1 - t0)));
  const last = Math.min(n - 1, Math.ceil((scale.end - t0) * n / (t1 - t0)));
  for (let i = first; i <= last; i++) {
    const a = t0 + (t1 - t0) * i / n, b = t0 + (t1 - t0) * (i + 1) / n;
    const x0 = scale.x(a), x1 = scale.x(b);
    if (x1 <= 0 || x0 >= scale.width) continue;
    out.push({ i, x0, x1 });
  }
  return out;
}

/** A stable colour for a zone name (the same zone has the same colour on every lane). */
export function zoneColour(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return `hsl(${h % 360}, 60%, 45%)`;
}

export const AXIS = 22, LANE = 50;
const HEAT = 16, EVENTS = 14;

let hatch = null;
function gapPattern(ctx) {
  if (hatch) return hatch;
  const c = document.createElement("canvas");
  c.width = c.height = 8;
  const g = c.getContext("2d");
  g.strokeStyle = "rgba(120,120,120,0.55)";
  g.beginPath(); g.moveTo(0, 8); g.lineTo(8, 0); g.stroke();
  hatch = ctx.createPattern(c, "repeat");
  return hatch;
}

/** Draws the axis and the lanes. `lanes`: [{camera, strip}] (strip may be null while
 * loading); `marks`: {playhead, selection: [a, b] | null, now} in ms; `label(t, step)`
 * formats a tick. */
export function draw(canvas, scale, lanes, marks, label, offset) {
  const ctx = canvas.getContext("2d");
  const dpr = window.devicePixelRatio || 1;
  const h = AXIS + LANE * Math.max(1, lanes.length);
  if (canvas.height !== Math.round(h * dpr) || canvas.width !== Math.round(scale.width * dpr)) {
    canvas.width = Math.round(scale.width * dpr);
    canvas.height = Math.round(h * dpr);
    canvas.style.height = h + "px";
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, scale.width, h);
  ctx.font = "11px system-ui, sans-serif";
  // Axis.
  for (const k of ticks(scale, offset)) {
    const x = Math.round(scale.x(k.t)) + 0.5;
    ctx.fillStyle = k.major ? "#333" : "#999";
    ctx.fillRect(x, k.major ? 0 : 12, 1, k.major ? h : AXIS - 12);
    ctx.fillStyle = "#333";
    ctx.fillText(label(k.t, k.step, k.major), x + 3, 11);
    ctx.fillStyle = "rgba(0,0,0,0.06)";
    ctx.fillRect(x, AXIS, 1, h - AXIS);
  }
  lanes.forEach((lane, n) => {
    const y = AXIS + n * LANE;
    ctx.fillStyle = n % 2 ? "#f6f6f6" : "#fdfdfd";
    ctx.fillRect(0, y, scale.width, LANE);
    const s = lane.strip;
    if (s) drawLane(ctx, scale, s, y);
    ctx.fillStyle = "#222";
    ctx.fillText(lane.camera, 4, y + LANE - 6);
  });
  // Selection, now, playhead.
  if (marks.selection) {
    const [a, b] = marks.selection;
    ctx.fillStyle = "rgba(60,120,220,0.22)";
    ctx.fillRect(scale.x(a), AXIS, scale.x(b) - scale.x(a), h - AXIS);
  }
  const line = (t, colour, w) => {
    const x = scale.x(t);
    if (x < -2 || x > scale.width + 2) return;
    ctx.fillStyle = colour;
    ctx.fillRect(Math.round(x - w / 2), 0, w, h);
  };
  line(marks.now, "#2a9d3a", 2);
  if (marks.playhead != null) line(marks.playhead, "#1d5fd1", 2);
}

function drawLane(ctx, scale, s, y) {
  // Recording gaps, hatched over the whole lane.
  ctx.fillStyle = gapPattern(ctx);
  for (const g of s.gaps) {
    const x0 = Math.max(0, scale.x(g.start_us / 1000)), x1 = Math.min(scale.width, scale.x(g.end_us / 1000));
    if (x1 > x0) ctx.fillRect(x0, y, x1 - x0, LANE);
  }
  // Motion heat: opacity from the share of time with motion, hue from the peak score.
  for (const c of stripColumns(s, scale)) {
    const m = s.motion[c.i];
    if (!m) continue;
    const hue = 50 - 50 * Math.min(1, s.peak[c.i] / 200);
    ctx.fillStyle = `hsla(${hue}, 95%, 48%, ${0.25 + 0.75 * m / 255})`;
    ctx.fillRect(c.x0, y + 4, Math.max(1, c.x1 - c.x0), HEAT);
  }
  // Events, coloured by their zones (stacked when several).
  const ey = y + 4 + HEAT + 2;
  for (const e of s.events) {
    const x0 = scale.x(e.start_us / 1000), x1 = Math.max(x0 + 2, scale.x(e.end_us / 1000));
    if (x1 < 0 || x0 > scale.width) continue;
    const zones = e.zones.length ? e.zones.map(z => zoneColour(s.zones[z])) : ["#777"];
    const hz = EVENTS / zones.length;
    zones.forEach((col, k) => { ctx.fillStyle = col; ctx.fillRect(x0, ey + k * hz, x1 - x0, hz); });
  }
  // Region-search results (purple, over the event row).
  ctx.fillStyle = "#7a3cdc";
  for (const r of s.found || []) {
    const x0 = scale.x(r.start_us / 1000), x1 = Math.max(x0 + 2, scale.x(r.end_us / 1000));
    if (x1 >= 0 && x0 <= scale.width) ctx.fillRect(x0, ey, x1 - x0, EVENTS);
  }
  // Holds (amber bar on top) and bookmarks (blue flags).
  ctx.fillStyle = "#e0a000";
  for (const m of s.holds) {
    const x0 = Math.max(0, scale.x(m.start_us / 1000)), x1 = Math.min(scale.width, scale.x(m.end_us / 1000));
    if (x1 > x0) ctx.fillRect(x0, y, x1 - x0, 3);
  }
  ctx.fillStyle = "#1d5fd1";
  for (const m of s.bookmarks) {
    const x0 = scale.x(m.start_us / 1000), x1 = scale.x(m.end_us / 1000);
    if (x1 < -6 || x0 > scale.width + 6) continue;
    if (x1 > x0 + 1) ctx.fillRect(x0, y + LANE - 3, x1 - x0, 3);
    ctx.beginPath(); ctx.moveTo(x0, y); ctx.lineTo(x0 + 6, y + 4); ctx.lineTo(x0, y + 8); ctx.fill();
  }
}

/** What lies under pixel (x, laneIndex) of a lane's strip: events, bookmarks, holds,
 * gaps at that instant (for the tooltip and clicks). */
export function under(strip, scale, x) {
  if (!strip) return { events: [], bookmarks: [], holds: [], gap: null };
  const t = scale.t(x) * 1000, slop = 3 * scale.span / scale.width * 1000;
  const near = (a, b) => a - slop <= t && t <= Math.max(b, a) + slop;
  return {
    events: strip.events.filter(e => near(e.start_us, e.end_us)),
    bookmarks: strip.bookmarks.filter(m => near(m.start_us, m.end_us)),
    holds: strip.holds.filter(m => near(m.start_us, m.end_us)),
    gap: strip.gaps.find(g => g.start_us <= t && t < g.end_us) ?? null,
  };
}

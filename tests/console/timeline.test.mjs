// Unit tests of the console's timeline logic (src/api/console/timeline.js): time ↔ pixel
// mapping, zoom and pan, axis ticks, and how a strip's columns land on pixels. Run by
// tests/console.rs with Node's test runner (`node --test tests/console/`).
import test from "node:test";
import assert from "node:assert/strict";
import { MAX_SPAN, MIN_SPAN, Scale, stripColumns, ticks, under } from "../../src/api/console/timeline.js";

const T0 = Date.UTC(2026, 10, 30, 12);
const HOUR = 3600e3, DAY = 86400e3;

test("time and pixel map both ways", () => {
  const s = new Scale(T0, T0 + HOUR, 1200);
  assert.equal(s.x(T0), 0);
  assert.equal(s.x(T0 + HOUR), 1200);
  assert.equal(s.x(T0 + HOUR / 4), 300);
  for (const x of [0, 1, 299.5, 600, 1199]) assert.ok(Math.abs(s.x(s.t(x)) - x) < 1e-6);
  assert.equal(s.t(600), T0 + HOUR / 2);
});

test("columns match the server's buckets", () => {
  // Column i of n over [t0, t1) starts at t0 + ceil(i·(t1−t0)/n) (src/events/strip.rs).
  const n = 1234, span = 7 * DAY;
  const s = new Scale(T0, T0 + span, n);
  for (const i of [0, 1, 617, 1233]) {
    const start = T0 + Math.ceil(i * span / n);
    assert.equal(s.column(start), i);
    assert.equal(s.column(start - 1), i - 1 < 0 ? -1 : i - 1);
  }
  assert.equal(s.column(T0 - 1), -1);
  assert.equal(s.column(T0 + span), n);
});

test("zoom keeps the instant under the pointer and stays within 5 minutes to 7 days", () => {
  const s = new Scale(T0, T0 + HOUR, 1000);
  const at = s.t(250);
  const z = s.zoom(0.5, 250);
  assert.equal(z.span, HOUR / 2);
  assert.ok(Math.abs(z.t(250) - at) < 1e-6);
  assert.equal(s.zoom(1e-6, 10).span, MIN_SPAN);
  assert.equal(s.zoom(1e6, 10).span, MAX_SPAN);
  // Zooming in and out again returns to the same view.
  const back = s.zoom(0.25, 700).zoom(4, 700);
  assert.ok(Math.abs(back.start - s.start) < 1e-3 && Math.abs(back.end - s.end) < 1e-3);
});

test("panning moves the view by pixels, dragging right shows earlier times", () => {
  const s = new Scale(T0, T0 + HOUR, 1200);
  const p = s.pan(120);
  assert.equal(p.start, T0 - HOUR / 10);
  assert.equal(p.span, HOUR);
  assert.equal(s.centred(T0).start, T0 - HOUR / 2);
});

test("ticks fall on round site times, midnights are major", () => {
  // A site one hour east of UTC.
  const offset = () => HOUR;
  const s = new Scale(T0, T0 + 2 * DAY, 1400);
  const k = ticks(s, offset);
  assert.ok(k.length >= 5 && k.length <= 16, `${k.length} ticks`);
  const step = k[0].step;
  for (const x of k) {
    assert.equal((x.t + HOUR) % step, 0, "on the site's round time");
    assert.ok(x.t >= s.start && x.t < s.end);
    assert.equal(x.major, (x.t + HOUR) % DAY === 0);
  }
  assert.ok(k.some(x => x.major));
  // Spacing: at least 90 px apart.
  for (let i = 1; i < k.length; i++) assert.ok(s.x(k[i].t) - s.x(k[i - 1].t) >= 90);
  // Five minutes across: ticks a minute or less apart.
  assert.ok(ticks(new Scale(T0, T0 + MIN_SPAN, 1400))[0].step <= 60e3);
});

test("a strip's columns land where their times are, also from another view", () => {
  const strip = { start_us: T0 * 1000, end_us: (T0 + HOUR) * 1000, columns: 60 };
  // The same view: column i spans pixels [20i, 20i+20).
  const same = stripColumns(strip, new Scale(T0, T0 + HOUR, 1200));
  assert.equal(same.length, 60);
  assert.deepEqual([same[3].x0, same[3].x1], [60, 80]);
  // Panned by half an hour: the first visible column is 30, at pixel 0.
  const later = stripColumns(strip, new Scale(T0 + HOUR / 2, T0 + 3 * HOUR / 2, 1200));
  assert.equal(later[0].i, 30);
  assert.ok(Math.abs(later[0].x0) < 1e-6);
  assert.equal(later.length, 30);
  // Nothing of it in view.
  assert.equal(stripColumns(strip, new Scale(T0 + 2 * HOUR, T0 + 3 * HOUR, 1200)).length, 0);
});

test("what lies under the pointer", () => {
  const strip = {
    events: [{ id: 1, start_us: (T0 + 60e3) * 1000, end_us: (T0 + 120e3) * 1000, zones: [0] }],
    bookmarks: [{ id: 2, start_us: (T0 + 600e3) * 1000, end_us: (T0 + 600e3) * 1000, text: "van" }],
    holds: [],
    gaps: [{ start_us: (T0 + 1800e3) * 1000, end_us: (T0 + HOUR) * 1000, reason: "no-recording" }],
  };
  const s = new Scale(T0, T0 + HOUR, 3600); // a second per pixel
  assert.deepEqual(under(strip, s, 90).events.map(e => e.id), [1]);
  assert.equal(under(strip, s, 300).events.length, 0);
  assert.deepEqual(under(strip, s, 601).bookmarks.map(b => b.id), [2]);
  assert.equal(under(strip, s, 2000).gap.reason, "no-recording");
  assert.equal(under(strip, s, 100).gap, null);
});

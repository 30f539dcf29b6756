// Recorded video on one clock. A Player plays one camera from any instant: it loads a
// window of the recording as one MP4 (GET /api/clips/{camera}.mp4, remuxed across
// segment boundaries; a HEAD request first gives the UTC of the file's time 0 in
// X-Vigil-Start) and maps its position to UTC. While one window plays, the next is
// loaded into a second, hidden video element and handed over to at the first one's end,
// so playback runs on across windows at any speed without waiting for a load. A Clock
// keeps 2 to 4 players together: the first one with video leads, the others follow it
// within a frame (their playback rate nudged for small drift, a seek for large).

/** Each load covers this much before and after the asked instant (ms). */
let BEFORE = 30e3, AFTER = 10 * 60e3;
/** Positions are set this much (ms) past the instant asked for. */
const NUDGE = 0.5;
/** The next window overlaps the current one by this much (ms), so that its first
 * keyframe (a clip starts at the keyframe at or before the instant asked) is before the
 * hand-over. */
const OVERLAP = 2000;

/** Sets the window each load covers (ms before and after the instant asked); for tests
 * that play across windows in seconds, and for slow links. Players built after it use it. */
export function setWindow(before, after) { BEFORE = before; AFTER = after; }

/** One video element and the window of recording loaded into it. */
class Source {
  constructor(video) {
    this.video = video;
    this.base = null;  // UTC ms of the file's time 0
    this.until = null; // UTC ms of the file's end
  }
  covers(t) { return this.base != null && t >= this.base && t < this.until - 50; }
  clear() { this.base = this.until = null; this.video.removeAttribute("src"); this.video.load(); }
}

/** Asks for the window [a, b) of a camera's recording: its URL and the UTC of its first
 * and last picture, or null if there is none (or no answer). */
async function window_(camera, a, b) {
  const url = `/api/clips/${encodeURIComponent(camera)}.mp4?start=${new Date(a).toISOString()}&end=${new Date(b).toISOString()}`;
  let r;
  try { r = await fetch(url, { method: "HEAD" }); } catch (e) { return null; }
  if (!r.ok || !r.headers.get("x-vigil-start")) return null;
  return { url, base: Date.parse(r.headers.get("x-vigil-start")), until: Date.parse(r.headers.get("x-vigil-end")) };
}

/** Loads `url` into a video element: resolves once its metadata is in, fails if the
 * browser cannot play it (a codec it lacks, such as H.265 in Debian's Chromium) or
 * nothing came within 15 s. */
function load(video, url) {
  const ready = new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("the video did not load")), 15000);
    const done = f => e => { clearTimeout(timer); video.removeEventListener("loadedmetadata", onMeta); video.removeEventListener("error", onError); f(e); };
    const onMeta = done(ok), onError = done(() => fail(new Error("this browser cannot play this camera's video")));
    video.addEventListener("loadedmetadata", onMeta);
    video.addEventListener("error", onError);
  });
  video.src = url;
  return ready;
}

export class Player {
  constructor(camera, figure) {
    this.camera = camera;
    this.figure = figure;
    const screen = figure.querySelector(".screen");
    const videos = [...screen.querySelectorAll("video")];
    while (videos.length < 2) videos.push(screen.appendChild(videos[0].cloneNode()));
    this.active = new Source(videos[0]); // the window on screen
    this.spare = new Source(videos[1]);  // the next window, loaded ahead, hidden
    this.spare.video.classList.add("spare");
    this.caption = figure.querySelector(".utc");
    this.loading = null;  // the instant being loaded
    this.prefetching = null; // the start of the next window being loaded
    this.handAt = null;   // UTC ms where the window loaded ahead takes over while playing
    this.retryNext = 0;   // performance.now() before which the next window is not asked again
    this.missing = null;  // [a, b): a window found without recording
    this.shown = null;    // UTC ms of the picture on screen (from its media time)
    this.seekShown = null; // ... of the first picture shown after the last seek
    this.loads = 0;       // windows loaded on demand (the clock waited for them)
    this.swaps = 0;       // hand-overs to a window loaded ahead
    this.coldSwaps = 0;   // ... of which the window had no picture ready yet
    // The first picture presented after a seek: one at the new position (taken at or
    // before it, less than a frame earlier) or, if playback went on before the browser
    // reported it, a later one; a picture of the old position, which can still be
    // presented while the seek runs, is not it.
    this.target = null;   // media time (s) of the last seek, until its picture is shown
    for (const video of videos) {
      if (!video.requestVideoFrameCallback) break;
      const settle = () => {
        if (video !== this.video || this.target == null || this.shown == null || video.seeking) return;
        const d = this.shownMedia - this.target;
        // (Paused, only the picture at the position will do: on "seeked" the old one
        // may still be the last reported.)
        const after = video.paused ? 0.001 : 0.5;
        if (d > -(this.frameDur ?? 0.1) && d < after) { this.seekShown ??= this.shown; this.target = null; }
      };
      const onFrame = (now, meta) => {
        video.requestVideoFrameCallback(onFrame);
        if (video !== this.video) return;
        // The frame duration: the shortest step between pictures presented in a row.
        const step = meta.mediaTime - this.shownMedia;
        if (step > 0.001 && step < 0.25) this.frameDur = Math.min(this.frameDur ?? step, step);
        if (this.base != null) {
          const last = this.shown;
          this.shown = this.base + meta.mediaTime * 1000;
          this.shownMedia = meta.mediaTime;
          settle();
          // Playing into the window loaded ahead: hand over on the picture before the
          // one at `handAt`, the spare's decoded position, so that no picture is
          // repeated or skipped and nothing waits for a seek.
          const next = this.shown + Math.max(this.shown - (last ?? this.shown), (this.frameDur ?? 0.04) * 1000);
          if (this.handAt != null && !video.paused && this.spare.base != null
              && next >= this.handAt) this.handOverPlaying();
        }
      };
      video.requestVideoFrameCallback(onFrame);
      video.addEventListener("seeked", settle);
    }
  }
  /** The video element on screen. */
  get video() { return this.active.video; }
  /** UTC ms of the loaded file's time 0, or null. */
  get base() { return this.active.base; }
  /** UTC ms of the loaded file's end, or null. */
  get until() { return this.active.until; }
  /** UTC ms of the picture at the current position, or null without video. */
  utc() {
    return this.base == null ? null : this.base + this.video.currentTime * 1000 - NUDGE;
  }
  /** Whether the loaded file covers instant t (ms). */
  covers(t) { return this.active.covers(t); }
  /** Whether the window loaded ahead covers instant t (ms). */
  spareCovers(t) { return this.spare.covers(t); }
  /** Shows instant t: a seek within the loaded file or the one loaded ahead, or a new
   * file around t. Resolves true when t's picture is ready, false if there is none. */
  async seek(t) {
    this.seekShown = null;
    if (this.covers(t)) { await this.position(t); return true; }
    if (this.spareCovers(t)) { await this.handOver(t); return true; }
    if (this.missing && t >= this.missing[0] && t < this.missing[1]) return false;
    // Between the end of this window and the start of the one loaded ahead (a gap in
    // the recording): nothing to load, the next window takes over at its start.
    if (this.spare.base != null && this.until != null && t >= this.until - 50 && t < this.spare.base) {
      this.missing = [t, this.spare.base];
      return false;
    }
    if (this.loading != null && Math.abs(this.loading - t) < 1000) return false;
    this.loading = t;
    const a = t - BEFORE, b = Math.min(t + AFTER, Date.now() + 60e3);
    const w = await window_(this.camera, a, b);
    if (this.loading !== t) return false; // a later seek won
    this.loading = null;
    if (!w) {
      this.active.clear();
      // Not asked again until the clock has moved on (2 s at least: near "now" the
      // recording may just not be indexed yet; a failed request is tried again too).
      this.missing = [a, Math.max(t + 2000, Math.min(b, Date.now() - 5e3))];
      this.figure.classList.add("nodata");
      this.caption.textContent = "no recording here";
      return false;
    }
    this.missing = null;
    this.figure.classList.remove("nodata");
    this.loads++;
    this.handAt = null;
    this.active.base = w.base;
    this.active.until = w.until;
    try { await load(this.video, w.url); } catch (e) {
      this.active.base = this.active.until = null;
      this.missing = [a, b];
      this.figure.classList.add("nodata");
      this.caption.textContent = e.message;
      return false;
    }
    this.seekShown = null;
    // The recording starts after t: nothing to show until the clock gets there (no
    // reload meanwhile).
    if (w.base > t) { this.missing = [t, w.base]; await this.position(w.base); return false; }
    await this.position(t);
    return true;
  }
  /** Loads the window after this one into the spare element while playing at `rate`,
   * early enough (20 s of wall time before this one ends, 10 s more for the load) that
   * it is ready at the hand-over. Near "now" it asks again every 2 s until the
   * recording has grown past this window. */
  async prefetch(t, rate) {
    if (!this.covers(t) || this.prefetching != null || performance.now() < this.retryNext) return;
    if (this.until - t > 10e3 + 20e3 * rate) return;
    if (this.spare.base != null && this.spare.base <= this.until && this.spare.until > this.until) return;
    const a = this.until - OVERLAP, b = Math.min(a + BEFORE + AFTER, Date.now() + 60e3);
    const until = this.until;
    this.prefetching = a;
    const w = await window_(this.camera, a, b);
    // Still wanted: no seek elsewhere meanwhile.
    if (this.prefetching !== a || this.until !== until) { this.prefetching = null; return; }
    if (!w || w.until <= until + 500) {
      this.prefetching = null;
      this.retryNext = performance.now() + 2000;
      return;
    }
    this.spare.base = null; // not usable until loaded
    try {
      await load(this.spare.video, w.url);
      this.spare.base = w.base;
      this.spare.until = w.until;
      // Decode the picture at the hand-over now, not then: a little before this
      // window's end (its last picture may be the last of a segment), after the next
      // one's first.
      this.handAt = Math.max(w.base, until - 250);
      this.spare.video.currentTime = (this.handAt - w.base + NUDGE) / 1000;
    } catch (e) {
      this.spare.base = this.spare.until = null;
      this.retryNext = performance.now() + 10e3;
    }
    this.prefetching = null;
  }
  /** Swaps the window loaded ahead onto the screen. */
  swap() {
    const old = this.active;
    this.active = this.spare;
    this.spare = old;
    this.handAt = null;
    this.swaps++;
    if (this.video.readyState < 2) this.coldSwaps++;
    this.video.playbackRate = old.video.playbackRate;
    this.video.classList.remove("spare");
    old.video.classList.add("spare");
    old.video.pause();
    this.missing = null;
    this.figure.classList.remove("nodata");
  }
  /** Puts the window loaded ahead on screen at instant t (which it covers), paused. */
  handOver(t) {
    this.swap();
    return this.position(t);
  }
  /** While playing, on the picture before `handAt` (or the first one past it): the
   * window loaded ahead, positioned there, plays on. */
  handOverPlaying() {
    // Past `handAt` already (a picture step longer than the last, or a seek there): on
    // from the picture after the last one shown, a short seek forward in the spare.
    const after = this.shown > this.handAt ? this.shown + (this.frameDur ?? 0.04) * 1000 : null;
    this.swap();
    if (after != null) this.video.currentTime = (after - this.base + NUDGE) / 1000;
    this.video.play().catch(() => {});
  }
  /** Sets the position to instant t: the picture taken at or before t (NUDGE more, so
   * that t's rounding to ms never shows the picture before; `utc` takes it off again). Resolves when the
   * seek is done (its picture ready), so that playback starts from it. */
  position(t) {
    this.seekShown = null;
    this.target = Math.max(0, (t - this.base + NUDGE) / 1000);
    const video = this.video;
    const done = new Promise(ok => {
      const timer = setTimeout(ok, 1000);
      video.addEventListener("seeked", () => { clearTimeout(timer); ok(); }, { once: true });
    });
    video.currentTime = this.target;
    return done;
  }
}

export class Clock {
  constructor(players, onTick) {
    this.players = players;
    this.rate = 1;
    this.playing = false;
    this.onTick = onTick;
    this.t = Date.now() - 60e3; // when no player has video: the clock's own time
    this.wall = performance.now();
    this.timer = setInterval(() => this.tick(), 100);
  }
  /** Stops the clock's ticks (the view is hidden, or its players replaced). */
  stop() { clearInterval(this.timer); this.timer = null; for (const p of this.players) { p.video.pause(); p.spare.video.pause(); } }
  /** Starts the ticks again after `stop`. */
  start() { this.timer ??= setInterval(() => this.tick(), 100); }
  /** The player whose position is the clock: the first one with video at the clock. */
  lead() {
    return this.players.find(p => p.covers(this.t) && p.video.readyState >= 2) ?? null;
  }
  now() {
    const l = this.lead();
    if (l) return l.utc();
    return this.t + (this.playing ? (performance.now() - this.wall) * this.rate : 0);
  }
  async seek(t) {
    this.t = t;
    this.wall = performance.now();
    // Someone asked for t: what was found missing before is asked for again.
    for (const p of this.players) p.missing = null;
    await Promise.all(this.players.map(p => p.seek(t)));
    if (this.playing) for (const p of this.players) if (p.covers(t)) p.video.play().catch(() => {});
    this.onTick?.();
  }
  play() {
    this.playing = true;
    this.wall = performance.now();
    for (const p of this.players) {
      p.video.playbackRate = this.rate;
      if (p.covers(this.now())) p.video.play().catch(() => {});
    }
  }
  pause() {
    this.t = this.now();
    this.playing = false;
    for (const p of this.players) p.video.pause();
    // Line every picture up on the lead's.
    for (const p of this.players) if (p.covers(this.t)) p.position(this.t);
  }
  setRate(r) {
    this.t = this.now();
    this.wall = performance.now();
    this.rate = r;
    for (const p of this.players) p.video.playbackRate = r;
  }
  /** Moves every player by `frames` pictures (negative: back), paused. */
  async step(frames, fps) {
    if (this.playing) this.pause();
    await this.seek(this.now() + frames * 1000 / (fps || 25));
  }
  tick() {
    let t = this.now();
    // Faster than real time into the live edge: on at 1× (there is nothing further to
    // play faster), and the view is told (`onLiveEdge`).
    if (this.playing && this.rate > 1 && t > Date.now() - 3000) {
      this.setRate(1);
      this.onLiveEdge?.();
      t = this.now();
    }
    this.t = t;
    this.wall = performance.now();
    const lead = this.lead();
    for (const p of this.players) {
      if (this.playing) {
        p.prefetch(t, this.rate);
        // Past this window's end without a hand-over on the picture (a seek past
        // `handAt`, or the spare ready late): hand over at the clock.
        if (p.spareCovers(t) && !p.covers(t)) {
          // From the picture after the last one shown, not the clock's instant: a late
          // hand-over then waits a moment rather than skip pictures (the clock follows
          // the lead's pictures).
          const from = p.shown != null && p.shown < t ? Math.max(p.spare.base, p.shown + 1) : t;
          p.lateSwaps = (p.lateSwaps || 0) + 1;
          p.handOver(from).then(() => { if (this.playing) p.video.play().catch(() => {}); });
          continue;
        }
      }
      if (!p.covers(t)) {
        // Playing past this file's end, or into recording not loaded yet: load around
        // the clock (paused, only a seek asks).
        if (this.playing) p.seek(t).then(ok => { if (ok && this.playing) p.video.play().catch(() => {}); });
        continue;
      }
      if (p === lead || !this.playing) continue;
      if (p.video.paused) p.video.play().catch(() => {});
      const drift = p.utc() - t; // ms ahead of the lead
      if (Math.abs(drift) > 1000) { p.position(t); continue; }
      // Catch up within about half a second, within Chromium's 1/16 to 16 rates.
      const r = Math.abs(drift) < 10 ? this.rate : this.rate * (1 - Math.max(-0.5, Math.min(0.5, drift / 500)));
      p.video.playbackRate = Math.max(0.0625, Math.min(16, r));
    }
    this.onTick?.();
  }
}

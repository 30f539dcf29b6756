// Recorded video on one clock. A Player plays one camera from any instant: it loads a
// window of the recording as one MP4 (GET /api/clips/{camera}.mp4, remuxed across
// segment boundaries; a HEAD request first gives the UTC of the file's time 0 in
// X-Vigil-Start) and maps its position to UTC. A Clock keeps 2 to 4 players together:
// the first one with video leads, the others follow it within a frame (their playback
// rate nudged for small drift, a seek for large).

/** Each load covers this much before and after the asked instant (ms). */
const BEFORE = 30e3, AFTER = 10 * 60e3;
/** Positions are set this much (ms) past the instant asked for. */
const NUDGE = 0.5;

export class Player {
  constructor(camera, figure) {
    this.camera = camera;
    this.figure = figure;
    this.video = figure.querySelector("video");
    this.caption = figure.querySelector(".utc");
    this.base = null;     // UTC ms of the file's time 0
    this.until = null;    // UTC ms of the file's end
    this.loading = null;  // the instant being loaded
    this.missing = null;  // [a, b): a window found without recording
    this.shown = null;    // UTC ms of the picture on screen (from its media time)
    this.seekShown = null; // ... of the first picture shown after the last seek
    // The first picture presented after a seek: one at the new position (taken at or
    // before it, less than a frame earlier) or, if playback went on before the browser
    // reported it, a later one; a picture of the old position, which can still be
    // presented while the seek runs, is not it.
    this.target = null;   // media time (s) of the last seek, until its picture is shown
    if (this.video.requestVideoFrameCallback) {
      const settle = () => {
        if (this.target == null || this.shown == null || this.video.seeking) return;
        const d = this.shownMedia - this.target;
        // (Paused, only the picture at the position will do: on "seeked" the old one
        // may still be the last reported.)
        const after = this.video.paused ? 0.001 : 0.5;
        if (d > -(this.frameDur ?? 0.1) && d < after) { this.seekShown ??= this.shown; this.target = null; }
      };
      const onFrame = (now, meta) => {
        // The frame duration: the shortest step between pictures presented in a row.
        const step = meta.mediaTime - this.shownMedia;
        if (step > 0.001 && step < 0.25) this.frameDur = Math.min(this.frameDur ?? step, step);
        if (this.base != null) {
          this.shown = this.base + meta.mediaTime * 1000;
          this.shownMedia = meta.mediaTime;
          settle();
        }
        this.video.requestVideoFrameCallback(onFrame);
      };
      this.video.requestVideoFrameCallback(onFrame);
      this.video.addEventListener("seeked", settle);
    }
  }
  /** UTC ms of the picture at the current position, or null without video. */
  utc() {
    return this.base == null ? null : this.base + this.video.currentTime * 1000 - NUDGE;
  }
  /** Whether the loaded file covers instant t (ms). */
  covers(t) {
    return this.base != null && t >= this.base && t < this.until - 50;
  }
  /** Shows instant t: a seek within the loaded file, or a new file around t. */
  async seek(t) {
    this.seekShown = null;
    if (this.covers(t)) { await this.position(t); return true; }
    if (this.missing && t >= this.missing[0] && t < this.missing[1]) return false;
    if (this.loading != null && Math.abs(this.loading - t) < 1000) return false;
    this.loading = t;
    const a = t - BEFORE, b = Math.min(t + AFTER, Date.now() + 60e3);
    const url = `/api/clips/${encodeURIComponent(this.camera)}.mp4?start=${new Date(a).toISOString()}&end=${new Date(b).toISOString()}`;
    let r;
    try { r = await fetch(url, { method: "HEAD" }); } catch (e) { r = null; }
    if (this.loading !== t) return false; // a later seek won
    this.loading = null;
    if (!r || !r.ok || !r.headers.get("x-vigil-start")) {
      this.base = this.until = null;
      // Not asked again until the clock has moved on (2 s at least: near "now" the
      // recording may just not be indexed yet; a failed request is tried again too).
      this.missing = [a, Math.max(t + 2000, Math.min(b, Date.now() - 5e3))];
      this.video.removeAttribute("src");
      this.video.load();
      this.figure.classList.add("nodata");
      this.caption.textContent = "no recording here";
      return false;
    }
    this.missing = null;
    this.figure.classList.remove("nodata");
    const base = Date.parse(r.headers.get("x-vigil-start"));
    const until = Date.parse(r.headers.get("x-vigil-end"));
    // Loaded, or not playable here (a codec this browser lacks, such as H.265 in
    // Debian's Chromium), or no answer: one of them within 15 s.
    const ready = new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error("the video did not load")), 15000);
      const done = f => e => { clearTimeout(timer); this.video.removeEventListener("loadedmetadata", onMeta); this.video.removeEventListener("error", onError); f(e); };
      const onMeta = done(ok), onError = done(() => fail(new Error("this browser cannot play this camera's video")));
      this.video.addEventListener("loadedmetadata", onMeta);
      this.video.addEventListener("error", onError);
    });
    this.video.src = url;
    this.base = base;
    this.until = until;
    try { await ready; } catch (e) {
      this.base = this.until = null;
      this.missing = [a, b];
      this.figure.classList.add("nodata");
      this.caption.textContent = e.message;
      return false;
    }
    this.seekShown = null;
    // The recording starts after t: nothing to show until the clock gets there (no
    // reload meanwhile).
    if (base > t) { this.missing = [t, base]; await this.position(base); return false; }
    await this.position(t);
    return true;
  }
  /** Sets the position to instant t: the picture taken at or before t (NUDGE more, so
   * that t's rounding to ms never shows the picture before; `utc` takes it off again). Resolves when the
   * seek is done (its picture ready), so that playback starts from it. */
  position(t) {
    this.seekShown = null;
    this.target = Math.max(0, (t - this.base + NUDGE) / 1000);
    const done = new Promise(ok => {
      const timer = setTimeout(ok, 1000);
      this.video.addEventListener("seeked", () => { clearTimeout(timer); ok(); }, { once: true });
    });
    this.video.currentTime = this.target;
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
  stop() { clearInterval(this.timer); this.timer = null; for (const p of this.players) p.video.pause(); }
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
    const t = this.now();
    this.t = t;
    this.wall = performance.now();
    const lead = this.lead();
    for (const p of this.players) {
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

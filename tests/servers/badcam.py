#!/usr/bin/env python3
"""badcam.py - a small RTSP "camera" with switchable faults, for Vigil's conformance tests.

It plays a real encoded file (MP4 with H.264 or H.265, optionally B-frames, optionally
AAC) in a loop as a live camera, paced on the wall clock, over RTSP/RTP. Python 3
standard library only; the file is demuxed by `ffmpeg`/`ffprobe` subprocesses.

    badcam.py --media FILE [--port N] [faults...]

On start it demuxes FILE, listens on 127.0.0.1 and prints exactly `PORT <n>` on stdout.
Any URL path works (rtsp://127.0.0.1:<n>/stream). It exits when its stdin reaches EOF
(so start it with a pipe on stdin and keep the pipe open; /dev/null ends it at once)
or after --max-seconds. Each client (thread) has its own timeline: random SSRC,
initial sequence number and RTP timestamp, playback from the start of the file at
PLAY. Access units are sent at their DTS on the wall clock with RTP timestamp = PTS
(90 kHz), so B-frames make timestamps go back and forth; each loop of the file adds the
file's duration. AUD/SPS/PPS/VPS/SEI NALs stay in band (an AUD is moved to the front of
its access unit: ffmpeg's libx264 wrapper writes its SEI before it); parameter sets are
also in the SDP (RFC 6184 sprop-parameter-sets / RFC 7798 sprop-vps/sps/pps). Packetization: single
NAL unit packets and FU-A (H.264) / FU (H.265), no aggregation packets. RTCP sender
reports (+ SDES CNAME) go out at PLAY and every 5 s. Transports: RTP/AVP/TCP interleaved
and RTP/AVP unicast UDP (client_port). Methods: OPTIONS DESCRIBE SETUP PLAY
GET_PARAMETER SET_PARAMETER TEARDOWN (PAUSE and others: 501). A session lives as long
as its RTSP connection. Audio (--audio): one AAC frame per RTP packet (not fragmented),
frames outside the video's loop window dropped; timestamp faults apply to it too.
Stderr carries only fatal errors unless -v.

Options:
  --media FILE            input MP4 (required)
  --port N                TCP port on 127.0.0.1; 0 (default) picks a free one
  --audio                 also serve the file's first AAC track (RFC 3640 AAC-hbr)
  --mtu N                 max RTP payload size; larger NALs are fragmented (1400)
  --max-seconds S         exit after S seconds (600)
  --seed N                seed for --drop-packets (0); the i-th connection uses seed+i
  --initial-seq N / --initial-ts N
                          fixed initial RTP sequence number / timestamp instead of
                          random ones (e.g. to test wrap-around)
  -v, --verbose           log connections and requests on stderr

Faults (combinable):
  --clock-rate F          the camera clock runs F times too fast: RTP timestamps advance
                          F x 90 kHz per real second; frames still go out in real time
  --step-back AT:S        once, AT seconds after PLAY, RTP timestamps step back by S
                          seconds and go on from there (repeatable)
  --jump-forward AT:S     same, forward (repeatable)
  --marker-every-slice    marker bit on the last packet of every slice (VCL) NAL, not only
                          at the end of the access unit (use a file with several slices
                          per picture, e.g. x264 slices=4)
  --drop-packets P        drop each RTP packet with probability P (seeded); sequence
                          numbers still advance, so the client sees gaps
  --start-mid-fu          the first RTP video packet after PLAY is a middle fragment of a
                          FU(-A): the video packets before it (normally the first half of
                          the first IDR slice) are not sent and use no sequence numbers
  --stall-before-describe accept TCP connections, read, never answer anything
  --stall-after-play      answer PLAY, then send no RTP/RTCP at all (RTSP requests such as
                          GET_PARAMETER keepalives are still answered)
  --end-after S           close the TCP connection abruptly S seconds after PLAY (no BYE)
  --params both|sdp|inband
                          where the parameter sets go: both (default), only in the SDP
                          (stripped from the stream), or only in the stream (no sprop-*)
  --hostile MODE          a hostile server (seeded by --seed), one of:
                          garbage-after-play: after answering PLAY, random bytes (no
                            interleaved framing) instead of RTP, forever
                          huge-frames: after PLAY, interleaved frames of 65535 random bytes
                          fuzz-rtp: RTP as usual, but one packet in ten has a random payload
                            (valid header, sequence and timestamp)
                          bad-sdp: DESCRIBE answers 200 with a random SDP body
                          huge-content-length: DESCRIBE says Content-Length: 4000000000 and
                            sends random bytes slowly, never that many
                          endless-headers: every answer is a status line, then header lines
                            forever (about 100 a second)
  --keepalive-error       answer GET_PARAMETER/SET_PARAMETER keepalives with 451
  --session-timeout S     the Session header's timeout (60): how often clients keep alive
  --bad-audio-fmtp        describe an AAC track with a garbage config (never sent)
"""
import argparse
import base64
import json
import os
import itertools
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from fractions import Fraction

SR_INTERVAL = 5.0
SESSION_TIMEOUT = 60
NTP_EPOCH_OFFSET = 2208988800


def log(msg):
    print(f"badcam: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- demuxing

def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode:
        sys.exit(f"badcam: {' '.join(cmd)} failed:\n{r.stderr.decode(errors='replace')}")
    return r.stdout


def probe_packets(path, sel):
    out = run(["ffprobe", "-v", "error", "-select_streams", sel, "-show_packets",
               "-show_entries", "packet=pts,dts,duration,flags", "-of", "json", path])
    return json.loads(out).get("packets", [])


def split_annexb(data):
    """Returns the NAL units of an Annex B byte stream (start codes removed)."""
    starts, i = [], data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    nals = []
    for n, s in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        nal = data[s:end].rstrip(b"\x00")  # trailing_zero_8bits / 4-byte start codes
        if nal:
            nals.append(nal)
    return nals


class Codec:
    def __init__(self, name):
        self.name = name  # "H264" or "H265"
        self.hlen = 1 if name == "H264" else 2

    def nal_type(self, nal):
        return nal[0] & 0x1F if self.name == "H264" else (nal[0] >> 1) & 0x3F

    def is_vcl(self, nal):
        t = self.nal_type(nal)
        return 1 <= t <= 5 if self.name == "H264" else t < 32

    def starts_au(self, nal):
        """Non-VCL NALs that, after a VCL NAL, begin a new access unit."""
        t = self.nal_type(nal)
        if self.name == "H264":  # SEI, SPS, PPS, AUD, 14..18
            return t in (6, 7, 8, 9) or 14 <= t <= 18
        return t in (32, 33, 34, 35, 39) or 41 <= t <= 44 or 48 <= t <= 55

    def first_slice_of_picture(self, nal):
        # H.264: first_mb_in_slice ue(v) == 0 <=> first bit 1.
        # H.265: first_slice_segment_in_pic_flag is the first bit.
        return len(nal) > self.hlen and bool(nal[self.hlen] & 0x80)


def split_access_units(codec, nals):
    aus, cur, has_vcl = [], [], False
    for nal in nals:
        if has_vcl and (codec.starts_au(nal) or
                        (codec.is_vcl(nal) and codec.first_slice_of_picture(nal))):
            aus.append(cur)
            cur, has_vcl = [], False
        cur.append(nal)
        has_vcl = has_vcl or codec.is_vcl(nal)
    if cur:
        aus.append(cur)
    return aus


def fragment(codec, nal, mtu):
    """RTP payloads for one NAL: [(payload, is_middle_fragment)]."""
    if len(nal) <= mtu:
        return [(nal, False)]
    t = codec.nal_type(nal)
    if codec.name == "H264":  # RFC 6184 FU-A
        ind = bytes([(nal[0] & 0xE0) | 28])
    else:  # RFC 7798 FU: PayloadHdr type 49, same F/LayerId/TID
        ind = bytes([(nal[0] & 0x81) | (49 << 1), nal[1]])
    body, step, out = nal[codec.hlen:], mtu - len(ind) - 1, []
    for off in range(0, len(body), step):
        s, e = off == 0, off + step >= len(body)
        out.append((ind + bytes([(0x80 if s else 0) | (0x40 if e else 0) | t]) + body[off:off + step],
                    not s and not e))
    return out


class AccessUnit:
    def __init__(self, dts, pts, packets):
        self.dts, self.pts = dts, pts  # 90 kHz, relative to the first DTS of the file
        # [(payload, ends_a_vcl_nal, is_middle_fragment)]
        self.packets = packets


class Media:
    def __init__(self, path, mtu, want_audio, params="both", bad_audio_fmtp=False):
        self.params_mode, self.bad_audio_fmtp = params, bad_audio_fmtp
        streams = json.loads(run(["ffprobe", "-v", "error", "-show_entries",
                                  "stream=index,codec_type,codec_name,time_base",
                                  "-of", "json", path]))["streams"]
        video = next((s for s in streams if s["codec_type"] == "video"), None)
        if video is None or video["codec_name"] not in ("h264", "hevc"):
            sys.exit("badcam: --media needs an H.264 or H.265 video stream")
        self.codec = Codec("H264" if video["codec_name"] == "h264" else "H265")
        fmt = video["codec_name"]
        annexb = run(["ffmpeg", "-v", "error", "-i", path, "-map", "0:v:0", "-c", "copy",
                      "-bsf:v", f"{fmt}_mp4toannexb", "-f", fmt, "-"])
        groups = split_access_units(self.codec, split_annexb(annexb))
        pkts = probe_packets(path, "v:0")
        if len(groups) != len(pkts):
            sys.exit(f"badcam: split {len(groups)} access units but ffprobe lists {len(pkts)} packets")
        tb = Fraction(video["time_base"]) * 90000
        dts_raw, pts_raw, prev = [], [], None
        for p in pkts:
            dts = int(p["dts"]) if "dts" in p else (prev + int(p.get("duration", 0)))
            dts_raw.append(dts)
            pts_raw.append(int(p.get("pts", dts)))
            prev = dts
        d0 = dts_raw[0]
        to90 = lambda v: round((v - d0) * tb)
        last_dur = int(pkts[-1].get("duration", 0)) or (dts_raw[-1] - dts_raw[-2] if len(pkts) > 1 else 1)
        self.duration = to90(dts_raw[-1] + last_dur)  # loop length, 90 kHz
        self.origin_sec = d0 * Fraction(video["time_base"])  # first DTS in file seconds
        self.params = {}
        names = {7: "sps", 8: "pps"} if self.codec.name == "H264" else {32: "vps", 33: "sps", 34: "pps"}
        self.aus = []
        for nals, dts, pts in zip(groups, dts_raw, pts_raw):
            # An AUD must come first (ffmpeg's libx264 wrapper puts its SEI before it).
            nals.sort(key=lambda n: self.codec.nal_type(n) != (9 if self.codec.name == "H264" else 35))
            packets = []
            for nal in nals:
                self.params.setdefault(names.get(self.codec.nal_type(nal)), nal)
                if params == "sdp" and self.codec.nal_type(nal) in names:
                    continue  # parameter sets only in the SDP
                frags = fragment(self.codec, nal, mtu)
                for i, (payload, mid) in enumerate(frags):
                    packets.append((payload, self.codec.is_vcl(nal) and i == len(frags) - 1, mid))
            self.aus.append(AccessUnit(to90(dts), to90(pts), packets))
        self.params.pop(None, None)
        if "sps" not in self.params or "pps" not in self.params:
            sys.exit("badcam: no SPS/PPS found in the video stream")
        self.audio = None
        if want_audio:
            self.audio = self._load_audio(path, streams)
        # One loop's schedule: (send offset in seconds from the loop start, kind, index).
        sched = [(Fraction(au.dts, 90000), 0, i) for i, au in enumerate(self.aus)]
        if self.audio:
            sched += [(Fraction(t, self.audio["rate"]), 1, i) for i, (t, _) in enumerate(self.audio["frames"])]
        self.schedule = [(float(t), k, i) for t, k, i in sorted(sched)]
        self.loop_sec = self.duration / 90000

    def _load_audio(self, path, streams):
        a = next((s for s in streams if s["codec_type"] == "audio"), None)
        if a is None or a["codec_name"] != "aac":
            sys.exit("badcam: --audio needs an AAC audio track")
        adts = run(["ffmpeg", "-v", "error", "-i", path, "-map", "0:a:0", "-c", "copy", "-f", "adts", "-"])
        frames, i, cfg = [], 0, None
        while i + 7 <= len(adts):
            if adts[i] != 0xFF or adts[i + 1] & 0xF0 != 0xF0:
                sys.exit("badcam: bad ADTS stream")
            hlen = 7 if adts[i + 1] & 1 else 9
            flen = ((adts[i + 3] & 3) << 11) | (adts[i + 4] << 3) | (adts[i + 5] >> 5)
            if cfg is None:
                profile, sfi = adts[i + 2] >> 6, (adts[i + 2] >> 2) & 0xF
                chans = ((adts[i + 2] & 1) << 2) | (adts[i + 3] >> 6)
                cfg = ((profile + 1) << 11) | (sfi << 7) | (chans << 3)
                rates = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350]
                rate, nch = rates[sfi], chans
            frames.append(adts[i + hlen:i + flen])
            i += flen
        pkts = probe_packets(path, "a:0")
        if len(pkts) != len(frames):
            sys.exit(f"badcam: {len(frames)} ADTS frames but ffprobe lists {len(pkts)} audio packets")
        tb = Fraction(a["time_base"]) * rate
        origin = self.origin_sec * rate
        window = Fraction(self.duration, 90000) * rate
        out = []
        for p, f in zip(pkts, frames):
            t = round(int(p["pts"]) * tb - origin)  # audio clock units from the first video DTS
            if 0 <= t < window:
                out.append((t, f))
        return {"rate": rate, "channels": nch, "config": cfg, "frames": out}

    def sdp(self):
        inband = self.params_mode == "inband"  # parameter sets only in the stream
        if self.codec.name == "H264":
            sps, pps = self.params["sps"], self.params["pps"]
            fmtp = f"packetization-mode=1;profile-level-id={sps[1:4].hex()}"
            if not inband:
                fmtp += f";sprop-parameter-sets={b64(sps)},{b64(pps)}"
        else:
            fmtp = "" if inband else ";".join(
                f"sprop-{k}={b64(self.params[k])}" for k in ("vps", "sps", "pps") if k in self.params)
        lines = ["v=0", f"o=- {random.getrandbits(32)} 1 IN IP4 127.0.0.1", "s=badcam",
                 "c=IN IP4 0.0.0.0", "t=0 0", "a=control:*",
                 "m=video 0 RTP/AVP 96", f"a=rtpmap:96 {self.codec.name}/90000",
                 f"a=fmtp:96 {fmtp}", "a=control:trackID=0"]
        if self.audio:
            au = self.audio
            lines += ["m=audio 0 RTP/AVP 97", f"a=rtpmap:97 MPEG4-GENERIC/{au['rate']}/{au['channels']}",
                      "a=fmtp:97 streamtype=5;profile-level-id=15;mode=AAC-hbr;sizelength=13;"
                      f"indexlength=3;indexdeltalength=3;config={au['config']:04x}",
                      "a=control:trackID=1"]
        elif self.bad_audio_fmtp:
            # An audio track whose fmtp no decoder can use (garbage config); never sent.
            lines += ["m=audio 0 RTP/AVP 97", "a=rtpmap:97 MPEG4-GENERIC/16000/1",
                      "a=fmtp:97 streamtype=5;mode=AAC-hbr;config=zz;sizelength=13",
                      "a=control:trackID=1"]
        return ("\r\n".join(lines) + "\r\n").encode()

    def clock(self, track):
        return 90000 if track == 0 else self.audio["rate"]


def b64(b):
    return base64.b64encode(b).decode()


# ---------------------------------------------------------------- RTP session

class Session:
    """One client's PLAY timeline: sender thread, RTP/RTCP on TCP or UDP."""

    def __init__(self, conn, index):
        self.conn, self.media, self.args = conn, conn.media, conn.args
        self.id = f"{random.getrandbits(64):016X}"
        self.rng = random.Random(self.args.seed + index)
        self.transports = {}  # track -> ("tcp", rtp_channel, rtcp_channel) | ("udp", rtp_sock, rtcp_sock, rtp_addr, rtcp_addr)
        self.ssrc, self.seq, self.ts0, self.count, self.urls = {}, {}, {}, {}, {}
        self.stop = threading.Event()
        self.thread = None
        self.steps = [(at, -s) for at, s in self.args.step_back] + [(at, s) for at, s in self.args.jump_forward]

    def add_track(self, track, url, transport):
        self.transports[track], self.urls[track] = transport, url
        self.ssrc[track] = random.getrandbits(32)
        a = self.args
        self.seq[track] = a.initial_seq if a.initial_seq is not None else random.getrandbits(16)
        self.ts0[track] = a.initial_ts if a.initial_ts is not None else random.getrandbits(32)
        self.count[track] = [0, 0]  # packets, payload octets

    def rtp_ts(self, track, media_units, elapsed):
        """RTP timestamp for media time `media_units` (track clock, since PLAY) sent at `elapsed` s."""
        step = sum(s for at, s in self.steps if elapsed >= at)
        rate = self.media.clock(track)
        return (self.ts0[track] + round(self.args.clock_rate * media_units) + round(step * rate)) & 0xFFFFFFFF

    def play(self):
        self.t0 = time.monotonic()
        if not self.thread:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

    def close(self):
        self.stop.set()
        for tr in self.transports.values():
            if tr[0] == "udp":
                tr[1].close()
                tr[2].close()

    def _send(self, track, rtcp, pkt):
        tr = self.transports[track]
        if tr[0] == "tcp":
            self.conn.write(b"$" + bytes([tr[2] if rtcp else tr[1]]) + struct.pack(">H", len(pkt)) + pkt)
        else:
            (tr[2] if rtcp else tr[1]).sendto(pkt, tr[4] if rtcp else tr[3])

    def send_rtp(self, track, marker, ts, payload):
        seq = self.seq[track]
        self.seq[track] = (seq + 1) & 0xFFFF
        if self.args.drop_packets and self.rng.random() < self.args.drop_packets:
            return
        pt = 96 if track == 0 else 97
        if self.args.hostile == "fuzz-rtp" and self.rng.random() < 0.1:
            payload = self.rng.randbytes(max(1, len(payload)))
        hdr = struct.pack(">BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, self.ssrc[track])
        self._send(track, False, hdr + payload)
        self.count[track][0] += 1
        self.count[track][1] += len(payload)

    def send_reports(self, now):
        elapsed = now - self.t0
        wall = time.time() + NTP_EPOCH_OFFSET
        ntp = int(wall * (1 << 32))
        for track in self.transports:
            ts = self.rtp_ts(track, elapsed * self.media.clock(track), elapsed)
            sr = struct.pack(">BBHIIIIII", 0x80, 200, 6, self.ssrc[track], ntp >> 32, ntp & 0xFFFFFFFF,
                             ts, *self.count[track])
            cname = b"badcam@127.0.0.1"
            chunk = struct.pack(">IBB", self.ssrc[track], 1, len(cname)) + cname + b"\x00"
            chunk += b"\x00" * (-len(chunk) % 4)
            sdes = struct.pack(">BBH", 0x81, 202, len(chunk) // 4) + chunk
            self._send(track, True, sr + sdes)

    def _wait_until(self, due):
        """Sleeps until monotonic time `due`, sending RTCP on the way; False when the session ends."""
        while True:
            now = time.monotonic()
            if self.end is not None and now >= self.end:
                if self.args.verbose:
                    log(f"--end-after: closing the connection of session {self.id}")
                self.conn.shutdown()
                return False
            if now >= self.next_sr:
                self.send_reports(now)
                self.next_sr += SR_INTERVAL
                continue
            if now >= due:
                return True
            target = min(due, self.next_sr, self.end if self.end is not None else due)
            if self.stop.wait(max(0.0, target - now)):
                return False

    def _run(self):
        try:
            self._loop()
        except OSError as e:  # client went away
            if self.args.verbose:
                log(f"session {self.id}: {e}")
        self.stop.set()

    def _loop(self):
        a, m = self.args, self.media
        self.end = self.t0 + a.end_after if a.end_after else None
        if a.hostile in ("garbage-after-play", "huge-frames"):
            while not self.stop.is_set():
                if a.hostile == "garbage-after-play":
                    self.conn.write(self.rng.randbytes(4096))
                else:
                    self.conn.write(b"$\x00\xff\xff" + self.rng.randbytes(65535))
                time.sleep(0.02)
            return
        self.next_sr = float("inf") if a.stall_after_play else self.t0
        if a.stall_after_play:
            self._wait_until(float("inf"))
            return
        skip_to_mid_fu = a.start_mid_fu and 0 in self.transports
        k = 0
        while True:
            for off, kind, i in m.schedule:
                elapsed = k * m.loop_sec + off
                if not self._wait_until(self.t0 + elapsed):
                    return
                if kind not in self.transports:
                    continue
                if kind == 1:
                    t, frame = m.audio["frames"][i]
                    ts = self.rtp_ts(1, k * m.loop_sec * m.audio["rate"] + t, elapsed)
                    hdr = struct.pack(">HH", 16, len(frame) << 3)  # AU-headers-length, AU-header
                    self.send_rtp(1, True, ts, hdr + frame)
                    continue
                au = m.aus[i]
                ts = self.rtp_ts(0, k * m.duration + au.pts, elapsed)
                packets = au.packets
                if skip_to_mid_fu:
                    mids = [j for j, p in enumerate(packets) if p[2]]
                    if not mids:
                        continue
                    packets, skip_to_mid_fu = packets[mids[0]:], False
                for j, (payload, vcl_end, _) in enumerate(packets):
                    marker = j == len(packets) - 1 or (a.marker_every_slice and vcl_end)
                    self.send_rtp(0, marker, ts, payload)
            k += 1


# ---------------------------------------------------------------- RTSP

class Connection:
    counter = 0
    counter_lock = threading.Lock()

    def __init__(self, sock, addr, media, args):
        self.sock, self.addr, self.media, self.args = sock, addr, media, args
        self.wlock = threading.Lock()
        self.buf = b""
        self.session = None
        with Connection.counter_lock:
            self.index = Connection.counter
            Connection.counter += 1

    def write(self, data):
        with self.wlock:
            self.sock.sendall(data)

    def shutdown(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def read_request(self):
        """Next RTSP request (method, url, headers, body), skipping interleaved frames; None at EOF."""
        while True:
            self.buf = self.buf.lstrip(b"\r\n")
            if self.buf[:1] == b"$":
                if len(self.buf) >= 4:
                    n = 4 + struct.unpack(">H", self.buf[2:4])[0]
                    if len(self.buf) >= n:
                        self.buf = self.buf[n:]
                        continue
            else:
                i = self.buf.find(b"\r\n\r\n")
                if i >= 0:
                    lines = self.buf[:i].decode("latin-1").split("\r\n")
                    headers = {}
                    for line in lines[1:]:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                    n = i + 4 + int(headers.get("content-length", 0))
                    if len(self.buf) >= n:
                        body, self.buf = self.buf[i + 4:n], self.buf[n:]
                        parts = lines[0].split(" ")
                        return parts[0], (parts[1] if len(parts) > 1 else ""), headers, body
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data

    def respond(self, headers, code=200, reason="OK", extra=(), body=b""):
        lines = [f"RTSP/1.0 {code} {reason}", f"CSeq: {headers.get('cseq', '0')}", "Server: badcam"]
        if self.session and code == 200:
            lines.append(f"Session: {self.session.id};timeout={self.args.session_timeout}")
        lines += list(extra)
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def serve(self):
        try:
            if self.args.stall_before_describe:
                while self.sock.recv(65536):
                    pass
                return
            while True:
                req = self.read_request()
                if req is None:
                    return
                if self.args.verbose:
                    log(f"{self.addr[0]}:{self.addr[1]} {req[0]} {req[1]}")
                self.handle(*req)
        except OSError as e:
            if self.args.verbose:
                log(f"{self.addr[0]}:{self.addr[1]}: {e}")
        finally:
            if self.session:
                self.session.close()
            self.shutdown()
            self.sock.close()

    def hostile_answer(self, method, headers):
        """The hostile answers that replace the protocol; True if one was sent."""
        mode, rng = self.args.hostile, random.Random(self.args.seed)
        if mode == "endless-headers":
            self.write(b"RTSP/1.0 200 OK\r\nCSeq: " + headers.get("cseq", "0").encode() + b"\r\n")
            for i in itertools.count():
                self.write(f"X-Junk-{i}: {'x' * 60}\r\n".encode())
                time.sleep(0.01)
        if method != "DESCRIBE":
            return False
        if mode == "bad-sdp":
            self.respond(headers, extra=["Content-Type: application/sdp"],
                         body=rng.randbytes(2000))
            return True
        if mode == "huge-content-length":
            self.write(("RTSP/1.0 200 OK\r\nCSeq: " + headers.get("cseq", "0") +
                        "\r\nContent-Type: application/sdp\r\nContent-Length: 4000000000\r\n\r\n").encode())
            while True:
                self.write(rng.randbytes(1024))
                time.sleep(0.01)
        return False

    def handle(self, method, url, headers, body):
        if self.args.hostile and self.hostile_answer(method, headers):
            return
        base = url if url.endswith("/") else url + "/"
        if method == "OPTIONS":
            self.respond(headers, extra=["Public: OPTIONS, DESCRIBE, SETUP, PLAY, "
                                         "GET_PARAMETER, SET_PARAMETER, TEARDOWN"])
        elif method == "DESCRIBE":
            self.respond(headers, extra=["Content-Type: application/sdp", f"Content-Base: {base}"],
                         body=self.media.sdp())
        elif method == "SETUP":
            self.setup(url, headers)
        elif method == "PLAY":
            if not self.session or not self.session.transports:
                return self.respond(headers, 455, "Method Not Valid in This State")
            s = self.session
            if s.thread:  # already playing
                return self.respond(headers, extra=["Range: npt=0.000-"])
            info = ",".join(f"url={s.urls[t]};seq={s.seq[t]};rtptime={s.rtp_ts(t, 0, 0)}"
                            for t in sorted(s.transports))
            self.respond(headers, extra=["Range: npt=0.000-", f"RTP-Info: {info}"])
            s.play()
        elif method in ("GET_PARAMETER", "SET_PARAMETER"):
            if self.args.keepalive_error:
                self.respond(headers, 451, "Parameter Not Understood")
            else:
                self.respond(headers)
        elif method == "TEARDOWN":
            self.respond(headers)
            if self.session:
                self.session.close()
                self.session = None
        else:
            self.respond(headers, 501, "Not Implemented")

    def setup(self, url, headers):
        track = 0
        if "trackID=" in url:
            try:
                track = int(url.rsplit("trackID=", 1)[1].split("/")[0])
            except ValueError:
                track = -1
        if track not in (0, 1) or (track == 1 and not self.media.audio):
            return self.respond(headers, 404, "Not Found")
        if self.session and self.session.thread:
            return self.respond(headers, 455, "Method Not Valid in This State")
        if not self.session:
            self.session = Session(self, self.index)
        for spec in headers.get("transport", "").split(","):
            params = [p.strip() for p in spec.split(";")]
            kv = dict(p.split("=", 1) for p in params if "=" in p)
            if params[0].upper() == "RTP/AVP/TCP":
                ch = kv.get("interleaved", f"{2 * track}-{2 * track + 1}")
                lo = int(ch.split("-")[0])
                self.session.add_track(track, url, ("tcp", lo, lo + 1))
                reply = f"RTP/AVP/TCP;unicast;interleaved={lo}-{lo + 1}"
                break
            if params[0].upper() in ("RTP/AVP", "RTP/AVP/UDP") and "client_port" in kv \
                    and "multicast" not in params:
                cp = [int(p) for p in kv["client_port"].split("-")]
                rtp, rtcp = udp_pair()
                self.session.add_track(track, url, ("udp", rtp, rtcp, (self.addr[0], cp[0]),
                                               (self.addr[0], cp[-1] if len(cp) > 1 else cp[0] + 1)))
                sp = rtp.getsockname()[1]
                reply = (f"RTP/AVP;unicast;client_port={cp[0]}-{cp[-1] if len(cp) > 1 else cp[0] + 1};"
                         f"server_port={sp}-{rtcp.getsockname()[1]}")
                break
        else:
            return self.respond(headers, 461, "Unsupported Transport")
        self.respond(headers, extra=[f"Transport: {reply};ssrc={self.session.ssrc[track]:08X}"])


def udp_pair():
    """Two UDP sockets on 127.0.0.1 on consecutive ports, the first even (clients such as
    retina require server_port=n-(n+1))."""
    for _ in range(200):
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if a.getsockname()[1] % 2 == 0:
                b.bind(("127.0.0.1", a.getsockname()[1] + 1))
                return a, b
        except OSError:
            pass
        a.close()
        b.close()
    raise OSError("no free pair of UDP ports")


# ---------------------------------------------------------------- main

def at_seconds(s):
    at, _, sec = s.partition(":")
    return float(at), float(sec)


def main():
    p = argparse.ArgumentParser(description="RTSP camera with faults (see the module docstring)")
    p.add_argument("--media", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--audio", action="store_true")
    p.add_argument("--mtu", type=int, default=1400)
    p.add_argument("--max-seconds", type=float, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--initial-seq", type=lambda v: int(v) & 0xFFFF)
    p.add_argument("--initial-ts", type=lambda v: int(v) & 0xFFFFFFFF)
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--clock-rate", type=float, default=1.0)
    p.add_argument("--step-back", type=at_seconds, action="append", default=[])
    p.add_argument("--jump-forward", type=at_seconds, action="append", default=[])
    p.add_argument("--marker-every-slice", action="store_true")
    p.add_argument("--drop-packets", type=float, default=0.0)
    p.add_argument("--start-mid-fu", action="store_true")
    p.add_argument("--stall-before-describe", action="store_true")
    p.add_argument("--stall-after-play", action="store_true")
    p.add_argument("--end-after", type=float)
    p.add_argument("--params", choices=["both", "sdp", "inband"], default="both")
    p.add_argument("--keepalive-error", action="store_true")
    p.add_argument("--session-timeout", type=int, default=SESSION_TIMEOUT)
    p.add_argument("--bad-audio-fmtp", action="store_true")
    p.add_argument("--hostile", choices=["garbage-after-play", "huge-frames", "fuzz-rtp",
                                         "bad-sdp", "huge-content-length", "endless-headers"])
    args = p.parse_args()
    if args.mtu < 100:
        p.error("--mtu must be at least 100")

    def watch_stdin():  # exit when whoever started us closes our stdin (or dies)
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    timer = threading.Timer(args.max_seconds, os._exit, (0,))
    timer.daemon = True
    timer.start()

    media = Media(args.media, args.mtu, args.audio, args.params, args.bad_audio_fmtp)
    if args.verbose:
        log(f"{args.media}: {media.codec.name}, {len(media.aus)} access units, "
            f"{media.loop_sec:.3f} s loop" + (", AAC audio" if media.audio else ""))
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(16)
    print(f"PORT {srv.getsockname()[1]}", flush=True)
    while True:
        sock, addr = srv.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if args.verbose:
            log(f"connection from {addr[0]}:{addr[1]}")
        threading.Thread(target=Connection(sock, addr, media, args).serve, daemon=True).start()


if __name__ == "__main__":
    main()

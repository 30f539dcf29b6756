#!/usr/bin/env python3
# Diagnostic: a minimal RTSP client that prints the raw RTP header of the first
# packets of every track (seq, timestamp, marker, first NAL type), to see what a
# server really sends before any demuxer reorders or rebases it.
#
#   rtp_dump.py rtsp://127.0.0.1:PORT/path [--udp] [-n 40]
#
# Prints one line per packet: track, seq, RTP timestamp, delta from the track's
# first timestamp in seconds (clock rate from the SDP), marker, NAL type.
import argparse, re, socket, struct, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--udp", action="store_true")
    ap.add_argument("-n", type=int, default=40, help="packets to print")
    ap.add_argument("--play-delay", type=float, default=0, help="seconds between SETUP and PLAY")
    a = ap.parse_args()
    host, port = re.match(r"rtsp://([^:/]+):(\d+)", a.url).groups()
    s = socket.create_connection((host, int(port)), timeout=10)
    f = s.makefile("rb")
    cseq = [0]
    session = [None]

    def req(method, url, extra=""):
        cseq[0] += 1
        msg = f"{method} {url} RTSP/1.0\r\nCSeq: {cseq[0]}\r\n{extra}"
        if session[0]:
            msg += f"Session: {session[0]}\r\n"
        s.sendall((msg + "\r\n").encode())
        status = f.readline().decode().strip()
        hdr = {}
        while True:
            line = f.readline().decode().strip()
            if not line:
                break
            k, v = line.split(":", 1)
            hdr[k.strip().lower()] = v.strip()
        body = f.read(int(hdr.get("content-length", 0))).decode()
        print(f"# {method} -> {status} {hdr.get('transport', '')} {hdr.get('rtp-info', '')}")
        return hdr, body

    _, sdp = req("DESCRIBE", a.url, "Accept: application/sdp\r\n")
    base = a.url.rstrip("/")
    tracks = []  # (control url, encoding, clock rate)
    for m in sdp.split("\nm=")[1:]:
        rtpmap = re.search(r"a=rtpmap:\d+ ([^/\s]+)/(\d+)", m)
        ctl = re.search(r"a=control:(\S+)", m).group(1)
        url = ctl if ctl.startswith("rtsp://") else base + "/" + ctl
        tracks.append((url, rtpmap.group(1), int(rtpmap.group(2))))
    socks = {}
    for i, (url, enc, rate) in enumerate(tracks):
        if a.udp:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind((host, 0))
            p = u.getsockname()[1]
            c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            c.bind((host, p + 1))  # RTCP; good enough for a diagnostic
            socks[u] = i
            tr = f"RTP/AVP;unicast;client_port={p}-{p + 1}"
        else:
            tr = f"RTP/AVP/TCP;unicast;interleaved={2 * i}-{2 * i + 1}"
        hdr, _ = req("SETUP", url, f"Transport: {tr}\r\n")
        session[0] = hdr.get("session", "").split(";")[0]
    time.sleep(a.play_delay)
    req("PLAY", a.url, "Range: npt=0.000-\r\n")
    first = {}
    t0 = time.monotonic()
    for _ in range(a.n):
        if a.udp:
            import select
            r, _, _ = select.select(list(socks), [], [], 10)
            if not r:
                break
            pkt = r[0].recv(65536)
            track = socks[r[0]]
        else:
            while True:  # skip RTCP and any interleaved RTSP replies
                b = f.read(1)
                if b != b"$":
                    continue
                ch, ln = struct.unpack(">BH", f.read(3))
                pkt = f.read(ln)
                if ch % 2 == 0:
                    break
            track = ch // 2
        b1, seq, ts = pkt[1], *struct.unpack(">HI", pkt[2:8])
        first.setdefault(track, ts)
        rate = tracks[track][2]
        d = ((ts - first[track] + 2**31) % 2**32 - 2**31) / rate
        nal = ""
        if tracks[track][1].upper() == "H264":
            nal = f"nal={pkt[12] & 31}" + (f"/{pkt[13] & 31}" if pkt[12] & 31 == 28 else "")
        elif tracks[track][1].upper() == "H265":
            t = (pkt[12] >> 1) & 63
            nal = f"nal={t}" + (f"/{pkt[14] & 63}" if t == 49 else "")
        print(f"track={track} seq={seq} ts={ts} dt={d:+.4f}s m={b1 >> 7} {nal} "
              f"arrival={time.monotonic() - t0:.3f}s")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
# GStreamer's own RTSP server (gst-rtsp-server via PyGObject) serving an MP4 file
# in a loop, as a third-party camera for Vigil's conformance tests.
#
#   gst_file_server.py MEDIA.mp4 [--codec h264|h265] [--audio | --pcmu] [--max-seconds N]
#
# --audio serves the file's AAC track too; --pcmu adds a G.711 mu-law track instead (a
# 440 Hz tone from audiotestsrc: MP4 has no G.711, so no file carries it).
#
# Prints `URL rtsp://127.0.0.1:<port>/stream` once listening, then serves until its
# stdin reaches EOF or --max-seconds pass. Every client gets its own pipeline (the
# factory is not shared), the plain launch line `filesrc ! qtdemux ! parse ! pay`.
#
# Why /usr/bin/python3: the Debian packages python3-gi and gir1.2-gst-rtsp-server-1.0
# install into the system Python only (a pyenv python3 on PATH has no `gi`).
#
# Looping: the launch line alone plays the file once and ends with EOS. We keep the
# qtdemux ! parse ! pay path and loop inside the pipeline: a probe on each qtdemux
# source pad drops EOS; once every linked pad reached it, we send qtdemux a flushing
# seek back to 0, drop that seek's flush events (so nothing downstream is flushed and
# the running time, hence the RTP timestamps, never restart), and move the pads'
# running time on by the length just played (gst_pad_set_offset). Payloaders derive
# RTP timestamps from running time, so they keep increasing across loops; the
# parsers re-insert SPS/PPS(/VPS) before each IDR (config-interval=-1).
import argparse, os, threading

import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer

T = Gst.PadProbeType


class Looper:
    """Loops one media's qtdemux; see the header comment."""

    def __init__(self, demux):
        self.demux, self.lock = demux, threading.Lock()
        self.pads = {}            # pad -> [saw_eos, end of this loop, segment start]
        self.offset = 0           # running time added to the demux pads, ns
        self.seqnum = None        # seqnum of our own seek (its flushes are dropped)
        demux.connect("pad-added", self.pad_added)

    def pad_added(self, _demux, pad):
        with self.lock:
            self.pads[pad] = [False, 0, 0]
        pad.add_probe(T.BUFFER | T.EVENT_DOWNSTREAM | T.EVENT_FLUSH, self.probe)

    def probe(self, pad, info):
        if info.type & T.BUFFER:
            b = info.get_buffer()
            if b.pts != Gst.CLOCK_TIME_NONE:
                end = b.pts + (b.duration if b.duration != Gst.CLOCK_TIME_NONE else 0)
                with self.lock:
                    s = self.pads[pad]
                    s[1] = max(s[1], end - s[2])
            return Gst.PadProbeReturn.OK
        ev = info.get_event()
        if ev.type == Gst.EventType.SEGMENT:
            # An MP4 with B-frames has an edit list: qtdemux's PTS then start at
            # e.g. 0.133 s with a segment starting there, so measure from the start.
            with self.lock:
                self.pads[pad][2] = ev.parse_segment().start
            return Gst.PadProbeReturn.OK
        if ev.type in (Gst.EventType.FLUSH_START, Gst.EventType.FLUSH_STOP):
            if ev.get_seqnum() == self.seqnum:
                return Gst.PadProbeReturn.DROP    # our loop seek: flush nothing
            if ev.type == Gst.EventType.FLUSH_STOP:  # a client's seek (PLAY Range):
                with self.lock:                      # running time restarts at 0
                    self.offset = 0
                    self.pads[pad] = [False, 0, 0]
                pad.set_offset(0)
            return Gst.PadProbeReturn.OK
        if ev.type == Gst.EventType.EOS:
            with self.lock:
                self.pads[pad][0] = True
                done = all(s[0] for p, s in self.pads.items() if p.is_linked())
            if done:  # seek from another thread, not from qtdemux's streaming thread
                GLib.idle_add(self.restart)
            return Gst.PadProbeReturn.DROP
        return Gst.PadProbeReturn.OK

    def restart(self):
        with self.lock:
            # The largest pts+duration (from the segment start) on any pad is the
            # running time the loop just played took.
            self.offset += max(s[1] for s in self.pads.values())
            for p, s in self.pads.items():
                p.set_offset(self.offset)
                s[0], s[1] = False, 0
        seek = Gst.Event.new_seek(1.0, Gst.Format.TIME,
                                  Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT,
                                  Gst.SeekType.SET, 0, Gst.SeekType.NONE, -1)
        self.seqnum = seek.get_seqnum()
        self.demux.send_event(seek)
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("media")
    ap.add_argument("--codec", choices=["h264", "h265"], default="h264")
    ap.add_argument("--audio", action="store_true", help="also serve the AAC track")
    ap.add_argument("--pcmu", action="store_true", help="also serve a G.711 mu-law tone")
    ap.add_argument("--max-seconds", type=float, default=600)
    ap.add_argument("--path", default="stream")
    a = ap.parse_args()
    with open(a.media, "rb"):  # fail now, not when the first client connects
        pass
    Gst.init(None)

    loc = os.path.abspath(a.media).replace("\\", "\\\\").replace('"', '\\"')
    # With two tracks each branch needs a queue: qtdemux pushes both from one
    # streaming thread, and the media prerolls only when every stream has data, so
    # without queues the video branch blocks before audio ever flows (DESCRIBE then
    # times out with 503). One track needs no queue: the plain launch line.
    q = "queue ! " if a.audio or a.pcmu else ""
    launch = (f'( filesrc location="{loc}" ! qtdemux name=demux '
              f'demux.video_0 ! {q}{a.codec}parse config-interval=-1 ! '
              f'rtp{a.codec}pay name=pay0 pt=96 config-interval=-1 ')
    if a.audio:
        launch += f"demux.audio_0 ! {q}aacparse ! rtpmp4gpay name=pay1 pt=97 "
    elif a.pcmu:
        launch += ("audiotestsrc is-live=true ! audio/x-raw,rate=8000,channels=1 ! "
                   "mulawenc ! rtppcmupay name=pay1 pt=0 ")
    launch += ")"

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(False)  # one pipeline per client, as a camera does
    loopers = []               # keep the Python wrappers alive
    factory.connect("media-configure", lambda _f, media: loopers.append(
        Looper(media.get_element().get_by_name("demux"))))

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service("0")    # the kernel picks a free port: no race between tests
    server.get_mount_points().add_factory("/" + a.path, factory)
    server.attach(None)        # listening from here on
    print(f"URL rtsp://127.0.0.1:{server.get_bound_port()}/{a.path}", flush=True)

    loop = GLib.MainLoop()

    def on_stdin(fd, _cond):   # EOF (or error) on stdin: the test is gone
        try:
            return bool(os.read(fd, 4096)) or loop.quit()
        except OSError:
            return loop.quit()

    GLib.io_add_watch(0, GLib.IO_IN | GLib.IO_HUP | GLib.IO_ERR, on_stdin)
    GLib.timeout_add(int(a.max_seconds * 1000), loop.quit)
    loop.run()
    os._exit(0)  # skip GStreamer teardown of running pipelines: just go


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# VLC's RTSP server (cvlc with an rtp{sdp=rtsp://...} stream output, no transcoding)
# as a third-party camera for Vigil's conformance tests.
#
#   vlc_server.sh MEDIA.mp4 [--max-seconds N]
#
# Prints `URL rtsp://127.0.0.1:<port>/stream` once VLC's RTSP server describes the
# stream, then serves until stdin reaches EOF or --max-seconds (default 600) pass.
# Clients must use RTP over UDP: VLC answers a TCP-interleaved SETUP with
# `461 Unsupported transport`. VLC streams whether or not anyone watches (one shared
# broadcast, like a camera), so a client joins mid-GOP and waits for a keyframe.
#
# Odd choices:
# - VLC refuses to run as root: as root we drop to nobody (setpriv), with HOME in a
#   private temp dir, and the media copied into that world-readable dir.
# - --pdeathsig KILL: VLC dies with this script even if the script is SIGKILLed.
# - Looping: VLC's --loop starts a new input for each pass. Plain, the RTP stream
#   output makes new tracks then and every client's track goes dead at the first
#   loop; with `gather` (kept here) the track survives but the RTP timestamps step
#   back by about --file-caching (VLC 3 default 1000 ms) at each loop. So the file is
#   first repeated losslessly (ffmpeg -stream_loop -c copy, continuous timestamps)
#   to outlast --max-seconds; --loop only matters past that.
set -euo pipefail
media=${1:?usage: vlc_server.sh MEDIA.mp4 [--max-seconds N]}
shift
max=600
while [ $# -gt 0 ]; do
  case $1 in
    --max-seconds) max=$2; shift 2 ;;
    *) echo "vlc_server.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -r "$media" ] || { echo "vlc_server.sh: cannot read $media" >&2; exit 1; }

exec 3<&0 </dev/null          # keep the test's stdin on fd 3; nothing else reads it
dir=$(mktemp -d /tmp/vigil-vlc.XXXXXX)
vlc=
cleanup() { [ -z "$vlc" ] || { kill -KILL "$vlc"; wait "$vlc"; } 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
chmod 755 "$dir"
[ "$(id -u)" != 0 ] || chown nobody:nogroup "$dir"  # VLC writes its config in HOME

dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$media")
loops=$(awk -v m="$max" -v d="$dur" 'BEGIN { n = int((m + 30) / d); print (n > 0 ? n : 0) }')
ffmpeg -v error -nostdin -stream_loop "$loops" -i "$media" -map 0 -c copy "$dir/media.mp4"
chmod 644 "$dir/media.mp4"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="rtsp://127.0.0.1:$port/stream"
run=(setpriv --pdeathsig KILL)
[ "$(id -u)" != 0 ] || run=(setpriv --reuid=nobody --regid=nogroup --clear-groups --pdeathsig KILL)
HOME=$dir "${run[@]}" vlc -I dummy --no-interact -q --loop --sout-keep \
  --sout "#gather:rtp{sdp=$url}" "$dir/media.mp4" >&2 &
vlc=$!

# Ready when DESCRIBE returns an SDP with a media line (the RTSP server answers
# before the input has created its tracks).
python3 - "$url" "$vlc" <<'EOF' || exit 1
import os, socket, sys, time
url, pid = sys.argv[1], int(sys.argv[2])
port = int(url.split(":")[2].split("/")[0])
for _ in range(200):
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("vlc_server.sh: VLC exited")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
            reply = b""
            while b"\nm=" not in reply:  # times out (OSError) if no media line
                data = s.recv(65536)
                if not data:
                    break
                reply += data
            if b"\nm=" in reply:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit("vlc_server.sh: VLC's RTSP server did not come up")
EOF
echo "URL $url"

# Serve until stdin EOF, --max-seconds, or VLC's death; the EXIT trap kills VLC.
timeout "$max" cat <&3 >/dev/null &
wait -n "$!" "$vlc" || true

#!/usr/bin/env bash
# A camera that pushes: rtsp-server-perl (Debian package rtsp-server-perl, RTSP::Server
# 0.06) relays what ffmpeg publishes to it (ANNOUNCE/RECORD, the file looped with
# -stream_loop -1, no transcoding) to readers, for Vigil's conformance tests.
#
#   perl_push.sh MEDIA.mp4 [--max-seconds N]
#
# Prints the readers' `URL rtsp://127.0.0.1:<port>/stream` once the publisher has
# mounted the stream, then serves until stdin reaches EOF or --max-seconds (default
# 600) pass. Readers must use RTP over UDP: the server's SETUP needs a client_port
# pair and answers a TCP-interleaved SETUP with 400. It relays packets as they come
# (one shared broadcast, like a camera): a reader joins mid-GOP. Its PLAY reply has
# no RTP-Info (no rtptime/seq), and DESCRIBE returns the publisher's SDP verbatim.
#
# Odd choices:
# - Ports: --clientport (readers) and --serverport (publisher) from the kernel, and
#   the base of the UDP ports the server hands out 2 by 2 (each published track, then
#   each reader's track; not reused while the stream is mounted) set to a free block
#   of 400: its default 20000 collides between parallel tests (a failed bind of a
#   publisher port fails RECORD). --rtp_start_port is not enough: whenever a
#   connection closes with nothing mounted the server resets the base to the package
#   variable $RTSP::Server::RTP_START_PORT, so we set that and then run the stock
#   /usr/bin/rtsp-server-perl script.
# - Binds: --client_listen_address/--source_listen_address 127.0.0.1 (default 0.0.0.0).
# - It needs no privilege, so as root it runs as nobody (setpriv); --pdeathsig KILL
#   takes the server and ffmpeg down with this script even if it is SIGKILLed.
set -euo pipefail
media=${1:?usage: perl_push.sh MEDIA.mp4 [--max-seconds N]}
shift
max=600
while [ $# -gt 0 ]; do
  case $1 in
    --max-seconds) max=$2; shift 2 ;;
    *) echo "perl_push.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -r "$media" ] || { echo "perl_push.sh: cannot read $media" >&2; exit 1; }

exec 3<&0 </dev/null          # keep the test's stdin on fd 3; nothing else reads it
pids=()
cleanup() { for p in "${pids[@]}"; do { kill -KILL "$p"; wait "$p"; } 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# Two free TCP ports, and an even base with 400 free UDP ports above it, below
# Linux's ephemeral range (32768-60999) so that other sockets do not take them later.
read -r cport sport rtp < <(python3 - <<'EOF'
import random, socket
def tcp():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); return s, s.getsockname()[1]
(a, cport), (b, sport) = tcp(), tcp()
while True:
    base = random.randrange(20000, 32768 - 400, 2)
    try:
        held = []
        for p in range(base, base + 400):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held.append(u); u.bind(("127.0.0.1", p))
        break
    except OSError:
        pass
    finally:
        for u in held: u.close()
print(cport, sport, base)
EOF
)
drop=(setpriv --pdeathsig KILL)
[ "$(id -u)" != 0 ] || drop=(setpriv --reuid=nobody --regid=nogroup --clear-groups --pdeathsig KILL)
"${drop[@]}" perl -MRTSP::Server -e '$RTSP::Server::RTP_START_PORT = shift;
  do "/usr/bin/rtsp-server-perl"; die $@ if $@' "$rtp" \
  --clientport "$cport" --serverport "$sport" --rtp_start_port "$rtp" \
  --client_listen_address 127.0.0.1 --source_listen_address 127.0.0.1 >&2 &
pids+=($!)

url="rtsp://127.0.0.1:$cport/stream"
# Publish once the server listens; ready once readers can DESCRIBE the mount.
python3 - "$cport" "$sport" <<'EOF' || exit 1
import socket, sys, time
def up(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False
for _ in range(100):
    if all(up(int(p)) for p in sys.argv[1:]):
        sys.exit(0)
    time.sleep(0.1)
sys.exit("perl_push.sh: rtsp-server-perl did not come up")
EOF
setpriv --pdeathsig KILL ffmpeg -nostdin -loglevel warning -re -stream_loop -1 -i "$media" \
  -map 0 -c copy -f rtsp -rtsp_transport udp "rtsp://127.0.0.1:$sport/stream" >&2 &
pids+=($!)
python3 - "$cport" "$url" <<'EOF' || exit 1
import socket, sys, time
cport, url = int(sys.argv[1]), sys.argv[2]
for _ in range(100):
    try:
        with socket.create_connection(("127.0.0.1", cport), timeout=2) as s:
            s.sendall(f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
            if s.recv(65536).startswith(b"RTSP/1.0 200"):
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit("perl_push.sh: the publisher did not mount the stream")
EOF
echo "URL $url"

# Serve until stdin EOF, --max-seconds, or the death of the server or the publisher.
timeout "$max" cat <&3 >/dev/null &
wait -n "$!" "${pids[@]}" || true

#!/usr/bin/env bash
# The reference-pipeline benchmark (issue 8): builds in release mode, starts a fast HEC responder,
# siemrelay on bench/reference.yaml and the load generator (100 events per request, 16
# connections), and prints events/s delivered, siemrelay's CPU-seconds per million delivered
# events and its peak RSS, plus the tools' own CPU use (to show they are not the bottleneck).
#
#   bench/run.sh [--seconds 20] [--queue memory|disk] [--delay-ms 0]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=20 queue=memory delay=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --queue) queue=$2; shift 2 ;;
    --delay-ms) delay=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cargo build --release -q -p siemrelay-pipelines -p siemrelay-bench
bin=$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)
work=$(mktemp -d)
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
hec_port=$(free_port) webhook_port=$(free_port)
cleanup() { kill "${relay:-}" "${responder:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

"$bin/hec_responder" --listen "127.0.0.1:$hec_port" --delay-ms "$delay" & responder=$!
(cd "$work" && BENCH_QUEUE=$queue BENCH_WEBHOOK_PORT=$webhook_port BENCH_HEC_PORT=$hec_port \
  RUST_LOG=warn exec "$bin/siemrelay" run --config "$OLDPWD/bench/reference.yaml") & relay=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$webhook_port/" && break
  sleep 0.1
done

count() { curl -s "http://127.0.0.1:$hec_port/count" | sed 's/.*"events":\([0-9]*\).*/\1/'; }
start_events=$(count)
start_relay=$(cpu_ticks "$relay")
start_responder=$(cpu_ticks "$responder")
start_time=$(date +%s.%N)
"$bin/loadgen" --url "http://127.0.0.1:$webhook_port/v1/events" --connections 16 --events 100 --seconds "$seconds" > "$work/loadgen.json" &
loadgen=$!
loadgen_ticks=0
while kill -0 "$loadgen" 2>/dev/null; do
  loadgen_ticks=$(cpu_ticks "$loadgen" 2>/dev/null || echo "$loadgen_ticks")
  sleep 0.5
done
wait "$loadgen"
sleep 1   # let the last batches drain
end_time=$(date +%s.%N)
end_events=$(count)
end_relay=$(cpu_ticks "$relay")
end_responder=$(cpu_ticks "$responder")
peak_rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$relay/status")

python3 - "$start_events" "$end_events" "$start_relay" "$end_relay" "$start_responder" "$end_responder" \
  "$loadgen_ticks" "$hz" "$start_time" "$end_time" "$peak_rss_kib" "$queue" "$delay" "$work/loadgen.json" <<'PY'
import json, sys
(se, ee, sr, er, sp, ep, lt, hz, st, et, rss, queue, delay, lg) = sys.argv[1:]
delivered = int(ee) - int(se)
secs = float(et) - float(st)
relay_cpu = (int(er) - int(sr)) / int(hz)
loadgen = json.load(open(lg))
print(f"queue={queue} delay_ms={delay} duration={secs:.1f}s")
print(f"events accepted by the webhook : {loadgen['events_accepted']} ({loadgen['requests_refused']} requests refused)")
print(f"events delivered to HEC        : {delivered}  ({delivered / secs:,.0f} events/s)")
print(f"siemrelay CPU                  : {relay_cpu:.1f} s  ({relay_cpu / max(delivered, 1) * 1e6:.2f} CPU-s per million events)")
print(f"siemrelay peak RSS             : {int(rss) / 1024:.1f} MiB")
print(f"load generator CPU             : {int(lt) / int(hz):.1f} s   responder CPU: {(int(ep) - int(sp)) / int(hz):.1f} s")
PY

#!/usr/bin/env bash
# Instructions per delivered event on the reference pipeline, counted by valgrind's callgrind:
# unlike CPU-seconds, the count does not depend on what else the machine is doing, so two
# builds can be compared on a noisy machine. Builds in release mode, runs siemrelay under
# callgrind on bench/reference.yaml with the fast responder and 4 load connections for the
# given seconds (siemrelay runs ~50x slower under valgrind), and prints the count.
#
#   bench/callgrind.sh [--seconds 15] [--binary path/to/siemrelay]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=15 binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
command -v valgrind > /dev/null || { echo "valgrind is needed (Debian package valgrind)" >&2; exit 1; }
cargo build --release -q -p siemrelay-pipelines -p siemrelay-bench
bin=$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)
binary=${binary:-$bin/siemrelay}
work=$(mktemp -d)
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
hec_port=$(free_port) webhook_port=$(free_port)
cleanup() { kill "${responder:-}" 2>/dev/null || true; [ -n "${KEEP_CALLGRIND:-}" ] && cp "$work/callgrind.out" "$KEEP_CALLGRIND"; rm -rf "$work"; }
trap cleanup EXIT

"$bin/hec_responder" --listen "127.0.0.1:$hec_port" --delay-ms 0 > /dev/null 2>&1 & responder=$!
(cd "$work" && BENCH_QUEUE=memory BENCH_WEBHOOK_PORT=$webhook_port BENCH_HEC_PORT=$hec_port RUST_LOG=warn \
  exec valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" "$binary" run \
  --config "$OLDPWD/bench/reference.yaml" > "$work/relay.log" 2>&1) & relay=$!
for _ in $(seq 300); do
  curl -s -o /dev/null "http://127.0.0.1:$webhook_port/" && break
  sleep 0.2
done
"$bin/loadgen" --url "http://127.0.0.1:$webhook_port/v1/events" --connections 4 --events 100 \
  --seconds "$seconds" > "$work/loadgen.json"
sleep 3   # let the last batches drain
delivered=$(curl -s "http://127.0.0.1:$hec_port/count" | sed 's/.*"events":\([0-9]*\).*/\1/')
pkill -TERM -f "callgrind-out-file=$work/callgrind.out" || true
wait "$relay" || true
instructions=$(awk '/^(summary|totals):/ {print $2; exit}' "$work/callgrind.out")
# valgrind hides the CPU's SHA extensions, so HMAC-SHA256 runs the portable code there (about
# 45,000 instructions per event, ~7% of the time on real hardware): shown apart.
sha=$(callgrind_annotate --inclusive=no --auto=no "$work/callgrind.out" 2>/dev/null \
  | awk '/compress256/ {gsub(",", "", $1); sum += $1} END {printf "%.0f\n", sum}')
python3 -c "
d, i, s = max(int('$delivered'), 1), int('$instructions'), int('$sha')
print(f'events delivered under callgrind : {d}')
print(f'instructions (whole process)     : {i:,}')
print(f'instructions per delivered event : {i / d:,.0f}  (SHA-256 compression {s / d:,.0f}, the rest {(i - s) / d:,.0f})')"

#!/usr/bin/env bash
# The reference-pipeline benchmark (issues 8 and 24): builds in release mode, starts a fast HEC
# responder, siemrelay on bench/reference.yaml and the load generator (100 events per request,
# 16 connections), and prints events/s delivered, siemrelay's CPU-seconds per million delivered
# events, its peak RSS beside the allocator's own figures (scraped from /metrics before siemrelay
# stops), plus the tools' own CPU use (to show they are not the bottleneck).
#
# While the load runs it prints siemrelay's RSS every --rss-every seconds (elapsed, RSS, events
# delivered so far) and at the end says whether RSS stayed flat: the highest RSS of the second
# half of the samples is at most --flat-tolerance percent above the highest of the first half
# (judged from 4 samples on; a 10-minute soak is `--seconds 600`). --runs N repeats the whole run
# N times, each with a fresh siemrelay and responder, and ends with one summary line per run.
# Exits 1 when a judged run's RSS was not flat.
#
#   bench/run.sh [--seconds 20] [--queue memory|disk] [--delay-ms 0] [--runs 1]
#                [--rss-every 10] [--flat-tolerance 10] [--no-metrics] [--profile release|debug]
#
# The admin listener (metrics recorder on, as a monitored deployment runs) is added to a copy of
# bench/reference.yaml; --no-metrics leaves it out (no recorder, no allocator figures), to see
# what the metrics cost. --profile debug runs debug builds: only to try the script itself, its
# figures mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=20 queue=memory delay=0 runs=1 every=10 tolerance=10 profile=release metrics=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --queue) queue=$2; shift 2 ;;
    --delay-ms) delay=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --rss-every) every=$2; shift 2 ;;
    --flat-tolerance) tolerance=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --no-metrics) metrics=no; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
for pair in "seconds=$seconds" "delay-ms=$delay" "runs=$runs" "rss-every=$every" "flat-tolerance=$tolerance"; do
  [[ ${pair#*=} =~ ^[0-9]+$ ]] || { echo "--${pair%%=*} takes a whole number, not '${pair#*=}'" >&2; exit 2; }
done
[ "$runs" -ge 1 ] && [ "$every" -ge 1 ] || { echo "--runs and --rss-every must be at least 1" >&2; exit 2; }
case "$profile" in
  release) ;;
  debug)
    echo "profile debug: trying the script; these figures are not a benchmark" >&2
    cargo build -q -p siemrelay-pipelines -p siemrelay-bench ;;
  *) echo "--profile is release or debug, not '$profile'" >&2; exit 2 ;;
esac
bin=$(cd "${CARGO_TARGET_DIR:-target}/$profile" && pwd)
summary=$(mktemp)
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
stop() {
  local pid
  for pid in "${loadgen:-}" "${relay:-}" "${responder:-}"; do
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  loadgen="" relay="" responder=""
}
cleanup() { stop || true; rm -rf "${work:-}" "$summary"; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
now_ms() { date +%s%3N; }
hz=$(getconf CLK_TCK)

# One run: prints its report and appends its summary line to $summary.
run_once() {
  local run=$1
  work=$(mktemp -d)
  local hec_port webhook_port admin_port
  hec_port=$(free_port) webhook_port=$(free_port) admin_port=$(free_port)
  # bench/reference.yaml with this run's values written in, plus the admin listener whose
  # /metrics gives the allocator's figures (bench/callgrind.sh runs the file as it is). Written
  # in, not passed as environment variables: siemrelay masks every value it read from the
  # environment wherever it shows up, /metrics included ("memory" in metric names, a port number
  # in a count).
  sed -E -e "s/\\$\\{env:BENCH_QUEUE(:-[^}]*)?\\}/$queue/" \
    -e "s/\\$\\{env:BENCH_WEBHOOK_PORT(:-[^}]*)?\\}/$webhook_port/" \
    -e "s/\\$\\{env:BENCH_HEC_PORT(:-[^}]*)?\\}/$hec_port/" bench/reference.yaml > "$work/reference.yaml"
  if [ "$metrics" = yes ]; then
    printf '  admin:\n    endpoint: "127.0.0.1:%s"\n' "$admin_port" >> "$work/reference.yaml"
  fi
  "$bin/hec_responder" --listen "127.0.0.1:$hec_port" --delay-ms "$delay" & responder=$!
  (cd "$work" && RUST_LOG=warn exec "$bin/siemrelay" run --config "$work/reference.yaml") & relay=$!
  for _ in $(seq 300); do
    curl -s -o /dev/null "http://127.0.0.1:$webhook_port/" \
      && { [ "$metrics" = no ] || curl -s -o /dev/null "http://127.0.0.1:$admin_port/healthz"; } && break
    sleep 0.1
  done

  count() { curl -s "http://127.0.0.1:$hec_port/count" | sed 's/.*"events":\([0-9]*\).*/\1/'; }
  local start_events start_relay start_responder start_time start_ms
  start_events=$(count)
  start_relay=$(cpu_ticks "$relay")
  start_responder=$(cpu_ticks "$responder")
  start_time=$(date +%s.%N) start_ms=$(now_ms)
  "$bin/loadgen" --url "http://127.0.0.1:$webhook_port/v1/events" --connections 16 --events 100 \
    --seconds "$seconds" > "$work/loadgen.json" &
  loadgen=$!
  local loadgen_ticks=0 next_sample=$((every * 1000)) elapsed rss delivered
  : > "$work/rss.tsv"
  [ "$runs" -gt 1 ] && echo "run $run of $runs"
  while kill -0 "$loadgen" 2>/dev/null; do
    loadgen_ticks=$(cpu_ticks "$loadgen" 2>/dev/null || echo "$loadgen_ticks")
    elapsed=$(( $(now_ms) - start_ms ))
    if [ "$elapsed" -ge "$next_sample" ] && kill -0 "$loadgen" 2>/dev/null; then
      rss=$(rss_kib "$relay") delivered=$(( $(count) - start_events ))
      printf '%s\t%s\t%s\n' "$elapsed" "$rss" "$delivered" >> "$work/rss.tsv"
      awk -v t="$elapsed" -v r="$rss" -v d="$delivered" \
        'BEGIN { printf "  %5.0f s   RSS %7.1f MiB   %d events delivered\n", t / 1000, r / 1024, d }'
      next_sample=$((next_sample + every * 1000))
    fi
    sleep 0.5
  done
  wait "$loadgen"
  loadgen=""
  sleep 1   # let the last batches drain
  local end_time end_events end_relay end_responder peak_rss_kib
  end_time=$(date +%s.%N)
  end_events=$(count)
  end_relay=$(cpu_ticks "$relay")
  end_responder=$(cpu_ticks "$responder")
  peak_rss_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$relay/status")
  : > "$work/metrics.txt"
  if [ "$metrics" = yes ]; then
    curl -s --max-time 10 "http://127.0.0.1:$admin_port/metrics" > "$work/metrics.txt" || true
  fi
  stop

  python3 - "$start_events" "$end_events" "$start_relay" "$end_relay" "$start_responder" "$end_responder" \
    "$loadgen_ticks" "$hz" "$start_time" "$end_time" "$peak_rss_kib" "$queue" "$delay" "$work/loadgen.json" \
    "$work/metrics.txt" "$work/rss.tsv" "$tolerance" "$run" "$summary" <<'PY'
import json, sys
(se, ee, sr, er, sp, ep, lt, hz, st, et, rss, queue, delay, lg, metrics_file, rss_file, tolerance,
 run, summary) = sys.argv[1:]
delivered = int(ee) - int(se)
secs = float(et) - float(st)
relay_cpu = (int(er) - int(sr)) / int(hz)
loadgen = json.load(open(lg))
mib = 1024 * 1024

def scraped(name):
    """The sum of a family's samples in the last scrape, or None when it has none."""
    values = []
    for line in open(metrics_file):
        if line.startswith("#") or not line.strip():
            continue
        series, _, value = line.rstrip("\n").rpartition(" ")
        if series.split("{")[0] == name:
            values.append(float(value))
    return sum(values) if values else None

def mib_of(name):
    value = scraped(name)
    return "?" if value is None else f"{value / mib:.1f}"

peak_rss = int(rss) / 1024
per_million = relay_cpu / max(delivered, 1) * 1e6
print(f"queue={queue} delay_ms={delay} duration={secs:.1f}s")
print(f"events accepted by the webhook : {loadgen['events_accepted']} ({loadgen['requests_refused']} requests refused)")
print(f"events delivered to HEC        : {delivered}  ({delivered / secs:,.0f} events/s)")
print(f"siemrelay CPU                  : {relay_cpu:.1f} s  ({per_million:.2f} CPU-s per million events)")
print(f"siemrelay peak RSS             : {peak_rss:.1f} MiB")
if scraped("process_resident_memory_bytes") is None:
    print("memory at the end (MiB)        : not scraped (--no-metrics, or /metrics did not answer)")
else:
    print(f"memory at the end (MiB)        : RSS {mib_of('process_resident_memory_bytes')}, "
          f"allocator committed {mib_of('siemrelay_allocator_committed_bytes')} "
          f"(peak {mib_of('siemrelay_allocator_peak_committed_bytes')}), "
          f"queues {mib_of('siemrelay_exporter_queue_bytes')}, "
          f"admission {mib_of('siemrelay_admission_reserved_bytes')}")
print(f"load generator CPU             : {int(lt) / int(hz):.1f} s   responder CPU: {(int(ep) - int(sp)) / int(hz):.1f} s")

samples = [int(line.split("\t")[1]) / 1024 for line in open(rss_file) if line.strip()]
if len(samples) >= 4:
    half = len(samples) // 2
    first, second = max(samples[:half]), max(samples[half:])
    growth = (second - first) / first * 100
    flat = "yes" if growth <= float(tolerance) else "NO"
    verdict = "flat" if flat == "yes" else "NOT flat"
    print(f"RSS over the run               : {verdict}: highest {first:.1f} MiB in the first half of "
          f"{len(samples)} samples, {second:.1f} MiB in the second ({growth:+.1f}%, tolerance {tolerance}%)")
    flat = f"{flat} ({growth:+.1f}%)"
else:
    flat = "n/a"
    print(f"RSS over the run               : {len(samples)} samples, too few to judge flatness (4 needed)")
with open(summary, "a") as out:
    out.write(f"{int(run):>3}  {delivered / secs:>10,.0f}  {per_million:>7.2f}  {peak_rss:>8.1f}  "
              f"{mib_of('siemrelay_allocator_peak_committed_bytes'):>15}  {flat}\n")
PY
  rm -rf "$work"
  work=""
}

for run in $(seq "$runs"); do
  run_once "$run"
done
echo
echo "run   events/s  CPU-s/M  peak RSS  alloc peak (MiB)  RSS flat"
cat "$summary"
! grep -q ' NO (' "$summary"

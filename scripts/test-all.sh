#!/usr/bin/env bash
# Runs every test of siemrelay: installs what the real peers need (Python virtualenv with the
# OpenTelemetry SDK, …), then builds and runs the whole workspace's tests with cargo-nextest.
# This is the README's test command and what CI (.ci/run) runs.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/check-repo.py  # self-contained (nothing read from beside the clone), every relative doc link resolves

# Phases, each timed: setup, tansu (the patched Kafka broker, built once into a tool cache, in
# the background while the workspace builds), workspace build, tests, checks. Every phase runs
# even when an earlier one failed; the script fails when any did.
START=$SECONDS
FAILED=()
TIMES=()
clock() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }
banner() { printf '\n==== %s (at %s) ====\n' "$1" "$(clock $((SECONDS - START)))"; }
finish_phase() { # NAME STARTED_AT STATUS
  TIMES+=("$1 $(clock $((SECONDS - $2)))")
  if [ "$3" -ne 0 ]; then FAILED+=("$1"); fi
  printf '==== %s: %s in %s ====\n' "$1" "$([ "$3" -eq 0 ] && echo ok || echo "FAILED ($3)")" \
    "$(clock $((SECONDS - $2)))"
}
run_phase() { # NAME COMMAND...
  local name=$1 at=$SECONDS status=0
  shift
  banner "$name"
  "$@" || status=$?
  finish_phase "$name" "$at" "$status"
}

banner "siemrelay test-all: about 12 minutes on a quiet 2-core machine with the Kafka broker \
cached (measured from a fresh clone: setup 1, workspace build 7, tests 4.5 minutes); the first run \
also builds the patched broker (~18 CPU-minutes, beside the workspace build, then cached in \
~/.cache/siemrelay-tools): about 20 minutes, up to an hour while other builds share the machine; \
about 5 minutes once built"

setup() {
  bash scripts/setup-test-env.sh
  if ! command -v cargo-nextest >/dev/null 2>&1; then
    echo "cargo-nextest not found; installing it (cargo install cargo-nextest --locked)"
    cargo install cargo-nextest --locked
  fi
}
run_phase setup setup
export SIEMRELAY_PYTHON="$PWD/target/py-venv/bin/python"

# The broker builds in the background, its output in target/install-tansu.log.
mkdir -p target
TANSU_LOG=target/install-tansu.log
TANSU_AT=$SECONDS
banner "tansu (in the background; log: $TANSU_LOG)"
bash scripts/install-tansu.sh >"$TANSU_LOG" 2>&1 &
TANSU_PID=$!

run_phase "workspace build" cargo nextest run --workspace --no-run

tansu_status=0
wait "$TANSU_PID" || tansu_status=$?
tail -n 3 "$TANSU_LOG"
if [ "$tansu_status" -ne 0 ]; then tail -n 40 "$TANSU_LOG"; fi
finish_phase tansu "$TANSU_AT" "$tansu_status"

run_phase tests cargo nextest run --workspace --no-fail-fast "$@"

checks() {
  cargo fmt --all -- --check
}
run_phase checks checks

SUMMARY="phase times: $(IFS=,; echo "${TIMES[*]}" | sed 's/,/, /g'); total $(clock $((SECONDS - START)))"
printf '\n==== %s ====\n' "$SUMMARY"
# Kept beside the broker cache (outside the clone) so the README's figures can be checked
# against real runs: one line per run, with the commit, the CPU count and the load when done.
TIMES_LOG="${SIEMRELAY_TOOL_CACHE:-$HOME/.cache/siemrelay-tools}/test-all-times.log"
mkdir -p "$(dirname "$TIMES_LOG")" && printf '%s commit=%s ci=%s cpus=%s load=%s %s\n' \
  "$(date -u +%FT%TZ)" "$(git rev-parse --short HEAD 2>/dev/null || echo none)" "${CI:-false}" \
  "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)" "$SUMMARY" >>"$TIMES_LOG" || true
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "FAILED phases: ${FAILED[*]}"
  exit 1
fi

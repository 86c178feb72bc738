#!/usr/bin/env bash
# Runs every test of siemrelay: installs what the real peers need (Python virtualenv with the
# OpenTelemetry SDK, …), then builds and runs the whole workspace's tests with cargo-nextest.
# This is the README's test command and what CI (.ci/run) runs.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/check-repo.py  # self-contained (nothing read from beside the clone), every relative doc link resolves

bash scripts/setup-test-env.sh
export SIEMRELAY_PYTHON="$PWD/target/py-venv/bin/python"

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "cargo-nextest not found; installing it (cargo install cargo-nextest --locked)"
  cargo install cargo-nextest --locked
fi

bash scripts/install-tansu.sh
cargo nextest run --workspace --no-fail-fast "$@"

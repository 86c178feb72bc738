#!/usr/bin/env bash
# Installs the `tansu` Kafka-compatible broker used by the kafka end-to-end tests
# (tests/tests/kafka.rs) into a tool cache outside the repository, built from crates.io with the
# in-memory storage engine (`--features dynostore`, storage URL `memory://tansu/`).
# A no-op when the pinned version is already installed (the build takes ~6 minutes on 2 cores).
# The tests find the binary at $SIEMRELAY_TANSU, else <cache>/bin/tansu, else `tansu` on PATH.
set -euo pipefail

TANSU_VERSION="0.6.0"
CACHE="${SIEMRELAY_TOOL_CACHE:-$HOME/.cache/siemrelay-tools}"
BIN="$CACHE/bin/tansu"
STAMP="$CACHE/tansu-$TANSU_VERSION.installed"

if [[ -x "$BIN" && -f "$STAMP" ]]; then
  exit 0
fi

mkdir -p "$CACHE"
echo "installing tansu $TANSU_VERSION (in-memory storage) into $CACHE (takes several minutes)"
cargo install tansu --version "$TANSU_VERSION" --features dynostore --locked --root "$CACHE"
touch "$STAMP"

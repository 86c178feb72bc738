#!/usr/bin/env bash
# Installs the `tansu` Kafka-compatible broker used by the kafka end-to-end tests
# (tests/tests/kafka.rs) into a tool cache outside the repository, built from crates.io with the
# in-memory storage engine (`--features dynostore`, storage URL `memory://tansu/`).
# A no-op when the pinned version is already installed with the same patches and build flags.
# The tests find the binary at $SIEMRELAY_TANSU, else <cache>/bin/tansu, else `tansu` on PATH.
#
# One fix is applied to tansu-broker 0.6.0 before building (scripts/tansu/*.patch): its group
# coordinator evicts a member whose session timed out while answering another member's
# heartbeat, and so never re-forms the group: the dead member's partitions stay assigned to
# nobody until a new member joins. The patch lets the eviction start a new generation, so the
# live members rejoin and take the partitions, as a Kafka coordinator does.
set -euo pipefail

TANSU_VERSION="0.6.0"
PATCHES="$(cd "$(dirname "$0")" && pwd)/tansu"
CACHE="${SIEMRELAY_TOOL_CACHE:-$HOME/.cache/siemrelay-tools}"
BIN="$CACHE/bin/tansu"
# The broker's speed hardly matters to the tests (a few thousand messages per second), so it is
# built for build time, not run time: opt-level 1 instead of 3, many codegen units, no LTO, no
# debug info. `dynostore` (in-memory storage) is the only storage feature; tansu 0.6.0 has no
# feature that drops more (its CLI always links the proxy, generator, perf and cat tools).
BUILD_FLAGS=(
  --features dynostore --locked
  --config profile.release.opt-level=1
  --config profile.release.codegen-units=256
  --config profile.release.lto=false
  --config profile.release.debug=0
  --config profile.release.incremental=false
)
STAMP="$CACHE/tansu-$TANSU_VERSION-$( (cat "$PATCHES"/*.patch; echo "${BUILD_FLAGS[*]}") | sha256sum | cut -c1-12).installed"

if [[ -x "$BIN" && -f "$STAMP" ]]; then
  exit 0
fi

mkdir -p "$CACHE"
echo "installing tansu $TANSU_VERSION (in-memory storage, patched) into $CACHE (takes several minutes)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Fetch the tansu-broker source from crates.io through cargo (no other download) and patch it.
mkdir -p "$work/fetch/src"
cat > "$work/fetch/Cargo.toml" <<EOF
[package]
name = "fetch-tansu-broker"
version = "0.0.0"
edition = "2021"
[dependencies]
tansu-broker = "=$TANSU_VERSION"
EOF
touch "$work/fetch/src/lib.rs"
cargo fetch --quiet --manifest-path "$work/fetch/Cargo.toml"
crate=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/cache" -name "tansu-broker-$TANSU_VERSION.crate" | head -n 1)
[[ -n "$crate" ]] || { echo "tansu-broker-$TANSU_VERSION.crate not found after cargo fetch" >&2; exit 1; }
tar -xzf "$crate" -C "$work"
broker="$work/tansu-broker-$TANSU_VERSION"
for patch in "$PATCHES"/*.patch; do
  patch --quiet -p1 -d "$broker" < "$patch"
done

rm -f "$CACHE"/tansu-*.installed
cargo install tansu --version "$TANSU_VERSION" "${BUILD_FLAGS[@]}" --force --root "$CACHE" \
  --config "patch.crates-io.tansu-broker.path=\"$broker\""
touch "$STAMP"

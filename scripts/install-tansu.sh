#!/usr/bin/env bash
# Installs the `tansu` Kafka-compatible broker used by the kafka end-to-end tests
# (tests/tests/kafka.rs) into a tool cache outside the repository, built from crates.io with the
# in-memory storage engine (`--features dynostore`, storage URL `memory://tansu/`).
# A no-op when the pinned version is already installed with the same patches and build flags.
# The tests find the binary at $SIEMRELAY_TANSU, else <cache>/bin/tansu, else `tansu` on PATH.
#
# Two fixes are applied before building, each a patch in scripts/tansu/<crate>/ (the crate of
# tansu 0.6.0 it changes), so that tansu behaves as Kafka does where the tests depend on it:
# - tansu-broker: its group coordinator evicts a member whose session timed out while answering
#   another member's heartbeat, and so never re-forms the group: the dead member's partitions
#   stay assigned to nobody until a new member joins. The patch lets the eviction start a new
#   generation, so the live members rejoin and take the partitions, as a Kafka coordinator does.
# - tansu-storage: an idempotent producer may bump its own epoch (KIP-360; librdkafka does so
#   after messages timed out) and go on from sequence 0; Kafka accepts the new epoch, tansu
#   answered it with ProducerFenced, so every timeout under load cost a producer. The patch
#   accepts a higher epoch that starts at sequence 0, as Kafka does.
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
STAMP="$CACHE/tansu-$TANSU_VERSION-$( (cat "$PATCHES"/*/*.patch; echo "${BUILD_FLAGS[*]}") | sha256sum | cut -c1-12).installed"

if [[ -x "$BIN" && -f "$STAMP" ]]; then
  exit 0
fi

mkdir -p "$CACHE"
echo "installing tansu $TANSU_VERSION (in-memory storage, patched) into $CACHE (takes several minutes)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Fetch the sources of the patched crates from crates.io through cargo (no other download),
# patch them, and build tansu against the patched copies.
mkdir -p "$work/fetch/src"
{
  printf '[package]\nname = "fetch-tansu-sources"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\n'
  for dir in "$PATCHES"/*/; do
    printf '%s = "=%s"\n' "$(basename "$dir")" "$TANSU_VERSION"
  done
} > "$work/fetch/Cargo.toml"
touch "$work/fetch/src/lib.rs"
cargo fetch --quiet --manifest-path "$work/fetch/Cargo.toml"
PATCHED=()
for dir in "$PATCHES"/*/; do
  name=$(basename "$dir")
  crate=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/cache" -name "$name-$TANSU_VERSION.crate" | head -n 1)
  [[ -n "$crate" ]] || { echo "$name-$TANSU_VERSION.crate not found after cargo fetch" >&2; exit 1; }
  tar -xzf "$crate" -C "$work"
  for patch in "$dir"*.patch; do
    patch --quiet -p1 -d "$work/$name-$TANSU_VERSION" < "$patch"
  done
  PATCHED+=(--config "patch.crates-io.$name.path=\"$work/$name-$TANSU_VERSION\"")
done

rm -f "$CACHE"/tansu-*.installed
cargo install tansu --version "$TANSU_VERSION" "${BUILD_FLAGS[@]}" --force --root "$CACHE" "${PATCHED[@]}"
touch "$STAMP"

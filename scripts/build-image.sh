#!/usr/bin/env bash
# Builds siemrelay's container image from the Containerfile, FROM scratch: no base image is
# pulled. This script assembles the build context (target/image/context) from the siemrelay
# binary, the GELF plugin, and files of this machine's Debian packages (the shared libraries
# the binary and plugin load, CA certificates), then runs buildah, podman or docker.
#
#   scripts/build-image.sh                      # cargo build --release, tag localhost/siemrelay:<version>
#   scripts/build-image.sh --binary target/debug/siemrelay --plugin target/debug/libsiemrelay_gelf.so \
#       --tag localhost/siemrelay:test          # an image of an existing build (the test suite does this)
#
# Options:
#   --binary PATH    use this siemrelay binary instead of building target/release/siemrelay
#   --plugin PATH    the GELF plugin to ship (default: target/release/libsiemrelay_gelf.so)
#   --tag TAG        image name (default localhost/siemrelay:<version>; also tagged :latest)
#   --builder NAME   buildah, podman or docker (default: the first one installed)
#   --context DIR    where to assemble the build context (default target/image/context)
#   --context-only   assemble the build context and stop (to build it elsewhere)
#
# Needs: ldd, strip (binutils), gzip, dpkg (for the licences of the shipped libraries) and
# Debian's ca-certificates. Prints the image id and its size at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
plugin=""
tag=""
builder=""
context=target/image/context
context_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --plugin) plugin="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --builder) builder="$2"; shift 2 ;;
    --context) context="$2"; shift 2 ;;
    --context-only) context_only=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "build-image.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -z "$binary" ]; then
  echo "building the release binary and the GELF plugin (cargo build --release)…"
  cargo build --release --locked -p siemrelay-pipelines -p siemrelay-gelf
  binary=target/release/siemrelay
  plugin=${plugin:-target/release/libsiemrelay_gelf.so}
fi
plugin=${plugin:-target/release/libsiemrelay_gelf.so}
for file in "$binary" "$plugin"; do
  [ -f "$file" ] || { echo "build-image.sh: $file does not exist" >&2; exit 1; }
done
certificates=/etc/ssl/certs/ca-certificates.crt
[ -s "$certificates" ] || {
  echo "build-image.sh: $certificates is missing: apt-get install ca-certificates" >&2
  exit 1
}

# The binary introduces itself: "siemrelay 0.1.0 (commit 0123456789ab)".
read -r _ version _ revision < <("$binary" -V | tr -d '()')
tag=${tag:-localhost/siemrelay:$version}
created=$(date -u ${SOURCE_DATE_EPOCH:+-d "@$SOURCE_DATE_EPOCH"} +%Y-%m-%dT%H:%M:%SZ)
# Where the source is, without any credentials a remote URL may carry.
source_url=$(git remote get-url origin 2>/dev/null | sed -E 's#^(https?://)[^/@]*@#\1#' || true)
source_url=${source_url:-unknown}

rootfs=$context/rootfs
rm -rf "$context"
mkdir -p "$rootfs"/{usr/bin,usr/lib/siemrelay/plugins,etc/siemrelay,etc/ssl/certs,usr/share/man/man1,tmp,var/lib} \
  "$context/state"
chmod 1777 "$rootfs/tmp"
chmod 0750 "$context/state"

# The binary and plugin without debug info (symbols stay, so a panic's backtrace names functions).
strip --strip-debug -o "$rootfs/usr/bin/siemrelay" "$binary"
strip --strip-debug -o "$rootfs/usr/lib/siemrelay/plugins/libsiemrelay_gelf.so" "$plugin"
chmod 0755 "$rootfs/usr/bin/siemrelay"
chmod 0644 "$rootfs/usr/lib/siemrelay/plugins/libsiemrelay_gelf.so"

# Shared libraries: exactly what ldd resolves for the binary and the plugin, placed as Debian
# places them (merged /usr: /lib → usr/lib, /lib64 → usr/lib64), under their soname.
in_usr() {
  case "$1" in
    /lib/*|/lib64/*|/lib32/*) echo "/usr$1" ;;
    *) echo "$1" ;;
  esac
}
libraries=$(ldd "$binary" "$plugin" | awk '
  $2 == "=>" && $3 ~ /^\// { print $3 }
  $1 ~ /^\// && $2 ~ /^\(0x/ { print $1 }' | sort -u)
packages=""
for library in $libraries; do
  destination="$rootfs$(in_usr "$library")"
  mkdir -p "$(dirname "$destination")"
  cp -L "$library" "$destination"
  owner=$(dpkg -S "$library" 2>/dev/null || dpkg -S "$(readlink -f "$library")" 2>/dev/null || true)
  packages="$packages ${owner%%:*}"
done
[ -d "$rootfs/usr/lib" ] && ln -s usr/lib "$rootfs/lib"
[ -d "$rootfs/usr/lib64" ] && ln -s usr/lib64 "$rootfs/lib64"

# CA certificates, where OpenSSL (librdkafka) and SSL_CERT_FILE users look for them.
cp "$certificates" "$rootfs/etc/ssl/certs/ca-certificates.crt"
mkdir -p "$rootfs/usr/lib/ssl"
ln -s /etc/ssl/certs "$rootfs/usr/lib/ssl/certs"
ln -s /etc/ssl/certs/ca-certificates.crt "$rootfs/usr/lib/ssl/cert.pem"
packages="$packages $(dpkg -S "$certificates" 2>/dev/null | cut -d: -f1 || true) ca-certificates"

# Licences of the Debian packages whose files the image ships.
for package in $(echo "$packages" | tr ' ' '\n' | grep -v '^$' | sort -u); do
  if [ -f "/usr/share/doc/$package/copyright" ]; then
    mkdir -p "$rootfs/usr/share/doc/$package"
    cp "/usr/share/doc/$package/copyright" "$rootfs/usr/share/doc/$package/copyright"
  fi
done

# Users: root and siemrelay (10001), no login shells (the image has no shell).
cat > "$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/usr/sbin/nologin
siemrelay:x:10001:10001:siemrelay:/var/lib/siemrelay:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat > "$rootfs/etc/group" <<'GROUP'
root:x:0:
siemrelay:x:10001:
nogroup:x:65534:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$rootfs/etc/nsswitch.conf"

cp deploy/container/siemrelay.yaml "$rootfs/etc/siemrelay/siemrelay.yaml"
chmod 0644 "$rootfs/etc/siemrelay/siemrelay.yaml"

# Man pages, generated from the CLI by the binary itself.
"$binary" man --dir "$rootfs/usr/share/man/man1"
gzip -9n "$rootfs"/usr/share/man/man1/*.1

echo "build context: $context ($(du -sh "$rootfs" | cut -f1) root filesystem, libraries:" $libraries")"
if [ "$context_only" = 1 ]; then
  exit 0
fi

if [ -z "$builder" ]; then
  for candidate in buildah podman docker; do
    if command -v "$candidate" >/dev/null 2>&1; then builder=$candidate; break; fi
  done
fi
[ -n "$builder" ] || { echo "build-image.sh: install buildah or podman (apt-get install buildah podman) or docker" >&2; exit 1; }

build_args=(--build-arg "VERSION=$version" --build-arg "REVISION=$revision"
  --build-arg "CREATED=$created" --build-arg "SOURCE=$source_url")
# buildah and podman also write the OCI annotations into the manifest (the labels are in the
# image config either way).
annotations=(--annotation "org.opencontainers.image.version=$version"
  --annotation "org.opencontainers.image.revision=$revision"
  --annotation "org.opencontainers.image.created=$created"
  --annotation "org.opencontainers.image.source=$source_url"
  --annotation "org.opencontainers.image.licenses=Apache-2.0"
  --annotation "org.opencontainers.image.title=siemrelay")
case "$builder" in
  buildah) buildah build --format oci -f Containerfile -t "$tag" "${build_args[@]}" "${annotations[@]}" "$context" ;;
  podman) podman build --format oci -f Containerfile -t "$tag" "${build_args[@]}" "${annotations[@]}" "$context" ;;
  docker) docker build -f Containerfile -t "$tag" "${build_args[@]}" "$context" ;;
  *) echo "build-image.sh: unknown builder $builder" >&2; exit 2 ;;
esac
if [ "${tag##*:}" = "$version" ]; then
  "$builder" tag "$tag" "${tag%:*}:latest"
fi

if command -v podman >/dev/null 2>&1 && [ "$builder" != docker ]; then
  size=$(podman image inspect --format '{{.Size}}' "$tag")
else
  size=$("$builder" image inspect --format '{{.Size}}' "$tag")
fi
echo "built $tag: $size bytes ($((size / 1024 / 1024)) MiB uncompressed)"

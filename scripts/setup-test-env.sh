#!/usr/bin/env bash
# Installs what the test suite's real peers need: a Python virtualenv with the official
# OpenTelemetry SDK (and later moto, schemathesis, confluent-kafka) under target/py-venv.
# Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages (rsyslog, chromium, …) listed in tests/apt-packages.txt.
packages=$(grep -v '^#' tests/apt-packages.txt | tr -s ' \n' ' ' || true)
missing=""
for package in $packages; do
  dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian packages:$missing"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "missing Debian packages:$missing (run as root or install them: apt-get install$missing)" >&2
    exit 1
  fi
fi
# syslog-ng, a real sender for the syslog receiver's tests (tests/tests/syslog_receiver.rs): Debian's
# syslog-ng-core conflicts with rsyslog (both are the system logger), so its packages are unpacked
# under target/syslog-ng and run from there instead of being installed.
if [ ! -x target/syslog-ng/usr/sbin/syslog-ng ]; then
  debs=$(mktemp -d)
  chmod 755 "$debs"
  (cd "$debs" && apt-get download -qq syslog-ng-core libivykis0 libnet1 libpcre3 libwrap0 2>/dev/null \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get download -qq syslog-ng-core libivykis0 libnet1 libpcre3 libwrap0; })
  mkdir -p target/syslog-ng
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" target/syslog-ng; done
  rm -rf "$debs"
fi
echo "syslog-ng ready: target/syslog-ng/usr/sbin/syslog-ng"
venv=target/py-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.requirements.sha256"
want=$(sha256sum tests/python/requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  echo "$want" > "$stamp"
fi
echo "python test env ready: $venv/bin/python"
# pySigma's Datadog backend needs pySigma 0.11 (the other backends need 1.x): its own venv.
dd_venv=target/py-venv-sigma-datadog
if [ ! -x "$dd_venv/bin/python" ]; then
  python3 -m venv "$dd_venv"
fi
dd_stamp="$dd_venv/.requirements.sha256"
dd_want=$(sha256sum tests/python/requirements-sigma-datadog.txt | cut -d' ' -f1)
if [ ! -f "$dd_stamp" ] || [ "$(cat "$dd_stamp")" != "$dd_want" ]; then
  "$dd_venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements-sigma-datadog.txt
  echo "$dd_want" > "$dd_stamp"
fi
echo "python sigma-datadog env ready: $dd_venv/bin/python"
# The status page's browser test (tests/browser): playwright-core from the lockfile (it drives
# Debian's /usr/bin/chromium; no browser is downloaded).
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found: install Node.js 20+ and npm (apt-get install nodejs npm) for tests/browser" >&2
    exit 1
  fi
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "browser test env ready: tests/browser/node_modules"
# The splunk_hec receiver's tests (tests/node-splunk): Splunk's own HEC client for Node.js,
# splunk-logging, from the lockfile.
if [ ! -d tests/node-splunk/node_modules/splunk-logging ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found: install Node.js 20+ and npm (apt-get install nodejs npm) for tests/node-splunk" >&2
    exit 1
  fi
  (cd tests/node-splunk && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "splunk-logging test env ready: tests/node-splunk/node_modules"

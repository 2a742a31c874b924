#!/usr/bin/env bash
# Makes sure Debian's `chromium` is installed, for the HTML report's rendering test (test/results/reportHtml*.test.ts).
# Idempotent: does nothing when /usr/bin/chromium exists. Installs with apt-get only as root; otherwise it says what
# is missing and exits 1, and the test skips with that message.
# Prints the browser's path on success.
set -euo pipefail

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  echo "$CHROMIUM"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "chromium is not installed at $CHROMIUM and this user is not root: run 'sudo apt-get install -y chromium'" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "chromium is not installed at $CHROMIUM and apt-get is not available on this machine" >&2
  exit 1
fi
# One installer at a time: two test processes calling this together would race on dpkg's lock.
exec 9>/tmp/ensure-chromium.lock
flock 9
if [ -x "$CHROMIUM" ]; then
  echo "$CHROMIUM"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
if [ ! -x "$CHROMIUM" ]; then
  echo "apt-get installed chromium but $CHROMIUM is missing" >&2
  exit 1
fi
echo "$CHROMIUM"

#!/usr/bin/env bash
# Browser tests: the console, the cashier and the demo in Debian's Chromium, driven by
# playwright-core (never a downloaded browser). Installs playwright-core into
# browser/node_modules, builds the binary, runs every tests/*.test.mjs with node's test runner.
# Screenshots of failed pages go to browser/screenshots/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$here"

[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || {
  echo "browser: Chromium not found at ${CHROMIUM:-/usr/bin/chromium} (Debian package chromium)" >&2
  exit 1
}
npm install --no-audit --no-fund --silent >/dev/null
cargo build -q -p paybridge --manifest-path "$root/Cargo.toml"
export PAYBRIDGE_BIN="${PAYBRIDGE_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/paybridge}"
rm -rf screenshots
node --test --test-concurrency=1 --test-reporter=spec tests/

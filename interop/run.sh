#!/usr/bin/env bash
# Interop: real third-party SDKs (python-alipay-sdk, wechatpayv3, wechatpy, alipay-sdk,
# wechatpay-axios-plugin, and the official alipay-sdk-python in its own virtualenv, since it
# installs the same top-level package as python-alipay-sdk) against `paybridge sandbox` over
# loopback. Installs the SDKs from the
# registries into interop/.venv and interop/node_modules, starts the sandbox with fresh keys,
# runs both drivers, stops the sandbox. Prints `N passed, M failed` last.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$here"

python3 -m venv .venv >/dev/null
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
python3 -m venv .venv-official >/dev/null
.venv-official/bin/pip install -q --disable-pip-version-check -r requirements-official.txt
npm install --no-audit --no-fund --silent >/dev/null

cargo build -q -p paybridge --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug/paybridge"

data="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin" sandbox --data-dir "$data" --listen "127.0.0.1:$port" >"$data/sandbox.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
    "http://127.0.0.1:$port/_sandbox/keys" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { cat "$data/sandbox.log"; exit 1; }
  sleep 0.1
done

status=0
py_out="$(.venv/bin/python python_sdks.py "http://127.0.0.1:$port" "$data/sandbox.toml" 2>&1)" || status=1
echo "$py_out"
node_out="$(node node_sdks.mjs "http://127.0.0.1:$port" "$data/sandbox.toml" 2>&1)" || status=1
echo "$node_out"
official_out="$(.venv-official/bin/python alipay_official.py "http://127.0.0.1:$port" "$data/sandbox.toml" 2>&1)" || status=1
echo "$official_out"

count() { echo "$1" | grep -c "^$2 " || true; }
passed=$(( $(count "$py_out" PASS) + $(count "$node_out" PASS) + $(count "$official_out" PASS) ))
failed=$(( $(count "$py_out" FAIL) + $(count "$node_out" FAIL) + $(count "$official_out" FAIL) ))
[ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

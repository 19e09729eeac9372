#!/usr/bin/env bash
# A smoke run of every loadgen scenario (BENCHMARKS.md): tiny sizes, a few seconds each, any
# build. It checks that the benchmarks work (every JSON line parses, has its fields, and its
# counts match the run and the gateway's /metrics), never how fast anything is.
#
# Environment: GATEWAY_BIN (the gateway binary), LOADGEN_BIN (loadgen), and optionally
# BASELINE_BIN (default: hello_baseline beside loadgen). Defaults: target/debug/.
set -euo pipefail
cd "$(dirname "$0")/.."

GATEWAY_BIN="${GATEWAY_BIN:-$PWD/target/debug/agent-gateway}"
LOADGEN_BIN="${LOADGEN_BIN:-$PWD/target/debug/loadgen}"
BASELINE_BIN="${BASELINE_BIN:-$(dirname "$LOADGEN_BIN")/hello_baseline}"
for bin in "$GATEWAY_BIN" "$LOADGEN_BIN" "$BASELINE_BIN"; do
  [ -x "$bin" ] || { echo "bench-smoke: $bin is not built" >&2; exit 1; }
done

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
run() {
  echo "== loadgen $*"
  "$LOADGEN_BIN" --gateway-bin "$GATEWAY_BIN" --baseline-bin "$BASELINE_BIN" --gateway-log warn "$@" \
    | tee -a "$out"
}
run fanout --subscribers 1,20 --tokens 50 --runs 2
run sessions --sessions 1,10 --tokens 10 --rate 200 --skip-first 2
run idle --sessions 40 --concurrency 4 --settle 0
run history --sessions 3 --messages 10,500 --context 20 --runs 1
run unary --duration 0.4 --concurrency 8 --connections 1,2 --sessions 3
run rest --duration 0.4 --connections 8
# The store-bound scenarios again on PostgreSQL, when a server is given (the test command
# starts one): every gateway gets a fresh database on it.
if [ -n "${GATEWAY_TEST_POSTGRES_URL:-}" ]; then
  run --store-url "$GATEWAY_TEST_POSTGRES_URL" sessions --sessions 1,10 --tokens 10 --rate 200 --skip-first 2
  run --store-url "$GATEWAY_TEST_POSTGRES_URL" idle --sessions 40 --concurrency 4 --settle 0
  run --store-url "$GATEWAY_TEST_POSTGRES_URL" history --sessions 3 --messages 10,500 --context 20 --runs 1
fi

python3 - "$out" "${GATEWAY_TEST_POSTGRES_URL:+postgres}" <<'PY'
import json, sys

lines = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
expected = {"fanout": 4, "sessions": 4, "idle": 1, "history": 2, "unary": 4, "rest": 1}
if len(sys.argv) > 2 and sys.argv[2] == "postgres":
    expected.update(sessions=8, idle=2, history=4)
fields = {
    "fanout": ["transport", "subscribers", "runs", "events_delivered", "events_per_s_total",
               "events_per_s_per_subscriber", "gateway_cpu_s_per_million_events", "memory"],
    "sessions": ["transport", "sessions", "added_latency", "added_latency_without_first_tokens"],
    "idle": ["sessions", "rss_per_session_kib", "rss_per_session_kib_after_eviction", "allocator"],
    "history": ["messages_per_session", "rss_per_session_kib", "load", "history_page_50", "run"],
    "unary": ["method", "connections", "gateway", "baseline", "ratio_to_baseline"],
    "rest": ["connections", "gateway", "baseline", "ratio_to_baseline"],
}
failures = []
seen = {}
for line in lines:
    scenario = line.get("scenario")
    seen[scenario] = seen.get(scenario, 0) + 1
    name = f"{scenario} {line.get('transport', line.get('method', ''))}".strip()
    for field in fields.get(scenario, []):
        if field not in line:
            failures.append(f"{name}: no field {field}")
    if line.get("counts_ok") is not True:
        failures.append(f"{name}: counts do not match: {json.dumps(line)}")
    for check in line.get("checks", []):
        if not check.get("ok"):
            failures.append(f"{name}: {check}")
    if scenario == "sessions":
        latency = line["added_latency"]
        if latency["count"] != line["sessions"] * line["tokens_per_run"] or latency["p99_ms"] is None:
            failures.append(f"{name}: latency samples missing: {latency}")
    if scenario == "history":
        for part in ("load", "history_page_50", "run"):
            if line[part]["count"] == 0 or line[part]["p99_ms"] is None:
                failures.append(f"{name}: no {part} samples: {line[part]}")
    if scenario in ("unary", "rest"):
        for side in ("gateway", "baseline"):
            if not line[side]["requests_per_s"] > 0 or line[side]["latency"]["p99_ms"] is None:
                failures.append(f"{name}: {side} answered nothing: {line[side]}")
if seen != expected:
    failures.append(f"lines per scenario: {seen}, expected {expected}")
for failure in failures:
    print("bench-smoke:", failure, file=sys.stderr)
print(f"bench-smoke: {len(lines)} lines, {len(failures)} failures")
sys.exit(1 if failures else 0)
PY

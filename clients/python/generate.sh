#!/usr/bin/env bash
# Generates the Python gRPC stubs from proto/ into clients/python/gen/ (gitignored) with
# grpcio-tools' bundled protoc. PYTHON picks the interpreter (default: python3), which needs
# `pip install -r clients/python/requirements.txt`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
proto="$(cd "$here/../../proto" && pwd)"
python="${PYTHON:-python3}"
out="$here/gen"

tmp="$(mktemp -d "$here/.gen.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# `python -m grpc_tools.protoc` adds the well-known types (google/protobuf/struct.proto) itself.
"$python" -m grpc_tools.protoc -I "$proto" \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
  "$proto"/agentgateway/v1/*.proto
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "generated $(find "$out" -name '*.py' | wc -l) modules in $out"

#!/usr/bin/env bash
# Builds app.py into a RustMQ ETL module: a component for the
# rustmq:etl/etl-batch@1.1.0 world, with CPython inside (componentize-py).
#
#   ./build.sh [OUT.wasm]          (default: processor.wasm here)
#
# Needs componentize-py (`pip install componentize-py==0.25.1`; COMPONENTIZE_PY names
# another binary). The SDK and the WIT are taken from this repository; copy the
# folder elsewhere and set RUSTMQ_ETL_PYTHON_SDK and RUSTMQ_ETL_WIT.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sdk="${RUSTMQ_ETL_PYTHON_SDK:-$here/../guest-sdk-python}"
wit="${RUSTMQ_ETL_WIT:-$here/../wit/1.1.0}"
out="${1:-$here/processor.wasm}"
"${COMPONENTIZE_PY:-componentize-py}" -d "$wit" -w etl-batch componentize app \
  -p "$here" -p "$sdk" -o "$out"

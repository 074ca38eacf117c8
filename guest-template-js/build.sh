#!/usr/bin/env bash
# Builds app.js into a RustMQ ETL module: a component for the
# rustmq:etl/etl-batch@1.1.0 world, with SpiderMonkey inside (componentize-js).
#
#   ./build.sh [OUT.wasm]          (default: processor.wasm here)
#
# Needs componentize-js (`npm install @bytecodealliance/componentize-js@0.23.0`;
# COMPONENTIZE_JS names the binary, default the one on the PATH). The WIT is taken
# from this repository; copy the folder elsewhere and set RUSTMQ_ETL_WIT.
#
# `-d http fetch-event`: the default build imports wasi:http, which the broker does
# not provide (and refuses at upload, naming the import).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wit="${RUSTMQ_ETL_WIT:-$here/../wit/1.1.0}"
out="$(realpath -m "${1:-$here/processor.wasm}")"
# The engine reads the sources from one directory only: copy them there, links
# followed (rustmq-etl.js may be a link to the SDK).
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
cp -L "$here"/*.js "$src"/
cd "$src"
"${COMPONENTIZE_JS:-componentize-js}" component.js --wit "$wit" --world-name etl-batch \
  -d http fetch-event -o "$out"

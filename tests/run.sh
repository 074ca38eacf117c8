#!/usr/bin/env bash
# Runs the whole RustMQ ETL test suite. Works on a machine that has only the Rust
# toolchain: it installs the WebAssembly targets and cargo-component first (each only
# when missing; cargo-component goes to ~/.cargo/bin, outside the repository), the
# Kafka-protocol test servers (into a cache outside the repository, see
# tests/tools/kafka-servers.sh), componentize-py and componentize-js (into a cache
# outside the repository), cargo-fuzz and schemathesis (into caches outside the
# repository, by tests/fuzz.sh and tests/schemathesis.sh) and, on Debian,
# systemd-analyze.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> WebAssembly targets"
rustup target add wasm32-wasip2 wasm32-wasip1 wasm32-unknown-unknown

echo "==> cargo-component"
if ! command -v cargo-component >/dev/null 2>&1; then
  cargo install cargo-component --locked --version 0.21.1
fi

echo "==> Kafka-protocol test servers"
# Installs only what is missing; the paths it prints go to the tests (tests/src/kafka.rs).
servers="$(tests/tools/kafka-servers.sh install)"
RUSTMQ_TEST_TANSU_BIN="$(sed -n 's/^TANSU_BIN=//p' <<<"$servers")"
RUSTMQ_TEST_NOIDA_BIN="$(sed -n 's/^NOIDA_BIN=//p' <<<"$servers")"
export RUSTMQ_TEST_TANSU_BIN RUSTMQ_TEST_NOIDA_BIN

echo "==> componentize-py (Python guests; cached outside the repository)"
py_tools="${XDG_CACHE_HOME:-$HOME/.cache}/rustmq-etl/python-tools"
if [ ! -x "$py_tools/bin/componentize-py" ]; then
  python3 -m venv "$py_tools"
  "$py_tools/bin/pip" install --quiet componentize-py==0.25.1
fi
export RUSTMQ_TEST_COMPONENTIZE_PY="$py_tools/bin/componentize-py"

echo "==> componentize-js (JavaScript guests; cached outside the repository)"
js_tools="${XDG_CACHE_HOME:-$HOME/.cache}/rustmq-etl/js-tools"
if [ ! -x "$js_tools/node_modules/.bin/componentize-js" ]; then
  mkdir -p "$js_tools"
  (cd "$js_tools" && npm install --no-audit --no-fund --silent @bytecodealliance/componentize-js@0.23.0)
fi
export RUSTMQ_TEST_COMPONENTIZE_JS="$js_tools/node_modules/.bin/componentize-js"

echo "==> systemd-analyze (the packaging test verifies the unit with it)"
if ! command -v systemd-analyze >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y --no-install-recommends systemd >/dev/null
  else
    echo "systemd-analyze is missing and cannot be installed here: the unit verification will say SKIPPED"
  fi
fi

echo "==> workspace tests (guests are built from source by tests/build.rs)"
cargo test --workspace --locked

echo "==> guest SDK unit tests (native, no wasm)"
(cd guest-sdk && cargo test --locked --target-dir ../target/guest-sdk)

echo "==> guest template unit tests (native, no wasm)"
(cd guest-template && cargo test --locked)

echo "==> Python SDK and template unit tests (native, no wasm)"
(cd guest-sdk-python && python3 -m unittest discover -s tests)
(cd guest-template-python && PYTHONPATH=../guest-sdk-python python3 -m unittest)

echo "==> JavaScript SDK and template unit tests (native, no wasm)"
(cd guest-sdk-js && node --test)
(cd guest-template-js && node --test)

echo "==> fuzz targets (tests/fuzz.sh: every parser of outside bytes, 30 s each)"
tests/fuzz.sh

echo "==> schemathesis against a live broker (tests/schemathesis.sh, 60 s per API)"
tests/schemathesis.sh

echo "==> README quick start (tests/quickstart.sh)"
tests/quickstart.sh

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

# Every test runner's output also goes to one log, summed up at the end, so the last
# lines of a run say how many tests ran and passed.
summary_log="$(mktemp)"
trap 'rm -f "$summary_log"' EXIT
logged() { "$@" 2>&1 | tee -a "$summary_log"; }

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

echo "==> headless Chromium and playwright-core (the console's browser test)"
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y --no-install-recommends chromium >/dev/null \
      || { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }
  else
    echo "chromium is missing and cannot be installed here: the console's browser test will say SKIPPED"
  fi
fi
browser_tools="${XDG_CACHE_HOME:-$HOME/.cache}/rustmq-etl/browser-tools"
if [ ! -f "$browser_tools/node_modules/playwright-core/package.json" ]; then
  mkdir -p "$browser_tools"
  (cd "$browser_tools" && npm install --no-audit --no-fund --silent playwright-core@1.65.1)
fi
export RUSTMQ_TEST_PLAYWRIGHT="$browser_tools/node_modules/playwright-core"
RUSTMQ_TEST_CHROMIUM="$(command -v chromium || true)"
export RUSTMQ_TEST_CHROMIUM

echo "==> workspace tests (guests are built from source by tests/build.rs)"
logged cargo test --workspace --locked

echo "==> guest SDK unit tests (native, no wasm)"
(cd guest-sdk && logged cargo test --locked --target-dir ../target/guest-sdk)

echo "==> guest template unit tests (native, no wasm)"
(cd guest-template && logged cargo test --locked)

echo "==> Python SDK and template unit tests (native, no wasm)"
(cd guest-sdk-python && logged python3 -m unittest discover -s tests)
(cd guest-template-python && PYTHONPATH=../guest-sdk-python logged python3 -m unittest)

echo "==> JavaScript SDK and template unit tests (native, no wasm)"
(cd guest-sdk-js && logged node --test)
(cd guest-template-js && logged node --test)

echo "==> fuzz targets (tests/fuzz.sh: every parser of outside bytes, 30 s each)"
tests/fuzz.sh

echo "==> schemathesis against a live broker (tests/schemathesis.sh, 60 s per API)"
tests/schemathesis.sh

echo "==> README quick start (tests/quickstart.sh)"
tests/quickstart.sh

echo "==> summary"
# cargo: "test result: ok. 12 passed; 0 failed; 3 ignored; ..."; unittest: "Ran 9 tests";
# node --test: "# pass 7" / "# fail 0". The last line is the plain closing line
# "tests: N passed, N failed, N skipped" that CI reads.
{
  echo "fuzz targets, schemathesis and the quick start: passed"
  awk '
    /^test result:/ { suites++; passed += $4; failed += $6; ignored += $8 }
    /^Ran [0-9]+ tests?/ { suites++; passed += $2 }
    /^# pass [0-9]+/ { suites++; passed += $3 }
    /^# fail [0-9]+/ { failed += $3 }
    END {
      printf "test suites run: %d\n", suites
      printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, ignored
      if (suites == 0 || passed == 0 || failed > 0) exit 1
    }' "$summary_log"
} | tee target/test-summary.txt

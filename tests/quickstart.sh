#!/usr/bin/env bash
# Runs the README's quick start, command for command, against a broker this script
# starts (config/broker.toml with both listeners on ephemeral ports and data in a
# temporary directory), and checks each command's output. Keep it in step with the
# "Quick start" section of README.md. Called by tests/run.sh after the cargo tests,
# whose debug binaries it reuses.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"

echo "==> quick start: binaries"
# RUSTMQ_QUICKSTART_BIN_DIR: a directory holding prebuilt rustmq-broker and rustmq-etl.
if [[ -n "${RUSTMQ_QUICKSTART_BIN_DIR:-}" ]]; then
  export PATH="$RUSTMQ_QUICKSTART_BIN_DIR:$PATH"
else
  (cd "$repo" && cargo build --locked -p rustmq-etl --bins)
  export PATH="$target/debug:$PATH"
fi

work="$(mktemp -d)"
broker_pid=""
cleanup() {
  if [[ -n "$broker_pid" ]]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "quickstart: $*" >&2
  if [[ -f "$work/broker.log" ]]; then echo "--- broker log:" >&2; tail -n 50 "$work/broker.log" >&2; fi
  exit 1
}

# expect <what> <output> <fixed string the output must contain>
expect() {
  if ! grep -qF -- "$3" <<<"$2"; then
    fail "$1: expected output containing [$3], got:
$2"
  fi
  echo "    ok: $1"
}

echo "==> quick start: broker on ephemeral ports"
mkfifo "$work/broker.out"
RUSTMQ_SERVER_ADMIN_ADDR=127.0.0.1:0 RUSTMQ_SERVER_MESSAGES_ADDR=127.0.0.1:0 \
RUSTMQ_STORAGE_DATA_DIR="$work/data" RUSTMQ_ETL_MODULES_PATH="$work/wasm" \
  rustmq-broker --config "$repo/config/broker.toml" >"$work/broker.out" 2>"$work/broker.log" &
broker_pid=$!
exec 3<"$work/broker.out"
read -r -t 60 listening <&3 || fail "the broker did not start"
admin="$(sed -n 's/.*admin=\([^ ]*\).*/\1/p' <<<"$listening")"
messages="$(sed -n 's/.*messages=\([^ ]*\).*/\1/p' <<<"$listening")"
# The README's commands use the default addresses; point them at this broker.
export RUSTMQ_CLI_ADMIN_URL="http://$admin" RUSTMQ_CLI_URL="http://$messages"
unset RUSTMQ_ADMIN_TOKEN

echo "==> quick start: the README's commands"
cd "$work"
out="$(rustmq-etl new message-processor)"
expect "rustmq-etl new" "$out" "created message-processor in message-processor"
cd message-processor
# Keep the module's build between runs (the README builds into ./target).
mkdir -p "$target/quickstart-module"
ln -s "$target/quickstart-module" target

out="$(env -u CARGO_TARGET_DIR cargo test --locked 2>&1)"
expect "cargo test" "$out" "test result: ok."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
env -u CARGO_TARGET_DIR cargo build --locked --target wasm32-wasip2 --release 2>&1 | tail -n 1
wasm=target/wasm32-wasip2/release/message_processor.wasm

out="$(rustmq-etl inspect "$wasm")"
expect "rustmq-etl inspect" "$out" "runnable: yes"
expect "rustmq-etl inspect world" "$out" "world:    rustmq:etl/etl-buffer@1.2.0"

out="$(rustmq-etl module upload "$wasm" --version 1.0.0)"
expect "module upload" "$out" "uploaded message-processor-v1.0.0 (component, "

cat > etl-pipeline.json <<'JSON'
{
  "pipeline_name": "message-transformation",
  "source_topic": "raw-events",
  "destination_topic": "processed-events",
  "error_topic": "etl-errors",
  "module_name": "message-processor",
  "module_version": "1.0.0"
}
JSON
out="$(rustmq-etl pipeline create etl-pipeline.json)"
expect "pipeline create" "$out" "created pipeline-1 (running, module message-processor-v1.0.0)"

out="$(rustmq-etl produce raw-events --key sensor-001 \
  -H content-type=application/json -H source=iot-sensors -H client_ip=192.168.1.100 \
  --value '{"temperature_celsius": 23.5, "humidity": 65.2, "sensor_id": "env001"}')"
expect "produce" "$out" "produced to raw-events at offset 0"

out="$(rustmq-etl consume processed-events --follow --count 1 --timeout-secs 60)"
expect "consume: key" "$out" "offset 0  key sensor-001"
expect "consume: enrichment" "$out" "  geo_country: Local"
expect "consume: provenance" "$out" "  x-rustmq-module: message-processor-v1.0.0"
expect "consume: transformed value" "$out" '"temperature_fahrenheit":74.3'
expect "consume: processed flag" "$out" '"_processed":true'

out="$(rustmq-etl pipeline metrics message-transformation)"
expect "pipeline metrics" "$out" "messages_processed:"

echo "==> quick start: ok"

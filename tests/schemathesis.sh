#!/usr/bin/env bash
# Runs schemathesis against a live broker (debug build, admin token set) on both APIs,
# from the OpenAPI documents the broker serves, for a bounded time each
# (RUSTMQ_SCHEMATHESIS_SECONDS, default 60; RUSTMQ_SCHEMATHESIS_ARGS adds arguments,
# e.g. "--phases coverage" or "--seed N" to replay a run). Installs schemathesis when missing, into a
# cache outside the repository. Fails on any finding: a 5xx, an answer (or its status
# or content type) that the document does not describe, an error not in the JSON error
# shape, an invalid request accepted, a route answering without the token, a deleted
# resource still answering.
#
# Not run: `positive_data_acceptance`, the check that a request valid by the document
# is accepted. The document does not encode every rule across fields (exactly one of
# "value" and "value_base64"; `version=` only with `name=`; a module that compiles), so
# such requests get a clear 4xx by design.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${RUSTMQ_SCHEMATHESIS_SECONDS:-60}"
tools="${XDG_CACHE_HOME:-$HOME/.cache}/rustmq-etl/schemathesis"
if [ ! -x "$tools/bin/schemathesis" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet schemathesis==4.32.5
fi

cargo build --locked -p rustmq-etl --bin rustmq-broker
work="$(mktemp -d)"
broker_pid=""
cleanup() {
  if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Two free loopback ports.
read -r admin_port messages_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks: s.close()')
token="schemathesis-$RANDOM$RANDOM"
cat > "$work/broker.toml" <<TOML
[server]
admin_addr = "127.0.0.1:$admin_port"
messages_addr = "127.0.0.1:$messages_port"
# Long polls end before schemathesis gives up on a request.
max_wait_ms = 1000
[storage]
data_dir = "$work/data"
# A deleted topic must stay deleted (no produce creates it again).
auto_create_topics = false
min_free_bytes = 0
[etl]
enabled = true
modules_path = "$work/wasm"
[admin]
token = "$token"
TOML
"$PWD/target/debug/rustmq-broker" --config "$work/broker.toml" >"$work/broker.log" 2>&1 &
broker_pid=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$messages_port/api/v1/topics" && break
  sleep 0.1
done

status=0
# schemathesis keeps a cache in its working directory: keep it out of the repository.
cd "$work"
for port in "$messages_port" "$admin_port"; do
  echo "==> schemathesis on http://127.0.0.1:$port (${seconds} s)"
  "$tools/bin/schemathesis" run "http://127.0.0.1:$port/api/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-time "$seconds" --request-timeout 20 --workers 1 \
    ${RUSTMQ_SCHEMATHESIS_ARGS:-} --no-color || status=1
done
if ! kill -0 "$broker_pid" 2>/dev/null; then
  echo "the broker exited during the run:" >&2
  status=1
fi
if grep -q 'panicked' "$work/broker.log"; then
  echo "the broker panicked during the run:" >&2
  grep -A5 'panicked' "$work/broker.log" >&2
  status=1
fi
exit "$status"

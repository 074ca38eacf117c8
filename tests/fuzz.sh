#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time: RUSTMQ_FUZZ_SECONDS each (default
# 30). Installs cargo-fuzz when missing, into a cache outside the repository. A crash
# fails the run; libFuzzer saves the reproducer in fuzz/artifacts/<target>/, and
# `tests/fuzz.sh` prints how to replay it. New inputs found go to a scratch corpus,
# never into the checked-in seeds (fuzz/corpus/<target>/).
#
# cargo-fuzz passes `-Z` flags to rustc (coverage instrumentation); RUSTC_BOOTSTRAP=1
# lets the stable toolchain take them, so no nightly is needed. No sanitizer: the code
# under test is safe Rust; debug assertions turn arithmetic overflow into crashes.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${RUSTMQ_FUZZ_SECONDS:-30}"
tools="${XDG_CACHE_HOME:-$HOME/.cache}/rustmq-etl/cargo-fuzz"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  cargo install cargo-fuzz --locked --version 0.13.2 --root "$tools"
fi
export PATH="$tools/bin:$PATH"
export RUSTC_BOOTSTRAP=1
# The instrumented build (wasmtime, librdkafka and OpenSSL included) takes ~12 min from
# nothing on two cores; it is kept outside the repository so that a fresh clone reuses it.
target_dir="${RUSTMQ_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rustmq-etl/fuzz-target}"
flags=(--sanitizer none --debug-assertions --target-dir "$target_dir")

# The fuzz crate is a workspace of its own with its own lock file; refuse to change it.
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null
cargo fuzz build "${flags[@]}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo fuzz list); do
  echo "==> fuzz $target (${seconds} s)"
  mkdir -p "$scratch/$target" "fuzz/corpus/$target"
  if ! cargo fuzz run "${flags[@]}" "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -max_len=65536 \
      -print_final_stats=1; then
    echo "fuzz target $target failed; replay the reproducer with:" >&2
    echo "  RUSTC_BOOTSTRAP=1 cargo fuzz run ${flags[*]} $target fuzz/artifacts/$target/<file>" >&2
    exit 1
  fi
done

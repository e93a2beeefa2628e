#!/bin/sh
# Installs every Debian package crudcast needs to build, test, benchmark and run its demo.
# Used by the README, .ci/run and deploy/Dockerfile, so the three never drift apart.
#   install-deps.sh          build + test + demo dependencies
#   install-deps.sh build    what building crudcast and the demo backend needs (deploy/Dockerfile)
#   install-deps.sh runtime  only the shared libraries the crudcast binary links against
#   install-deps.sh demo     runtime + the demo backend's library (deploy/Dockerfile's demo image)
set -eu

export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

RUNTIME="libyaml-cpp0.7 libssl3 ca-certificates libnats3.4 libhiredis0.14 libmimalloc2.0"
BUILD="build-essential cmake ninja-build ccache pkg-config git curl
  libboost1.81-dev rapidjson-dev libcpp-httplib-dev libyaml-cpp-dev libssl-dev libgtest-dev libgmock-dev
  libnats-dev libhiredis-dev libmimalloc-dev"
# Run-time library of the demo backend (crudcast-demo-backend links libcpp-httplib.so.0.11).
DEMO="libcpp-httplib0.11"
# Test and benchmark peers: real clients and servers nobody here wrote.
TEST="python3 python3-websockets nginx-light wrk procps prometheus chromium"
# The second reverse-proxy peer of bench/proxy.sh.
TEST="$TEST haproxy"
# The brokers several instances share (--bus nats:// / redis://): the tests start their own.
TEST="$TEST nats-server redis-server"
# The openssl command: nats_broker_test makes its test CA and server certificate with it.
TEST="$TEST openssl"
# Checks of deploy/ and every script (ctest: yaml_lint, shellcheck, systemd_unit, package_deb).
TEST="$TEST yamllint shellcheck systemd file python3-yaml"
# The layout and size checks of .ci/run.
TEST="$TEST clang-format"
# The fuzz targets of .ci/run (tests/fuzz): clang 14 and its libFuzzer/sanitizer runtimes.
TEST="$TEST clang libclang-rt-14-dev"
# llvm-symbolizer: sanitizer reports in CI name functions and lines instead of bare addresses
# (clang only recommends it, and recommends are not installed).
TEST="$TEST llvm-14"
# Node.js for examples/node and bench/node-broadcaster. Debian's npm conflicts with a nodejs that
# bundles its own npm (e.g. NodeSource's), so add them only when no npm is there yet.
if ! command -v npm >/dev/null 2>&1; then TEST="$TEST nodejs npm"; fi

case "${1:-all}" in
  runtime) PKGS="$RUNTIME" ;;
  build) PKGS="$RUNTIME $BUILD $DEMO" ;;
  demo) PKGS="$RUNTIME $DEMO" ;;
  all) PKGS="$RUNTIME $BUILD $DEMO $TEST" ;;
  *) echo "usage: $0 [all|build|runtime|demo]" >&2; exit 2 ;;
esac

# Skip apt entirely when everything is already there (fast re-runs, offline machines).
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
if [ -z "$missing" ]; then
  echo "install-deps: all packages already installed"
  exit 0
fi
$SUDO apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: installed:$missing"

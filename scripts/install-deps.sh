#!/usr/bin/env bash
# Installs every Debian 12 package coffer needs to build, run, test and benchmark.
# Idempotent: when everything is present it only runs dpkg-query and exits (well under a second).
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build ccache pkg-config
  # libraries
  libssl-dev libp11-kit-dev libtss2-dev libmicrohttpd-dev libgnutls28-dev libsqlite3-dev
  nlohmann-json3-dev libcli11-dev libtomlplusplus-dev libsystemd-dev libgfshare-dev
  # runtime helpers and test peers
  softhsm2 p11-kit opensc openssl sqlite3 curl
  swtpm swtpm-tools tpm2-tools
  libgtest-dev libgmock-dev googletest
  python3 python3-hvac python3-requests
  # benchmarks (bench/run.sh): the nginx reference and Google Benchmark
  nginx-light libbenchmark-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run this script as root (or: sudo $0)" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"

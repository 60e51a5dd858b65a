#!/usr/bin/env bash
# Installs what coffer needs, builds it (Ninja + ccache) and runs the whole test suite with
# ctest: unit and contract tests, and integration tests against real cofferd processes,
# SoftHSM tokens and TLS clients. ctest's summary is the last thing printed.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/build.sh
cd build
exec ctest --output-on-failure -j "$(nproc)" "$@"

#!/usr/bin/env bash
# Set up (system packages + default model and data) and run the whole test suite in release mode.
# Numeric tests on model-sized data are 10-100x slower in debug builds, hence -c release.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
SKIP_BUILD=1 scripts/setup.sh
swift test -c release -Xswiftc -enable-testing "$@"

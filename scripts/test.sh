#!/usr/bin/env bash
# Set up (system packages + default model and data) and run the whole test suite in release mode.
# Numeric tests on model-sized data are 10-100x slower in debug builds, hence -c release.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# The test set-up also fetches the optional Gemma 3 model: Gemma3IntegrationTests check the real GGUF.
SKIP_BUILD=1 scripts/setup.sh --with gemma3
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
# All tests are XCTest; swift-testing would only add a confusing "0 tests" line.
swift test -c release -Xswiftc -enable-testing --disable-swift-testing "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# The TRL bridge's unit tests (torch, transformers, trl, accelerate from PyPI; about two minutes to install, 30 s to
# run). Its slow parity tests against the Swift binary (about 30 minutes on 2 cores) run with python/test.sh alone.
if [ "$status" = 0 ]; then
  set +e
  python/test.sh -m "not slow" 2>&1 | tee -a "$log"
  status=${PIPESTATUS[0]}
  set -e
fi
summary=$(grep -E "Executed [0-9]+ tests?, with" "$log" | tail -n 1 || true)
if [ -n "$summary" ]; then
  total=$(echo "$summary" | sed -nE 's/.*Executed ([0-9]+) tests?.*/\1/p')
  failed=$(echo "$summary" | sed -nE 's/.* ([0-9]+) failures?.*/\1/p')
  skipped=$(echo "$summary" | sed -nE 's/.* ([0-9]+) tests? skipped.*/\1/p')
  total=${total:-0}; failed=${failed:-0}; skipped=${skipped:-0}
  echo "tests: $((total - failed - skipped)) passed, $failed failed, $skipped skipped"
fi
exit "$status"

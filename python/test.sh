#!/usr/bin/env bash
# The bridge's tests: installs the package (and torch, transformers, trl, accelerate, pytest) into the current
# python, then runs the unit tests and the slow parity tests against the Swift binary.
#   python/test.sh            # everything (the slow tests need .build/release/safeneuron or SAFENEURON_BIN)
#   python/test.sh -m "not slow"   # the unit tests only (~30 s after the install)
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install --no-input --quiet ".[test]"
exec python3 -m pytest -v -s tests "$@"

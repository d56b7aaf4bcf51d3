#!/usr/bin/env bash
# One-time (idempotent) set-up: system packages, default model and data, release build.
#   scripts/setup.sh                 # everything
#   scripts/setup.sh --with gemma3   # also the optional google/gemma-3-270m GGUF (Gemma Terms of Use)
#   SKIP_BUILD=1 scripts/setup.sh
set -euo pipefail
fetch_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --with) fetch_args+=(--with "$2"); shift 2 ;;
    --with=*) fetch_args+=(--with "${1#--with=}"); shift ;;
    *) echo "setup: unknown argument $1 (expected --with NAME)" >&2; exit 2 ;;
  esac
done
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

need_blas=1
for h in /usr/include/x86_64-linux-gnu/cblas.h /usr/include/aarch64-linux-gnu/cblas.h /usr/include/cblas.h; do
  [ -e "$h" ] && need_blas=0
done
if [ "$need_blas" = 1 ]; then
  echo "setup: installing libopenblas-dev" >&2
  sudo_cmd=""
  [ "$(id -u)" != 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq libopenblas-dev >/dev/null
fi

python3 scripts/fetch_data.py ${fetch_args[@]+"${fetch_args[@]}"}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "setup: building safeneuron (release)" >&2
  swift build -c release --product safeneuron 2>&1 | grep -E "error|warning: unre|Compiling safeneuron|Build complete" >&2 || true
  test -x .build/release/safeneuron
fi
echo "setup: done" >&2

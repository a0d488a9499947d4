#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz and runs each
# for SECONDS (default 60) on a scratch copy of its seed corpus. Exits non-zero
# on any finding (crash, broken invariant, sanitizer report, leak, timeout);
# the input that triggered it is kept as build-fuzz/fuzz-<target>-crash-*.
# Usage: scripts/fuzz.sh [SECONDS]     (FUZZ_BUILD_DIR overrides the build dir)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
build="${FUZZ_BUILD_DIR:-build-fuzz}"
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ not found (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHADOWTAP_FUZZ=ON \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" >/dev/null
cmake --build "$build" --target fuzz_framer fuzz_reassembler fuzz_h2 fuzz_h2_response -j2 >/dev/null

total=0
for target in framer reassembler h2 h2_response; do
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  cp tests/fuzz/corpus/"$target"/* "$work"/
  extra=()
  [[ -f tests/fuzz/http.dict && "$target" == framer ]] && extra+=(-dict=tests/fuzz/http.dict)
  log="$build/fuzz-$target.log"
  echo "fuzz.sh: fuzz_$target for ${seconds}s"
  if ! UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$build/tests/fuzz/fuzz_$target" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
      -print_final_stats=1 -artifact_prefix="$build/fuzz-$target-" "${extra[@]}" "$work" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz.sh: fuzz_$target found a problem (see $log)" >&2
    exit 1
  fi
  runs="$(awk '/stat::number_of_executed_units/ {print $2}' "$log")"
  echo "fuzz.sh: fuzz_$target ran ${runs:-?} inputs clean"
  total=$((total + ${runs:-0}))
  rm -rf "$work"
  trap - EXIT
done
echo "fuzz.sh: $total fuzz executions, no finding"

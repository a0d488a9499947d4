#!/usr/bin/env bash
# Builds every *_tests target with AddressSanitizer + UndefinedBehaviorSanitizer
# in build-asan and runs the unit tests (ctest -L unit). Any sanitizer report
# fails the run. The docs tests run the agent's --help, and the agent itself is not
# built here, so they are left to the main build. Usage: scripts/sanitize.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${ASAN_BUILD_DIR:-build-asan}"
# -O1 with line tables only: reports keep file:line, and the build (every test target,
# from scratch in CI) takes far less time than RelWithDebInfo's -O2 -g.
flags="-O1 -g1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=None \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
# Only what the unit tests need: kernel-program tests (bpf_tests) are not unit tests.
mapfile -t targets < <(cmake --build "$build" --target help | awk '/_tests$/ {print $2}' | grep -v '^bpf_tests$')
cmake --build "$build" -j2 --target "${targets[@]}" >/dev/null
cd "$build"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest -L unit -LE docs --output-on-failure "$@"

#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, kernel program,
# end to end in network namespaces). Needs root for the BPF and namespace tests:
# without root they skip with a message, except under CI=true where they fail.
# Extra arguments go to ctest, e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --browser   # Chromium: the report test renders a page
scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900 "$@"

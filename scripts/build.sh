#!/usr/bin/env bash
# Configures and builds shadowtap into build/ (or $BUILD_DIR). Extra args go to cmake.
# BUILD_TARGET=shadowtap builds only the agent (what scripts/demo.sh runs); the
# default builds everything, tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" ${BUILD_TARGET:+--target "$BUILD_TARGET"}

#!/usr/bin/env bash
# Installs dependencies (if missing), configures and builds everything into build/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh

mkdir -p build/logs
if ! cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_UNITY_BUILD=ON >build/logs/configure.log 2>&1; then
  echo "build: cmake configure FAILED; last lines of build/logs/configure.log:" >&2
  tail -n 40 build/logs/configure.log >&2
  exit 1
fi
cmake --build build -j"$(nproc)"

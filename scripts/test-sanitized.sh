#!/usr/bin/env bash
# Builds the pure tests (the *_test executables, no PostgreSQL) with AddressSanitizer and
# UndefinedBehaviorSanitizer in build-sanitize/ and runs them with ctest -LE pg. Any finding
# (memory error, leak, undefined behaviour) fails the run. The *_pgtest executables are not
# built here. Usage: scripts/test-sanitized.sh [extra ctest arguments, e.g. -R metrics]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh

build_dir=build-sanitize

mkdir -p "$build_dir/logs"
if ! cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_UNITY_BUILD=ON -DPGVIGIL_SANITIZE=ON \
  >"$build_dir/logs/configure.log" 2>&1; then
  echo "test-sanitized: cmake configure FAILED; last lines of $build_dir/logs/configure.log:" >&2
  tail -n 40 "$build_dir/logs/configure.log" >&2
  exit 1
fi
cmake --build "$build_dir" -j"$(nproc)" --target pure_tests

# halt_on_error: the first finding ends the test (ctest counts it failed); detect_leaks: a leak
# at exit is a finding too; abort_on_error off keeps the exit code non-zero without a core.
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:print_stacktrace=1:detect_stack_use_after_return=1:check_initialization_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# The *_pgtest executables that gtest_discover_tests would list are not built here: ctest
# stands in a <name>_NOT_BUILT test for each, which is not ours to run.
ctest --test-dir "$build_dir" -LE pg -E '_pgtest_NOT_BUILT$' --output-on-failure --no-tests=error \
  -j"$(nproc)" "$@"

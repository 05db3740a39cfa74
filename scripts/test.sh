#!/usr/bin/env bash
# Builds, then runs every check. Runs all of them even when one fails, and exits non-zero if any
# failed. Needs no terminal; as root, real-PostgreSQL tests run the server as user postgres.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/build.sh </dev/null

failed=()
# run_check <name> <command...>: runs one check, remembers a failure, never stops the script.
run_check() {
  local name=$1
  shift
  echo "=== check: $name"
  if "$@" </dev/null; then
    echo "=== ok: $name"
  else
    echo "=== FAILED: $name" >&2
    failed+=("$name")
  fi
}

run_check ctest ctest --test-dir build --output-on-failure --no-tests=error -j2

# ---- more checks go here (one run_check line each) -----------------------------------------------
run_check deploy scripts/check-deploy.sh
run_check readme-config-table scripts/update-readme-reference.sh --check
# The pure tests again, built with AddressSanitizer and UBSan in build-sanitize/ (about 5 min).
run_check sanitized scripts/test-sanitized.sh
# ---- end of checks --------------------------------------------------------------------------------

if [[ ${#failed[@]} -ne 0 ]]; then
  echo "test: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "test: all checks passed"

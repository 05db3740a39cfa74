#!/usr/bin/env bash
# Runs the real-PostgreSQL tests (ctest label "pg") five times over, to find the flaky ones.
# Clones this checkout's HEAD (committed work only) into a fresh temporary folder, builds it
# there with scripts/build.sh and runs
#   ctest --test-dir build --repeat until-fail:5 -L pg -j2 --output-on-failure
# With --with-cpu-hog, every core is kept busy while the tests run (after the build), as on a
# loaded CI machine: stress-ng (installed from Debian if missing), or busy shell loops when it
# cannot be had. The hog is stopped however the script ends.
# Prints one summary line and exits non-zero when any test failed. The clone is removed when
# everything passed, and kept (with its build/ and ctest log) when something failed.
# Usage: scripts/repeat-pg-tests.sh [--with-cpu-hog]
set -euo pipefail

hog=0
for argument in "$@"; do
  case $argument in
    --with-cpu-hog) hog=1 ;;
    -h | --help)
      sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "repeat-pg-tests: unknown argument $argument (try --help)" >&2
      exit 2
      ;;
  esac
done

source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
commit=$(git -C "$source_dir" rev-parse HEAD)
started_at=$(date +%s)
clone=$(mktemp -d /tmp/pgvigil-repeat-XXXXXX)
log=$clone/ctest-repeat.log

hog_pids=()
stop_hog() {
  local pid
  for pid in "${hog_pids[@]}"; do
    # Each hog runs in a process group of its own (setsid): stress-ng's workers go with it.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${hog_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  hog_pids=()
}
trap stop_hog EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_hog() {
  local cores
  cores=$(nproc)
  if ! command -v stress-ng >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
    echo "repeat-pg-tests: installing stress-ng"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends stress-ng \
      </dev/null >"$clone/install-stress-ng.log" 2>&1; then
      apt-get update </dev/null >>"$clone/install-stress-ng.log" 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends stress-ng \
        </dev/null >>"$clone/install-stress-ng.log" 2>&1 || true
    fi
  fi
  if command -v stress-ng >/dev/null 2>&1; then
    setsid stress-ng --cpu "$cores" --quiet </dev/null >/dev/null 2>&1 &
    hog_pids+=("$!")
    echo "repeat-pg-tests: CPU hog: stress-ng --cpu $cores (pid ${hog_pids[*]})"
  else
    local i
    for ((i = 0; i < cores; i++)); do
      setsid bash -c 'while :; do :; done' </dev/null >/dev/null 2>&1 &
      hog_pids+=("$!")
    done
    echo "repeat-pg-tests: CPU hog: $cores busy shell loops (pids ${hog_pids[*]})"
  fi
}

echo "repeat-pg-tests: cloning $commit into $clone"
git clone --quiet --no-checkout "$source_dir" "$clone/src"
git -C "$clone/src" checkout --quiet --detach "$commit"

echo "repeat-pg-tests: building (log: $clone/src/build/logs, output: $clone/build.log)"
if ! (cd "$clone/src" && scripts/build.sh </dev/null >"$clone/build.log" 2>&1); then
  tail -n 40 "$clone/build.log" >&2
  echo "repeat-pg-tests: FAILED: the build failed at ${commit:0:12}, $(($(date +%s) - started_at)) s (kept $clone)"
  exit 1
fi

if [[ $hog -eq 1 ]]; then start_hog; fi
tests_started_at=$(date +%s)
status=0
# pipefail (set above): the pipeline's status is ctest's, not tee's.
ctest --test-dir "$clone/src/build" --repeat until-fail:5 -L pg -j2 --output-on-failure \
  </dev/null 2>&1 | tee "$log" || status=$?
stop_hog

now=$(date +%s)
counts=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1 || true)
failed=$(grep -E '^[[:space:]]+[0-9]+ - ' "$log" | sed 's/^[[:space:]]*[0-9]* - //' | tr '\n' ' ' || true)
load=$([[ $hog -eq 1 ]] && echo "under a CPU hog" || echo "idle")
if [[ $status -eq 0 ]]; then
  echo "repeat-pg-tests: PASSED at ${commit:0:12}, until-fail:5, $load: ${counts:-no summary}; tests $((now - tests_started_at)) s, total $((now - started_at)) s"
  rm -rf "$clone"
else
  echo "repeat-pg-tests: FAILED at ${commit:0:12}, until-fail:5, $load: ${counts:-no summary}; failed: ${failed:-?}; tests $((now - tests_started_at)) s, total $((now - started_at)) s (kept $clone)"
fi
exit "$status"

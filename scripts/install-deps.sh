#!/usr/bin/env bash
# Installs the Debian 12 packages pgvigil needs to build and test. Idempotent: does nothing (and
# needs no root) when everything is present; runs `apt-get update` only when something is missing.
# Works on a bare debootstrap --variant=minbase system: no sudo, no systemd, no running services.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log_dir="${PGVIGIL_LOG_DIR:-$repo_root/build/logs}"
log_file="$log_dir/install-deps.log"

packages=(
  build-essential cmake ninja-build pkg-config
  libpq-dev libboost1.81-dev libyaml-cpp-dev prometheus-cpp-dev libsystemd-dev libspdlog-dev
  libcli11-dev nlohmann-json3-dev libssl-dev googletest libgtest-dev libgmock-dev
  postgresql postgresql-contrib pgbouncer prometheus systemd
  nftables iproute2 procps python3 python3-psycopg2 ca-certificates curl util-linux openssl
  # The drivers of tests/drivers/, each run with its defaults through pgvigil.
  python3-psycopg python3-asyncpg
  openjdk-17-jdk-headless libpostgresql-jdbc-java libhikaricp-java libslf4j-java
  golang-go golang-github-jackc-pgx-v4-dev
)
# Node.js and node-postgres (tests/drivers/node) come from Debian (nodejs, node-pg) unless this
# machine has a Node.js of its own, which Debian's node-pg does not install beside: then
# node-postgres comes from the npm registry, as tests/drivers/node/package-lock.json pins it.
command -v node >/dev/null 2>&1 || packages+=(nodejs node-pg)

install_node_driver() {
  local driver_dir="$repo_root/tests/drivers/node"
  [[ -f /usr/share/nodejs/pg/package.json || -f "$driver_dir/node_modules/pg/package.json" ]] &&
    return 0
  echo "install-deps: npm ci in tests/drivers/node"
  mkdir -p "$log_dir"
  npm ci --prefix "$driver_dir" --no-audit --no-fund </dev/null >>"$log_dir/npm-ci.log" 2>&1 || {
    echo "install-deps: npm ci FAILED; last lines of $log_dir/npm-ci.log:" >&2
    tail -n 20 "$log_dir/npm-ci.log" >&2
    return 1
  }
}

installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

missing=()
for package in "${packages[@]}"; do
  installed "$package" || missing+=("$package")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  install_node_driver
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo --preserve-env=PGVIGIL_LOG_DIR "$0" "$@"
  fi
  echo "install-deps: missing ${missing[*]}; run this script as root" >&2
  exit 1
fi

mkdir -p "$log_dir"
: >"$log_file"
echo "install-deps: installing ${missing[*]} (log: $log_file)"

# Package scripts must not start services (prometheus, pgbouncer, postgresql) on a build machine or
# in a chroot without an init: policy-rc.d exit 101 tells invoke-rc.d "not allowed". Only ours is
# removed afterwards.
policy=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
  local status=$?
  if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi
  if [[ $status -ne 0 ]]; then
    echo "install-deps: FAILED (exit $status); last lines of $log_file:" >&2
    tail -n 40 "$log_file" >&2 || true
  fi
  exit "$status"
}
trap cleanup EXIT
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  created_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {
  apt-get install -y --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" \
    </dev/null >>"$log_file" 2>&1
}

apt-get update </dev/null >>"$log_file" 2>&1

# The postgresql package creates and starts a "main" cluster on first install. Tests and run.sh
# start their own servers, so install postgresql-common first, switch that off in its
# createcluster.conf, and only then install the server. (Writing the file before postgresql-common
# exists would make ucf ask about a conflicting config file.)
if ! installed postgresql-15; then
  apt_install postgresql-common
  conf=/etc/postgresql-common/createcluster.conf
  if ! grep -Eq '^[[:space:]]*create_main_cluster[[:space:]]*=' "$conf" 2>/dev/null; then
    echo "create_main_cluster = false  # pgvigil: tests start their own servers" >>"$conf"
  fi
fi

apt_install "${missing[@]}"

still_missing=()
for package in "${missing[@]}"; do
  installed "$package" || still_missing+=("$package")
done
if [[ ${#still_missing[@]} -ne 0 ]]; then
  echo "install-deps: still missing after install: ${still_missing[*]}" >&2
  exit 1
fi
install_node_driver
echo "install-deps: done"

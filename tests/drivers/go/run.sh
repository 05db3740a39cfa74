#!/bin/sh
# run.sh HOST PORT [BUILD_DIR]
# Builds pgx_workload.go offline (GOPATH mode against Debian's golang-github-jackc-pgx-v4-dev
# under /usr/share/gocode; no module proxy) into BUILD_DIR (default: $PGVIGIL_DRIVER_BUILD_DIR/go,
# else a temporary directory removed afterwards; never the source tree), then runs it.
# Needs Debian's golang-go and golang-github-jackc-pgx-v4-dev. The Go build cache is
# BUILD_DIR/gocache unless GOCACHE is set: a cold build takes ~20 s, a warm one ~1 s.
# Exit status is the program's (0 only if all is right); 2 on usage or build errors.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 HOST PORT [BUILD_DIR]" >&2; exit 2; }
src=$(cd "$(dirname "$0")" && pwd)
gopath=/usr/share/gocode
[ -d "$gopath/src/github.com/jackc/pgx/v4" ] || { echo "missing $gopath/src/github.com/jackc/pgx/v4" >&2; exit 2; }
if [ $# -ge 3 ]; then out=$3
elif [ -n "${PGVIGIL_DRIVER_BUILD_DIR:-}" ]; then out=$PGVIGIL_DRIVER_BUILD_DIR/go
else out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
(cd "$out" && GO111MODULE=off GOPATH=$gopath GOCACHE=${GOCACHE:-$out/gocache} GOFLAGS='' GOPROXY=off \
  go build -o "$out/pgx_workload" "$src/pgx_workload.go") || exit 2
set +e
"$out/pgx_workload" "$1" "$2"

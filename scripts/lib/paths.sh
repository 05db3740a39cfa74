# Sourced by scripts/ and bench/: the two paths every tool needs, under one name each.
#   PGVIGIL_BINARY     the pgvigil binary (default: build/daemon/pgvigil of this checkout)
#   PGVIGIL_PG_BINDIR  PostgreSQL's server binaries (default: the first of Debian's
#                      /usr/lib/postgresql/{15,16,17}/bin that has initdb)
# The test harness reads the same two variables (tests/support).

pgvigil_repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PGVIGIL_BINARY=${PGVIGIL_BINARY:-$pgvigil_repo_root/build/daemon/pgvigil}
if [[ -z ${PGVIGIL_PG_BINDIR:-} ]]; then
  for pgvigil_candidate in /usr/lib/postgresql/{15,16,17}/bin; do
    if [[ -x $pgvigil_candidate/initdb ]]; then
      PGVIGIL_PG_BINDIR=$pgvigil_candidate
      break
    fi
  done
  unset pgvigil_candidate
fi
PGVIGIL_PG_BINDIR=${PGVIGIL_PG_BINDIR:-/usr/lib/postgresql/15/bin}

#!/bin/sh
# run.sh JDBC_URL [BUILD_DIR]
# Compiles PreparedWorkload.java into BUILD_DIR (default: $PGVIGIL_DRIVER_BUILD_DIR/java, else a
# temporary directory removed afterwards; never the source tree) and runs it against JDBC_URL,
# e.g. jdbc:postgresql://127.0.0.1:56432/postgres?user=postgres&sslmode=disable
# Needs Debian's libpostgresql-jdbc-java, libhikaricp-java, libslf4j-java and a JDK >= 11.
# Exit status is the program's (0 only if all is right); 2 on usage or build errors.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 JDBC_URL [BUILD_DIR]" >&2; exit 2; }
url=$1
src=$(cd "$(dirname "$0")" && pwd)
jars=/usr/share/java
cp="$jars/postgresql.jar:$jars/HikariCP.jar:$jars/slf4j-api.jar:$jars/slf4j-simple.jar"
for j in postgresql.jar HikariCP.jar slf4j-api.jar slf4j-simple.jar; do
  [ -f "$jars/$j" ] || { echo "missing $jars/$j" >&2; exit 2; }
done
if [ $# -ge 2 ]; then out=$2
elif [ -n "${PGVIGIL_DRIVER_BUILD_DIR:-}" ]; then out=$PGVIGIL_DRIVER_BUILD_DIR/java
else out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
javac -encoding UTF-8 -nowarn -d "$out" -cp "$cp" "$src/PreparedWorkload.java" || exit 2
set +e
java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$out:$cp" PreparedWorkload "$url"

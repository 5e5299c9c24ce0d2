#!/usr/bin/env bash
# Compiles MaskingRead.java against the Debian pgJDBC jar and runs it with the
# arguments given (OUT TASK...). Classes go to AIRLOCK_JDBC_CLASSES when set,
# compiled again only when the source is newer, so a test suite that runs the
# program many times compiles it once; otherwise to a scratch directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jar="${POSTGRESQL_JDBC_JAR:-/usr/share/java/postgresql.jar}"
[ -f "$jar" ] || { echo "pgJDBC jar not found at $jar (run .ci/install-test-deps.sh)" >&2; exit 1; }

if [ -n "${AIRLOCK_JDBC_CLASSES:-}" ]; then
    classes="$AIRLOCK_JDBC_CLASSES"
    mkdir -p "$classes"
else
    classes="$(mktemp -d)"
    trap 'rm -rf "$classes"' EXIT
fi
if [ ! -f "$classes/MaskingRead.class" ] || [ "$here/MaskingRead.java" -nt "$classes/MaskingRead.class" ]; then
    javac -encoding UTF-8 -d "$classes" -cp "$jar" "$here/MaskingRead.java"
fi
[ "$#" -eq 0 ] && exit 0
exec java -cp "$classes:$jar" MaskingRead "$@"

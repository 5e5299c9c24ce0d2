#!/usr/bin/env bash
# Compiles SessionTest.java against the Debian pgJDBC jar into a scratch
# directory and runs it; the program's exit code is this script's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jar="${POSTGRESQL_JDBC_JAR:-/usr/share/java/postgresql.jar}"
[ -f "$jar" ] || { echo "[jdbc] FAIL pgJDBC jar not found at $jar (run .ci/install-test-deps.sh)" >&2; exit 1; }

classes="$(mktemp -d)"
trap 'rm -rf "$classes"' EXIT

javac -encoding UTF-8 -d "$classes" -cp "$jar" "$here/SessionTest.java"
java -cp "$classes:$jar" SessionTest

#!/usr/bin/env bash
# Compiles MariaDbSessionTest.java against Debian's MariaDB Connector/J jar
# (libmariadb-java) into a scratch directory and runs it; the program's exit
# code is this script's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jar="${MARIADB_JDBC_JAR:-/usr/share/java/mariadb-java-client.jar}"
[ -f "$jar" ] || { echo "[mariadb-jdbc] FAIL MariaDB Connector/J jar not found at $jar (run .ci/install-test-deps.sh)" >&2; exit 1; }

classes="$(mktemp -d)"
trap 'rm -rf "$classes"' EXIT

javac -encoding UTF-8 -d "$classes" -cp "$jar" "$here/MariaDbSessionTest.java"
# The TLS check reads the driver's output stream chain down to the JDK's SSL socket.
java --add-opens java.base/java.io=ALL-UNNAMED --add-opens java.base/sun.security.ssl=ALL-UNNAMED \
    -cp "$classes:$jar" MariaDbSessionTest

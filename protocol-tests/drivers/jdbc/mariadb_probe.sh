#!/usr/bin/env bash
# Compiles MariaDbProbe.java against Debian's MariaDB Connector/J jar into a
# scratch directory and runs it (see the class's comment); its exit code is
# this script's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jar="${MARIADB_JDBC_JAR:-/usr/share/java/mariadb-java-client.jar}"
[ -f "$jar" ] || { echo "MariaDB Connector/J jar not found at $jar (run .ci/install-test-deps.sh)" >&2; exit 1; }

classes="$(mktemp -d)"
trap 'rm -rf "$classes"' EXIT

javac -encoding UTF-8 -d "$classes" -cp "$jar" "$here/MariaDbProbe.java"
java -Xmx1g -cp "$classes:$jar" MariaDbProbe

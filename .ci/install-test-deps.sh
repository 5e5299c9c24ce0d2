#!/usr/bin/env bash
# Installs what protocol-tests/drivers/ needs: psql, pgbench, the pgJDBC and
# MariaDB Connector/J drivers, a JDK, the mariadb client, sysbench, the Python
# drivers and the node drivers. Runs as root, non-interactive.
# Idempotent: apt and npm steps run only when something is missing, and pip is
# a no-op when the pins are satisfied, so a second run takes about two seconds.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
drivers="$repo_root/protocol-tests/drivers"

apt_missing=()
command -v psql >/dev/null || apt_missing+=(postgresql-client)
command -v pgbench >/dev/null || apt_missing+=(postgresql-contrib)
[ -f /usr/share/java/postgresql.jar ] || apt_missing+=(libpostgresql-jdbc-java)
command -v javac >/dev/null || apt_missing+=(default-jdk-headless)
command -v mariadb >/dev/null || apt_missing+=(mariadb-client)
[ -f /usr/share/java/mariadb-java-client.jar ] || apt_missing+=(libmariadb-java)
# The MySQL benchmark drives the gateway with sysbench.
command -v sysbench >/dev/null || apt_missing+=(sysbench)
# The inbox's browser test drives Debian's Chromium with playwright-core.
command -v chromium >/dev/null || apt_missing+=(chromium)

if [ "${#apt_missing[@]}" -gt 0 ]; then
    echo "install-test-deps: apt installing ${apt_missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi

# Always run pip: with everything already satisfied it takes about a second,
# and it picks up a changed pin in requirements.txt.
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    -r "$drivers/requirements.txt"

# The node tree also holds oidc-provider, the identity provider the single
# sign-on tests start.
# npm ci wipes and reinstalls node_modules every time, so only run it when the
# installed tree is missing or older than the lockfile.
node_dir="$drivers/node"
if [ ! -f "$node_dir/node_modules/.package-lock.json" ] ||
   [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
    echo "install-test-deps: npm ci in $node_dir"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "install-test-deps: ok"

#!/usr/bin/env bash
# asyncpg's own test suite, run directly against PostgreSQL and through
# Airlock, with the differences printed: the acceptance check that Airlock
# is transparent to the driver.
#
#   scripts/driver-suites/asyncpg.sh            # all three runs
#   ASYNCPG_SUITE_RUNS="direct allow" scripts/driver-suites/asyncpg.sh
#
# Runs (each prints "N passed, N failed, N skipped"):
#   direct   127.0.0.1:5432 as postgres (trust)
#   allow    through a gateway with an allow-everything policy and masking off
#   default  through a gateway with the shipped policies/default.toml
#            (approvals off: held statements are refused at once)
# Differences: allow must show no test that passes directly and fails
# through Airlock; default may differ only where the failure quotes
# Airlock's hold or denial of the test's own statement, or a masked value.
# A difference is rerun three times each way; one that also fails directly
# or passes through Airlock on a rerun is reported as timing-dependent.
# Exit status 1 when an unexplained difference remains.
#
# Idempotent: the sdist is fetched from PyPI once (checked against a pinned
# sha256), the suite database `asyncpg_suite` is made for the run and dropped
# after it.
# The suite is unittest-based and targets an existing server when PGHOST is
# set (asyncpg/_testbase uses RunningCluster then); tests that start their
# own clusters, edit pg_hba.conf or need Kerberos skip themselves.
# Takes about 5 minutes on two cores; not part of `cargo test`.
set -euo pipefail

version=0.32.0
sdist_sha256=45e64e56714d888330b884aad1dfb363d0bf43fb343e3d1a8968525f3bade478
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="${ASYNCPG_SUITE_DIR:-/tmp/airlock-asyncpg-suite}"
runs="${ASYNCPG_SUITE_RUNS:-direct allow default}"
db=asyncpg_suite
mkdir -p "$work"

# The driver (the same pin as protocol-tests/drivers) and the suite's one
# extra import.
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    "asyncpg==$version" "distro==1.9.0"

sdist="$work/asyncpg-$version.tar.gz"
if [ ! -f "$sdist" ]; then
    python3 - "$version" "$sdist" "$sdist_sha256" <<'PY'
# PyPI's simple index (JSON form) names the file; its hash must be the pinned one.
import hashlib, json, sys, urllib.request
version, dest, pinned = sys.argv[1:4]
name = f"asyncpg-{version}.tar.gz"
index = urllib.request.Request(
    "https://pypi.org/simple/asyncpg/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
)
(entry,) = [f for f in json.load(urllib.request.urlopen(index))["files"] if f["filename"] == name]
data = urllib.request.urlopen(entry["url"]).read()
if hashlib.sha256(data).hexdigest() != pinned:
    sys.exit(f"{name}: sha256 is not the pinned one")
open(dest, "wb").write(data)
PY
fi
# Only tests/ is used: the installed (compiled) asyncpg must be the one imported.
rm -rf "$work/suite" && mkdir -p "$work/suite"
tar -xzf "$sdist" -C "$work/suite" --strip-components=1 "asyncpg-$version/tests"

# The gateway from this checkout, copied so that a concurrent build cannot
# replace it mid-run.
(cd "$repo" && cargo build -q)
target="${CARGO_TARGET_DIR:-$repo/target}"
cp "$target/debug/airlock" "$work/airlock"

psql_direct() { PGOPTIONS="-c client_min_messages=warning" psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
psql_direct "DROP DATABASE IF EXISTS $db WITH (FORCE)"
psql_direct "CREATE DATABASE $db"
# Databases and roles some tests create and drop; a run that was cut short
# may have left them.
psql_direct "DROP DATABASE IF EXISTS asyncpg_intro_test WITH (FORCE)"
psql_direct "DROP DATABASE IF EXISTS testdb WITH (FORCE)"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    psql_direct "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
}
trap cleanup EXIT

# start_gateway NAME POLICY_FILE: starts a gateway, sets $port.
start_gateway() {
    local dir="$work/gw-$1"
    rm -rf "$dir" && mkdir -p "$dir/policies"
    cp "$2" "$dir/policies/"
    cat >"$dir/airlock.toml" <<TOML
state_dir = "$dir/var"
policies = "$dir/policies"
[postgres]
listen = "127.0.0.1:0"
upstream = "postgresql://postgres@127.0.0.1:5432/$db"
# The server allows 100 connections; tests that fail part-way leave theirs
# open, as they do directly.
pool_size = 90
[mysql]
listen = "127.0.0.1:0"
[inbox]
listen = "127.0.0.1:0"
[approval]
enabled = false
[[identity]]
name = "agent"
role = "agent"
password = "agent-secret"
TOML
    (cd "$dir" && AIRLOCK_LOG_LEVEL=info exec "$work/airlock" serve --config airlock.toml \
        >stdout.log 2>stderr.log) &
    pids+=("$!")
    port=""
    for _ in $(seq 100); do
        port=$(sed -n 's/^postgres listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$dir/stdout.log" 2>/dev/null || true)
        [ -n "$port" ] && return 0
        sleep 0.2
    done
    echo "gateway $1 did not start:" >&2
    cat "$dir/stderr.log" >&2
    exit 1
}

cat >"$work/allow.toml" <<'TOML'
[[rule]]
name = "allow-everything"
action = "allow"

[masking]
enabled = false
TOML

runner="$repo/scripts/driver-suites/suite_runner.py"
# suite NAME PORT USER PASSWORD [TESTS...]: one run, results in $work/NAME.jsonl
suite() {
    local name=$1 port=$2 user=$3 password=$4
    shift 4
    (cd "$work/suite" && PGHOST=127.0.0.1 PGPORT="$port" PGUSER="$user" PGPASSWORD="$password" \
        PGDATABASE="$db" timeout 1800 \
        python3 "$runner" run "$work/$name.jsonl" "$@" 2>"$work/$name.log" </dev/null)
}

declare -A ports=([direct]=5432)
declare -A users=([direct]=postgres)
for run in $runs; do
    case $run in
        direct) ;;
        allow) start_gateway allow "$work/allow.toml"; ports[allow]=$port; users[allow]=agent ;;
        default) start_gateway default "$repo/policies/default.toml"; ports[default]=$port; users[default]=agent ;;
        *) echo "unknown run $run" >&2; exit 2 ;;
    esac
done

for run in $runs; do
    echo "== $run: $(suite "$run" "${ports[$run]}" "${users[$run]}" agent-secret)"
done

status=0
for run in $runs; do
    [ "$run" = direct ] && continue
    [[ " $runs " == *" direct "* ]] || continue
    echo "== direct vs $run"
    classify=""
    [ "$run" = default ] && classify=--classify
    if python3 "$runner" diff "$work/direct.jsonl" "$work/$run.jsonl" $classify; then
        continue
    fi
    # Rerun what differs without explanation, each way.
    python3 "$runner" regressions "$work/direct.jsonl" "$work/$run.jsonl" $classify >"$work/regressions-$run.txt"
    while IFS= read -r tid; do
        # setUpClass entries cannot be run alone.
        [[ "$tid" == *"("* ]] && { echo "   unexplained: $tid"; status=1; continue; }
        direct_fails=0 gateway_passes=0
        for i in 1 2 3; do
            suite rerun-direct 5432 postgres agent-secret "$tid" | grep -q "^1 passed" || direct_fails=$((direct_fails + 1))
            suite rerun-gateway "${ports[$run]}" agent agent-secret "$tid" | grep -q "^1 passed" && gateway_passes=$((gateway_passes + 1))
        done
        if [ "$direct_fails" -gt 0 ] || [ "$gateway_passes" -gt 0 ]; then
            echo "   timing-dependent (reruns: direct failed $direct_fails/3, through Airlock passed $gateway_passes/3): $tid"
        else
            echo "   fails through Airlock every time: $tid"
            status=1
        fi
    done <"$work/regressions-$run.txt"
done
echo "results and logs in $work"
exit $status

#!/usr/bin/env bash
# pgbench through the server: initialisation (bulk load with COPY, VACUUM,
# primary keys), then read-only runs in the simple and prepared protocols and
# a short TPC-B-like write run in the extended protocol.
#
# Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
# pgbench's table names (pgbench_*) are fixed, so two copies of this script
# must not share a database; no other driver session uses those names.
# Prints one line per step, exits 1 on the first failure.
set -euo pipefail

out="$(mktemp)"
trap 'rm -f "$out"' EXIT

ok() { echo "[pgbench] ok   $*"; }
fail() {
    echo "[pgbench] FAIL $*" >&2
    exit 1
}

# Runs pgbench with a time limit (a stuck server must not hang the caller),
# keeping its combined output in $out for the checks.
run_pgbench() {
    timeout 120 pgbench "$@" >"$out" 2>&1 || fail "pgbench $* exited $?:"$'\n'"$(cat "$out")"
}

# A benchmark run passed when every transaction was processed and pgbench
# reported no failures (pgbench < 15 has no failure line at all).
check_run() { # expected "processed/planned", description
    grep -qxF "number of transactions actually processed: $1" "$out" ||
        fail "$2: expected $1 transactions processed:"$'\n'"$(cat "$out")"
    if grep -q '^number of failed transactions:' "$out"; then
        grep -q '^number of failed transactions: 0 ' "$out" ||
            fail "$2: failed transactions reported:"$'\n'"$(cat "$out")"
    fi
    ok "$2 ($(grep -E '^tps = ' "$out" | head -1))"
}

scalar() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }

# d=drop, t=create tables, g=client-side generate via COPY, v=vacuum, p=primary keys.
run_pgbench -i -s 1 -I dtgvp
[ "$(scalar 'SELECT count(*) FROM pgbench_accounts')" = "100000" ] || fail "init: pgbench_accounts is not 100000 rows"
[ "$(scalar "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'pgbench_%_pkey'")" = "3" ] ||
    fail "init: primary keys missing"
ok "pgbench -i -s 1 (COPY 100000 rows, vacuum, primary keys)"

# -n: the tables were just vacuumed by the initialisation.
run_pgbench -n -S -M simple -c 2 -j 2 -t 200
check_run "400/400" "select-only, simple protocol, 2 clients"

run_pgbench -n -S -M prepared -c 2 -j 2 -t 200
check_run "400/400" "select-only, prepared statements, 2 clients"

run_pgbench -n -M extended -t 50
check_run "50/50" "TPC-B-like writes, extended protocol"
[ "$(scalar 'SELECT count(*) FROM pgbench_history')" = "50" ] || fail "TPC-B run: pgbench_history does not hold 50 rows"
# Each TPC-B transaction adds the same delta to an account, a teller, a
# branch and the history, so all four sums agree only if none was torn.
balanced="SELECT (SELECT sum(delta) FROM pgbench_history) = ALL (ARRAY[
    (SELECT sum(abalance) FROM pgbench_accounts),
    (SELECT sum(tbalance) FROM pgbench_tellers),
    (SELECT sum(bbalance) FROM pgbench_branches)])"
[ "$(scalar "$balanced")" = "t" ] || fail "TPC-B run: account, teller and branch balances do not match the history"
ok "TPC-B writes are all committed (history rows and balances agree)"

run_pgbench -i -I d
ok "pgbench tables dropped"

echo "[pgbench] session passed"

#!/usr/bin/env bash
# A large result, directly from PostgreSQL and through Airlock with masking
# on, in the same run: psql fetches SELECT * of a 1,000,000-row table into
# /dev/null, once in one piece and once through a cursor (FETCH_COUNT).
# Prints the median time of each and the ratio as a Markdown table, then
# the gateway's peak resident memory, which stays flat if rows stream.
#
#   benches/large-result.sh [rows] [rounds]      (defaults: 1000000, 3)
#   AIRLOCK_BIN=path/to/airlock benches/large-result.sh ...   (another build)
#
# Needs: PostgreSQL at 127.0.0.1:5432 (trust auth for postgres), psql.
# Every row has an email; every fifth note a card number and a phone
# number, every fifth another an IBAN: through Airlock every row is
# rewritten, which is the expensive path. Runs alternate direct / through
# so that drift on a shared machine hits both.
set -euo pipefail

rows="${1:-1000000}"
rounds="${2:-3}"
fetch_count=10000
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=benches/support/airlock.sh
. "$root/benches/support/airlock.sh"
work="$(mktemp -d)"
db="airlock_large_$$"
password="bench-$$"
airlock_pid=""

cleanup() {
    # Every step runs, whatever the one before it returned.
    set +e
    [ -n "$airlock_pid" ] && kill "$airlock_pid" 2>/dev/null && wait "$airlock_pid" 2>/dev/null
    psql -X -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
    true
}
trap cleanup EXIT

select_airlock "$root"

psql -X -q -h 127.0.0.1 -U postgres -d test -c "CREATE DATABASE $db" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d "$db" >/dev/null <<SQL
CREATE TABLE t (id bigint PRIMARY KEY, email text, note text, amount numeric, created timestamptz);
INSERT INTO t
SELECT i,
       'user' || i || '@example.com',
       CASE i % 5
           WHEN 0 THEN 'refund to card 4111 1111 1111 1111; call back on +44 20 7946 0' || lpad((i % 1000)::text, 3, '0')
           WHEN 1 THEN 'paid from IBAN DE89 3704 0044 0532 0130 00, receipt sent'
           WHEN 2 THEN 'order ' || i || ' shipped from warehouse ' || i % 7 || ', tracking updated'
           ELSE 'delivered on time, signed for at the front desk'
       END,
       ((i % 100000) / 100.0)::numeric(12, 2),
       timestamptz '2026-01-01 00:00:00+00' - i * interval '1 minute'
FROM generate_series(1, $rows) AS i;
VACUUM ANALYZE t;
SQL

postgres_config "$work/airlock.toml" "$work/var" "$password" "$db" 4

"$airlock_bin" serve --config "$work/airlock.toml" >"$work/stdout" 2>"$work/stderr" &
airlock_pid=$!
port="$(listening_port "$work/stdout" postgres "$airlock_pid")"
[ -n "$port" ] || { echo "airlock did not start:" >&2; cat "$work/stderr" >&2; exit 1; }

hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$airlock_pid/status"; }
hwm_start="$(hwm)"

# fetch PORT USER [psql options...] -> seconds; the rows go to OUT if set.
fetch() {
    local port="$1" user="$2" start end
    shift 2
    start="$(date +%s.%N)"
    PGPASSWORD="$password" psql -X -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$user" -d "$db" \
        "$@" -c "SELECT * FROM t" >"${OUT:-/dev/null}"
    end="$(date +%s.%N)"
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", e - s }'
}

# Once through Airlock, untimed: every row arrives, masked.
OUT="$work/through.txt" fetch "$port" bench -v FETCH_COUNT=$fetch_count >/dev/null
got="$(wc -l <"$work/through.txt")"
emails="$(grep -c '|<EMAIL>|' "$work/through.txt" || true)"
cards="$(grep -c '<CARD>' "$work/through.txt" || true)"
result_bytes="$(wc -c <"$work/through.txt")"
[ "$got" -eq "$rows" ] || { echo "through Airlock: $got rows of $rows" >&2; exit 1; }
example="$(grep -m1 '^5|' "$work/through.txt")"
rm -f "$work/through.txt"
hwm_before="$(hwm)"

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

: >"$work/d1" && : >"$work/a1" && : >"$work/dc" && : >"$work/ac"
for _ in $(seq "$rounds"); do
    fetch 5432 postgres >>"$work/d1"
    fetch "$port" bench >>"$work/a1"
    fetch 5432 postgres -v FETCH_COUNT=$fetch_count >>"$work/dc"
    fetch "$port" bench -v FETCH_COUNT=$fetch_count >>"$work/ac"
done
hwm_after="$(hwm)"

echo "SELECT * of $rows rows ($(( result_bytes / 1048576 )) MiB as psql -At text), median of ${rounds} rounds, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "Through Airlock: $emails of $rows emails and $cards cards masked; row 5 reads \`$example\`."
echo
echo "| fetch | direct | Airlock | ratio | Airlock rows/s |"
echo "|---|---|---|---|---|"
for variant in "one piece:1" "FETCH_COUNT $fetch_count:c"; do
    name="${variant%%:*}" suffix="${variant##*:}"
    d="$(median <"$work/d$suffix")" a="$(median <"$work/a$suffix")"
    awk -v n="$name" -v d="$d" -v a="$a" -v r="$rows" 'BEGIN {
        printf "| %s | %.2f s | %.2f s | %.2f | %.0f |\n", n, d, a, a / d, r / a
    }'
done
echo
echo "Airlock peak RSS (VmHWM): $(( hwm_start / 1024 )) MiB at start, $(( hwm_before / 1024 )) MiB after the first fetch, $(( hwm_after / 1024 )) MiB after all $(( rounds * 2 + 1 )) fetches through it."

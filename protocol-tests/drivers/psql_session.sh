#!/usr/bin/env bash
# Scripted psql sessions, run against the gateway or directly against Postgres.
# Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE
# (psql reads them itself). Prints one line per step, exits 1 on the first
# failure.
#
# AIRLOCK_EXPECT_FASTPATH_REFUSED=1: the server is the gateway, which refuses
# fastpath function calls, so \lo_import must fail with a "fastpath" error.
# Unset: the server is plain Postgres, so \lo_import must succeed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

ok() { echo "[psql] ok   $*"; }
fail() {
    echo "[psql] FAIL $*" >&2
    exit 1
}
# A stuck server must fail this script, not hang the caller.
run_psql() { timeout 60 psql -X -v ON_ERROR_STOP=1 "$@"; }

expect_line() { # file, exact line, what
    grep -qxF -- "$2" "$1" || fail "$3: no line '$2' in output:"$'\n'"$(cat "$1")"
}

cat >"$work/psql_in.csv" <<'CSV'
id,name,qty
3,"cherry, red",7
4,durian,
5,elderberry ü,2
CSV

(cd "$work" && run_psql -f "$here/psql_session.sql") >"$work/stdout" 2>"$work/stderr" ||
    fail "psql session exited $?:"$'\n'"$(cat "$work/stderr")"
ok "scripted session ran (CREATE, INSERT, \\copy, \\d, multi-statement, \\gset)"

expect_line "$work/stdout" "INSERT 0 2" "insert"
expect_line "$work/stdout" "COPY 3" "\\copy from file"
expect_line "$work/stdout" "COPY 5" "\\copy to file"
ok "command tags for INSERT and both \\copy directions"

expected_csv='id,name,qty
1,apple,3
2,banana,
3,"cherry, red",7
4,durian,
5,elderberry ü,2'
[ "$(cat "$work/psql_out.csv")" = "$expected_csv" ] ||
    fail "\\copy to file wrote:"$'\n'"$(cat "$work/psql_out.csv")"
ok "\\copy to file contents"

grep -qF 'Table "public.psql_items"' "$work/stdout" || fail "\\d header missing"
for col in "id *| integer" "name *| text" "qty *| integer"; do
    grep -qE "^ *$col " "$work/stdout" || fail "\\d lacks column line matching '$col':"$'\n'"$(cat "$work/stdout")"
done
grep -qF '"psql_items_pkey" PRIMARY KEY, btree (id)' "$work/stdout" || fail "\\d lacks the primary key index"
ok "\\d psql_items lists columns and index"

expect_line "$work/stdout" "UPDATE 1" "first statement of the line"
expect_line "$work/stdout" "DELETE 1" "second statement of the line"
expect_line "$work/stdout" "remaining" "third statement's column"
expect_line "$work/stdout" "4" "third statement's row count"
expect_line "$work/stdout" "first_result" "first result of the \\; query"
expect_line "$work/stdout" "multi" "first result of the \\; query"
expect_line "$work/stdout" "second_result" "second result of the \\; query"
expect_line "$work/stdout" "statement" "second result of the \\; query"
ok "multi-statement lines"

expect_line "$work/stdout" "gset: max_id=5 total_qty=13" "\\gset variables"
ok "\\gset"

expect_line "$work/stdout" "2|banana|<NULL>" "NULL display"
expect_line "$work/stdout" "5|elderberry ü|2" "row selected via a \\gset variable"
ok "NULL display and \\gset variable in a query"

# \lo_import talks to the server through libpq's fastpath function-call
# messages, which the gateway refuses.
head -c 3000 /dev/urandom >"$work/blob.bin"
blob_md5="$(md5sum "$work/blob.bin" | cut -d' ' -f1)"
if [ "${AIRLOCK_EXPECT_FASTPATH_REFUSED:-}" = "1" ]; then
    rc=0
    run_psql -c "\\lo_import '$work/blob.bin'" >"$work/lo.stdout" 2>"$work/lo.stderr" || rc=$?
    [ "$rc" -ne 0 ] || fail "\\lo_import succeeded but the gateway should refuse fastpath calls"
    grep -qi fastpath "$work/lo.stderr" ||
        fail "\\lo_import failed (exit $rc) without mentioning fastpath:"$'\n'"$(cat "$work/lo.stderr")"
    ok "\\lo_import refused with a fastpath error (exit $rc)"
else
    run_psql -At -v blob_md5="$blob_md5" >"$work/lo.stdout" 2>"$work/lo.stderr" <<SQL ||
\\lo_import '$work/blob.bin'
SELECT length(lo_get(:LASTOID)), md5(lo_get(:LASTOID)) = :'blob_md5';
\\lo_unlink :LASTOID
SQL
        fail "\\lo_import/\\lo_unlink failed:"$'\n'"$(cat "$work/lo.stderr")"
    expect_line "$work/lo.stdout" "3000|t" "large object length and md5"
    grep -qE '^lo_unlink [0-9]+$' "$work/lo.stdout" || fail "no lo_unlink confirmation:"$'\n'"$(cat "$work/lo.stdout")"
    ok "\\lo_import, contents check and \\lo_unlink"
fi

[ "$(run_psql -At -c 'SELECT 1' 2>&1)" = "1" ] || fail "a new psql session after \\lo_import could not SELECT 1"
ok "new psql session still works after \\lo_import"

echo "[psql] session passed"

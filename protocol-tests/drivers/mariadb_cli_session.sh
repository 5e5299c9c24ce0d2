#!/usr/bin/env bash
# Scripted sessions with the `mariadb` command-line client (batch mode) and
# `mariadb-admin`, run against the gateway or directly against MySQL/MariaDB.
# Connection settings come from MYSQL_HOST, MYSQL_PORT, MYSQL_USER,
# MYSQL_PASSWORD, MYSQL_DATABASE. Every object this script creates is prefixed
# mcli_ so other sessions can share the database. Prints one line per step,
# exits 1 on the first failure, and gives up after 60 s in all.
#
# MYSQL_TLS=require: --ssl without certificate verification. The client falls
# back to plaintext when the server does not offer TLS, so the script checks
# the client's own `status` line and fails if no cipher is in use. Anything
# else: --skip-ssl (the 10.11 client would otherwise use TLS when offered).
#
# MYSQL_AUTH=caching_sha2_password or mysql_native_password: --default-auth.
# The client silently falls back to its built-in native plugin when it cannot
# load the one asked for, so the plugin's shared object must be present.
set -euo pipefail

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

ok() { echo "[mariadb-cli] ok   $*"; }
skip() { echo "[mariadb-cli] skip $*"; }
fail() {
    echo "[mariadb-cli] FAIL $*" >&2
    exit 1
}
for var in MYSQL_HOST MYSQL_PORT MYSQL_USER MYSQL_DATABASE; do
    [ -n "${!var:-}" ] || fail "environment variable $var is not set"
done
db="$MYSQL_DATABASE"
# The clients read the password from the environment, which keeps it off the
# command line (and out of the "insecure password" warning).
export MYSQL_PWD="${MYSQL_PASSWORD:-}"

conn=(--host="$MYSQL_HOST" --port="$MYSQL_PORT" --user="$MYSQL_USER" --protocol=TCP --connect-timeout=10 --default-character-set=utf8mb4)
if [ "${MYSQL_TLS:-}" = "require" ]; then
    conn+=(--ssl --skip-ssl-verify-server-cert)
else
    conn+=(--skip-ssl)
fi
case "${MYSQL_AUTH:-}" in
"") ;;
mysql_native_password) conn+=(--default-auth=mysql_native_password) ;;
caching_sha2_password)
    plugin_dir="${MARIADB_PLUGIN_DIR:-$(ls -d /usr/lib/*/libmariadb3/plugin 2>/dev/null | head -n1)}"
    [ -f "$plugin_dir/caching_sha2_password.so" ] ||
        fail "MYSQL_AUTH=caching_sha2_password but no caching_sha2_password.so in '${plugin_dir}' (set MARIADB_PLUGIN_DIR)"
    conn+=(--plugin-dir="$plugin_dir" --default-auth=caching_sha2_password)
    ;;
*) fail "MYSQL_AUTH=${MYSQL_AUTH} is not a plugin this session knows" ;;
esac

# A stuck server must fail this script, not hang the caller: every client
# gets only what is left of the 60 s.
DEADLINE=$((SECONDS + 60))
time_left() {
    local left=$((DEADLINE - SECONDS))
    [ "$left" -gt 0 ] || fail "session exceeded 60s"
    echo "$left"
}
mdb() { timeout "$(time_left)" mariadb "${conn[@]}" --max-allowed-packet=64M "$@" "$db"; }
# Batch mode, no column names; stdin is the SQL.
mdb_batch() { mdb --batch --skip-column-names "$@"; }

expect_same() { # actual file, expected file, what
    diff -u "$2" "$1" >"$work/diff" || fail "$3 differs (expected vs actual):"$'\n'"$(cat "$work/diff")"
}
expect_line() { # file, exact line, what
    grep -qxF -- "$2" "$1" || fail "$3: no line '$2' in output:"$'\n'"$(cat "$1")"
}
run_into() { # name, mdb_batch args... (stdin: SQL); stdout to $work/name.out
    local name="$1"
    shift
    mdb_batch "$@" >"$work/$name.out" 2>"$work/$name.err" ||
        fail "$name: mariadb exited $?:"$'\n'"$(cat "$work/$name.err")"
}

# --- connection, TLS state, auth ------------------------------------------
mdb -e status >"$work/status.out" 2>"$work/status.err" ||
    fail "connect: mariadb exited $?:"$'\n'"$(cat "$work/status.err")"
ssl_line="$(grep -E '^SSL:' "$work/status.out" || true)"
if [ "${MYSQL_TLS:-}" = "require" ]; then
    [[ "$ssl_line" =~ ^SSL:[[:space:]]+Cipher\ in\ use\ is\ [A-Za-z0-9_-]+$ ]] ||
        fail "MYSQL_TLS=require but the session is not encrypted (the client fell back to plaintext?): '${ssl_line}'"
else
    [[ "$ssl_line" =~ ^SSL:[[:space:]]+Not\ in\ use$ ]] || fail "TLS off but status says '${ssl_line}'"
fi
ok "connect (${ssl_line//$'\t'/ }, auth ${MYSQL_AUTH:-client default})"

# --- objects ----------------------------------------------------------------
cleanup_sql="DROP TABLE IF EXISTS mcli_items, mcli_types, mcli_short;
DROP PROCEDURE IF EXISTS mcli_two_results;"
run_into setup <<SQL
$cleanup_sql
CREATE TABLE mcli_items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL UNIQUE, qty INT) CHARACTER SET utf8mb4;
CREATE TABLE mcli_types (id INT PRIMARY KEY, c_int INT, c_bigint BIGINT, c_decimal DECIMAL(12,2), c_double DOUBLE,
  c_date DATE, c_datetime DATETIME(6), c_time TIME, c_year YEAR, c_varchar VARCHAR(100) CHARACTER SET utf8mb4,
  c_text TEXT CHARACTER SET utf8mb4, c_blob BLOB, c_json JSON, c_enum ENUM('small','medium','large'), c_bit BIT(8)
) CHARACTER SET utf8mb4;
CREATE TABLE mcli_short (s VARCHAR(3));
DELIMITER //
CREATE PROCEDURE mcli_two_results(IN k INT)
BEGIN
  SELECT k AS first_k;
  SELECT k * 2 AS doubled, 'two' AS tag;
END //
DELIMITER ;
SQL
[ ! -s "$work/setup.out" ] || fail "setup printed:"$'\n'"$(cat "$work/setup.out")"
ok "create tables and a procedure (dropping leftovers first)"

# --- DML: affected rows and info strings from the OK packets ------------------
blob_hex="$(printf '%02X' $(seq 0 255))"
json='{"a": [1, 2, {"b": null}], "s": "ü🐬"}'
# -vv prints, after each statement, what the OK packet said.
run_into dml -vv --show-warnings <<SQL
INSERT INTO mcli_items (name, qty) VALUES ('apple', 3);
INSERT INTO mcli_items (name, qty) VALUES ('banana', 5), ('cherry', 5), ('durian', NULL);
SELECT CONCAT('last_insert_id=', LAST_INSERT_ID());
UPDATE mcli_items SET qty = 5 WHERE id <= 3;
INSERT INTO mcli_types VALUES (1, -2147483648, 9223372036854775807, -1234567890.12, 0.1, '2024-02-29',
  '2024-03-10 12:34:56.789012', '-25:30:01', 2155, 'héllo wörld — 日本語 🐬',
  'Ünïcödé\nline ''two'' "quoted" back\\\\slash\ttab', X'$blob_hex', '$json', 'medium', b'10100101');
INSERT INTO mcli_types (id) VALUES (2);
SQL
grep -E '^(Query OK|Records:|Rows matched:|Warning|Note|Error)' "$work/dml.out" >"$work/dml.status" || true
cat >"$work/dml.expected" <<'EOF'
Query OK, 1 row affected
Query OK, 3 rows affected
Records: 3  Duplicates: 0  Warnings: 0
Query OK, 1 row affected
Rows matched: 3  Changed: 1  Warnings: 0
Query OK, 1 row affected
Query OK, 1 row affected
EOF
expect_same "$work/dml.status" "$work/dml.expected" "affected rows and info lines"
expect_line "$work/dml.out" "last_insert_id=2" "LAST_INSERT_ID() after a 3-row insert"
ok "INSERT/UPDATE affected rows, Records and Rows matched/Changed lines, LAST_INSERT_ID()"

# --- every type back, as the client received it -------------------------------
run_into types --binary-as-hex <<'SQL'
SELECT * FROM mcli_types WHERE id = 1;
SQL
# Batch mode escapes tab, newline and backslash; --binary-as-hex prints the
# BLOB and BIT bytes the client received as 0x...
{
    printf '1\t-2147483648\t9223372036854775807\t-1234567890.12\t0.1\t2024-02-29\t2024-03-10 12:34:56.789012\t-25:30:01\t2155\t'
    printf '%s\t' 'héllo wörld — 日本語 🐬' 'Ünïcödé\nline '"'two'"' "quoted" back\\slash\ttab' "0x$blob_hex" "$json" medium
    printf '0xA5\n'
} >"$work/types.expected"
expect_same "$work/types.out" "$work/types.expected" "types read back"
# --binary-as-hex prints a NULL BLOB or BIT as "0x", so NULLs are read without it.
run_into types_null <<'SQL'
SELECT * FROM mcli_types WHERE id = 2;
SELECT LENGTH(c_blob), CHAR_LENGTH(c_varchar), LENGTH(c_varchar), JSON_VALUE(c_json, '$.s'),
  c_decimal + 0.01, c_time + 0, CAST(c_datetime AS CHAR), HEX(c_bit) FROM mcli_types WHERE id = 1;
SQL
{
    printf '2\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\n'
    printf '256\t19\t32\tü🐬\t-1234567890.11\t-253001\t2024-03-10 12:34:56.789012\tA5\n'
} >"$work/types_null.expected"
expect_same "$work/types_null.out" "$work/types_null.expected" "all-NULL row and server-side checks"
ok "types round-trip (every column exact, all-NULL row, server-side checks)"

# --- transactions -------------------------------------------------------------
run_into tx <<'SQL'
START TRANSACTION;
INSERT INTO mcli_items (name, qty) VALUES ('rolled-back', 1);
SELECT COUNT(*) FROM mcli_items WHERE name = 'rolled-back';
ROLLBACK;
SELECT COUNT(*) FROM mcli_items WHERE name = 'rolled-back';
START TRANSACTION;
INSERT INTO mcli_items (name, qty) VALUES ('committed', 7);
COMMIT;
SQL
printf '1\n0\n' >"$work/tx.expected"
expect_same "$work/tx.out" "$work/tx.expected" "counts inside and after the rolled-back transaction"
echo "SELECT qty FROM mcli_items WHERE name = 'committed'" | run_into tx2
printf '7\n' >"$work/tx2.expected"
expect_same "$work/tx2.out" "$work/tx2.expected" "committed row seen by a new connection"
ok "transaction rolled back (row absent) and one committed (seen by a new connection)"

# --- errors (--force goes on after them on the same connection) --------------
rc=0
mdb_batch --force >"$work/err.out" 2>"$work/err.err" <<'SQL' || rc=$?
INSERT INTO mcli_items (name, qty) VALUES ('apple', 1);
SELECT CONCAT('after duplicate, connection ', CONNECTION_ID() = @@pseudo_thread_id);
SELECT * FROM mcli_no_such_table;
SELECT 41 + 1;
SQL
# With --force the client reports the errors on stderr but exits 0 in batch mode.
[ "$rc" -eq 0 ] || fail "mariadb --force exited $rc:"$'\n'"$(cat "$work/err.err")"
cat >"$work/err.expected" <<EOF
ERROR 1062 (23000) at line 1: Duplicate entry 'apple' for key 'name'
ERROR 1146 (42S02) at line 3: Table '$db.mcli_no_such_table' doesn't exist
EOF
# --force also echoes each failing statement to stderr; compare the ERROR lines.
grep '^ERROR' "$work/err.err" >"$work/err.lines" || true
expect_same "$work/err.lines" "$work/err.expected" "error lines"
printf 'after duplicate, connection 1\n42\n' >"$work/err.out.expected"
expect_same "$work/err.out" "$work/err.out.expected" "results after the errors"
ok "errors 1062/23000 and 1146/42S02, statements after them still run"

# --- warnings -----------------------------------------------------------------
run_into warn --show-warnings <<'SQL'
SET SESSION sql_mode = '';
INSERT INTO mcli_short VALUES ('abcdef');
SELECT s FROM mcli_short;
SET SESSION sql_mode = 'ERROR_FOR_DIVISION_BY_ZERO';
SELECT 1/0;
SHOW WARNINGS;
SQL
# --show-warnings asks for SHOW WARNINGS only when the OK/EOF packet counted some.
cat >"$work/warn.expected" <<'EOF'
Warning (Code 1265): Data truncated for column 's' at row 1
abc
NULL
Warning (Code 1365): Division by 0
Warning	1365	Division by 0
EOF
expect_same "$work/warn.out" "$work/warn.expected" "warnings"
ok "warning counts and SHOW WARNINGS (truncation, division by zero)"

# --- multiple result sets -------------------------------------------------------
run_into multi <<'SQL'
DELIMITER //
SELECT 1 AS a; SELECT 'two' AS b; UPDATE mcli_items SET qty = qty WHERE id = 1; SELECT 3 //
CALL mcli_two_results(21) //
DELIMITER ;
SELECT 'after';
SQL
printf '1\ntwo\n3\n21\n42\ttwo\nafter\n' >"$work/multi.expected"
expect_same "$work/multi.out" "$work/multi.expected" "multi-statement and CALL results"
ok "multi-statement batch in one COM_QUERY and a procedure CALL with two result sets"

# --- USE the same database, ping ------------------------------------------------
run_into use <<SQL
USE \`$db\`
SELECT DATABASE();
SELECT COUNT(*) FROM mcli_items;
SQL
printf '%s\n5\n' "$db" >"$work/use.expected"
expect_same "$work/use.out" "$work/use.expected" "database after USE"
timeout "$(time_left)" mariadb-admin "${conn[@]}" ping >"$work/ping.out" 2>&1 ||
    fail "mariadb-admin ping exited $?:"$'\n'"$(cat "$work/ping.out")"
expect_line "$work/ping.out" "mysqld is alive" "mariadb-admin ping"
ok "USE of the same database (COM_INIT_DB), mariadb-admin ping (COM_PING)"

# --- 10,000 rows --------------------------------------------------------------
has_sequence="$(echo "SELECT COUNT(*) FROM information_schema.engines WHERE engine = 'SEQUENCE' AND support IN ('YES', 'DEFAULT')" | mdb_batch)"
if [ "$has_sequence" = "1" ]; then
    source_sql="SELECT seq, CONCAT('row-', seq), seq * seq FROM seq_1_to_10000 ORDER BY seq"
    source_name="seq_1_to_10000"
else
    source_sql="WITH d(x) AS (SELECT 0 UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
      UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9),
      s(n) AS (SELECT a.x + 10*b.x + 100*c.x + 1000*e.x + 1 FROM d a, d b, d c, d e)
      SELECT n, CONCAT('row-', n), n * n FROM s ORDER BY n"
    source_name="a digits CTE"
fi
echo "$source_sql" | run_into rows
seq 1 10000 | awk '{ printf "%d\trow-%d\t%d\n", $1, $1, $1 * $1 }' >"$work/rows.expected"
[ "$(wc -l <"$work/rows.out")" -eq 10000 ] || fail "10,000-row result has $(wc -l <"$work/rows.out") lines"
[ "$(md5sum <"$work/rows.out")" = "$(md5sum <"$work/rows.expected")" ] || expect_same "$work/rows.out" "$work/rows.expected" "10,000 rows"
ok "10,000-row result from $source_name (count and md5)"

# --- a result row over 16 MiB -------------------------------------------------
big_bytes=$((16 * 1024 * 1024 + 4096))
max_packet="$(echo "SELECT @@max_allowed_packet" | mdb_batch)"
if [ "$max_packet" -lt $((big_bytes + 1024 * 1024)) ]; then
    skip "row over 16 MiB: server max_allowed_packet is $max_packet, needs at least $((big_bytes + 1024 * 1024))"
else
    echo "SELECT REPEAT('0123456789abcdef', $((big_bytes / 16)))" | run_into big
    expected_md5="$(head -c "$big_bytes" < <(yes 0123456789abcdef | tr -d '\n') | md5sum)"
    actual_md5="$(head -c "$big_bytes" "$work/big.out" | md5sum)"
    [ "$(wc -c <"$work/big.out")" -eq $((big_bytes + 1)) ] || fail "big row: $(wc -c <"$work/big.out") bytes, expected $((big_bytes + 1))"
    [ "$actual_md5" = "$expected_md5" ] || fail "big row: md5 $actual_md5, expected $expected_md5"
    ok "result row of $big_bytes bytes (over 16 MiB) read back exactly"
fi

# --- clean up -----------------------------------------------------------------
run_into cleanup <<SQL
$cleanup_sql
SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'mcli\\_%';
SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = DATABASE() AND routine_name LIKE 'mcli\\_%';
SQL
printf '0\n0\n' >"$work/cleanup.expected"
expect_same "$work/cleanup.out" "$work/cleanup.expected" "objects left"
ok "drop every object"

echo "[mariadb-cli] session passed"

#!/usr/bin/env bash
# Instructions Airlock executes per pgbench -S transaction (or, for MySQL,
# per statement of sysbench oltp_read_only), by component: the gateway
# runs under valgrind (callgrind), the client warms it up (200 pgbench
# transactions, 20 sysbench events), the counters are zeroed, and N more
# transactions (events) are counted. Deterministic where wall-clock and /proc CPU figures are not
# (this machine's speed changes by up to 4x within an hour), so two builds
# compare exactly.
#
#   benches/gateway-instructions.sh [transactions] [simple|prepared|mysql]
#                                   (defaults: 2000, simple; for mysql the
#                                   count is of sysbench events, and the
#                                   figures are per statement)
#   AIRLOCK_BIN=path/to/airlock     measure another build
#   KEEP_TREE=file                  keep callgrind's call tree for reading
#
# With the prepared protocol the gate line is near zero: an Execute of a
# statement the gate already decided is not decided again, and its audit
# record is made by the relay ("the rest").
#
# One caveat: valgrind's CPU has no SHA extensions, so the sha2 crate runs
# its portable code there; the "SHA-256" line is many times what the same
# hashing costs on a processor with SHA-NI, and is shown apart.
#
# Needs: PostgreSQL at 127.0.0.1:5432 (trust auth for postgres), pgbench,
# psql, valgrind (callgrind_annotate, callgrind_control), cargo, python3;
# for mysql, MariaDB at 127.0.0.1:3306 (root without password), mariadb
# and sysbench instead of PostgreSQL and its tools.
set -euo pipefail

die() { echo "gateway-instructions.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required but not on PATH${2:+ ($2)}"; }

tx="${1:-2000}"
mode="${2:-simple}"
[[ "$tx" =~ ^[1-9][0-9]*$ ]] || die "usage: benches/gateway-instructions.sh [transactions] [simple|prepared|mysql]; got '$tx'"
[[ "$mode" =~ ^(simple|prepared|mysql)$ ]] || die "the protocol is simple, prepared or mysql; got '$mode'"
if [ "$mode" = mysql ]; then
    need mariadb; need sysbench
else
    need pgbench; need psql
fi
need valgrind "apt install valgrind"; need callgrind_annotate; need callgrind_control; need python3

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=benches/support/airlock.sh
. "$root/benches/support/airlock.sh"
work="$(mktemp -d)"
db="airlock_instr_$$"
password="bench-$$"
vg_pid=""
export PGSSLMODE=disable

cleanup() {
    set +e
    [ -n "$vg_pid" ] && kill "$vg_pid" 2>/dev/null && wait "$vg_pid" 2>/dev/null
    if [ "$mode" = mysql ]; then
        mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
    else
        psql -X -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    fi
    rm -rf "$work"
    true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

select_airlock "$root"

if [ "$mode" = mysql ]; then
    mariadb -h 127.0.0.1 -u root -e "CREATE DATABASE $db"
    sysbench_common=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-db="$db" --tables=1 --table-size=10000)
    sysbench oltp_read_only "${sysbench_common[@]}" --mysql-port=3306 --mysql-user=root prepare >/dev/null \
        || die "sysbench prepare failed"
    mysql_config "$work/airlock.toml" "$work/var" "$password" "$db"
    listener=mysql
else
    psql -X -q -h 127.0.0.1 -U postgres -d test -c "CREATE DATABASE $db" >/dev/null
    pgbench -q -i -s 1 -h 127.0.0.1 -U postgres "$db" >/dev/null 2>&1 || die "pgbench -i failed"
    postgres_config "$work/airlock.toml" "$work/var" "$password" "$db" 16
    listener=postgres
fi

valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
    "$airlock_bin" serve --config "$work/airlock.toml" \
    >"$work/airlock.stdout" 2>"$work/valgrind.stderr" &
vg_pid=$!
port="$(listening_port "$work/airlock.stdout" "$listener" "$vg_pid")"
[ -n "$port" ] || { cat "$work/valgrind.stderr" >&2; die "airlock did not start under valgrind"; }

run() {
    if [ "$mode" = mysql ]; then
        sysbench oltp_read_only "${sysbench_common[@]}" --mysql-port="$port" --mysql-user=bench \
            --mysql-password="$password" --mysql-ssl=off --threads=1 --time=0 --events="$1" \
            --report-interval=0 run >"$work/client.out" 2>&1 \
            || { cat "$work/client.out" >&2; die "sysbench through Airlock failed"; }
    else
        PGPASSWORD="$password" pgbench -n -S -M "$mode" -c 1 -t "$1" \
            -h 127.0.0.1 -p "$port" -U bench "$db" >"$work/client.out" 2>&1 \
            || { cat "$work/client.out" >&2; die "pgbench through Airlock failed"; }
    fi
}
if [ "$mode" = mysql ]; then run 20; else run 200; fi
callgrind_control -z "$vg_pid" >/dev/null 2>&1
run "$tx"
# The unit the figures are per: a pgbench transaction, or a statement.
per="$tx"
unit="transaction"
if [ "$mode" = mysql ]; then
    per="$(sed -n 's/^ *total: *\([0-9]*\)$/\1/p' "$work/client.out" | head -1)"
    [ -n "$per" ] || { cat "$work/client.out" >&2; die "sysbench reported no statement count"; }
    unit="statement"
fi
callgrind_control -d "$vg_pid" >/dev/null 2>&1
dump="$(ls "$work"/callgrind.out.* | head -1)"
[ -n "$dump" ] || die "callgrind wrote no dump"
callgrind_annotate --inclusive=yes --tree=calling "$dump" >"$work/tree.txt" 2>/dev/null
[ -n "${KEEP_TREE:-}" ] && cp "$work/tree.txt" "$KEEP_TREE"

if [ "$mode" = mysql ]; then
    client="sysbench oltp_read_only, 1 thread, $tx events ($per statements)"
else
    client="pgbench -S -M $mode, 1 client, $tx transactions"
fi
echo "Airlock $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?'), $client under callgrind"
python3 - "$work/tree.txt" "$per" "$unit" "$mode" <<'PY'
import re, sys

lines = open(sys.argv[1]).read().splitlines()
per = float(sys.argv[2])
unit, mode = sys.argv[3], sys.argv[4]

def entry(line):
    m = re.match(r"\s*([\d,]+) \([\s\d.]+%\)\s+([*>])\s+(.*)", line)
    return (int(m.group(1).replace(",", "")), m.group(2), m.group(3)) if m else None

total = next(int(l.split()[0].replace(",", "")) for l in lines if "PROGRAM TOTALS" in l)
# Inclusive cost of a function (its own block's header line), and of each
# callee as called from it.
def inclusive(name):
    best = 0
    for l in lines:
        e = entry(l)
        if e and e[1] == "*" and name in e[2]:
            best = max(best, e[0])
    return best

def callees(name):
    out = {}
    for i, l in enumerate(lines):
        e = entry(l)
        if e and e[1] == "*" and name in e[2]:
            for l2 in lines[i + 1:]:
                c = entry(l2)
                if not c or c[1] != ">":
                    break
                key = re.sub(r" \(\d[\d,]*x\)", "", c[2])
                out[key] = out.get(key, 0) + c[0]
            break
    return out

def under(name, callee):
    return sum(v for k, v in callees(name).items() if callee in k)

sha = sum(e[0] for e in map(entry, lines) if e and e[1] == "*" and "sha2::sha256::compress256 [" in e[2])
record = inclusive("airlock::audit::Audit::record [")
gate = inclusive("airlock::gate::Gate::check::{{closure}} [")
gate_record = under("airlock::gate::Gate::check::{{closure}} [", "airlock::audit::Audit::record")
if mode == "mysql":
    # Rows are relayed inline by the one session loop; what is theirs
    # alone is masking them.
    result_side = inclusive("MysqlRowMasker::mask_text_row [") + inclusive("MysqlRowMasker::mask_binary_row [")
    result_name = "rows: masking"
else:
    upstream = inclusive("airlock::proxy::pg::relay::Back::on_upstream [")
    result_record = under("airlock::proxy::pg::relay::Back::record_result [", "airlock::audit::Audit::record")
    result_side = upstream - result_record
    result_name = "result side, without its record"
rows = [
    ("total", total),
    ("SHA-256 of the audit records (portable code under valgrind)", sha),
    ("audit records, without SHA-256", record - sha),
    ("gate, without its statement record", gate - gate_record),
    ("  lexer", under("airlock::gate::Gate::check::{{closure}} [", "airlock::sql::lexer::read")),
    ("  classification (cache hit)", under("airlock::gate::Gate::check::{{closure}} [", "ClassifierCache::classify")),
    ("  encoding checks", under("airlock::gate::Gate::check::{{closure}} [", "airlock::sql::encoding::")),
    ("  policy", under("airlock::gate::Gate::check::{{closure}} [", "airlock::policy::Policy::evaluate")),
    (result_name, result_side),
    ("the rest: relay, codec, runtime", total - record - (gate - gate_record) - result_side),
]
print()
print(f"| piece | instructions per {unit} |")
print("|---|---|")
for name, v in rows:
    print(f"| {name} | {v / per:,.0f} |")
PY

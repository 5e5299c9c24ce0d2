#!/usr/bin/env bash
# sysbench oltp_read_only against MariaDB directly and through Airlock's
# MySQL listener, in the same run, 1 and 8 threads, masking on (the shipped
# default). Prints median transactions/s, mean latency, the ratio and the
# gateway's CPU time per statement, as Markdown tables.
#
#   benches/sysbench_mysql.sh [seconds-per-run] [rounds]     (defaults: 10, 3)
#
# Needs: MariaDB at 127.0.0.1:3306 (root without password), sysbench.
# Runs alternate direct / through so that drift on a shared machine hits
# both; each figure is the median of the rounds. When socat is installed a
# bare TCP forwarder is measured too: the cost of any extra hop on this
# machine, the floor for a proxy.
#
# Two layouts, when the machine has at least two cores and taskset may
# move MariaDB's threads: "shared", everything on every core, and
# "gateway on its own core", MariaDB and sysbench on core 0 (for the direct
# runs too) and the gateway (or socat) on core 1 — as in a deployment where
# the gateway has its own host or container. MariaDB's affinity is put back
# when the script ends.
set -euo pipefail

duration="${1:-10}"
rounds="${2:-3}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
db="airlock_sysbench_$$"
password="bench-$$"
airlock_pid=""
socat_pid=""
mariadb_pid="$(pgrep -o -x mariadbd || pgrep -o -x mysqld || true)"
mariadb_affinity=""

cleanup() {
    set +e
    [ -n "$mariadb_affinity" ] && taskset -a -p "$mariadb_affinity" "$mariadb_pid" >/dev/null
    [ -n "$airlock_pid" ] && kill "$airlock_pid" 2>/dev/null && wait "$airlock_pid" 2>/dev/null
    [ -n "$socat_pid" ] && { pkill -P "$socat_pid" 2>/dev/null; kill "$socat_pid" 2>/dev/null; }
    mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
    rm -rf "$work"
    true
}
trap cleanup EXIT

cargo build --release --quiet --manifest-path "$root/Cargo.toml"

mariadb -h 127.0.0.1 -u root -e "CREATE DATABASE $db"
common=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-db="$db" --tables=4 --table-size=10000)
sysbench oltp_read_only "${common[@]}" --mysql-port=3306 --mysql-user=root prepare >/dev/null

cat >"$work/airlock.toml" <<TOML
state_dir = "$work/var"
[postgres]
listen = "127.0.0.1:0"
[mysql]
listen = "127.0.0.1:0"
upstream = "mysql://root@127.0.0.1:3306/$db"
[inbox]
listen = "127.0.0.1:0"
[log]
level = "warn"
[[identity]]
name = "bench"
role = "agent"
password = "$password"
TOML
"$root/target/release/airlock" serve --config "$work/airlock.toml" >"$work/stdout" 2>"$work/stderr" &
airlock_pid=$!
for _ in $(seq 100); do
    grep -q "^postgres listening on" "$work/stdout" 2>/dev/null && break
    sleep 0.1
done
port="$(sed -n 's/^mysql listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/stdout")"
[ -n "$port" ] || { echo "airlock did not start:" >&2; cat "$work/stderr" >&2; exit 1; }

# run PORT USER PASSWORD THREADS -> "tps latency_ms queries"
run() {
    local out
    out="$($client sysbench oltp_read_only "${common[@]}" --mysql-port="$1" --mysql-user="$2" \
        --mysql-password="$3" --mysql-ssl=off --threads="$4" --time="$duration" \
        --report-interval=0 run 2>&1)"
    local tps lat queries
    tps="$(sed -n 's/^ *transactions: *[0-9]* *(\([0-9.]*\) per sec.)/\1/p' <<<"$out")"
    lat="$(sed -n 's/^ *avg: *\([0-9.]*\)$/\1/p' <<<"$out")"
    queries="$(sed -n 's/^ *queries: *\([0-9]*\) .*/\1/p' <<<"$out")"
    [ -n "$tps" ] || { echo "sysbench failed: $out" >&2; exit 1; }
    echo "$tps $lat $queries"
}

# CPU time (user + system, clock ticks) a process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

socat_port=""
if command -v socat >/dev/null; then
    socat_port=$(( 20000 + $$ % 20000 ))
    socat "TCP-LISTEN:$socat_port,fork,reuseaddr,bind=127.0.0.1,nodelay" TCP:127.0.0.1:3306,nodelay &
    socat_pid=$!
    sleep 0.3
fi

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
tick_us=$(( 1000000 / $(getconf CLK_TCK) ))

# table LAYOUT-TITLE: one table of both thread counts in the current layout.
table() {
    echo "$1, sysbench oltp_read_only, 4 tables × 10,000 rows, ${duration} s per run, median of ${rounds} rounds, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "| threads | direct TPS | Airlock TPS | ratio | direct latency | Airlock latency | added latency | Airlock CPU per statement | bare forwarder ratio |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for threads in 1 8; do
        : >"$work/d" && : >"$work/a" && : >"$work/s" && : >"$work/c"
        for _ in $(seq "$rounds"); do
            run 3306 root "" "$threads" >>"$work/d"
            local before after result
            before="$(cpu_ticks "$airlock_pid")"
            result="$(run "$port" bench "$password" "$threads")"
            after="$(cpu_ticks "$airlock_pid")"
            echo "$result" >>"$work/a"
            awk -v t=$(( (after - before) * tick_us )) -v q="${result##* }" 'BEGIN { printf "%.1f\n", t / q }' >>"$work/c"
            [ -n "$socat_port" ] && run "$socat_port" root "" "$threads" >>"$work/s"
        done
        d_tps=$(cut -d' ' -f1 "$work/d" | median); d_lat=$(cut -d' ' -f2 "$work/d" | median)
        a_tps=$(cut -d' ' -f1 "$work/a" | median); a_lat=$(cut -d' ' -f2 "$work/a" | median)
        a_cpu=$(median <"$work/c")
        s_tps=$( [ -s "$work/s" ] && cut -d' ' -f1 "$work/s" | median || echo "")
        awk -v c="$threads" -v dt="$d_tps" -v at="$a_tps" -v dl="$d_lat" -v al="$a_lat" -v cpu="$a_cpu" -v st="$s_tps" 'BEGIN {
            fr = (st == "") ? "—" : sprintf("%.2f", st / dt)
            printf "| %d | %.0f | %.0f | %.2f | %.2f ms | %.2f ms | %+.0f µs | %.0f µs | %s |\n", c, dt, at, at / dt, dl, al, (al - dl) * 1000, cpu, fr
        }'
    done
    echo
}

client=""
table "Shared: everything on all cores"

# The second layout needs a second core and the right to move MariaDB.
if [ "$(nproc)" -ge 2 ] && [ -n "$mariadb_pid" ] \
    && mariadb_affinity="$(taskset -p "$mariadb_pid" | sed 's/.*: //')" \
    && taskset -a -p -c 0 "$mariadb_pid" >/dev/null 2>&1; then
    taskset -a -p -c 1 "$airlock_pid" >/dev/null
    [ -n "$socat_pid" ] && taskset -a -p -c 1 "$socat_pid" >/dev/null
    client="taskset -c 0"
    table "Gateway on its own core: MariaDB and sysbench on core 0, Airlock (or socat) on core 1"
else
    mariadb_affinity=""
    echo "(gateway-on-its-own-core layout skipped: needs 2 cores and taskset rights over MariaDB)"
fi

#!/usr/bin/env bash
# sysbench oltp_read_only against MariaDB directly and through Airlock's
# MySQL listener, in the same run, 1 and 8 threads, masking on (the shipped
# default). Prints median transactions/s, mean latency, the ratio and the
# gateway's CPU time per statement, as Markdown tables; then, at 8 threads,
# the gateway's CPU per statement split user / system next to MariaDB's own
# CPU per statement in the direct runs, and the ratios to direct.
#
#   benches/sysbench_mysql.sh [seconds-per-run] [rounds]     (defaults: 10, 3)
#   AIRLOCK_BIN=path/to/airlock benches/sysbench_mysql.sh ...   # another build
#
# Needs: MariaDB at 127.0.0.1:3306 (root without password), sysbench.
# Runs alternate direct / through so that drift on a shared machine hits
# both; each figure is the median of the rounds. When socat is installed a
# bare TCP forwarder is measured too: the cost of any extra hop on this
# machine, the floor for a proxy.
#
# CPU per statement: utime + stime of the process (all threads,
# /proc/<pid>/stat) over one sysbench run, divided by the statements that
# run reports ("queries performed: total"). MariaDB's figure includes
# whatever else the server does meanwhile (other databases on a shared
# machine); clock ticks are 10 ms, so short runs give coarse figures.
#
# Two layouts, when the machine has at least two cores and taskset may
# move MariaDB's threads: "shared", everything on every core, and
# "gateway on its own core", MariaDB and sysbench on core 0 (for the direct
# runs too) and the gateway (or socat) on core 1 — as in a deployment where
# the gateway has its own host or container. MariaDB's affinity is put back
# when the script ends.
set -euo pipefail

for tool in mariadb sysbench getconf cargo awk sed sort; do
    command -v "$tool" >/dev/null 2>&1 || { echo "sysbench_mysql.sh: $tool is required but not on PATH" >&2; exit 1; }
done

duration="${1:-10}"
rounds="${2:-3}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=benches/support/airlock.sh
. "$root/benches/support/airlock.sh"
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

select_airlock "$root"

mariadb -h 127.0.0.1 -u root -e "CREATE DATABASE $db"
common=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-db="$db" --tables=4 --table-size=10000)
sysbench oltp_read_only "${common[@]}" --mysql-port=3306 --mysql-user=root prepare >/dev/null

mysql_config "$work/airlock.toml" "$work/var" "$password" "$db"
"$airlock_bin" serve --config "$work/airlock.toml" >"$work/stdout" 2>"$work/stderr" &
airlock_pid=$!
port="$(listening_port "$work/stdout" mysql "$airlock_pid")"
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
    # "queries performed: ... total:", the statements the run sent.
    queries="$(sed -n 's/^ *total: *\([0-9]*\)$/\1/p' <<<"$out")"
    [ -n "$tps" ] && [ -n "$queries" ] && [ "$queries" -gt 0 ] || { echo "sysbench failed: $out" >&2; exit 1; }
    echo "$tps $lat $queries"
}

# CPU time (user + system, clock ticks) a process has used so far, all
# threads; the fields are counted after the command name, which may hold
# spaces. cpu_split prints "user system".
cpu_split() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'; }
cpu_ticks() { cpu_split "$1" | awk '{ print $1 + $2 }'; }
# MariaDB's ticks, or 0 when its pid is unknown (the column then shows —).
mariadb_ticks() { if [ -n "$mariadb_pid" ]; then cpu_ticks "$mariadb_pid"; else echo 0; fi; }

socat_port=""
if command -v socat >/dev/null; then
    socat_port=$(( 20000 + $$ % 20000 ))
    socat "TCP-LISTEN:$socat_port,fork,reuseaddr,bind=127.0.0.1,nodelay" TCP:127.0.0.1:3306,nodelay &
    socat_pid=$!
    sleep 0.3
fi

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# col N FILE: median of column N (the lower middle one for an even count,
# as median above).
col() { awk -v c="$1" '{ print $c }' "$2" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
cpu_rows=""
tick_us=$(( 1000000 / $(getconf CLK_TCK) ))

# table TITLE LAYOUT: one table of both thread counts in the current layout;
# the 8-thread CPU figures go to $cpu_rows, under the name LAYOUT.
table() {
    echo "$1, sysbench oltp_read_only, 4 tables × 10,000 rows, ${duration} s per run, median of ${rounds} rounds, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "| threads | direct TPS | Airlock TPS | ratio | direct latency | Airlock latency | added latency | Airlock CPU per statement | bare forwarder ratio |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for threads in 1 8; do
        : >"$work/d" && : >"$work/a" && : >"$work/s" && : >"$work/c" && : >"$work/cpu8"
        for _ in $(seq "$rounds"); do
            local m0 m1 m2 m3 u0 s0 u1 s1 direct result
            m0="$(mariadb_ticks)"
            direct="$(run 3306 root "" "$threads")"
            m1="$(mariadb_ticks)"
            echo "$direct" >>"$work/d"
            read -r u0 s0 < <(cpu_split "$airlock_pid"); m2="$(mariadb_ticks)"
            result="$(run "$port" bench "$password" "$threads")"
            read -r u1 s1 < <(cpu_split "$airlock_pid"); m3="$(mariadb_ticks)"
            echo "$result" >>"$work/a"
            awk -v t=$(( (u1 + s1 - u0 - s0) * tick_us )) -v q="${result##* }" 'BEGIN { printf "%.1f\n", t / q }' >>"$work/c"
            # At 8 threads, per round: TPS ratio, Airlock user and system µs
            # per statement, MariaDB µs per statement direct and through.
            if [ "$threads" = 8 ]; then
                awk -v d="$direct" -v a="$result" -v tick="$tick_us" -v au=$(( u1 - u0 )) -v as=$(( s1 - s0 )) \
                    -v md=$(( m1 - m0 )) -v mt=$(( m3 - m2 )) 'BEGIN {
                    split(d, D, " "); split(a, A, " ")
                    printf "%s %s %s %s %s\n", A[1] / D[1], au * tick / A[3], as * tick / A[3], md * tick / D[3], mt * tick / A[3]
                }' >>"$work/cpu8"
            fi
            if [ -n "$socat_port" ]; then run "$socat_port" root "" "$threads" >>"$work/s"; fi
        done
        d_tps=$(cut -d' ' -f1 "$work/d" | median); d_lat=$(cut -d' ' -f2 "$work/d" | median)
        a_tps=$(cut -d' ' -f1 "$work/a" | median); a_lat=$(cut -d' ' -f2 "$work/a" | median)
        a_cpu=$(median <"$work/c")
        s_tps=$( [ -s "$work/s" ] && cut -d' ' -f1 "$work/s" | median || echo "")
        awk -v c="$threads" -v dt="$d_tps" -v at="$a_tps" -v dl="$d_lat" -v al="$a_lat" -v cpu="$a_cpu" -v st="$s_tps" 'BEGIN {
            fr = (st == "") ? "—" : sprintf("%.2f", st / dt)
            printf "| %d | %.0f | %.0f | %.2f | %.2f ms | %.2f ms | %+.0f µs | %.0f µs | %s |\n", c, dt, at, at / dt, dl, al, (al - dl) * 1000, cpu, fr
        }'
        if [ "$threads" = 8 ]; then
            cpu_rows+="$(awk -v l="$2" -v m="${mariadb_pid:+known}" -v r="$(col 1 "$work/cpu8")" \
                -v au="$(col 2 "$work/cpu8")" -v as="$(col 3 "$work/cpu8")" \
                -v md="$(col 4 "$work/cpu8")" -v mt="$(col 5 "$work/cpu8")" 'BEGIN {
                if (m == "") { mds = "—"; mts = "—"; rat = "—" }
                else {
                    mds = sprintf("%.1f µs", md); mts = sprintf("%.1f µs", mt)
                    rat = (md > 0) ? sprintf("%.2f", (au + as) / md) : "—"
                }
                printf "| %s | %.2f | %.1f µs | %.1f µs | %.1f µs | %s | %s | %s |\n", l, r, au + as, au, as, mds, mts, rat
            }')"$'\n'
        fi
    done
    echo
}

client=""
table "Shared: everything on all cores" "shared"

# The second layout needs a second core and the right to move MariaDB.
if [ "$(nproc)" -ge 2 ] && [ -n "$mariadb_pid" ] \
    && mariadb_affinity="$(taskset -p "$mariadb_pid" | sed 's/.*: //')" \
    && taskset -a -p -c 0 "$mariadb_pid" >/dev/null 2>&1; then
    taskset -a -p -c 1 "$airlock_pid" >/dev/null
    [ -n "$socat_pid" ] && taskset -a -p -c 1 "$socat_pid" >/dev/null
    client="taskset -c 0"
    table "Gateway on its own core: MariaDB and sysbench on core 0, Airlock (or socat) on core 1" "gateway on its own core"
else
    mariadb_affinity=""
    echo "(gateway-on-its-own-core layout skipped: needs 2 cores and taskset rights over MariaDB)"
    echo
fi

echo "Gateway CPU per statement, sysbench oltp_read_only, 8 threads, median of ${rounds} rounds (statements: \"queries performed: total\")"
echo
echo "| layout | TPS ratio to direct | Airlock CPU per statement | user | system | MariaDB CPU per statement, direct | MariaDB CPU per statement, through Airlock | Airlock CPU / MariaDB CPU direct |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s' "$cpu_rows"

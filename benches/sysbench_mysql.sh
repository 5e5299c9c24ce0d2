#!/usr/bin/env bash
# sysbench oltp_read_only against MariaDB directly and through Airlock's
# MySQL listener, in the same run, 1 and 8 threads, masking on (the shipped
# default). Prints median transactions/s, mean latency and the ratio, as a
# Markdown table.
#
#   benches/sysbench_mysql.sh [seconds-per-run] [rounds]     (defaults: 10, 3)
#
# Needs: MariaDB at 127.0.0.1:3306 (root without password), sysbench.
# Runs alternate direct / through so that drift on a shared machine hits
# both; each figure is the median of the rounds. When socat is installed a
# bare TCP forwarder is measured too: the cost of any extra hop on this
# machine, the floor for a proxy.
set -euo pipefail

duration="${1:-10}"
rounds="${2:-3}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
db="airlock_sysbench_$$"
password="bench-$$"
airlock_pid=""
socat_pid=""

cleanup() {
    set +e
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

# run PORT USER PASSWORD THREADS -> "tps latency_ms"
run() {
    local out
    out="$(sysbench oltp_read_only "${common[@]}" --mysql-port="$1" --mysql-user="$2" \
        --mysql-password="$3" --mysql-ssl=off --threads="$4" --time="$duration" \
        --report-interval=0 run 2>&1)"
    local tps lat
    tps="$(sed -n 's/^ *transactions: *[0-9]* *(\([0-9.]*\) per sec.)/\1/p' <<<"$out")"
    lat="$(sed -n 's/^ *avg: *\([0-9.]*\)$/\1/p' <<<"$out")"
    [ -n "$tps" ] || { echo "sysbench failed: $out" >&2; exit 1; }
    echo "$tps $lat"
}

socat_port=""
if command -v socat >/dev/null; then
    socat_port=$(( 20000 + $$ % 20000 ))
    socat "TCP-LISTEN:$socat_port,fork,reuseaddr,bind=127.0.0.1,nodelay" TCP:127.0.0.1:3306,nodelay &
    socat_pid=$!
    sleep 0.3
fi

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "sysbench oltp_read_only, 4 tables × 10,000 rows, ${duration} s per run, median of ${rounds} rounds, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| threads | direct TPS | Airlock TPS | ratio | direct latency | Airlock latency | added latency | bare forwarder ratio |"
echo "|---|---|---|---|---|---|---|---|"
for threads in 1 8; do
    : >"$work/d" && : >"$work/a" && : >"$work/s"
    for _ in $(seq "$rounds"); do
        run 3306 root "" "$threads" >>"$work/d"
        run "$port" bench "$password" "$threads" >>"$work/a"
        [ -n "$socat_port" ] && run "$socat_port" root "" "$threads" >>"$work/s"
    done
    d_tps=$(cut -d' ' -f1 "$work/d" | median); d_lat=$(cut -d' ' -f2 "$work/d" | median)
    a_tps=$(cut -d' ' -f1 "$work/a" | median); a_lat=$(cut -d' ' -f2 "$work/a" | median)
    s_tps=$( [ -s "$work/s" ] && cut -d' ' -f1 "$work/s" | median || echo "")
    awk -v c="$threads" -v dt="$d_tps" -v at="$a_tps" -v dl="$d_lat" -v al="$a_lat" -v st="$s_tps" 'BEGIN {
        fr = (st == "") ? "—" : sprintf("%.2f", st / dt)
        printf "| %d | %.0f | %.0f | %.2f | %.2f ms | %.2f ms | %+.0f µs | %s |\n", c, dt, at, at / dt, dl, al, (al - dl) * 1000, fr
    }'
done

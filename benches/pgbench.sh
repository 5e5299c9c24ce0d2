#!/usr/bin/env bash
# pgbench select-only, directly against PostgreSQL and through Airlock, in the
# same run: simple and prepared protocol, 1 and 8 clients. Prints median TPS,
# mean latency and the ratio for each, as a Markdown table. The gateway
# keeps its audit log on disk as configured by default; a second gateway
# with the log on tmpfs (/dev/shm) is measured in the same rounds, to show
# what the disk's writes and fsyncs cost.
#
#   benches/pgbench.sh [seconds-per-run] [rounds]     (defaults: 10, 3)
#
# Needs: PostgreSQL at 127.0.0.1:5432 (trust auth for postgres), pgbench.
# Runs alternate direct / through so that drift on a shared machine hits
# both, and each figure is the median of the rounds. When socat is installed
# a bare TCP forwarder is measured too: the cost of any extra hop on this
# machine, the floor for a proxy.
set -euo pipefail

duration="${1:-10}"
rounds="${2:-3}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
db="airlock_bench_$$"
password="bench-$$"
airlock_pid=""
socat_pid=""
shm_audit=""

cleanup() {
    # Every step runs, whatever the one before it returned.
    set +e
    for pid in $airlock_pid; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    rm -rf "$shm_audit"
    # socat forks a child per connection: stop those too, and do not wait.
    [ -n "$socat_pid" ] && { pkill -P "$socat_pid" 2>/dev/null; kill "$socat_pid" 2>/dev/null; }
    psql -X -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
    true
}
trap cleanup EXIT

cargo build --release --quiet --manifest-path "$root/Cargo.toml"

psql -X -q -h 127.0.0.1 -U postgres -d test -c "CREATE DATABASE $db" >/dev/null
pgbench -q -i -s 10 -h 127.0.0.1 -U postgres "$db" >/dev/null 2>&1

cat >"$work/airlock.toml" <<TOML
state_dir = "$work/var"
[postgres]
listen = "127.0.0.1:0"
upstream = "postgresql://postgres@127.0.0.1:5432/$db"
pool_size = 16
[inbox]
listen = "127.0.0.1:0"
# Two gateways run side by side; neither needs the MySQL listener.
[mysql]
listen = "127.0.0.1:0"
[log]
level = "warn"
[[identity]]
name = "bench"
role = "agent"
password = "$password"
TOML

# start CONFIG NAME: runs a gateway, sets $started_port, remembers the pid.
start() {
    "$root/target/release/airlock" serve --config "$1" >"$work/$2.stdout" 2>"$work/$2.stderr" &
    airlock_pid="$airlock_pid $!"
    for _ in $(seq 100); do
        grep -q "^postgres listening on" "$work/$2.stdout" 2>/dev/null && break
        sleep 0.1
    done
    started_port="$(sed -n 's/^postgres listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/$2.stdout")"
    [ -n "$started_port" ] || { echo "airlock did not start:" >&2; cat "$work/$2.stderr" >&2; exit 1; }
}
start "$work/airlock.toml" main
port="$started_port"
# The same gateway with its audit log on tmpfs: what the disk costs.
shm_audit="/dev/shm/airlock-bench-audit-$$"
sed "s|^state_dir = .*|&\n[audit]\ndir = \"$shm_audit\"|" "$work/airlock.toml" >"$work/airlock-shm.toml"
start "$work/airlock-shm.toml" shm
shm_port="$started_port"

# run PORT USER PROTOCOL CLIENTS -> "tps latency_ms"
run() {
    local out
    out="$(PGPASSWORD="$password" pgbench -n -S -M "$3" -c "$4" -j "$(( $4 < 2 ? 1 : 2 ))" -T "$duration" \
        -h 127.0.0.1 -p "$1" -U "$2" "$db" 2>&1)"
    local tps lat
    tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")"
    lat="$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")"
    [ -n "$tps" ] || { echo "pgbench failed: $out" >&2; exit 1; }
    echo "$tps $lat"
}

socat_port=""
if command -v socat >/dev/null; then
    socat_port=$(( 20000 + $$ % 20000 ))
    socat "TCP-LISTEN:$socat_port,fork,reuseaddr,bind=127.0.0.1,nodelay" TCP:127.0.0.1:5432,nodelay &
    socat_pid=$!
    sleep 0.3
fi

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "pgbench -S, scale 10, ${duration} s per run, median of ${rounds} rounds, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| protocol | clients | direct TPS | Airlock TPS | ratio | direct latency | Airlock latency | added latency | audit on tmpfs ratio | tmpfs adds | bare forwarder ratio | bare forwarder adds |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for protocol in simple prepared; do
    for clients in 1 8; do
        : >"$work/d" && : >"$work/a" && : >"$work/s" && : >"$work/m"
        for _ in $(seq "$rounds"); do
            run 5432 postgres "$protocol" "$clients" >>"$work/d"
            run "$port" bench "$protocol" "$clients" >>"$work/a"
            run "$shm_port" bench "$protocol" "$clients" >>"$work/m"
            if [ -n "$socat_port" ]; then
                run "$socat_port" postgres "$protocol" "$clients" >>"$work/s"
            fi
        done
        d_tps=$(cut -d' ' -f1 "$work/d" | median); d_lat=$(cut -d' ' -f2 "$work/d" | median)
        a_tps=$(cut -d' ' -f1 "$work/a" | median); a_lat=$(cut -d' ' -f2 "$work/a" | median)
        s_tps=$( [ -s "$work/s" ] && cut -d' ' -f1 "$work/s" | median || echo "")
        s_lat=$( [ -s "$work/s" ] && cut -d' ' -f2 "$work/s" | median || echo "")
        m_tps=$(cut -d' ' -f1 "$work/m" | median); m_lat=$(cut -d' ' -f2 "$work/m" | median)
        awk -v p="$protocol" -v c="$clients" -v dt="$d_tps" -v at="$a_tps" -v dl="$d_lat" -v al="$a_lat" -v st="$s_tps" -v sl="$s_lat" -v mt="$m_tps" -v ml="$m_lat" 'BEGIN {
            fr = (st == "") ? "—" : sprintf("%.2f", st / dt)
            fl = (sl == "") ? "—" : sprintf("%+.0f µs", (sl - dl) * 1000)
            printf "| %s | %d | %.0f | %.0f | %.2f | %.3f ms | %.3f ms | %+.0f µs | %.2f | %+.0f µs | %s | %s |\n", p, c, dt, at, at / dt, dl, al, (al - dl) * 1000, mt / dt, (ml - dl) * 1000, fr, fl
        }'
    done
done

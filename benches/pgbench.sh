#!/usr/bin/env bash
# pgbench select-only in one run against three targets: PostgreSQL directly,
# PgBouncer (session mode) and Airlock (default policy, masking and the
# audit log on disk, as shipped). Simple and prepared protocol, 1 and 8
# clients. Then, at 1 client, what each proxy spends per transaction: CPU
# time (user / system), context switches, and system calls (strace -c).
# Prints Markdown tables ready for benches/RESULTS.md.
#
#   benches/pgbench.sh [seconds-per-run] [rounds]     (defaults: 10, 5)
#   BENCH_TX=20000     transactions per CPU / syscall run (default 20000)
#
# Needs: PostgreSQL at 127.0.0.1:5432 (trust auth for postgres), pgbench,
# psql, strace (attaching needs ptrace rights: root, or the proxies' user),
# cargo. PgBouncer is the Debian package; it is installed with apt-get when
# missing, and started here in the foreground with its own ini and userlist
# in a temporary directory, on a free port, never through systemd.
#
# Every connection is plain TCP (PGSSLMODE=disable, PgBouncer's
# server_tls_sslmode = disable, Airlock's upstream_tls off): PostgreSQL has
# ssl = on, and pgbench's default sslmode=prefer would otherwise put TLS on
# the direct path only.
#
# Each round runs the three targets in turn, the order rotated from round to
# round so that drift on a shared machine hits all of them; each figure is
# the median over the rounds, and each ratio or added latency the median of
# the per-round ones (each against the direct run of the same round).
set -euo pipefail

die() { echo "pgbench.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required but not on PATH${2:+ ($2)}"; }

duration="${1:-10}"
rounds="${2:-5}"
tx="${BENCH_TX:-20000}"
for v in "$duration" "$rounds" "$tx"; do
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "usage: benches/pgbench.sh [seconds-per-run] [rounds]  (BENCH_TX=N); got '$v'"
done

need pgbench; need psql; need strace; need getconf; need cargo; need awk; need sed; need sort

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=benches/support/airlock.sh
. "$root/benches/support/airlock.sh"
work="$(mktemp -d)"
pgb_dir=""
db="airlock_bench_$$"
password="bench-$$"
airlock_pid=""
pgb_pid=""
strace_pid=""
export PGSSLMODE=disable

# SIGINT makes strace detach and write its summary. A background job starts
# with SIGINT ignored, so one sent before strace has set its handler (a slow
# start on a busy machine) is lost: it is repeated, and strace is killed in
# the end (the kernel then detaches the tracees).
stop_strace() {
    [ -n "$strace_pid" ] || return 0
    local i
    for i in $(seq 100); do
        kill -0 "$strace_pid" 2>/dev/null || break
        if (( i % 10 == 1 )); then kill -INT "$strace_pid" 2>/dev/null || true; fi
        sleep 0.1
    done
    kill -KILL "$strace_pid" 2>/dev/null || true
    wait "$strace_pid" 2>/dev/null || true
    strace_pid=""
    return 0
}

cleanup() {
    # Every step runs, whatever the one before it returned.
    set +e
    stop_strace
    [ -n "$pgb_pid" ] && kill "$pgb_pid" 2>/dev/null && wait "$pgb_pid" 2>/dev/null
    [ -n "$airlock_pid" ] && kill "$airlock_pid" 2>/dev/null && wait "$airlock_pid" 2>/dev/null
    psql -X -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$work" ${pgb_dir:+"$pgb_dir"}
    true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# PgBouncer: the Debian package; /usr/sbin may not be on a user's PATH.
pgbouncer_bin="$(command -v pgbouncer || true)"
[ -z "$pgbouncer_bin" ] && [ -x /usr/sbin/pgbouncer ] && pgbouncer_bin=/usr/sbin/pgbouncer
if [ -z "$pgbouncer_bin" ]; then
    echo "pgbouncer not found: installing the Debian package" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then need sudo "to install pgbouncer"; sudo=sudo; fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >&2 \
        || { $sudo apt-get update -q >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >&2; } \
        || die "could not install pgbouncer"
    pgbouncer_bin="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
    [ -x "$pgbouncer_bin" ] || die "pgbouncer installed but $pgbouncer_bin is missing"
fi
pgbouncer_version="$("$pgbouncer_bin" -V 2>/dev/null | head -1)"

select_airlock "$root"

psql -X -q -h 127.0.0.1 -U postgres -d test -c "CREATE DATABASE $db" >/dev/null
pgbench -q -i -s 5 -h 127.0.0.1 -U postgres "$db" >/dev/null 2>&1 || die "pgbench -i failed"

# --- Airlock -----------------------------------------------------------------
postgres_config "$work/airlock.toml" "$work/var" "$password" "$db" 16
"$airlock_bin" serve --config "$work/airlock.toml" >"$work/airlock.stdout" 2>"$work/airlock.stderr" &
airlock_pid=$!
airlock_port="$(listening_port "$work/airlock.stdout" postgres "$airlock_pid")"
[ -n "$airlock_port" ] || { cat "$work/airlock.stderr" >&2; die "airlock did not start"; }
audit_fsync="$(sed -n 's/^audit log in .* (fsync \([a-z]*\)).*/\1/p' "$work/airlock.stdout")"

# --- PgBouncer ---------------------------------------------------------------
# Its own directory, readable by the user it drops to when started as root
# (PgBouncer refuses to run as root).
pgb_dir="$(mktemp -d)"
pgb_user=""
if [ "$(id -u)" -eq 0 ]; then
    if id postgres >/dev/null 2>&1; then pgb_user=postgres; else pgb_user=nobody; fi
    chown "$pgb_user" "$pgb_dir"
fi
printf '"postgres" ""\n' >"$pgb_dir/userlist.txt"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pgb_port=""
for attempt in 1 2 3 4 5; do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    port_free "$p" || continue
    cat >"$pgb_dir/pgbouncer.ini" <<INI
[databases]
$db = host=127.0.0.1 port=5432 dbname=$db user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $p
unix_socket_dir =
auth_type = trust
auth_file = $pgb_dir/userlist.txt
pool_mode = session
default_pool_size = 16
max_client_conn = 100
server_tls_sslmode = disable
client_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
log_stats = 0
logfile =
pidfile =
${pgb_user:+user = $pgb_user}
INI
    [ -n "$pgb_user" ] && chown "$pgb_user" "$pgb_dir"/*
    "$pgbouncer_bin" "$pgb_dir/pgbouncer.ini" >"$work/pgbouncer.log" 2>&1 &
    pgb_pid=$!
    for _ in $(seq 50); do
        kill -0 "$pgb_pid" 2>/dev/null || break
        psql -X -q -h 127.0.0.1 -p "$p" -U postgres -d "$db" -Atc "select 1" >/dev/null 2>&1 && { pgb_port=$p; break; }
        sleep 0.1
    done
    [ -n "$pgb_port" ] && break
    kill "$pgb_pid" 2>/dev/null; wait "$pgb_pid" 2>/dev/null || true
    pgb_pid=""
    echo "pgbouncer did not start on port $p (attempt $attempt):" >&2
    cat "$work/pgbouncer.log" >&2
done
[ -n "$pgb_port" ] || die "pgbouncer did not start"

# --- Measuring ---------------------------------------------------------------
names=(direct pgbouncer airlock)
declare -A port=([direct]=5432 [pgbouncer]="$pgb_port" [airlock]="$airlock_port")
declare -A user=([direct]=postgres [pgbouncer]=postgres [airlock]=bench)
declare -A pid=([pgbouncer]="$pgb_pid" [airlock]="$airlock_pid")
declare -A title=([pgbouncer]=PgBouncer [airlock]=Airlock)

# pgb TARGET PROTOCOL CLIENTS ARGS...: runs pgbench -S, prints its output.
pgb() {
    local t="$1" protocol="$2" clients="$3"
    shift 3
    PGPASSWORD="$password" pgbench -n -S -M "$protocol" -c "$clients" -j "$(( clients < 2 ? 1 : 2 ))" "$@" \
        -h 127.0.0.1 -p "${port[$t]}" -U "${user[$t]}" "$db" 2>&1
}

# run TARGET PROTOCOL CLIENTS -> "tps latency_ms"
run() {
    local out tps lat
    out="$(pgb "$1" "$2" "$3" -T "$duration")" || die "pgbench against $1 failed: $out"
    tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")"
    lat="$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")"
    [ -n "$tps" ] && [ -n "$lat" ] || die "pgbench against $1 printed no tps / latency: $out"
    echo "$tps $lat"
}

# run_tx TARGET PROTOCOL -> number of transactions processed (N at 1 client).
run_tx() {
    local out n
    out="$(pgb "$1" "$2" 1 -t "$tx")" || die "pgbench against $1 failed: $out"
    n="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
    [ -n "$n" ] && [ "$n" -gt 0 ] || die "pgbench against $1 processed no transactions: $out"
    echo "$n"
}

# Median of one column of numbers (mean of the two middle ones when even).
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v c="$1" '{ print $c }' "$2" | median; }

# "utime stime" in clock ticks, for the whole process (all threads). The
# fields are counted after the command name, which may hold spaces.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'; }
# Voluntary + involuntary context switches, summed over the live threads.
ctx_switches() {
    local f
    for f in /proc/"$1"/task/*/status; do cat "$f" 2>/dev/null || true; done \
        | awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { n += $2 } END { print n + 0 }'
}
clk_tck="$(getconf CLK_TCK)"

# Warm up: server connections in both pools, caches, the classifier.
for t in "${names[@]}"; do
    for protocol in simple prepared; do
        pgb "$t" "$protocol" 8 -t 200 >/dev/null || die "warm-up against $t failed"
    done
done

echo "pgbench -S, scale 5, ${duration} s per run, median of ${rounds} rounds (order rotated each round), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "${pgbouncer_version:-PgBouncer}, session mode, pool 16; Airlock ${AIRLOCK_BIN:+$AIRLOCK_BIN }$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?'), default policy, masking on, audit log on disk (fsync ${audit_fsync:-?}), pool 16; no TLS anywhere"
echo
echo "| protocol | clients | direct TPS | PgBouncer TPS | Airlock TPS | PgBouncer ratio | Airlock ratio | direct latency | PgBouncer adds | Airlock adds |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for protocol in simple prepared; do
    for clients in 1 8; do
        : >"$work/rounds"
        for r in $(seq 0 $(( rounds - 1 ))); do
            declare -A res=()
            for i in 0 1 2; do
                t="${names[$(( (r + i) % 3 ))]}"
                res[$t]="$(run "$t" "$protocol" "$clients")"
            done
            # d_tps d_lat b_tps b_lat a_tps a_lat -> per-round derived figures
            echo "${res[direct]} ${res[pgbouncer]} ${res[airlock]}" | awk '{
                printf "%s %s %s %s %s %s %s %s\n", $1, $3, $5, $3 / $1, $5 / $1, $2, ($4 - $2) * 1000, ($6 - $2) * 1000
            }' >>"$work/rounds"
        done
        awk -v p="$protocol" -v c="$clients" \
            -v dt="$(col 1 "$work/rounds")" -v bt="$(col 2 "$work/rounds")" -v at="$(col 3 "$work/rounds")" \
            -v br="$(col 4 "$work/rounds")" -v ar="$(col 5 "$work/rounds")" -v dl="$(col 6 "$work/rounds")" \
            -v bl="$(col 7 "$work/rounds")" -v al="$(col 8 "$work/rounds")" 'BEGIN {
            if (c == 1) { badd = sprintf("%+.0f µs", bl); aadd = sprintf("%+.0f µs", al) } else { badd = "—"; aadd = "—" }
            printf "| %s | %d | %.0f | %.0f | %.0f | %.2f | %.2f | %.3f ms | %s | %s |\n", p, c, dt, bt, at, br, ar, dl, badd, aadd
        }'
    done
done

# --- CPU, context switches and system calls per transaction -------------------
echo
echo "Proxy cost per transaction, 1 client, pgbench -S -t ${tx}: CPU time of the proxy process (all threads, /proc/<pid>/stat utime + stime), context switches (all threads), in one run; system calls (strace -c -f on the proxy) in a second run"
echo
echo "| proxy | protocol | CPU per tx | user | system | context switches per tx |"
echo "|---|---|---|---|---|---|"
: >"$work/syscalls"
for t in pgbouncer airlock; do
    for protocol in simple prepared; do
        p="${pid[$t]}"
        kill -0 "$p" 2>/dev/null || die "$t (pid $p) is gone"

        # CPU time and context switches.
        read -r u0 s0 < <(cpu_ticks "$p"); c0="$(ctx_switches "$p")"
        n="$(run_tx "$t" "$protocol")"
        read -r u1 s1 < <(cpu_ticks "$p"); c1="$(ctx_switches "$p")"
        awk -v t="${title[$t]}" -v p="$protocol" -v n="$n" -v hz="$clk_tck" \
            -v u=$(( u1 - u0 )) -v s=$(( s1 - s0 )) -v c=$(( c1 - c0 )) 'BEGIN {
            us = 1e6 / hz / n
            printf "| %s | %s | %.1f µs | %.1f µs | %.1f µs | %.2f |\n", t, p, (u + s) * us, u * us, s * us, c / n
        }'

        # System calls: attach, wait until attached, run, stop with SIGINT.
        err="$work/strace.$t.$protocol.err"
        out="$work/strace.$t.$protocol.out"
        strace -c -f -p "$p" -o "$out" 2>"$err" &
        strace_pid=$!
        attach_start=$SECONDS
        for _ in $(seq 300); do
            grep -q "attached" "$err" 2>/dev/null && break
            kill -0 "$strace_pid" 2>/dev/null || break
            sleep 0.1
        done
        grep -q "attached" "$err" 2>/dev/null || { cat "$err" >&2; die "strace could not attach to $t (pid $p)"; }
        (( SECONDS - attach_start < 3 )) || echo "pgbench.sh: strace took $(( SECONDS - attach_start )) s to attach to $t" >&2
        n="$(run_tx "$t" "$protocol")"
        stop_strace
        grep -q ' total$' "$out" || { cat "$err" >&2; die "strace wrote no summary for $t"; }
        # The summary's rows lie between its two dashed rules; the call count
        # is the fourth field, the errors (when any) the fifth, the name last.
        awk -v t="${title[$t]}" -v p="$protocol" -v n="$n" '
            /^-+ / { rule++; next }
            rule == 1 && NF >= 5 { calls[$NF] = $4; total += $4; if (NF >= 6) errors += $5 }
            END {
                top = ""
                for (k = 0; k < 5; k++) {
                    best = ""
                    for (name in calls) if (best == "" || calls[name] > calls[best]) best = name
                    if (best == "") break
                    top = top (top == "" ? "" : ", ") sprintf("%s %.2f", best, calls[best] / n)
                    delete calls[best]
                }
                printf "| %s | %s | %.2f | %.2f | %s |\n", t, p, total / n, errors / n, (top == "" ? "—" : top)
            }' "$out" >>"$work/syscalls"
    done
done
echo
echo "| proxy | protocol | system calls per tx | of which failed (e.g. EAGAIN) | top 5, calls per tx |"
echo "|---|---|---|---|---|"
cat "$work/syscalls"

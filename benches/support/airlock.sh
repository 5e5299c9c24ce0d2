# Sourced by the benchmark scripts: the Airlock build they measure and its
# configuration.

# Sets airlock_bin: AIRLOCK_BIN when given (another build, an earlier
# commit's say), else this tree's release build, built first.
select_airlock() {
    local root="$1"
    airlock_bin="${AIRLOCK_BIN:-$root/target/release/airlock}"
    if [ -z "${AIRLOCK_BIN:-}" ]; then
        cargo build --release --quiet --manifest-path "$root/Cargo.toml"
    fi
    # Airlock reads AIRLOCK_* variables as settings: this one is not for it.
    unset AIRLOCK_BIN
    [ -x "$airlock_bin" ] || { echo "no Airlock binary at $airlock_bin" >&2; exit 1; }
}

# bench_config FILE STATE_DIR PASSWORD: a configuration whose listeners and
# upstreams are read from stdin, with quiet logging and the agent identity
# `bench` whose password is PASSWORD.
bench_config() {
    {
        printf 'state_dir = "%s"\n' "$2"
        cat
        printf '[log]\nlevel = "warn"\n[[identity]]\nname = "bench"\nrole = "agent"\npassword = "%s"\n' "$3"
    } >"$1"
}

# postgres_config FILE STATE_DIR PASSWORD DATABASE POOL: Airlock in front of
# DATABASE on the local PostgreSQL, with a pool of POOL connections; its
# other listeners on ephemeral ports, so that nothing else collides.
postgres_config() {
    bench_config "$1" "$2" "$3" <<TOML
[postgres]
listen = "127.0.0.1:0"
upstream = "postgresql://postgres@127.0.0.1:5432/$4"
pool_size = $5
[inbox]
listen = "127.0.0.1:0"
[mysql]
listen = "127.0.0.1:0"
TOML
}

# mysql_config FILE STATE_DIR PASSWORD DATABASE: Airlock in front of
# DATABASE on the local MariaDB, its other listeners on ephemeral ports.
mysql_config() {
    bench_config "$1" "$2" "$3" <<TOML
[postgres]
listen = "127.0.0.1:0"
[mysql]
listen = "127.0.0.1:0"
upstream = "mysql://root@127.0.0.1:3306/$4"
[inbox]
listen = "127.0.0.1:0"
TOML
}

# listening_port STDOUT LISTENER PID: waits up to two minutes (enough under
# valgrind) for the Airlock process PID to write that LISTENER (postgres,
# mysql) listens, to STDOUT; prints the port, or nothing if it did not
# start.
listening_port() {
    local _
    for _ in $(seq 1200); do
        grep -q "^$2 listening on" "$1" 2>/dev/null && break
        kill -0 "$3" 2>/dev/null || break
        sleep 0.1
    done
    sed -n "s/^$2 listening on 127.0.0.1:\([0-9]*\).*/\1/p" "$1"
}

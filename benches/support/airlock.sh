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

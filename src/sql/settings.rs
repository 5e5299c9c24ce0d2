//! Which server settings an ordinary user may change: setting anything
//! else is not session housekeeping but a change to what the server
//! enforces or records (`session_replication_role` switches off triggers
//! and foreign keys, `log_statement` hides the session from the server's
//! own log), and is classified `privilege` (PostgreSQL) or `admin`
//! (MySQL/MariaDB) instead of `session`.
//!
//! Both lists are allowlists in the PostgreSQL case (a setting not listed
//! is held) and a reviewed denylist in the MySQL case, where the server
//! publishes no privilege per variable.

use super::StatementClass;

/// PostgreSQL settings whose context is `user` — the ones any role may
/// `SET` — plus the session-only ones pg_settings does not show.
///
/// Generated from PostgreSQL 15.20 (Debian 15.20-0+deb12u1) with
/// `SELECT name FROM pg_settings WHERE context = 'user' ORDER BY name`
/// (lower-cased: setting names are case-insensitive), then extended by
/// hand with [`PG_USER_SETTINGS_LATER`]. A name missing here is classified
/// as a privileged setting: the failure mode of an outdated list is a
/// held statement, never an unreviewed `SET`.
const PG_USER_SETTINGS: &[&str] = &[
    "application_name",
    "array_nulls",
    "backend_flush_after",
    "backslash_quote",
    "bytea_output",
    "check_function_bodies",
    "client_connection_check_interval",
    "client_encoding",
    "client_min_messages",
    "commit_siblings",
    "constraint_exclusion",
    "cpu_index_tuple_cost",
    "cpu_operator_cost",
    "cpu_tuple_cost",
    "cursor_tuple_fraction",
    "datestyle",
    "debug_pretty_print",
    "debug_print_parse",
    "debug_print_plan",
    "debug_print_rewritten",
    "default_statistics_target",
    "default_table_access_method",
    "default_tablespace",
    "default_text_search_config",
    "default_toast_compression",
    "default_transaction_deferrable",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "effective_cache_size",
    "effective_io_concurrency",
    "enable_async_append",
    "enable_bitmapscan",
    "enable_gathermerge",
    "enable_hashagg",
    "enable_hashjoin",
    "enable_incremental_sort",
    "enable_indexonlyscan",
    "enable_indexscan",
    "enable_material",
    "enable_memoize",
    "enable_mergejoin",
    "enable_nestloop",
    "enable_parallel_append",
    "enable_parallel_hash",
    "enable_partition_pruning",
    "enable_partitionwise_aggregate",
    "enable_partitionwise_join",
    "enable_seqscan",
    "enable_sort",
    "enable_tidscan",
    "escape_string_warning",
    "exit_on_error",
    "extra_float_digits",
    "force_parallel_mode",
    "from_collapse_limit",
    "geqo",
    "geqo_effort",
    "geqo_generations",
    "geqo_pool_size",
    "geqo_seed",
    "geqo_selection_bias",
    "geqo_threshold",
    "gin_fuzzy_search_limit",
    "gin_pending_list_limit",
    "hash_mem_multiplier",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "intervalstyle",
    "jit",
    "jit_above_cost",
    "jit_expressions",
    "jit_inline_above_cost",
    "jit_optimize_above_cost",
    "jit_tuple_deforming",
    "join_collapse_limit",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "local_preload_libraries",
    "lock_timeout",
    "log_parameter_max_length_on_error",
    "logical_decoding_work_mem",
    "maintenance_io_concurrency",
    "maintenance_work_mem",
    "max_parallel_maintenance_workers",
    "max_parallel_workers",
    "max_parallel_workers_per_gather",
    "min_parallel_index_scan_size",
    "min_parallel_table_scan_size",
    "parallel_leader_participation",
    "parallel_setup_cost",
    "parallel_tuple_cost",
    "password_encryption",
    "plan_cache_mode",
    "quote_all_identifiers",
    "random_page_cost",
    "recursive_worktable_factor",
    "restrict_nonsystem_relation_kind",
    "row_security",
    "search_path",
    "seq_page_cost",
    "standard_conforming_strings",
    "statement_timeout",
    "stats_fetch_consistency",
    "synchronize_seqscans",
    "synchronous_commit",
    "tcp_keepalives_count",
    "tcp_keepalives_idle",
    "tcp_keepalives_interval",
    "tcp_user_timeout",
    "temp_buffers",
    "temp_tablespaces",
    "timezone",
    "timezone_abbreviations",
    "trace_notify",
    "trace_sort",
    "transaction_deferrable",
    "transaction_isolation",
    "transaction_read_only",
    "transform_null_equals",
    "vacuum_cost_delay",
    "vacuum_cost_limit",
    "vacuum_cost_page_dirty",
    "vacuum_cost_page_hit",
    "vacuum_cost_page_miss",
    "vacuum_failsafe_age",
    "vacuum_freeze_min_age",
    "vacuum_freeze_table_age",
    "vacuum_multixact_failsafe_age",
    "vacuum_multixact_freeze_min_age",
    "vacuum_multixact_freeze_table_age",
    "wal_sender_timeout",
    "wal_skip_threshold",
    "work_mem",
    "xmlbinary",
    "xmloption",
];

/// `user`-context settings of later PostgreSQL versions (16–18, from the
/// release notes and the runtime-configuration chapter), old aliases the
/// server maps to listed settings (`sort_mem` is `work_mem`), and `seed`
/// (`SET SEED`), which pg_settings does not show.
const PG_USER_SETTINGS_LATER: &[&str] = &[
    "debug_parallel_query",
    "enable_presorted_aggregate",
    "icu_validation_level",
    "transaction_timeout",
    "enable_group_by_reordering",
    "io_combine_limit",
    "enable_distinct_reordering",
    "enable_self_join_elimination",
    "sort_mem",
    "vacuum_mem",
    "seed",
];

/// Prefixes of custom `prefix.name` settings that belong to well-known
/// extensions or procedural languages, some of whose settings are for
/// superusers only (`pgaudit.log` turns auditing off, `plperl.on_init`
/// runs code, `pg_stat_statements.track` hides statements). Any other
/// `prefix.name` is an application's placeholder — the documented way to
/// pass context such as a tenant id to row-level security policies — which
/// PostgreSQL lets every role set, and which is `session`.
const PG_EXTENSION_PREFIXES: &[&str] = &[
    "anon",
    "auto_explain",
    "bdr",
    "citus",
    "cron",
    "pg_cron",
    "pg_hint_plan",
    "pg_net",
    "pg_partman_bgw",
    "pg_prewarm",
    "pg_qualstats",
    "pg_stat_kcache",
    "pg_stat_monitor",
    "pg_stat_statements",
    "pg_store_plans",
    "pg_wait_sampling",
    "pgaudit",
    "pglogical",
    "pgsodium",
    "plperl",
    "plpgsql",
    "plpython3u",
    "plv8",
    "pljava",
    "pltcl",
    "postgres_fdw",
    "sepgsql",
    "set_user",
    "supautils",
    "timescaledb",
];

/// The class of changing (`SET`, `SET LOCAL`, `RESET`, `set_config`,
/// `ALTER … SET`) the PostgreSQL setting `name`, given lower-cased.
pub fn pg_setting_class(name: &str) -> StatementClass {
    let name = name.trim();
    if matches!(name, "role" | "session_authorization") {
        return StatementClass::Privilege;
    }
    if PG_USER_SETTINGS.contains(&name) || PG_USER_SETTINGS_LATER.contains(&name) {
        return StatementClass::Session;
    }
    match name.split_once('.') {
        Some((prefix, rest)) if !prefix.is_empty() && !rest.is_empty() => {
            if PG_EXTENSION_PREFIXES.contains(&prefix) {
                StatementClass::Privilege
            } else {
                StatementClass::Session
            }
        }
        _ => StatementClass::Privilege,
    }
}

/// MariaDB session variables an ordinary user may not set (error 1227):
/// found on MariaDB 10.11.19 by setting every dynamic `SESSION` /
/// `SESSION ONLY` variable of `information_schema.SYSTEM_VARIABLES` to its
/// own value as a user without privileges.
const MYSQL_RESTRICTED_GENERATED: &[&str] = &[
    "binlog_annotate_row_events",
    "binlog_direct_non_transactional_updates",
    "binlog_format",
    "binlog_row_image",
    "enforce_storage_engine",
    "gtid_domain_id",
    "gtid_seq_no",
    "innodb_tmpdir",
    "log_disabled_statements",
    "pseudo_thread_id",
    "server_id",
    "sql_log_bin",
    "sql_log_off",
    "system_versioning_asof",
    "wsrep_gtid_seq_no",
    "wsrep_on",
];

/// The same for MySQL 8 and builds with debugging or replication features
/// the probed server lacks, from the MySQL and MariaDB manuals (SUPER,
/// SYSTEM_VARIABLES_ADMIN, SESSION_VARIABLES_ADMIN, REPLICATION_APPLIER),
/// and the replication switches the probe could set only to their current
/// value. Global-only variables (`general_log`) need no entry: without
/// `GLOBAL` the server refuses to set them, with it the statement is
/// `admin` whatever the variable.
const MYSQL_RESTRICTED_DOCUMENTED: &[&str] = &[
    "binlog_row_value_options",
    "binlog_rows_query_log_events",
    "binlog_transaction_compression",
    "binlog_transaction_compression_level_zstd",
    "debug",
    "debug_dbug",
    "debug_sync",
    "default_table_encryption",
    "explicit_defaults_for_timestamp",
    "gtid_next",
    "immediate_server_version",
    "original_commit_timestamp",
    "original_server_version",
    "pseudo_replica_mode",
    "pseudo_slave_mode",
    "rbr_exec_mode",
    "skip_replication",
    "sql_require_primary_key",
    "transaction_write_set_extraction",
];

/// The class of setting the MySQL/MariaDB session variable `name`,
/// given lower-cased.
pub fn mysql_variable_class(name: &str) -> StatementClass {
    if MYSQL_RESTRICTED_GENERATED.contains(&name)
        || MYSQL_RESTRICTED_DOCUMENTED.contains(&name)
        || name.starts_with("wsrep_")
        || name.starts_with("gtid_")
    {
        StatementClass::Admin
    } else {
        StatementClass::Session
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_user_settings_are_session() {
        use StatementClass::{Admin, Privilege, Session};
        for (name, class) in [
            ("work_mem", Session),
            ("search_path", Session),
            ("timezone", Session),
            ("sort_mem", Session),
            ("app.tenant_id", Session),
            ("role", Privilege),
            ("session_authorization", Privilege),
            ("session_replication_role", Privilege),
            ("log_statement", Privilege),
            ("log_min_duration_statement", Privilege),
            ("pgaudit.log", Privilege),
            ("plperl.on_init", Privilege),
            ("no_such_setting", Privilege),
            ("app.", Privilege),
            (".x", Privilege),
        ] {
            assert_eq!(pg_setting_class(name), class, "{name}");
        }
        for (name, class) in [
            ("sql_mode", Session),
            ("autocommit", Session),
            ("foreign_key_checks", Session),
            ("sql_log_bin", Admin),
            ("sql_log_off", Admin),
            ("pseudo_thread_id", Admin),
            ("gtid_seq_no", Admin),
            ("wsrep_on", Admin),
            ("slow_query_log", Session),
        ] {
            assert_eq!(mysql_variable_class(name), class, "{name}");
        }
    }
}

//! Client encodings Airlock cannot read as the server does, end to end.
//!
//! In SJIS, GBK or BIG5 a multi-byte character can end in the byte `\`
//! (0x5c): `E'Ã\'; CREATE TABLE t (); --'` is one string to a UTF-8
//! reader, but to a server in SJIS `Ã` + `\x83\x5c` are two characters,
//! the quote closes the string and `CREATE TABLE` runs. Each test first
//! shows (directly against the server, without Airlock) that its payload
//! really does that, then that through Airlock every way to get into such
//! an encoding is refused — with the server's own log, or the absence of
//! the table the hidden statement would create, as the witness — while
//! UTF8 / LATIN1 / utf8mb4 sessions keep working.

mod support;

use airlock::config::UpstreamUrl;
use airlock::proxy::mysql::handshake::{
    CLIENT_MULTI_RESULTS, CLIENT_MULTI_STATEMENTS, DEFAULT_CLIENT,
};
use airlock::proxy::mysql::upstream::{
    self as my_upstream, Upstream, UpstreamError as MyError, UpstreamSettings as MySettings,
};
use airlock::proxy::pg::upstream::{
    Pool, PoolKey, UpstreamError as PgError, UpstreamSettings as PgSettings,
};
use std::sync::Arc;
use std::time::Duration;
use support::gateway::{psql_direct, Gateway, TestDb, AGENT, AGENT_PASSWORD};
use support::mysql::{mariadb_direct, marker, GeneralLog, MyDb};
use support::pglog::{log_contains, logged_database, server_log};
use support::wire::{server_error, Frontend, Wire};

// ---- PostgreSQL ---------------------------------------------------------

/// (client encoding, a statement whose hidden second statement creates
/// `{t}` when the server reads it in that encoding). Each leading
/// character is valid UTF-8 whose last byte, in the named encoding,
/// begins a two-byte character with the following backslash.
const PG_PAYLOADS: &[(&str, &str)] = &[
    // Ã = C3 83: C3 is a half-width katakana, 83 5C is ソ.
    ("SJIS", "SELECT E'Ã\\'; CREATE TABLE {t} (); --'"),
    // 丁 = E4 B8 81: E4 B8 is one character, 81 5C another.
    ("GBK", "SELECT E'丁\\'; CREATE TABLE {t} (); --'"),
    // 严 = E4 B8 A5: E4 B8 is one character, A5 5C (功) another.
    ("BIG5", "SELECT E'严\\'; CREATE TABLE {t} (); --'"),
];

async fn login(
    gateway: &Gateway,
    database: &str,
    params: &[(&str, &str)],
) -> std::io::Result<Wire> {
    Wire::connect(&gateway.addr, AGENT, AGENT_PASSWORD, database, params).await
}

fn pg_table_exists(db: &str, table: &str) -> bool {
    psql_direct(
        db,
        &format!("SELECT count(*) FROM pg_class WHERE relname = '{table}'"),
    ) == "1"
}

/// The SQLSTATE and message of the first error among the replies.
async fn pg_error(wire: &mut Wire, sql: &str) -> Option<(String, String)> {
    let replies = wire.simple_query(sql).await.expect("query round trip");
    replies.iter().find(|m| m.is_error()).map(|e| {
        let fields = e.fields().unwrap_or_default();
        (
            fields.get(&b'C').cloned().unwrap_or_default(),
            fields.get(&b'M').cloned().unwrap_or_default(),
        )
    })
}

#[tokio::test]
async fn pg_payloads_hide_a_statement_from_a_utf8_reader_but_not_through_airlock() {
    let db = TestDb::create("encpay");
    // Without Airlock: in the payload's encoding, the hidden statement runs.
    for (i, (encoding, payload)) in PG_PAYLOADS.iter().enumerate() {
        let table = format!("direct_{i}");
        let mut direct = Wire::connect(
            "127.0.0.1:5432",
            "postgres",
            "",
            &db.name,
            &[("client_encoding", encoding)],
        )
        .await
        .expect("direct login");
        direct
            .simple_query(&payload.replace("{t}", &table))
            .await
            .expect("direct query");
        assert!(
            pg_table_exists(&db.name, &table),
            "{encoding}: the payload does not work; the test proves nothing"
        );
    }
    // Through Airlock in UTF8 (the only way in): one string, nothing created.
    let gateway = Gateway::with_default_policy();
    let mut wire = login(&gateway, &db.name, &[]).await.expect("login");
    for (i, (encoding, payload)) in PG_PAYLOADS.iter().enumerate() {
        let table = format!("through_{i}");
        let error = pg_error(&mut wire, &payload.replace("{t}", &table)).await;
        assert_eq!(error, None, "{encoding}: a plain SELECT of a string");
        assert!(
            !pg_table_exists(&db.name, &table),
            "{encoding}: the hidden statement ran"
        );
    }
}

#[tokio::test]
async fn pg_startup_client_encodings_airlock_cannot_read_are_refused() {
    let db = TestDb::create("encstart");
    let gateway = Gateway::with_default_policy();
    for encoding in [
        "SJIS",
        "Shift_JIS",
        "WIN932",
        "shift_jis_2004",
        "GBK",
        "CP936",
        "WIN936",
        "BIG5",
        "win950",
        "GB18030",
        "UHC",
        "Windows-949",
        "JOHAB",
    ] {
        let refused = login(&gateway, &db.name, &[("client_encoding", encoding)]).await;
        let error = refused.err().expect("refused");
        let error = server_error(&error).expect("an ErrorResponse");
        assert_eq!(error.code(), "0A000", "{encoding}: {error}");
        assert!(error.message().contains("UTF8"), "{error}");
    }
    for encoding in ["UTF8", "utf-8", "LATIN1", "EUC_JP", "SQL_ASCII"] {
        let mut wire = login(&gateway, &db.name, &[("client_encoding", encoding)])
            .await
            .expect(encoding);
        assert_eq!(pg_error(&mut wire, "SELECT 1").await, None, "{encoding}");
    }
}

#[tokio::test]
async fn pg_every_way_to_switch_is_refused_before_the_server_sees_it() {
    let db = logged_database("encset");
    let log = server_log();
    let m = marker("encset");
    let gateway = Gateway::with_default_policy();
    let mut wire = login(&gateway, &db.name, &[]).await.expect("login");
    let name = &db.name;
    let statements = [
        format!("SET client_encoding = 'SJIS' /* {m}a */"),
        format!("SET client_encoding TO gbk /* {m}b */"),
        format!("SET SESSION client_encoding TO 'BIG5' /* {m}c */"),
        format!("BEGIN; SET LOCAL client_encoding = 'WIN932' /* {m}d */; COMMIT"),
        format!("SET NAMES 'GB18030' /* {m}e */"),
        format!("SET \"client_encoding\" = 'UHC' /* {m}f */"),
        format!("SET U&\"client\\005fencoding\" TO 'JOHAB' /* {m}g */"),
        format!("SELECT set_config('client_encoding', 'SJIS', false) /* {m}h */"),
        format!("SELECT pg_catalog.\"set_config\"(U&'client\\005fencoding', 'Shift_JIS', true) /* {m}i */"),
        format!("SELECT set_config(n, 'SJIS', false) FROM (VALUES ('client_encoding')) v(n) /* {m}j */"),
        format!("SELECT set_config('client_' || 'encoding', 'SJIS', false) /* {m}k */"),
        format!("ALTER DATABASE {name} SET client_encoding = 'SJIS' /* {m}l */"),
        format!("ALTER ROLE postgres IN DATABASE {name} SET client_encoding = 'GBK' /* {m}m */"),
        format!("UPDATE pg_settings SET setting = 'SJIS' WHERE name = 'client_encoding' /* {m}n */"),
        format!("SELECT 1; SET client_encoding = 'SJIS' /* {m}o */"),
        format!("SET client_encoding = E'S\\x4aIS' /* {m}p */"),
    ];
    for sql in &statements {
        let error = pg_error(&mut wire, sql).await;
        let (code, message) = error.unwrap_or_else(|| panic!("not refused: {sql}"));
        assert_eq!(code, "0A000", "{sql}: {message}");
        assert!(message.contains("UTF8"), "{message}");
        // The session goes on, still in UTF8.
        assert_eq!(pg_error(&mut wire, "SELECT 1").await, None);
    }
    // Extended protocol: refused at Parse.
    wire.send_all(&[
        Frontend::parse(
            "",
            &format!("SELECT set_config('client_encoding', $1, false) /* {m}q */"),
            &[],
        ),
        Frontend::Sync,
    ])
    .await
    .expect("send");
    let replies = wire.recv_until_ready().await.expect("replies");
    let codes: Vec<_> = replies.iter().filter_map(|r| r.sqlstate()).collect();
    assert_eq!(codes, vec!["0A000".to_string()]);
    // A safe switch still works.
    assert_eq!(
        pg_error(&mut wire, "SET client_encoding = 'LATIN1'").await,
        None
    );
    assert_eq!(pg_error(&mut wire, "RESET client_encoding").await, None);
    let show = wire
        .simple_query("SHOW client_encoding")
        .await
        .expect("show");
    let value = show
        .iter()
        .find_map(|r| r.data_row())
        .and_then(|row| row[0].clone());
    assert_eq!(value.as_deref(), Some(&b"UTF8"[..]));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !log_contains(&log, &m),
        "a refused statement reached the server"
    );
}

#[tokio::test]
async fn pg_no_policy_can_allow_an_encoding_switch() {
    let db = TestDb::create("encallow");
    let gateway = Gateway::start(); // allows everything
    let mut wire = login(&gateway, &db.name, &[]).await.expect("login");
    let error = pg_error(&mut wire, "SET client_encoding = 'SJIS'").await;
    assert_eq!(error.map(|e| e.0).as_deref(), Some("0A000"));
    let error = pg_error(
        &mut wire,
        "SELECT set_config('client_encoding', 'GBK', false)",
    )
    .await;
    assert_eq!(error.map(|e| e.0).as_deref(), Some("0A000"));
}

#[tokio::test]
async fn pg_a_database_default_airlock_cannot_read_is_refused_at_login() {
    let db = TestDb::create("encdefault");
    psql_direct(
        "test",
        &format!("ALTER DATABASE {} SET client_encoding = 'SJIS'", db.name),
    );
    let gateway = Gateway::with_default_policy();
    let refused = login(&gateway, &db.name, &[]).await;
    let error = refused.err().expect("refused");
    let error = server_error(&error).expect("an ErrorResponse");
    assert_eq!(error.code(), "0A000", "{error}");
}

/// `standard_conforming_strings` decides whether `\` escapes in `'…'`; the
/// lexer reads such text both ways, so neither setting hides a statement.
/// `backslash_quote` and `escape_string_warning` only accept/reject or
/// warn: they change no boundary.
#[tokio::test]
async fn pg_string_settings_do_not_hide_statements() {
    let db = TestDb::create("encscs");
    let gateway = Gateway::with_default_policy();
    let mut wire = login(&gateway, &db.name, &[]).await.expect("login");
    let settings = [
        "SET standard_conforming_strings = off",
        "SET standard_conforming_strings = on",
        "SET backslash_quote = on",
        "SET escape_string_warning = off",
    ];
    for (i, setting) in settings.iter().enumerate() {
        assert_eq!(pg_error(&mut wire, setting).await, None, "{setting}");
        let plain = format!("scs_plain_{i}");
        let _ = pg_error(
            &mut wire,
            &format!("SELECT 'a\\'; CREATE TABLE {plain} (); --'"),
        )
        .await;
        let escaped = format!("scs_escaped_{i}");
        let _ = pg_error(
            &mut wire,
            &format!("SELECT E'a\\\\'; CREATE TABLE {escaped} (); --'"),
        )
        .await;
        for t in [plain, escaped] {
            // Either the gate saw both statements (and held them) or the
            // server read one string: never an unapproved CREATE.
            assert!(!pg_table_exists(&db.name, &t), "{setting}: {t} created");
        }
    }
}

/// The impact estimate sends the agent's text as one extended-protocol
/// statement: even text that hides a second statement runs at most the
/// EXPLAIN.
#[tokio::test]
async fn pg_the_impact_estimate_runs_one_statement_at_most() {
    let db = TestDb::create("encexplain");
    let settings = PgSettings {
        url: UpstreamUrl::parse("postgresql://postgres@127.0.0.1:5432/test").expect("url"),
        tls: None,
        connect_timeout: Duration::from_secs(10),
    };
    let pool = Pool::new(Arc::new(settings), 2, Duration::from_secs(10));
    let key = PoolKey {
        database: db.name.clone(),
        params: Vec::new(),
    };
    let plan = pool.explain(&key, None, "SELECT 1").await.expect("a plan");
    assert!(!plan.is_empty());
    for hidden in [
        "SELECT 1; CREATE TABLE explain_a ()",
        "SELECT 1 ; CREATE TABLE explain_b (); SELECT 2",
        "SELECT E'Ã\\'; CREATE TABLE explain_c (); --'",
    ] {
        let result = pool.explain(&key, None, hidden).await;
        if hidden.contains("explain_c") {
            // In UTF8 this is one SELECT of a string.
            assert!(result.is_ok(), "{result:?}");
        } else {
            assert!(
                matches!(result, Err(PgError::Rejected { .. })),
                "{hidden}: {result:?}"
            );
        }
    }
    for t in ["explain_a", "explain_b", "explain_c"] {
        assert!(!pg_table_exists(&db.name, t), "{t} created by the estimate");
    }
    assert!(pool.explain(&key, None, "SELECT '\0'").await.is_err());
}

// ---- MariaDB ------------------------------------------------------------

/// (charset, its collation id, a statement whose hidden second statement
/// creates `{t}` in that character set).
const MY_PAYLOADS: &[(&str, u8, &str)] = &[
    ("gbk", 28, "SET @x = '丁\\'; CREATE TABLE {t} (a int); -- '"),
    ("sjis", 13, "SET @x = 'Ã\\'; CREATE TABLE {t} (a int); -- '"),
    ("big5", 1, "SET @x = '严\\'; CREATE TABLE {t} (a int); -- '"),
    (
        "cp932",
        95,
        "SET @x = 'Ã\\'; CREATE TABLE {t} (a int); -- '",
    ),
];

async fn my_connect(
    address: &str,
    user: &str,
    password: &str,
    db: &str,
    charset: u8,
) -> Result<Upstream, MyError> {
    let mut settings = MySettings::new(address, user);
    settings.password = password.to_string();
    settings.database = Some(db.to_string());
    settings.capabilities = DEFAULT_CLIENT | CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS;
    settings.charset = charset;
    my_upstream::connect(&settings).await
}

/// Runs a multi-statement query and reads every reply.
async fn my_run(conn: &mut Upstream, sql: &str) -> Result<(), MyError> {
    let first = my_upstream::execute(conn, sql).await?;
    let mut more = first.status & airlock::proxy::mysql::handshake::SERVER_MORE_RESULTS_EXISTS != 0;
    while more {
        let packet = conn
            .packets
            .read()
            .await
            .ok()
            .flatten()
            .ok_or(MyError::Timeout)?;
        more = packet.payload.first() == Some(&0)
            && airlock::proxy::mysql::handshake::OkPacket::parse(
                &packet.payload,
                conn.capabilities,
            )
            .is_ok_and(|ok| {
                ok.status & airlock::proxy::mysql::handshake::SERVER_MORE_RESULTS_EXISTS != 0
            });
    }
    Ok(())
}

fn my_table_exists(db: &str, table: &str) -> bool {
    mariadb_direct(
        "",
        &format!("SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}'"),
    ) == "1"
}

fn rejected_code<T>(result: Result<T, MyError>) -> Option<u16> {
    match result {
        Err(MyError::Rejected { code, .. }) => Some(code),
        _ => None,
    }
}

#[tokio::test]
async fn mysql_payloads_hide_a_statement_but_not_through_airlock() {
    let db = MyDb::create("encpay");
    for (i, (charset, id, payload)) in MY_PAYLOADS.iter().enumerate() {
        let table = format!("direct_{i}");
        let mut direct = my_connect("127.0.0.1:3306", "root", "", &db.name, *id)
            .await
            .expect("direct login");
        my_run(&mut direct, &payload.replace("{t}", &table))
            .await
            .expect("direct query");
        assert!(
            my_table_exists(&db.name, &table),
            "{charset}: the payload does not work; the test proves nothing"
        );
    }
    let gateway = Gateway::with_default_policy();
    let mut conn = my_connect(&gateway.mysql_addr, AGENT, AGENT_PASSWORD, &db.name, 45)
        .await
        .expect("login");
    for (i, (charset, _, payload)) in MY_PAYLOADS.iter().enumerate() {
        let table = format!("through_{i}");
        // The gate reads `\'` both ways (sql_mode may turn backslash
        // escapes off), sees the readings split differently and holds it;
        // either way the hidden statement never runs.
        let result = my_run(&mut conn, &payload.replace("{t}", &table)).await;
        assert_eq!(
            rejected_code(result),
            Some(1227),
            "{charset}: held as ambiguous"
        );
        assert!(
            !my_table_exists(&db.name, &table),
            "{charset}: the hidden statement ran"
        );
    }
}

#[tokio::test]
async fn mysql_login_character_sets_airlock_cannot_read_are_refused() {
    let db = MyDb::create("enclogin");
    let gateway = Gateway::with_default_policy();
    // big5, sjis, gbk, ucs2, utf16, utf16le, utf32, cp932, swe7, gbk_bin, sjis_bin, MySQL's gb18030
    for id in [1u8, 13, 28, 35, 54, 56, 60, 95, 10, 87, 88, 248] {
        let refused = my_connect(&gateway.mysql_addr, AGENT, AGENT_PASSWORD, &db.name, id).await;
        assert_eq!(rejected_code(refused), Some(1235), "collation id {id}");
    }
    // utf8mb4, latin1, utf8mb3, ascii, binary work.
    for id in [45u8, 8, 33, 11, 63, 224] {
        let mut conn = my_connect(&gateway.mysql_addr, AGENT, AGENT_PASSWORD, &db.name, id)
            .await
            .unwrap_or_else(|e| panic!("collation id {id}: {e}"));
        my_run(&mut conn, "SET @x = 1").await.expect("works");
    }
}

#[tokio::test]
async fn mysql_every_way_to_switch_is_refused_before_the_server_sees_it() {
    let db = MyDb::create("encset");
    let log = GeneralLog::on();
    let m = marker("encset");
    let gateway = Gateway::with_default_policy();
    let mut conn = my_connect(&gateway.mysql_addr, AGENT, AGENT_PASSWORD, &db.name, 45)
        .await
        .expect("login");
    let statements = [
        format!("SET NAMES gbk /* {m}a */"),
        format!("SET NAMES 'sjis' COLLATE sjis_bin /* {m}b */"),
        format!("SET CHARACTER SET big5 /* {m}c */"),
        format!("SET CHARSET cp932 /* {m}d */"),
        format!("SET character_set_client = gbk /* {m}e */"),
        format!("SET @@character_set_client = 'sjis' /* {m}f */"),
        format!("SET @@session.character_set_client := gbk /* {m}g */"),
        format!("SET SESSION character_set_client = big5 /* {m}h */"),
        format!("SET character_set_client = @v /* {m}i */"),
        format!("SET character_set_client = (SELECT 'gbk') /* {m}j */"),
        format!("SET @a = 1, NAMES gbk /* {m}k */"),
        format!("/*!40101 SET NAMES gbk */ /* {m}l */"),
        format!("SET character_set_client = 28 /* {m}m */"),
        format!("PREPARE s FROM 'SET NAMES gbk /* {m}n */'"),
        format!("EXECUTE IMMEDIATE CONCAT('SET NAMES ', 'gbk') /* {m}o */"),
        format!("SET @a = 1; SET NAMES sjis /* {m}p */"),
        format!("SET character_set_connection = utf16 /* {m}q */"),
    ];
    for sql in &statements {
        let result = my_run(&mut conn, sql).await;
        assert_eq!(rejected_code(result), Some(1235), "{sql}");
        // The session goes on.
        my_run(&mut conn, "SET @ok = 1")
            .await
            .expect("still usable");
    }
    my_run(&mut conn, "SET NAMES utf8mb4")
        .await
        .expect("safe switch");
    my_run(&mut conn, "SET NAMES latin1")
        .await
        .expect("safe switch");
    my_run(&mut conn, "/*!40101 SET NAMES utf8mb4 */")
        .await
        .expect("safe switch");
    my_run(&mut conn, "SET character_set_client = DEFAULT")
        .await
        .expect("safe switch");
    assert!(!log.contains(&m), "a refused statement reached the server");
}

#[tokio::test]
async fn mysql_no_policy_can_allow_an_encoding_switch() {
    let db = MyDb::create("encallow");
    let gateway = Gateway::start();
    let mut conn = my_connect(&gateway.mysql_addr, AGENT, AGENT_PASSWORD, &db.name, 45)
        .await
        .expect("login");
    assert_eq!(
        rejected_code(my_run(&mut conn, "SET NAMES gbk").await),
        Some(1235)
    );
    let refused = my_connect(&gateway.mysql_addr, AGENT, AGENT_PASSWORD, &db.name, 28).await;
    assert_eq!(rejected_code(refused), Some(1235));
    // This policy lets the ambiguous payload run: the server, in
    // utf8mb4, reads one string, as the gate did.
    for (i, (charset, _, payload)) in MY_PAYLOADS.iter().enumerate() {
        let table = format!("allowed_{i}");
        my_run(&mut conn, &payload.replace("{t}", &table))
            .await
            .expect("one SET of a string");
        assert!(
            !my_table_exists(&db.name, &table),
            "{charset}: the hidden statement ran"
        );
    }
}

/// MariaDB's estimate runs on a connection without multi-statements and in
/// utf8mb4, whatever the session's character set.
#[tokio::test]
async fn mysql_the_impact_estimate_runs_one_statement_at_most() {
    let db = MyDb::create("encexplain");
    mariadb_direct(&db.name, "CREATE TABLE t (a int)");
    let mut settings = MySettings::new("127.0.0.1:3306", "root");
    settings.charset = 28; // a gbk session: the estimate must not inherit it
    let limit = Duration::from_secs(3);
    let plan =
        my_upstream::explain(&settings, Some(&db.name), "SELECT a FROM t", true, limit).await;
    assert!(plan.is_ok(), "{plan:?}");
    let hidden = my_upstream::explain(
        &settings,
        Some(&db.name),
        "SELECT 1; CREATE TABLE explain_a (a int)",
        false,
        limit,
    )
    .await;
    assert!(hidden.is_err(), "{hidden:?}");
    let gbk = my_upstream::explain(
        &settings,
        Some(&db.name),
        "SELECT '丁\\'; CREATE TABLE explain_b (a int); -- '",
        false,
        limit,
    )
    .await;
    assert!(
        gbk.is_ok(),
        "in utf8mb4 this is one SELECT of a string: {gbk:?}"
    );
    for table in ["explain_a", "explain_b"] {
        assert!(
            !my_table_exists(&db.name, table),
            "{table} created by the estimate"
        );
    }
}

/// Airlock's encoding tables agree with the servers': every PostgreSQL
/// encoding the server knows is judged by its canonical name as expected,
/// every MariaDB collation id below 256 as its character set.
#[test]
fn the_encoding_tables_match_the_servers() {
    use airlock::sql::encoding::{
        is_ascii_safe_mysql_charset, is_ascii_safe_mysql_collation_id, is_ascii_safe_pg,
    };
    const PG_UNSAFE: &[&str] = &[
        "SJIS",
        "SHIFT_JIS_2004",
        "BIG5",
        "GBK",
        "GB18030",
        "UHC",
        "JOHAB",
    ];
    let names = psql_direct(
        "test",
        "SELECT string_agg(pg_encoding_to_char(i), ' ') FROM generate_series(0, 60) i WHERE pg_encoding_to_char(i) <> ''",
    );
    let names: Vec<&str> = names.split_whitespace().collect();
    assert!(names.len() > 30, "{names:?}");
    for name in names {
        assert_eq!(is_ascii_safe_pg(name), !PG_UNSAFE.contains(&name), "{name}");
    }
    // Every alias Airlock accepts resolves, on the server, to a safe encoding.
    for alias in [
        "unicode",
        "iso-8859-1",
        "koi8",
        "win",
        "alt",
        "abc",
        "tcvn",
        "vscii",
        "windows-1252",
        "euc_jis_2004",
        "mule_internal",
    ] {
        assert!(is_ascii_safe_pg(alias), "{alias}");
        let canonical = psql_direct(
            "test",
            &format!("SELECT pg_encoding_to_char(pg_char_to_encoding('{alias}'))"),
        );
        assert!(
            !canonical.is_empty() && !PG_UNSAFE.contains(&canonical.as_str()),
            "{alias} is {canonical}"
        );
    }
    // Aliases of unsafe encodings are refused.
    for alias in [
        "mskanji",
        "shiftjis",
        "win932",
        "windows932",
        "win936",
        "windows936",
        "cp936",
        "win949",
        "windows949",
        "win950",
        "windows950",
    ] {
        let canonical = psql_direct(
            "test",
            &format!("SELECT pg_encoding_to_char(pg_char_to_encoding('{alias}'))"),
        );
        // (An empty answer: not a name this server knows — refused too.)
        assert!(
            canonical.is_empty() || PG_UNSAFE.contains(&canonical.as_str()),
            "{alias} is {canonical}"
        );
        assert!(!is_ascii_safe_pg(alias), "{alias}");
    }
    let rows = mariadb_direct(
        "",
        "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID < 256",
    );
    for line in rows.lines() {
        let mut cols = line.split('\t');
        let (Some(id), Some(charset)) = (cols.next(), cols.next()) else {
            continue;
        };
        let id: u16 = id.parse().expect("an id");
        assert_eq!(
            is_ascii_safe_mysql_collation_id(id),
            is_ascii_safe_mysql_charset(charset),
            "collation {id} ({charset})"
        );
    }
}

//! Credential material in results, end to end: the servers' own password
//! hashes read through the gateway by an agent come back as
//! `<PASSWORD_HASH>`, under the standard detectors and the redact strategy.
//!
//! * PostgreSQL: roles created with SCRAM-SHA-256 and md5 passwords, read
//!   from `pg_authid.rolpassword` and `pg_shadow.passwd`.
//! * MariaDB: a user's `authentication_string` and `Password` from
//!   `mysql.user`, and a table of application hashes in every format the
//!   detector knows (crypt(3), PHC, Django, LDAP, MySQL's caching_sha2 with
//!   a salt that is not text), as VARCHAR and as BLOB.
//!
//! Each test first reads the same rows directly from the server, so it
//! fails if a value is not there to be masked, and checks that other
//! columns of the rows come back unchanged.

mod support;

use support::gateway::{psql_direct, psql_through, Gateway, Options, AGENT, AGENT_PASSWORD};
use support::mysql::{mariadb_direct, mariadb_through, MyDb};

const MASKING_POLICY: &str = "[[rule]]\nname = \"allow\"\naction = \"allow\"\n\n\
    [masking]\ndetectors = [\"standard\"]\nstrategy = \"redact\"\n";

fn masking_gateway() -> Gateway {
    Gateway::start_with(Options {
        policy: Some(MASKING_POLICY.to_string()),
        ..Default::default()
    })
}

/// PostgreSQL roles of one test, dropped on drop.
struct PgRoles(Vec<String>);

impl Drop for PgRoles {
    fn drop(&mut self) {
        for role in &self.0 {
            let _ = std::process::Command::new("psql")
                .args([
                    "-X",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    "5432",
                    "-U",
                    "postgres",
                ])
                .args(["-d", "test", "-c", &format!("DROP ROLE IF EXISTS {role}")])
                .output();
        }
    }
}

#[test]
fn postgres_password_verifiers_are_masked() {
    let pid = std::process::id();
    let scram = format!("airlock_hash_{pid}_scram");
    let md5 = format!("airlock_hash_{pid}_md5");
    let roles = PgRoles(vec![scram.clone(), md5.clone()]);
    psql_direct(
        "test",
        &format!(
            "SET password_encryption = 'scram-sha-256'; CREATE ROLE {scram} LOGIN PASSWORD 'Tr0ub4dor&3'; \
             SET password_encryption = 'md5'; CREATE ROLE {md5} LOGIN PASSWORD 'correct horse'"
        ),
    );
    let pattern = format!("airlock_hash_{pid}_%");
    for sql in [
        format!(
            "SELECT rolname, rolpassword FROM pg_authid WHERE rolname LIKE '{pattern}' ORDER BY 1"
        ),
        format!("SELECT usename, passwd FROM pg_shadow WHERE usename LIKE '{pattern}' ORDER BY 1"),
    ] {
        let direct = psql_direct("test", &sql);
        let lines: Vec<&str> = direct.lines().collect();
        assert_eq!(lines.len(), 2, "{sql}: {direct}");
        assert!(lines[0].starts_with(&format!("{md5}|md5")), "{direct}");
        assert!(
            lines[1].starts_with(&format!("{scram}|SCRAM-SHA-256$4096:")),
            "{direct}"
        );

        let gateway = masking_gateway();
        let out = psql_through(&gateway.addr, AGENT, AGENT_PASSWORD, "test", &["-c", &sql]);
        let through = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            through.trim(),
            format!("{md5}|<PASSWORD_HASH>\n{scram}|<PASSWORD_HASH>"),
            "{sql}"
        );
    }
    drop(roles);
}

/// A MariaDB user of one test, dropped on drop.
struct MyUser(String);

impl Drop for MyUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e"])
            .arg(format!("DROP USER IF EXISTS '{}'@'localhost'", self.0))
            .output();
    }
}

fn agent_mariadb(gateway: &Gateway, db: &str, sql: &str) -> String {
    let out = mariadb_through(&gateway.mysql_addr, AGENT, AGENT_PASSWORD, db, sql, &[]);
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn mariadb_password_hashes_are_masked() {
    let user = MyUser(format!("airlock_hash_{}", std::process::id()));
    mariadb_direct(
        "",
        &format!(
            "CREATE USER '{}'@'localhost' IDENTIFIED BY 'Tr0ub4dor&3'",
            user.0
        ),
    );
    let sql = format!(
        "SELECT User, authentication_string, Password FROM mysql.user WHERE User = '{}'",
        user.0
    );
    let direct = mariadb_direct("", &sql);
    let fields: Vec<&str> = direct.split('\t').collect();
    assert!(
        fields.len() == 3 && fields[1].len() == 41 && fields[1].starts_with('*'),
        "{direct}"
    );
    let gateway = masking_gateway();
    // Airlock keeps sessions out of system schemas; qualified names work.
    let through = agent_mariadb(&gateway, "", &sql);
    assert_eq!(
        through,
        format!("{}\t<PASSWORD_HASH>\t<PASSWORD_HASH>", user.0),
        "{sql}"
    );
}

/// Application tables keep hashes of every kind; caching_sha2's salt is
/// any byte but NUL and `$`, so its value is masked whole however it is
/// cut.
const APP_HASHES: &[&str] = &[
    "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
    "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
    "$6$rounds=5000$saltsalt$Yt8wfKx4mC8Xo0U8O1jnp3J1iHcrjEDNbAcGBFVzOMZyt6b0bVxpErkaHxw5mV.9ZtL0WXmRW6tLgCq0d5tRf1",
    "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/",
    "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/",
    "pbkdf2_sha256$260000$aBcDeFgHiJkLmNoP$Q2hhbmdlTWVQbGVhc2VUaGlzSXNBSGFzaDEyMw=",
    "{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
    "SCRAM-SHA-256$4096:Wz2U5sRgmYq6Jv8TDd1uvA==$Jc4Tj1eZc3jmpH5uQzDkw9pLuXxhzKtSqgP1c7Xx3hA=:XGfOpf6pPqZyCqWmi5nRkCk3sJx1HNDsOJAbk1DjxQQ=",
    "md5a3556571e93b0d20722ba62be61e8c2d",
    "*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9",
];

#[test]
fn application_password_hashes_are_masked_through_mariadb() {
    let db = MyDb::create("hashes");
    mariadb_direct(
        &db.name,
        "CREATE TABLE accounts (id INT PRIMARY KEY, login VARCHAR(40), \
         pw VARCHAR(200), pw_blob BLOB, checksum CHAR(64))",
    );
    let mut inserts = String::new();
    for (i, hash) in APP_HASHES.iter().enumerate() {
        inserts.push_str(&format!(
            "INSERT INTO accounts VALUES ({i}, 'user{i}', '{hash}', '{hash}', SHA2('file {i}', 256));"
        ));
    }
    // caching_sha2 with control bytes and quotes in its salt.
    let n = APP_HASHES.len();
    inserts.push_str(&format!(
        "INSERT INTO accounts VALUES ({n}, 'user{n}', \
         CONCAT('$A$005$', X'01270a7f3b22', 'abcdefghijklmn', REPEAT('Z', 43)), \
         CONCAT('$A$005$', X'01270a7f3b22', 'abcdefghijklmn', REPEAT('Z', 43)), SHA2('file', 256));"
    ));
    mariadb_direct(&db.name, &inserts);

    let gateway = masking_gateway();
    let rows = agent_mariadb(
        &gateway,
        &db.name,
        "SELECT id, login, pw, HEX(pw) = HEX(pw_blob), pw_blob, checksum FROM accounts ORDER BY id",
    );
    let direct = mariadb_direct(&db.name, "SELECT checksum FROM accounts ORDER BY id");
    let checksums: Vec<&str> = direct.lines().collect();
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines.len(), n + 1, "{rows}");
    for (i, line) in lines.iter().enumerate() {
        let mut f: Vec<&str> = line.split('\t').collect();
        // A BLOB that is not text cannot take a text label: it becomes NULL.
        if i == n && f.get(4) == Some(&"NULL") {
            f[4] = "<PASSWORD_HASH>";
        }
        // A hex digest of content is not a password hash: it comes back.
        assert_eq!(
            f,
            vec![
                i.to_string().as_str(),
                format!("user{i}").as_str(),
                "<PASSWORD_HASH>",
                "1",
                "<PASSWORD_HASH>",
                checksums[i]
            ],
            "row {i}: {line}"
        );
    }
}

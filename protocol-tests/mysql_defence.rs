//! Defence in depth against the real MariaDB: with a service login that
//! has no privileges of its own, an identity's `upstream_role` is all the
//! session can do and `read_only` makes the server refuse writes — under a
//! policy that allows everything; statements that would undo either are
//! refused by Airlock.

mod support;

use support::gateway::{Gateway, Options};
use support::mysql::{mariadb_direct, mariadb_through, MyDb};

const PASSWORD: &str = "defence-secret";

/// The service login, roles and grants of one test, dropped on drop.
struct Accounts {
    service: String,
    reader: String,
    writer: String,
}

impl Accounts {
    fn create(db: &str) -> Self {
        let pid = std::process::id();
        let a = Self {
            service: format!("airlock_svc_{pid}"),
            reader: format!("airlock_mr_{pid}"),
            writer: format!("airlock_mw_{pid}"),
        };
        a.drop_all();
        mariadb_direct(
            "",
            &format!(
                "CREATE USER '{s}'@'%' IDENTIFIED BY 'svc-pw'; \
                 CREATE ROLE {r}; GRANT SELECT ON {db}.* TO {r}; \
                 CREATE ROLE {w}; GRANT SELECT, INSERT, DELETE ON {db}.* TO {w}; \
                 GRANT {r} TO '{s}'@'%'; GRANT {w} TO '{s}'@'%'",
                s = a.service,
                r = a.reader,
                w = a.writer
            ),
        );
        a
    }

    fn drop_all(&self) {
        let _ = std::process::Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e"])
            .arg(format!(
                "DROP USER IF EXISTS '{}'@'%'; DROP ROLE IF EXISTS {}; DROP ROLE IF EXISTS {}",
                self.service, self.reader, self.writer
            ))
            .output();
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        self.drop_all();
    }
}

fn run(gateway: &Gateway, user: &str, db: &str, sql: &str) -> Result<String, String> {
    let out = mariadb_through(&gateway.mysql_addr, user, PASSWORD, db, sql, &[]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[test]
fn mariadb_enforces_the_upstream_role_and_read_only() {
    let db = MyDb::create("defence");
    mariadb_direct(
        &db.name,
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
    );
    let accounts = Accounts::create(&db.name);
    let toml = format!(
        "[mysql]\nlisten = \"127.0.0.1:0\"\nupstream = \"mysql://{}:svc-pw@127.0.0.1:3306/\"\n\
         \n[[identity]]\nname = \"confined\"\nrole = \"agent\"\npassword = \"{PASSWORD}\"\nupstream_role = \"{}\"\n\
         \n[[identity]]\nname = \"reader\"\nrole = \"agent\"\npassword = \"{PASSWORD}\"\nupstream_role = \"{}\"\nread_only = true\n",
        accounts.service, accounts.reader, accounts.writer
    );
    let gateway = Gateway::start_with(Options {
        toml,
        ..Default::default()
    });

    assert_eq!(
        run(&gateway, "confined", &db.name, "SELECT CURRENT_ROLE()").unwrap(),
        accounts.reader
    );
    assert_eq!(
        run(&gateway, "confined", &db.name, "SELECT COUNT(*) FROM t").unwrap(),
        "1"
    );
    // Allowed by the policy, refused by the server: the role may only read.
    for sql in [
        "DELETE FROM t",
        "INSERT INTO t VALUES (2)",
        "UPDATE t SET id = 3",
        "CREATE TABLE t2 (a int)",
        "DROP TABLE t",
    ] {
        let e = run(&gateway, "confined", &db.name, sql).expect_err(sql);
        assert!(
            e.contains("ERROR 1142") || e.contains("denied"),
            "{sql}: {e}"
        );
        assert!(!e.contains("Airlock"), "{sql}: {e}");
    }
    for sql in [
        "SET ROLE NONE",
        "set role `root`",
        "SET DEFAULT ROLE NONE",
        "/*!50000 SET ROLE NONE */",
        "PREPARE s FROM 'SET ROLE NONE'",
        "CALL p()",
    ] {
        let e = run(&gateway, "confined", &db.name, sql).expect_err(sql);
        assert!(
            e.contains("ERROR 1227")
                && e.contains(&format!("upstream role \"{}\"", accounts.reader)),
            "{sql}: {e}"
        );
    }

    // read_only: the role may write, the server refuses it anyway.
    let e = run(&gateway, "reader", &db.name, "INSERT INTO t VALUES (2)").unwrap_err();
    assert!(e.contains("ERROR 1792"), "{e}");
    for sql in [
        "SET SESSION TRANSACTION READ WRITE",
        "SET TRANSACTION READ WRITE",
        "START TRANSACTION READ WRITE",
        "SET tx_read_only = 0",
        "SET @@session.transaction_read_only = 0",
        "SET STATEMENT tx_read_only = 0 FOR INSERT INTO t VALUES (3)",
        "PREPARE s FROM 'SET tx_read_only = 0'",
    ] {
        let e = run(&gateway, "reader", &db.name, sql).expect_err(sql);
        assert!(
            e.contains("ERROR 1227") && e.contains("read-only"),
            "{sql}: {e}"
        );
    }
    let e = run(
        &gateway,
        "reader",
        &db.name,
        "START TRANSACTION; DELETE FROM t",
    )
    .unwrap_err();
    assert!(e.contains("ERROR 1792"), "{e}");
    assert_eq!(mariadb_direct(&db.name, "SELECT COUNT(*) FROM t"), "1");
    drop(gateway);
}

//! Masking of result rows through the gateway, end to end: real clients
//! against the real server, configured by a policy's `[masking]` table.
//!
//! * The labelled corpus (`corpus/masking.jsonl`) stored as text, jsonb and
//!   json and read back through psql (text), psycopg 3 (binary) and asyncpg
//!   (binary): no labelled value reaches a client, JSON stays JSON, and
//!   cells without labels come back exactly as stored.
//! * Every column type Airlock rewrites, under each strategy, decoded by
//!   psql, psycopg, asyncpg and pgJDBC, with the RowDescription untouched
//!   and tokens that keep distinct values distinct.
//! * Prepared statements executed many times, mixed result formats,
//!   suspended portals; COPY TO STDOUT in text, CSV and binary; exempt
//!   roles; values that are not UTF-8; `[masking]` errors in `airlock
//!   policy check`; a large result streamed in bounded memory.
//!
//! Drivers run `drivers/masking_read.py` and `drivers/jdbc/masking_read.sh`,
//! which write what the client decoded as JSON lines; every check is here.
//! Detector recall is `mask_eval`'s business: a labelled value that reaches
//! a client is a gateway leak only when the scanner, run here on the stored
//! text (as JSON for JSON cells, whatever column they are in), finds it.
//! Otherwise it is counted and reported as a detector miss.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;
use support::corpus::{load_corpus, Cell};
use support::gateway::{
    binary, psql_direct, psql_through, Gateway, Options, TestDb, AGENT, AGENT_PASSWORD,
    ALLOW_ALL_POLICY, UPSTREAM_ADDR,
};
use support::wire::{BackendMsg, Frontend, Wire};

/// Every detector, as `mask_eval` runs them.
const ALL_DETECTORS: &str = "detectors = [\"all\"]\njson_secret_keys = true\n";

fn masking_gateway(masking: &str, toml: &str) -> Gateway {
    Gateway::start_with(Options {
        toml: toml.to_string(),
        policy: Some(format!("{ALLOW_ALL_POLICY}\n[masking]\n{masking}")),
        ..Default::default()
    })
}

// ---- clients ----------------------------------------------------------------

/// Where a client connects and as whom.
#[derive(Clone, Copy)]
struct Target<'a> {
    addr: &'a str,
    user: &'a str,
    password: &'a str,
    database: &'a str,
}

impl<'a> Target<'a> {
    fn agent(gateway: &'a Gateway, database: &'a str) -> Self {
        Target {
            addr: &gateway.addr,
            user: AGENT,
            password: AGENT_PASSWORD,
            database,
        }
    }

    /// The upstream itself, as the tests' superuser: the baseline.
    fn direct(database: &'a str) -> Self {
        Target {
            addr: UPSTREAM_ADDR,
            user: "postgres",
            password: "",
            database,
        }
    }

    async fn wire(&self) -> Wire {
        Wire::connect(self.addr, self.user, self.password, self.database, &[])
            .await
            .unwrap_or_else(|e| panic!("login to {} as {}: {e}", self.addr, self.user))
    }
}

fn drivers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/drivers")
}

/// Runs a driver program against `target`; panics with its output when it
/// exits non-zero.
fn run_driver(target: Target, program: &str, args: &[&str], env: &[(&str, &str)]) {
    let (host, port) = target.addr.rsplit_once(':').expect("host:port");
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(drivers_dir())
        .env("PGHOST", host)
        .env("PGPORT", port)
        .env("PGUSER", target.user)
        .env("PGPASSWORD", target.password)
        .env("PGDATABASE", target.database)
        // libpq must not pick a TLS or service setup up from the environment.
        .env("PGSSLMODE", "disable")
        .env_remove("PGSERVICE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (run .ci/install-test-deps.sh)"));
    assert!(
        out.status.success(),
        "{program} {args:?} against {} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        target.addr,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `MaskingRead.class`, compiled once per test run.
fn jdbc_classes() -> &'static Path {
    static CLASSES: OnceLock<PathBuf> = OnceLock::new();
    CLASSES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pg_masking_jdbc");
        let out = Command::new("bash")
            .arg("jdbc/masking_read.sh")
            .current_dir(drivers_dir())
            .env("AIRLOCK_JDBC_CLASSES", &dir)
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "compiling MaskingRead.java failed (run .ci/install-test-deps.sh):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// The drivers that read through `masking_read.{py,sh}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Driver {
    Psycopg,
    Asyncpg,
    Jdbc,
}

impl Driver {
    const ALL: [Driver; 3] = [Driver::Psycopg, Driver::Asyncpg, Driver::Jdbc];

    fn name(self) -> &'static str {
        match self {
            Driver::Psycopg => "psycopg",
            Driver::Asyncpg => "asyncpg",
            Driver::Jdbc => "jdbc",
        }
    }

    /// Runs `tasks` and returns the JSON lines the driver wrote.
    fn read(self, target: Target, tasks: &[&str], env: &[(&str, &str)]) -> Vec<Value> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path_of = |name: &str| {
            let path = dir.path().join(format!("{name}.jsonl"));
            path.to_str().expect("utf-8 path").to_string()
        };
        let files: Vec<String> = match self {
            Driver::Psycopg | Driver::Asyncpg => tasks
                .iter()
                .map(|task| {
                    let out = path_of(task);
                    let args = ["masking_read.py", self.name(), task, &out];
                    run_driver(target, "python3", &args, env);
                    out
                })
                .collect(),
            Driver::Jdbc => {
                let out = path_of("jdbc");
                let classes = jdbc_classes().to_str().expect("utf-8 path");
                let mut env = env.to_vec();
                env.push(("AIRLOCK_JDBC_CLASSES", classes));
                let mut args = vec!["jdbc/masking_read.sh", &out];
                args.extend_from_slice(tasks);
                run_driver(target, "bash", &args, &env);
                vec![out]
            }
        };
        let mut lines = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
            for line in text.lines().filter(|l| !l.is_empty()) {
                lines.push(serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!(
                        "{} wrote a line that is not JSON ({e}): {line}",
                        self.name()
                    )
                }));
            }
        }
        lines
    }
}

/// Runs psql in unaligned mode and returns its output bytes.
fn psql_bytes(target: Target, args: &[&str]) -> Vec<u8> {
    let out = psql_through(
        target.addr,
        target.user,
        target.password,
        target.database,
        args,
    );
    assert!(
        out.status.success(),
        "psql {args:?} against {} failed: {}",
        target.addr,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The rows of one query through psql (text format); `None` is NULL.
fn psql_rows(target: Target, sql: &str) -> Vec<Vec<Option<String>>> {
    let out = psql_bytes(
        target,
        &["-F", "\x1f", "-R", "\x1e", "-P", "null=\x1d", "-c", sql],
    );
    let text = String::from_utf8(out).expect("psql output is UTF-8");
    let text = text.strip_suffix('\n').unwrap_or(&text);
    if text.is_empty() {
        return Vec::new();
    }
    text.split('\x1e')
        .map(|row| {
            row.split('\x1f')
                .map(|f| (f != "\x1d").then(|| f.to_string()))
                .collect()
        })
        .collect()
}

/// Runs SQL directly as the superuser, feeding `stdin` (for COPY FROM STDIN).
fn psql_direct_stdin(database: &str, sql: &str, stdin: &[u8]) {
    let mut child = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args(["-p", "5432", "-U", "postgres", "-d", database, "-c", sql])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run psql");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write to psql");
    let out = child.wait_with_output().expect("psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn data_rows(msgs: &[BackendMsg]) -> Vec<Vec<Option<Vec<u8>>>> {
    msgs.iter().filter_map(BackendMsg::data_row).collect()
}

fn assert_no_error(msgs: &[BackendMsg], what: &str) {
    if let Some(e) = msgs.iter().find(|m| m.is_error()) {
        panic!("{what}: {:?}", e.fields());
    }
}

// ---- values as clients decode them --------------------------------------------

/// A column type, as the checks read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Int,
    Numeric,
    Text,
    Json,
    Inet,
    Cidr,
    Xml,
    Bytea,
    TextArray,
    JsonArray,
    IntArray,
}

impl Ty {
    fn element(self) -> Ty {
        match self {
            Ty::TextArray => Ty::Text,
            Ty::JsonArray => Ty::Json,
            Ty::IntArray => Ty::Int,
            other => other,
        }
    }

    fn is_array(self) -> bool {
        matches!(self, Ty::TextArray | Ty::JsonArray | Ty::IntArray)
    }
}

/// One value as a client decoded it.
#[derive(Clone, Debug, PartialEq)]
enum V {
    Null,
    Int(i128),
    Num(String),
    Text(String),
    Json(Value),
    Inet(String),
    Bytes(Vec<u8>),
    Array(Vec<V>),
    /// Not a valid value of its type: what a strict client would reject.
    Invalid(String),
}

impl V {
    /// Every scalar in the value with its path, as text: what a client
    /// could group by or search.
    fn atoms(&self, path: &str, out: &mut Vec<(String, String)>) {
        match self {
            V::Null => out.push((path.into(), "NULL".into())),
            V::Int(n) => out.push((path.into(), n.to_string())),
            V::Num(s) | V::Text(s) | V::Inet(s) => out.push((path.into(), s.clone())),
            V::Bytes(b) => out.push((path.into(), String::from_utf8_lossy(b).into_owned())),
            V::Invalid(s) => out.push((path.into(), format!("INVALID {s}"))),
            V::Json(v) => json_atoms(v, path, out),
            V::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    item.atoms(&format!("{path}[{i}]"), out);
                }
            }
        }
    }

    /// Whether `needle` occurs in any scalar, key or serialized document.
    fn contains(&self, needle: &str) -> bool {
        let mut atoms = Vec::new();
        self.atoms("", &mut atoms);
        atoms
            .iter()
            .any(|(path, text)| text.contains(needle) || path.contains(needle))
            || self.serialized().contains(needle)
    }

    fn serialized(&self) -> String {
        match self {
            V::Json(v) => v.to_string(),
            V::Array(items) => items
                .iter()
                .map(V::serialized)
                .collect::<Vec<_>>()
                .join(","),
            _ => String::new(),
        }
    }
}

fn json_atoms(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                json_atoms(v, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                json_atoms(v, &format!("{path}[{i}]"), out);
            }
        }
        Value::String(s) => out.push((path.into(), s.clone())),
        other => out.push((path.into(), other.to_string())),
    }
}

/// Whether `needle` is in a string leaf or key of `v`, or in its text.
fn json_contains(v: &Value, needle: &str) -> bool {
    fn leaves(v: &Value, needle: &str) -> bool {
        match v {
            Value::Object(map) => map
                .iter()
                .any(|(k, v)| k.contains(needle) || leaves(v, needle)),
            Value::Array(items) => items.iter().any(|v| leaves(v, needle)),
            Value::String(s) => s.contains(needle),
            _ => false,
        }
    }
    leaves(v, needle) || v.to_string().contains(needle)
}

/// An inet or cidr value in the text form PostgreSQL prints, checked as a
/// client would parse it (a cidr has no bits set right of its prefix).
fn inet(ty: Ty, text: &str) -> V {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
        return V::Invalid(format!("{text:?} is not an {ty:?} value"));
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let Some(bits) = prefix.map_or(Some(max), |p| p.parse::<u32>().ok().filter(|b| *b <= max))
    else {
        return V::Invalid(format!("{text:?} has a bad prefix"));
    };
    if ty == Ty::Cidr {
        let value = match ip {
            std::net::IpAddr::V4(a) => u128::from(a.to_bits()) << 96,
            std::net::IpAddr::V6(a) => a.to_bits(),
        };
        let host = if bits == 0 { value } else { value << bits };
        if host != 0 {
            return V::Invalid(format!("{text:?} has bits set right of /{bits}"));
        }
        return V::Inet(format!("{ip}/{bits}"));
    }
    V::Inet(if bits == max {
        ip.to_string()
    } else {
        format!("{ip}/{bits}")
    })
}

fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Elements of a one-dimensional array literal (`{a,"b c",NULL}`), or
/// `None` when the text is not one.
fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => item.push(chars.next()?),
                    c => item.push(c),
                }
            }
            out.push(Some(item));
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if matches!(c, '"' | '{' | '}' | '\\') {
                    return None;
                }
                item.push(c);
                chars.next();
            }
            out.push((item != "NULL").then_some(item));
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

fn is_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
}

/// A value in PostgreSQL's text output format, read as a client of `ty`.
fn from_text(ty: Ty, text: Option<&str>) -> V {
    let Some(s) = text else { return V::Null };
    match ty {
        Ty::Int => s
            .parse()
            .map(V::Int)
            .unwrap_or_else(|_| V::Invalid(format!("{s:?} is not an integer"))),
        Ty::Numeric if is_decimal(s) => V::Num(s.to_string()),
        Ty::Numeric => V::Invalid(format!("{s:?} is not a number")),
        Ty::Text | Ty::Xml => V::Text(s.to_string()),
        Ty::Json => serde_json::from_str(s)
            .map(V::Json)
            .unwrap_or_else(|e| V::Invalid(format!("not JSON ({e}): {s}"))),
        Ty::Inet | Ty::Cidr => inet(ty, s),
        Ty::Bytea => s
            .strip_prefix("\\x")
            .and_then(hex_decode)
            .map(V::Bytes)
            .unwrap_or_else(|| V::Invalid(format!("{s:?} is not hex bytea"))),
        Ty::TextArray | Ty::JsonArray | Ty::IntArray => match parse_array(s) {
            Some(items) => V::Array(
                items
                    .iter()
                    .map(|i| from_text(ty.element(), i.as_deref()))
                    .collect(),
            ),
            None => V::Invalid(format!("{s:?} is not an array literal")),
        },
    }
}

/// A value as `masking_read` wrote it (see its doc for the tags).
fn from_dump(ty: Ty, v: &Value) -> V {
    let tagged = |tag: &str| {
        v.as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.get(tag))
    };
    match (ty, v) {
        (_, Value::Null) => V::Null,
        (_, Value::Array(items)) if ty.is_array() => {
            V::Array(items.iter().map(|i| from_dump(ty.element(), i)).collect())
        }
        (Ty::Int, Value::Number(n)) => match n.as_i64() {
            Some(n) => V::Int(n.into()),
            None => V::Invalid(format!("{n} is not an integer")),
        },
        (Ty::Text | Ty::Xml, Value::String(s)) => V::Text(s.clone()),
        // pgJDBC returns the elements of a jsonb[] as their text.
        (Ty::Json, Value::String(s)) => from_text(Ty::Json, Some(s)),
        _ => {
            if let (Ty::Numeric, Some(Value::String(s))) = (ty, tagged("numeric")) {
                return from_text(Ty::Numeric, Some(s));
            }
            if let (Ty::Json, Some(doc)) = (ty, tagged("json")) {
                return V::Json(doc.clone());
            }
            if let (Ty::Json, Some(Value::String(s))) = (ty, tagged("json_text")) {
                return from_text(Ty::Json, Some(s));
            }
            if let (Ty::Inet | Ty::Cidr, Some(Value::String(s))) = (ty, tagged("inet")) {
                return inet(ty, s);
            }
            if let Some(bytes) = tagged("bytes").and_then(Value::as_str).and_then(hex_decode) {
                match ty {
                    Ty::Bytea => return V::Bytes(bytes),
                    // psycopg has no loader for xml in binary: its bytes are the text.
                    Ty::Xml => return V::Text(String::from_utf8_lossy(&bytes).into_owned()),
                    _ => {}
                }
            }
            V::Invalid(format!("a {ty:?} value decoded as {v}"))
        }
    }
}

/// PostgreSQL's binary numeric as decimal text.
fn numeric_text(b: &[u8]) -> Option<String> {
    let word = |i: usize| Some(i16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?));
    let (ndigits, weight, sign, dscale) = (word(0)?, word(2)?, word(4)? as u16, word(6)?);
    if ndigits < 0 || dscale < 0 || b.len() != 8 + 2 * ndigits as usize {
        return None;
    }
    if sign == 0xc000 {
        return Some("NaN".into());
    }
    let digits: Vec<i16> = (0..ndigits as usize)
        .map(|k| word(8 + 2 * k))
        .collect::<Option<_>>()?;
    let digit = |pos: i32| {
        usize::try_from(pos)
            .ok()
            .and_then(|p| digits.get(p).copied())
            .unwrap_or(0)
    };
    // Digit k is worth 10000^(weight - k).
    let mut int = String::new();
    for pos in 0..=i32::from(weight) {
        let d = digit(pos);
        if !int.is_empty() {
            int.push_str(&format!("{d:04}"));
        } else if d != 0 {
            int = d.to_string();
        }
    }
    if int.is_empty() {
        int.push('0');
    }
    let mut frac = String::new();
    let mut pos = i32::from(weight) + 1;
    while frac.len() < dscale as usize {
        frac.push_str(&format!("{:04}", digit(pos)));
        pos += 1;
    }
    frac.truncate(dscale as usize);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// A value in PostgreSQL's binary format, read as a client of `ty`.
fn from_binary(ty: Ty, bytes: Option<&[u8]>) -> V {
    let Some(b) = bytes else { return V::Null };
    let bad = |why: &str| V::Invalid(format!("binary {ty:?} {why}: {}", hex_encode(b)));
    match ty {
        Ty::Int => match b.len() {
            2 => V::Int(i16::from_be_bytes([b[0], b[1]]).into()),
            4 => V::Int(i32::from_be_bytes(b.try_into().expect("four bytes")).into()),
            8 => V::Int(i64::from_be_bytes(b.try_into().expect("eight bytes")).into()),
            _ => bad("has a bad length"),
        },
        Ty::Numeric => numeric_text(b).map_or_else(|| bad("is malformed"), V::Num),
        Ty::Text | Ty::Xml => match std::str::from_utf8(b) {
            Ok(s) => V::Text(s.to_string()),
            Err(_) => bad("is not UTF-8"),
        },
        Ty::Json => {
            // jsonb starts with its version byte (1); json is just its text.
            let text = match b.split_first() {
                Some((1, rest)) => rest,
                _ => b,
            };
            match std::str::from_utf8(text) {
                Ok(s) => from_text(Ty::Json, Some(s)),
                Err(_) => bad("is not UTF-8"),
            }
        }
        Ty::Inet | Ty::Cidr => match b {
            [2, bits, _, 4, a @ ..] if a.len() == 4 => {
                let ip = std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]);
                inet(ty, &format!("{ip}/{bits}"))
            }
            [3, bits, _, 16, a @ ..] if a.len() == 16 => {
                let ip = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(a).expect("16 bytes"));
                inet(ty, &format!("{ip}/{bits}"))
            }
            _ => bad("is malformed"),
        },
        Ty::Bytea => V::Bytes(b.to_vec()),
        Ty::TextArray | Ty::JsonArray | Ty::IntArray => {
            let word = |i: usize| Some(i32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?));
            let Some(ndim) = word(0) else {
                return bad("is truncated");
            };
            if ndim == 0 {
                return V::Array(Vec::new());
            }
            let (Some(1), Some(len)) = (Some(ndim), word(12)) else {
                return bad("is not one-dimensional");
            };
            let mut at = 20;
            let mut items = Vec::new();
            for _ in 0..len {
                let Some(n) = word(at) else {
                    return bad("is truncated");
                };
                at += 4;
                if n < 0 {
                    items.push(V::Null);
                    continue;
                }
                let Some(item) = b.get(at..at + n as usize) else {
                    return bad("is truncated");
                };
                at += n as usize;
                // Elements of a jsonb[] are jsonb: a version byte first.
                let item = match ty {
                    Ty::JsonArray => match item.split_first() {
                        Some((1, rest)) => rest,
                        _ => return bad("has a jsonb element without its version"),
                    },
                    _ => item,
                };
                items.push(from_binary(ty.element(), Some(item)));
            }
            if at != b.len() {
                return bad("has trailing bytes");
            }
            V::Array(items)
        }
    }
}

// ---- the PII table: every type Airlock rewrites ---------------------------------

const CARDS: [&str; 3] = ["4111111111111111", "5500000000000004", "4012888888881881"];
const EMAILS: [&str; 2] = ["jane.doe@example.org", "bob.smith@example.com"];
const IPS: [&str; 2] = ["203.0.113.7", "198.51.100.23"];
const NETS: [&str; 2] = ["198.51.100.0/24", "203.0.113.0/24"];
const SECRETS: [&str; 3] = ["hunter2-alpha-7", "correct-horse-9", "tr0ub4dor-and-3"];
const PII_ROWS: i64 = 6;

/// The columns of `pii`: name, SQL type, how clients read it.
const PII_COLUMNS: &[(&str, &str, Ty)] = &[
    ("card_big", "bigint", Ty::Int),
    ("qty", "int4", Ty::Int),
    ("card_num", "numeric", Ty::Numeric),
    ("note", "text", Ty::Text),
    ("email_vc", "varchar(80)", Ty::Text),
    ("email_bp", "bpchar(40)", Ty::Text),
    ("doc", "jsonb", Ty::Json),
    ("raw", "json", Ty::Json),
    ("ip", "inet", Ty::Inet),
    ("net", "cidr", Ty::Cidr),
    ("tags", "text[]", Ty::TextArray),
    ("docs", "jsonb[]", Ty::JsonArray),
    ("x", "xml", Ty::Xml),
    ("blob", "bytea", Ty::Bytea),
    ("plain", "text", Ty::Text),
    ("cards", "bigint[]", Ty::IntArray),
];

/// The values of one row of `pii`. Rows repeat cards, emails and addresses
/// so that distinct counts mean something.
struct Pii {
    id: i64,
    card: &'static str,
    email: &'static str,
    ip: &'static str,
    net: &'static str,
    secret: &'static str,
}

impl Pii {
    fn row(id: i64) -> Pii {
        let i = (id - 1) as usize;
        Pii {
            id,
            card: CARDS[i % 3],
            email: EMAILS[i % 2],
            ip: IPS[i % 2],
            net: NETS[i % 2],
            secret: SECRETS[i % 3],
        }
    }

    fn spaced_card(&self) -> String {
        let b = self.card.as_bytes();
        b.chunks(4)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Strings that must never reach an agent in any form.
    fn secrets(&self) -> Vec<String> {
        let mut out = vec![
            self.card.to_string(),
            self.spaced_card(),
            self.email.to_string(),
            self.ip.to_string(),
            self.net.split('/').next().expect("address").to_string(),
            self.secret.to_string(),
        ];
        // bytea in hex text (COPY): the hex spelling of the stored text.
        out.push(hex_encode(self.email.as_bytes()));
        out.push(hex_encode(self.card.as_bytes()));
        out
    }

    fn insert(&self) -> String {
        let Pii {
            id,
            card,
            email,
            ip,
            net,
            secret,
        } = self;
        let spaced = self.spaced_card();
        format!(
            "INSERT INTO pii VALUES ({id}, {card}, {qty}, {card}, 'mail {email}', '{email}', '{email}', \
             '{{\"email\": \"{email}\", \"card\": {card}, \"ip\": \"{ip}\", \"password\": \"{secret}\", \"note\": \"keep me\"}}', \
             '{{\"contact\": \"{email}\", \"card\": \"{spaced}\", \"card_number\": {card}}}', \
             '{ip}', '{net}', ARRAY['{email}', 'plain tag'], ARRAY['{{\"email\": \"{email}\"}}'::jsonb], \
             '<contact><email>{email}</email></contact>', convert_to('card {card} mail {email}', 'UTF8'), \
             'order 42 shipped', ARRAY[{card}, 7]::bigint[]);",
            qty = id * 10
        )
    }
}

fn create_pii_table(database: &str) {
    let columns: Vec<String> = PII_COLUMNS
        .iter()
        .map(|(name, ty, _)| format!("{name} {ty}"))
        .collect();
    let mut sql = format!(
        "CREATE TABLE pii (id int PRIMARY KEY, {});",
        columns.join(", ")
    );
    for id in 1..=PII_ROWS {
        sql.push_str(&Pii::row(id).insert());
    }
    psql_direct(database, &sql);
}

fn pii_column_names() -> String {
    PII_COLUMNS
        .iter()
        .map(|(name, _, _)| *name)
        .collect::<Vec<_>>()
        .join(",")
}

/// What one client read of `pii`: per column, the value of each row by id,
/// or why the client could not decode the column.
type Read = BTreeMap<String, Result<BTreeMap<i64, V>, String>>;

fn read_pii_psql(target: Target) -> Read {
    let rows = psql_rows(
        target,
        &format!("SELECT id, {} FROM pii ORDER BY id", pii_column_names()),
    );
    let mut read = Read::new();
    for (c, (name, _, ty)) in PII_COLUMNS.iter().enumerate() {
        let values = rows
            .iter()
            .map(|r| {
                let id = r[0].as_deref().and_then(|i| i.parse().ok()).expect("id");
                (id, from_text(*ty, r[c + 1].as_deref()))
            })
            .collect();
        read.insert(name.to_string(), Ok(values));
    }
    read
}

/// Reads `pii` column by column through a driver; with `repeat` > 1 every
/// run must see the same values, and a run that differs is an error.
fn read_pii_driver(driver: Driver, target: Target, repeat: u32) -> Read {
    let columns = pii_column_names();
    let repeat_text = repeat.to_string();
    let lines = driver.read(
        target,
        &["columns"],
        &[
            ("AIRLOCK_TABLE", "pii"),
            ("AIRLOCK_COLUMNS", &columns),
            ("AIRLOCK_REPEAT", &repeat_text),
        ],
    );
    let mut read = Read::new();
    for (name, _, ty) in PII_COLUMNS {
        let mut runs: BTreeMap<u64, BTreeMap<i64, V>> = BTreeMap::new();
        let mut error = None;
        for line in lines.iter().filter(|l| l["column"] == *name) {
            if let Some(e) = line["error"].as_str() {
                error = Some(e.to_string());
                continue;
            }
            let run = line["run"].as_u64().expect("run");
            let id = line["row"][0].as_i64().expect("id");
            runs.entry(run)
                .or_default()
                .insert(id, from_dump(*ty, &line["row"][1]));
        }
        let result = match error {
            Some(e) => Err(e),
            None => {
                let first = runs.get(&0).cloned().unwrap_or_default();
                let differs = runs.iter().find_map(|(run, values)| {
                    values
                        .iter()
                        .find(|(id, v)| first.get(id) != Some(v))
                        .map(|(id, v)| (run, id, v))
                });
                match differs {
                    Some((run, id, v)) => Err(format!(
                        "run {} of {repeat} differs from the first: row {id} is {v:?}, was {:?}",
                        run + 1,
                        first.get(id)
                    )),
                    None if runs.len() as u32 != repeat => {
                        Err(format!("{} runs of {repeat} came back", runs.len()))
                    }
                    None => Ok(first),
                }
            }
        };
        read.insert(name.to_string(), result);
    }
    read
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    Redact,
    Partial,
    Token,
    Null,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::Redact => "redact",
            Strategy::Partial => "partial",
            Strategy::Token => "token",
            Strategy::Null => "null",
        }
    }
}

/// `text` with the PII values in it replaced as `strategy` should; `None`
/// for NULL. Tokens are compared after [`untoken`] turned them into labels,
/// so the token form here is the label.
fn masked_text(strategy: Strategy, text: &str, pii: &[(&str, &str)]) -> Option<String> {
    let mut out = text.to_string();
    for (value, label) in pii {
        if !out.contains(value) {
            continue;
        }
        let replacement = match strategy {
            Strategy::Null => return None,
            Strategy::Redact | Strategy::Token => format!("<{label}>"),
            Strategy::Partial => partial(label, value),
        };
        out = out.replace(value, &replacement);
    }
    Some(out)
}

/// The partial form of a value, as documented for each kind.
fn partial(label: &str, value: &str) -> String {
    match label {
        "EMAIL" => {
            let (local, domain) = value.split_once('@').expect("an email");
            format!("{}***@{domain}", &local[..1])
        }
        "IPV4" => {
            let mut parts = value.split('.');
            format!(
                "{}.{}.*.*",
                parts.next().expect("octet"),
                parts.next().expect("octet")
            )
        }
        _ => {
            let total = value.chars().filter(char::is_ascii_alphanumeric).count();
            let mut seen = 0;
            value
                .chars()
                .map(|c| {
                    if !c.is_ascii_alphanumeric() {
                        return c;
                    }
                    seen += 1;
                    if seen > total - 4 {
                        c
                    } else {
                        '*'
                    }
                })
                .collect()
        }
    }
}

/// Token replacements (`EMAIL_0123456789abcdef`) turned back into labels
/// (`<EMAIL>`), so one expectation serves redact and token.
fn untoken(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut at = 0;
    let mut i = 0;
    while i < b.len() {
        let hex_end = i + 17;
        let is_token_tail = b[i] == b'_'
            && hex_end <= b.len()
            && b[i + 1..hex_end]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
            && b.get(hex_end).is_none_or(|c| !c.is_ascii_alphanumeric());
        if is_token_tail {
            let mut start = i;
            while start > at
                && (b[start - 1].is_ascii_uppercase()
                    || b[start - 1].is_ascii_digit()
                    || b[start - 1] == b'_')
            {
                start -= 1;
            }
            while start < i && !b[start].is_ascii_uppercase() {
                start += 1;
            }
            if start < i {
                out.push_str(&text[at..start]);
                out.push('<');
                out.push_str(&text[start..i]);
                out.push('>');
                at = hex_end;
                i = hex_end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[at..]);
    out
}

/// Checks one masked number (a card in an integer or numeric column).
fn check_number(strategy: Strategy, original: &str, got: &V) -> Result<(), String> {
    let digits = match got {
        V::Null if strategy == Strategy::Null => return Ok(()),
        V::Int(n) => n.to_string(),
        V::Num(s) => s.clone(),
        other => return Err(format!("expected a number, got {other:?}")),
    };
    let ok = match strategy {
        Strategy::Redact => digits == "0",
        Strategy::Partial => digits == original[original.len() - 4..].trim_start_matches('0'),
        Strategy::Token => {
            digits.len() == original.len()
                && digits != original
                && digits.chars().all(|c| c.is_ascii_digit())
        }
        Strategy::Null => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{} of {original} gave {digits}", strategy.name()))
    }
}

/// Checks a text value against [`masked_text`].
fn check_text(
    strategy: Strategy,
    original: &str,
    pii: &[(&str, &str)],
    got: &V,
) -> Result<(), String> {
    let expected = masked_text(strategy, original, pii);
    let got_text = match got {
        V::Null => None,
        V::Text(s) => Some(if strategy == Strategy::Token {
            untoken(s)
        } else {
            s.clone()
        }),
        other => return Err(format!("expected text, got {other:?}")),
    };
    if got_text == expected {
        Ok(())
    } else {
        Err(format!("expected {expected:?}, got {got:?}"))
    }
}

fn check_json_text(
    strategy: Strategy,
    original: &str,
    pii: &[(&str, &str)],
    got: Option<&Value>,
) -> Result<(), String> {
    let got = match got {
        None => return Err("the member is missing".into()),
        Some(Value::Null) => V::Null,
        Some(Value::String(s)) => V::Text(s.clone()),
        Some(other) => V::Invalid(other.to_string()),
    };
    check_text(strategy, original, pii, &got)
}

/// A JSON number member as a value to check with [`check_number`].
fn json_number(member: Option<&Value>) -> V {
    match member {
        Some(Value::Null) => V::Null,
        Some(Value::Number(n)) => n
            .as_i64()
            .map_or_else(|| V::Invalid(n.to_string()), |n| V::Int(n.into())),
        other => V::Invalid(format!("{other:?}")),
    }
}

fn json_object(got: &V) -> Result<&serde_json::Map<String, Value>, String> {
    match got {
        V::Json(Value::Object(o)) => Ok(o),
        other => Err(format!("expected a JSON object, got {other:?}")),
    }
}

/// Checks one value of `pii` as `strategy` should leave it.
fn check_pii(strategy: Strategy, column: &str, row: &Pii, got: &V) -> Result<(), String> {
    let email = [(row.email, "EMAIL")];
    let ip_text = [(row.ip, "IPV4")];
    let null_array = |got: &V| strategy == Strategy::Null && *got == V::Null;
    match column {
        "card_big" | "card_num" => check_number(strategy, row.card, got),
        "qty" => (*got == V::Int((row.id * 10).into()))
            .then_some(())
            .ok_or_else(|| format!("a plain integer changed: {got:?}")),
        "note" => check_text(strategy, &format!("mail {}", row.email), &email, got),
        "email_vc" => check_text(strategy, row.email, &email, got),
        "email_bp" => {
            // bpchar pads to its length; only the text before the padding counts.
            let trimmed = match got {
                V::Text(s) => V::Text(s.trim_end().to_string()),
                other => other.clone(),
            };
            check_text(strategy, row.email, &email, &trimmed)
        }
        "doc" => {
            let o = json_object(got)?;
            let keys: BTreeSet<&str> = o.keys().map(String::as_str).collect();
            if keys != BTreeSet::from(["email", "card", "ip", "password", "note"]) {
                return Err(format!("members changed: {o:?}"));
            }
            check_json_text(strategy, row.email, &email, o.get("email"))?;
            check_json_text(strategy, row.ip, &ip_text, o.get("ip"))?;
            check_json_text(strategy, "keep me", &[], o.get("note"))?;
            check_number(strategy, row.card, &json_number(o.get("card")))
                .map_err(|e| format!("card: {e}"))?;
            // A value under a secret's key: its label, NULL or its token;
            // secrets have no partial form.
            let secret_strategy = match strategy {
                Strategy::Partial => Strategy::Redact,
                other => other,
            };
            check_json_text(
                secret_strategy,
                row.secret,
                &[(row.secret, "SECRET")],
                o.get("password"),
            )
            .map_err(|e| format!("password: {e}"))
        }
        "raw" => {
            let o = json_object(got)?;
            check_json_text(strategy, row.email, &email, o.get("contact"))?;
            let spaced = row.spaced_card();
            check_json_text(strategy, &spaced, &[(&spaced, "CARD")], o.get("card"))?;
            check_number(strategy, row.card, &json_number(o.get("card_number")))
                .map_err(|e| format!("card_number: {e}"))
        }
        "ip" | "net" => {
            let original = if column == "ip" { row.ip } else { row.net };
            let (addr, prefix) = match original.split_once('/') {
                Some((a, p)) => (a, format!("/{p}")),
                None => (original, String::new()),
            };
            let octets: Vec<&str> = addr.split('.').collect();
            let ok = match (strategy, got) {
                (Strategy::Null, V::Null) => true,
                (Strategy::Redact, V::Inet(s)) => *s == format!("0.0.0.0{prefix}"),
                (Strategy::Partial, V::Inet(s)) => {
                    *s == format!("{}.{}.0.0{prefix}", octets[0], octets[1])
                }
                (Strategy::Token, V::Inet(s)) => s.starts_with("10.") && s.ends_with(&prefix),
                _ => false,
            };
            ok.then_some(())
                .ok_or_else(|| format!("{} of {original} gave {got:?}", strategy.name()))
        }
        "tags" => match got {
            V::Array(items) if items.len() == 2 => {
                check_text(strategy, row.email, &email, &items[0])?;
                check_text(strategy, "plain tag", &[], &items[1])
            }
            v if null_array(v) => Ok(()),
            other => Err(format!("expected two tags, got {other:?}")),
        },
        "docs" => match got {
            V::Array(items) if items.len() == 1 => match &items[0] {
                V::Null if strategy == Strategy::Null => Ok(()),
                item => {
                    let o = json_object(item)?;
                    check_json_text(strategy, row.email, &email, o.get("email"))
                }
            },
            v if null_array(v) => Ok(()),
            other => Err(format!("expected one document, got {other:?}")),
        },
        "x" => {
            let original = format!("<contact><email>{}</email></contact>", row.email);
            // A label is escaped to stay well-formed XML; partial and token
            // forms need no escaping.
            match (strategy, got) {
                (Strategy::Redact, V::Text(s))
                    if *s == "<contact><email>&lt;EMAIL&gt;</email></contact>" =>
                {
                    Ok(())
                }
                (Strategy::Redact, other) => {
                    Err(format!("expected the escaped label, got {other:?}"))
                }
                _ => check_text(strategy, &original, &email, got),
            }
        }
        "blob" => {
            let original = format!("card {} mail {}", row.card, row.email);
            let text = match got {
                V::Bytes(b) => match String::from_utf8(b.clone()) {
                    Ok(s) => V::Text(s),
                    Err(_) => V::Invalid(format!("bytes {}", hex_encode(b))),
                },
                other => other.clone(),
            };
            check_text(
                strategy,
                &original,
                &[(row.card, "CARD"), (row.email, "EMAIL")],
                &text,
            )
        }
        "plain" => check_text(strategy, "order 42 shipped", &[], got),
        "cards" => match got {
            V::Array(items) if items.len() == 2 => {
                check_number(strategy, row.card, &items[0])?;
                (items[1] == V::Int(7))
                    .then_some(())
                    .ok_or_else(|| format!("a plain element changed: {:?}", items[1]))
            }
            v if null_array(v) => Ok(()),
            other => Err(format!("expected two integers, got {other:?}")),
        },
        other => panic!("no check for column {other}"),
    }
}

/// Rows must fall into the same groups by their masked values as by their
/// stored ones: equal values mask equally and distinct ones stay distinct.
fn check_partition(direct: &BTreeMap<i64, V>, got: &BTreeMap<i64, V>) -> Result<(), String> {
    let groups = |values: &BTreeMap<i64, V>| {
        let mut by_path: BTreeMap<String, BTreeMap<String, BTreeSet<i64>>> = BTreeMap::new();
        for (id, v) in values {
            let mut atoms = Vec::new();
            v.atoms("", &mut atoms);
            for (path, text) in atoms {
                by_path
                    .entry(path)
                    .or_default()
                    .entry(text)
                    .or_default()
                    .insert(*id);
            }
        }
        by_path
            .into_iter()
            .map(|(path, groups)| (path, groups.into_values().collect::<BTreeSet<_>>()))
            .collect::<BTreeMap<_, _>>()
    };
    let (want, have) = (groups(direct), groups(got));
    let mut problems = Vec::new();
    for (path, want_groups) in &want {
        match have.get(path) {
            Some(have_groups) if have_groups == want_groups => {}
            Some(have_groups) => problems.push(format!(
                "{path}: {} distinct values direct, {} masked (groups {want_groups:?} vs {have_groups:?})",
                want_groups.len(),
                have_groups.len()
            )),
            None => problems.push(format!("{path}: missing")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Reads `pii` through every client and checks every value; returns the
/// problems found, one line each.
fn check_pii_clients(strategy: Strategy, gateway: &Gateway, db: &TestDb) -> Vec<String> {
    let target = Target::agent(gateway, &db.name);
    let direct = read_pii_psql(Target::direct(&db.name));
    let mut reads: Vec<(&str, Read)> = vec![("psql", read_pii_psql(target))];
    std::thread::scope(|s| {
        let handles: Vec<_> = Driver::ALL
            .iter()
            .map(|d| (d.name(), s.spawn(move || read_pii_driver(*d, target, 1))))
            .collect();
        for (name, handle) in handles {
            reads.push((name, handle.join().expect("driver thread")));
        }
    });
    let mut problems = Vec::new();
    for (client, read) in &reads {
        for (column, values) in read {
            let values = match values {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{client} {column}: cannot decode: {e}"));
                    continue;
                }
            };
            if values.len() as i64 != PII_ROWS {
                problems.push(format!("{client} {column}: {} rows", values.len()));
            }
            for (id, v) in values {
                let row = Pii::row(*id);
                if let Err(e) = check_pii(strategy, column, &row, v) {
                    problems.push(format!("{client} {column} row {id}: {e}"));
                }
                for secret in row.secrets() {
                    if v.contains(&secret) {
                        problems.push(format!(
                            "{client} {column} row {id}: {secret} leaked: {v:?}"
                        ));
                    }
                }
            }
            if strategy == Strategy::Token {
                let direct = direct[column].as_ref().expect("direct read");
                if let Err(e) = check_partition(direct, values) {
                    problems.push(format!(
                        "{client} {column}: tokens do not group like the values: {e}"
                    ));
                }
            }
        }
    }
    problems
}

/// The RowDescription of a query through the gateway, byte for byte as
/// the server sends it directly.
async fn row_description_is_untouched(gateway: &Gateway, db: &TestDb, sql: &str) {
    let mut direct = Target::direct(&db.name).wire().await;
    let mut agent = Target::agent(gateway, &db.name).wire().await;
    let want = direct.simple_query(sql).await.expect("direct query");
    let got = agent
        .simple_query(sql)
        .await
        .expect("query through airlock");
    assert_no_error(&got, sql);
    let description = |msgs: &[BackendMsg]| msgs.iter().find(|m| m.tag == b'T').cloned();
    assert_eq!(
        description(&got),
        description(&want),
        "RowDescription of {sql}"
    );
    assert_eq!(data_rows(&got).len(), data_rows(&want).len(), "{sql}");
}

fn types_under(strategy: Strategy) {
    let db = TestDb::create(&format!("mask_{}", strategy.name()));
    create_pii_table(&db.name);
    let gateway = masking_gateway(
        &format!("{ALL_DETECTORS}strategy = \"{}\"\n", strategy.name()),
        "",
    );
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(row_description_is_untouched(
            &gateway,
            &db,
            "SELECT * FROM pii ORDER BY id",
        ));
    let problems = check_pii_clients(strategy, &gateway, &db);
    assert!(
        problems.is_empty(),
        "{} strategy: {} problems:\n{}",
        strategy.name(),
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn redact_in_every_type_and_driver() {
    types_under(Strategy::Redact);
}

#[test]
fn partial_in_every_type_and_driver() {
    types_under(Strategy::Partial);
}

#[test]
fn token_in_every_type_and_driver_keeps_distinct_values_distinct() {
    types_under(Strategy::Token);
}

#[test]
fn null_in_every_type_and_driver() {
    types_under(Strategy::Null);
}

// ---- extended protocol ----------------------------------------------------------

fn redact_gateway() -> Gateway {
    masking_gateway(&format!("{ALL_DETECTORS}strategy = \"redact\"\n"), "")
}

#[test]
fn prepared_statements_are_masked_on_every_execution() {
    let db = TestDb::create("mask_prepared");
    create_pii_table(&db.name);
    let gateway = redact_gateway();
    let target = Target::agent(&gateway, &db.name);
    // psycopg prepare=True and asyncpg prepared statements run 8 times; pgJDBC
    // switches to a named statement with binary results at the fifth
    // execution and then only binds and executes it.
    let mut problems = Vec::new();
    for driver in Driver::ALL {
        for (column, values) in read_pii_driver(driver, target, 8) {
            let values = match values {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{} {column}: {e}", driver.name()));
                    continue;
                }
            };
            for (id, v) in &values {
                if let Err(e) = check_pii(Strategy::Redact, &column, &Pii::row(*id), v) {
                    problems.push(format!("{} {column} row {id}: {e}", driver.name()));
                }
            }
        }
    }
    // pgJDBC with a fetch size: one portal, executed two rows at a time.
    let lines = Driver::Jdbc.read(
        target,
        &["fetch"],
        &[(
            "AIRLOCK_SQL",
            "SELECT id, card_big, note, ip, doc FROM pii ORDER BY id",
        )],
    );
    assert_eq!(lines.len() as i64, PII_ROWS, "{lines:?}");
    for line in &lines {
        let row = &line["row"];
        let pii = Pii::row(row[0].as_i64().expect("id"));
        for (i, (column, ty)) in [
            ("card_big", Ty::Int),
            ("note", Ty::Text),
            ("ip", Ty::Inet),
            ("doc", Ty::Json),
        ]
        .into_iter()
        .enumerate()
        {
            if let Err(e) = check_pii(Strategy::Redact, column, &pii, &from_dump(ty, &row[i + 1])) {
                problems.push(format!("jdbc fetch size 2, {column} row {}: {e}", pii.id));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Columns of the extended-protocol checks, with the result format asked
/// for each: text and binary mixed in one portal.
const MIXED: &[(&str, Ty, i16)] = &[
    ("card_big", Ty::Int, 1),
    ("note", Ty::Text, 0),
    ("card_num", Ty::Numeric, 1),
    ("ip", Ty::Inet, 0),
    ("doc", Ty::Json, 1),
    ("cards", Ty::IntArray, 1),
    ("net", Ty::Cidr, 1),
];

fn mixed_sql() -> String {
    let columns: Vec<&str> = MIXED.iter().map(|(c, _, _)| *c).collect();
    format!("SELECT id, {} FROM pii ORDER BY id", columns.join(", "))
}

fn mixed_formats() -> Vec<i16> {
    std::iter::once(1)
        .chain(MIXED.iter().map(|(_, _, f)| *f))
        .collect()
}

/// Checks the DataRows of [`mixed_sql`] read with [`mixed_formats`].
fn check_mixed_rows(what: &str, msgs: &[BackendMsg], problems: &mut Vec<String>) {
    let rows = data_rows(msgs);
    if rows.len() as i64 != PII_ROWS {
        problems.push(format!("{what}: {} rows: {msgs:?}", rows.len()));
    }
    for row in rows {
        let id = match from_binary(Ty::Int, row[0].as_deref()) {
            V::Int(id) => id as i64,
            other => panic!("{what}: id {other:?}"),
        };
        let pii = Pii::row(id);
        for (i, (column, ty, format)) in MIXED.iter().enumerate() {
            let raw = row[i + 1].as_deref();
            let v = if *format == 1 {
                from_binary(*ty, raw)
            } else {
                from_text(
                    *ty,
                    raw.map(|b| std::str::from_utf8(b).expect("UTF-8 text")),
                )
            };
            if let Err(e) = check_pii(Strategy::Redact, column, &pii, &v) {
                problems.push(format!("{what}: {column} row {id}: {e}"));
            }
        }
    }
}

#[tokio::test]
async fn mixed_formats_suspended_portals_and_undescribed_executes_are_masked() {
    let db = TestDb::create("mask_ext");
    create_pii_table(&db.name);
    let gateway = redact_gateway();
    let mut wire = Target::agent(&gateway, &db.name).wire().await;
    let formats = mixed_formats();
    let mut problems = Vec::new();

    // One named statement, described once; a portal with text and binary
    // columns, executed two rows at a time.
    wire.send_all(&[
        Frontend::parse("mixed", &mixed_sql(), &[]),
        Frontend::describe_statement("mixed"),
        Frontend::bind("p", "mixed", &[], vec![], &formats),
        Frontend::execute("p", 2),
        Frontend::execute("p", 2),
        Frontend::execute("p", 2),
        Frontend::execute("p", 2),
        Frontend::Sync,
    ])
    .await
    .unwrap();
    let replies = wire.recv_until_ready().await.unwrap();
    assert_no_error(&replies, "mixed formats");
    let suspended = replies.iter().filter(|m| m.tag == b's').count();
    assert_eq!(
        suspended, 3,
        "PortalSuspended after each limited Execute: {replies:?}"
    );
    check_mixed_rows(
        "described statement, Execute with a row limit",
        &replies,
        &mut problems,
    );

    // The same statement bound again and executed, no Describe this time:
    // the gateway must remember what the statement returns.
    for round in 0..3 {
        wire.send_all(&[
            Frontend::bind("", "mixed", &[], vec![], &formats),
            Frontend::execute("", 0),
            Frontend::Sync,
        ])
        .await
        .unwrap();
        let replies = wire.recv_until_ready().await.unwrap();
        assert_no_error(&replies, "rebind");
        check_mixed_rows(
            &format!("rebound statement, round {round}"),
            &replies,
            &mut problems,
        );
    }

    // pgJDBC's pattern past prepareThreshold: Parse a named statement, Bind,
    // Describe the *portal*, Execute; afterwards only Bind and Execute.
    wire.send_all(&[
        Frontend::parse("jdbc_like", &mixed_sql(), &[]),
        Frontend::bind("", "jdbc_like", &[], vec![], &formats),
        Frontend::describe_portal(""),
        Frontend::execute("", 0),
        Frontend::Sync,
    ])
    .await
    .unwrap();
    let replies = wire.recv_until_ready().await.unwrap();
    assert_no_error(&replies, "portal described");
    check_mixed_rows(
        "statement whose portal was described",
        &replies,
        &mut problems,
    );
    wire.send_all(&[
        Frontend::bind("", "jdbc_like", &[], vec![], &formats),
        Frontend::execute("", 0),
        Frontend::Sync,
    ])
    .await
    .unwrap();
    let replies = wire.recv_until_ready().await.unwrap();
    assert_no_error(&replies, "rebind after a portal Describe");
    check_mixed_rows(
        "statement whose portal was described, bound and executed again",
        &replies,
        &mut problems,
    );

    // A client that never describes at all and asks for binary results:
    // the types are unknown to the gateway, and nothing may pass unmasked.
    wire.send_all(&[
        Frontend::parse(
            "",
            "SELECT id, card_big, card_num, ip FROM pii ORDER BY id",
            &[],
        ),
        Frontend::bind("", "", &[], vec![], &[1]),
        Frontend::execute("", 0),
        Frontend::Sync,
    ])
    .await
    .unwrap();
    let replies = wire.recv_until_ready().await.unwrap();
    assert_no_error(&replies, "undescribed");
    for row in data_rows(&replies) {
        let card_big = from_binary(Ty::Int, row[1].as_deref());
        let card_num = from_binary(Ty::Numeric, row[2].as_deref());
        let ip = from_binary(Ty::Inet, row[3].as_deref());
        for (column, v) in [
            ("card_big", &card_big),
            ("card_num", &card_num),
            ("ip", &ip),
        ] {
            let leaked = CARDS.iter().chain(IPS.iter()).any(|s| match v {
                V::Int(n) => n.to_string() == *s,
                V::Num(t) | V::Inet(t) => t == s,
                _ => false,
            });
            if leaked {
                problems.push(format!(
                    "never described, binary results: {column} passed unmasked: {v:?}"
                ));
            }
        }
    }

    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---- COPY TO STDOUT ---------------------------------------------------------------

/// Tuples of binary COPY output, or why it does not parse.
fn binary_copy_tuples(data: &[u8]) -> Result<Vec<Vec<Option<Vec<u8>>>>, String> {
    const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
    if !data.starts_with(SIGNATURE) || data.len() < 19 {
        return Err("no binary COPY header".into());
    }
    let word = |at: usize| -> Result<i32, String> {
        data.get(at..at + 4)
            .map(|b| i32::from_be_bytes(b.try_into().expect("four bytes")))
            .ok_or_else(|| format!("truncated at byte {at}"))
    };
    let mut at = 19 + word(15)? as usize;
    let mut tuples = Vec::new();
    loop {
        let count = data
            .get(at..at + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| format!("truncated at byte {at}"))?;
        at += 2;
        if count == -1 {
            return if at == data.len() {
                Ok(tuples)
            } else {
                Err(format!("{} bytes after the trailer", data.len() - at))
            };
        }
        let mut fields = Vec::new();
        for _ in 0..count {
            let len = word(at)?;
            at += 4;
            if len < 0 {
                fields.push(None);
                continue;
            }
            let field = data
                .get(at..at + len as usize)
                .ok_or_else(|| format!("field truncated at byte {at}"))?;
            fields.push(Some(field.to_vec()));
            at += len as usize;
        }
        tuples.push(fields);
    }
}

/// The CopyData payloads of a COPY TO STDOUT run with the extended protocol.
async fn copy_out_extended(target: Target<'_>, sql: &str) -> Vec<u8> {
    let mut wire = target.wire().await;
    wire.send_all(&[
        Frontend::parse("", sql, &[]),
        Frontend::bind("", "", &[], vec![], &[]),
        Frontend::execute("", 0),
        Frontend::Sync,
    ])
    .await
    .unwrap();
    let replies = wire.recv_until_ready().await.unwrap();
    assert_no_error(&replies, sql);
    replies
        .iter()
        .filter_map(BackendMsg::copy_data)
        .flatten()
        .copied()
        .collect()
}

/// Checks binary COPY of `pii`: every field decodes as its column's type,
/// and no stored PII value is in it. A field may be NULL: binary COPY
/// carries no types, so a field Airlock cannot rewrite is dropped.
fn check_pii_binary_copy(what: &str, data: &[u8], problems: &mut Vec<String>) {
    let tuples = match binary_copy_tuples(data) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("{what}: {e}"));
            return;
        }
    };
    if tuples.len() as i64 != PII_ROWS {
        problems.push(format!("{what}: {} tuples", tuples.len()));
    }
    for tuple in tuples {
        let id = match from_binary(Ty::Int, tuple[0].as_deref()) {
            V::Int(id) => id as i64,
            other => {
                problems.push(format!("{what}: id {other:?}"));
                continue;
            }
        };
        let row = Pii::row(id);
        for (i, (column, _, ty)) in PII_COLUMNS.iter().enumerate() {
            let v = from_binary(*ty, tuple[i + 1].as_deref());
            if let V::Invalid(e) = &v {
                problems.push(format!("{what}: {column} row {id}: not a valid value: {e}"));
            }
            for secret in row.secrets() {
                if v.contains(&secret) {
                    problems.push(format!("{what}: {column} row {id}: {secret} leaked: {v:?}"));
                }
            }
        }
    }
}

#[tokio::test]
async fn copy_to_stdout_is_masked_in_text_csv_and_binary() {
    let db = TestDb::create("mask_copy");
    create_pii_table(&db.name);
    let cells = load_corpus();
    let sample: BTreeMap<u32, &Cell> = cells
        .iter()
        .filter(|c| c.id % COPY_SAMPLE == 0)
        .map(|c| (c.id, c))
        .collect();
    create_corpus_table(&db.name, sample.values().copied());
    let gateway = redact_gateway();
    let target = Target::agent(&gateway, &db.name);
    let mut problems = Vec::new();

    // The PII table: text and CSV are searched whole (bytea prints as hex,
    // so the hex spelling of each value is searched too); binary is decoded.
    for format in ["text", "csv"] {
        let sql = format!("COPY pii TO STDOUT (FORMAT {format})");
        let out = psql_bytes(target, &["-c", &sql]);
        let text = String::from_utf8_lossy(&out);
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() as i64 != PII_ROWS {
            problems.push(format!("{sql}: {} lines", lines.len()));
        }
        for line in lines {
            let id = line.split([',', '\t']).next().and_then(|i| i.parse().ok());
            let Some(id) = id.filter(|i| (1..=PII_ROWS).contains(i)) else {
                problems.push(format!("{sql}: a line without an id: {line}"));
                continue;
            };
            for secret in Pii::row(id).secrets() {
                if line.contains(&secret) {
                    problems.push(format!("{sql}: row {id}: {secret} leaked: {line}"));
                }
            }
        }
    }
    let sql = "COPY pii TO STDOUT (FORMAT binary)";
    check_pii_binary_copy(
        "binary COPY through psql",
        &psql_bytes(target, &["-c", sql]),
        &mut problems,
    );
    check_pii_binary_copy(
        "binary COPY with the extended protocol",
        &copy_out_extended(target, sql).await,
        &mut problems,
    );

    // The corpus sample, in each format, read back as a client loading it would.
    let query = "SELECT id, body, doc, raw FROM corpus ORDER BY id";
    let direct_docs = direct_doc_texts(&db.name);
    let mut reports = Vec::new();
    for format in ["text", "csv", "binary"] {
        let sql = format!("COPY ({query}) TO STDOUT (FORMAT {format})");
        let out = psql_bytes(target, &["-c", &sql]);
        let got = match format {
            "text" => copy_text_rows(&out),
            "csv" => copy_csv_rows(&out),
            _ => copy_binary_rows(&out),
        };
        let got = match got {
            Ok(g) => g,
            Err(e) => {
                problems.push(format!("corpus COPY {format}: {e}"));
                continue;
            }
        };
        // Binary COPY carries no types: a field Airlock cannot rewrite as
        // what its bytes look like becomes NULL.
        reports.push(check_corpus(
            &format!("COPY {format}"),
            &sample,
            &got,
            &direct_docs,
            format == "binary",
        ));
    }
    println!("{}", render_reports(&reports));
    for r in &reports {
        problems.extend(r.problems());
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Every COPY_SAMPLE-th corpus cell goes through COPY (about 40 labels of
/// each kind).
const COPY_SAMPLE: u32 = 12;

fn copy_text_unescape(field: &str) -> Option<String> {
    if field == "\\N" {
        return None;
    }
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some(out)
}

fn corpus_got(
    id: &str,
    body: Option<String>,
    doc: Option<String>,
    raw: Option<String>,
) -> Result<(u32, Got), String> {
    let id = id.parse().map_err(|_| format!("bad id {id:?}"))?;
    Ok((
        id,
        Got {
            body,
            doc: doc.as_deref().map(Json::parse),
            raw: raw.as_deref().map(Json::parse),
            doc_text: doc,
            raw_text: raw,
        },
    ))
}

fn copy_text_rows(out: &[u8]) -> Result<BTreeMap<u32, Got>, String> {
    let text = std::str::from_utf8(out).map_err(|e| format!("not UTF-8: {e}"))?;
    text.lines()
        .map(|line| {
            let fields: Vec<Option<String>> = line.split('\t').map(copy_text_unescape).collect();
            let [Some(id), body, doc, raw] = <[Option<String>; 4]>::try_from(fields)
                .map_err(|f| format!("{} fields in {line:?}", f.len()))?
            else {
                return Err(format!("no id in {line:?}"));
            };
            corpus_got(&id, body, doc, raw)
        })
        .collect()
}

/// Records of CSV output: quoted fields may hold newlines; an unquoted
/// empty field is NULL.
fn copy_csv_rows(out: &[u8]) -> Result<BTreeMap<u32, Got>, String> {
    let text = std::str::from_utf8(out).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut records: Vec<Vec<Option<String>>> = Vec::new();
    let mut record = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut field = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unterminated quoted field".into()),
                }
            }
        }
        while let Some(&c) = chars.peek() {
            if c == ',' || c == '\n' {
                break;
            }
            field.push(c);
            chars.next();
        }
        record.push((quoted || !field.is_empty()).then_some(field));
        match chars.next() {
            Some(',') => continue,
            Some('\n') => records.push(std::mem::take(&mut record)),
            None => {
                if record != [None] {
                    records.push(record);
                }
                break;
            }
            Some(_) => unreachable!("the loop stops at a separator"),
        }
    }
    records
        .into_iter()
        .map(|r| {
            let [Some(id), body, doc, raw] = <[Option<String>; 4]>::try_from(r)
                .map_err(|f| format!("{} fields: {f:?}", f.len()))?
            else {
                return Err("a record without an id".into());
            };
            corpus_got(&id, body, doc, raw)
        })
        .collect()
}

fn copy_binary_rows(out: &[u8]) -> Result<BTreeMap<u32, Got>, String> {
    binary_copy_tuples(out)?
        .into_iter()
        .map(|t| {
            let text = |f: &Option<Vec<u8>>, skip: usize| -> Result<Option<String>, String> {
                f.as_ref()
                    .map(|b| {
                        String::from_utf8(b.get(skip..).unwrap_or_default().to_vec())
                            .map_err(|e| format!("not UTF-8: {e}"))
                    })
                    .transpose()
            };
            let id = match from_binary(Ty::Int, t.first().and_then(|f| f.as_deref())) {
                V::Int(id) => id.to_string(),
                other => return Err(format!("id {other:?}")),
            };
            // jsonb starts with its version byte.
            if let Some(Some(doc)) = t.get(2) {
                if doc.first() != Some(&1) {
                    return Err(format!("row {id}: jsonb without its version byte"));
                }
            }
            corpus_got(&id, text(&t[1], 0)?, text(&t[2], 1)?, text(&t[3], 0)?)
        })
        .collect()
}

// ---- the labelled corpus ------------------------------------------------------------

fn csv_field(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// `corpus (id, shape, body text, doc jsonb, raw json)`, loaded with COPY
/// FROM STDIN directly (never through the gateway). JSON cells are in all
/// three columns, the others in `body` only.
fn create_corpus_table<'a>(database: &str, cells: impl Iterator<Item = &'a Cell>) {
    psql_direct(
        database,
        "CREATE TABLE corpus (id int PRIMARY KEY, shape text, body text, doc jsonb, raw json)",
    );
    let mut csv = String::new();
    for cell in cells {
        let json = if cell.is_json() {
            csv_field(&cell.text)
        } else {
            String::new()
        };
        csv.push_str(&format!(
            "{},{},{},{json},{json}\n",
            cell.id,
            csv_field(&cell.shape),
            csv_field(&cell.text)
        ));
    }
    psql_direct_stdin(
        database,
        "COPY corpus FROM STDIN (FORMAT csv)",
        csv.as_bytes(),
    );
}

/// `doc` as PostgreSQL prints it directly: jsonb is normalised, so this is
/// what an unlabelled cell must come back as.
fn direct_doc_texts(database: &str) -> BTreeMap<u32, String> {
    psql_rows(
        Target::direct(database),
        "SELECT id, doc FROM corpus WHERE doc IS NOT NULL",
    )
    .into_iter()
    .map(|r| {
        (
            r[0].as_deref().and_then(|i| i.parse().ok()).expect("id"),
            r[1].clone().expect("doc"),
        )
    })
    .collect()
}

/// A json or jsonb value as a client received it.
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Parsed(Value),
    Invalid(String),
}

impl Json {
    fn parse(text: &str) -> Json {
        serde_json::from_str(text).map_or_else(|_| Json::Invalid(text.to_string()), Json::Parsed)
    }

    fn contains(&self, needle: &str) -> bool {
        match self {
            Json::Parsed(v) => json_contains(v, needle),
            Json::Invalid(text) => text.contains(needle),
        }
    }
}

/// One corpus row as a client received it. `doc_text` and `raw_text` are
/// the JSON texts when the client saw them (psql, COPY).
#[derive(Clone, Debug, PartialEq)]
struct Got {
    body: Option<String>,
    doc: Option<Json>,
    raw: Option<Json>,
    doc_text: Option<String>,
    raw_text: Option<String>,
}

fn corpus_through_psql(target: Target) -> BTreeMap<u32, Got> {
    psql_rows(target, "SELECT id, body, doc, raw FROM corpus ORDER BY id")
        .into_iter()
        .map(|r| {
            let [Some(id), body, doc, raw] =
                <[Option<String>; 4]>::try_from(r).expect("four columns")
            else {
                panic!("a row without an id");
            };
            corpus_got(&id, body, doc, raw).expect("psql row")
        })
        .collect()
}

fn corpus_through_driver(driver: Driver, target: Target) -> BTreeMap<u32, Got> {
    let lines = driver.read(
        target,
        &["select"],
        &[(
            "AIRLOCK_SQL",
            "SELECT id, body, doc, raw FROM corpus ORDER BY id",
        )],
    );
    let json = |v: &Value| match v {
        Value::Null => None,
        v => Some(match v.get("json") {
            Some(doc) => Json::Parsed(doc.clone()),
            None => Json::Invalid(v.to_string()),
        }),
    };
    lines
        .iter()
        .filter_map(|l| l.get("row"))
        .map(|row| {
            let id = row[0].as_u64().expect("id") as u32;
            let got = Got {
                body: row[1].as_str().map(str::to_string),
                doc: json(&row[2]),
                raw: json(&row[3]),
                doc_text: None,
                raw_text: None,
            };
            (id, got)
        })
        .collect()
}

/// Numbers compared by value: jsonb may print `1.0e2` as `100`.
fn json_equivalent(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equivalent(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equivalent(v, w)))
        }
        _ => a == b,
    }
}

/// What one client received of the corpus, checked.
#[derive(Default)]
struct CorpusReport {
    client: String,
    rows: usize,
    labels: usize,
    masked: usize,
    unlabelled: usize,
    unlabelled_identical: usize,
    /// Cells without labels in which a detector finds something anyway.
    unlabelled_flagged: usize,
    /// Labels the detectors do not find in the stored text, by kind.
    misses: BTreeMap<String, usize>,
    /// (column, kind) → count and a few examples.
    leaks: BTreeMap<(String, String), (usize, Vec<String>)>,
    other: Vec<String>,
}

impl CorpusReport {
    fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .leaks
            .iter()
            .map(|((column, kind), (n, examples))| {
                format!(
                    "{}: {n} {kind} value(s) in {column} reached the client, e.g. {}",
                    self.client,
                    examples.join(" | ")
                )
            })
            .collect();
        let shown = self.other.len().min(20);
        out.extend(
            self.other[..shown]
                .iter()
                .map(|o| format!("{}: {o}", self.client)),
        );
        if self.other.len() > shown {
            out.push(format!(
                "{}: … {} more",
                self.client,
                self.other.len() - shown
            ));
        }
        out
    }
}

fn render_reports(reports: &[CorpusReport]) -> String {
    let mut out = String::from(
        "| client | rows | labels | masked | detector misses | leaked | unlabelled identical | unlabelled, detector false positive | other problems |\n|---|---:|---:|---:|---|---:|---:|---:|---:|\n",
    );
    for r in reports {
        let misses: Vec<String> = r.misses.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let leaked: usize = r.leaks.values().map(|(n, _)| n).sum();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {leaked} | {}/{} | {} | {} |\n",
            r.client,
            r.rows,
            r.labels,
            r.masked,
            if misses.is_empty() {
                "none".to_string()
            } else {
                misses.join(", ")
            },
            r.unlabelled_identical,
            r.unlabelled,
            r.unlabelled_flagged,
            r.other.len()
        ));
    }
    out
}

/// The columns of an unlabelled row that did not come back as stored, each
/// with the first difference.
fn unlabelled_changes(cell: &Cell, row: &Got, direct_doc: Option<&String>) -> Vec<String> {
    let mut changes = Vec::new();
    let mut text = |column: &str, got: Option<&str>, want: &str| {
        if got != Some(want) {
            changes.push(format!(
                "{column} {}",
                first_difference(got.unwrap_or("NULL"), want)
            ));
        }
    };
    text("body", row.body.as_deref(), &cell.text);
    if cell.is_json() {
        if row.raw_text.is_some() {
            text("raw", row.raw_text.as_deref(), &cell.text);
        }
        if let (Some(got), Some(want)) = (&row.doc_text, direct_doc) {
            text("doc", Some(got), want);
        }
        let original: Value = serde_json::from_str(&cell.text).expect("corpus JSON");
        for (column, value) in [("doc", &row.doc), ("raw", &row.raw)] {
            if !matches!(value, Some(Json::Parsed(v)) if json_equivalent(v, &original)) {
                changes.push(format!("{column} decodes to {value:?}"));
            }
        }
    }
    changes
}

/// `got` and `want` around the first byte where they differ.
fn first_difference(got: &str, want: &str) -> String {
    let at = got
        .bytes()
        .zip(want.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let around = |s: &str| {
        let start = (0..=at.saturating_sub(30))
            .rev()
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(0);
        let end = (at + 50).min(s.len());
        let end = (end..=s.len())
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(s.len());
        s.get(start..end).unwrap_or(s).to_string()
    };
    format!("is …{:?}…, stored …{:?}…", around(got), around(want))
}

/// Checks what one client received of the corpus. With `labelled_nullable`
/// a value with labels may come back NULL (masked whole).
fn check_corpus(
    client: &str,
    cells: &BTreeMap<u32, &Cell>,
    got: &BTreeMap<u32, Got>,
    direct_docs: &BTreeMap<u32, String>,
    labelled_nullable: bool,
) -> CorpusReport {
    let mut report = CorpusReport {
        client: client.to_string(),
        rows: got.len(),
        ..Default::default()
    };
    if got.len() != cells.len() {
        let missing: Vec<&u32> = cells
            .keys()
            .filter(|id| !got.contains_key(id))
            .take(10)
            .collect();
        report.other.push(format!(
            "{} rows of {}; missing e.g. {missing:?}",
            got.len(),
            cells.len()
        ));
    }
    for (id, row) in got {
        let Some(cell) = cells.get(id) else {
            report.other.push(format!("row {id} is not in the corpus"));
            continue;
        };
        let nullable = labelled_nullable && !cell.labels.is_empty();
        if row.body.is_none() && !nullable {
            report.other.push(format!("row {id}: body is NULL"));
        }
        let expected_json = cell.is_json();
        for (column, value) in [("doc", &row.doc), ("raw", &row.raw)] {
            match value {
                Some(Json::Invalid(text)) => report
                    .other
                    .push(format!("row {id}: {column} is not valid JSON: {text}")),
                None if expected_json && !nullable => {
                    report.other.push(format!("row {id}: {column} is NULL"))
                }
                Some(_) if !expected_json => report
                    .other
                    .push(format!("row {id}: {column} should be NULL")),
                _ => {}
            }
        }
        if cell.labels.is_empty() {
            report.unlabelled += 1;
            let changed = unlabelled_changes(cell, row, direct_docs.get(id));
            if changed.is_empty() {
                report.unlabelled_identical += 1;
            } else if cell.falsely_detected() {
                // A detector false positive, masked as the scanner says.
                report.unlabelled_flagged += 1;
            } else {
                report.other.push(format!(
                    "row {id} has no labels but came back changed: {}",
                    changed.join("; ")
                ));
            }
            continue;
        }
        for label in &cell.labels {
            report.labels += 1;
            let forms = cell.forms(label);
            let mut leaked_in = Vec::new();
            if row
                .body
                .as_deref()
                .is_some_and(|b| forms.iter().any(|f| b.contains(f.as_str())))
            {
                leaked_in.push("body");
            }
            for (column, value) in [("doc", &row.doc), ("raw", &row.raw)] {
                if value
                    .as_ref()
                    .is_some_and(|v| forms.iter().any(|f| v.contains(f)))
                {
                    leaked_in.push(column);
                }
            }
            if leaked_in.is_empty() {
                report.masked += 1;
            } else if !cell.detected(label) {
                *report.misses.entry(label.kind.clone()).or_default() += 1;
            } else {
                for column in leaked_in {
                    let entry = report
                        .leaks
                        .entry((column.to_string(), label.kind.clone()))
                        .or_default();
                    entry.0 += 1;
                    if entry.1.len() < 3 {
                        entry.1.push(format!("row {id} {:?}", forms[0]));
                    }
                }
            }
        }
    }
    report
}

#[test]
fn all_labelled_values_in_the_corpus_are_masked_for_psql_psycopg_and_asyncpg() {
    let db = TestDb::create("mask_corpus");
    let cells = load_corpus();
    create_corpus_table(&db.name, cells.iter());
    let by_id: BTreeMap<u32, &Cell> = cells.iter().map(|c| (c.id, c)).collect();
    let direct_docs = direct_doc_texts(&db.name);
    // One gateway per client, all reading at once: the detectors' work is
    // the bulk of this test's time, and separate processes share none of it.
    let gateways: Vec<Gateway> = (0..3).map(|_| redact_gateway()).collect();
    let targets: Vec<Target> = gateways
        .iter()
        .map(|g| Target::agent(g, &db.name))
        .collect();
    let reads: Vec<(&str, BTreeMap<u32, Got>)> = std::thread::scope(|s| {
        let psql = s.spawn(|| corpus_through_psql(targets[0]));
        let psycopg = s.spawn(|| corpus_through_driver(Driver::Psycopg, targets[1]));
        let asyncpg = s.spawn(|| corpus_through_driver(Driver::Asyncpg, targets[2]));
        vec![
            ("psql (text)", psql.join().expect("psql")),
            ("psycopg (binary)", psycopg.join().expect("psycopg")),
            ("asyncpg (binary)", asyncpg.join().expect("asyncpg")),
        ]
    });
    let reports: Vec<CorpusReport> = std::thread::scope(|s| {
        let checks: Vec<_> = reads
            .iter()
            .map(|(client, got)| s.spawn(|| check_corpus(client, &by_id, got, &direct_docs, false)))
            .collect();
        checks
            .into_iter()
            .map(|c| c.join().expect("check"))
            .collect()
    });
    println!("{}", render_reports(&reports));
    let problems: Vec<String> = reports.iter().flat_map(CorpusReport::problems).collect();
    assert!(
        problems.is_empty(),
        "{}\n{} problems:\n{}",
        render_reports(&reports),
        problems.len(),
        problems.join("\n")
    );
}

// ---- who sees what --------------------------------------------------------------------

#[test]
fn exempt_roles_see_rows_unmasked_and_agents_do_not() {
    let db = TestDb::create("mask_exempt");
    create_pii_table(&db.name);
    let gateway = masking_gateway(
        &format!("{ALL_DETECTORS}exempt_roles = [\"admin\"]\n"),
        "\n[[identity]]\nname = \"dba\"\nrole = \"admin\"\npassword = \"dba-secret\"\n",
    );
    let admin = Target {
        addr: &gateway.addr,
        user: "dba",
        password: "dba-secret",
        database: &db.name,
    };
    let agent = Target::agent(&gateway, &db.name);
    let direct = Target::direct(&db.name);
    for sql in [
        "SELECT * FROM pii ORDER BY id",
        "COPY pii TO STDOUT",
        "COPY pii TO STDOUT (FORMAT binary)",
    ] {
        let (seen, stored) = (
            psql_bytes(admin, &["-c", sql]),
            psql_bytes(direct, &["-c", sql]),
        );
        assert!(
            seen == stored,
            "an exempt admin sees {sql} exactly as stored; got\n{}\nstored\n{}",
            String::from_utf8_lossy(&seen),
            String::from_utf8_lossy(&stored)
        );
    }
    let sql = "SELECT * FROM pii ORDER BY id";
    let masked = psql_bytes(agent, &["-c", sql]);
    assert_ne!(
        masked,
        psql_bytes(direct, &["-c", sql]),
        "the agent's rows are masked"
    );
    let text = String::from_utf8_lossy(&masked);
    for id in 1..=PII_ROWS {
        for secret in Pii::row(id).secrets() {
            assert!(
                !text.contains(&secret),
                "{secret} reached the agent: {text}"
            );
        }
    }
}

// ---- values that are not UTF-8 -------------------------------------------------------

/// A database in SQL_ASCII, where text may hold any bytes; dropped on drop.
struct AsciiDb {
    name: String,
}

impl AsciiDb {
    fn create() -> Self {
        let name = format!("airlock_t_mask_ascii_{}", std::process::id());
        psql_direct(
            "test",
            &format!(
                "CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
            ),
        );
        AsciiDb { name }
    }
}

impl Drop for AsciiDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                "5432",
                "-U",
                "postgres",
                "-d",
                "test",
            ])
            .args([
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

#[tokio::test]
async fn values_that_are_not_utf8_are_masked() {
    const EMAIL: &[u8] = b"jane.doe@example.org";
    let db = TestDb::create("mask_bytes");
    // Bytes that are no UTF-8 around the address, and inside no text type.
    psql_direct(
        &db.name,
        "CREATE TABLE blobs (id int, b bytea); \
         INSERT INTO blobs VALUES (1, '\\xfffe80'::bytea || convert_to('mail jane.doe@example.org', 'UTF8') || '\\xc328ff'::bytea)",
    );
    let ascii = AsciiDb::create();
    psql_direct(
        &ascii.name,
        "CREATE TABLE texts (id int, t text); \
         INSERT INTO texts VALUES (1, E'\\xff\\xfe mail jane.doe@example.org \\x80\\xc3')",
    );
    assert_eq!(
        psql_direct(
            &ascii.name,
            "SELECT encode(convert_to(t, 'SQL_ASCII'), 'hex') LIKE 'fffe%' FROM texts"
        ),
        "t",
        "the text holds bytes that are not UTF-8"
    );
    let gateway = redact_gateway();
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    let mut problems = Vec::new();

    let bytes = Target::agent(&gateway, &db.name);
    for (output, sql) in [
        ("hex", "SELECT b FROM blobs"),
        ("escape", "SET bytea_output = 'escape'; SELECT b FROM blobs"),
    ] {
        let out = psql_bytes(bytes, &["-c", sql]);
        let text = String::from_utf8_lossy(&out);
        let decoded = match output {
            "hex" => text.trim().strip_prefix("\\x").and_then(hex_decode),
            _ => Some(out.clone()),
        };
        match decoded {
            Some(d) if !contains(&d, EMAIL) && contains(&d, b"<EMAIL>") => {}
            other => problems.push(format!(
                "bytea ({output} output) through psql: {other:?} / {text}"
            )),
        }
    }
    let mut wire = bytes.wire().await;
    for format in [0, 1] {
        wire.send_all(&[
            Frontend::parse("", "SELECT b FROM blobs", &[]),
            Frontend::bind("", "", &[], vec![], &[format]),
            Frontend::describe_portal(""),
            Frontend::execute("", 0),
            Frontend::Sync,
        ])
        .await
        .unwrap();
        let replies = wire.recv_until_ready().await.unwrap();
        assert_no_error(&replies, "bytea");
        let value = data_rows(&replies)[0][0].clone().unwrap_or_default();
        let value = if format == 0 {
            from_text(Ty::Bytea, std::str::from_utf8(&value).ok())
        } else {
            V::Bytes(value)
        };
        match &value {
            V::Bytes(d) if !contains(d, EMAIL) && contains(d, b"<EMAIL>") => {}
            other => problems.push(format!("bytea in format {format}: {other:?}")),
        }
    }

    let texts = Target::agent(&gateway, &ascii.name);
    let out = psql_bytes(texts, &["-c", "SELECT t FROM texts"]);
    if contains(&out, EMAIL) || !contains(&out, b"<EMAIL>") {
        problems.push(format!(
            "SQL_ASCII text through psql: {}",
            String::from_utf8_lossy(&out)
        ));
    }
    let mut wire = texts.wire().await;
    for format in [0, 1] {
        wire.send_all(&[
            Frontend::parse("", "SELECT t FROM texts", &[]),
            Frontend::bind("", "", &[], vec![], &[format]),
            Frontend::describe_portal(""),
            Frontend::execute("", 0),
            Frontend::Sync,
        ])
        .await
        .unwrap();
        let replies = wire.recv_until_ready().await.unwrap();
        assert_no_error(&replies, "SQL_ASCII text");
        let value = data_rows(&replies)[0][0].clone();
        match &value {
            Some(v) if !contains(v, EMAIL) => {}
            None => {}
            other => problems.push(format!("SQL_ASCII text in format {format}: {other:?}")),
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---- policy errors ----------------------------------------------------------------------

#[test]
fn masking_policy_errors_name_file_line_and_problem() {
    const RULE: &str = "[[rule]]\nname = \"all\"\naction = \"allow\"\n\n";
    /// Policy files (name, text), the file and line the error must name,
    /// and words it must contain.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, usize, &'a [&'a str]);
    let cases: &[Case] = &[
        (
            &[(
                "10-mask.toml",
                "[masking]\ndetectors = [\"standard\", \"emial\"]\n",
            )],
            "10-mask.toml",
            6,
            &["unknown detector", "emial"],
        ),
        (
            &[("10-mask.toml", "[masking]\ndisable = [\"fone\"]\n")],
            "10-mask.toml",
            6,
            &["unknown detector", "fone"],
        ),
        (
            &[(
                "10-mask.toml",
                "[masking]\nenabled = true\nstrategy = \"scramble\"\n",
            )],
            "10-mask.toml",
            7,
            &["unknown strategy", "scramble"],
        ),
        (
            &[(
                "10-mask.toml",
                "[masking]\nstrategies = { email = \"hash\" }\n",
            )],
            "10-mask.toml",
            6,
            &["unknown strategy", "hash"],
        ),
        (
            &[(
                "10-mask.toml",
                "[masking]\nstrategies = { emale = \"partial\" }\n",
            )],
            "10-mask.toml",
            6,
            &["unknown detector", "emale"],
        ),
        (
            &[("10-mask.toml", "[masking]\nexempt_roles = [\"boss\"]\n")],
            "10-mask.toml",
            6,
            &["unknown role", "boss"],
        ),
        (
            &[(
                "10-mask.toml",
                "[masking]\nexempt_roles = [\"admin\", \"agent\"]\n",
            )],
            "10-mask.toml",
            6,
            &["agent", "exempt"],
        ),
        (
            &[(
                "10-mask.toml",
                "[masking]\nenabled = true\ncolour = \"red\"\n",
            )],
            "10-mask.toml",
            7,
            &["colour"],
        ),
        (
            &[("10-mask.toml", "[masking]\nenabled = \"yes\"\n")],
            "10-mask.toml",
            6,
            &["\"yes\"", "boolean"],
        ),
        (
            &[
                ("10-mask.toml", "[masking]\nstrategy = \"partial\"\n"),
                ("20-more.toml", "\n[masking]\nstrategy = \"token\"\n"),
            ],
            "20-more.toml",
            2,
            &["[masking]", "10-mask.toml"],
        ),
    ];
    for (files, file, line, words) in cases {
        let dir = tempfile::tempdir().unwrap();
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        for (i, (name, text)) in files.iter().enumerate() {
            // The rule goes in the first file, so line numbers there count it.
            let text = if i == 0 {
                format!("{RULE}{text}")
            } else {
                text.to_string()
            };
            std::fs::write(policies.join(name), text).unwrap();
        }
        let out = Command::new(binary())
            .args(["policy", "check", "--policies"])
            .arg(&policies)
            .arg("SELECT 1")
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{files:?}: {err}");
        let at = format!("{file}: line {line}:");
        assert!(err.contains(&at), "{files:?}: expected `{at}` in {err}");
        for word in *words {
            assert!(err.contains(word), "{files:?}: expected `{word}` in {err}");
        }
    }
}

// ---- a large result --------------------------------------------------------------------

#[test]
fn a_large_result_streams_through_masked_in_bounded_memory() {
    const ROWS: u64 = 200_000;
    const LIMIT_KB: u64 = 64 * 1024;
    let db = TestDb::create("mask_large");
    // About 430 bytes a row, 86 MB in all: more than the memory bound, so a
    // gateway that held the result would break it.
    psql_direct(
        &db.name,
        &format!(
            "CREATE TABLE big AS SELECT g AS id, \
             'note ' || repeat('lorem ipsum dolor sit amet ', 15) || 'contact user' || g || '@example.org' AS body \
             FROM generate_series(1, {ROWS}) g"
        ),
    );
    let total: u64 = psql_direct(&db.name, "SELECT sum(octet_length(body)) FROM big")
        .parse()
        .expect("a number");
    assert!(
        total > LIMIT_KB * 1024,
        "the result ({total} bytes) must outgrow the bound"
    );
    let gateway = masking_gateway("strategy = \"redact\"\n", "");
    let lines = Driver::Psycopg.read(
        Target::agent(&gateway, &db.name),
        &["stream"],
        &[
            ("AIRLOCK_SQL", "SELECT id, body FROM big"),
            ("AIRLOCK_FORBIDDEN", "@example.org"),
        ],
    );
    assert_eq!(lines[0]["rows"], ROWS, "{lines:?}");
    assert_eq!(
        lines[0]["leaked"], 0,
        "rows with an address left: {lines:?}"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", gateway.pid()))
        .expect("the gateway's /proc status");
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    println!("gateway peak RSS {peak_kb} kB for a {total}-byte result");
    assert!(
        peak_kb < LIMIT_KB,
        "the gateway's peak RSS was {peak_kb} kB for a {total}-byte result: it must stream"
    );
}

/// A value that repeats down a result is scanned once and recalled after
/// (per session): every copy must still be masked, in this result and in
/// the next, counted in each result's audit record as if found afresh —
/// among values that differ from it in one digit, and with more distinct
/// values between the copies than the session remembers.
#[test]
fn values_repeated_down_results_are_masked_and_counted_every_time() {
    const ROWS: usize = 1200;
    let db = TestDb::create("mask_repeat");
    psql_direct(
        &db.name,
        &format!(
            "CREATE TABLE notes AS SELECT g AS id, CASE g % 3 \
             WHEN 0 THEN 'refund to card 4111 1111 1111 1111, call +44 20 7946 0958' \
             WHEN 1 THEN 'refund to card 4111 1111 1111 111' || (g % 10) || ', note ' || g \
             ELSE 'shipped to user' || g || '@example.org' END AS body \
             FROM generate_series(1, {ROWS}) g"
        ),
    );
    let gateway = masking_gateway("strategy = \"redact\"\n", "");
    let target = Target::agent(&gateway, &db.name);
    let direct = psql_rows(
        Target::direct(&db.name),
        "SELECT body FROM notes ORDER BY id",
    );
    for round in 0..2 {
        let rows = psql_rows(target, "SELECT body FROM notes ORDER BY id");
        assert_eq!(rows.len(), ROWS, "round {round}");
        for (got, stored) in rows.iter().zip(&direct) {
            let (got, stored) = (got[0].as_deref().unwrap(), stored[0].as_deref().unwrap());
            assert!(
                !got.contains("4111 1111 1111 1111")
                    && !got.contains("7946 0958")
                    && !got.contains("@example.org"),
                "round {round}: {stored:?} came back as {got:?}"
            );
            if stored.ends_with("+44 20 7946 0958") {
                assert_eq!(got, "refund to card <CARD>, call <PHONE>", "round {round}");
            }
        }
    }
    // Each result's record counts every copy: 400 cards and phones from
    // the repeated note, the cards of the others that pass the checksum
    // (one in ten), 400 addresses.
    let dir = gateway.stop();
    let counted = support::gateway::masked_counts_of_results(dir.path(), ROWS as u64, "body");
    let luhn_ok = (1..=ROWS)
        .filter(|g| g % 3 == 1)
        .filter(|g| format!("411111111111111{}", g % 10) == "4111111111111111")
        .count();
    assert_eq!(counted.len(), 2, "{counted:?}");
    for masked in &counted {
        assert_eq!(masked["card"], (ROWS / 3 + luhn_ok) as u64, "{masked}");
        assert_eq!(masked["phone"], (ROWS / 3) as u64, "{masked}");
        assert_eq!(masked["email"], (ROWS / 3) as u64, "{masked}");
    }
}

/// Values reach a client through more than rows: servers quote them in
/// errors ("invalid input syntax…", "Key (email)=(…) already exists") and
/// `pg_notify` sends them to listeners. All of them are masked.
#[test]
fn values_in_errors_and_notifications_are_masked() {
    let db = TestDb::create("mask_side");
    psql_direct(
        &db.name,
        "CREATE TABLE people (email text UNIQUE); INSERT INTO people VALUES ('jane.doe@example.org')",
    );
    let gateway = masking_gateway("", "");
    let run = |args: &[&str]| {
        let out = psql_through(&gateway.addr, AGENT, AGENT_PASSWORD, &db.name, args);
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };

    let (ok, text) = run(&["-c", "SELECT email::int FROM people"]);
    assert!(
        !ok && text.contains("invalid input syntax") && text.contains("<EMAIL>"),
        "{text}"
    );
    assert!(!text.contains("jane.doe@example.org"), "{text}");

    let (ok, text) = run(&["-c", "INSERT INTO people SELECT email FROM people"]);
    assert!(
        !ok && text.contains("already exists") && text.contains("<EMAIL>"),
        "{text}"
    );
    assert!(!text.contains("jane.doe@example.org"), "{text}");

    let (ok, text) = run(&[
        "-c",
        "LISTEN leak",
        "-c",
        "SELECT pg_notify('leak', email) FROM people",
    ]);
    assert!(
        ok && text.contains("Asynchronous notification \"leak\"") && text.contains("<EMAIL>"),
        "{text}"
    );
    assert!(!text.contains("jane.doe@example.org"), "{text}");

    // The same statements straight to the server show the value: the
    // assertions above are about Airlock, not about the server.
    let direct = Command::new("psql")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            &db.name,
            "-c",
            "SELECT email::int FROM people",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&direct.stderr).contains("jane.doe@example.org"));
}

// ---- person names -------------------------------------------------------------

/// Names in a column of their own, in free text and in a JSON document come
/// back masked to psycopg and asyncpg with the person detector on; the
/// places, brands and words beside them come back as stored.
#[test]
fn names_in_bare_columns_and_free_text_are_masked_for_drivers() {
    let db = TestDb::create("person");
    psql_direct(
        &db.name,
        "CREATE TABLE people (id int PRIMARY KEY, full_name text, note text, doc jsonb);
         INSERT INTO people VALUES
           (1, 'Maria García', 'Please ask Hans Müller to call back about Washington Street.',
            '{\"contact\": \"Łukasz Nowak\", \"city\": \"Paris\"}'),
           (2, 'SMITH, JOHN', 'Ticket closed by Dr. Kowalczyk; the Ford Focus is in bay 3.',
            '{\"assignee\": \"Jan van der Berg\", \"car\": \"Ford Focus\"}'),
           (3, 'Jean-Luc Martin', 'Mark the box as fragile. Will you send it on Monday?',
            '{\"note\": \"Kunde: Anna Kowalska\"}');",
    );
    let gateway = masking_gateway("detectors = [\"standard\", \"person\"]\n", "");
    let names = [
        "Maria",
        "García",
        "Hans",
        "Müller",
        "Łukasz",
        "Nowak",
        "SMITH",
        "JOHN",
        "Kowalczyk",
        "Jan van der Berg",
        "Jean-Luc",
        "Martin",
        "Anna",
        "Kowalska",
    ];
    let kept = [
        "Washington Street",
        "Paris",
        "Ford Focus",
        "Mark the box",
        "Will you send it on Monday?",
    ];
    for driver in [Driver::Psycopg, Driver::Asyncpg] {
        let lines = driver.read(
            Target::agent(&gateway, &db.name),
            &["select"],
            &[(
                "AIRLOCK_SQL",
                "SELECT id, full_name, note, doc FROM people ORDER BY id",
            )],
        );
        let rows: Vec<&Value> = lines.iter().filter_map(|l| l.get("row")).collect();
        assert_eq!(rows.len(), 3, "{}: {lines:?}", driver.name());
        let text: String = rows
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        for name in names {
            assert!(
                !text.contains(name),
                "{}: {name} reached the client:\n{text}",
                driver.name()
            );
        }
        for word in kept {
            assert!(
                text.contains(word),
                "{}: {word:?} was masked:\n{text}",
                driver.name()
            );
        }
        // Each bare name column is one label; JSON stays JSON.
        for row in &rows {
            assert_eq!(row[1], "<PERSON>", "{}: {row}", driver.name());
            assert!(
                row[3].get("json").is_some_and(Value::is_object),
                "{}: {row}",
                driver.name()
            );
        }
        assert!(text.contains("Please ask <PERSON> to call back"), "{text}");
        assert!(text.contains("Kunde: <PERSON>"), "{text}");
    }
}

/// Values written in characters that stand for ASCII — stored that way
/// (Japanese fullwidth input, Arabic or Persian digits) or turned into
/// them by the agent's own query (`translate(card, '0123…', '０１２３…')`)
/// — are masked as the values they spell, under every strategy.
/// A column of national numbers (no country code, so no one cell is a
/// phone number by itself) is remembered as a phone column however the
/// query writes its digits.
#[test]
fn a_column_of_national_numbers_rewritten_into_other_digits_is_masked() {
    let db = TestDb::create("mask_fold_column");
    psql_direct(
        &db.name,
        "CREATE TABLE phones (id int, phone text); \
         INSERT INTO phones VALUES (1, '030 1234567'), (2, '089 4711223'), \
           (3, '040 3089611'), (4, '0221 9876543')",
    );
    let gateway = masking_gateway("", "");
    let target = Target::agent(&gateway, &db.name);
    for sql in [
        "SELECT phone FROM phones ORDER BY id",
        "SELECT translate(phone, '0123456789 ', '０１２３４５６７８９　') FROM phones ORDER BY id",
        "SELECT translate(phone, '0123456789', '٠١٢٣٤٥٦٧٨٩') FROM phones ORDER BY id",
        "SELECT replace(phone, ' ', chr(160)) FROM phones ORDER BY id",
    ] {
        let got: Vec<String> = psql_rows(target, sql)
            .into_iter()
            .map(|row| row.into_iter().flatten().collect())
            .collect();
        assert_eq!(got.len(), 4, "{sql}");
        // The first cell comes before the column is known.
        for cell in &got[1..] {
            assert_eq!(cell, "<PHONE>", "{sql}: {got:?}");
        }
    }
}

#[test]
fn addresses_respelled_in_look_alike_letters_and_invisible_characters_are_masked() {
    let db = TestDb::create("mask_look_alike");
    psql_direct(
        &db.name,
        "CREATE TABLE people (id int, email text); \
         INSERT INTO people VALUES (1, 'ace@co.co'), (2, 'jane.doe@example.com')",
    );
    let gateway = masking_gateway("", "");
    let target = Target::agent(&gateway, &db.name);
    // Every letter with a Cyrillic look-alike replaced by it, so that
    // `ace@co.co` has no ASCII letter left; then a zero-width space or a
    // combining accent after every character, or `@` and `.` in their
    // fullwidth forms.
    let cyrillic = "translate(email, 'aceopxy', 'асеорху')";
    for sql in [
        format!("SELECT {cyrillic} FROM people ORDER BY id"),
        format!("SELECT regexp_replace({cyrillic}, '(.)', '\\1' || chr(8203), 'g') FROM people ORDER BY id"),
        format!("SELECT regexp_replace({cyrillic}, '(.)', '\\1' || chr(769), 'g') FROM people ORDER BY id"),
        "SELECT regexp_replace(email, '(.)', '\\1' || chr(769), 'g') FROM people ORDER BY id".to_string(),
        format!("SELECT translate({cyrillic}, '@.', '＠．') FROM people ORDER BY id"),
        // Spelled out a character at a time.
        "SELECT regexp_replace(email, '(.)', '\\1 ', 'g') FROM people ORDER BY id".to_string(),
        "SELECT regexp_replace(email, '(.)', '\\1, ', 'g') FROM people ORDER BY id".to_string(),
        format!("SELECT regexp_replace({cyrillic}, '(.)', '\\1-', 'g') FROM people ORDER BY id"),
        // Separators of two bytes and more, outside ASCII, and varying.
        format!("SELECT regexp_replace({cyrillic}, '(.)', '\\1, ', 'g') FROM people ORDER BY id"),
        "SELECT array_to_string(regexp_split_to_array(email, ''), ' . ') FROM people ORDER BY id"
            .to_string(),
        "SELECT regexp_replace(email, '(.)', '\\1' || chr(183), 'g') FROM people ORDER BY id"
            .to_string(),
        "SELECT regexp_replace(email, '(.)', '\\1 ' || chr(8594) || ' ', 'g') FROM people ORDER BY id"
            .to_string(),
        "SELECT (SELECT string_agg(c || substr('-_+', (n % 3)::int + 1, 1), '' ORDER BY n) \
           FROM regexp_split_to_table(email, '') WITH ORDINALITY AS t(c, n)) FROM people ORDER BY id"
            .to_string(),
        // `at` and `dot` written out, and the address written backwards.
        "SELECT replace(replace(email, '@', ' at '), '.', ' dot ') FROM people ORDER BY id".to_string(),
        "SELECT replace(replace(email, '@', '[at]'), '.', '(dot)') FROM people ORDER BY id".to_string(),
        "SELECT upper(replace(email, '@', ' at ')) FROM people ORDER BY id".to_string(),
        "SELECT reverse(email) FROM people ORDER BY id".to_string(),
    ] {
        let got: Vec<String> = psql_rows(target, &sql)
            .into_iter()
            .map(|row| row.into_iter().flatten().collect())
            .collect();
        assert_eq!(got.len(), 2, "{sql}");
        for cell in &got {
            // What is left of the spelling after the value: invisible
            // characters and the last separator.
            let shown: String = cell.chars().filter(|c| !matches!(c, '\u{200B}' | '\u{301}')).collect();
            let shown = shown.trim_end_matches([' ', ',', '-', '_', '+', '·', '→']);
            assert_eq!(shown, "<EMAIL>", "{sql}: {got:?}");
        }
    }
}

#[test]
fn values_written_in_other_digits_and_fullwidth_forms_are_masked() {
    const CARD: &str = "4111 1111 1111 1111";
    let db = TestDb::create("mask_fold");
    psql_direct(
        &db.name,
        "CREATE TABLE contacts (id int, note text); \
         INSERT INTO contacts VALUES \
           (1, 'カード ４１１１　１１１１　１１１１　１１１１'), \
           (2, 'メール ｊａｎｅ．ｄｏｅ＠ｍａｉｌ．ｅｘａｍｐｌｅ．ｃｏ．ｕｋ'), \
           (3, 'هاتف +٩٦٦ ٥٠ ١٢٣ ٤٥٦٧'), \
           (4, 'کارت ۴۱۱۱ ۱۱۱۱ ۱۱۱۱ ۱۱۱۱'), \
           (5, 'tél. +33\u{202F}1\u{202F}42\u{202F}68\u{202F}53\u{202F}00'), \
           (6, '4111 1111 1111 1111')",
    );
    let fullwidth_digits = "'0123456789', '０１２３４５６７８９'";
    let arabic_digits = "'0123456789', '٠١٢٣٤٥٦٧٨٩'";
    let stored = psql_rows(
        Target::direct(&db.name),
        "SELECT note FROM contacts ORDER BY id",
    );
    let originals: Vec<String> = stored.into_iter().flatten().flatten().collect();
    assert_eq!(originals.len(), 6);
    let mut problems = Vec::new();
    for strategy in ["redact", "partial", "token"] {
        let gateway = masking_gateway(&format!("{ALL_DETECTORS}strategy = \"{strategy}\"\n"), "");
        let target = Target::agent(&gateway, &db.name);
        for sql in [
            "SELECT note FROM contacts ORDER BY id".to_string(),
            format!("SELECT translate(note, {fullwidth_digits}) FROM contacts WHERE id = 6"),
            format!("SELECT translate(note, {arabic_digits}) FROM contacts WHERE id = 6"),
            // A zero-width space after every digit.
            "SELECT regexp_replace(note, '([0-9])', '\\1' || chr(8203), 'g') FROM contacts WHERE id = 6"
                .to_string(),
        ] {
            for row in psql_rows(target, &sql) {
                let got = untoken(&row.into_iter().flatten().collect::<String>());
                let kept: Vec<&String> = originals
                    .iter()
                    .filter(|o| {
                        let value = o.split_once([' ', '+']).map_or(o.as_str(), |(_, v)| v);
                        got.contains(value)
                    })
                    .collect();
                // Partial keeps a card's or a number's last four digits.
                let digits_kept = got.chars().filter(|c| c.is_numeric()).count();
                let labelled = got.contains('<') || got.contains('*');
                if !kept.is_empty() || got.contains(CARD) || digits_kept > 4 || !labelled {
                    problems.push(format!("{strategy}: {sql}: {got:?}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

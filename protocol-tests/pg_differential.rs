//! The differential suite: every case of the corpus runs directly against
//! PostgreSQL and through Airlock, and the backend message streams must be
//! byte-for-byte identical. `DIFF_CASES=a,b` runs only matching cases.

mod support;

use support::differential::{corpus, run_cases, Endpoint};
use support::gateway::{
    Gateway, Options, TestDb, AGENT, AGENT_PASSWORD, ALLOW_ALL_POLICY, UPSTREAM_ADDR,
};

/// Cases where Airlock differs from the server on purpose; `pg_gateway.rs`
/// asserts the refusals themselves.
const REFUSED_BY_DESIGN: &[&str] = &[
    // Fastpath FunctionCall messages are refused (42501).
    "ext_function_call",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_and_through_airlock_are_identical() {
    let db = TestDb::create("diff");
    // The relay itself must be transparent; what masking changes (the
    // corpus has addresses in inet columns) is tested in pg_masking.
    let gateway = Gateway::start_with(Options {
        policy: Some(format!("{ALLOW_ALL_POLICY}\n[masking]\nenabled = false\n")),
        ..Options::default()
    });
    let direct = Endpoint::new(UPSTREAM_ADDR, "postgres", "", &db.name);
    let through = Endpoint::new(&gateway.addr, AGENT, AGENT_PASSWORD, &db.name);
    let cases = corpus()
        .into_iter()
        .filter(|c| !REFUSED_BY_DESIGN.contains(&c.name.as_str()))
        .collect();
    run_cases(&direct, &through, cases).await;
}

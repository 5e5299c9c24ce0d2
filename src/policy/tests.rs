//! Tests of the contract in the module docs, the error messages, and the
//! shipped default policy. Classifications are built by hand so that these
//! tests do not depend on the classifier.

use super::*;
use crate::mask::{Detectors, Kind, Strategy};
use crate::sql::Statement;
use StatementClass::*;

fn stmt(classes: &[StatementClass], objects: &[&str], functions: &[&str]) -> Statement {
    Statement {
        text: "SELECT 1".into(),
        classes: Classes::of(classes),
        objects: objects.iter().map(|s| s.to_string()).collect(),
        schemas: Vec::new(),
        functions: functions.iter().map(|s| s.to_string()).collect(),
        notes: Vec::new(),
        prepares: None,
        executes: None,
        transformed: Vec::new(),
        sample_from: Vec::new(),
        outputs: Vec::new(),
    }
}

fn query(statements: Vec<Statement>) -> Classification {
    Classification { statements }
}

fn policy(text: &str) -> Policy {
    Policy::from_sources(&[("10-test.toml".into(), text.into())]).unwrap_or_else(|e| panic!("{e}"))
}

/// Evaluates for agent `bot` on database `app`.
fn eval(policy: &Policy, q: &Classification) -> Decision {
    eval_as(policy, "bot", Role::Agent, "app", q)
}

fn eval_as(policy: &Policy, identity: &str, role: Role, db: &str, q: &Classification) -> Decision {
    policy.evaluate(&Request {
        identity,
        role,
        database: db,
        classification: q,
        masked_columns: crate::policy::MaskedColumns::Unknown,
    })
}

fn error(text: &str) -> PolicyError {
    Policy::from_sources(&[("10-test.toml".into(), text.into())]).unwrap_err()
}

fn deny(reason: &str) -> Action {
    Action::Deny {
        reason: reason.into(),
    }
}

const DENY_REST: &str = r#"
[[rule]]
name = "rest"
action = "deny"
reason = "rest"
"#;

// ---- evaluation ---------------------------------------------------------

#[test]
fn first_matching_rule_wins_within_a_file() {
    let p = policy(
        r#"
[[rule]]
name = "first"
classes = ["read"]
action = "allow"

[[rule]]
name = "second"
classes = ["read"]
action = "deny"
reason = "never reached"
"#,
    );
    let d = eval(&p, &query(vec![stmt(&[Read], &[], &[])]));
    assert_eq!((d.action, d.rule.as_str()), (Action::Allow, "first"));
}

#[test]
fn files_are_read_in_name_order_whatever_order_they_are_given_in() {
    let allow = "[[rule]]\nname = \"a\"\naction = \"allow\"\n";
    let refuse = "[[rule]]\nname = \"d\"\naction = \"deny\"\nreason = \"no\"\n";
    let p = Policy::from_sources(&[
        ("20-allow.toml".into(), allow.into()),
        ("10-deny.toml".into(), refuse.into()),
    ])
    .unwrap();
    let d = eval(&p, &query(vec![stmt(&[Read], &[], &[])]));
    assert_eq!((d.action, d.rule.as_str()), (deny("no"), "d"));
    let names: Vec<_> = p.rules().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["d", "a"]);
    assert_eq!(p.rules()[1].file, "20-allow.toml");
}

#[test]
fn each_class_is_decided_by_its_own_first_rule() {
    let p = policy(
        r#"
[[rule]]
name = "writes-wait"
classes = ["write"]
action = "hold"

[[rule]]
name = "reads-run"
classes = ["read"]
action = "allow"
"#,
    );
    // A data-modifying CTE: read + write.
    let d = eval(&p, &query(vec![stmt(&[Read, Write], &["t"], &[])]));
    assert_eq!(d.rule, "writes-wait");
    assert_eq!((d.statement, d.class), (Some(0), Some(Write)));
    assert!(matches!(d.action, Action::Hold(_)));
    let trace: Vec<_> = d
        .trace
        .iter()
        .map(|c| (c.statement, c.class, c.rule.as_str(), c.action.name()))
        .collect();
    assert_eq!(
        trace,
        [
            (0, Read, "reads-run", "allow"),
            (0, Write, "writes-wait", "hold")
        ]
    );
}

#[test]
fn the_strictest_verdict_wins_over_classes_and_statements() {
    let p = policy(
        r#"
[[rule]]
name = "allow-read"
classes = ["read"]
action = "allow"

[[rule]]
name = "hold-ddl"
classes = ["ddl"]
action = "hold"

[[rule]]
name = "deny-admin"
classes = ["admin"]
action = "deny"
reason = "admin"
"#,
    );
    let d = eval(&p, &query(vec![stmt(&[Read, Ddl], &[], &[])]));
    assert_eq!(d.rule, "hold-ddl");
    let d = eval(
        &p,
        &query(vec![
            stmt(&[Read], &[], &[]),
            stmt(&[Admin], &[], &[]),
            stmt(&[Ddl], &[], &[]),
        ]),
    );
    assert_eq!((d.rule.as_str(), d.statement), ("deny-admin", Some(1)));
    assert_eq!(d.action, deny("admin"));
    assert_eq!(d.trace.len(), 3);
    // All allowed: the first statement's rule is named.
    let d = eval(
        &p,
        &query(vec![stmt(&[Read], &[], &[]), stmt(&[Read], &[], &[])]),
    );
    assert_eq!(
        (d.action, d.rule.as_str(), d.statement, d.class),
        (Action::Allow, "allow-read", Some(0), Some(Read))
    );
}

#[test]
fn among_equally_strict_verdicts_the_first_found_wins() {
    let p = policy(
        r#"
[[rule]]
name = "hold-ddl"
classes = ["ddl"]
action = "hold"
group = "schema-owners"

[[rule]]
name = "hold-privilege"
classes = ["privilege"]
action = "hold"
group = "security"
quorum = 2

[[rule]]
name = "deny-export"
classes = ["export"]
action = "deny"
reason = "export"

[[rule]]
name = "deny-admin"
classes = ["admin"]
action = "deny"
reason = "admin"
"#,
    );
    let d = eval(
        &p,
        &query(vec![stmt(&[Privilege], &[], &[]), stmt(&[Ddl], &[], &[])]),
    );
    assert_eq!(d.rule, "hold-privilege");
    match d.action {
        Action::Hold(h) => assert_eq!((h.group.as_str(), h.quorum), ("security", 2)),
        other => panic!("{other:?}"),
    }
    // Within one statement, class order: export before admin.
    let d = eval(&p, &query(vec![stmt(&[Export, Admin], &[], &[])]));
    assert_eq!((d.rule.as_str(), d.class), ("deny-export", Some(Export)));
}

#[test]
fn allow_rules_need_every_object_to_match() {
    let p = policy(&format!(
        r#"
[[rule]]
name = "reporting"
objects = ["reporting.*"]
action = "allow"
{DENY_REST}"#
    ));
    let run = |objects: &[&str]| eval(&p, &query(vec![stmt(&[Read], objects, &[])])).rule;
    assert_eq!(run(&["reporting.daily"]), "reporting");
    assert_eq!(run(&["reporting.daily", "REPORTING.Weekly"]), "reporting");
    assert_eq!(run(&["reporting.daily", "hr.salaries"]), "rest");
    assert_eq!(run(&["daily"]), "rest");
    // No objects at all: an allow "only on reporting.*" says nothing about it.
    assert_eq!(run(&[]), "rest");
}

#[test]
fn deny_and_hold_rules_need_any_object_to_match() {
    let p = policy(
        r#"
[[rule]]
name = "no-hr"
objects = ["hr.*"]
action = "deny"
reason = "hr"

[[rule]]
name = "audit-waits"
objects = ["audit_log"]
action = "hold"

[[rule]]
name = "rest"
action = "allow"
"#,
    );
    let run = |objects: &[&str]| eval(&p, &query(vec![stmt(&[Read], objects, &[])])).rule;
    assert_eq!(run(&["reporting.daily", "hr.salaries"]), "no-hr");
    assert_eq!(run(&["hr.salaries"]), "no-hr");
    assert_eq!(run(&["reporting.daily"]), "rest");
    assert_eq!(run(&[]), "rest");
    // A pattern without a dot matches qualified names by their last part…
    assert_eq!(run(&["public.audit_log", "x"]), "audit-waits");
    // …and one with a dot needs the qualifier.
    assert_eq!(run(&["salaries"]), "rest");
}

#[test]
fn function_lists_follow_the_same_reading() {
    let p = policy(
        r#"
[[rule]]
name = "no-sleep"
functions = ["pg_sleep*"]
action = "deny"
reason = "sleep"

[[rule]]
name = "string-functions"
functions = ["lower", "upper"]
action = "allow"

[[rule]]
name = "rest"
action = "hold"
"#,
    );
    let run = |functions: &[&str]| eval(&p, &query(vec![stmt(&[Read], &[], functions)])).rule;
    assert_eq!(run(&["lower", "pg_catalog.pg_sleep"]), "no-sleep");
    assert_eq!(run(&["PG_SLEEP_FOR"]), "no-sleep");
    assert_eq!(run(&["lower", "upper"]), "string-functions");
    assert_eq!(run(&["lower", "now"]), "rest");
    assert_eq!(run(&[]), "rest");
}

#[test]
fn objects_and_functions_must_both_hold() {
    let p = policy(&format!(
        r#"
[[rule]]
name = "both"
objects = ["t"]
functions = ["f"]
action = "allow"
{DENY_REST}"#
    ));
    let run = |o: &[&str], f: &[&str]| eval(&p, &query(vec![stmt(&[Read], o, f)])).rule;
    assert_eq!(run(&["t"], &["f"]), "both");
    assert_eq!(run(&["t"], &[]), "rest");
    assert_eq!(run(&[], &["f"]), "rest");
}

#[test]
fn identities_roles_and_databases_narrow_a_rule() {
    let p = policy(&format!(
        r#"
[[rule]]
name = "reporting-agents"
identities = ["reporting-*", "nightly-job"]
action = "allow"

[[rule]]
name = "admins"
roles = ["admin", "approver"]
action = "allow"

[[rule]]
name = "staging"
databases = ["staging*", "dev_?"]
action = "allow"
{DENY_REST}"#
    ));
    let q = query(vec![stmt(&[Write], &[], &[])]);
    let run = |id: &str, role: Role, db: &str| eval_as(&p, id, role, db, &q).rule;
    assert_eq!(run("reporting-eu", Role::Agent, "prod"), "reporting-agents");
    assert_eq!(run("Reporting-EU", Role::Agent, "prod"), "reporting-agents");
    assert_eq!(run("nightly-job", Role::Agent, "prod"), "reporting-agents");
    assert_eq!(run("reporting", Role::Agent, "prod"), "rest");
    assert_eq!(run("ops", Role::Admin, "prod"), "admins");
    assert_eq!(run("ops", Role::Approver, "prod"), "admins");
    assert_eq!(run("ops", Role::Auditor, "prod"), "rest");
    assert_eq!(run("bot", Role::Agent, "STAGING_2"), "staging");
    assert_eq!(run("bot", Role::Agent, "dev_1"), "staging");
    assert_eq!(run("bot", Role::Agent, "dev_12"), "rest");
    assert_eq!(run("bot", Role::Agent, "prod"), "rest");
}

#[test]
fn a_class_no_rule_matches_is_denied() {
    let p = policy("[[rule]]\nname = \"reads\"\nclasses = [\"read\"]\naction = \"allow\"\n");
    let d = eval(&p, &query(vec![stmt(&[Read, Admin], &[], &[])]));
    assert_eq!(d.action, deny("no policy rule matches class admin"));
    assert_eq!(
        (d.rule.as_str(), d.statement, d.class),
        (NO_RULE, Some(0), Some(Admin))
    );
    assert_eq!(d.trace[1].rule, NO_RULE);
    // Conditions count too: a rule for another identity is no rule.
    let p = policy("[[rule]]\nname = \"x\"\nidentities = [\"x\"]\naction = \"allow\"\n");
    let d = eval(&p, &query(vec![stmt(&[Read], &[], &[])]));
    assert_eq!(d.action, deny("no policy rule matches class read"));
}

#[test]
fn an_empty_query_is_allowed_without_a_rule() {
    let p = policy(DENY_REST);
    let d = eval(&p, &query(vec![]));
    assert_eq!(
        d,
        Decision {
            action: Action::Allow,
            rule: NO_RULE.into(),
            statement: None,
            class: None,
            trace: vec![],
        }
    );
}

#[test]
fn a_statement_without_classes_is_decided_as_unknown() {
    let p = policy("[[rule]]\nname = \"reads\"\nclasses = [\"read\"]\naction = \"allow\"\n");
    let d = eval(&p, &query(vec![stmt(&[], &[], &[])]));
    assert_eq!(d.class, Some(Unknown));
    assert_eq!(d.action, deny("no policy rule matches class unknown"));
}

#[test]
fn hold_defaults_and_values() {
    let p = policy(
        r#"
[[rule]]
name = "defaults"
classes = ["ddl"]
action = "hold"

[[rule]]
name = "explicit"
classes = ["export"]
action = "hold"
group = "security"
quorum = 3
expiry = "90s"
mode = "defer"
"#,
    );
    let hold = |class| match eval(&p, &query(vec![stmt(&[class], &[], &[])])).action {
        Action::Hold(h) => h,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        hold(Ddl),
        HoldSpec {
            group: "dba".into(),
            quorum: 1,
            expiry: Duration::from_secs(3600),
            mode: HoldMode::Wait,
            dry_run: false,
        }
    );
    assert_eq!(
        hold(Export),
        HoldSpec {
            group: "security".into(),
            quorum: 3,
            expiry: Duration::from_secs(90),
            mode: HoldMode::Defer,
            dry_run: false,
        }
    );
}

#[test]
fn expiry_text() {
    for (text, secs) in [("90s", 90), ("30m", 1800), ("1h", 3600), ("2d", 172_800)] {
        assert_eq!(
            parse_expiry(text),
            Some(Duration::from_secs(secs)),
            "{text}"
        );
        assert_eq!(format_expiry(Duration::from_secs(secs)), text);
    }
    for bad in [
        "",
        "h",
        "0s",
        "1",
        "1x",
        "-1h",
        "1.5h",
        " 1h",
        "1H",
        "99999999999999999999d",
    ] {
        assert_eq!(parse_expiry(bad), None, "{bad}");
    }
    assert_eq!(format_expiry(Duration::from_secs(7200)), "2h");
    assert_eq!(format_expiry(Duration::from_secs(61)), "61s");
}

// ---- errors --------------------------------------------------------------

/// Asserts the whole message and that `line` is recorded.
fn assert_error(text: &str, line: usize, expected: &str) {
    let e = error(text);
    assert_eq!(e.file, "10-test.toml");
    assert_eq!(e.line, Some(line), "{e}");
    assert_eq!(e.to_string(), expected);
}

#[test]
fn toml_syntax_errors_name_the_line() {
    let e = error("# a policy\n[[rule]]\nname = \"x\"\naction = \n");
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.to_string().starts_with("10-test.toml: line 4: "), "{e}");
    assert!(!e.problem.contains('\n'), "{e}");
    let e = error("[[rule]\n");
    assert_eq!(e.line, Some(1), "{e}");
}

#[test]
fn unknown_keys_are_refused_with_the_rule_they_are_in() {
    let e = error("[[rule]]\nname = \"a\"\naction = \"allow\"\n\n[[rule]]\nname = \"b\"\ncolour = \"red\"\naction = \"allow\"\n");
    assert_eq!((e.line, e.rule.as_deref()), (Some(7), Some("b")), "{e}");
    assert!(
        e.to_string().starts_with(
            "10-test.toml: line 7: rule \"b\": unknown field `colour`, expected one of"
        ),
        "{e}"
    );
    assert_error(
        "# one rule\n[rule]\nname = \"a\"\naction = \"allow\"\n",
        2,
        "10-test.toml: line 2: write each rule as [[rule]] (double brackets), not [rule]",
    );
    let e = error("rules = []\n");
    assert_eq!((e.line, e.rule.as_deref()), (Some(1), None));
    assert!(e.problem.starts_with("unknown field `rules`"), "{e}");
}

#[test]
fn wrong_types_name_the_line() {
    let e = error("[[rule]]\nname = \"a\"\nclasses = \"read\"\naction = \"allow\"\n");
    assert_eq!((e.line, e.rule.as_deref()), (Some(3), Some("a")), "{e}");
    assert!(e.problem.contains("expected a sequence"), "{e}");
    let e = error("[[rule]]\nname = \"a\"\naction = \"hold\"\nquorum = \"two\"\n");
    assert_eq!(e.line, Some(4), "{e}");
}

#[test]
fn unknown_class_role_action_and_mode() {
    assert_error(
        "[[rule]]\nname = \"x\"\nclasses = [\"read\",\n  \"reed\"]\naction = \"allow\"\n",
        4,
        "10-test.toml: line 4: rule \"x\": unknown class \"reed\" (expected one of read, write, \
         export, ddl, privilege, admin, session, unknown)",
    );
    assert_error(
        "[[rule]]\nname = \"x\"\nroles = [\"boss\"]\naction = \"allow\"\n",
        3,
        "10-test.toml: line 3: rule \"x\": unknown role \"boss\" (expected one of agent, \
         approver, auditor, admin)",
    );
    assert_error(
        "[[rule]]\nname = \"x\"\naction = \"permit\"\n",
        3,
        "10-test.toml: line 3: rule \"x\": unknown action \"permit\" (expected one of allow, \
         hold, deny)",
    );
    assert_error(
        "[[rule]]\nname = \"x\"\naction = \"hold\"\nmode = \"later\"\n",
        4,
        "10-test.toml: line 4: rule \"x\": unknown mode \"later\" (expected one of wait, defer)",
    );
}

#[test]
fn missing_or_empty_name_and_missing_action() {
    assert_error(
        "\n[[rule]]\naction = \"allow\"\n",
        2,
        "10-test.toml: line 2: rule has no name: add name = \"…\"",
    );
    assert_error(
        "[[rule]]\nname = \" \"\naction = \"allow\"\n",
        2,
        "10-test.toml: line 2: rule name is empty",
    );
    assert_error(
        "[[rule]]\nname = \"x\"\nclasses = [\"read\"]\n",
        1,
        "10-test.toml: line 1: rule \"x\": rule has no action (expected one of allow, hold, deny)",
    );
}

#[test]
fn bad_expiry_and_quorum() {
    for bad in ["1x", "0s", "", "1.5h"] {
        assert_error(
            &format!("[[rule]]\nname = \"x\"\naction = \"hold\"\nexpiry = \"{bad}\"\n"),
            4,
            &format!(
                "10-test.toml: line 4: rule \"x\": bad expiry \"{bad}\" (expected a positive \
                 number and a unit s, m, h or d, such as \"90s\", \"30m\", \"1h\", \"2d\")"
            ),
        );
    }
    for zero in ["0", "-1"] {
        assert_error(
            &format!("[[rule]]\nname = \"x\"\naction = \"hold\"\nquorum = {zero}\n"),
            4,
            "10-test.toml: line 4: rule \"x\": quorum must be at least 1",
        );
    }
    assert_error(
        "[[rule]]\nname = \"x\"\naction = \"hold\"\nquorum = 5000000000\n",
        4,
        "10-test.toml: line 4: rule \"x\": quorum 5000000000 is too large",
    );
    assert_error(
        "[[rule]]\nname = \"x\"\naction = \"hold\"\ngroup = \"\"\n",
        4,
        "10-test.toml: line 4: rule \"x\": group is empty",
    );
}

#[test]
fn deny_needs_a_reason() {
    assert_error(
        "[[rule]]\nname = \"x\"\naction = \"deny\"\n",
        3,
        "10-test.toml: line 3: rule \"x\": a deny rule needs a reason (it is shown to the agent)",
    );
    assert_error(
        "[[rule]]\nname = \"x\"\naction = \"deny\"\nreason = \"\"\n",
        4,
        "10-test.toml: line 4: rule \"x\": reason is empty",
    );
}

#[test]
fn keys_of_other_actions_are_refused() {
    assert_error(
        "[[rule]]\nname = \"x\"\naction = \"allow\"\nquorum = 2\n",
        4,
        "10-test.toml: line 4: rule \"x\": quorum applies only to hold rules, and this rule is allow",
    );
    for key in ["group = \"dba\"", "expiry = \"1h\"", "mode = \"wait\""] {
        let e = error(&format!(
            "[[rule]]\nname = \"x\"\naction = \"deny\"\nreason = \"r\"\n{key}\n"
        ));
        assert_eq!(e.line, Some(5), "{e}");
        assert!(
            e.problem
                .ends_with("applies only to hold rules, and this rule is deny"),
            "{e}"
        );
    }
    assert_error(
        "[[rule]]\nname = \"x\"\naction = \"hold\"\nreason = \"r\"\n",
        4,
        "10-test.toml: line 4: rule \"x\": reason applies only to deny rules, and this rule is hold",
    );
    assert_error(
        "[[rule]]\nname = \"x\"\naction = \"allow\"\nreason = \"r\"\n",
        4,
        "10-test.toml: line 4: rule \"x\": reason applies only to deny rules, and this rule is allow",
    );
}

#[test]
fn empty_patterns_and_empty_lists_are_refused() {
    for key in ["identities", "databases", "objects", "functions"] {
        assert_error(
            &format!("[[rule]]\nname = \"x\"\n{key} = [\"a\", \"\"]\naction = \"allow\"\n"),
            3,
            &format!("10-test.toml: line 3: rule \"x\": empty pattern in {key}"),
        );
    }
    for key in [
        "classes",
        "identities",
        "roles",
        "databases",
        "objects",
        "functions",
    ] {
        assert_error(
            &format!("[[rule]]\nname = \"x\"\naction = \"allow\"\n{key} = []\n"),
            4,
            &format!(
                "10-test.toml: line 4: rule \"x\": {key} is an empty list, which matches \
                 nothing; remove the key to match any"
            ),
        );
    }
}

#[test]
fn rule_names_are_unique_across_files() {
    let rule = "[[rule]]\nname = \"same\"\naction = \"allow\"\n";
    let e = Policy::from_sources(&[
        ("20-b.toml".into(), format!("\n\n{rule}")),
        ("10-a.toml".into(), rule.into()),
    ])
    .unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("20-b.toml", Some(3)));
    assert_eq!(
        e.to_string(),
        "20-b.toml: line 3: rule \"same\": a rule with this name is already defined at \
         10-a.toml line 1; rule names must be unique across files"
    );
    let e = error(&format!("{rule}{rule}"));
    assert_eq!(e.line, Some(4), "{e}");
}

#[test]
fn no_sources_is_an_error() {
    assert_eq!(
        Policy::from_sources(&[]).unwrap_err().to_string(),
        "policy: no policy files"
    );
}

// ---- loading a folder ----------------------------------------------------

#[test]
fn load_dir_reads_toml_files_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "20-allow.toml",
        "[[rule]]\nname = \"a\"\naction = \"allow\"\n",
    );
    write(
        "10-hold.toml",
        "[[rule]]\nname = \"h\"\nclasses = [\"ddl\"]\naction = \"hold\"\n",
    );
    write("README.md", "not a policy");
    write("30-old.toml.bak", "not toml");
    std::fs::create_dir(dir.path().join("sub.toml")).unwrap();
    let p = Policy::load_dir(dir.path()).unwrap();
    let names: Vec<_> = p.rules().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["h", "a"]);
    let files: Vec<_> = p.sources().iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(files, ["10-hold.toml", "20-allow.toml"]);
    // The digest depends on names and texts only, not on the folder.
    let same = Policy::from_sources(p.sources()).unwrap();
    assert_eq!(p.digest(), same.digest());
}

#[test]
fn load_dir_errors_name_the_folder_or_the_file_path() {
    let dir = tempfile::tempdir().unwrap();
    let e = Policy::load_dir(dir.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: no *.toml policy files in this folder",
            dir.path().display()
        )
    );
    let missing = dir.path().join("nope");
    let e = Policy::load_dir(&missing).unwrap_err();
    assert_eq!(e.file, missing.display().to_string());
    assert!(
        e.problem.starts_with("cannot read the policy folder: "),
        "{e}"
    );

    std::fs::write(
        dir.path().join("10-team.toml"),
        "[[rule]]\nname = \"x\"\nclasses = [\"reed\"]\naction = \"allow\"\n",
    )
    .unwrap();
    let e = Policy::load_dir(dir.path()).unwrap_err();
    assert_eq!(
        e.file,
        dir.path().join("10-team.toml").display().to_string()
    );
    assert!(
        e.to_string().starts_with(&format!(
            "{}: line 3: rule \"x\": unknown class \"reed\"",
            dir.path().join("10-team.toml").display()
        )),
        "{e}"
    );
}

// ---- digest ---------------------------------------------------------------

#[test]
fn digest_is_stable_and_covers_names_and_texts() {
    let text = "[[rule]]\nname = \"a\"\naction = \"allow\"\n";
    let p = policy(text);
    // Pinned: audit logs written by earlier versions must stay comparable.
    // Computed independently: sha256(be64(12) "10-test.toml" be64(36) text).
    assert_eq!(
        p.digest(),
        "b38a45b0ec5616286750d8891f3b966e820896037142ff5d275be3dab45a542a"
    );
    assert_eq!(p.digest().len(), 64);
    assert_eq!(policy(text).digest(), p.digest());
    let renamed = Policy::from_sources(&[("11-test.toml".into(), text.into())]).unwrap();
    assert_ne!(renamed.digest(), p.digest());
    let edited = policy(&format!("# comment\n{text}"));
    assert_ne!(edited.digest(), p.digest());
    // Lengths are framed: moving bytes between name and text changes it.
    let a = Policy::from_sources(&[("x.toml".into(), format!("#a\n{text}"))]).unwrap();
    let b = Policy::from_sources(&[("x.toml#a".into(), format!("\n{text}"))]).unwrap();
    assert_ne!(a.digest(), b.digest());
}

// ---- the default policy --------------------------------------------------

#[test]
fn default_policy_verdicts_for_each_class() {
    let p = Policy::builtin_default();
    let dba = Action::Hold(HoldSpec {
        group: "dba".into(),
        quorum: 1,
        expiry: Duration::from_secs(3600),
        mode: HoldMode::Wait,
        dry_run: false,
    });
    for (class, expected) in [
        (Read, Action::Allow),
        (Write, Action::Allow),
        (Session, Action::Allow),
        (Export, dba.clone()),
        (Ddl, dba.clone()),
        (Privilege, dba.clone()),
        (Unknown, dba.clone()),
    ] {
        let d = eval(&p, &query(vec![stmt(&[class], &["public.t"], &[])]));
        assert_eq!(d.action, expected, "{class}");
    }
    let d = eval(&p, &query(vec![stmt(&[Admin], &[], &[])]));
    assert_eq!(d.rule, "deny-admin");
    match d.action {
        Action::Deny { reason } => assert!(reason.contains("operate the database server")),
        other => panic!("{other:?}"),
    }
    // Other roles get the same policy: it names no identities.
    let d = eval_as(
        &p,
        "x",
        Role::Admin,
        "prod",
        &query(vec![stmt(&[Ddl], &[], &[])]),
    );
    assert_eq!(d.action, dba);
}

#[test]
fn builtin_default_is_the_shipped_file() {
    let p = Policy::builtin_default();
    assert_eq!(p.sources()[0].0, "default.toml");
    let on_disk =
        Policy::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap();
    assert_eq!(on_disk.digest(), p.digest());
}

/// The commented-out examples in default.toml must work when uncommented.
#[test]
fn default_policy_examples_work_when_uncommented() {
    let text: String = DEFAULT_POLICY
        .lines()
        .map(|line| {
            let rest = line.strip_prefix("# ").unwrap_or(line);
            let is_toml = rest == "[[rule]]"
                || rest
                    .split_once(" = ")
                    .is_some_and(|(k, _)| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            if line.starts_with("# ") && is_toml {
                rest
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let p = Policy::from_sources(&[("default.toml".into(), text)]).unwrap();
    assert_eq!(p.rules().len(), Policy::builtin_default().rules().len() + 3);
    let read = |objects: &[&str]| query(vec![stmt(&[Read], objects, &[])]);
    let run = |id: &str, q: &Classification| eval_as(&p, id, Role::Agent, "app", q).rule;
    assert_eq!(
        run("reporting-eu", &read(&["reporting.daily"])),
        "reporting-agents-read-reporting"
    );
    assert_eq!(
        run("reporting-eu", &read(&["reporting.daily", "public.users"])),
        "reporting-agents-nothing-else"
    );
    assert_eq!(run("reporting-eu", &read(&["hr.salaries"])), "no-hr-data");
    assert_eq!(
        run("other", &read(&["public.users"])),
        "allow-read-write-session"
    );
    assert_eq!(run("other", &read(&["hr.salaries"])), "no-hr-data");
    assert_eq!(run("other", &read(&["salaries"])), "no-hr-data");
    let ddl = query(vec![stmt(&[Ddl], &["hr.salaries"], &[])]);
    assert_eq!(run("other", &ddl), "no-hr-data");
}

// ---- explain ---------------------------------------------------------------

fn explained() -> (Classification, Decision) {
    let p = Policy::builtin_default();
    let mut first = stmt(&[Read], &["public.users"], &["lower"]);
    first.text = "SELECT lower(name) FROM public.users".into();
    let mut second = stmt(&[Read, Export], &[], &["pg_read_file"]);
    second.text = "SELECT pg_read_file('/etc/passwd')".into();
    second.notes = vec!["pg_read_file reads server files".into()];
    let q = query(vec![first, second]);
    let d = eval(&p, &q);
    (q, d)
}

#[test]
fn explain_text_shows_statements_rules_and_verdict() {
    let (q, d) = explained();
    let text = explain(&q, &d, false);
    let expected = "\
statement 1: SELECT lower(name) FROM public.users
  classes:   read
  objects:   public.users
  functions: lower
  read:      allow (rule \"allow-read-write-session\")

statement 2: SELECT pg_read_file('/etc/passwd')
  classes:   read+export
  objects:   (none)
  functions: pg_read_file
  note:      pg_read_file reads server files
  read:      allow (rule \"allow-read-write-session\")
  export:    hold (rule \"hold-for-dba\"): 1 approval from group dba, expires after 1h, mode wait

verdict: hold (rule \"hold-for-dba\") on statement 2, class export: 1 approval from group dba, expires after 1h, mode wait
";
    assert_eq!(text, expected);

    let empty = explain(
        &query(vec![]),
        &eval(&Policy::builtin_default(), &query(vec![])),
        false,
    );
    assert!(empty.contains("verdict: allow"), "{empty}");
}

#[test]
fn explain_json_has_the_documented_shape() {
    let (q, d) = explained();
    let v: serde_json::Value = serde_json::from_str(&explain(&q, &d, true)).unwrap();
    assert_eq!(v["verdict"], "hold");
    assert_eq!(v["rule"], "hold-for-dba");
    assert_eq!(v["statement"], 1);
    assert_eq!(v["class"], "export");
    assert_eq!(v["reason"], serde_json::Value::Null);
    assert_eq!(
        v["hold"],
        serde_json::json!({"group": "dba", "quorum": 1, "expiry_secs": 3600, "mode": "wait"})
    );
    let s = &v["statements"][1];
    assert_eq!(s["index"], 1);
    assert_eq!(s["text"], "SELECT pg_read_file('/etc/passwd')");
    assert_eq!(s["classes"], serde_json::json!(["read", "export"]));
    assert_eq!(s["objects"], serde_json::json!([]));
    assert_eq!(s["functions"], serde_json::json!(["pg_read_file"]));
    assert_eq!(
        s["notes"],
        serde_json::json!(["pg_read_file reads server files"])
    );
    assert_eq!(
        s["decisions"][0],
        serde_json::json!({"class": "read", "rule": "allow-read-write-session",
                           "verdict": "allow", "reason": null, "hold": null})
    );
    assert_eq!(s["decisions"][1]["verdict"], "hold");

    let p = policy("[[rule]]\nname = \"r\"\nclasses = [\"read\"]\naction = \"allow\"\n");
    let q = query(vec![stmt(&[Admin], &[], &[])]);
    let v: serde_json::Value = serde_json::from_str(&explain(&q, &eval(&p, &q), true)).unwrap();
    assert_eq!(v["verdict"], "deny");
    assert_eq!(v["rule"], NO_RULE);
    assert_eq!(v["reason"], "no policy rule matches class admin");
    assert_eq!(v["hold"], serde_json::Value::Null);

    let empty = query(vec![]);
    let v: serde_json::Value =
        serde_json::from_str(&explain(&empty, &eval(&p, &empty), true)).unwrap();
    assert_eq!(v["verdict"], "allow");
    assert_eq!(v["statement"], serde_json::Value::Null);
    assert_eq!(v["statements"], serde_json::json!([]));
}

#[test]
fn masking_table_sets_detectors_strategies_and_exemptions() {
    let p = policy(
        r#"
[[rule]]
name = "all"
action = "allow"

[masking]
detectors = ["standard", "nl_bsn"]
disable = ["phone"]
strategy = "partial"
strategies = { email = "token", secrets = "null" }
exempt_roles = ["admin", "auditor"]
json_secret_keys = true
"#,
    );
    let m = p.masking();
    assert!(m.enabled);
    let d = m.settings.detectors;
    // Named: bare BSN runs count; the standard set's other national ids
    // are found in printed forms only.
    assert!(
        d.takes_bare(Kind::NlBsn)
            && d.contains(Kind::Email)
            && !d.contains(Kind::Phone)
            && d.contains(Kind::PlPesel)
            && !d.takes_bare(Kind::PlPesel)
    );
    assert_eq!(m.settings.default_strategy, Strategy::Partial);
    assert!(m
        .settings
        .strategies
        .contains(&(Kind::Email, Strategy::Token)));
    assert!(m
        .settings
        .strategies
        .contains(&(Kind::GithubToken, Strategy::Null)));
    assert_eq!(m.exempt_roles, vec![Role::Admin, Role::Auditor]);
    assert!(m.settings.json_secret_keys);

    let default = policy("[[rule]]\nname = \"all\"\naction = \"allow\"\n");
    assert!(default.masking().enabled && default.masking().exempt_roles.is_empty());
    assert_eq!(default.masking().settings.detectors, Detectors::standard());
}

#[test]
fn masking_mistakes_name_file_line_and_problem() {
    let rules = "[[rule]]\nname = \"all\"\naction = \"allow\"\n";
    for (table, line, problem) in [
        (
            "[masking]\ndetectors = [\"emails\"]\n",
            5,
            "unknown detector \"emails\"",
        ),
        (
            "[masking]\nstrategy = \"hide\"\n",
            5,
            "unknown strategy \"hide\"",
        ),
        (
            "[masking]\nstrategies = { card = \"blur\" }\n",
            5,
            "unknown strategy \"blur\"",
        ),
        (
            "[masking]\nstrategies = { cards = \"null\" }\n",
            5,
            "unknown detector \"cards\"",
        ),
        (
            "[masking]\nexempt_roles = [\"dba\"]\n",
            5,
            "unknown role \"dba\"",
        ),
        (
            "[masking]\nexempt_roles = [\"agent\"]\n",
            5,
            "agents cannot be exempted",
        ),
        ("[masking]\nredact = true\n", 5, "unknown field `redact`"),
    ] {
        let e = error(&format!("{rules}{table}"));
        assert_eq!(e.file, "10-test.toml", "{table}");
        assert_eq!(e.line, Some(line), "{table}: {e}");
        assert!(e.to_string().contains(problem), "{table}: {e}");
    }
    let e = Policy::from_sources(&[
        (
            "10-a.toml".into(),
            format!("{rules}[masking]\nenabled = false\n"),
        ),
        ("20-b.toml".into(), "[masking]\nenabled = true\n".into()),
    ])
    .unwrap_err();
    assert_eq!(e.file, "20-b.toml");
    assert!(
        e.to_string().contains("already set in 10-a.toml line 4"),
        "{e}"
    );
}

#[test]
fn classify_user_functions_is_read_once_and_validated() {
    const RULE: &str = "[[rule]]\nname = \"a\"\naction = \"allow\"\n";
    assert_eq!(policy(RULE).user_functions(), UserFunctions::Unknown);
    assert_eq!(
        Policy::builtin_default().user_functions(),
        UserFunctions::Unknown
    );
    for (value, want) in [
        ("unknown", UserFunctions::Unknown),
        ("read", UserFunctions::Read),
        ("write", UserFunctions::Write),
    ] {
        let p = policy(&format!("{RULE}[classify]\nuser_functions = \"{value}\"\n"));
        assert_eq!(p.user_functions(), want);
    }
    let e = error(&format!("{RULE}[classify]\nuser_functions = \"allow\"\n"));
    assert_eq!(e.line, Some(5));
    assert!(e.problem.contains("unknown, read, write"), "{e}");
    let e = error(&format!("{RULE}[classify]\nuser_function = \"read\"\n"));
    assert!(e.problem.contains("user_function"), "{e}");
    let twice = Policy::from_sources(&[
        (
            "a.toml".into(),
            format!("{RULE}[classify]\nuser_functions = \"read\"\n"),
        ),
        (
            "b.toml".into(),
            "[classify]\nuser_functions = \"write\"\n".into(),
        ),
    ]);
    assert!(twice.is_err_and(|e| e.file == "b.toml" && e.problem.contains("already set")));
}

#[test]
fn user_functions_decide_through_the_classifier() {
    use crate::sql::{classify_with, Dialect};
    let p = Policy::builtin_default();
    let decide = |user: UserFunctions, sql: &str| {
        eval(&p, &classify_with(sql, Dialect::Postgres, user))
            .action
            .name()
    };
    assert_eq!(
        decide(UserFunctions::Unknown, "SELECT app.score(1)"),
        "hold"
    );
    assert_eq!(decide(UserFunctions::Read, "SELECT app.score(1)"), "allow");
    assert_eq!(decide(UserFunctions::Write, "SELECT app.score(1)"), "allow");
    // Built-ins never depend on the setting.
    assert_eq!(
        decide(UserFunctions::Read, "SELECT pg_read_file('x')"),
        "hold"
    );
    assert_eq!(
        decide(UserFunctions::Read, "SELECT pg_terminate_backend(1)"),
        "deny"
    );
    assert_eq!(
        decide(UserFunctions::Unknown, "SELECT lower(now()::text)"),
        "allow"
    );
}

#[test]
fn transforms_narrow_a_rule_to_statements_that_transform_masked_columns() {
    let p = policy(&format!(
        r#"
[[rule]]
name = "hold-unmasking"
transforms = "masked-columns"
action = "hold"

[[rule]]
name = "deny-any-transform"
identities = ["strict-*"]
transforms = "any-column"
action = "deny"
reason = "no transforms"

[[rule]]
name = "reads"
classes = ["read"]
action = "allow"
{DENY_REST}"#
    ));
    let transforming = |columns: &[&str]| {
        let mut s = stmt(&[Read], &["users"], &["reverse"]);
        s.transformed = columns.iter().map(|c| c.to_string()).collect();
        query(vec![s])
    };
    let learned: std::collections::HashSet<String> = ["email".to_string()].into();
    let run = |identity: &str, q: &Classification, masked: MaskedColumns| {
        p.evaluate(&Request {
            identity,
            role: Role::Agent,
            database: "app",
            classification: q,
            masked_columns: masked,
        })
        .rule
    };
    let known = MaskedColumns::Learned(&learned);
    assert_eq!(
        run("bot", &transforming(&["email"]), known),
        "hold-unmasking"
    );
    assert_eq!(run("bot", &transforming(&["id"]), known), "reads");
    assert_eq!(run("bot", &transforming(&[]), known), "reads");
    // A whole row read through a transform holds once anything is flagged.
    assert_eq!(run("bot", &transforming(&["*"]), known), "hold-unmasking");
    let nothing = std::collections::HashSet::new();
    assert_eq!(
        run(
            "bot",
            &transforming(&["*"]),
            MaskedColumns::Learned(&nothing)
        ),
        "reads"
    );
    // Unknown (policy check): shown as it decides once flagged.
    assert_eq!(
        run("bot", &transforming(&["id"]), MaskedColumns::Unknown),
        "hold-unmasking"
    );
    assert_eq!(
        run("strict-bot", &transforming(&["id"]), known),
        "deny-any-transform"
    );
}

#[test]
fn transforms_values_and_actions_are_checked() {
    assert_error(
        "[[rule]]\nname = \"x\"\ntransforms = \"masked\"\naction = \"hold\"\n",
        3,
        "10-test.toml: line 3: rule \"x\": unknown transforms \"masked\" (expected one of \"masked-columns\", \"any-column\")",
    );
    assert_error(
        "[[rule]]\nname = \"x\"\ntransforms = \"masked-columns\"\naction = \"allow\"\n",
        3,
        "10-test.toml: line 3: rule \"x\": transforms applies only to hold and deny rules, and this rule is allow",
    );
}

#[test]
fn impact_is_an_estimate_unless_a_hold_rule_asks_for_a_dry_run() {
    let rule = |extra: &str| {
        Policy::from_sources(&[(
            "10-test.toml".into(),
            format!("[[rule]]\nname = \"r\"\nclasses = [\"write\"]\naction = \"hold\"\n{extra}"),
        )])
    };
    let dry = |extra: &str| match &rule(extra).unwrap().rules()[0].action {
        Action::Hold(h) => h.dry_run,
        other => panic!("{other:?}"),
    };
    assert!(!dry(""));
    assert!(!dry("impact = \"estimate\"\n"));
    assert!(dry("impact = \"dry-run\"\n"));
    let e = rule("impact = \"run-it\"\n").unwrap_err().to_string();
    assert!(e.contains("unknown impact \"run-it\""), "{e}");
    let e = Policy::from_sources(&[(
        "10-test.toml".into(),
        "[[rule]]\nname = \"r\"\nclasses = [\"write\"]\naction = \"allow\"\nimpact = \"dry-run\"\n"
            .into(),
    )])
    .unwrap_err()
    .to_string();
    assert!(e.contains("impact applies only to hold rules"), "{e}");
}

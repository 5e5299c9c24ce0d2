//! Classification latency: typical statements uncached (lexer, classifier
//! and sqlparser every time) and cached (what a repeated statement costs).
//!
//!     cargo bench --bench classify

use airlock::sql::{classify, ClassifierCache, Dialect};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

const TYPICAL: &[(&str, &str, Dialect)] = &[
    ("point_select", "SELECT abalance FROM pgbench_accounts WHERE aid = 48213", Dialect::Postgres),
    (
        "join_filter",
        "SELECT o.id, o.total, c.email FROM orders o JOIN customers c ON c.id = o.customer_id \
         WHERE o.created_at > now() - interval '7 days' AND o.status = 'paid' ORDER BY o.total DESC LIMIT 50",
        Dialect::Postgres,
    ),
    ("insert", "INSERT INTO events (kind, payload, at) VALUES ('login', '{\"ip\": \"10.0.0.1\"}', now())", Dialect::Postgres),
    ("update", "UPDATE accounts SET balance = balance - 100 WHERE id = 42 RETURNING balance", Dialect::Postgres),
    (
        "cte_aggregate",
        "WITH recent AS (SELECT customer_id, sum(total) AS spent FROM orders WHERE created_at > '2026-01-01' GROUP BY 1) \
         SELECT c.name, r.spent FROM recent r JOIN customers c USING (customer_id) WHERE r.spent > 1000",
        Dialect::Postgres,
    ),
    ("mysql_select", "SELECT `id`, `name` FROM `users` WHERE `email` = 'a@example.com' LIMIT 1", Dialect::Mysql),
];

fn uncached(c: &mut Criterion) {
    let mut group = c.benchmark_group("classify_uncached");
    for (name, sql, dialect) in TYPICAL {
        group.bench_function(*name, |b| b.iter(|| classify(black_box(sql), *dialect)));
    }
    group.finish();
}

fn cached(c: &mut Criterion) {
    let cache = ClassifierCache::new(8192);
    let mut group = c.benchmark_group("classify_cached");
    for (name, sql, dialect) in TYPICAL {
        cache.classify(sql, *dialect);
        group.bench_function(*name, |b| {
            b.iter(|| cache.classify(black_box(sql), *dialect))
        });
    }
    group.finish();
}

criterion_group!(benches, uncached, cached);
criterion_main!(benches);

'use strict';
// Scripted node-postgres (pg) session, run against the gateway or directly
// against Postgres. Plain script: prints one line per step, exits 1 on the
// first failure.
//
// Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
// Every object this script creates is prefixed `nodepg_` so other driver
// sessions can run at the same time in the same database.

const assert = require('node:assert/strict');
const { Readable } = require('node:stream');
const { pipeline } = require('node:stream/promises');
const { Client } = require('pg');
const { from: copyFrom, to: copyTo } = require('pg-copy-streams');

const DRIVER = 'node-pg';
// A stuck gateway must fail this script, not hang the caller.
const DEADLINE_MS = 60_000;

async function step(name, fn) {
  try {
    await fn();
  } catch (err) {
    console.error(`[${DRIVER}] FAIL ${name}: ${err.stack || err}`);
    process.exit(1);
  }
  console.log(`[${DRIVER}] ok   ${name}`);
}

function env(name) {
  const value = process.env[name];
  if (value === undefined) throw new Error(`environment variable ${name} is not set`);
  return value;
}

function newClient() {
  return new Client({
    host: env('PGHOST'),
    port: Number(env('PGPORT')),
    user: env('PGUSER'),
    password: env('PGPASSWORD'),
    database: env('PGDATABASE'),
    application_name: 'airlock-node-pg-session',
    connectionTimeoutMillis: 10_000,
  });
}

// Resolves with the first value `emitter` emits as `event`, or rejects after `ms`.
function nextEvent(emitter, event, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' event within ${ms}ms`)), ms);
    emitter.once(event, (value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

async function expectSqlState(promise, sqlstate) {
  try {
    await promise;
  } catch (err) {
    assert.equal(err.code, sqlstate, `unexpected error: ${err.message}`);
    return;
  }
  assert.fail(`expected an error with SQLSTATE ${sqlstate}, the query succeeded`);
}

async function main() {
  setTimeout(() => {
    console.error(`[${DRIVER}] FAIL session exceeded ${DEADLINE_MS / 1000}s`);
    process.exit(1);
  }, DEADLINE_MS).unref();

  const client = newClient();
  const other = newClient();

  await step('connect two clients', async () => {
    await client.connect();
    await other.connect();
    // An odd +12:45/+13:45 zone: timestamptz text must be parsed with its offset.
    await client.query("SET TimeZone = 'Pacific/Chatham'");
  });

  await step('simple query (text protocol)', async () => {
    const res = await client.query("SELECT 1 AS one, 'two' AS two, NULL AS nothing");
    assert.deepEqual(res.rows, [{ one: 1, two: 'two', nothing: null }]);
    assert.deepEqual(res.fields.map((f) => f.name), ['one', 'two', 'nothing']);
  });

  await step('multi-statement simple query returns one result per statement', async () => {
    const results = await client.query('SELECT 1 AS a; SELECT 2 AS b, 3 AS c');
    assert.equal(results.length, 2);
    assert.deepEqual(results[0].rows, [{ a: 1 }]);
    assert.deepEqual(results[1].rows, [{ b: 2, c: 3 }]);
  });

  await step('create tables', async () => {
    await client.query('DROP TABLE IF EXISTS nodepg_items, nodepg_types, nodepg_copy');
    await client.query(
      'CREATE TABLE nodepg_items (id int PRIMARY KEY, name text NOT NULL, price numeric(12,2))',
    );
    await client.query(`CREATE TABLE nodepg_types (
      id int PRIMARY KEY, c_int8 int8, c_numeric numeric, c_float8 float8, c_text text,
      c_bytea bytea, c_bool bool, c_tstz timestamptz, c_json json, c_jsonb jsonb,
      c_int_arr int4[], c_text_arr text[])`);
    await client.query('CREATE TABLE nodepg_copy (id int PRIMARY KEY, label text, amount numeric)');
  });

  await step('parameterized queries (extended protocol)', async () => {
    for (let i = 1; i <= 5; i++) {
      const res = await client.query(
        'INSERT INTO nodepg_items VALUES ($1, $2, $3) RETURNING id',
        [i, `item-${i}`, (i * 1.25).toFixed(2)],
      );
      assert.deepEqual(res.rows, [{ id: i }]);
    }
    const res = await client.query('SELECT name, price FROM nodepg_items WHERE id > $1 ORDER BY id', [3]);
    assert.deepEqual(res.rows, [{ name: 'item-4', price: '5.00' }, { name: 'item-5', price: '6.25' }]);
    assert.equal(res.rowCount, 2);
  });

  await step('named prepared query reused with different values', async () => {
    const byId = (id) => ({ name: 'nodepg_item_by_id', text: 'SELECT name FROM nodepg_items WHERE id = $1', values: [id] });
    // The first call parses the named statement; later ones only bind and execute it.
    for (const id of [1, 2, 5, 2]) {
      const res = await client.query(byId(id));
      assert.deepEqual(res.rows, [{ name: `item-${id}` }]);
    }
    const none = await client.query(byId(99));
    assert.deepEqual(none.rows, []);
  });

  await step('types round-trip (bytea, json, arrays, NULL, numeric as string)', async () => {
    const bytes = Buffer.from([0, 1, 2, 127, 128, 254, 255]);
    const when = new Date('2024-02-29T12:34:56.789Z');
    await client.query(
      `INSERT INTO nodepg_types VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
      [
        1, '9223372036854775807', '12345678901234567890.000000000000000001', 0.1, 'ünïcødé ✓ 🐘',
        bytes, true, when, JSON.stringify({ a: [1, null] }), { nested: { k: 'v' } }, [1, null, 3], ['a', 'b,c', null, '"q"'],
      ],
    );
    await client.query('INSERT INTO nodepg_types (id) VALUES (2)');
    const res = await client.query('SELECT * FROM nodepg_types ORDER BY id');
    assert.deepEqual(res.rows[0], {
      id: 1,
      c_int8: '9223372036854775807', // int8 and numeric come back as strings: no precision loss
      c_numeric: '12345678901234567890.000000000000000001',
      c_float8: 0.1,
      c_text: 'ünïcødé ✓ 🐘',
      c_bytea: bytes,
      c_bool: true,
      c_tstz: when,
      c_json: { a: [1, null] },
      c_jsonb: { nested: { k: 'v' } },
      c_int_arr: [1, null, 3],
      c_text_arr: ['a', 'b,c', null, '"q"'],
    });
    const nulls = Object.fromEntries(res.fields.map((f) => [f.name, null]));
    assert.deepEqual(res.rows[1], { ...nulls, id: 2 });
  });

  await step('transaction rollback', async () => {
    await client.query('BEGIN');
    await client.query("INSERT INTO nodepg_items VALUES (100, 'undone', 1)");
    assert.deepEqual((await client.query('SELECT count(*)::int AS n FROM nodepg_items')).rows, [{ n: 6 }]);
    await client.query('ROLLBACK');
    assert.deepEqual((await client.query('SELECT count(*)::int AS n FROM nodepg_items')).rows, [{ n: 5 }]);
    await client.query('BEGIN');
    await client.query("INSERT INTO nodepg_items VALUES (101, 'kept', 1)");
    await client.query('COMMIT');
    const seen = await other.query('SELECT name FROM nodepg_items WHERE id = 101');
    assert.deepEqual(seen.rows, [{ name: 'kept' }]);
  });

  await step('error 22012 (simple and extended), client still usable', async () => {
    await expectSqlState(client.query('SELECT 1/0'), '22012');
    assert.deepEqual((await client.query('SELECT 42 AS answer')).rows, [{ answer: 42 }]);
    await expectSqlState(client.query('SELECT 1/$1::int', [0]), '22012');
    assert.deepEqual((await client.query('SELECT $1::int AS answer', [42])).rows, [{ answer: 42 }]);
    await client.query('BEGIN');
    await expectSqlState(client.query('SELECT 1/0'), '22012');
    await expectSqlState(client.query('SELECT 1'), '25P02'); // in failed transaction
    await client.query('ROLLBACK');
    assert.deepEqual((await client.query('SELECT 1 AS ok')).rows, [{ ok: 1 }]);
  });

  await step('COPY FROM STDIN via pg-copy-streams', async () => {
    const lines = ['1\tfirst\t1.5\n', '2\t\\N\t2.5\n', '3\twith space\t3.25\n'];
    const sink = client.query(copyFrom('COPY nodepg_copy (id, label, amount) FROM STDIN'));
    await pipeline(Readable.from(lines), sink);
    assert.equal(sink.rowCount, 3);
    const res = await client.query('SELECT label, amount FROM nodepg_copy ORDER BY id');
    assert.deepEqual(res.rows, [
      { label: 'first', amount: '1.5' },
      { label: null, amount: '2.5' },
      { label: 'with space', amount: '3.25' },
    ]);
  });

  await step('COPY TO STDOUT via pg-copy-streams', async () => {
    const source = client.query(copyTo('COPY (SELECT * FROM nodepg_copy ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)'));
    const chunks = [];
    for await (const chunk of source) chunks.push(chunk);
    assert.equal(Buffer.concat(chunks).toString('utf8'), 'id,label,amount\n1,first,1.5\n2,,2.5\n3,with space,3.25\n');
    assert.deepEqual((await client.query('SELECT 1 AS after_copy')).rows, [{ after_copy: 1 }]);
  });

  await step('LISTEN/NOTIFY from another client', async () => {
    await client.query('LISTEN nodepg_channel');
    const received = nextEvent(client, 'notification', 5000);
    await other.query("SELECT pg_notify('nodepg_channel', $1)", ['payload ✓']);
    const msg = await received;
    assert.equal(msg.channel, 'nodepg_channel');
    assert.equal(msg.payload, 'payload ✓');
    await client.query('UNLISTEN nodepg_channel');
  });

  await step('NOTICE from a DO block', async () => {
    const received = nextEvent(client, 'notice', 5000);
    await client.query("DO $$ BEGIN RAISE NOTICE 'nodepg notice %', 7; END $$");
    const notice = await received;
    assert.equal(notice.message, 'nodepg notice 7');
    assert.equal(notice.severity, 'NOTICE');
    assert.equal(notice.code, '00000');
  });

  await step('close', async () => {
    await client.query('DROP TABLE nodepg_items, nodepg_types, nodepg_copy');
    await other.end();
    await client.end();
  });

  console.log(`[${DRIVER}] session passed`);
}

main().catch((err) => {
  console.error(`[${DRIVER}] FAIL ${err.stack || err}`);
  process.exit(1);
});

'use strict';
// Scripted node mysql2 session, run against the gateway or directly against
// MySQL/MariaDB. Plain script: prints one line per step, exits 1 on the first
// failure.
//
// Connection settings come from MYSQL_HOST, MYSQL_PORT, MYSQL_USER,
// MYSQL_PASSWORD, MYSQL_DATABASE. MYSQL_TLS=require: TLS without certificate
// verification (mysql2 fails rather than fall back when the server offers
// none), and the socket must be a TLS one; anything else: no TLS.
// MYSQL_AUTH: mysql2 answers the greeting with the plugin the server names
// when it supports it, else mysql_native_password, and has no option to pick
// one. MYSQL_AUTH=mysql_native_password registers a caching_sha2_password
// handler that refuses, which makes the first answer a native one and fails
// the session if the server insists on caching_sha2; caching_sha2_password
// (or unset) leaves the driver's choice.
// Every object this script creates is prefixed `mysql2_` so other driver
// sessions can run at the same time in the same database.
//
// `query` sends COM_QUERY (text protocol); `execute` prepares the statement
// on the server (COM_STMT_PREPARE) and runs it with COM_STMT_EXECUTE (binary
// protocol). mysql2 sends BLOB parameters inline, never COM_STMT_SEND_LONG_DATA.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const mysql = require('mysql2/promise');

const DRIVER = 'mysql2';
// A stuck gateway must fail this script, not hang the caller.
const DEADLINE_MS = 60_000;
const BIG_VALUE_BYTES = 16 * 1024 * 1024 + 4096; // just over one 16 MiB packet

class Skipped extends Error {}

async function step(name, fn) {
  try {
    await fn();
  } catch (err) {
    if (err instanceof Skipped) {
      console.log(`[${DRIVER}] skip ${name}: ${err.message}`);
      return;
    }
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

const TLS_REQUIRED = process.env.MYSQL_TLS === 'require';
const AUTH = process.env.MYSQL_AUTH || '';

function connect(extra = {}) {
  const options = {
    host: env('MYSQL_HOST'),
    port: Number(env('MYSQL_PORT')),
    user: env('MYSQL_USER'),
    password: process.env.MYSQL_PASSWORD || '',
    database: env('MYSQL_DATABASE'),
    charset: 'utf8mb4',
    connectTimeout: 10_000,
    // Exact values: BIGINT and DECIMAL as strings, dates as the server's text,
    // JSON as the server's text (MySQL sends a JSON type, MariaDB LONGTEXT).
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
    jsonStrings: true,
    connectAttributes: { program_name: 'airlock-mysql2-session' },
    ...extra,
  };
  if (TLS_REQUIRED) options.ssl = { rejectUnauthorized: false };
  if (AUTH === 'mysql_native_password') {
    options.authPlugins = {
      caching_sha2_password: () => () => {
        throw new Error('server asked for caching_sha2_password but MYSQL_AUTH=mysql_native_password');
      },
    };
  } else if (AUTH !== '' && AUTH !== 'caching_sha2_password') {
    throw new Error(`MYSQL_AUTH=${AUTH} is not a plugin this session knows`);
  }
  return mysql.createConnection(options);
}

async function expectError(promise, errno, sqlState, message) {
  try {
    await promise;
  } catch (err) {
    assert.equal(err.errno, errno, `errno of: ${err.message}`);
    assert.equal(err.sqlState, sqlState, `SQLSTATE of: ${err.message}`);
    assert.equal(err.sqlMessage, message);
    return;
  }
  assert.fail(`expected error ${errno}, the statement succeeded`);
}

const BLOB = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const JSON_TEXT = '{"a": [1, 2, {"b": null}], "s": "ü🐬"}';
// Column, SQL type, the value to send, the value to get back. dateStrings
// gives the server's text; the text protocol and mysql2's binary decoder agree.
const TYPE_COLUMNS = [
  ['c_int', 'INT', -2147483648, -2147483648],
  ['c_bigint', 'BIGINT', '9223372036854775807', '9223372036854775807'],
  ['c_decimal', 'DECIMAL(12,2)', '-1234567890.12', '-1234567890.12'],
  ['c_double', 'DOUBLE', 0.1, 0.1],
  ['c_date', 'DATE', '2024-02-29', '2024-02-29'],
  ['c_datetime', 'DATETIME(6)', '2024-03-10 12:34:56.789012', '2024-03-10 12:34:56.789012'],
  ['c_time', 'TIME', '-25:30:01', '-25:30:01'],
  ['c_year', 'YEAR', 2155, 2155],
  ['c_varchar', 'VARCHAR(100) CHARACTER SET utf8mb4', 'héllo wörld — 日本語 🐬', 'héllo wörld — 日本語 🐬'],
  ['c_text', 'TEXT CHARACTER SET utf8mb4', 'Ünïcödé\nline \'two\' "quoted" back\\slash\ttab', 'Ünïcödé\nline \'two\' "quoted" back\\slash\ttab'],
  ['c_blob', 'BLOB', BLOB, BLOB],
  ['c_json', 'JSON', JSON_TEXT, JSON_TEXT],
  ['c_enum', "ENUM('small','medium','large')", 'medium', 'medium'],
  ['c_bit', 'BIT(8)', Buffer.from([0xa5]), Buffer.from([0xa5])],
];
const COLS = TYPE_COLUMNS.map(([c]) => c).join(', ');

function checkTypesRow(row, what) {
  for (const [col, , , expected] of TYPE_COLUMNS) {
    assert.deepStrictEqual(row[col], expected, `${what} ${col}`);
  }
}

function digitsCte(limit) {
  // 1..limit without recursion: MariaDB stops recursive CTEs silently at
  // max_recursive_iterations (1000 by default), MySQL errors at 1000.
  return (
    'WITH d(x) AS (SELECT 0 UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 ' +
    'UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 ' +
    'UNION ALL SELECT 8 UNION ALL SELECT 9), ' +
    'seq(n) AS (SELECT a.x + 10*b.x + 100*c.x + 1000*e.x + 1 FROM d a, d b, d c, d e) ' +
    `SELECT n, CONCAT('row-', n) AS label, n * n AS sq FROM seq WHERE n <= ${limit} ORDER BY n`
  );
}

async function dropAll(conn) {
  await conn.query('DROP TABLE IF EXISTS mysql2_items, mysql2_types, mysql2_short, mysql2_big');
  await conn.query('DROP PROCEDURE IF EXISTS mysql2_two_results');
}

async function main() {
  setTimeout(() => {
    console.error(`[${DRIVER}] FAIL session exceeded ${DEADLINE_MS / 1000}s`);
    process.exit(1);
  }, DEADLINE_MS).unref();
  const database = env('MYSQL_DATABASE');
  let conn;
  let other;
  let changed;

  await step(`connect (TLS ${TLS_REQUIRED ? 'required' : 'off'}, auth ${AUTH || 'driver default'})`, async () => {
    // mysql2 always asks for CLIENT_FOUND_ROWS; `changed` turns it off.
    conn = await connect({ multipleStatements: true });
    other = await connect();
    changed = await connect({ flags: ['-FOUND_ROWS'] });
    const [rows] = await conn.query("SELECT 1 AS one, 'one' AS word, NULL AS nothing");
    assert.deepStrictEqual(rows, [{ one: 1, word: 'one', nothing: null }]);
  });

  await step('TLS state matches MYSQL_TLS', async () => {
    const [[status]] = await conn.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'");
    for (const [name, c] of [['main', conn], ['other', other], ['changed', changed]]) {
      const stream = c.connection.stream;
      assert.equal(Boolean(stream.encrypted), TLS_REQUIRED, `${name} connection encrypted`);
      if (TLS_REQUIRED) assert.ok(stream.getCipher().name, `${name} connection has a cipher`);
    }
    const client = TLS_REQUIRED ? `client cipher ${conn.connection.stream.getCipher().name}` : 'plaintext';
    console.log(`[${DRIVER}]      ${client}; server Ssl_cipher '${status.Value}'`);
  });

  await step('create tables and a procedure (dropping leftovers first)', async () => {
    await dropAll(conn);
    await conn.query(
      'CREATE TABLE mysql2_items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL UNIQUE, qty INT) CHARACTER SET utf8mb4',
    );
    await conn.query(
      `CREATE TABLE mysql2_types (id INT PRIMARY KEY, ${TYPE_COLUMNS.map(([c, t]) => `${c} ${t}`).join(', ')}) CHARACTER SET utf8mb4`,
    );
    await conn.query('CREATE TABLE mysql2_short (s VARCHAR(3))');
    await conn.query(
      'CREATE PROCEDURE mysql2_two_results(IN k INT) BEGIN SELECT k AS first_k; SELECT k * 2 AS doubled, \'two\' AS tag; END',
    );
  });

  await step('INSERT (query and execute): affectedRows, insertId, LAST_INSERT_ID()', async () => {
    let [res] = await conn.query('INSERT INTO mysql2_items (name, qty) VALUES (?, ?)', ['apple', 3]);
    assert.equal(res.affectedRows, 1);
    assert.equal(res.insertId, 1);
    [res] = await conn.execute('INSERT INTO mysql2_items (name, qty) VALUES (?, ?), (?, ?), (?, ?)', [
      'banana', 5, 'cherry', 5, 'durian', null,
    ]);
    assert.equal(res.affectedRows, 3, 'affected rows of a 3-row insert');
    // A multi-row insert reports the id of its first row.
    assert.equal(res.insertId, 2, 'insertId of a multi-row insert');
    const [rows] = await conn.query('SELECT LAST_INSERT_ID() AS id');
    assert.deepStrictEqual(rows, [{ id: '2' }], 'LAST_INSERT_ID() (BIGINT UNSIGNED, a string with bigNumberStrings)');
  });

  await step('UPDATE: matched rows with CLIENT_FOUND_ROWS (default), changed rows without', async () => {
    // banana and cherry already have qty 5: three rows match, one changes.
    let [res] = await conn.query('UPDATE mysql2_items SET qty = 5 WHERE id <= 3');
    assert.equal(res.affectedRows, 3, 'affected (matched) rows');
    assert.equal(res.changedRows, 1, 'changedRows from the info string');
    assert.equal(res.info, 'Rows matched: 3  Changed: 1  Warnings: 0');
    [res] = await changed.execute('UPDATE mysql2_items SET qty = ? WHERE id <= ?', [5, 3]);
    assert.equal(res.affectedRows, 0, 'affected (changed) rows without CLIENT_FOUND_ROWS');
    [res] = await changed.query('UPDATE mysql2_items SET qty = 6 WHERE id <= 3');
    assert.equal(res.affectedRows, 3, 'affected (changed) rows without CLIENT_FOUND_ROWS');
    await changed.query('UPDATE mysql2_items SET qty = 5 WHERE id <= 3');
  });

  await step('types round-trip: text protocol insert (id 1), binary protocol insert (id 2), all-NULL row', async () => {
    const placeholders = Array(TYPE_COLUMNS.length + 1).fill('?').join(', ');
    const values = TYPE_COLUMNS.map(([, , v]) => v);
    let [res] = await conn.query(`INSERT INTO mysql2_types (id, ${COLS}) VALUES (${placeholders})`, [1, ...values]);
    assert.equal(res.affectedRows, 1);
    [res] = await conn.execute(`INSERT INTO mysql2_types (id, ${COLS}) VALUES (${placeholders})`, [2, ...values]);
    assert.equal(res.affectedRows, 1);
    // Every parameter NULL through the binary protocol.
    [res] = await conn.execute(
      `INSERT INTO mysql2_types (id, ${COLS}) VALUES (${placeholders})`,
      [3, ...TYPE_COLUMNS.map(() => null)],
    );
    assert.equal(res.affectedRows, 1);
    for (const [how, run] of [
      ['text', (sql, params) => conn.query(sql, params)],
      ['binary', (sql, params) => conn.execute(sql, params)],
    ]) {
      for (const id of [1, 2]) {
        const [rows] = await run(`SELECT ${COLS} FROM mysql2_types WHERE id = ?`, [id]);
        assert.equal(rows.length, 1);
        checkTypesRow(rows[0], `${how} row ${id}`);
      }
      const [rows] = await run(`SELECT ${COLS} FROM mysql2_types WHERE id = ?`, [3]);
      assert.deepStrictEqual(Object.values(rows[0]), TYPE_COLUMNS.map(() => null), `${how} all-NULL row`);
    }
    // The server's own rendering proves what was stored, not just the echo.
    const [rows] = await conn.query(
      'SELECT id, HEX(c_blob) AS blob_hex, CAST(c_time AS CHAR) AS t, CHAR_LENGTH(c_varchar) AS chars, ' +
        'LENGTH(c_varchar) AS bytes, HEX(c_bit) AS bit_hex, c_decimal + 0.01 AS dec_plus FROM mysql2_types WHERE id <= 2 ORDER BY id',
    );
    for (const [i, row] of rows.entries()) {
      assert.deepStrictEqual(row, {
        id: i + 1, blob_hex: BLOB.toString('hex').toUpperCase(), t: '-25:30:01', chars: 19, bytes: 32,
        bit_hex: 'A5', dec_plus: '-1234567890.11',
      });
    }
  });

  await step('prepared statement re-executed with parameters of several types, NULL included', async () => {
    const sql = 'SELECT ? AS i, ? AS s, ? AS n, ? AS b, ? AS d, CAST(? AS DECIMAL(12,2)) AS dec_val, ? IS NULL AS was_null';
    const cases = [
      [[7, 'ü🐬', null, Buffer.from([0, 255]), 2.5, '10.05', null], { i: 7, s: 'ü🐬', n: null, b: Buffer.from([0, 255]), d: 2.5, dec_val: '10.05', was_null: 1 }],
      [[-1, '', null, Buffer.alloc(0), -0.5, '-0.01', 'x'], { i: -1, s: '', n: null, b: Buffer.alloc(0), d: -0.5, dec_val: '-0.01', was_null: 0 }],
    ];
    for (const [params, expected] of cases) {
      const [rows] = await conn.execute(sql, params);
      assert.deepStrictEqual(rows, [expected]);
    }
  });

  await step('transaction rolled back (row absent) and one committed (seen by another connection)', async () => {
    await conn.beginTransaction();
    await conn.execute('INSERT INTO mysql2_items (name, qty) VALUES (?, ?)', ['rolled-back', 1]);
    let [rows] = await other.query("SELECT COUNT(*) AS n FROM mysql2_items WHERE name = 'rolled-back'");
    assert.deepStrictEqual(rows, [{ n: '0' }], 'seen by other before rollback');
    await conn.rollback();
    [rows] = await conn.query("SELECT COUNT(*) AS n FROM mysql2_items WHERE name = 'rolled-back'");
    assert.deepStrictEqual(rows, [{ n: '0' }], 'after rollback');
    await conn.beginTransaction();
    await conn.query("INSERT INTO mysql2_items (name, qty) VALUES ('committed', 7)");
    await conn.commit();
    [rows] = await other.execute('SELECT qty FROM mysql2_items WHERE name = ?', ['committed']);
    assert.deepStrictEqual(rows, [{ qty: 7 }], 'seen by other after commit');
  });

  await step('errors 1062/23000 and 1146/42S02 (query and execute), connection keeps working', async () => {
    const dup = "Duplicate entry 'apple' for key 'name'";
    await expectError(conn.query("INSERT INTO mysql2_items (name, qty) VALUES ('apple', 1)"), 1062, '23000', dup);
    await expectError(conn.execute('INSERT INTO mysql2_items (name, qty) VALUES (?, ?)', ['apple', 1]), 1062, '23000', dup);
    const missing = `Table '${database}.mysql2_no_such_table' doesn't exist`;
    await expectError(conn.query('SELECT * FROM mysql2_no_such_table'), 1146, '42S02', missing);
    // The prepare itself fails for a missing table.
    await expectError(conn.execute('SELECT * FROM mysql2_no_such_table WHERE 1 = ?', [1]), 1146, '42S02', missing);
    const [rows] = await conn.execute('SELECT 41 + ? AS answer', [1]);
    assert.deepStrictEqual(rows, [{ answer: 42 }]);
  });

  await step('warnings: truncation under a non-strict sql_mode, division by zero', async () => {
    await conn.query("SET SESSION sql_mode = ''");
    let [res] = await conn.query("INSERT INTO mysql2_short VALUES ('abcdef')");
    assert.equal(res.warningStatus, 1, 'warning count of the truncating insert');
    let [rows] = await conn.query('SHOW WARNINGS');
    assert.deepStrictEqual(rows, [{ Level: 'Warning', Code: 1265, Message: "Data truncated for column 's' at row 1" }]);
    [res] = await conn.execute('INSERT INTO mysql2_short VALUES (?)', ['uvwxyz']);
    assert.equal(res.warningStatus, 1, 'warning count of the truncating prepared insert');
    [rows] = await conn.query('SELECT s FROM mysql2_short ORDER BY s');
    assert.deepStrictEqual(rows, [{ s: 'abc' }, { s: 'uvw' }]);
    await conn.query("SET SESSION sql_mode = 'ERROR_FOR_DIVISION_BY_ZERO'");
    [rows] = await conn.query('SELECT 1/0 AS q');
    assert.deepStrictEqual(rows, [{ q: null }]);
    [rows] = await conn.query('SHOW WARNINGS');
    assert.deepStrictEqual(rows, [{ Level: 'Warning', Code: 1365, Message: 'Division by 0' }]);
    await conn.query('SET SESSION sql_mode = DEFAULT');
  });

  await step('multiple result sets: multi-statement query, CALL via query and via execute', async () => {
    const [results] = await conn.query(
      "SELECT 1 AS a; SELECT 'two' AS b, NULL AS c; UPDATE mysql2_items SET qty = qty WHERE id = 1",
    );
    assert.equal(results.length, 3);
    assert.deepStrictEqual(results[0], [{ a: 1 }]);
    assert.deepStrictEqual(results[1], [{ b: 'two', c: null }]);
    assert.equal(results[2].affectedRows, 1, 'UPDATE result (matched rows)');
    for (const [how, run] of [
      ['query', () => conn.query('CALL mysql2_two_results(?)', [21])],
      ['execute', () => conn.execute('CALL mysql2_two_results(?)', [21])],
    ]) {
      const [sets] = await run();
      // Two SELECT results, then the CALL's own status.
      assert.equal(sets.length, 3, `${how}: result count`);
      assert.deepStrictEqual(sets[0], [{ first_k: 21 }], `${how}: first result`);
      assert.deepStrictEqual(sets[1], [{ doubled: '42', tag: 'two' }], `${how}: second result`);
      assert.equal(sets[2].constructor.name, 'ResultSetHeader', `${how}: status result`);
    }
    const [rows] = await conn.query("SELECT 'after' AS x");
    assert.deepStrictEqual(rows, [{ x: 'after' }]);
  });

  await step('USE the same database, ping', async () => {
    await conn.query(`USE \`${database}\``);
    let [rows] = await conn.query('SELECT DATABASE() AS db');
    assert.deepStrictEqual(rows, [{ db: database }]);
    await conn.ping();
    [rows] = await conn.execute('SELECT COUNT(*) AS n FROM mysql2_items');
    assert.deepStrictEqual(rows, [{ n: '5' }]);
  });

  await step('10,000-row result: text, binary and streamed, with checksums', async () => {
    const expectedMd5 = crypto
      .createHash('md5')
      .update(Array.from({ length: 10000 }, (_, i) => `row-${i + 1}`).join(','))
      .digest('hex');
    let expectedSq = 0;
    for (let n = 1; n <= 10000; n++) expectedSq += n * n;
    const checkRows = (rows, how) => {
      assert.equal(rows.length, 10000, `${how} row count`);
      let sum = 0;
      let sq = 0;
      for (const r of rows) {
        sum += Number(r.n);
        sq += Number(r.sq);
      }
      assert.equal(sum, 50005000, `${how} sum`);
      assert.equal(sq, expectedSq, `${how} sum of squares`);
      const md5 = crypto.createHash('md5').update(rows.map((r) => r.label).join(',')).digest('hex');
      assert.equal(md5, expectedMd5, `${how} md5 of labels`);
    };
    checkRows((await conn.query(digitsCte(10000)))[0], 'text');
    checkRows((await conn.execute(digitsCte(10000)))[0], 'binary');
    const streamed = [];
    for await (const row of conn.connection.query(digitsCte(10000)).stream()) streamed.push(row);
    checkRows(streamed, 'streamed');
  });

  await step(`value of ${BIG_VALUE_BYTES} bytes (over 16 MiB) as a binary-protocol parameter`, async () => {
    const [[{ limit }]] = await conn.query('SELECT @@max_allowed_packet AS `limit`');
    if (Number(limit) < BIG_VALUE_BYTES + 1024 * 1024) {
      throw new Skipped(`server max_allowed_packet is ${limit}, needs at least ${BIG_VALUE_BYTES + 1024 * 1024}`);
    }
    const big = Buffer.alloc(BIG_VALUE_BYTES);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 8)) & 0xff;
    await conn.query('CREATE TABLE mysql2_big (id INT PRIMARY KEY, v LONGBLOB)');
    const [res] = await conn.execute('INSERT INTO mysql2_big VALUES (?, ?)', [1, big]);
    assert.equal(res.affectedRows, 1);
    let [rows] = await conn.query('SELECT LENGTH(v) AS len, MD5(v) AS md5 FROM mysql2_big');
    assert.deepStrictEqual(rows, [{ len: BIG_VALUE_BYTES, md5: crypto.createHash('md5').update(big).digest('hex') }]);
    [rows] = await conn.execute('SELECT v FROM mysql2_big WHERE id = ?', [1]);
    assert.ok(rows[0].v.equals(big), 'value read back (binary protocol) differs');
    await conn.query('DROP TABLE mysql2_big');
  });

  await step('drop every object and close', async () => {
    await dropAll(conn);
    const [rows] = await conn.query(
      "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'mysql2\\_%'",
    );
    assert.deepStrictEqual(rows, [{ n: '0' }]);
    await Promise.all([conn.end(), other.end(), changed.end()]);
  });

  console.log(`[${DRIVER}] session passed`);
}

main();

'use strict';
// Differential probe for node mysql2: runs one session and prints everything
// the driver reports, one JSON line per step, so that a run directly against
// MariaDB and a run through Airlock can be compared line by line
// (protocol-tests/mysql_driver_probes.rs does that).
//
// Covers `query` (text protocol) and `execute` (COM_STMT_PREPARE +
// COM_STMT_EXECUTE, binary protocol), multipleStatements, rowsAsArray,
// typeCast, dateStrings, supportBigNumbers, streamed results, a pool,
// changeUser, ping, reset, compression, warnings and errors mid-batch.
//
// Connection settings: MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_PASSWORD,
// MYSQL_DATABASE (no TLS). Statements the probe writes start with `/*app*/`
// (see scripts/driver-corpus/capture.py). Nothing printed depends on who
// connected: no connection ids or user names. Objects are prefixed `prb2_`.

const crypto = require('node:crypto');
const mysql = require('mysql2');

setTimeout(() => {
  console.log('TIMEOUT');
  process.exit(3);
}, 300_000).unref();

const A = '/*app*/ ';

function base(extra = {}) {
  return {
    host: process.env.MYSQL_HOST,
    port: Number(process.env.MYSQL_PORT),
    user: process.env.MYSQL_USER,
    password: process.env.MYSQL_PASSWORD || '',
    database: process.env.MYSQL_DATABASE,
    connectTimeout: 20_000,
    ...extra,
  };
}

function norm(v) {
  if (v === null || v === undefined) return [String(v), null];
  if (Buffer.isBuffer(v)) {
    return v.length > 64 ? ['Buffer', v.length, crypto.createHash('md5').update(v).digest('hex')]
      : ['Buffer', v.toString('hex')];
  }
  if (typeof v === 'string' && v.length > 64) {
    return ['string', v.length, crypto.createHash('md5').update(v, 'utf8').digest('hex')];
  }
  if (v instanceof Date) return ['Date', isNaN(v) ? 'Invalid' : v.toISOString()];
  if (typeof v === 'bigint') return ['bigint', v.toString()];
  if (Array.isArray(v)) return v.map(norm);
  if (typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v)) out[k] = norm(v[k]);
    return out;
  }
  return [typeof v, v];
}

// Column definitions as the driver parsed them.
function fields(f) {
  if (!f) return null;
  if (Array.isArray(f) && Array.isArray(f[0])) return f.map(fields);
  return f.map((c) => (c ? {
    name: c.name, orgName: c.orgName, table: c.table, orgTable: c.orgTable, db: c.db,
    type: c.columnType, length: c.columnLength, flags: c.flags, decimals: c.decimals,
    charset: c.characterSet, encoding: c.encoding,
  } : null));
}

// A result header (OK packet) or rows, as the driver gives them.
function result(r) {
  if (Array.isArray(r)) {
    if (r.length && (Array.isArray(r[0]) || (r[0] && r[0].constructor && r[0].constructor.name === 'ResultSetHeader'))) {
      return r.map(result);
    }
    return { rows: r.map(norm) };
  }
  if (r && typeof r === 'object') {
    return {
      affectedRows: r.affectedRows, insertId: r.insertId, info: r.info, serverStatus: r.serverStatus,
      warningStatus: r.warningStatus, changedRows: r.changedRows, fieldCount: r.fieldCount,
      stateChanges: r.stateChanges,
    };
  }
  return norm(r);
}

function emit(step, value) {
  console.log(JSON.stringify({ step, result: value }));
}

function errOf(e) {
  return { error: e.code, errno: e.errno, sqlState: e.sqlState, sqlMessage: e.sqlMessage, fatal: !!e.fatal };
}

const S = { conn: null };

function open(extra = {}) {
  return new Promise((resolve, reject) => {
    const c = mysql.createConnection(base(extra));
    c.on('error', () => {});
    c.connect((e) => (e ? reject(e) : resolve(c)));
  });
}

function call(conn, method, sql, values, opts = {}) {
  return new Promise((resolve) => {
    const q = typeof sql === 'string' ? { sql, ...opts } : sql;
    const cb = (e, rows, f) => {
      if (e) resolve({ error: errOf(e) });
      else resolve({ result: result(rows), fields: fields(f) });
    };
    if (values === undefined) conn[method](q, cb);
    else conn[method](q, values, cb);
  });
}

async function step(name, fn) {
  let value;
  try {
    value = await fn();
  } catch (e) {
    value = { thrown: e && e.code ? errOf(e) : String(e) };
  }
  emit(name, value);
  if (S.conn && S.conn._fatalError) {
    S.conn = await open({ multipleStatements: true });
    emit(`${name}.reconnected`, true);
  }
}

const TYPES = "id INT PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, "
  + "mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED, "
  + "de DECIMAL(30,10), f FLOAT, d DOUBLE, dt DATE, tm TIME(6), dtm DATETIME, dtm6 DATETIME(6), "
  + "ts TIMESTAMP(3) NULL DEFAULT NULL, y YEAR, b1 BIT(1), b64 BIT(64), e ENUM('a','b','ç'), "
  + "s SET('x','y','z'), j JSON, c CHAR(5), vc VARCHAR(100), bn BINARY(4), vb VARBINARY(10), "
  + "t TEXT, mt MEDIUMTEXT, bl BLOB, lb LONGBLOB";
const COLS = TYPES.split(', ').map((c) => c.split(' ')[0]).filter((c) => !c.includes("'") && !/^\d/.test(c));
const ROWS = [
  "(1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, "
  + "'-12345678901234567890.0123456789', -3.4e38, -1.7976931348623157e308, '1000-01-01', '-838:59:58.999999', "
  + "'1000-01-01 00:00:00', '1000-01-01 00:00:00.000001', '1970-01-02 00:00:00.001', 1901, b'0', b'0', 'a', '', "
  + "'[]', '', '', x'00', x'', '', '', x'', x'')",
  "(2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, "
  + "18446744073709551615, '12345678901234567890.0123456789', 3.4e38, 1.7976931348623157e308, '9999-12-31', "
  + "'838:59:58.999999', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999', 2155, "
  + "b'1', x'ffffffffffffffff', 'ç', 'x,y,z', '{\"a\": [1, 2.5, \"ü\", null, true]}', 'abcde', 'żółw 🐢', "
  + "x'01020304', x'00ff00ff', REPEAT('é', 1000), REPEAT('m', 70000), REPEAT(x'ab', 3000), REPEAT(x'ef', 100000))",
  `(3${', NULL'.repeat(32)})`,
];

async function main() {
  emit('mode', 'mysql2');
  S.conn = await open({ multipleStatements: true });
  const c = () => S.conn;
  await step('setup', () => call(c(), 'query', `${A}DROP TABLE IF EXISTS prb2_types, prb2_items, prb2_big`));
  await step('setup.proc', () => call(c(), 'query', `${A}DROP PROCEDURE IF EXISTS prb2_proc`));
  await step('create.types', () => call(c(), 'query', `${A}CREATE TABLE prb2_types (${TYPES})`));
  await step('create.items', () => call(c(), 'query', `${A}CREATE TABLE prb2_items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) UNIQUE, qty INT)`));
  await step('create.proc', () => call(c(), 'query', `${A}CREATE PROCEDURE prb2_proc(IN a INT, INOUT b INT, OUT c VARCHAR(10)) BEGIN SELECT a AS a_in, b AS b_in; SET b = a + b, c = CONCAT('c', a); SELECT name FROM prb2_items ORDER BY id; END`));
  for (const [n, row] of ROWS.entries()) {
    await step(`insert.types.${n}`, () => call(c(), 'query', `${A}INSERT INTO prb2_types VALUES ${row}`));
  }
  const all = `${A}SELECT * FROM prb2_types ORDER BY id`;
  await step('select.text', () => call(c(), 'query', all));
  await step('select.binary', () => call(c(), 'execute', `${A}SELECT * FROM prb2_types WHERE id > ? ORDER BY id`, [0]));
  for (const col of COLS) {
    await step(`select.binary.${col}`, () => call(c(), 'execute', `${A}SELECT ${col} FROM prb2_types WHERE id > ? ORDER BY id`, [0]));
  }
  await step('select.text.array', () => call(c(), 'query', all, undefined, { rowsAsArray: true }));
  await step('select.binary.array', () => call(c(), 'execute', `${A}SELECT * FROM prb2_types WHERE id > ?`, [0], { rowsAsArray: true }));
  await step('select.text.nested', () => call(c(), 'query', `${A}SELECT a.id, b.id FROM prb2_types a JOIN prb2_types b ON a.id = b.id`, undefined, { nestTables: true }));
  await step('select.typecast', () => call(c(), 'query', all, undefined, {
    typeCast: (field, next) => (field.type === 'BIT' ? ['bit', field.buffer()] : next()),
  }));
  const big = await open({ supportBigNumbers: true, bigNumberStrings: true, dateStrings: true, decimalNumbers: true });
  await step('select.bignumbers.text', () => call(big, 'query', all));
  await step('select.bignumbers.binary', () => call(big, 'execute', `${A}SELECT * FROM prb2_types WHERE id > ? ORDER BY id`, [0]));
  big.destroy();
  await step('exprs.binary', () => call(c(), 'execute', `${A}SELECT ?, ?, ?, ?, ?, ?, ?, ?`, [1, -1, '1.50', 2.5, 'żółw', null, Buffer.from([0, 255]), new Date(Date.UTC(2020, 0, 2))]));
  await step('exprs.text', () => call(c(), 'query', `${A}SELECT ?, ?, ?, ?, ?`, [1, 'x\'y', null, Buffer.from([1]), [1, 2]]));

  await step('insert.multi', () => call(c(), 'query', `${A}INSERT INTO prb2_items (name, qty) VALUES ('a', 1), ('b', 2), ('c', 3)`));
  await step('insert.execute', () => call(c(), 'execute', `${A}INSERT INTO prb2_items (name, qty) VALUES (?, ?)`, ['d', 4]));
  await step('update.info', () => call(c(), 'query', `${A}UPDATE prb2_items SET qty = 2 WHERE qty <= 2`));
  await step('update.execute', () => call(c(), 'execute', `${A}UPDATE prb2_items SET qty = ? WHERE qty <= ?`, [3, 3]));
  await step('insert.bulk', () => call(c(), 'query', `${A}INSERT INTO prb2_items (name, qty) VALUES ?`, [[['e', 5], ['f', 6]]]));
  await step('insert.dup', () => call(c(), 'execute', `${A}INSERT INTO prb2_items (name, qty) VALUES (?, ?)`, ['a', 1]));
  await step('after.dup', () => call(c(), 'execute', `${A}SELECT COUNT(*) AS n FROM prb2_items`, []));

  await step('warn.mode', () => call(c(), 'query', `${A}SET SESSION sql_mode = ''`));
  await step('warn.insert', () => call(c(), 'query', `${A}INSERT INTO prb2_items (name, qty) VALUES ('this name is far too long', 'x')`));
  await step('warn.show', () => call(c(), 'query', `${A}SHOW WARNINGS`));
  await step('warn.execute', () => call(c(), 'execute', `${A}INSERT INTO prb2_items (name, qty) VALUES (?, ?)`, ['another name far too long', 'y']));
  await step('warn.show2', () => call(c(), 'query', `${A}SHOW WARNINGS`));
  await step('warn.select', () => call(c(), 'execute', `${A}SELECT 1/0 AS z`, []));

  await step('multi', () => call(c(), 'query', `${A}SELECT 1 AS one; SELECT 'two' AS two; UPDATE prb2_items SET qty = qty WHERE id = 1; SELECT 3 AS three`));
  await step('multi.error', () => call(c(), 'query', `${A}SELECT 1; SELECT * FROM prb2_nope; SELECT 3`));
  await step('multi.recover', () => call(c(), 'query', `${A}SELECT 'ok' AS ok`));
  await step('call.text', () => call(c(), 'query', `${A}CALL prb2_proc(1, @x, @y); SELECT @x, @y`));
  await step('call.execute', () => call(c(), 'execute', `${A}CALL prb2_proc(?, ?, ?)`, [2, 3, null]));
  await step('call.vars', () => call(c(), 'query', `${A}SELECT @x, @y`));
  await step('err.syntax', () => call(c(), 'query', `${A}SELEC 1`));
  await step('err.execute', () => call(c(), 'execute', `${A}SELECT * FROM prb2_nope WHERE id = ?`, [1]));
  await step('err.signal', () => call(c(), 'query', `${A}SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom ü', MYSQL_ERRNO = 1644`));
  await step('kill.none', () => call(c(), 'query', `${A}KILL QUERY 999999999`));

  await step('tx.begin', () => new Promise((r) => c().beginTransaction((e) => r(e ? errOf(e) : 'ok'))));
  await step('tx.insert', () => call(c(), 'query', `${A}INSERT INTO prb2_items (name, qty) VALUES ('tx', 1)`));
  await step('tx.status', () => call(c(), 'query', `${A}SELECT @@in_transaction AS t`));
  await step('tx.rollback', () => new Promise((r) => c().rollback((e) => r(e ? errOf(e) : 'ok'))));
  await step('tx.after', () => call(c(), 'query', `${A}SELECT COUNT(*) AS n FROM prb2_items WHERE name = 'tx'`));

  await step('stream', () => new Promise((resolve) => {
    const got = [];
    c().query(`${A}SELECT id, vc FROM prb2_types ORDER BY id`).stream()
      .on('data', (row) => got.push(norm(row)))
      .on('error', (e) => resolve({ error: errOf(e) }))
      .on('end', () => resolve(got));
  }));
  await step('ping', () => new Promise((r) => c().ping((e) => r(e ? errOf(e) : 'ok'))));
  await step('reset', () => new Promise((r) => {
    if (typeof c().reset !== 'function') return r('no reset in this version');
    return c().reset((e) => r(e ? errOf(e) : 'ok'));
  }));
  await step('set.var', () => call(c(), 'query', `${A}SET @prb = 1`));
  await step('change_user', () => new Promise((r) => c().changeUser({
    user: process.env.MYSQL_USER, password: process.env.MYSQL_PASSWORD || '', database: process.env.MYSQL_DATABASE,
  }, (e) => r(e ? errOf(e) : 'ok'))));
  await step('change_user.after', () => call(c(), 'query', `${A}SELECT @prb AS v, DATABASE() IS NOT NULL AS d`));

  await step('big.allowed', () => call(c(), 'query', `${A}SELECT @@max_allowed_packet >= 64 * 1024 * 1024 AS ok`));
  const b = Buffer.alloc(17 * 1024 * 1024 + 3, 7);
  await step('big.create', () => call(c(), 'query', `${A}CREATE TABLE prb2_big (id INT PRIMARY KEY, v LONGBLOB)`));
  await step('big.insert.execute', () => call(c(), 'execute', `${A}INSERT INTO prb2_big VALUES (?, ?)`, [1, b]));
  await step('big.insert.query', () => call(c(), 'query', `${A}INSERT INTO prb2_big VALUES (?, ?)`, [2, b]));
  await step('big.select.execute', () => call(c(), 'execute', `${A}SELECT id, v FROM prb2_big WHERE id > ?`, [0]));
  await step('big.select.query', () => call(c(), 'query', `${A}SELECT id, v FROM prb2_big`));

  await step('compress', async () => {
    const z = await open({ compress: true });
    const r = await call(z, 'query', `${A}SELECT REPEAT('c', 100000) AS c, 1 AS one`);
    const r2 = await call(z, 'execute', `${A}SELECT ? AS p`, ['x'.repeat(70000)]);
    z.destroy();
    return [r, r2];
  });

  await step('pool', async () => {
    const pool = mysql.createPool(base({ connectionLimit: 1 }));
    const p = pool.promise();
    const out = [];
    out.push(result((await p.query(`${A}SET @pooled = 1`))[0]));
    out.push(result((await p.query(`${A}SELECT @pooled AS v`))[0]));
    out.push(result((await p.execute(`${A}SELECT ? AS v`, [5]))[0]));
    await p.end();
    return out;
  });

  await step('cleanup', () => call(c(), 'query', `${A}DROP TABLE IF EXISTS prb2_types, prb2_items, prb2_big; DROP PROCEDURE IF EXISTS prb2_proc`));
  S.conn.end();
  emit('end', 'ok');
}

main().catch((e) => {
  console.log(JSON.stringify({ step: 'crash', result: String(e && e.stack) }));
  process.exit(2);
});

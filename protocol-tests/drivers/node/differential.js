'use strict';
// node-postgres differential probe: what its own test suite exercises (named
// prepared statements, rowMode array, text and binary types, a portal read
// in batches, COPY in and out, notifications, an error mid-pipeline and in a
// transaction, startup options, cancellation, statement_timeout, a pool).
// Prints one JSON line per case, errors included, so that a run against the
// server and one through Airlock can be compared line by line.
//
// Connection settings come from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
// Objects it creates are prefixed `npdiff_`.
const { Client, Pool, Query } = require('pg');
const { from: copyFrom, to: copyTo } = require('pg-copy-streams');
const cfg = {
  host: process.env.PGHOST,
  port: +process.env.PGPORT,
  user: process.env.PGUSER,
  password: process.env.PGPASSWORD || undefined,
  database: process.env.PGDATABASE,
};
// A stuck gateway must fail this script, not hang the caller.
setTimeout(() => { console.error('npdiff: deadline passed'); process.exit(2); }, 60_000).unref();
const out = {};
async function rec(name, fn) {
  try { out[name] = await fn(); } catch (e) { out[name] = { error: e.code || String(e), message: e.message }; }
}
(async () => {
  const c = new Client(cfg); await c.connect();
  await c.query('DROP TABLE IF EXISTS npdiff_t; CREATE TABLE npdiff_t (id int primary key, v text, b bytea, j jsonb, ts timestamptz)');
  await rec('named', async () => {
    const r1 = await c.query({ name: 'npdiff_sel', text: 'SELECT $1::int + 1 AS x', values: [1] });
    const r2 = await c.query({ name: 'npdiff_sel', text: 'SELECT $1::int + 1 AS x', values: [41] });
    return [r1.rows, r2.rows];
  });
  await rec('rowMode', async () => (await c.query({ text: 'SELECT 1 AS a, $1::text AS b', values: ['x'], rowMode: 'array' })).rows);
  await rec('types', async () => {
    await c.query("INSERT INTO npdiff_t VALUES (1, 'a', '\\x0102ff', '{\"k\": [1,2]}', '2020-01-02T03:04:05Z')");
    const r = await c.query({ text: 'SELECT id, v, b, j, ts, 1.5::numeric n, ARRAY[1,2] arr, NULL::int nul FROM npdiff_t' });
    return r.rows.map(x => ({ ...x, b: x.b.toString('hex'), ts: x.ts.toISOString() }));
  });
  await rec('binary', async () => (await c.query({ text: 'SELECT 42::int4 AS i, true AS t', binary: true })).rows.map(r => Object.keys(r).map(k => Buffer.isBuffer(r[k]) ? r[k].toString('hex') : r[k])));
  await rec('portal_rows', async () => {
    await c.query('BEGIN');
    const got = [];
    const q = new Query({ text: 'SELECT g FROM generate_series(1, 7) g', rows: 3 });
    await new Promise((res, rej) => { q.on('row', r => got.push(r.g)); q.on('end', res); q.on('error', rej); c.query(q); });
    await c.query('COMMIT');
    return got;
  });
  await rec('copy_in_out', async () => {
    await c.query('DELETE FROM npdiff_t');
    await new Promise((res, rej) => { const s = c.query(copyFrom('COPY npdiff_t (id, v) FROM STDIN')); s.on('finish', res); s.on('error', rej); s.write('10\tx\n11\ty\n'); s.end(); });
    const chunks = [];
    await new Promise((res, rej) => { const s = c.query(copyTo('COPY (SELECT id, v FROM npdiff_t ORDER BY id) TO STDOUT')); s.on('data', d => chunks.push(d)); s.on('end', res); s.on('error', rej); });
    return Buffer.concat(chunks).toString();
  });
  await rec('notify', async () => {
    const l = new Client(cfg); await l.connect();
    await l.query('LISTEN npdiff_chan');
    const got = new Promise(res => l.on('notification', n => res({ channel: n.channel, payload: n.payload })));
    await c.query("NOTIFY npdiff_chan, 'hello'");
    const n = await got; await l.end(); return n;
  });
  await rec('error_mid_pipeline', async () => {
    const ps = [c.query('SELECT 1 AS a'), c.query('SELECT 1/0'), c.query('SELECT 3 AS c')];
    const rs = await Promise.allSettled(ps);
    return rs.map(r => r.status === 'fulfilled' ? r.value.rows : { error: r.reason.code });
  });
  await rec('error_in_tx', async () => {
    await c.query('BEGIN');
    const e1 = await c.query('SELECT 1/0').catch(e => e.code);
    const e2 = await c.query('SELECT 1').catch(e => e.code);
    await c.query('ROLLBACK');
    return [e1, e2];
  });
  await rec('options_search_path', async () => {
    const o = new Client({ ...cfg, options: '-c search_path=pg_catalog,public -c application_name=npdiff_probe' }); await o.connect();
    const r = await o.query("SELECT current_setting('search_path') sp, current_setting('application_name') an");
    // Through Airlock the server's name carries the prefix naming the agent
    // and session (airlock:<identity>:<session>:); the client's part follows.
    await o.end(); return r.rows.map(row => ({ ...row, an: row.an.replace(/^airlock:[^:]*:[^:]*:/, '') }));
  });
  await rec('cancel', async () => {
    const k = new Client(cfg); await k.connect();
    const t0 = Date.now();
    const p = k.query('SELECT pg_sleep(5)').then(() => 'completed', e => e.code);
    await new Promise(r => setTimeout(r, 300));
    const net = require('net');
    await new Promise((res, rej) => {
      const s = net.connect(cfg.port, cfg.host, () => {
        const b = Buffer.alloc(16);
        b.writeInt32BE(16, 0); b.writeInt32BE(80877102, 4);
        b.writeInt32BE(k.processID, 8); b.writeInt32BE(k.secretKey, 12);
        s.end(b);
      });
      s.on('close', res); s.on('error', rej);
    });
    const code = await p; await k.end();
    return { code, fast: Date.now() - t0 < 4000 };
  });
  await rec('statement_timeout', async () => {
    await c.query("SET statement_timeout = '200ms'");
    const e = await c.query('SELECT pg_sleep(2)').catch(e => e.code);
    await c.query('RESET statement_timeout');
    return e;
  });
  await rec('pool', async () => {
    const pool = new Pool({ ...cfg, max: 3 });
    const rs = await Promise.all([...Array(10).keys()].map(i => pool.query('SELECT $1::int AS i', [i])));
    await pool.end(); return rs.map(r => r.rows[0].i);
  });
  await c.query('DROP TABLE npdiff_t'); await c.end();
  for (const k of Object.keys(out)) console.log(JSON.stringify([k, out[k]]));
})().catch(e => { console.error('probe failed', e); process.exit(1); });

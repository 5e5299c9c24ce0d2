// node-postgres and mysql2 traffic for the driver corpus (see capture.py).
// Application statements start with the marker comment /*app*/; everything
// else in the server's log was sent by the driver on its own.
// Usage: node sessions.js {pg|mysql2} DB   (NODE_PATH must find the drivers)
'use strict';

const APP = '/*app*/ ';

async function pgSession(db) {
  const { Client, Pool } = require('pg');
  const client = new Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: db });
  await client.connect();
  await client.query(APP + 'CREATE TABLE t (id int, v text)');
  await client.query(APP + 'BEGIN');
  await client.query(APP + 'INSERT INTO t VALUES ($1, $2)', [1, 'a']);
  await client.query({ name: 'named', text: APP + 'SELECT * FROM t WHERE id = $1', values: [1] });
  await client.query({ name: 'named', text: APP + 'SELECT * FROM t WHERE id = $1', values: [2] });
  await client.query({ text: APP + 'SELECT * FROM t', rowMode: 'array' });
  await client.query(APP + 'COMMIT');
  await client.query(APP + 'DROP TABLE t');
  await client.end();
  const pool = new Pool({ host: '127.0.0.1', port: 5432, user: 'postgres', database: db, max: 2 });
  const c = await pool.connect();
  await c.query(APP + 'SELECT 1');
  c.release();
  await pool.query(APP + 'SELECT 2');
  await pool.end();
}

async function mysql2Session(db) {
  const mysql = require('mysql2/promise');
  const conn = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', database: db });
  await conn.query(APP + 'CREATE TABLE t (id int, v text)');
  await conn.beginTransaction();
  await conn.execute(APP + 'INSERT INTO t VALUES (?, ?)', [1, 'a']);
  await conn.rollback();
  await conn.beginTransaction();
  await conn.query(APP + 'INSERT INTO t VALUES (?, ?)', [2, 'b']);
  await conn.commit();
  await conn.execute(APP + 'SELECT * FROM t WHERE id = ?', [2]);
  await conn.ping();
  await conn.changeUser({ user: 'root', database: db });
  await conn.query(APP + 'DROP TABLE t');
  await conn.end();
  const pool = mysql.createPool({ host: '127.0.0.1', port: 3306, user: 'root', database: db, connectionLimit: 2 });
  const c = await pool.getConnection();
  await c.query(APP + 'SELECT 1');
  c.release();
  await pool.query(APP + 'SELECT 2');
  await pool.end();
}

const [which, db] = process.argv.slice(2);
(which === 'pg' ? pgSession(db) : mysql2Session(db)).catch((e) => {
  console.error(e);
  process.exit(1);
});

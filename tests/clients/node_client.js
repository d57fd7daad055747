// node-postgres against a running `discern serve` over TLS (verifying the server
// certificate): parameters through the extended protocol, a cursor (Execute with a row
// limit), an error and the connection after it. Run by tests/clients.rs.
'use strict';
const fs = require('fs');
const path = require('path');
const modules = process.env.DISCERN_NODE_MODULES;
const { Client } = require(path.join(modules, 'pg'));
const Cursor = require(path.join(modules, 'pg-cursor'));

function check(name, condition, detail) {
  if (!condition) {
    throw new Error(`${name}: ${JSON.stringify(detail)}`);
  }
  console.log(`ok  ${name}`);
}

async function main() {
  const client = new Client({
    host: process.env.DISCERN_HOST,
    port: Number(process.env.DISCERN_PORT),
    user: process.env.DISCERN_USER,
    password: process.env.DISCERN_PASSWORD,
    database: 'discern',
    ssl: { ca: fs.readFileSync(process.env.DISCERN_CERT, 'utf8'), servername: 'localhost' },
  });
  await client.connect();
  const res = await client.query(
    'SELECT count(*) AS n, avg(value) AS mean FROM measurements WHERE biomarker = $1',
    ['iron'],
  );
  // int8 arrives as a string in node-postgres (no loss of precision), float8 as a number.
  check('node-pg parameters', Number(res.rows[0].n) > 0 && typeof res.rows[0].mean === 'number', res.rows);

  const cursor = client.query(new Cursor('SELECT sample_id FROM samples ORDER BY sample_id'));
  const first = await cursor.read(10);
  const second = await cursor.read(10);
  await cursor.close();
  check('node-pg cursor reads in pages', first.length === 10 && second.length === 10 &&
    first[9].sample_id < second[0].sample_id, [first.length, second.length]);

  try {
    await client.query('SELECT * FROM no_such_table');
    throw new Error('no error');
  } catch (e) {
    check('node-pg SQLSTATE 42P01', e.code === '42P01', e.code);
  }
  const after = await client.query('SELECT auc(m.value, s.is_case) AS auc FROM measurements m JOIN samples s USING (sample_id) WHERE biomarker = $1', ['iron']);
  check('node-pg usable after an error', after.rows[0].auc >= 0 && after.rows[0].auc <= 1, after.rows);
  const types = await client.query(
    "SELECT CAST(1 AS BIGINT) AS i8, CAST(2 AS INT) AS i4, CAST(0.5 AS DOUBLE) AS f8, 'x' AS t, " +
    "true AS b, CAST('2024-01-02 03:04:05' AS TIMESTAMP) AS ts, CAST(1.25 AS DECIMAL(10, 2)) AS n, " +
    '[1, 2, 3] AS arr');
  const r = types.rows[0];
  check('node-pg types', r.i8 === '1' && r.i4 === 2 && r.f8 === 0.5 && r.t === 'x' && r.b === true &&
    r.ts instanceof Date && r.n === '1.25' && JSON.stringify(r.arr.map(Number)) === '[1,2,3]', r);
  const limited = await client.query(
    'SELECT sample_id FROM samples ORDER BY sample_id LIMIT $1 OFFSET $2', [3, 2]);
  check('node-pg LIMIT $1 OFFSET $2 with numbers', JSON.stringify(limited.rows.map((x) => Number(x.sample_id))) === '[3,4,5]', limited.rows);
  const one = await client.query('SELECT 1 AS one');
  // int4, as PostgreSQL types the literal: node-postgres returns a number, not a string.
  check('node-pg SELECT 1 is an integer', one.rows[0].one === 1 && one.fields[0].dataTypeID === 23, one.fields);
  const db = await client.query('SELECT current_database() AS db');
  check('node-pg current_database()', db.rows[0].db === 'discern', db.rows);
  const paged = client.query(new Cursor(
    'SELECT sample_id FROM samples ORDER BY sample_id LIMIT $1', [7]));
  const page = await paged.read(5);
  const last = await paged.read(5);
  await paged.close();
  check('node-pg cursor with a LIMIT parameter', page.length === 5 && last.length === 2, [page.length, last.length]);
  const mw = await client.query("SELECT mann_whitney(m.value, s.is_case) AS mw FROM measurements m JOIN samples s USING (sample_id) WHERE biomarker = 'iron'");
  check('node-pg STRUCT as a record', /^\(.*,.*,.*\)$/.test(mw.rows[0].mw), mw.rows);
  await client.end();
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});

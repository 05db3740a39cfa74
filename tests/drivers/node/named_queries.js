#!/usr/bin/env node
// named_queries.js HOST PORT
//
// Proves that node-postgres (pg) named queries work through pgvigil in
// transaction pooling mode, where a client's prepared statements must follow
// it onto whichever server connection it gets (pgvigil renames them per server
// connection). With 16 pg.Clients + a pg.Pool of 8 sharing 2 server
// connections, statements necessarily move between server connections.
// node-postgres sends Parse/Bind/Describe/Execute/Sync the first time a client
// uses a name and Bind/Describe/Execute/Sync afterwards. Checked:
//   - every result of ~200 named queries per client over 50 names/texts,
//     some inside BEGIN/COMMIT;
//   - the same name with the same text used by all clients concurrently;
//   - the same name ('own') with a different text in each client;
//   - a named query failing (division by zero) outside and inside a
//     transaction, after which the client goes on and reuses that statement.
// Exit 0 and "node-postgres OK: N queries, 0 errors" only if all is right.
'use strict'
const pg = require('pg')

const [host, portArg] = process.argv.slice(2)
if (!host || !portArg) {
  console.error('usage: node named_queries.js HOST PORT')
  process.exit(2)
}
const conn = { host, port: Number(portArg), user: 'postgres', database: 'postgres', password: '' }
const CLIENTS = 16
const POOL_SIZE = 8
const NAMES = 50
const failures = []
let queries = 0

// Fail rather than hang: a stuck query means a broken proxy.
const watchdog = setTimeout(() => {
  console.error(`TIMEOUT after 30 s (${queries} queries done, ${failures.length} failures so far)`)
  process.exit(1)
}, 30000)

function fail(who, msg) {
  failures.push(`${who}: ${msg}`)
}

// Named query q<k> = 'SELECT $1::int + k'; expect i + k.
async function named(q, who, k, i) {
  queries++
  try {
    const r = await q.query({ name: 'q' + k, text: 'SELECT $1::int + ' + k, values: [i] })
    const got = r.rows.length === 1 ? r.rows[0]['?column?'] : undefined
    if (got !== i + k) fail(who, `q${k}(${i}) returned ${JSON.stringify(r.rows)}, expected ${i + k}`)
  } catch (e) {
    fail(who, `q${k}(${i}) raised ${e.code || ''} ${e.message}`)
  }
}

// Named query 'div' = 'SELECT 100 / $1::int'; with 0 it must raise 22012.
async function div(client, who, d) {
  queries++
  try {
    const r = await client.query({ name: 'div', text: 'SELECT 100 / $1::int', values: [d] })
    if (d === 0) fail(who, `div(0) did not fail: ${JSON.stringify(r.rows)}`)
    else if (r.rows[0]['?column?'] !== Math.trunc(100 / d)) fail(who, `div(${d}) returned ${JSON.stringify(r.rows)}`)
  } catch (e) {
    if (d !== 0 || e.code !== '22012') fail(who, `div(${d}) raised ${e.code || ''} ${e.message}`)
  }
}

// Named query 'own' with a text that differs per client c.
async function own(client, who, c, i) {
  queries++
  try {
    const r = await client.query({ name: 'own', text: `SELECT $1::int + ${1000 * (c + 1)}`, values: [i] })
    if (r.rows[0]['?column?'] !== i + 1000 * (c + 1)) fail(who, `own(${i}) returned ${JSON.stringify(r.rows)}`)
  } catch (e) {
    fail(who, `own(${i}) raised ${e.code || ''} ${e.message}`)
  }
}

async function sql(client, who, text) {
  try {
    await client.query(text)
  } catch (e) {
    fail(who, `${text} raised ${e.code || ''} ${e.message}`)
  }
}

// One client: 10 rounds of 15 named queries + a BEGIN/5 named/COMMIT block,
// with 'own' and 'div' (including failures) mixed in.
async function runClient(c) {
  const who = `client${c}`
  const client = new pg.Client(conn)
  client.on('error', (e) => fail(who, `connection error ${e.message}`))
  try {
    await client.connect()
    let i = 0
    for (let round = 0; round < 10; round++) {
      for (let j = 0; j < 15; j++, i++) await named(client, who, (i * 7 + c * 3) % NAMES, i)
      await own(client, who, c, round)
      if (round === 3) {
        await div(client, who, 0) // error outside a transaction
        await div(client, who, 4) // same statement reused after its error
      }
      await sql(client, who, 'BEGIN')
      for (let j = 0; j < 5; j++, i++) await named(client, who, (i * 7 + c * 3) % NAMES, i)
      if (round === 6) {
        await div(client, who, 0) // error inside a transaction
        await sql(client, who, 'ROLLBACK')
        await div(client, who, 3)
      } else {
        await sql(client, who, 'COMMIT')
      }
    }
  } catch (e) {
    fail(who, `unexpected ${e.message}`)
  } finally {
    await client.end().catch(() => {})
  }
}

// Pool: POOL_SIZE workers each doing 200 named queries through pool.query,
// so each query may land on any of the pool's client connections.
async function runPool() {
  const pool = new pg.Pool({ ...conn, max: POOL_SIZE })
  pool.on('error', (e) => fail('pool', `idle client error ${e.message}`))
  const worker = async (w) => {
    for (let i = 0; i < 200; i++) await named(pool, `pool${w}`, (i * 11 + w) % NAMES, i)
  }
  try {
    await Promise.all(Array.from({ length: POOL_SIZE }, (_, w) => worker(w)))
  } finally {
    await pool.end().catch(() => {})
  }
}

async function main() {
  const started = Date.now()
  await Promise.all([...Array.from({ length: CLIENTS }, (_, c) => runClient(c)), runPool()])
  clearTimeout(watchdog)
  for (const f of failures.slice(0, 50)) console.error('FAIL ' + f)
  if (failures.length > 50) console.error(`... and ${failures.length - 50} more failures`)
  console.error(`${host}:${portArg}: ${queries} named queries in ${Date.now() - started} ms`)
  if (failures.length === 0) {
    console.log(`node-postgres OK: ${queries} queries, 0 errors`)
    process.exit(0)
  }
  console.log(`node-postgres FAILED: ${queries} queries, ${failures.length} errors`)
  process.exit(1)
}

main()

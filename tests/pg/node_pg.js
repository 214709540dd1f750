// node-postgres (`pg` from npm) against gatewatch's PostgreSQL front door, checked against
// POST /api/sql. Run by tests/it/postgres.rs: node node_pg.js PG_HOST PG_PORT HTTP_URL
// node-postgres prepares every parameterised query (Parse/Bind/Execute) and sends text values.
const { Client } = require("pg");

const [host, port, http] = process.argv.slice(2);

async function overHttp(sql) {
  const r = await fetch(http + "/api/sql", {
    method: "POST",
    headers: { "Content-Type": "text/plain", Accept: "application/json" },
    body: sql,
  });
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  return r.json();
}

function comparable(v) {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.getTime();
  if (typeof v === "string" && /^\d{4}-\d\d-\d\d[T ]\d\d:\d\d/.test(v)) return Date.parse(v.replace(" ", "T"));
  if (typeof v === "string" && v !== "" && !isNaN(Number(v))) return Number(v);
  if (typeof v === "number") return v;
  return v;
}

(async () => {
  const c = new Client({ host, port: Number(port), user: "gatewatch", database: "gatewatch" });
  await c.connect();
  const sql =
    "SELECT server, count(*) AS sessions, max(duration_s) AS longest FROM sessions" +
    " WHERE started >= $1 AND started < $2 AND server = ANY($3) GROUP BY server ORDER BY server";
  const got = await c.query(sql, [
    new Date("2020-03-24T08:30:00Z"),
    new Date("2020-03-24T09:15:00Z"),
    ["gw-01", "gw-06"],
  ]);
  const want = await overHttp(
    "SELECT server, count(*) AS sessions, max(duration_s) AS longest FROM sessions" +
      " WHERE started >= TIMESTAMP '2020-03-24 08:30:00' AND started < TIMESTAMP '2020-03-24 09:15:00'" +
      " AND server IN ('gw-01', 'gw-06') GROUP BY server ORDER BY server",
  );
  const cols = got.fields.map((f) => f.name);
  const a = JSON.stringify(got.rows.map((r) => cols.map((k) => comparable(r[k]))));
  const b = JSON.stringify(want.map((r) => cols.map((k) => comparable(r[k]))));
  if (a !== b || got.rows.length === 0) {
    console.error(`node-postgres and HTTP differ\n  pg:   ${a}\n  http: ${b}`);
    process.exit(1);
  }
  console.log(`node-postgres: ${got.rows.length} rows equal`);
  try {
    await c.query("DELETE FROM events");
    console.error("DELETE was not refused");
    process.exit(1);
  } catch (e) {
    if (e.code !== "25006") {
      console.error(`DELETE refused with ${e.code}: ${e.message}`);
      process.exit(1);
    }
  }
  await c.end();
  console.log("node_pg.js: all checks passed");
})().catch((e) => {
  console.error(e);
  process.exit(1);
});

/**
 * The fleet's PostgreSQL server (scripts/fleet/postgres.sh) as a Pulumi state backend for the e2e tests:
 * each test gets a table of its own (`?table=` of the backend URL, created by the CLI on first use) and
 * reads that table with the real `psql`. The password travels in PGPASSWORD only, never in a URL.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as zlib from "node:zlib";
import { type Inventory, loadInventory, run } from "./fleet";

/** One row of a state table: its key and its content, decoded (and gunzipped for `.gz` keys). */
export interface StateRow {
  key: string;
  text: string;
}

/** A Pulumi state backend in its own table of the fleet's database. */
export interface PostgresState {
  table: string;
  /** The backend URL with `table=`: for PULUMI_BACKEND_URL and `pulumi login`. No password. */
  url: string;
  /** The role's password (for redaction in error messages). */
  password: string;
  /** `PULUMI_BACKEND_URL` and `PGPASSWORD`, for {@link pulumiEnv}'s `extra`. */
  env: Record<string, string>;
  /** Runs one SQL statement as the state role with `psql -At`; its output. */
  sql(statement: string): Promise<string>;
  /** Every row of the table, sorted by key, content decoded. */
  rows(): Promise<StateRow[]>;
  /** Drops the table. */
  drop(): Promise<void>;
}

/** A new, empty state table `plb_TAG_<random>` (not created yet: the CLI creates it). */
export function postgresState(tag: string, inv: Inventory = loadInventory()): PostgresState {
  const pg = inv.postgres;
  if (!pg)
    throw new Error(
      "the fleet inventory has no postgres entry: run `sudo npm run fleet:up` with this checkout",
    );
  const table = `plb_${tag.replace(/[^a-z0-9]/g, "_")}_${randomBytes(4).toString("hex")}`;
  const password = fs.readFileSync(pg.passwordPath, "utf8").trim();
  const url = `${pg.url}&table=${table}`;
  const conninfo =
    `host=${pg.host} port=${pg.port} dbname=${pg.database} user=${pg.user} ` +
    `sslmode=verify-full sslrootcert=${pg.rootCertPath} connect_timeout=10`;
  const sql = async (statement: string) => {
    const r = await run(
      "psql",
      ["-X", "-A", "-t", "-q", "-F", "\t", "-v", "ON_ERROR_STOP=1", conninfo, "-c", statement],
      {
        env: { ...process.env, PGPASSWORD: password },
        timeoutMs: 60_000,
      },
    );
    if (r.code !== 0)
      throw new Error(`psql ${statement}: exit ${r.code}: ${r.stderr.split(password).join("[redacted]")}`);
    return r.stdout;
  };
  return {
    table,
    url,
    password,
    env: { PULUMI_BACKEND_URL: url, PGPASSWORD: password },
    sql,
    async rows() {
      const out = await sql(`SELECT key, data->>'data' FROM ${table} ORDER BY key`);
      return out
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => {
          const [key, b64] = l.split("\t");
          const bytes = Buffer.from(b64, "base64");
          return { key, text: (key.endsWith(".gz") ? zlib.gunzipSync(bytes) : bytes).toString("utf8") };
        });
    },
    async drop() {
      await sql(`DROP TABLE IF EXISTS ${table}`);
    },
  };
}

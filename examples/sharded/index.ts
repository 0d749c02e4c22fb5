// Runs one Pulumi stack per shard (a group of hosts), a few at a time, all with the same program
// (program.ts), through Pulumi's Automation API, and reports per shard. No scheduler of its own: a pool of
// at most `concurrency` stack operations, each one an ordinary `pulumi up`, `preview` or `destroy`.
//
//   node index.js SHARDS.json [up|preview|destroy] [--refresh] [--json REPORT.json] [--log-dir DIR]
//
// The state backend and passphrase come from Pulumi's own environment variables (PULUMI_BACKEND_URL,
// PULUMI_CONFIG_PASSPHRASE, ...), and `pulumi` must be on PATH. Exit code: 0 when every shard succeeded,
// 1 when one failed (the others still ran), 2 when the arguments or SHARDS.json are wrong (nothing ran).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type EngineEvent, LocalWorkspace } from "@pulumi/pulumi/automation";
import { lockedMessage, parseStackLocks } from "./lock";
import { type RolloutPolicy, type Shard, type ShardHost, type Summary, shardProgram } from "./program";

type Action = "up" | "preview" | "destroy";

interface ShardsFile extends RolloutPolicy {
  /** Pulumi project name shared by all shard stacks. */
  project: string;
  /** At most this many stack operations at once. */
  concurrency: number;
  shards: Shard[];
}

/** One shard's outcome. Containers are written `host/container`. */
export interface ShardReport {
  shard: string;
  action: Action;
  hosts: string[];
  ok: boolean;
  /** When the shard's stack operation started (ISO 8601), and how long it took. */
  started: string;
  durationMs: number;
  converted: string[];
  adopted: string[];
  /** `host/container (reason)`. */
  skipped: string[];
  /** `host/container: message`, or `host: discovery: message` for a host that could not be listed. */
  failed: string[];
  /** The engine's count of resources per operation (`create`, `same`, `delete`, ...). */
  changes: Record<string, number>;
  error?: string;
}

class UsageError extends Error {}

const USAGE =
  "usage: node index.js SHARDS.json [up|preview|destroy] [--refresh] [--json REPORT.json] [--log-dir DIR]";
// Refused in SHARDS.json: a plain-text file is no place for a password or a key.
const SECRET_FIELDS = ["password", "privateKey", "privateKeyPassword"];
const STACK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

function parseArgs(argv: string[]) {
  const out = { file: "", action: "up" as Action, refresh: false, json: "", logDir: "" };
  const rest = [...argv];
  while (rest.length > 0) {
    const a = rest.shift() as string;
    if (a === "--refresh") out.refresh = true;
    else if (a === "--json" || a === "--log-dir") {
      const v = rest.shift();
      if (!v) throw new UsageError(`${a} needs a value\n${USAGE}`);
      if (a === "--json") out.json = v;
      else out.logDir = v;
    } else if (a === "up" || a === "preview" || a === "destroy") out.action = a;
    else if (!a.startsWith("-") && !out.file) out.file = a;
    else throw new UsageError(`unknown argument ${JSON.stringify(a)}\n${USAGE}`);
  }
  if (!out.file) throw new UsageError(USAGE);
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Reads and checks SHARDS.json; every complaint names the file, the shard and the host. */
function loadShards(file: string): ShardsFile {
  let text: string;
  let raw: unknown;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`${file}: cannot read it: ${(e as Error).message}`);
  }
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${file}: not valid JSON (${(e as Error).message}); see README.md for its format`);
  }
  const bad = (where: string, what: string) => new UsageError(`${file}: ${where}: ${what}`);
  if (!isObject(raw) || !Array.isArray(raw.shards) || raw.shards.length === 0)
    throw bad("top level", 'needs "shards": a non-empty list of {name, hosts}');
  const concurrency = raw.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || (concurrency as number) < 1)
    throw bad("concurrency", "must be a whole number >= 1");
  const project = raw.project ?? "lxc-btrfs-sharded";
  if (typeof project !== "string" || !STACK_NAME.test(project))
    throw bad("project", "must be a Pulumi project name (letters, digits, '_', '.', '-')");
  const defaults = isObject(raw.connection) ? raw.connection : {};
  const policy = (o: Record<string, unknown>): RolloutPolicy => ({
    canary: o.canary as RolloutPolicy["canary"],
    maxConcurrentPerHost: o.maxConcurrentPerHost as number | undefined,
    conversion: o.conversion as RolloutPolicy["conversion"],
  });
  const top = policy(raw);
  const owner = new Map<string, string>(); // host:port lxcPath -> shard
  const shards: Shard[] = raw.shards.map((s: unknown, i: number) => {
    if (!isObject(s) || typeof s.name !== "string" || !STACK_NAME.test(s.name))
      throw bad(`shards[${i}]`, "needs a name usable as a stack name (letters, digits, '_', '.', '-')");
    const shardName = s.name;
    if (!Array.isArray(s.hosts) || s.hosts.length === 0)
      throw bad(`shard ${shardName}`, 'needs "hosts": a non-empty list of {name, connection, lxcPath}');
    const hosts: ShardHost[] = s.hosts.map((h: unknown, j: number) => {
      if (!isObject(h) || typeof h.name !== "string" || h.name === "")
        throw bad(`shard ${shardName}, hosts[${j}]`, "needs a name");
      const where = `shard ${shardName}, host ${h.name}`;
      const connection = { ...defaults, ...(isObject(h.connection) ? h.connection : {}) };
      for (const f of SECRET_FIELDS)
        if (f in connection)
          throw bad(
            where,
            `connection.${f} is not read from this file: use privateKeyPath or agentSocketPath`,
          );
      if (typeof connection.host !== "string" || connection.host === "")
        throw bad(where, "needs connection.host (here or in the top-level connection)");
      const lxcPath = path.posix
        .normalize(typeof h.lxcPath === "string" ? h.lxcPath : "/var/lib/lxc")
        .replace(/(.)\/+$/, "$1");
      const place = `${connection.host}:${connection.port ?? 22} ${lxcPath}`;
      const other = owner.get(place);
      if (other)
        throw bad(
          where,
          `${place} is already in shard ${other}: a container belongs to one stack; give each shard its own hosts or lxcPath`,
        );
      owner.set(place, shardName);
      return {
        name: h.name,
        connection: connection as unknown as ShardHost["connection"],
        lxcPath: h.lxcPath as string | undefined,
        include: h.include as string[] | undefined,
        exclude: h.exclude as string[] | undefined,
      };
    });
    const names = hosts.map((h) => h.name);
    const dup = names.find((n, k) => names.indexOf(n) !== k);
    if (dup) throw bad(`shard ${shardName}`, `host ${dup} is listed twice`);
    const own = policy(s);
    return {
      name: shardName,
      hosts,
      canary: own.canary ?? top.canary,
      maxConcurrentPerHost: own.maxConcurrentPerHost ?? top.maxConcurrentPerHost,
      conversion: own.conversion ?? top.conversion,
    };
  });
  const names = shards.map((s) => s.name);
  const dup = names.find((n, k) => names.indexOf(n) !== k);
  if (dup) throw bad(`shard ${dup}`, "is listed twice (one stack per shard)");
  return { project, concurrency: concurrency as number, shards, ...top };
}

/** At most `limit` at once, in order; no retries, no scheduling beyond that. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

const resourceName = (urn: string) => urn.slice(urn.lastIndexOf("::") + 2);

async function runShard(
  file: ShardsFile,
  shard: Shard,
  opts: { action: Action; refresh: boolean; logDir: string },
): Promise<ShardReport> {
  const started = Date.now();
  const report: ShardReport = {
    shard: shard.name,
    action: opts.action,
    hosts: shard.hosts.map((h) => h.name),
    ok: false,
    started: new Date(started).toISOString(),
    durationMs: 0,
    converted: [],
    adopted: [],
    skipped: [],
    failed: [],
    changes: {},
  };
  // resource name -> host/container, filled in by the program (up and preview run it; destroy does not).
  const resources = new Map<string, string>();
  const resourceErrors: string[] = []; // `host/container: message`
  const otherErrors: string[] = [];
  const outcome = new Map<string, boolean>(); // host/container -> adopted, from the engine's events
  let changes: Record<string, number> = {}; // the engine's own count, sent also when the update fails
  const onEvent = (e: EngineEvent) => {
    const d = e.diagnosticEvent;
    if (d && d.severity === "error") {
      const name = d.urn ? resourceName(d.urn) : "";
      const key = resources.get(name);
      const msg = d.message.trim();
      if (key) resourceErrors.push(`${key}: ${msg}`);
      else otherErrors.push(name && !d.urn?.includes("::pulumi:pulumi:Stack::") ? `${name}: ${msg}` : msg);
    }
    if (e.summaryEvent) changes = { ...e.summaryEvent.resourceChanges };
    const o = e.resOutputsEvent?.metadata;
    const key = o && resources.get(resourceName(o.urn));
    if (o && key && o.new?.outputs) outcome.set(key, o.new.outputs.adopted === true);
  };
  const log = opts.logDir
    ? fs.createWriteStream(path.join(opts.logDir, `${shard.name}.${opts.action}.log`))
    : undefined;
  const onOutput = (text: string) => log?.write(text);
  // The workspace's own files (Pulumi.yaml, stack settings) go to a temporary directory; the program's
  // directory (`main`) stays this one, so the dynamic provider finds @pulumi/pulumi in node_modules.
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `lxc-btrfs-shard-${shard.name}-`));
  try {
    const stack = await LocalWorkspace.createOrSelectStack(
      { stackName: shard.name, projectName: file.project, program: shardProgram(shard, resources) },
      { workDir, projectSettings: { name: file.project, runtime: "nodejs", main: process.cwd() } },
    );
    const common = { onEvent, onOutput, refresh: opts.refresh, color: "never" as const };
    if (opts.action === "up") {
      const res = await stack.up(common);
      report.changes = { ...res.summary.resourceChanges };
      const summary = res.outputs.summary?.value as Summary | undefined;
      for (const [host, s] of Object.entries(summary ?? {})) {
        report.converted.push(...s.converted.map((c) => `${host}/${c}`));
        report.adopted.push(...s.adopted.map((c) => `${host}/${c}`));
        report.skipped.push(...s.skipped.map((c) => `${host}/${c}`));
        report.failed.push(...s.failed.map((f) => `${host}: ${f}`));
      }
    } else if (opts.action === "preview") {
      const res = await stack.preview(common);
      report.changes = { ...res.changeSummary };
    } else {
      const res = await stack.destroy(common);
      report.changes = { ...res.summary.resourceChanges };
    }
    report.ok = report.failed.length === 0;
    if (!report.ok)
      report.error = `${report.failed.length} host(s) could not be listed; fix them and run again: ${report.failed.join("; ")}`;
  } catch (e) {
    // Another update holds the stack's lock: the CLI refused before running anything. Say who holds it and
    // how to clear a stale one, instead of the CLI's list of lock files.
    const locks = parseStackLocks((e as Error).message ?? "");
    if (locks) report.error = lockedMessage(file.project, shard.name, locks);
    else {
      // A failed update has no summary output: what each container did comes from the engine's events.
      for (const [key, adopted] of outcome) (adopted ? report.adopted : report.converted).push(key);
      report.failed.push(...resourceErrors);
      report.changes = changes;
      // The engine ends a failed update with a generic "update failed" on the stack: the resources' own
      // errors say more, so they come first and alone when there are any.
      const errors = resourceErrors.length > 0 ? resourceErrors : otherErrors;
      report.error =
        errors.length > 0
          ? errors.join("\n")
          : `${(e as Error).name}: ${lastLines((e as Error).message, 12)}`;
    }
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
    log?.end();
  }
  report.converted.sort();
  report.adopted.sort();
  report.durationMs = Date.now() - started;
  return report;
}

function lastLines(text: string, n: number): string {
  return text.trim().split("\n").slice(-n).join("\n");
}

function table(reports: ShardReport[]): string {
  const rows = [
    ["shard", "hosts", "converted", "adopted", "skipped", "failed", "changes", "time", "result"],
    ...reports.map((r) => [
      r.shard,
      r.hosts.join(","),
      String(r.converted.length),
      String(r.adopted.length),
      String(r.skipped.length),
      String(r.failed.length),
      Object.entries(r.changes)
        .map(([op, n]) => `${op}=${n}`)
        .join(" ") || "-",
      `${(r.durationMs / 1000).toFixed(1)}s`,
      r.ok ? "ok" : "FAILED",
    ]),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c]))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  let file: ShardsFile;
  try {
    args = parseArgs(process.argv.slice(2));
    file = loadShards(args.file);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(e.message);
    return 2;
  }
  if (args.logDir) fs.mkdirSync(args.logDir, { recursive: true });
  const started = Date.now();
  const reports = await pool(file.shards, file.concurrency, (s) => runShard(file, s, args));
  console.log(table(reports));
  for (const r of reports.filter((x) => !x.ok))
    console.log(`\nshard ${r.shard} (${r.hosts.join(", ")}) failed:\n${r.error}`);
  const failed = reports.filter((r) => !r.ok).length;
  console.log(
    `\n${args.action}: ${reports.length - failed} of ${reports.length} shard(s) succeeded in ${((Date.now() - started) / 1000).toFixed(1)}s` +
      (failed > 0
        ? `; run it again once the failures above are fixed (a shard that succeeded has nothing to do)`
        : ""),
  );
  if (args.json) fs.writeFileSync(args.json, `${JSON.stringify(reports, null, 2)}\n`);
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    // Not a shard's failure (those are in the report): the runner itself could not finish.
    console.error(`examples/sharded ${process.argv.slice(2).join(" ")}: ${(e as Error).stack ?? e}`);
    process.exitCode = 1;
  },
);

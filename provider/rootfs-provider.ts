/**
 * LxcSubvolumeRootfs, the provider side: validate -> inspect the host -> plan -> apply steps -> report.
 * Loaded lazily inside the dynamic provider's methods (see resources.ts), so node-ssh and zod are never
 * captured into the serialized provider.
 */
import { inspectRootfsBatched, runBatched } from "./batch";
import { UserError } from "./errors";
import { configBackingStore, parseRootfsInspection, type RootfsInspection } from "./inspect";
import { scriptArgv } from "./remote-scripts";
import { guardProviderProcess } from "./process-guard";
import { planConvert, planRevert, type RootfsPlan, type RootfsPolicy, type Step } from "./rootfs-plan";
import {
  type CheckFailure,
  type Connection,
  type RootfsInputs,
  rootfsArgsSchema,
  checkInputs,
  parseInputsOrThrow,
} from "./schema";
import { checked, describeTarget, openRemote, type Remote } from "./ssh";

guardProviderProcess();

export interface RootfsOutputs extends RootfsInputs {
  /** `user@host:port`, for display; never a secret. */
  target: string;
  rootfsPath: string;
  rootfsIsSubvolume: boolean;
  subvolumeId: number | null;
  subvolumeUuid: string | null;
  configBackingStore: string;
  adopted: boolean;
  files: number | null;
  bytes: number | null;
  state: string;
  /** Set by read when a conversion was interrupted; the next update resumes or rolls it back. */
  interrupted: string | null;
}

const INPUT_KEYS = [
  "connection",
  "container",
  "lxcPath",
  "ifRunning",
  "nestedSubvolumes",
  "keepBackup",
  "onDelete",
] as const;
const REPLACE_KEYS = ["container", "lxcPath"] as const;
const MAX_PLAN_ROUNDS = 4;

export async function check(
  _olds: unknown,
  news: unknown,
): Promise<{ inputs?: unknown; failures?: CheckFailure[] }> {
  return checkInputs(rootfsArgsSchema, news);
}

export function resourceId(i: Pick<RootfsInputs, "connection" | "lxcPath" | "container">): string {
  return `${i.connection.host}:${i.connection.port}:${i.lxcPath}/${i.container}`;
}

/** Pure: which inputs force a replacement, and whether drift recorded by read needs an update. */
export function diffRootfs(
  olds: Partial<RootfsOutputs>,
  news: RootfsInputs,
): { changes: boolean; replaces: string[] } {
  const replaces: string[] = [];
  const oc = olds.connection as Connection | undefined;
  if (oc && (oc.host !== news.connection.host || oc.port !== news.connection.port))
    replaces.push("connection");
  for (const k of REPLACE_KEYS) if (olds[k] !== news[k]) replaces.push(k);
  const inputChanged = INPUT_KEYS.some((k) => !sameJson(olds[k], news[k]));
  const drifted =
    olds.rootfsIsSubvolume === false ||
    (olds.configBackingStore !== undefined && olds.configBackingStore !== "btrfs") ||
    !!olds.interrupted;
  return { changes: replaces.length > 0 || inputChanged || drifted, replaces };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>)
        .filter(([k, x]) => x !== undefined && !k.startsWith("__"))
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, x]) => [k, canonical(x)]),
    );
  }
  return v;
}

export async function create(news: RootfsInputs): Promise<{ id: string; outs: RootfsOutputs }> {
  const inputs = parseInputs(news);
  const outs = await converge(inputs, "create");
  return { id: resourceId(inputs), outs };
}

export async function update(
  _id: string,
  _olds: RootfsOutputs,
  news: RootfsInputs,
): Promise<{ outs: RootfsOutputs }> {
  return { outs: await converge(parseInputs(news), "update") };
}

export async function read(
  id: string,
  props: RootfsOutputs,
): Promise<{ id?: string; props?: RootfsOutputs; inputs?: RootfsInputs }> {
  const inputs = parseInputs(pickInputs(props));
  const remote = openRemote(inputs.connection);
  const insp = await inspect(remote, inputs, "0").catch((e) => {
    throw named(inputs, e);
  });
  if (insp.containerDir === "missing") return {};
  const outs = toOutputs(inputs, remote, insp, props.adopted ?? false, props);
  return { id, props: outs, inputs: pickInputs(props) };
}

export async function del(_id: string, props: RootfsOutputs): Promise<void> {
  const inputs = parseInputs(pickInputs(props));
  if (inputs.onDelete === "retain") return;
  await revertWith(openRemote(inputs.connection), inputs);
}

function pickInputs(props: Partial<RootfsOutputs>): RootfsInputs {
  const out: Record<string, unknown> = {};
  for (const k of INPUT_KEYS) if (props[k] !== undefined) out[k] = props[k];
  return out as unknown as RootfsInputs;
}

function parseInputs(raw: unknown): RootfsInputs {
  return parseInputsOrThrow(rootfsArgsSchema, raw, "LxcSubvolumeRootfs");
}

function policyOf(i: RootfsInputs): RootfsPolicy {
  return {
    container: i.container,
    lxcPath: i.lxcPath,
    ifRunning: i.ifRunning,
    nestedSubvolumes: i.nestedSubvolumes,
    keepBackup: i.keepBackup,
  };
}

async function converge(inputs: RootfsInputs, verb: string): Promise<RootfsOutputs> {
  return convergeWith(openRemote(inputs.connection), inputs, verb);
}

/** Converts (or adopts) through any Remote: the SSH one in the provider, a recording one in tests. */
export async function convergeWith(
  remote: Remote,
  inputs: RootfsInputs,
  verb = "create",
): Promise<RootfsOutputs> {
  const { insp, adopted } = await runPlans(remote, inputs, (i) => planConvert(i, policyOf(inputs)), verb);
  return toOutputs(inputs, remote, insp, adopted);
}

/** Turns the subvolume back into a plain directory with a dir: config, through any Remote. */
export async function revertWith(remote: Remote, inputs: RootfsInputs): Promise<void> {
  await runPlans(remote, inputs, (insp) => planRevert(insp, policyOf(inputs)));
}

/** Inspect, plan, apply, until the plan says done; a refusal is an error that names resource and host. */
async function runPlans(
  remote: Remote,
  inputs: RootfsInputs,
  planner: (insp: RootfsInspection) => RootfsPlan,
  verb = "delete",
): Promise<{ insp: RootfsInspection; adopted: boolean }> {
  try {
    return await runPlansOnce(remote, inputs, planner, verb);
  } catch (e) {
    throw named(inputs, e);
  }
}

/** Names the resource in every failure (a failed command, a host that cannot be reached), not only in refusals. */
function named(inputs: RootfsInputs, e: unknown): unknown {
  if (e instanceof UserError && !e.message.startsWith("LxcSubvolumeRootfs "))
    return new UserError(`LxcSubvolumeRootfs ${inputs.container}: ${e.message}`);
  return e;
}

async function runPlansOnce(
  remote: Remote,
  inputs: RootfsInputs,
  planner: (insp: RootfsInspection) => RootfsPlan,
  verb: string,
): Promise<{ insp: RootfsInspection; adopted: boolean }> {
  let changed = false;
  let first: RootfsInspection | undefined;
  for (let round = 0; round < MAX_PLAN_ROUNDS; round++) {
    // Walk (count the tree) only when it will be copied: adopting a converted rootfs costs no walk, and a
    // conversion moves the tree without changing it, so later rounds keep the first count.
    const insp = await inspect(remote, inputs, "auto");
    first ??= insp;
    insp.files ??= first.files;
    insp.bytes ??= first.bytes;
    const plan = planner(insp);
    if (plan.kind === "refuse") {
      throw new UserError(
        `LxcSubvolumeRootfs ${inputs.container} on ${remote.target}: ${plan.reason}. Nothing was changed.`,
      );
    }
    if (plan.kind === "done") return { insp, adopted: plan.adopted && !changed };
    log(remote, inputs, `${verb}: ${plan.action}`);
    await applySteps(remote, inputs, plan.steps, insp);
    changed = true;
  }
  throw new UserError(
    `LxcSubvolumeRootfs ${inputs.container} on ${remote.target}: the host did not settle after ${MAX_PLAN_ROUNDS} rounds; run again`,
  );
}

/** walk: "1" counts the tree (and finds nested subvolumes), "auto" only if not yet converted or journaled. */
async function inspect(
  remote: Remote,
  inputs: RootfsInputs,
  walk: "0" | "1" | "auto",
): Promise<RootfsInspection> {
  const args = [inputs.lxcPath, inputs.container, walk];
  // Batched with the other resources' inspections of this host (reads and adoptions come in hundreds).
  const res = checked(
    remote.target,
    scriptArgv("inspect-rootfs", args),
    walk === "1"
      ? await runBatched(remote, "inspect-rootfs", args)
      : await inspectRootfsBatched(remote, inputs.lxcPath, inputs.container, walk),
  );
  try {
    return parseRootfsInspection(res.stdout);
  } catch (e) {
    throw new UserError(
      `LxcSubvolumeRootfs ${inputs.container} on ${remote.target}: ${(e as Error).message}; nothing was changed`,
    );
  }
}

function log(remote: Remote, inputs: RootfsInputs, msg: string): void {
  console.log(`[lxc-btrfs] ${inputs.container} on ${remote.target}: ${msg}`);
}

/**
 * Runs the steps in as few round trips as possible: one batch up to each verification, the verification
 * alone (its report is compared here), then the rest. If anything fails before the swap started, rolls
 * back so the host is as it was; after that, the journal lets the next run finish.
 */
async function applySteps(
  remote: Remote,
  inputs: RootfsInputs,
  steps: Step[],
  insp: RootfsInspection,
): Promise<void> {
  const started = new Set<Step["op"]>();
  const wasRunning = steps.some((s) => s.op === "journal" && s.wasRunning);
  const partial = steps.find((s) => s.op === "subvol-create" || s.op === "mkdir-new") as
    | { path: string }
    | undefined;
  try {
    // Each batch ends with a verification (its report is judged here before anything is swapped) or
    // with the last step.
    let batch: Step[] = [];
    for (const step of steps) {
      batch.push(step);
      if (step.op !== "verify") continue;
      const out = await runBatch(remote, inputs, batch, started);
      await judgeVerification(remote, inputs, step, verifyReport(out, batch.length), insp);
      batch = [];
    }
    if (batch.length) await runBatch(remote, inputs, batch, started);
  } catch (e) {
    if (!started.has("swap") && partial) await rollback(remote, inputs, partial.path, wasRunning);
    throw e;
  }
}

async function rollback(
  remote: Remote,
  inputs: RootfsInputs,
  partial: string,
  wasRunning: boolean,
): Promise<void> {
  const steps: Step[] = [{ op: "discard", path: partial }];
  if (wasRunning) steps.push({ op: "start" });
  steps.push({ op: "journal-clear" });
  try {
    await runBatch(remote, inputs, steps, new Set());
  } catch (e) {
    log(
      remote,
      inputs,
      `rollback incomplete (${(e as Error).message}); the journal stays and the next run finishes it`,
    );
  }
}

function stepArgs(step: Step): string[] {
  switch (step.op) {
    case "journal":
      return [step.phase, step.kind, step.wasRunning ? "1" : "0"];
    case "journal-clear":
    case "stop":
    case "start":
      return [];
    case "discard":
    case "subvol-create":
    case "mkdir-new":
    case "remove":
      return [step.path];
    case "copy":
      return [step.from, step.to, String(Math.max(1000, Math.ceil(step.total / 10)))];
    case "verify":
      return [step.a, step.b];
    case "swap":
      return [step.cur, step.next, step.old];
    case "write-config":
      return [step.expectedSha, step.backupName];
    case "move-nested":
      return [step.from, step.to];
  }
}

/** Pure: the argv of one batch: `LXCPATH NAME OP NARGS ARG... OP NARGS ARG...`. */
export function batchArgs(lxcPath: string, container: string, steps: Step[]): string[] {
  return [lxcPath, container, ...steps.flatMap((s) => [s.op, String(stepArgs(s).length), ...stepArgs(s)])];
}

async function runBatch(
  remote: Remote,
  inputs: RootfsInputs,
  steps: Step[],
  started: Set<Step["op"]>,
): Promise<string> {
  const copy = steps.find((s) => s.op === "copy");
  if (copy) log(remote, inputs, `copying ${copy.total} entries (reflink: metadata only, no data blocks)`);
  const config = steps.find((s) => s.op === "write-config");
  let seen = 0;
  const res = await remote.check(scriptArgv("step", batchArgs(inputs.lxcPath, inputs.container, steps)), {
    stdin: config?.content,
    onStdoutLine: (l) => {
      const op = nextStepMarker(l, steps, seen);
      if (op) {
        seen++;
        started.add(op);
      }
      const m = /^progress (\d+)$/.exec(l);
      if (m && copy) log(remote, inputs, `copied ${m[1]}/${copy.total} entries`);
    },
  });
  return res.stdout;
}

/**
 * Pure: the op of `line` if it is the marker step.sh prints before step `seen + 1` of `steps`, else
 * undefined. Only the next step's own marker counts: the verify report that ends a batch prints file
 * names from the trees, and a file named "x\n@@step 9 swap" must not make us believe the swap started
 * (which would skip the rollback of a failed batch).
 */
export function nextStepMarker(line: string, steps: readonly Step[], seen: number): Step["op"] | undefined {
  const m = /^@@step (\d+) (\S+)$/.exec(line);
  if (!m || Number(m[1]) !== seen + 1 || seen >= steps.length) return undefined;
  return steps[seen].op === m[2] ? steps[seen].op : undefined;
}

/**
 * Pure: the verify report of a batch's output: what follows the marker of its last step, N. The first
 * match: everything before it is ours (step markers, copy progress), while the report itself carries
 * path names from the trees, which may contain anything but NUL, a fake marker included.
 */
export function verifyReport(stdout: string, n: number): string {
  const marker = `@@step ${n} verify\n`;
  const at = stdout.indexOf(marker);
  return at < 0 ? "" : stdout.slice(at + marker.length);
}

async function judgeVerification(
  remote: Remote,
  inputs: RootfsInputs,
  step: Extract<Step, { op: "verify" }>,
  report: string,
  insp?: RootfsInspection,
): Promise<void> {
  const verdict = compareTreeReports(report);
  if (verdict.ok) {
    const what = insp?.hasGetfattr
      ? ", xattrs (btrfs compression property included)"
      : " (xattrs not checked: getfattr missing, apt-get install attr)";
    log(
      remote,
      inputs,
      `verified ${verdict.entries} entries: types, modes, owners, sizes, mtimes, links, devices, hardlinks, inode flags${what}`,
    );
    return;
  }
  const diff = await remote.run(
    scriptArgv("step", [inputs.lxcPath, inputs.container, "verify-diff", "2", step.a, step.b]),
  );
  throw new UserError(
    `LxcSubvolumeRootfs ${inputs.container} on ${remote.target}: the copy does not match the original (${verdict.what}); ` +
      `the copy was discarded and the original left as it was.\n${diff.stdout.replace(/^@@step .*\n/, "").trim()}`,
  );
}

const REPORT_DIFFERS: Record<string, string> = {
  main: "metadata differs",
  count: "entry count differs",
  rdev: "device numbers differ",
  xattr: "xattrs differ",
  flags: "inode flags differ",
};

const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** Pure: compares the two halves of a `verify` report. Hardlink groups are compared by path sets. */
export function compareTreeReports(out: string): { ok: true; entries: number } | { ok: false; what: string } {
  const a = out.indexOf("@@a\0");
  const kv = new Map<string, string>();
  for (const line of out.slice(0, a).split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) kv.set(line.slice(0, eq), line.slice(eq + 1));
  }
  for (const k of ["main", "count", "rdev", "xattr", "flags"]) {
    const x = kv.get(`a_${k}`);
    const y = kv.get(`b_${k}`);
    if (x === undefined || y === undefined) return { ok: false, what: `no ${k} in the verification report` };
    if (x !== y) return { ok: false, what: REPORT_DIFFERS[k] };
  }
  // A walk that failed silently (a pipeline stage dying) hashes nothing on both sides: equal, but empty.
  // Every tree has at least its top directory, so an empty manifest or a count of 0 is a failure.
  if (kv.get("a_main") === EMPTY_SHA256 || !(Number(kv.get("a_count")) > 0))
    return { ok: false, what: "the walk of the trees produced no entries" };
  const rest = out.slice(a + 4);
  // Hardlink entries are `INODE PATH\0`; a path may end in "@@b", so the marker must start an item.
  const b = rest.startsWith("@@b\0") ? 0 : rest.indexOf("\0@@b\0") + 1 || -1;
  if (a < 0 || b < 0) return { ok: false, what: "hardlink report missing" };
  if (hardlinkGroups(rest.slice(0, b)) !== hardlinkGroups(rest.slice(b + 4)))
    return { ok: false, what: "hardlink groups differ" };
  return { ok: true, entries: Number(kv.get("a_count")) };
}

/** `INODE PATH\0...` to a canonical text of path groups, independent of inode numbers and order. */
export function hardlinkGroups(list: string): string {
  const groups = new Map<string, string[]>();
  for (const item of list.split("\0")) {
    if (!item) continue;
    const sp = item.indexOf(" ");
    const ino = item.slice(0, sp);
    const g = groups.get(ino) ?? [];
    g.push(item.slice(sp + 1));
    groups.set(ino, g);
  }
  return JSON.stringify([...groups.values()].map((g) => g.sort()).sort((x, y) => (x[0] < y[0] ? -1 : 1)));
}

function toOutputs(
  inputs: RootfsInputs,
  remote: Remote,
  insp: RootfsInspection,
  adopted: boolean,
  prior?: Partial<RootfsOutputs>,
): RootfsOutputs {
  const sub = insp.subvolume;
  return {
    ...inputs,
    target: describeTarget(inputs.connection),
    rootfsPath: `${inputs.lxcPath}/${inputs.container}/rootfs`,
    rootfsIsSubvolume: insp.rootfsIsSubvolume,
    subvolumeId: sub?.id ?? null,
    subvolumeUuid: sub?.uuid ?? null,
    configBackingStore: configBackingStore(insp.config),
    adopted,
    files: insp.files ?? prior?.files ?? null,
    bytes: insp.bytes ?? prior?.bytes ?? null,
    state: insp.state,
    interrupted: insp.journal
      ? `${insp.journal.op} interrupted in phase ${insp.journal.phase} on ${remote.target}`
      : null,
  };
}

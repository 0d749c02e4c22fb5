/**
 * LxcSubvolumeRootfs, the provider side: validate -> inspect the host -> plan -> apply steps -> report.
 * Loaded lazily inside the dynamic provider's methods (see resources.ts), so node-ssh and zod are never
 * captured into the serialized provider.
 */
import { inspectRootfsBatched, runBatched } from "../transport/batch";
import { UserError } from "../core/errors";
import { configBackingStore, parseRootfsInspection, type RootfsInspection } from "./inspection";
import { scriptArgv } from "../transport/remote-scripts";
import { guardProviderProcess } from "../core/process-guard";
import { planConvert, planRevert, type RootfsPlan, type RootfsPolicy, type Step } from "./plan";
import { type CheckFailure, checkInputs, parseInputsOrThrow } from "../core/inputs";
import type { Connection } from "../transport/connection";
import { type RootfsInputs, rootfsArgsSchema } from "./inputs";
import { checked, describeTarget, openRemote, type Remote } from "../transport/ssh";
import { batchArgs, compareTreeReports, nextStepMarker, verifyReport } from "./steps";

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

async function runBatch(
  remote: Remote,
  inputs: RootfsInputs,
  steps: Step[],
  started: Set<Step["op"]>,
): Promise<string> {
  const copy = steps.find((s) => s.op === "copy" || s.op === "precopy");
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

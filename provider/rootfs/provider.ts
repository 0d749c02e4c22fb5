/**
 * LxcSubvolumeRootfs, the provider side: validate -> inspect the host -> plan -> apply steps -> report.
 * Loaded lazily inside the dynamic provider's methods (see resource.ts), so node-ssh and zod are never
 * captured into the serialized provider. What both providers share is in core/provider-base.ts.
 */

import { randomBytes } from "node:crypto";
import { RemoteCommandError, UserError } from "../core/errors";
import type { CheckFailure } from "../core/inputs";
import { guardProviderProcess } from "../core/process-guard";
import { ProviderBase, sameValue } from "../core/provider-base";
import { inspectRootfsBatched, runBatched } from "../transport/batch";
import { ExitCode } from "../transport/exit-codes";
import { scriptArgv } from "../transport/remote-scripts";
import { checked, describeTarget, openRemote, type Remote } from "../transport/ssh";
import { Downtime } from "./downtime";
import { type RootfsInputs, rootfsArgsSchema } from "./inputs";
import { configBackingStore, parseRootfsInspection, type RootfsInspection } from "./inspection";
import type { RootfsOutputs } from "./outputs";
import { planConvert, planRestore, planRevert, type RootfsPlan, type RootfsPolicy, type Step } from "./plan";
import {
  batchArgs,
  batchThenInspectArgs,
  compareTreeReports,
  inspectionAfter,
  nextStepMarker,
  stepBatches,
  verifyDiffArgs,
  verifyReport,
} from "./steps";

export type { RootfsOutputs } from "./outputs";

guardProviderProcess();

const base = new ProviderBase<RootfsInputs>({
  type: "LxcSubvolumeRootfs",
  schema: rootfsArgsSchema,
  label: (i) => i.container,
  logLabel: (i) => i.container,
  container: (i) => i.container,
});

const REPLACE_KEYS = ["container", "lxcPath"] as const;
const MAX_PLAN_ROUNDS = 4;

export async function check(
  _olds: unknown,
  news: unknown,
): Promise<{ inputs?: unknown; failures?: CheckFailure[] }> {
  return base.check(news);
}

export function resourceId(i: RootfsInputs): string {
  return base.resourceId(i);
}

/** Pure: which inputs force a replacement, and whether drift recorded by read needs an update. */
export function diffRootfs(
  olds: Partial<RootfsOutputs>,
  news: RootfsInputs,
): { changes: boolean; replaces: string[] } {
  const { replaces, changed } = base.diffInputs(olds, news, REPLACE_KEYS);
  const drifted =
    olds.rootfsIsSubvolume === false ||
    (olds.configBackingStore !== undefined && olds.configBackingStore !== "btrfs") ||
    !!olds.interrupted;
  return { changes: replaces.length > 0 || changed || drifted, replaces };
}

/**
 * Pure: the snapshot a create or an update must restore the rootfs from: restoreFrom when it is set on
 * create or changed since the last run. An unchanged restoreFrom never restores again (that would replace
 * what the container wrote since), and a removed one restores nothing.
 */
export function restoreRequested(
  olds: Partial<RootfsOutputs> | undefined,
  news: RootfsInputs,
): string | undefined {
  if (news.restoreFrom === undefined) return undefined;
  return olds && sameValue(olds.restoreFrom, news.restoreFrom) ? undefined : news.restoreFrom;
}

/** The same diff as diffRootfs, saying in the log (no network) what a restore will do. */
export function diff(
  olds: Partial<RootfsOutputs>,
  news: RootfsInputs,
): { changes: boolean; replaces: string[] } {
  const d = diffRootfs(olds, news);
  const snap = restoreRequested(olds, news);
  if (snap && d.replaces.length === 0)
    console.log(
      `[lxc-btrfs] ${news.container}: rootfs will be restored from snapshot ${snap} (${news.lxcPath}/${news.container}/snaps/${snap}/rootfs)`,
    );
  return d;
}

export async function create(news: RootfsInputs): Promise<{ id: string; outs: RootfsOutputs }> {
  const inputs = base.parse(news);
  const outs = await convergeWith(openRemote(inputs.connection), inputs, "create", inputs.restoreFrom);
  return { id: base.resourceId(inputs), outs };
}

export async function update(
  _id: string,
  olds: RootfsOutputs,
  news: RootfsInputs,
): Promise<{ outs: RootfsOutputs }> {
  const inputs = base.parse(news);
  const restore = restoreRequested(olds, inputs);
  return { outs: await convergeWith(openRemote(inputs.connection), inputs, "update", restore, olds) };
}

export async function read(
  id: string,
  props: RootfsOutputs,
): Promise<{ id?: string; props?: RootfsOutputs; inputs?: RootfsInputs }> {
  const inputs = base.inputsFromState(props);
  const remote = openRemote(inputs.connection);
  const insp = await base.guard(inputs, () => inspect(remote, inputs, "0"));
  if (insp.containerDir === "missing") return {};
  const outs = toOutputs(inputs, remote, insp, props.adopted ?? false, props);
  return { id, props: outs, inputs: base.pickInputs(props) as RootfsInputs };
}

export async function del(_id: string, props: RootfsOutputs): Promise<void> {
  const inputs = base.inputsFromState(props);
  if (inputs.onDelete === "retain") return;
  await revertWith(openRemote(inputs.connection), inputs);
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

/**
 * Converts (or adopts) through any Remote: the SSH one in the provider, a recording one in tests; then,
 * when `restore` names a snapshot, restores the rootfs from it, once (a plan that completes it, a resumed
 * one included, satisfies the request).
 */
export async function convergeWith(
  remote: Remote,
  inputs: RootfsInputs,
  verb = "create",
  restore?: string,
  prior?: Partial<RootfsOutputs>,
): Promise<RootfsOutputs> {
  let pending = restore;
  let restoredAt: string | undefined;
  const planner = (insp: RootfsInspection): RootfsPlan => {
    const plan = planConvert(insp, policyOf(inputs));
    return plan.kind === "done" && pending ? planRestore(insp, policyOf(inputs), pending) : plan;
  };
  const onApplied = (plan: Extract<RootfsPlan, { kind: "apply" }>) => {
    if (pending && plan.restores === pending) {
      pending = undefined;
      restoredAt = new Date().toISOString();
    }
  };
  const { insp, adopted } = await base.guard(inputs, () =>
    planAndApplyUntilDone(remote, inputs, planner, verb, onApplied),
  );
  const outs = toOutputs(inputs, remote, insp, adopted, prior);
  if (restoredAt)
    return {
      ...outs,
      restoredFrom: restore ?? null,
      restoredSnapshotUuid: insp.subvolume?.parentUuid ?? null,
      restoredAt,
    };
  return outs;
}

/** Turns the subvolume back into a plain directory with a dir: config, through any Remote. */
export async function revertWith(remote: Remote, inputs: RootfsInputs): Promise<void> {
  await base.guard(inputs, () =>
    planAndApplyUntilDone(remote, inputs, (insp) => planRevert(insp, policyOf(inputs)), "delete"),
  );
}

/**
 * Rounds of inspect, plan, apply, until the plan says done (each round's steps change what the next
 * inspection finds: an interrupted run is first rolled back or finished, then converted). A refusal, or an
 * inspection that cannot be read, says which rounds already changed the host.
 */
async function planAndApplyUntilDone(
  remote: Remote,
  inputs: RootfsInputs,
  planner: (insp: RootfsInspection) => RootfsPlan,
  verb: string,
  onApplied?: (plan: Extract<RootfsPlan, { kind: "apply" }>) => void,
): Promise<{ insp: RootfsInspection; adopted: boolean }> {
  const done: string[] = [];
  const downtime = new Downtime();
  let first: RootfsInspection | undefined;
  // The inspection the last round's final batch ended with, if it could be read.
  let after: RootfsInspection | undefined;
  for (let round = 0; round < MAX_PLAN_ROUNDS; round++) {
    // Walk (count the tree) only when it will be copied: adopting a converted rootfs costs no walk, and a
    // conversion moves the tree without changing it, so later rounds keep the first count.
    const insp = after ?? (await inspect(remote, inputs, "auto", done));
    first ??= insp;
    insp.files ??= first.files;
    insp.bytes ??= first.bytes;
    const plan = planner(insp);
    if (plan.kind === "refuse") throw base.refuse(inputs, remote, plan.reason, done);
    if (plan.kind === "done") return { insp, adopted: plan.adopted && done.length === 0 };
    base.log(inputs, remote, `${verb}: ${plan.action}`);
    after = await applySteps(remote, inputs, plan.steps, insp, downtime, done);
    done.push(plan.action);
    onApplied?.(plan);
  }
  throw new UserError(
    base.message(inputs, remote, `the host did not settle after ${MAX_PLAN_ROUNDS} rounds; run again`),
  );
}

/**
 * walk: "1" counts the tree (and finds nested subvolumes), "auto" only if not yet converted or journaled.
 * `done`: what this run already changed, for the message when the output cannot be read.
 */
async function inspect(
  remote: Remote,
  inputs: RootfsInputs,
  walk: "0" | "1" | "auto",
  done: readonly string[] = [],
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
    throw base.refuse(inputs, remote, `cannot read the host's inspection: ${(e as Error).message}`, done);
  }
}

/**
 * Runs the steps in as few round trips as possible: one batch up to each verification, the verification
 * alone (its report is compared here), then the rest, which ends with the inspection of the next round
 * (returned, unless it could not be read: the next round then inspects on its own). If anything fails
 * before the swap started, rolls back so the host is as it was; after that, the journal lets the next run
 * finish.
 */
async function applySteps(
  remote: Remote,
  inputs: RootfsInputs,
  steps: Step[],
  insp: RootfsInspection,
  downtime: Downtime,
  done: readonly string[] = [],
): Promise<RootfsInspection | undefined> {
  const started: Step["op"][] = [];
  const wasRunning = steps.some((s) => (s.op === "journal" || s.op === "journal-restore") && s.wasRunning);
  const partial = steps.find(
    (s) => s.op === "subvol-create" || s.op === "mkdir-new" || s.op === "restore-snapshot",
  ) as { path: string } | undefined;
  // Each batch ends with a verification (its report is judged here before anything is swapped) or with
  // the last step; a copy or catch-up shares its batch with its verification (see stepBatches).
  const batches = stepBatches(steps);
  try {
    for (const batch of batches) {
      const last = batch[batch.length - 1];
      // The final batch ends with the next round's inspection (a verification's report must end its own).
      const nonce = batch === batches.at(-1) && last.op !== "verify" ? randomBytes(8).toString("hex") : "";
      const out = await runBatch(remote, inputs, batch, started, downtime, nonce);
      if (last.op === "verify")
        await judgeVerification(remote, inputs, last, verifyReport(out, batch.length), insp);
      if (nonce) return readInspectionAfter(out, nonce);
    }
    return undefined;
  } catch (e) {
    // A restore's first step refused the snapshot before anything changed: the host's reason, as a refusal.
    if (started.length === 1 && started[0] === "snapshot-check" && e instanceof RemoteCommandError)
      if (e.code === ExitCode.REFUSED) throw base.refuse(inputs, remote, e.stderr.trim(), done);
    // Rolled back before the swap started, or when the swap itself failed: it refuses before its first
    // rename (a container started by hand meanwhile), and the rollback's own check refuses after it.
    if ((!started.includes("swap") || started.at(-1) === "swap") && partial)
      await rollback(
        remote,
        inputs,
        partial.path,
        wasRunning,
        steps.find((s) => s.op === "swap"),
        downtime,
      );
    throw e;
  }
}

async function rollback(
  remote: Remote,
  inputs: RootfsInputs,
  partial: string,
  wasRunning: boolean,
  swap: Extract<Step, { op: "swap" }> | undefined,
  downtime: Downtime,
): Promise<void> {
  // The swap's marker may be lost with the link that failed the batch: the host checks it has not started.
  const steps: Step[] = swap ? [{ op: "unswapped", cur: swap.cur, old: swap.old }] : [];
  steps.push({ op: "discard", path: partial });
  if (wasRunning) steps.push({ op: "start" });
  steps.push({ op: "journal-clear" });
  try {
    await runBatch(remote, inputs, steps, [], downtime);
  } catch (e) {
    base.log(
      inputs,
      remote,
      `rollback incomplete (${(e as Error).message}); the journal stays and the next run finishes it`,
    );
  }
}

/**
 * Runs one batch, logging the copy's progress and the container's stop and start (see Downtime): a step
 * has ended when the next one's marker comes, or, for the last, when the batch succeeds.
 */
async function runBatch(
  remote: Remote,
  inputs: RootfsInputs,
  steps: Step[],
  started: Step["op"][],
  downtime: Downtime,
  inspectNonce = "",
): Promise<string> {
  const copy = steps.find((s) => s.op === "copy" || s.op === "precopy");
  const config = steps.find((s) => s.op === "write-config");
  let seen = 0;
  // Whether the last step has ended (its successor, the inspection, began): said once.
  let lastEnded = false;
  const say = (line: string | undefined) => line && base.log(inputs, remote, line);
  const args = inspectNonce
    ? batchThenInspectArgs(inputs.lxcPath, inputs.container, steps, inspectNonce)
    : batchArgs(inputs.lxcPath, inputs.container, steps);
  const res = await remote.check(scriptArgv("step", args), {
    stdin: config?.content,
    onStdoutLine: (l) => {
      const op = nextStepMarker(l, steps, seen);
      if (op) {
        if (seen > 0) say(downtime.ended(steps[seen - 1].op));
        seen++;
        started.push(op);
        say(downtime.started(op));
        if (op === copy?.op) say(`copying ${copy.total} entries (reflink: metadata only, no data blocks)`);
      }
      if (inspectNonce && !lastEnded && seen === steps.length && l === `@@inspect ${inspectNonce}`) {
        lastEnded = true;
        say(downtime.ended(steps[seen - 1].op));
      }
      const m = /^progress (\d+)$/.exec(l);
      if (m && copy) base.log(inputs, remote, `copied ${m[1]}/${copy.total} entries`);
    },
  });
  if (seen > 0 && !lastEnded) say(downtime.ended(steps[seen - 1].op));
  return res.stdout;
}

/** The inspection a final batch ended with, or undefined if it is missing or cannot be read. */
function readInspectionAfter(stdout: string, nonce: string): RootfsInspection | undefined {
  const text = inspectionAfter(stdout, nonce);
  if (text === undefined) return undefined;
  try {
    return parseRootfsInspection(text);
  } catch {
    return undefined;
  }
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
    base.log(
      inputs,
      remote,
      `verified ${verdict.entries} entries: types, modes, owners, sizes, mtimes, links, devices, hardlinks, inode flags${what}`,
    );
    return;
  }
  const diff = await remote.run(scriptArgv("step", verifyDiffArgs(inputs.lxcPath, inputs.container, step)));
  throw new UserError(
    base.message(
      inputs,
      remote,
      `the copy does not match the original (${verdict.what}); ` +
        [
          "the copy was discarded and the original left as it was.",
          diff.stdout.replace(/^@@step .*\n/, "").trim(),
        ]
          .filter(Boolean)
          .join("\n"),
    ),
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
  // Kept from create on refresh (read walks no tree); `files` is the deprecated name of the same count.
  const entries = insp.files ?? prior?.entries ?? prior?.files ?? null;
  return {
    ...inputs,
    target: describeTarget(inputs.connection),
    rootfsPath: `${inputs.lxcPath}/${inputs.container}/rootfs`,
    rootfsIsSubvolume: insp.rootfsIsSubvolume,
    subvolumeId: sub?.id ?? null,
    subvolumeUuid: sub?.uuid ?? null,
    configBackingStore: configBackingStore(insp.config),
    adopted,
    entries,
    files: entries,
    bytes: insp.bytes ?? prior?.bytes ?? null,
    state: insp.state,
    interrupted: insp.journal
      ? `${insp.journal.op} interrupted in phase ${insp.journal.phase} on ${remote.target}`
      : null,
    restoredFrom: prior?.restoredFrom ?? null,
    restoredSnapshotUuid: prior?.restoredSnapshotUuid ?? null,
    restoredAt: prior?.restoredAt ?? null,
  };
}

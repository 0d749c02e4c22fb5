/**
 * LxcSnapshotClone, the provider side: validate -> inspect -> snapshot with the host's LXC tools ->
 * finish what they miss (mount entries, log file, /etc/hosts, MACs, nested subvolumes) -> report.
 * What both providers share is in core/provider-base.ts.
 */
import { randomInt } from "node:crypto";
import { RemoteCommandError } from "../core/errors";
import type { CheckFailure } from "../core/inputs";
import { guardProviderProcess } from "../core/process-guard";
import { ProviderBase, sameValue } from "../core/provider-base";
import { findHwaddrs, getConfigValue } from "../host/lxc-config";
import { ExitCode } from "../transport/exit-codes";
import { scriptArgv } from "../transport/remote-scripts";
import { describeTarget, openRemote, type Remote } from "../transport/ssh";
import { type CloneInputs, cloneArgsSchema } from "./inputs";
import { type CloneInspection, parseCloneInspection } from "./inspection";
import type { CloneOutputs } from "./outputs";
import {
  adoptProblem,
  cloneDrift,
  driftNeedsReplace,
  finishCloneConfig,
  rewriteHosts,
  sourceProblem,
  uniqueMacs,
} from "./plan";
import { relay } from "./relay";
import {
  commonParent,
  crossHostConfig,
  hostIdentity,
  isCrossHost,
  mib,
  parseCrossHostFacts,
  parseSentReport,
  sentName,
  sourceConnectionOf,
  sourceMacs,
  targetProblem,
  targetTag,
} from "./xhost";

export type { CloneOutputs } from "./outputs";

guardProviderProcess();

const base = new ProviderBase<CloneInputs>({
  type: "LxcSnapshotClone",
  schema: cloneArgsSchema,
  label: (i) => `${i.name} (from ${i.source}${i.snapshot ? ` snapshot ${i.snapshot}` : ""})`,
  logLabel: (i) => `clone ${i.name}`,
  container: (i) => i.name,
});

const REPLACE_KEYS = ["source", "snapshot", "name", "lxcPath"] as const;

export async function check(
  _olds: unknown,
  news: unknown,
): Promise<{ inputs?: unknown; failures?: CheckFailure[] }> {
  return base.check(news);
}

/** Pure: source, name, lxcPath or host changes replace; start/hostname update in place; drift updates. */
export function diffClone(
  olds: Partial<CloneOutputs>,
  news: CloneInputs,
): { changes: boolean; replaces: string[]; deleteBeforeReplace: boolean } {
  const { replaces, changed } = base.diffInputs(olds, news, REPLACE_KEYS);
  // Another source host replaces the clone (a given sourceConnection, or connection when none is given
  // on either side: then connection's own change says it); credentials alone do not.
  if (
    olds.connection &&
    (olds.sourceConnection !== undefined || news.sourceConnection !== undefined) &&
    hostIdentity(olds.sourceConnection ?? olds.connection) !== hostIdentity(sourceConnectionOf(news))
  )
    replaces.push("sourceConnection");
  // A new revision re-makes the clone: in place across hosts (an incremental refresh), as a new snapshot
  // clone on the source's host.
  if (!sameValue(olds.revision, news.revision) && !isCrossHost(news)) replaces.push("revision");
  const drift = olds.drift ?? [];
  if (replaces.length === 0 && driftNeedsReplace(drift)) replaces.push("name");
  // A clone can be made before the old one goes only if the names differ (same host, same lxcPath).
  const sameName =
    (olds.name ?? news.name) === news.name &&
    (olds.lxcPath ?? news.lxcPath) === news.lxcPath &&
    !replaces.includes("connection");
  return {
    changes: changed || drift.length > 0 || replaces.length > 0,
    replaces,
    deleteBeforeReplace: replaces.length > 0 && sameName,
  };
}

/** The same diff as diffClone, saying in the log (no network) which cross-host clone a new revision refreshes. */
export function diff(
  olds: Partial<CloneOutputs>,
  news: CloneInputs,
): { changes: boolean; replaces: string[]; deleteBeforeReplace: boolean } {
  const d = diffClone(olds, news);
  if (refreshPlanned(olds, news, d.replaces))
    console.log(
      `[lxc-btrfs] clone ${news.name} on ${describeTarget(news.connection)}: will be refreshed from ${news.source} on ${describeTarget(sourceConnectionOf(news))} (revision ${JSON.stringify(olds.revision ?? null)} -> ${JSON.stringify(news.revision ?? null)}): only what changed is sent; the clone's own changes are replaced`,
    );
  return d;
}

/** Pure: whether an update of a cross-host clone refreshes it (a new revision, nothing replaced). */
export function refreshPlanned(
  olds: Partial<CloneOutputs>,
  news: CloneInputs,
  replaces: readonly string[],
): boolean {
  return (
    olds.connection !== undefined &&
    replaces.length === 0 &&
    isCrossHost(news) &&
    !sameValue(olds.revision, news.revision)
  );
}

export async function create(raw: CloneInputs): Promise<{ id: string; outs: CloneOutputs }> {
  const inputs = base.parse(raw);
  if (isCrossHost(inputs))
    return createCrossHostWith(openRemote(sourceConnectionOf(inputs)), openRemote(inputs.connection), inputs);
  return createCloneWith(openRemote(inputs.connection), inputs);
}

export async function update(
  _id: string,
  olds: CloneOutputs,
  raw: CloneInputs,
): Promise<{ outs: CloneOutputs }> {
  const inputs = base.parse(raw);
  if (refreshPlanned(olds, inputs, [])) {
    const src = openRemote(sourceConnectionOf(inputs));
    return { outs: await refreshCrossHostWith(src, openRemote(inputs.connection), inputs, olds) };
  }
  const outs = await updateCloneWith(openRemote(inputs.connection), inputs, olds.adopted ?? false);
  if (!isCrossHost(inputs)) return { outs };
  // What only the create or the last refresh saw (the source's side is on another host, and an update does
  // not contact it).
  return {
    outs: {
      ...outs,
      sentUuid: olds.sentUuid ?? null,
      transferredBytes: olds.transferredBytes ?? null,
      sentParentUuid: olds.sentParentUuid ?? null,
      sourceGeneration: olds.sourceGeneration ?? null,
    },
  };
}

export async function read(
  id: string,
  props: CloneOutputs,
): Promise<{ id?: string; props?: CloneOutputs; inputs?: CloneInputs }> {
  const inputs = base.inputsFromState(props);
  const remote = openRemote(inputs.connection);
  const insp = await base.guard(inputs, () => inspect(remote, inputs));
  if (insp.clone.dir === "missing") return {};
  const drift = cloneDrift(insp, desired(inputs), inputs.lxcPath, props.parentUuid ?? null);
  const outs = toOutputs(inputs, insp, props.adopted ?? false, drift, {
    sentUuid: props.sentUuid ?? null,
    transferredBytes: props.transferredBytes ?? null,
    sentParentUuid: props.sentParentUuid ?? null,
  });
  outs.parentUuid = props.parentUuid ?? outs.parentUuid;
  outs.sourceGeneration = props.sourceGeneration ?? outs.sourceGeneration;
  return { id, props: outs, inputs: base.pickInputs(props) as CloneInputs };
}

export async function del(_id: string, props: CloneOutputs): Promise<void> {
  const inputs = base.inputsFromState(props);
  const remote = openRemote(inputs.connection);
  base.log(inputs, remote, "destroying the clone");
  await base.guard(inputs, () => remote.check(cloneArgv(inputs, "destroy")));
  if (!isCrossHost(inputs)) return;
  // Then the snapshot kept on the source for this clone's next refresh: nothing else uses it.
  const src = openRemote(sourceConnectionOf(inputs));
  const tag = targetTag(inputs.connection, inputs.lxcPath);
  base.log(inputs, src, `removing the kept sent snapshot ${sentName(tag, inputs.name)}`);
  await base.guard(inputs, () => src.check(sourceArgv(inputs, "xdrop", tag)));
}

/**
 * Creates the clone (or adopts a snapshot clone of the source with its name) through any Remote: the SSH
 * one in the provider, a recording one in tests.
 */
export async function createCloneWith(
  remote: Remote,
  inputs: CloneInputs,
): Promise<{ id: string; outs: CloneOutputs }> {
  const outs = await base.guard(inputs, async () => {
    // What this create changed on the host so far, for messages that stop it.
    const done: string[] = [];
    let insp = await inspect(remote, inputs);
    const problem = sourceProblem(insp, inputs.lxcPath, inputs.source, inputs.snapshot);
    if (problem) throw base.refuse(inputs, remote, problem);
    if (insp.clone.dir === "present" && insp.making) {
      // A create cut off between the snapshot and the end of the fixups (connection lost, provider killed)
      // left its marker: what is there was made by that create and nothing else uses it yet. Make it again.
      base.log(inputs, remote, "removing an unfinished clone left by an interrupted create");
      await remote.check(cloneArgv(inputs, "destroy"));
      done.push("removed an unfinished clone left by an interrupted create");
      insp = await inspect(remote, inputs, done);
    }
    if (insp.clone.dir === "present") {
      const why = adoptProblem(insp, inputs.lxcPath, inputs.source, inputs.name);
      if (why) throw base.refuse(inputs, remote, why, done);
      base.log(inputs, remote, "adopting the existing snapshot clone");
      return toOutputs(inputs, await converge(remote, inputs, insp, done), true, []);
    }
    const made = await makeClone(remote, inputs, insp, done);
    try {
      return toOutputs(inputs, await converge(remote, inputs, made, [...done, MADE]), false, []);
    } catch (e) {
      // A failed create leaves nothing behind: the engine will not record a clone it never got.
      base.log(inputs, remote, "finishing the clone failed; removing it");
      await remote.run(cloneArgv(inputs, "destroy"));
      throw e;
    }
  });
  return { id: base.resourceId(inputs), outs };
}

/** Brings an existing clone to what is declared (update), through any Remote. */
export async function updateCloneWith(
  remote: Remote,
  inputs: CloneInputs,
  adopted: boolean,
): Promise<CloneOutputs> {
  return base.guard(inputs, async () => {
    const found = await inspect(remote, inputs);
    if (found.clone.dir === "missing") {
      throw base.refuse(
        inputs,
        remote,
        `the clone ${inputs.name} no longer exists; run \`pulumi up --refresh\` to create it again`,
      );
    }
    return toOutputs(inputs, await converge(remote, inputs, found, []), adopted, []);
  });
}

/**
 * Creates a clone of a source on another host: a read-only snapshot of the source is taken there (kept for
 * the next refresh), sent with btrfs send, relayed through this process into btrfs receive on the target,
 * placed once complete and checked, and finished as a local clone is (config, identity files, fresh MACs).
 * Everything that can refuse is checked before anything changes on either host.
 */
export async function createCrossHostWith(
  src: Remote,
  dst: Remote,
  inputs: CloneInputs,
): Promise<{ id: string; outs: CloneOutputs }> {
  const outs = await base.guard(inputs, async () => {
    const done: string[] = [];
    const tag = targetTag(inputs.connection, inputs.lxcPath);
    const sentAt = `${inputs.lxcPath}/${inputs.source}/snaps/${sentName(tag, inputs.name)}`;
    const { s, sfacts } = await inspectSource(src, inputs, tag);
    let t = await inspectTarget(dst, inputs, done);
    const targetCheck = () =>
      targetProblem(t.insp, t.facts, {
        lxcPath: inputs.lxcPath,
        name: inputs.name,
        sourceSize: sfacts.sizeBytes,
        sentUuid: sfacts.sent?.uuid,
      });
    let tp = targetCheck();
    if (tp) throw base.refuse(inputs, dst, tp);
    const fromSource = { sourceGeneration: s.source.subvolume?.generation ?? null };
    if ((t.insp.clone.dir === "present" && t.insp.making) || t.facts.receiving === "present") {
      // A create cut off (a lost link, a killed provider) left its marker, a partial receive or an unfinished
      // clone: ours, and never used. Removed, then checked again (the space it took is free now).
      base.log(
        inputs,
        dst,
        "removing what an interrupted create left (a partial receive, an unfinished clone)",
      );
      await dst.check(
        cloneArgv(inputs, t.insp.clone.dir === "present" && t.insp.making ? "destroy" : "xdropreceiving"),
      );
      done.push("removed what an interrupted create left");
      t = await inspectTarget(dst, inputs, done);
      tp = targetCheck();
      if (tp) throw base.refuse(inputs, dst, tp, done);
    }
    if (t.insp.clone.dir === "present") {
      base.log(inputs, dst, "adopting the existing copy of the source");
      const insp = await converge(dst, inputs, withSource(t.insp, s), done);
      return toOutputs(inputs, insp, true, [], {
        ...fromSource,
        sentUuid: sfacts.sent?.uuid ?? null,
        transferredBytes: null,
      });
    }
    const mode = sourceMode(src, inputs, s, done);
    base.log(inputs, src, `taking the read-only snapshot ${sentAt}/rootfs to send (source ${mode})`);
    // As bytes (latin1 keeps each byte): the flag list's paths need not be UTF-8.
    const sentOut = await src.check(sourceArgv(inputs, "xsent", mode, tag));
    const sent = parseSentReport(
      (sentOut.stdoutBytes ?? Buffer.from(sentOut.stdout, "utf8")).toString("latin1"),
    );
    const sentDone = `took the read-only snapshot ${sentAt}/rootfs on ${src.target}, removed again on failure`;
    let nameTaken = false;
    try {
      base.log(
        inputs,
        dst,
        `receiving ${inputs.source} from ${src.target} (btrfs send of about ${mib(sfacts.sizeBytes ?? 0)}, relayed through the provider)`,
      );
      const r = await transfer(src, dst, inputs, ["xsend", tag, sent.sent.uuid], ["xreceive"]);
      nameTaken = r.receiveCode === ExitCode.NAME_TAKEN;
      if (nameTaken)
        throw base.refuse(
          inputs,
          dst,
          `a container named ${inputs.name} appeared on the target while the copy was being made; choose another name or remove it`,
          [sentDone],
        );
      if (r.problem) throw base.refuse(inputs, dst, r.problem, [sentDone, RECEIVED]);
      base.log(inputs, dst, `received ${mib(r.bytes)} in ${(r.ms / 1000).toFixed(1)} s; placing it`);
      const config = crossHostConfig(s.sourceConfig, inputs.lxcPath, inputs.name);
      const stdin = Buffer.concat([Buffer.from(config, "utf8"), Buffer.from(sent.flags, "latin1")]);
      const argv = cloneArgv(inputs, "xplace", sent.sent.uuid, String(Buffer.byteLength(config, "utf8")));
      const made = readInspection(inputs, dst, (await dst.check(argv, { stdin })).stdout, [sentDone, MADE]);
      const insp = await converge(
        dst,
        inputs,
        withSource(made, s),
        [sentDone, MADE],
        sourceMacs(s.sourceConfig),
      );
      return toOutputs(inputs, insp, false, [], {
        ...fromSource,
        sentUuid: sent.sent.uuid,
        transferredBytes: r.bytes,
      });
    } catch (e) {
      // A failed create leaves nothing behind on either host: the engine will not record a clone it never got.
      // Best effort: with a host unreachable (the link that failed the copy), what is left is removed by
      // the next create (the target's by its marker, the source's snapshot replaced); the failure stays.
      // A name taken meanwhile is someone else's container: only our receive and marker go then.
      const taken = e instanceof RemoteCommandError && e.code === ExitCode.NAME_TAKEN;
      base.log(inputs, dst, "the copy failed; removing what was made on both hosts");
      await dst.run(cloneArgv(inputs, taken || nameTaken ? "xabandon" : "destroy")).catch(() => undefined);
      await src.run(sourceArgv(inputs, "xdrop", tag)).catch(() => undefined);
      throw e;
    }
  });
  return { id: base.resourceId(inputs), outs };
}

/**
 * Refreshes a cross-host clone from its source's current state (a new `revision`): a new read-only snapshot
 * on the source, sent against the snapshot both hosts kept from the last copy (btrfs send -p: only what
 * changed; in full when they have none in common), received on the target beside the clone, made its
 * rootfs once complete and checked, the old rootfs removed last, and the identity files written again. The
 * clone keeps its config and MACs; its own changes are replaced. A failure puts the clone back as it was.
 */
export async function refreshCrossHostWith(
  src: Remote,
  dst: Remote,
  inputs: CloneInputs,
  olds: Partial<CloneOutputs>,
): Promise<CloneOutputs> {
  return base.guard(inputs, async () => {
    const tag = targetTag(inputs.connection, inputs.lxcPath);
    const { s, sfacts } = await inspectSource(src, inputs, tag, false);
    // What a refresh cut off left on the target is put right first (forward if its swap was done).
    const tout = (await dst.check(cloneArgv(inputs, "xtarget", "recover"))).stdout;
    const t = readInspection(inputs, dst, tout, []);
    if (t.clone.dir === "missing")
      throw base.refuse(
        inputs,
        dst,
        `the clone ${inputs.name} no longer exists; run \`pulumi up --refresh\` to create it again`,
      );
    const state = t.clone.state;
    if ((state === "RUNNING" || state === "FROZEN") && (inputs.ifRunning ?? "fail") === "fail")
      throw base.refuse(
        inputs,
        dst,
        `the clone ${inputs.name} is ${state}; a refresh replaces its rootfs: stop it, or set ifRunning: "restart"`,
      );
    const mode = sourceMode(src, inputs, s, []);
    const parent = commonParent({ source: sfacts, target: parseCrossHostFacts(tout) });
    base.log(
      inputs,
      src,
      parent
        ? `refreshing: a new snapshot of ${inputs.source} (source ${mode}), sent against the one both hosts kept (${parent})`
        : `refreshing: the hosts keep no snapshot in common; sending a new snapshot of ${inputs.source} in full (source ${mode})`,
    );
    const sentOut = await src.check(sourceArgv(inputs, "xsent", mode, tag, parent ?? "-"));
    const sent = parseSentReport(
      (sentOut.stdoutBytes ?? Buffer.from(sentOut.stdout, "utf8")).toString("latin1"),
    );
    let swapped = false;
    try {
      const sendArgs = ["xsend", tag, sent.sent.uuid, ...(parent ? [parent] : [])];
      const r = await transfer(src, dst, inputs, sendArgs, ["xreceive", "refresh"]);
      if (r.problem) throw base.refuse(inputs, dst, r.problem, [REFRESH_NOTHING]);
      base.log(inputs, dst, `received ${mib(r.bytes)} in ${(r.ms / 1000).toFixed(1)} s; swapping the rootfs`);
      const argv = cloneArgv(inputs, "xrefresh", sent.sent.uuid, inputs.ifRunning ?? "fail");
      const out = (await dst.check(argv, { stdin: Buffer.from(sent.flags, "latin1") })).stdout;
      swapped = true;
      const made = readInspection(inputs, dst, out, [REFRESHED]);
      const startAgain = parseCrossHostFacts(out).wasRunning === true;
      const insp = await converge(dst, inputs, withSource(made, s), [REFRESHED], [], startAgain);
      // The clone is done; only then does the source keep the new snapshot as the parent. A run cut before
      // this leaves the source both snapshots, and the next refresh finds the target's parent by its UUID.
      await src.check(sourceArgv(inputs, "xrotate", tag, sent.sent.uuid));
      return toOutputs(inputs, insp, olds.adopted ?? false, [], {
        sourceGeneration: s.source.subvolume?.generation ?? null,
        sentUuid: sent.sent.uuid,
        transferredBytes: r.bytes,
        sentParentUuid: parent ?? null,
      });
    } catch (e) {
      // Before the swap: the clone as it was, the new snapshot gone from the source (the kept one stays the
      // parent). After it: the refresh is done on the target, and the next run finds its parent either way.
      if (!swapped) {
        base.log(inputs, dst, "the refresh failed; leaving the clone as it was");
        await dst.run(cloneArgv(inputs, "xrecover")).catch(() => undefined);
        await src.run(sourceArgv(inputs, "xdropnext", tag)).catch(() => undefined);
      }
      throw e;
    }
  });
}

/**
 * What `done` says of a refresh that failed before its swap (the temporary directory is removed at once if
 * the target can still be reached, else by the next run), and after it.
 */
const REFRESH_NOTHING =
  "received into a temporary directory on the target, which this run or the next removes; the clone is as it was";
const REFRESHED = "replaced the clone's rootfs by the refreshed one";

/** The source host's side: its inspection and cross-host facts, refused if it cannot be sent. */
async function inspectSource(src: Remote, inputs: CloneInputs, tag: string, sized = true) {
  const sres = await src.check(sourceArgv(inputs, "xsource", tag, ...(sized ? [] : ["nosize"])));
  const s = readInspection(inputs, src, sres.stdout, []);
  const problem = sourceProblem(s, inputs.lxcPath, inputs.source, inputs.snapshot, false);
  if (problem) throw base.refuse(inputs, src, problem);
  if (s.nested.length > 0)
    throw base.refuse(
      inputs,
      src,
      `source ${inputs.source} has nested subvolumes in its rootfs (${s.nested.slice(0, 5).join(", ")}); a cross-host clone sends the rootfs subvolume only`,
    );
  return { s, sfacts: parseCrossHostFacts(sres.stdout) };
}

/** How the source's snapshot is taken: as it is (stopped, or a snapshot), or per ifSourceRunning. */
function sourceMode(src: Remote, inputs: CloneInputs, s: CloneInspection, done: readonly string[]) {
  const running = !inputs.snapshot && (s.source.state === "RUNNING" || s.source.state === "FROZEN");
  if (running && inputs.ifSourceRunning === "fail") {
    throw base.refuse(
      inputs,
      src,
      `source ${inputs.source} is ${s.source.state}; stop it, or set ifSourceRunning: "freeze" or "restart"`,
      done,
    );
  }
  return running ? inputs.ifSourceRunning : "stopped";
}

/** btrfs send on the source (`sendArgs`) relayed into btrfs receive on the target, progress in the log. */
function transfer(src: Remote, dst: Remote, inputs: CloneInputs, sendArgs: string[], receiveArgs: string[]) {
  const [sendOp, ...sendRest] = sendArgs;
  const [receiveOp, ...receiveRest] = receiveArgs;
  return relay(
    src,
    sourceArgv(inputs, sendOp, ...sendRest),
    dst,
    cloneArgv(inputs, receiveOp, ...receiveRest),
    {
      progress: (line) => base.log(inputs, dst, line),
      stallSec: Math.min(inputs.connection.commandTimeout, sourceConnectionOf(inputs).commandTimeout),
    },
  );
}

/** What `done` says once a receive ran: the next create removes what it left. */
const RECEIVED = "received into a temporary directory on the target, removed again";

/** The target's inspection, with the source's side and config from the source host's. */
function withSource(t: CloneInspection, s: CloneInspection): CloneInspection {
  return { ...t, source: s.source, sourceConfig: s.sourceConfig };
}

async function inspectTarget(dst: Remote, i: CloneInputs, done: readonly string[]) {
  const out = (await dst.check(cloneArgv(i, "xtarget"))).stdout;
  return { insp: readInspection(i, dst, out, done), facts: parseCrossHostFacts(out) };
}

function readInspection(i: CloneInputs, host: Remote, out: string, done: readonly string[]): CloneInspection {
  try {
    return parseCloneInspection(out);
  } catch (e) {
    throw base.refuse(i, host, `cannot read the host's inspection: ${(e as Error).message}`, done);
  }
}

/** What `done` says once `make` succeeded: a create that fails after it removes the clone again. */
const MADE = "made the snapshot clone, removed again on failure";

function desired(i: CloneInputs) {
  return { name: i.name, source: i.source, hostname: i.hostname ?? i.name, start: i.start };
}

/** An op on the clone's host. A cross-host clone's source is "-" there: it is on another host. */
function cloneArgv(i: CloneInputs, op: string, ...args: string[]): string[] {
  if (isCrossHost(i)) return scriptArgv("clone", [op, i.lxcPath, "-", i.name, ...args]);
  return sourceArgv(i, op, ...args);
}

/** An op on the source's host (the clone's, unless sourceConnection names another). */
function sourceArgv(i: CloneInputs, op: string, ...args: string[]): string[] {
  // A snapshot of the source goes as SOURCE/snaps/SNAPSHOT: clone.sh clones that (names hold no "/").
  const source = i.snapshot ? `${i.source}/snaps/${i.snapshot}` : i.source;
  return scriptArgv("clone", [op, i.lxcPath, source, i.name, ...args]);
}

async function inspect(
  remote: Remote,
  i: CloneInputs,
  done: readonly string[] = [],
): Promise<CloneInspection> {
  return inspectOutput(remote, i, cloneArgv(i, "inspect"), undefined, done);
}

/** Snapshot with the host's LXC tool; returns the inspection after it. On failure, removes what was made. */
async function makeClone(
  remote: Remote,
  i: CloneInputs,
  insp: CloneInspection,
  done: readonly string[],
): Promise<CloneInspection> {
  // A snapshot is read-only: whatever the source does, there is nothing to freeze or stop.
  const running = !i.snapshot && (insp.source.state === "RUNNING" || insp.source.state === "FROZEN");
  if (running && i.ifSourceRunning === "fail") {
    throw base.refuse(
      i,
      remote,
      `source ${i.source} is ${insp.source.state}; stop it, or set ifSourceRunning: "freeze" or "restart"`,
      done,
    );
  }
  const tool = insp.hasLxcCopy ? "lxc-copy" : insp.hasLxcClone ? "lxc-clone" : undefined;
  if (!tool) throw base.refuse(i, remote, "neither lxc-copy nor lxc-clone is installed; install lxc", done);
  const mode = running ? i.ifSourceRunning : "stopped";
  const nested = insp.nested.length > 0;
  base.log(
    i,
    remote,
    `snapshotting ${i.source} with ${tool} -s (source ${mode})` +
      (nested ? `, then ${insp.nested.length} nested subvolume(s) into place` : ""),
  );
  try {
    const argv = cloneArgv(i, "make", mode, tool, nested ? "1" : "0");
    return await inspectOutput(remote, i, argv, undefined, [...done, MADE]);
  } catch (e) {
    // The name was taken between the inspection and the snapshot; nothing was made, nothing to remove.
    if (e instanceof RemoteCommandError && e.code === ExitCode.NAME_TAKEN)
      throw base.refuse(
        i,
        remote,
        `a container named ${i.name} appeared while the clone was being made; choose another name or remove it`,
        done,
      );
    base.log(i, remote, "clone failed; removing what was made");
    await remote.run(cloneArgv(i, "destroy"));
    throw e;
  }
}

/**
 * Brings config, identity files and running state to what is declared, in one round trip that also
 * returns the final inspection (none at all when nothing differs).
 */
async function converge(
  remote: Remote,
  i: CloneInputs,
  insp: CloneInspection,
  done: readonly string[],
  avoidMacs: readonly string[] = [],
  startAgain = false,
): Promise<CloneInspection> {
  const edits = cloneEdits(i, insp, () => randomInt(0, 2 ** 32) / 2 ** 32, avoidMacs, startAgain);
  if (!edits) return insp;
  if (edits.action !== "-") base.log(i, remote, edits.action === "start" ? "starting" : "stopping");
  const argv = cloneArgv(i, "finish", ...edits.counts, edits.action);
  return inspectOutput(remote, i, argv, edits.stdin, [...done, finished(edits)]);
}

/** What `done` says once `finish` succeeded: the files it wrote, the start or stop it did. */
function finished(edits: { counts: string[]; action: "start" | "stop" | "-" }): string {
  const files = ["config", "/etc/hostname", "/etc/hosts"].filter((_, k) => edits.counts[k] !== "-");
  const did = { start: "started the clone", stop: "stopped the clone", "-": "" }[edits.action];
  return [files.length ? `wrote the clone's ${files.join(", ")}` : "", did].filter(Boolean).join("; ");
}

/** Pure: the files to rewrite and the start/stop to do, as the `finish` op takes them; undefined if none. */
export function cloneEdits(
  i: CloneInputs,
  insp: CloneInspection,
  rand: () => number,
  avoidMacs: readonly string[] = [],
  startAgain = false,
): { counts: [string, string, string]; action: "start" | "stop" | "-"; stdin: string } | undefined {
  const want = desired(i);
  const cloneMacs = findHwaddrs(insp.cloneConfig);
  // Every other container's MACs on the host, and those a cross-host clone must not keep (its source's).
  const others = [...insp.hwaddrs.filter(([c]) => c !== i.name).map(([, m]) => m), ...avoidMacs];
  const macs = uniqueMacs(cloneMacs, others, rand);
  const config = finishCloneConfig(insp.cloneConfig, {
    lxcPath: i.lxcPath,
    source: i.source,
    name: i.name,
    hostname: want.hostname,
    macs,
  });
  const oldHost = insp.cloneHostname || getConfigValue(insp.sourceConfig, "lxc.uts.name") || i.source;
  const srcHost = getConfigValue(insp.sourceConfig, "lxc.uts.name") ?? i.source;
  let hosts = rewriteHosts(insp.cloneHosts, srcHost, want.hostname);
  if (oldHost !== srcHost) hosts = rewriteHosts(hosts, oldHost, want.hostname);
  const files = [
    config !== insp.cloneConfig ? config : undefined,
    insp.cloneHostname !== want.hostname ? `${want.hostname}\n` : undefined,
    insp.cloneHosts && hosts !== insp.cloneHosts ? hosts : undefined,
  ];
  const running = insp.clone.state === "RUNNING";
  // startAgain: a clone a refresh stopped runs again, declared to or not.
  const start = want.start || startAgain;
  const action = start && !running ? "start" : !start && running ? "stop" : "-";
  if (action === "-" && files.every((f) => f === undefined)) return undefined;
  const counts = files.map((f) => (f === undefined ? "-" : String(Buffer.byteLength(f, "utf8"))));
  return {
    counts: counts as [string, string, string],
    action,
    stdin: files.filter((f) => f !== undefined).join(""),
  };
}

/**
 * Runs an op that ends with an inspection, and parses it. `done` is what the host looks like changed by
 * once the op succeeded (this run's earlier steps and this op's own), for the message when the report
 * cannot be read.
 */
async function inspectOutput(
  remote: Remote,
  i: CloneInputs,
  argv: string[],
  stdin: string | undefined,
  done: readonly string[],
): Promise<CloneInspection> {
  const res = await remote.check(argv, stdin === undefined ? {} : { stdin });
  try {
    return parseCloneInspection(res.stdout);
  } catch (e) {
    throw base.refuse(i, remote, `cannot read the host's inspection: ${(e as Error).message}`, done);
  }
}

function toOutputs(
  i: CloneInputs,
  insp: CloneInspection,
  adopted: boolean,
  drift: string[],
  extra: Partial<CloneOutputs> = {},
): CloneOutputs {
  return {
    ...i,
    target: describeTarget(i.connection),
    rootfsPath: `${i.lxcPath}/${i.name}/rootfs`,
    subvolumeId: insp.clone.subvolume?.id ?? null,
    subvolumeUuid: insp.clone.subvolume?.uuid ?? null,
    parentUuid: insp.clone.subvolume?.parentUuid ?? null,
    sourceGeneration: insp.source.subvolume?.generation ?? null,
    state: insp.clone.state ?? "UNKNOWN",
    hwaddrs: findHwaddrs(insp.cloneConfig),
    actualHostname: getConfigValue(insp.cloneConfig, "lxc.uts.name") ?? null,
    adopted,
    drift,
    sentUuid: null,
    transferredBytes: null,
    sentParentUuid: null,
    ...extra,
  };
}

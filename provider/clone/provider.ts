/**
 * LxcSnapshotClone, the provider side: validate -> inspect -> snapshot with the host's LXC tools ->
 * finish what they miss (mount entries, log file, /etc/hosts, MACs, nested subvolumes) -> report.
 * What both providers share is in core/provider-base.ts.
 */
import { randomInt } from "node:crypto";
import { RemoteCommandError } from "../core/errors";
import type { CheckFailure } from "../core/inputs";
import { guardProviderProcess } from "../core/process-guard";
import { ProviderBase } from "../core/provider-base";
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

export async function create(raw: CloneInputs): Promise<{ id: string; outs: CloneOutputs }> {
  const inputs = base.parse(raw);
  return createCloneWith(openRemote(inputs.connection), inputs);
}

export async function update(
  _id: string,
  olds: CloneOutputs,
  raw: CloneInputs,
): Promise<{ outs: CloneOutputs }> {
  const inputs = base.parse(raw);
  return { outs: await updateCloneWith(openRemote(inputs.connection), inputs, olds.adopted ?? false) };
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
  const outs = toOutputs(inputs, insp, props.adopted ?? false, drift);
  outs.parentUuid = props.parentUuid ?? outs.parentUuid;
  outs.sourceGeneration = props.sourceGeneration ?? outs.sourceGeneration;
  return { id, props: outs, inputs: base.pickInputs(props) as CloneInputs };
}

export async function del(_id: string, props: CloneOutputs): Promise<void> {
  const inputs = base.inputsFromState(props);
  const remote = openRemote(inputs.connection);
  base.log(inputs, remote, "destroying the clone");
  await base.guard(inputs, () => remote.check(cloneArgv(inputs, "destroy")));
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

/** What `done` says once `make` succeeded: a create that fails after it removes the clone again. */
const MADE = "made the snapshot clone, removed again on failure";

function desired(i: CloneInputs) {
  return { name: i.name, source: i.source, hostname: i.hostname ?? i.name, start: i.start };
}

function cloneArgv(i: CloneInputs, op: string, ...args: string[]): string[] {
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
): Promise<CloneInspection> {
  const edits = cloneEdits(i, insp, () => randomInt(0, 2 ** 32) / 2 ** 32);
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
): { counts: [string, string, string]; action: "start" | "stop" | "-"; stdin: string } | undefined {
  const want = desired(i);
  const cloneMacs = findHwaddrs(insp.cloneConfig);
  const others = insp.hwaddrs.filter(([c]) => c !== i.name).map(([, m]) => m);
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
  const action = want.start && !running ? "start" : !want.start && running ? "stop" : "-";
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

function toOutputs(i: CloneInputs, insp: CloneInspection, adopted: boolean, drift: string[]): CloneOutputs {
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
  };
}

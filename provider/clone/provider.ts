/**
 * LxcSnapshotClone, the provider side: validate -> inspect -> snapshot with the host's LXC tools ->
 * finish what they miss (mount entries, log file, /etc/hosts, MACs, nested subvolumes) -> report.
 */
import { randomInt } from "node:crypto";
import { type CloneInspection, parseCloneInspection } from "./inspection";
import {
  adoptProblem,
  cloneDrift,
  driftNeedsReplace,
  finishCloneConfig,
  rewriteHosts,
  sourceProblem,
  uniqueMacs,
} from "./plan";
import { findHwaddrs } from "../host/lxc-config";
import { RemoteCommandError, UserError } from "../core/errors";
import { getConfigValue } from "../host/lxc-config";
import { scriptArgv } from "../transport/remote-scripts";
import { guardProviderProcess } from "../core/process-guard";
import { type CheckFailure, checkInputs, parseInputsOrThrow } from "../core/inputs";
import { type CloneInputs, cloneArgsSchema } from "./inputs";
import { describeTarget, openRemote, type Remote } from "../transport/ssh";

guardProviderProcess();

export interface CloneOutputs extends CloneInputs {
  target: string;
  rootfsPath: string;
  subvolumeId: number | null;
  subvolumeUuid: string | null;
  parentUuid: string | null;
  sourceGeneration: number | null;
  state: "RUNNING" | "STOPPED" | string;
  hwaddrs: string[];
  actualHostname: string | null;
  adopted: boolean;
  /** What read found different from the declaration; update repairs it. */
  drift: string[];
}

const INPUT_KEYS = [
  "connection",
  "lxcPath",
  "source",
  "name",
  "ifSourceRunning",
  "start",
  "hostname",
] as const;

export async function check(
  _olds: unknown,
  news: unknown,
): Promise<{ inputs?: unknown; failures?: CheckFailure[] }> {
  return checkInputs(cloneArgsSchema, news);
}

/** Pure: source, name, lxcPath or host changes replace; start/hostname update in place; drift updates. */
export function diffClone(
  olds: Partial<CloneOutputs>,
  news: CloneInputs,
): { changes: boolean; replaces: string[]; deleteBeforeReplace: boolean } {
  const replaces: string[] = [];
  const oc = olds.connection;
  if (oc && (oc.host !== news.connection.host || oc.port !== news.connection.port))
    replaces.push("connection");
  for (const k of ["source", "name", "lxcPath"] as const) if (olds[k] !== news[k]) replaces.push(k);
  const drift = olds.drift ?? [];
  if (replaces.length === 0 && driftNeedsReplace(drift)) replaces.push("name");
  const changed =
    INPUT_KEYS.some((k) => JSON.stringify(olds[k] ?? null) !== JSON.stringify(news[k] ?? null)) ||
    drift.length > 0;
  // A clone can be made before the old one goes only if the names differ (same host, same lxcPath).
  const sameName =
    (olds.name ?? news.name) === news.name &&
    (olds.lxcPath ?? news.lxcPath) === news.lxcPath &&
    !replaces.includes("connection");
  return {
    changes: changed || replaces.length > 0,
    replaces,
    deleteBeforeReplace: replaces.length > 0 && sameName,
  };
}

export async function create(raw: CloneInputs): Promise<{ id: string; outs: CloneOutputs }> {
  const inputs = parseInputs(raw);
  return named(inputs, () => createClone(inputs));
}

/** Creates (or adopts) through any Remote: the SSH one in the provider, a recording one in tests. */
export async function createCloneWith(
  remote: Remote,
  inputs: CloneInputs,
): Promise<{ id: string; outs: CloneOutputs }> {
  return named(inputs, () => createClone(inputs, remote));
}

async function createClone(
  inputs: CloneInputs,
  remote: Remote = openRemote(inputs.connection),
): Promise<{ id: string; outs: CloneOutputs }> {
  let insp = await inspect(remote, inputs);
  const problem = sourceProblem(insp, inputs.lxcPath, inputs.source);
  if (problem) throw refuse(inputs, remote, problem);
  let adopted = false;
  if (insp.clone.dir === "present" && insp.making) {
    // A create cut off between the snapshot and the end of the fixups (connection lost, provider killed)
    // left its marker: what is there was made by that create and nothing else uses it yet. Make it again.
    log(remote, inputs, "removing an unfinished clone left by an interrupted create");
    await remote.check(cloneArgv(inputs, "destroy"));
    insp = await inspect(remote, inputs);
  }
  if (insp.clone.dir === "present") {
    const why = adoptProblem(insp, inputs.lxcPath, inputs.source, inputs.name);
    if (why) throw refuse(inputs, remote, why);
    adopted = true;
    log(remote, inputs, "adopting the existing snapshot clone");
    insp = await converge(remote, inputs, insp);
  } else {
    const made = await makeClone(remote, inputs, insp);
    try {
      insp = await converge(remote, inputs, made);
    } catch (e) {
      // A failed create leaves nothing behind: the engine will not record a clone it never got.
      log(remote, inputs, "finishing the clone failed; removing it");
      await remote.run(cloneArgv(inputs, "destroy"));
      throw e;
    }
  }
  return {
    id: `${inputs.connection.host}:${inputs.connection.port}:${inputs.lxcPath}/${inputs.name}`,
    outs: toOutputs(inputs, insp, adopted, []),
  };
}

export async function update(
  _id: string,
  olds: CloneOutputs,
  raw: CloneInputs,
): Promise<{ outs: CloneOutputs }> {
  const inputs = parseInputs(raw);
  return named(inputs, () => updateClone(olds, inputs));
}

async function updateClone(olds: CloneOutputs, inputs: CloneInputs): Promise<{ outs: CloneOutputs }> {
  const remote = openRemote(inputs.connection);
  const found = await inspect(remote, inputs);
  if (found.clone.dir === "missing") {
    throw refuse(
      inputs,
      remote,
      `the clone ${inputs.name} no longer exists; run \`pulumi up --refresh\` to create it again`,
    );
  }
  const insp = await converge(remote, inputs, found);
  return { outs: toOutputs(inputs, insp, olds.adopted ?? false, []) };
}

export async function read(
  id: string,
  props: CloneOutputs,
): Promise<{ id?: string; props?: CloneOutputs; inputs?: CloneInputs }> {
  const inputs = parseInputs(pickInputs(props));
  const remote = openRemote(inputs.connection);
  const insp = await named(inputs, () => inspect(remote, inputs));
  if (insp.clone.dir === "missing") return {};
  const drift = cloneDrift(insp, desired(inputs), inputs.lxcPath, props.parentUuid ?? null);
  const outs = toOutputs(inputs, insp, props.adopted ?? false, drift);
  outs.parentUuid = props.parentUuid ?? outs.parentUuid;
  outs.sourceGeneration = props.sourceGeneration ?? outs.sourceGeneration;
  return { id, props: outs, inputs: pickInputs(props) };
}

export async function del(_id: string, props: CloneOutputs): Promise<void> {
  const inputs = parseInputs(pickInputs(props));
  const remote = openRemote(inputs.connection);
  log(remote, inputs, "destroying the clone");
  await named(inputs, () => remote.check(cloneArgv(inputs, "destroy")));
}

/** Names the clone in every failure, not only in refusals. */
async function named<T>(i: CloneInputs, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (e instanceof UserError && !e.message.startsWith("LxcSnapshotClone ")) {
      throw new UserError(`LxcSnapshotClone ${i.name} (from ${i.source}): ${e.message}`);
    }
    throw e;
  }
}

function pickInputs(props: Partial<CloneOutputs>): CloneInputs {
  const out: Record<string, unknown> = {};
  for (const k of INPUT_KEYS) if (props[k] !== undefined && props[k] !== null) out[k] = props[k];
  return out as unknown as CloneInputs;
}

function parseInputs(raw: unknown): CloneInputs {
  return parseInputsOrThrow(cloneArgsSchema, raw, "LxcSnapshotClone");
}

function desired(i: CloneInputs) {
  return { name: i.name, source: i.source, hostname: i.hostname ?? i.name, start: i.start };
}

function refuse(i: CloneInputs, remote: Remote, why: string): UserError {
  return new UserError(
    `LxcSnapshotClone ${i.name} (from ${i.source}) on ${remote.target}: ${why}. Nothing was changed.`,
  );
}

function log(remote: Remote, i: CloneInputs, msg: string): void {
  console.log(`[lxc-btrfs] clone ${i.name} on ${remote.target}: ${msg}`);
}

function cloneArgv(i: CloneInputs, op: string, ...args: string[]): string[] {
  return scriptArgv("clone", [op, i.lxcPath, i.source, i.name, ...args]);
}

async function inspect(remote: Remote, i: CloneInputs): Promise<CloneInspection> {
  return inspectOutput(remote, i, cloneArgv(i, "inspect"));
}

/** Snapshot with the host's LXC tool; returns the inspection after it. On failure, removes what was made. */
async function makeClone(remote: Remote, i: CloneInputs, insp: CloneInspection): Promise<CloneInspection> {
  const running = insp.source.state === "RUNNING" || insp.source.state === "FROZEN";
  if (running && i.ifSourceRunning === "fail") {
    throw refuse(
      i,
      remote,
      `source ${i.source} is ${insp.source.state}; stop it, or set ifSourceRunning: "freeze" or "restart"`,
    );
  }
  const tool = insp.hasLxcCopy ? "lxc-copy" : insp.hasLxcClone ? "lxc-clone" : undefined;
  if (!tool) throw refuse(i, remote, "neither lxc-copy nor lxc-clone is installed; install lxc");
  const mode = running ? i.ifSourceRunning : "stopped";
  const nested = insp.nested.length > 0;
  log(
    remote,
    i,
    `snapshotting ${i.source} with ${tool} -s (source ${mode})` +
      (nested ? `, then ${insp.nested.length} nested subvolume(s) into place` : ""),
  );
  try {
    return await inspectOutput(remote, i, cloneArgv(i, "make", mode, tool, nested ? "1" : "0"));
  } catch (e) {
    // Exit 4: the name was taken between the inspection and the snapshot; nothing was made, nothing to remove.
    if (e instanceof RemoteCommandError && e.code === 4)
      throw refuse(
        i,
        remote,
        `a container named ${i.name} appeared while the clone was being made; choose another name or remove it`,
      );
    log(remote, i, "clone failed; removing what was made");
    await remote.run(cloneArgv(i, "destroy"));
    throw e;
  }
}

/**
 * Brings config, identity files and running state to what is declared, in one round trip that also
 * returns the final inspection (none at all when nothing differs).
 */
async function converge(remote: Remote, i: CloneInputs, insp: CloneInspection): Promise<CloneInspection> {
  const edits = cloneEdits(i, insp, () => randomInt(0, 2 ** 32) / 2 ** 32);
  if (!edits) return insp;
  if (edits.action !== "-") log(remote, i, edits.action === "start" ? "starting" : "stopping");
  return inspectOutput(remote, i, cloneArgv(i, "finish", ...edits.counts, edits.action), edits.stdin);
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

async function inspectOutput(
  remote: Remote,
  i: CloneInputs,
  argv: string[],
  stdin?: string,
): Promise<CloneInspection> {
  const res = await remote.check(argv, stdin === undefined ? {} : { stdin });
  try {
    return parseCloneInspection(res.stdout);
  } catch (e) {
    throw refuse(i, remote, (e as Error).message);
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

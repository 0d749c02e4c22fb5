/**
 * LxcSnapshot, the provider side: validate -> inspect -> refuse, adopt or make (snapshot.sh: build, freeze
 * and thaw, rename into place) -> report. What the providers share is in core/provider-base.ts.
 */
import { RemoteCommandError } from "../core/errors";
import type { CheckFailure } from "../core/inputs";
import { guardProviderProcess } from "../core/process-guard";
import { ProviderBase } from "../core/provider-base";
import { ExitCode } from "../transport/exit-codes";
import { scriptArgv } from "../transport/remote-scripts";
import { describeTarget, openRemote, type Remote } from "../transport/ssh";
import { type SnapshotInputs, snapshotArgsSchema } from "./inputs";
import { parseSnapshotInspection, type SnapshotInspection } from "./inspection";
import type { SnapshotOutputs } from "./outputs";
import {
  containerProblem,
  existingSnapshot,
  frozenMs,
  snapshotDrift,
  snapshotPath,
  takeProblem,
} from "./plan";

export type { SnapshotOutputs } from "./outputs";

guardProviderProcess();

const base = new ProviderBase<SnapshotInputs>({
  type: "LxcSnapshot",
  schema: snapshotArgsSchema,
  label: (i) => `${i.name} (of ${i.container})`,
  logLabel: (i) => `snapshot ${i.container}/${i.name}`,
  container: (i) => `${i.container}/snaps/${i.name}`,
});

const REPLACE_KEYS = ["container", "name", "lxcPath"] as const;

export async function check(
  _olds: unknown,
  news: unknown,
): Promise<{ inputs?: unknown; failures?: CheckFailure[] }> {
  return base.check(news);
}

/** Pure: container, name, lxcPath or host changes replace, and so does drift; ifRunning alone updates. */
export function diffSnapshot(
  olds: Partial<SnapshotOutputs>,
  news: SnapshotInputs,
): { changes: boolean; replaces: string[]; deleteBeforeReplace: boolean } {
  const { replaces, changed } = base.diffInputs(olds, news, REPLACE_KEYS);
  const drift = olds.drift ?? [];
  if (replaces.length === 0 && drift.length > 0) replaces.push("name");
  // The new snapshot can be made first only where it does not take the old one's path.
  const samePath =
    (olds.name ?? news.name) === news.name &&
    (olds.container ?? news.container) === news.container &&
    (olds.lxcPath ?? news.lxcPath) === news.lxcPath &&
    !replaces.includes("connection");
  return {
    changes: changed || drift.length > 0 || replaces.length > 0,
    replaces,
    deleteBeforeReplace: replaces.length > 0 && samePath,
  };
}

export async function create(raw: SnapshotInputs): Promise<{ id: string; outs: SnapshotOutputs }> {
  const inputs = base.parse(raw);
  return createSnapshotWith(openRemote(inputs.connection), inputs);
}

/** Only ifRunning or nestedSubvolumes changed (anything else replaces): nothing to do on the host. */
export async function update(
  _id: string,
  olds: SnapshotOutputs,
  raw: SnapshotInputs,
): Promise<{ outs: SnapshotOutputs }> {
  const inputs = base.parse(raw);
  const { __provider: _, ...outs } = olds as SnapshotOutputs & { __provider?: unknown };
  return { outs: { ...outs, ...inputs, target: describeTarget(inputs.connection) } };
}

export async function read(
  id: string,
  props: SnapshotOutputs,
): Promise<{ id?: string; props?: SnapshotOutputs; inputs?: SnapshotInputs }> {
  const inputs = base.inputsFromState(props);
  const remote = openRemote(inputs.connection);
  const insp = await base.guard(inputs, () => inspect(remote, inputs, "read"));
  if (insp.snapDir !== "dir" || insp.snapRootfs === "missing") return {};
  const outs: SnapshotOutputs = {
    ...toOutputs(inputs, insp, props.adopted ?? false),
    // What create recorded stays: the identity delete checks, and the snapshot's facts.
    uuid: props.uuid,
    parentUuid: props.parentUuid ?? null,
    generation: props.generation,
    createdAt: props.createdAt,
    frozenMs: props.frozenMs ?? null,
    containerState: props.containerState,
    nested: props.nested ?? [],
    readOnly: insp.snapshot?.readOnly ?? false,
    drift: snapshotDrift(insp, props.uuid ?? null),
  };
  return { id, props: outs, inputs: base.pickInputs(props) as SnapshotInputs };
}

export async function del(_id: string, props: SnapshotOutputs): Promise<void> {
  const inputs = base.inputsFromState(props);
  await deleteSnapshotWith(openRemote(inputs.connection), inputs, props.uuid);
}

/** Removes the snapshot's subvolume (only if it has `uuid`) and its files, through any Remote. */
export async function deleteSnapshotWith(
  remote: Remote,
  inputs: SnapshotInputs,
  uuid: string,
): Promise<void> {
  if (!/^[0-9a-f-]{36}$/.test(uuid ?? "")) {
    throw base.refuse(
      inputs,
      remote,
      `the state holds no snapshot UUID (${String(uuid)}), so nothing can be checked before a delete; remove ${snapshotPath(inputs)} yourself`,
    );
  }
  base.log(inputs, remote, "removing the snapshot");
  await base.guard(inputs, () => remote.check(snapshotArgv(inputs, "delete", uuid)));
}

/** Makes the snapshot (or adopts a complete one at its path), through any Remote. */
export async function createSnapshotWith(
  remote: Remote,
  inputs: SnapshotInputs,
): Promise<{ id: string; outs: SnapshotOutputs }> {
  const outs = await base.guard(inputs, async () => {
    const insp = await inspect(remote, inputs, "all");
    const problem = containerProblem(insp, inputs);
    if (problem) throw base.refuse(inputs, remote, problem);
    const found = existingSnapshot(insp, inputs);
    if (found.kind === "refuse") throw base.refuse(inputs, remote, found.why);
    if (found.kind === "adopt") {
      base.log(inputs, remote, `adopting the existing read-only snapshot at ${snapshotPath(inputs)}`);
      return toOutputs(inputs, insp, true);
    }
    const why = takeProblem(insp, inputs);
    if (why) throw base.refuse(inputs, remote, why);
    const mode = insp.state === "RUNNING" ? inputs.ifRunning : (insp.state ?? "").toLowerCase();
    const nested = insp.nested.length > 0 && inputs.nestedSubvolumes === "include";
    base.log(
      inputs,
      remote,
      `snapshotting ${inputs.container}'s rootfs read-only into ${snapshotPath(inputs)} (container ${mode})` +
        (nested ? `, with ${insp.nested.length} nested subvolume(s)` : ""),
    );
    const made = await make(remote, inputs, nested);
    if (made.thawed) base.log(inputs, remote, "thawed the container, frozen by a snapshot cut short");
    if (made.frozenNs !== undefined)
      base.log(inputs, remote, `container frozen for ${frozenMs(made.frozenNs)} ms`);
    return toOutputs(inputs, made, false);
  });
  return { id: base.resourceId(inputs), outs };
}

function snapshotArgv(i: SnapshotInputs, op: string, ...args: string[]): string[] {
  return scriptArgv("snapshot", [op, i.lxcPath, i.container, i.name, ...args]);
}

async function make(remote: Remote, i: SnapshotInputs, nested: boolean): Promise<SnapshotInspection> {
  try {
    return await inspectOutput(remote, i, snapshotArgv(i, "make", i.ifRunning, nested ? "1" : "0"), [
      "made the snapshot",
    ]);
  } catch (e) {
    if (e instanceof RemoteCommandError && e.code === ExitCode.NAME_TAKEN)
      throw base.refuse(
        i,
        remote,
        `${snapshotPath(i)} appeared while the snapshot was being made; choose another name or remove it`,
      );
    throw e;
  }
}

async function inspect(
  remote: Remote,
  i: SnapshotInputs,
  scope: "all" | "read",
): Promise<SnapshotInspection> {
  return inspectOutput(remote, i, snapshotArgv(i, "inspect", scope), []);
}

/** Runs an op that ends with an inspection, and parses it; `done` is what the op changed once it succeeded. */
async function inspectOutput(
  remote: Remote,
  i: SnapshotInputs,
  argv: string[],
  done: readonly string[],
): Promise<SnapshotInspection> {
  const res = await remote.check(argv);
  try {
    return parseSnapshotInspection(res.stdout);
  } catch (e) {
    throw base.refuse(i, remote, `cannot read the host's inspection: ${(e as Error).message}`, done);
  }
}

function toOutputs(i: SnapshotInputs, insp: SnapshotInspection, adopted: boolean): SnapshotOutputs {
  const snap = insp.snapshot;
  if (!snap)
    throw base.refuse(
      i,
      { target: describeTarget(i.connection) },
      `${snapshotPath(i)}/rootfs is not a subvolume after the snapshot`,
      ["made the snapshot"],
    );
  return {
    ...i,
    target: describeTarget(i.connection),
    path: snapshotPath(i),
    rootfsPath: `${snapshotPath(i)}/rootfs`,
    uuid: snap.uuid,
    parentUuid: snap.parentUuid,
    generation: snap.generation,
    createdAt: snap.createdAt,
    readOnly: snap.readOnly,
    frozenMs: frozenMs(insp.frozenNs),
    containerState: insp.stateAtSnapshot ?? insp.state ?? "UNKNOWN",
    nested: insp.snapNested,
    adopted,
    drift: [],
  };
}

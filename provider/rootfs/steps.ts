/**
 * The step batches of a conversion: which steps run together, their argv, and reading what step.sh prints
 * back. Pure. step.sh's `step` function has an arm for every op of the Step union (STEP_OPS) and for the
 * provider's own `verify-diff`; a unit test keeps the two lists equal.
 */
import type { Step } from "./plan";

/** Every op a plan may put in a batch: exactly the Step union's (the Record type refuses one more or less). */
const OPS: Record<Step["op"], true> = {
  journal: true,
  "journal-clear": true,
  stop: true,
  start: true,
  discard: true,
  unswapped: true,
  "subvol-create": true,
  "mkdir-new": true,
  copy: true,
  precopy: true,
  catchup: true,
  verify: true,
  swap: true,
  "write-config": true,
  "move-nested": true,
  remove: true,
  "snapshot-check": true,
  "journal-restore": true,
  "restore-snapshot": true,
  "restore-verify": true,
};
export const STEP_OPS = Object.keys(OPS) as Step["op"][];

export function stepArgs(step: Step): string[] {
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
    case "precopy":
      return [step.from, step.to, String(Math.max(1000, Math.ceil(step.total / 10)))];
    case "catchup":
      return [step.from, step.to];
    case "verify":
      return [step.a, step.b];
    case "unswapped":
      return [step.cur, step.old];
    case "swap":
      return [step.cur, step.next, step.old];
    case "write-config":
      return [step.expectedSha, step.backupName];
    case "move-nested":
      return [step.from, step.to];
    case "snapshot-check":
      return [step.snapshot, step.cur, step.keep ? "1" : "0"];
    case "journal-restore":
      return [step.phase, step.snapshot, step.wasRunning ? "1" : "0"];
    case "restore-snapshot":
    case "restore-verify":
      return [step.snapshot, step.path];
  }
}

/** `OP NARGS ARG...`: how step.sh takes each op of a batch. */
function opArgv(op: string, args: readonly string[]): string[] {
  return [op, String(args.length), ...args];
}

type Verify = Extract<Step, { op: "verify" }>;
type HandsOff = Extract<Step, { op: "copy" | "catchup" }>;

/**
 * Pure: the argv of one batch: `LXCPATH NAME OP NARGS ARG... OP NARGS ARG...`. Refuses a batch that
 * separates a copy or catch-up from its verification (see handOffProblem).
 */
export function batchArgs(lxcPath: string, container: string, steps: readonly Step[]): string[] {
  const problem = handOffProblem(steps);
  if (problem) throw new Error(`internal error: a step batch that cannot run: ${problem}`);
  return [lxcPath, container, ...steps.flatMap((s) => opArgv(s.op, stepArgs(s)))];
}

/**
 * Pure: the batches `steps` run in, in order, each up to and including a verification (whose report the
 * provider judges before anything after it runs), then the rest. Every batch is checked before the first
 * runs (see handOffProblem): a plan that breaks the rule is refused with nothing sent.
 */
export function stepBatches(steps: readonly Step[]): Step[][] {
  const batches: Step[][] = [];
  let batch: Step[] = [];
  for (const step of steps) {
    batch.push(step);
    if (step.op !== "verify") continue;
    batches.push(batch);
    batch = [];
  }
  if (batch.length) batches.push(batch);
  for (const b of batches) {
    const problem = handOffProblem(b);
    if (problem) throw new Error(`internal error: a plan whose steps cannot run: ${problem}`);
  }
  return batches;
}

/**
 * Pure: why `batch` cannot run as one step.sh command, or undefined. A `copy` or `catchup` starts the
 * walks of its source beside its own work and hands them to the `verify` after it through shell variables
 * of that one step.sh process (the walks' process and directory, and which tree they walk): each must be
 * followed, in the same batch and before any other copy or catch-up, by the verification of its own two
 * trees. Split from it, the walks would be killed with the batch, and the verification left to walk again.
 */
export function handOffProblem(batch: readonly Step[]): string | undefined {
  let open: HandsOff | undefined;
  for (const step of batch) {
    if (step.op === "verify") {
      if (open && (step.a !== open.from || step.b !== open.to))
        return `the ${open.op} of ${open.from} into ${open.to} is followed by the verify of ${step.a} against ${step.b}`;
      open = undefined;
    } else if (step.op === "copy" || step.op === "catchup") {
      if (open) return `the ${open.op} of ${open.from} is followed by a ${step.op} before its verify`;
      open = step;
    }
  }
  return (
    open && `the ${open.op} of ${open.from} into ${open.to} is not followed by their verify in its batch`
  );
}

/**
 * Pure: the argv of step.sh's `verify-diff` (an op no plan makes): the first entries that differ between
 * the trees of a failed verification, for the error message. It runs alone, after the batch.
 */
export function verifyDiffArgs(lxcPath: string, container: string, verify: Verify): string[] {
  return [lxcPath, container, ...opArgv("verify-diff", [verify.a, verify.b])];
}

/**
 * Pure: the argv of a batch followed by the inspection (`inspect`, an op no plan makes); its output follows
 * the line `@@inspect NONCE` (see inspectionAfter).
 */
export function batchThenInspectArgs(
  lxcPath: string,
  container: string,
  steps: readonly Step[],
  nonce: string,
): string[] {
  return [...batchArgs(lxcPath, container, steps), ...opArgv("inspect", [nonce])];
}

/**
 * Pure: what the inspection at the end of a batch printed (see batchThenInspectArgs), or undefined if it
 * did not run. The nonce is drawn for each batch, so no file name a step printed, made before the batch
 * began, can forge the line that starts it.
 */
export function inspectionAfter(stdout: string, nonce: string): string | undefined {
  const marker = `@@inspect ${nonce}\n`;
  const at = stdout.indexOf(marker);
  return at < 0 || (at > 0 && stdout[at - 1] !== "\n") ? undefined : stdout.slice(at + marker.length);
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

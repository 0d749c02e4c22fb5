/**
 * Coalesces concurrent runs of one remote script on one host into a single command. A refresh or an
 * `up` that adopts a fleet sends hundreds of inspections to a host at once; one channel per inspection
 * pays a session and a shell each, and host facts each time. Requests for the same script on the same
 * pooled connection that arrive within BATCH_WINDOW_MS go out together (batch.sh runs them on the host,
 * a few at a time, and frames each result by byte counts); every caller gets its own result back, or
 * the batch's failure, which its provider reports under its own resource name.
 */
import { RemoteCommandError } from "../core/errors";
import type { Remote, RunResult } from "./remote";
import { type ScriptName, script, scriptArgv } from "./remote-scripts";
import { trace } from "./util";

/** How long a first request waits for others to join it: short next to a round trip (~ms). */
const BATCH_WINDOW_MS = 3;
/** Requests per batch at most; a full batch goes at once. */
const MAX_BATCH = 32;
/** Items a batch runs at the same time on the host. */
const HOST_PARALLEL = 4;

interface Pending {
  args: readonly string[];
  resolve: (r: RunResult) => void;
  reject: (e: unknown) => void;
}

/** How a kind of request runs alone, and how many of them run as one command whose output is framed. */
interface Runner {
  single(args: readonly string[]): string[];
  many(items: (readonly string[])[]): string[];
}

interface Batch {
  remote: Remote;
  runner: Runner;
  pending: Pending[];
  timer?: NodeJS.Timeout;
}

const open = new Map<string, Batch>();

/**
 * Runs script `name` with `args` on `remote`, batched with concurrent calls for the same script and
 * connection that take as many arguments (batch.sh runs them). Resolves with that call's own result.
 */
export function runBatched(remote: Remote, name: ScriptName, args: readonly string[]): Promise<RunResult> {
  return coalesce(`${remote.key}\n${name}\n${args.length}`, remote, args, {
    single: (a) => scriptArgv(name, a),
    many: (items) => [
      ...scriptArgv("batch", [script(name), String(items[0].length), String(HOST_PARALLEL)]),
      ...items.flat(),
    ],
  });
}

/**
 * inspect-rootfs.sh of `container` (WALK 0 or auto), batched with concurrent inspections of containers
 * under the same lxcPath on the same connection into one inspect-many.sh, which prints for each exactly
 * what inspect-rootfs.sh would, at a fraction of the host's processes.
 */
export function inspectRootfsBatched(
  remote: Remote,
  lxcPath: string,
  container: string,
  walk: "0" | "auto",
): Promise<RunResult> {
  return coalesce(`${remote.key}\ninspect-many\n${lxcPath}\n${walk}`, remote, [container], {
    single: ([c]) => scriptArgv("inspect-rootfs", [lxcPath, c, walk]),
    many: (items) =>
      scriptArgv("inspect-many", [script("inspect-rootfs"), lxcPath, walk, ...items.map(([c]) => c)]),
  });
}

function coalesce(key: string, remote: Remote, args: readonly string[], runner: Runner): Promise<RunResult> {
  let batch = open.get(key);
  if (!batch) {
    batch = { remote, runner, pending: [] };
    open.set(key, batch);
  }
  const b = batch;
  return new Promise<RunResult>((resolve, reject) => {
    b.pending.push({ args, resolve, reject });
    if (b.pending.length >= MAX_BATCH) flush(key, b);
    else b.timer ??= setTimeout(() => flush(key, b), BATCH_WINDOW_MS);
  });
}

function flush(key: string, b: Batch): void {
  if (open.get(key) === b) open.delete(key);
  if (b.timer) clearTimeout(b.timer);
  const items = b.pending;
  if (items.length === 1) {
    const [only] = items;
    b.remote.run(b.runner.single(only.args)).then(only.resolve, only.reject);
    return;
  }
  const argv = b.runner.many(items.map((i) => i.args));
  trace(`${b.remote.target} batch of ${items.length}: ${argv[3]}`);
  b.remote.run(argv).then(
    (res) => {
      let results: RunResult[];
      try {
        if (res.code !== 0) throw new RemoteCommandError(b.remote.target, argv, res.code, res.stderr);
        results = splitBatchOutput(res.stdoutBytes ?? Buffer.from(res.stdout, "utf8"), items.length, {
          target: b.remote.target,
          argv,
          res,
        });
      } catch (e) {
        for (const i of items) i.reject(e);
        return;
      }
      for (const [n, item] of items.entries()) item.resolve(results[n]);
    },
    (e) => {
      for (const i of items) i.reject(e);
    },
  );
}

/** The batch command whose output is split: what a failure to read it names. */
export interface BatchCommand {
  target: string;
  argv: readonly string[];
  res: Pick<RunResult, "code" | "stderr">;
}

/**
 * Pure: batch.sh's framed output, back to one RunResult per item, in order. Fails closed, with the
 * RemoteCommandError of the batch command (its host, command and stderr), which each caller's provider
 * reports under its own resource name, as any failed command.
 */
export function splitBatchOutput(out: Buffer, count: number, from: BatchCommand): RunResult[] {
  const unreadable = (why: string) =>
    new RemoteCommandError(
      from.target,
      from.argv,
      from.res.code,
      from.res.stderr,
      `its output could not be read: ${why}`,
    );
  const results: RunResult[] = [];
  let at = 0;
  for (let n = 0; n < count; n++) {
    const nl = out.indexOf(0x0a, at);
    const header = nl < 0 ? "" : out.subarray(at, nl).toString("latin1");
    const m = /^@@plb-item (\d+) (\d+) (\d+) (\d+)$/.exec(header);
    if (!m || Number(m[1]) !== n) throw unreadable(`unrecognised batch output at item ${n}`);
    const outEnd = nl + 1 + Number(m[3]);
    const errEnd = outEnd + Number(m[4]);
    if (errEnd > out.length) throw unreadable(`truncated batch output at item ${n}`);
    const stdoutBytes = out.subarray(nl + 1, outEnd);
    results.push({
      code: Number(m[2]),
      stdout: stdoutBytes.toString("utf8"),
      stderr: out.subarray(outEnd, errEnd).toString("utf8"),
      stdoutBytes,
    });
    at = errEnd;
  }
  if (at !== out.length) throw unreadable("unrecognised batch output after the last item");
  return results;
}

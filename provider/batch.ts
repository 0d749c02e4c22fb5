/**
 * Coalesces concurrent runs of one remote script on one host into a single command. A refresh or an
 * `up` that adopts a fleet sends hundreds of inspections to a host at once; one channel per inspection
 * pays a session and a shell each, and host facts each time. Requests for the same script on the same
 * pooled connection that arrive within BATCH_WINDOW_MS go out together (batch.sh runs them on the host,
 * a few at a time, and frames each result by byte counts); every caller gets its own result back, or
 * the batch's failure, which its provider reports under its own resource name.
 */
import { RemoteCommandError } from "./errors";
import { type ScriptName, script, scriptArgv } from "./remote-scripts";
import type { Remote, RunResult } from "./ssh";

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

interface Batch {
  remote: Remote;
  name: ScriptName;
  pending: Pending[];
  timer?: NodeJS.Timeout;
}

const open = new Map<string, Batch>();

/**
 * Runs script `name` with `args` on `remote`, batched with concurrent calls for the same script and
 * connection that take as many arguments. Resolves with that call's own exit code, stdout and stderr.
 */
export function runBatched(remote: Remote, name: ScriptName, args: readonly string[]): Promise<RunResult> {
  const key = `${remote.key}\n${name}\n${args.length}`;
  let batch = open.get(key);
  if (!batch) {
    batch = { remote, name, pending: [] };
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
    b.remote.run(scriptArgv(b.name, only.args)).then(only.resolve, only.reject);
    return;
  }
  const nargs = items[0].args.length;
  if (process.env.LXC_BTRFS_TRACE)
    console.error(`[lxc-btrfs trace] ${b.remote.target} batch of ${items.length} ${b.name}`);
  const argv = [
    ...scriptArgv("batch", [script(b.name), String(nargs), String(HOST_PARALLEL)]),
    ...items.flatMap((i) => i.args),
  ];
  b.remote.run(argv).then(
    (res) => {
      let results: RunResult[];
      try {
        if (res.code !== 0) throw new RemoteCommandError(b.remote.target, argv, res.code, res.stderr);
        results = splitBatchOutput(res.stdoutBytes ?? Buffer.from(res.stdout, "utf8"), items.length);
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

/** Pure: batch.sh's framed output, back to one RunResult per item, in order. Fails closed. */
export function splitBatchOutput(out: Buffer, count: number): RunResult[] {
  const results: RunResult[] = [];
  let at = 0;
  for (let n = 0; n < count; n++) {
    const nl = out.indexOf(0x0a, at);
    const header = nl < 0 ? "" : out.subarray(at, nl).toString("latin1");
    const m = /^@@plb-item (\d+) (\d+) (\d+) (\d+)$/.exec(header);
    if (!m || Number(m[1]) !== n) throw new Error(`unrecognised batch output at item ${n}`);
    const outEnd = nl + 1 + Number(m[3]);
    const errEnd = outEnd + Number(m[4]);
    if (errEnd > out.length) throw new Error(`truncated batch output at item ${n}`);
    const stdoutBytes = out.subarray(nl + 1, outEnd);
    results.push({
      code: Number(m[2]),
      stdout: stdoutBytes.toString("utf8"),
      stderr: out.subarray(outEnd, errEnd).toString("utf8"),
      stdoutBytes,
    });
    at = errEnd;
  }
  if (at !== out.length) throw new Error("unrecognised batch output after the last item");
  return results;
}

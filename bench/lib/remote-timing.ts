/**
 * A Remote that times every command it passes through, and every step of a `step.sh` batch from the
 * `@@step I OP` lines the script prints as each step starts: where a conversion spends its time
 * (inspect / copy / verify / finish), without changing what runs.
 */
import type { Remote, RunOptions, RunResult } from "../../provider/transport/ssh";

export interface CommandTiming {
  /** `inspect`, `true`, a step batch like `journal+subvol-create+copy`, or the script name. */
  label: string;
  ms: number;
  /** Per step of a batch, in order: the op and the ms from its start to the next step's (or the end). */
  steps: { op: string; ms: number }[];
  /** From sending the command to the first step starting: channel open, sh start, argument parsing. */
  startMs: number;
}

/** Names a command from its argv: scriptArgv is ["sh", "-c", SCRIPT, "plb-NAME", ...args]. */
export function labelOf(argv: readonly string[]): string {
  if (argv[0] === "sh" && argv[1] === "-c" && argv[3]?.startsWith("plb-")) {
    const name = argv[3].slice(4);
    if (name === "inspect-rootfs") return argv[6] === "1" ? "inspect (walk)" : "inspect";
    if (name === "step") {
      const ops: string[] = [];
      for (let i = 6; i < argv.length; ) {
        ops.push(argv[i]);
        i += 2 + Number(argv[i + 1]);
      }
      return ops.join("+");
    }
    return name;
  }
  return argv.join(" ").slice(0, 40);
}

export function timedRemote(inner: Remote, sink: CommandTiming[]): Remote {
  const wrap =
    (fn: (argv: readonly string[], opts?: RunOptions) => Promise<RunResult>) =>
    async (argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> => {
      const t0 = performance.now();
      const marks: { op: string; t: number }[] = [];
      const onStdoutLine = (line: string) => {
        const m = /^@@step \d+ (\S+)$/.exec(line);
        if (m) marks.push({ op: m[1], t: performance.now() });
        opts.onStdoutLine?.(line);
      };
      try {
        return await fn(argv, { ...opts, onStdoutLine });
      } finally {
        const t1 = performance.now();
        sink.push({
          label: labelOf(argv),
          ms: t1 - t0,
          steps: marks.map((m, i) => ({ op: m.op, ms: (marks[i + 1]?.t ?? t1) - m.t })),
          startMs: (marks[0]?.t ?? t1) - t0,
        });
      }
    };
  return { target: inner.target, key: inner.key, run: wrap(inner.run), check: wrap(inner.check) };
}

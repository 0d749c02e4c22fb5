/**
 * A Remote that needs no host: it answers each command with the next of a list of replies (real outputs
 * of the remote scripts, from test/fixtures) and records every argv and stdin it was asked to run, so a
 * test can drive the providers' orchestration and assert the exact commands sent.
 */
import { checked, type Remote, type RunOptions, type RunResult } from "../../provider/transport/ssh";

export interface Reply {
  code?: number;
  stdout?: string;
  stderr?: string;
}

/** A reply made from the command it answers (step markers for the ops it was sent). */
export type ReplyTo = (argv: readonly string[]) => Reply;

export interface Call {
  argv: readonly string[];
  stdin?: string;
}

let serial = 0;

export class FakeRemote implements Remote {
  readonly target = "root@fake:22";
  /** Unique per instance, so the batcher (keyed by connection) never joins two tests' inspections. */
  readonly key = `fake-${++serial}`;
  readonly calls: Call[] = [];
  private readonly replies: (Reply | ReplyTo)[];

  constructor(replies: (Reply | ReplyTo)[]) {
    this.replies = [...replies];
  }

  /** Replies not used: a test that expects the whole sequence asserts this is 0. */
  get unused(): number {
    return this.replies.length;
  }

  /**
   * Each command as `[script name, ...args]` (`sh -c SCRIPT NAME ARG...` without the script text), a step
   * batch's closing inspection as `inspect 1 <nonce>` (its nonce is random).
   */
  get commands(): string[][] {
    return this.calls.map((c) => {
      const argv = c.argv[0] === "sh" && c.argv[1] === "-c" ? c.argv.slice(3) : [...c.argv];
      return nonceOf(argv) === undefined ? argv : [...argv.slice(0, -1), NONCE];
    });
  }

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    this.calls.push({
      argv,
      ...(opts.stdin === undefined ? {} : { stdin: opts.stdin.toString() }),
    });
    const next = this.replies.shift();
    if (!next) throw new Error(`FakeRemote: no reply left for ${argv.slice(3).join(" ")}`);
    const reply = typeof next === "function" ? next(argv) : next;
    const stdout = reply.stdout ?? "";
    // As the SSH transport does: each complete line, as it arrives.
    if (opts.onStdoutLine) {
      const lines = stdout.split("\n");
      lines.pop();
      for (const l of lines) opts.onStdoutLine(l);
    }
    return {
      code: reply.code ?? 0,
      stdout,
      stderr: reply.stderr ?? "",
      stdoutBytes: Buffer.from(stdout, "utf8"),
    };
  }

  async check(argv: readonly string[], opts: RunOptions & { hint?: string } = {}): Promise<RunResult> {
    return checked(this.target, argv, await this.run(argv, opts), opts.hint);
  }
}

/** How `commands` shows the nonce of a step batch's closing inspection. */
export const NONCE = "<nonce>";

/** The nonce of a step batch's closing inspection (`plb-step ... inspect 1 NONCE`), if it has one. */
function nonceOf(argv: readonly string[]): string | undefined {
  const at = argv.length - 3;
  const step = argv.indexOf("plb-step");
  return step >= 0 && at > step && argv[at] === "inspect" && argv[at + 1] === "1" ? argv[at + 2] : undefined;
}

/** A message naming a step batch with its closing inspection, its random nonce shown as `commands` does. */
export const withNonce = (message: string | undefined) =>
  message?.replace(/ inspect 1 [0-9a-f]{16}`/, ` inspect 1 ${NONCE}\``);

/**
 * step.sh's reply to a batch that ends with the inspection: `reply` (its steps' output, up to the
 * inspection's own step marker, which it adds if missing), then the inspection's line and `inspection`.
 */
export function thenInspection(reply: Reply | ReplyTo, inspection: string): ReplyTo {
  return (argv) => {
    const r = typeof reply === "function" ? reply(argv) : reply;
    const nonce = nonceOf(argv);
    if (!nonce) throw new Error("FakeRemote: this batch does not end with the inspection");
    const n = batchOps(argv).length;
    const stdout = r.stdout ?? "";
    const marker = stdout.endsWith(`@@step ${n} inspect\n`) ? "" : `@@step ${n} inspect\n`;
    return { ...r, stdout: `${stdout}${marker}@@inspect ${nonce}\n${inspection}` };
  };
}

/** A captured output as a reply (exit 0). */
export function out(stdout: string): Reply {
  return { stdout };
}

export { withLog } from "../support/log";

/** The ops of a step batch's argv (`... plb-step LXCPATH NAME OP NARGS ARG...`), in order. */
export function batchOps(argv: readonly string[]): string[] {
  const ops: string[] = [];
  for (let at = argv.indexOf("plb-step") + 3; at > 2 && at < argv.length; at += 2 + Number(argv[at + 1]))
    ops.push(argv[at]);
  return ops;
}

/** step.sh's reply to a batch that succeeds: its marker before each op, then `tail` (a verification's report). */
export function stepMarkers(tail = ""): ReplyTo {
  return (argv) => ({
    stdout:
      batchOps(argv)
        .map((op, i) => `@@step ${i + 1} ${op}\n`)
        .join("") + tail,
  });
}

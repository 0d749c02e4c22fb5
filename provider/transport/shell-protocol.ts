/**
 * The framing between ssh.ts and a long-lived remote shell (shell-loop.sh). Pure: no SSH.
 *
 * Request (client to shell, on its stdin):
 *   ID CMD_BYTES STDIN_BYTES|-\n<stdin bytes><command>
 * where command is `{ COMMAND_LINE\n}\n`: a request cut short by a lost link ends inside the braces, a
 * syntax error for the host's sh, so nothing of it runs. Byte counts, so any bytes pass in stdin.
 *
 * Reply (shell to client, on its stdout):
 *   <stdout bytes, streamed as the command writes them>\0plb-rc ID EXIT_CODE\n<stderr bytes>\0plb-end ID\n
 * ID is a fresh random nonce per request that the command never sees, so no output can end a reply early.
 * The loop notes "ID PGID" of the running command in DIR/p (DIR from its ready line), for a kill.
 */

/** First line the loop prints on stdout once it runs: "plb-shell-ready PID DIR" (DIR: its temp directory). */
export const READY = /^plb-shell-ready (\d+) (\/[A-Za-z0-9._/-]+)\n/;

/** Request ids: lowercase hex (the loop refuses anything else). */
const ID = /^[0-9a-f]{8,64}$/;

export function encodeRequest(id: string, commandLine: string, stdin?: string | Buffer): Buffer {
  if (!ID.test(id)) throw new Error(`bad request id ${JSON.stringify(id)}`);
  if (commandLine.includes("\0")) throw new Error("a command line cannot contain a NUL byte");
  const command = Buffer.from(`{ ${commandLine}\n}\n`, "utf8");
  const input = stdin === undefined ? undefined : Buffer.isBuffer(stdin) ? stdin : Buffer.from(stdin, "utf8");
  const header = Buffer.from(
    `${id} ${command.length} ${input === undefined ? "-" : input.length}\n`,
    "latin1",
  );
  return Buffer.concat(input === undefined ? [header, command] : [header, input, command]);
}

export interface Reply {
  code: number;
  stdout: Buffer;
  stderr: Buffer;
  /** Bytes after the end of the reply (none from a well-behaved loop). */
  rest: Buffer;
}

/**
 * Decodes one reply from the shell's stdout, fed in chunks as they arrive. Stdout is handed to `onStdout`
 * as soon as it cannot be the start of the end marker, so progress lines stream. Throws on a malformed
 * reply (the shell is then unusable).
 */
export class ReplyDecoder {
  private readonly rcMark: Buffer;
  private readonly endMark: Buffer;
  private buf: Buffer = Buffer.alloc(0);
  private readonly out: Buffer[] = [];
  private code: number | undefined;
  /** Where to resume searching buf for the current marker. */
  private scanFrom = 0;
  done: Reply | undefined;

  constructor(
    id: string,
    private readonly onStdout?: (chunk: Buffer) => void,
  ) {
    this.rcMark = Buffer.from(`\0plb-rc ${id} `, "latin1");
    this.endMark = Buffer.from(`\0plb-end ${id}\n`, "latin1");
  }

  /** Feeds a chunk; returns the reply once complete. */
  push(chunk: Buffer): Reply | undefined {
    if (this.done) {
      this.done.rest = Buffer.concat([this.done.rest, chunk]);
      return this.done;
    }
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.code === undefined) {
      const at = this.buf.indexOf(this.rcMark, this.scanFrom);
      if (at < 0) {
        // Everything but a possible start of the marker is stdout.
        const keep = this.markerStartLength();
        this.emit(this.buf.subarray(0, this.buf.length - keep));
        this.buf = this.buf.subarray(this.buf.length - keep);
        this.scanFrom = 0;
        return undefined;
      }
      this.emit(this.buf.subarray(0, at));
      this.buf = this.buf.subarray(at);
      this.scanFrom = 0;
      const nl = this.buf.indexOf(0x0a, this.rcMark.length);
      if (nl < 0) {
        if (this.buf.length > this.rcMark.length + 12) throw new Error("malformed reply: bad exit code");
        return undefined;
      }
      const digits = this.buf.subarray(this.rcMark.length, nl).toString("latin1");
      if (!/^\d{1,3}$/.test(digits)) throw new Error("malformed reply: bad exit code");
      this.code = Number(digits);
      this.buf = this.buf.subarray(nl + 1);
    }
    const end = this.buf.indexOf(this.endMark, this.scanFrom);
    if (end < 0) {
      this.scanFrom = Math.max(0, this.buf.length - (this.endMark.length - 1));
      return undefined;
    }
    this.done = {
      code: this.code,
      stdout: Buffer.concat(this.out),
      stderr: Buffer.from(this.buf.subarray(0, end)),
      rest: Buffer.from(this.buf.subarray(end + this.endMark.length)),
    };
    return this.done;
  }

  /** The length of the longest end of buf that the rc marker starts with (held back, all else streams). */
  private markerStartLength(): number {
    const from = Math.max(0, this.buf.length - (this.rcMark.length - 1));
    for (let i = this.buf.indexOf(0, from); i >= 0; i = this.buf.indexOf(0, i + 1)) {
      const tail = this.buf.subarray(i);
      if (this.rcMark.subarray(0, tail.length).equals(tail)) return tail.length;
    }
    return 0;
  }

  private emit(b: Buffer): void {
    if (b.length === 0) return;
    const copy = Buffer.from(b);
    this.out.push(copy);
    this.onStdout?.(copy);
  }
}

/** Splits a byte stream into complete lines (without the newline), decoded as UTF-8 line by line. */
export class LineSplitter {
  private partial: Buffer = Buffer.alloc(0);
  constructor(private readonly onLine: (line: string) => void) {}
  push(chunk: Buffer): void {
    let data = this.partial.length ? Buffer.concat([this.partial, chunk]) : chunk;
    for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a)) {
      this.onLine(data.subarray(0, nl).toString("utf8"));
      data = data.subarray(nl + 1);
    }
    this.partial = Buffer.from(data);
  }
}

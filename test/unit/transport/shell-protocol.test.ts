/**
 * shell-protocol.ts: request framing, reply decoding fed in every possible chunking, line splitting; and
 * the real shell-loop.sh run by this machine's /bin/sh (no SSH), so the tables meet real replies.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import {
  encodeRequest,
  LineSplitter,
  READY,
  type Reply,
  ReplyDecoder,
} from "../../../provider/transport/shell-protocol";
import { buildCommandLine } from "../../../provider/transport/ssh";
import { ROOT } from "../fixtures";

const ID = "0123456789abcdef0123456789abcdef";
const reply = (stdout: Buffer | string, code: number, stderr: Buffer | string, id = ID) =>
  Buffer.concat([
    Buffer.from(stdout),
    Buffer.from(`\0plb-rc ${id} ${code}\n`, "latin1"),
    Buffer.from(stderr),
    Buffer.from(`\0plb-end ${id}\n`, "latin1"),
  ]);

/** Feeds `bytes` in pieces cut at `cuts`; returns the reply and the stdout chunks streamed on the way. */
function decode(bytes: Buffer, cuts: number[], id = ID): { reply?: Reply; streamed: Buffer[] } {
  const streamed: Buffer[] = [];
  const d = new ReplyDecoder(id, (c) => streamed.push(c));
  let at = 0;
  let r: Reply | undefined;
  for (const cut of [...cuts, bytes.length]) {
    r = d.push(bytes.subarray(at, cut));
    at = cut;
  }
  return { reply: r, streamed };
}

describe("shell-protocol: encodeRequest", () => {
  const table: { name: string; line: string; stdin?: string | Buffer; want: string }[] = [
    {
      name: "no stdin: '-' and the command inside braces",
      line: "exec env true",
      want: `${ID} 18 -\n{ exec env true\n}\n`,
    },
    {
      name: "stdin bytes come first, counted in bytes",
      line: "exec cat",
      stdin: "é\n",
      want: `${ID} 13 3\né\n{ exec cat\n}\n`,
    },
    { name: "empty stdin is 0 bytes, not none", line: "x", stdin: "", want: `${ID} 6 0\n{ x\n}\n` },
    {
      name: "a command line with newlines and quotes passes as is",
      line: "exec sh -c 'a\nb' n",
      want: `${ID} 23 -\n{ exec sh -c 'a\nb' n\n}\n`,
    },
  ];
  for (const t of table) {
    it(t.name, () => {
      expect(encodeRequest(ID, t.line, t.stdin).toString("utf8")).to.equal(t.want);
    });
  }

  it("passes NUL and every other byte in stdin", () => {
    const stdin = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const req = encodeRequest(ID, "x", stdin);
    const header = `${ID} 6 256\n`;
    expect(req.subarray(0, header.length).toString("latin1")).to.equal(header);
    expect(req.subarray(header.length, header.length + 256)).to.deep.equal(stdin);
  });

  it("refuses a bad id and a NUL in the command line", () => {
    expect(() => encodeRequest("ID 1", "x")).to.throw("bad request id");
    expect(() => encodeRequest(ID, "a\0b")).to.throw("NUL");
  });
});

describe("shell-protocol: ReplyDecoder", () => {
  const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const large = Buffer.alloc(3 * 1024 * 1024 + 17, "x\n");
  const cases: { name: string; stdout: Buffer | string; code: number; stderr: Buffer | string }[] = [
    { name: "empty output, code 0", stdout: "", code: 0, stderr: "" },
    { name: "text and stderr, code 7", stdout: "C\n0\n", code: 7, stderr: "err\n" },
    { name: "binary stdout with NULs and every byte", stdout: binary, code: 0, stderr: binary },
    {
      name: "output that looks like the markers of another id",
      stdout: `\0plb-rc ${"f".repeat(32)} 0\n\0plb-end ${"f".repeat(32)}\n`,
      code: 1,
      stderr: `\0plb-end ${"e".repeat(32)}\n`,
    },
    { name: "a marker prefix at the very end of stdout", stdout: `abc\0plb-rc ${ID}`, code: 0, stderr: "" },
    { name: "no final newline, code 255", stdout: "partial", code: 255, stderr: "x" },
  ];
  for (const c of cases) {
    it(`${c.name}: the same reply however it is cut`, () => {
      const bytes = reply(c.stdout, c.code, c.stderr);
      // every single cut point, and every byte alone
      const cutsList = [
        [],
        ...Array.from({ length: Math.min(bytes.length, 400) }, (_, i) => [i]),
        Array.from({ length: bytes.length - 1 }, (_, i) => i + 1),
      ];
      for (const cuts of cutsList) {
        const { reply: r, streamed } = decode(bytes, cuts);
        expect(r, `cuts ${cuts.slice(0, 3)}`).to.deep.equal({
          code: c.code,
          stdout: Buffer.from(c.stdout),
          stderr: Buffer.from(c.stderr),
          rest: Buffer.alloc(0),
        });
        expect(Buffer.concat(streamed)).to.deep.equal(Buffer.from(c.stdout));
      }
    });
  }

  it("streams a large stdout as it comes, in 64 KiB chunks", () => {
    const bytes = reply(large, 0, "");
    const streamed: Buffer[] = [];
    const d = new ReplyDecoder(ID, (c) => streamed.push(c));
    let r: Reply | undefined;
    for (let at = 0; at < bytes.length; at += 65536) {
      r = d.push(bytes.subarray(at, at + 65536));
      const sent = streamed.reduce((n, b) => n + b.length, 0);
      if (!r) expect(sent).to.equal(Math.min(at + 65536, large.length));
    }
    expect(r?.stdout.equals(large)).to.equal(true);
  });

  it("streams a short progress line at once, holding back only what could start the end marker", () => {
    const streamed: Buffer[] = [];
    const d = new ReplyDecoder(ID, (c) => streamed.push(c));
    d.push(Buffer.from("one\n"));
    expect(Buffer.concat(streamed).toString()).to.equal("one\n");
    d.push(Buffer.from(`two\n\0x\0plb-rc ${ID.slice(0, 5)}`));
    expect(Buffer.concat(streamed).toString("latin1")).to.equal("one\ntwo\n\0x");
    d.push(Buffer.from("X"));
    expect(Buffer.concat(streamed).toString("latin1")).to.equal(`one\ntwo\n\0x\0plb-rc ${ID.slice(0, 5)}X`);
  });

  it("keeps bytes after the end as rest, and refuses a malformed exit code", () => {
    expect(
      decode(Buffer.concat([reply("a", 0, ""), Buffer.from("junk")]), []).reply?.rest.toString(),
    ).to.equal("junk");
    expect(() => new ReplyDecoder(ID).push(Buffer.from(`\0plb-rc ${ID} x\n`))).to.throw("bad exit code");
    expect(() => new ReplyDecoder(ID).push(Buffer.from(`\0plb-rc ${ID} ${"1".repeat(20)}`))).to.throw(
      "bad exit code",
    );
  });
});

describe("shell-protocol: LineSplitter and the ready line", () => {
  it("gives complete lines only, a multi-byte character split across chunks intact", () => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l));
    const bytes = Buffer.from("progress 1\nété\n\nno newline");
    for (let i = 0; i < bytes.length; i++) s.push(bytes.subarray(i, i + 1));
    expect(lines).to.deep.equal(["progress 1", "été", ""]);
  });

  it("reads the ready line: the loop's pid and its temporary directory", () => {
    expect(READY.exec("plb-shell-ready 77 /tmp/tmp.AbC123xyz_\n")?.slice(1)).to.deep.equal([
      "77",
      "/tmp/tmp.AbC123xyz_",
    ]);
    expect(READY.exec("plb-shell-ready 77 /tmp/a b\n")).to.equal(null);
    expect(READY.exec("sudo: plb-shell-ready 77 /tmp\n")).to.equal(null);
  });
});

describe("shell-loop.sh under this machine's /bin/sh (no SSH)", function () {
  this.timeout(20_000);

  /** Starts the loop, sends each request in turn, returns the replies. */
  async function converse(requests: { argv: string[]; stdin?: string | Buffer }[]): Promise<Reply[]> {
    const loop = readFileSync(join(ROOT, "provider", "transport", "shell-loop.sh"), "utf8");
    const p = spawn("sh", ["-c", loop, "plb-shell"], { stdio: ["pipe", "pipe", "pipe"] });
    const replies: Reply[] = [];
    let head = Buffer.alloc(0);
    let d: ReplyDecoder | undefined;
    let next: ((r: Reply) => void) | undefined;
    let ready: () => void = () => undefined;
    const isReady = new Promise<void>((r) => {
      ready = r;
    });
    p.stdout.on("data", (c: Buffer) => {
      if (!d) {
        head = Buffer.concat([head, c]);
        const m = READY.exec(head.toString("latin1"));
        if (m) ready();
        return;
      }
      const r = d.push(c);
      if (r) next?.(r);
    });
    await isReady;
    for (const [i, req] of requests.entries()) {
      const id = `${ID.slice(0, 30)}${String(i).padStart(2, "0")}`;
      d = new ReplyDecoder(id);
      const got = new Promise<Reply>((r) => {
        next = r;
      });
      p.stdin.write(encodeRequest(id, buildCommandLine(req.argv, false), req.stdin));
      replies.push(await got);
    }
    p.stdin.end();
    await new Promise((r) => p.on("close", r));
    return replies;
  }

  it("runs each request as sh -c SCRIPT NAME ARGS with a fresh environment, stdin given or /dev/null", async () => {
    const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const [a, b, c, d] = await converse([
      {
        argv: [
          "sh",
          "-c",
          'x=1; cd /; echo "$0|$#|$1|$2|$LC_ALL|$x"; echo e >&2; exit 3',
          "plb-t",
          "a b",
          "",
        ],
      },
      { argv: ["sh", "-c", '[ -n "$x" ] || echo "unset|$(pwd)"; cat', "plb-t"] },
      { argv: ["sh", "-c", "cat", "plb-t"], stdin: binary },
      { argv: ["sh", "-c", "head -c 2000000 /dev/zero; printf '\\0plb-rc x 0\\n'", "plb-t"] },
    ]);
    expect([a.code, a.stdout.toString(), a.stderr.toString()]).to.deep.equal([
      3,
      "plb-t|2|a b||C|1\n",
      "e\n",
    ]);
    expect(b.code).to.equal(0);
    expect(b.stdout.toString()).to.equal(`unset|${process.cwd()}\n`);
    expect(c.stdout).to.deep.equal(binary);
    expect(d.stdout.length).to.equal(2_000_000 + "\0plb-rc x 0\n".length);
  });

  it("a process a command leaves behind reaches neither the next request's stdin, stdout nor stderr", async () => {
    const [a, b] = await converse([
      {
        // Keeps the command's stdout, stderr and stdin open after the command itself has exited. The
        // `; true` keeps the subshell (and its stdout) alive until cat has written: dash execs a subshell's
        // last command in place, and cat's stdout is stderr, so without it the reply may end before cat
        // writes (the reply waits for stdout's holders, as sshd does for an exec channel).
        argv: [
          "sh",
          "-c",
          "exec 3<&0; (sleep 0.3; echo LATE-OUT; echo LATE-ERR >&2; cat <&3 >&2; true) & echo first",
        ],
        stdin: "first stdin\n",
      },
      { argv: ["sh", "-c", "cat; echo second; sleep 0.6"], stdin: "SECOND-STDIN\n" },
    ]);
    // The first reply waits for its stdout's last holder, as sshd waits for an exec channel's EOF.
    expect([a.code, a.stdout.toString()]).to.deep.equal([0, "first\nLATE-OUT\n"]);
    expect(a.stderr.toString()).to.equal("LATE-ERR\nfirst stdin\n");
    expect([b.code, b.stdout.toString(), b.stderr.toString()]).to.deep.equal([
      0,
      "SECOND-STDIN\nsecond\n",
      "",
    ]);
  });

  it("runs commands with SIGINT and SIGQUIT at their defaults, as sshd does", async () => {
    const [a] = await converse([{ argv: ["sh", "-c", "grep '^SigIgn:' /proc/self/status"] }]);
    expect(a.stdout.toString()).to.equal("SigIgn:\t0000000000000000\n");
  });

  it("runs nothing of a request cut short: the braces make it a syntax error", async () => {
    const loop = readFileSync(join(ROOT, "provider", "transport", "shell-loop.sh"), "utf8");
    const p = spawn("sh", ["-c", loop, "plb-shell"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (c: Buffer) => {
      out += c.toString("latin1");
    });
    const full = encodeRequest(ID, buildCommandLine(["sh", "-c", "echo ran $#", "n", "1", "2"], false));
    // cut inside the last argument and before the closing brace
    p.stdin.end(full.subarray(0, full.length - 5));
    await new Promise((r) => p.on("close", r));
    expect(out).to.match(/^plb-shell-ready \d+ \/\S+\n\0plb-rc [0-9a-f]+ 2\n/);
    expect(out).to.not.include("ran");
  });
});

/**
 * batch.ts: splitting batch.sh's framed output (real output captured by test/fixtures/capture.sh: three
 * inspect-rootfs.sh runs in one command), and the batcher's coalescing, with a recording Remote.
 */
import { expect } from "chai";
import { describeArgv, RemoteCommandError, UserError } from "../../../provider/core/errors";
import { parseRootfsInspection } from "../../../provider/rootfs/inspection";
import {
  type BatchCommand,
  inspectRootfsBatched,
  runBatched,
  splitBatchOutput,
} from "../../../provider/transport/batch";
import type { Remote, RunOptions, RunResult } from "../../../provider/transport/ssh";
import { fixtureBytes } from "../fixtures";

/** A batch command as flush hands it to splitBatchOutput (the script texts shortened). */
const CMD: BatchCommand = {
  target: "root@h1:22",
  argv: ["sh", "-c", "BATCH", ..."plb-batch INSPECT 3 4 /l a 0 /l b 0 /l c 0".split(" ")],
  res: { code: 0, stderr: "" },
};

describe("batch: splitBatchOutput on real batch.sh output", () => {
  const out = fixtureBytes("batch-inspect.bin");

  it("gives each item its own exit code, stdout and stderr, in order", () => {
    const [sv, dir, missing] = splitBatchOutput(out, 3, CMD).map((r) => ({
      ...r,
      insp: parseRootfsInspection(r.stdout),
    }));
    expect([sv.code, dir.code, missing.code]).to.deep.equal([0, 0, 0]);
    expect([sv.stderr, dir.stderr, missing.stderr]).to.deep.equal(["", "", ""]);
    expect(sv.insp).to.include({ rootfsIsSubvolume: true, containerDir: "present", state: "STOPPED" });
    expect(dir.insp).to.include({ rootfsIsSubvolume: false, rootfs: "dir" });
    expect(missing.insp.containerDir).to.equal("missing");
  });

  it("keeps NUL-separated sections and config text byte for byte", () => {
    const [sv] = splitBatchOutput(out, 3, CMD);
    expect(sv.stdout).to.include("@@nested\0@@mounts\0@@journal\0\0@@config\0");
    expect(sv.stdoutBytes?.length).to.equal(Buffer.byteLength(sv.stdout, "utf8"));
  });

  const bad: [string, Buffer, number, string][] = [
    ["fewer items than asked for", out, 4, "unrecognised batch output at item 3"],
    [
      "more output than the items",
      Buffer.concat([out, Buffer.from("x")]),
      3,
      "unrecognised batch output after the last item",
    ],
    ["a truncated item", out.subarray(0, out.length - 5), 3, "truncated batch output at item 2"],
    ["no header", Buffer.from("hello\n"), 1, "unrecognised batch output at item 0"],
    ["an item out of order", Buffer.from("@@plb-item 1 0 0 0\n"), 1, "unrecognised batch output at item 0"],
  ];
  for (const [what, buf, n, msg] of bad) {
    it(`fails closed on ${what}, with the batch command's error (host, command, what was wrong)`, () => {
      let err: unknown;
      try {
        splitBatchOutput(buf, n, CMD);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(RemoteCommandError);
      expect((err as Error).message).to.equal(
        `on root@h1:22: \`plb-batch INSPECT 3 4 /l a 0 /l b 0 /l c 0\` exited with code 0\nhint: its output could not be read: ${msg}`,
      );
      expect((err as Error).stack).to.equal((err as Error).message);
    });
  }

  it("a stdout that holds a fake header is data: the byte counts decide", () => {
    const body = "x\n@@plb-item 1 0 0 0\n";
    const framed = Buffer.from(
      `@@plb-item 0 3 ${Buffer.byteLength(body)} 4\n${body}oops@@plb-item 1 0 2 0\nok`,
    );
    expect(splitBatchOutput(framed, 2, CMD)).to.deep.equal([
      { code: 3, stdout: body, stderr: "oops", stdoutBytes: Buffer.from(body) },
      { code: 0, stdout: "ok", stderr: "", stdoutBytes: Buffer.from("ok") },
    ]);
  });
});

describe("batch: inspect-many.sh prints for each container exactly what inspect-rootfs.sh prints alone", () => {
  for (const walk of ["0", "auto"]) {
    it(`WALK ${walk}: a converted, a directory and a missing container (real output)`, () => {
      const many = splitBatchOutput(fixtureBytes(`inspect-many-${walk}.bin`), 3, CMD);
      const single = splitBatchOutput(fixtureBytes(`inspect-single-${walk}.bin`), 3, CMD);
      expect(many).to.deep.equal(single);
      const parsed = many.map((r) => parseRootfsInspection(r.stdout));
      expect(parsed.map((p) => [p.containerDir, p.rootfsIsSubvolume])).to.deep.equal([
        ["present", true],
        ["present", false],
        ["missing", false],
      ]);
      // An adoption's inspection (auto) has the rootfs directory's flags; a read's (0) does not need them.
      expect(parsed[0].rootfsFlags).to.equal(walk === "auto" ? "----------------------" : "");
    });
  }
});

/** A Remote that records argv and answers a batch with one framed item per group of 3 arguments. */
function recordingRemote(key: string) {
  const calls: string[][] = [];
  const remote: Remote = {
    target: "root@test:22",
    key,
    async run(argv: readonly string[], _opts?: RunOptions): Promise<RunResult> {
      calls.push([...argv]);
      if (argv[3] !== "plb-batch")
        return { code: 0, stdout: `single ${argv.slice(4).join(" ")}`, stderr: "" };
      const groups = argv.slice(7);
      let out = "";
      for (let i = 0; i < groups.length / 3; i++) {
        const body = `item ${groups[i * 3 + 1]}`;
        out += `@@plb-item ${i} 0 ${body.length} 0\n${body}`;
      }
      return { code: 0, stdout: out, stderr: "", stdoutBytes: Buffer.from(out) };
    },
    async check(argv, opts) {
      return this.run(argv, opts);
    },
  };
  return { remote, calls };
}

describe("batch: runBatched", () => {
  it("concurrent calls for one script and connection go out as one command; each gets its own result", async () => {
    const { remote, calls } = recordingRemote("k1");
    const names = ["a", "b", "c", "d"];
    const res = await Promise.all(names.map((n) => runBatched(remote, "inspect-rootfs", ["/l", n, "0"])));
    expect(res.map((r) => r.stdout)).to.deep.equal(["item a", "item b", "item c", "item d"]);
    expect(calls).to.have.length(1);
    expect(calls[0].slice(0, 2)).to.deep.equal(["sh", "-c"]);
    expect(calls[0].slice(3, 4)).to.deep.equal(["plb-batch"]);
    expect(calls[0].slice(5)).to.deep.equal([
      "3",
      "4",
      "/l",
      "a",
      "0",
      "/l",
      "b",
      "0",
      "/l",
      "c",
      "0",
      "/l",
      "d",
      "0",
    ]);
  });

  it("a call alone runs as itself, without the batch wrapper", async () => {
    const { remote, calls } = recordingRemote("k2");
    const r = await runBatched(remote, "inspect-rootfs", ["/l", "solo", "1"]);
    expect(r.stdout).to.equal("single /l solo 1");
    expect(calls.map((c) => c[3])).to.deep.equal(["plb-inspect-rootfs"]);
  });

  it("different connections are never batched together", async () => {
    const one = recordingRemote("k3");
    const two = recordingRemote("k4");
    await Promise.all([
      runBatched(one.remote, "inspect-rootfs", ["/l", "a", "0"]),
      runBatched(two.remote, "inspect-rootfs", ["/l", "b", "0"]),
    ]);
    expect([one.calls.length, two.calls.length]).to.deep.equal([1, 1]);
  });

  it("inspections of one lxcPath go out as one inspect-many.sh; a lone one as inspect-rootfs.sh", async () => {
    const { remote, calls } = recordingRemote("k6");
    remote.run = async (argv) => {
      calls.push([...argv]);
      const names = argv.slice(7);
      const out = names.map((n, i) => `@@plb-item ${i} 0 ${n.length} 0\n${n}`).join("");
      return { code: 0, stdout: out, stderr: "", stdoutBytes: Buffer.from(out) };
    };
    const res = await Promise.all(["a", "b"].map((n) => inspectRootfsBatched(remote, "/l", n, "0")));
    expect(res.map((r) => r.stdout)).to.deep.equal(["a", "b"]);
    expect(calls[0].slice(3, 4)).to.deep.equal(["plb-inspect-many"]);
    expect(calls[0].slice(5)).to.deep.equal(["/l", "0", "a", "b"]);
    const lone = recordingRemote("k7");
    await inspectRootfsBatched(lone.remote, "/l", "c", "auto");
    expect(lone.calls.map((c) => c.slice(3))).to.deep.equal([["plb-inspect-rootfs", "/l", "c", "auto"]]);
  });

  it("a failed batch fails every caller in it", async () => {
    const { remote } = recordingRemote("k5");
    remote.run = async () => {
      throw new Error("the SSH connection was lost while the command ran");
    };
    const res = await Promise.allSettled(
      ["a", "b"].map((n) => runBatched(remote, "inspect-rootfs", ["/l", n, "0"])),
    );
    expect(res.map((r) => (r.status === "rejected" ? (r.reason as Error).message : "ok"))).to.deep.equal([
      "the SSH connection was lost while the command ran",
      "the SSH connection was lost while the command ran",
    ]);
  });

  it("a malformed batch reply fails every caller with the batch command's error, not a bare Error", async () => {
    const { remote, calls } = recordingRemote("k8");
    remote.run = async (argv) => {
      calls.push([...argv]);
      return {
        code: 0,
        stdout: "@@plb-item 0 0 1 0\nx",
        stderr: "",
        stdoutBytes: Buffer.from("@@plb-item 0 0 1 0\nx"),
      };
    };
    const res = await Promise.allSettled(
      ["a", "b"].map((n) => runBatched(remote, "inspect-rootfs", ["/l", n, "0"])),
    );
    const want = `on root@test:22: \`${describeArgv(calls[0])}\` exited with code 0\nhint: its output could not be read: unrecognised batch output at item 1`;
    expect(describeArgv(calls[0])).to.match(/^plb-batch .*\.\.\. 3 4 \/l a 0 \/l b 0$/);
    for (const r of res) {
      expect(r.status).to.equal("rejected");
      const e = (r as PromiseRejectedResult).reason as Error;
      expect(e).to.be.instanceOf(UserError);
      expect(e.message).to.equal(want);
    }
  });
});

/** clone/relay.ts against fake hosts whose commands are in-process streams: bytes, back-pressure, outcomes. */
import { PassThrough, Readable, Writable } from "node:stream";
import { expect } from "chai";
import { relay } from "../../../provider/clone/relay";
import type { Remote, RemoteStream } from "../../../provider/transport/remote";

/** A host whose one streaming command is given by `make`. */
function host(make: () => RemoteStream): Remote {
  return {
    target: "root@fake:22",
    key: "fake",
    run: () => Promise.reject(new Error("no run here")),
    check: () => Promise.reject(new Error("no check here")),
    stream: async () => make(),
  };
}

/** A sender of `chunks` chunks of `size` bytes, exiting with `code` once read to the end. */
function sender(chunks: number, size: number, code = 0): { stream: RemoteStream; produced: () => number } {
  let n = 0;
  const stdout = new Readable({
    highWaterMark: size,
    read() {
      if (n === chunks) this.push(null);
      else {
        n++;
        this.push(Buffer.alloc(size, n % 256));
      }
    },
  });
  // Read to its end: it exits with `code`; closed before: cut off (no code), as a channel closed early.
  let ended = false;
  stdout.on("end", () => {
    ended = true;
  });
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    stdout.on("close", () =>
      resolve(
        ended ? { code, stderr: code === 0 ? "" : "ERROR: send failed\n" } : { code: null, stderr: "" },
      ),
    ),
  );
  return {
    stream: { stdin: new PassThrough(), stdout, done, close: () => stdout.destroy() },
    produced: () => n,
  };
}

/** A receiver that takes a chunk every `delayMs`, exiting with `code` at the end (or after `failAfter` bytes). */
function receiver(delayMs: number, code = 0, failAfter = Number.POSITIVE_INFINITY) {
  let got = 0;
  let resolveDone: (v: { code: number | null; stderr: string }) => void = () => {};
  const done = new Promise<{ code: number | null; stderr: string }>((r) => {
    resolveDone = r;
  });
  const stdin = new Writable({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _enc, cb) {
      got += chunk.length;
      if (got > failAfter) {
        resolveDone({ code: 1, stderr: "ERROR: short read\n" });
        cb(new Error("receiver gone"));
        return;
      }
      setTimeout(cb, delayMs);
    },
    final(cb) {
      resolveDone({ code, stderr: code === 0 ? "" : "ERROR: receive failed\n" });
      cb();
    },
  });
  const close = () => {
    stdin.destroy();
    resolveDone({ code: null, stderr: "" });
  };
  const stream: RemoteStream = { stdin, stdout: new PassThrough(), done, close };
  return { stream, got: () => got };
}

describe("clone/relay: send piped into receive through the provider", () => {
  it("relays every byte, never reading far ahead of a slow receiver, with progress lines", async () => {
    const s = sender(200, 64 * 1024);
    const r = receiver(1);
    const lines: string[] = [];
    let ahead = 0;
    const probe = setInterval(() => {
      ahead = Math.max(ahead, s.produced() * 64 * 1024 - r.got());
    }, 2);
    const res = await relay(
      host(() => s.stream),
      ["send"],
      host(() => r.stream),
      ["receive"],
      {
        progress: (l) => lines.push(l),
        everyMs: 50,
        stallSec: 60,
      },
    );
    clearInterval(probe);
    expect(res.problem).to.equal(undefined);
    expect(res.bytes).to.equal(200 * 64 * 1024);
    expect(r.got()).to.equal(200 * 64 * 1024);
    // Back-pressure: the sender is read at most a few buffers ahead of what the receiver took.
    expect(ahead).to.be.lessThan(1024 * 1024);
    expect(lines.length).to.be.greaterThan(1);
    expect(lines.at(-1)).to.match(/^relayed 12\.5 MiB in \d+\.\d s \(/);
  });

  it("a sender that fails makes the result unusable, whatever the receiver said", async () => {
    const res = await relay(
      host(() => sender(3, 1024, 1).stream),
      ["send"],
      host(() => receiver(0).stream),
      ["receive"],
      {
        progress: () => {},
        stallSec: 60,
      },
    );
    expect(res.problem).to.equal("btrfs send on the source exited with code 1: ERROR: send failed");
  });

  it("a receiver that fails midway stops the sender and makes the result unusable", async () => {
    const s = sender(1000, 64 * 1024);
    const res = await relay(
      host(() => s.stream),
      ["send"],
      host(() => receiver(0, 0, 256 * 1024).stream),
      ["receive"],
      {
        progress: () => {},
        stallSec: 60,
      },
    );
    expect(res.problem).to.match(
      /^btrfs (send on the source was cut off|receive on the target exited with code 1: ERROR: short read)$/,
    );
    expect(s.produced()).to.be.lessThan(1000);
  });

  it("a receiver that stops taking bytes and never confirms its close (a cut link) ends the relay", async () => {
    // Its stdin takes nothing and, like an ssh2 channel on a dead connection, never closes when destroyed.
    const stuck = new Writable({ highWaterMark: 1024, emitClose: false, write: () => {}, destroy: () => {} });
    const never = new Promise<{ code: number | null; stderr: string }>(() => {});
    const dead: RemoteStream = { stdin: stuck, stdout: new PassThrough(), done: never, close: () => {} };
    const s = sender(1000, 64 * 1024);
    const t0 = Date.now();
    const res = await relay(
      host(() => s.stream),
      ["send"],
      host(() => dead),
      ["receive"],
      {
        progress: () => {},
        everyMs: 50,
        stallSec: 0.3,
        closeWaitMs: 200,
      },
    );
    expect(res.problem).to.equal("the relay failed: no byte for 0.3 s");
    expect(Date.now() - t0).to.be.lessThan(5000);
    expect(s.produced()).to.be.lessThan(10);
  });

  it("a receiver that cannot be started starts no sender", async () => {
    let started = false;
    const failing: Remote = {
      ...host(() => receiver(0).stream),
      stream: () => Promise.reject(new Error("refused")),
    };
    const msg = await relay(
      host(() => {
        started = true;
        return sender(1, 1).stream;
      }),
      ["send"],
      failing,
      ["receive"],
      {
        progress: () => {},
        stallSec: 60,
      },
    ).then(
      () => "resolved",
      (e: Error) => e.message,
    );
    expect(msg).to.equal("refused");
    expect(started).to.equal(false);
  });
});

/**
 * The relay of a cross-host clone: the bytes of a command on one host (btrfs send) piped into a command on
 * another (btrfs receive) through this process, each on an exec channel of its own. Node's stream pipeline
 * and SSH flow control are the back-pressure: a slow receiver stops the sender's channel window, so memory
 * stays bounded (a few of ssh2's windows) whatever the size. No keys or trust between the hosts.
 */
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Remote } from "../transport/remote";
import { progressLine, relayProblem } from "./xhost";

export interface RelayResult {
  bytes: number;
  ms: number;
  /** Why the result cannot be used (an end failed, bytes were lost), or undefined. */
  problem?: string;
  receiveStderr: string;
  receiveCode: number | null;
}

/**
 * Runs `sendArgv` on `from` and `receiveArgv` on `to`, relaying the first's stdout into the second's stdin.
 * `progress` gets a line every `everyMs`; with no byte for `stallSec`, both channels are closed.
 */
export async function relay(
  from: Remote,
  sendArgv: readonly string[],
  to: Remote,
  receiveArgv: readonly string[],
  o: { progress: (line: string) => void; everyMs?: number; stallSec: number; closeWaitMs?: number },
): Promise<RelayResult> {
  if (!from.stream || !to.stream)
    throw new Error("this connection cannot stream a command's input and output");
  const everyMs = o.everyMs ?? 5000;
  const receive = await to.stream(receiveArgv);
  let send: Awaited<ReturnType<NonNullable<Remote["stream"]>>>;
  try {
    send = await from.stream(sendArgv);
  } catch (e) {
    receive.close();
    await Promise.race([receive.done, cutOff(o.closeWaitMs ?? 10_000)]);
    throw e;
  }
  // The receiver's own stdout (receive prints to stderr; anything else is read and dropped).
  receive.stdout.on("data", () => {});
  // The sender reads nothing.
  send.stdin.end();
  const started = Date.now();
  let read = 0;
  let written = 0;
  let last = { bytes: 0, ms: 0 };
  let lastByteAt = Date.now();
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      read += chunk.length;
      lastByteAt = Date.now();
      cb(null, chunk);
    },
  });
  // Closed by us (a failure, a stall): a channel whose host is unreachable may never confirm its close (a cut
  // link: the SSH connection's end waits on TCP for many minutes), so its end is waited for a while only,
  // and the pipeline is ended at once (with `why`) rather than when a channel says so.
  let closedAt: number | undefined;
  let abort: (e: Error) => void = () => {};
  const aborted = new Promise<never>((_, reject) => {
    abort = reject;
  });
  aborted.catch(() => {});
  const closeBoth = (why?: string) => {
    closedAt ??= Date.now();
    send.close();
    receive.close();
    // The pipeline settles only once every stream in it has closed, and an ssh2 channel on a dead
    // connection never does: it is raced, not awaited alone.
    if (why) {
      counter.destroy(new Error(why));
      abort(new Error(why));
    }
  };
  // A receiver that ends before the stream does (it refused, or failed) stops the sender at once.
  let piped = false;
  void receive.done.then(() => {
    if (!piped) closeBoth("btrfs receive ended before the stream did");
  });
  const timer = setInterval(() => {
    const ms = Date.now() - started;
    o.progress(progressLine(read, ms, last.bytes, last.ms));
    last = { bytes: read, ms };
    if (Date.now() - lastByteAt > o.stallSec * 1000) closeBoth(`no byte for ${o.stallSec} s`);
  }, everyMs);
  timer.unref();
  let error: string | undefined;
  try {
    const piping = pipeline(send.stdout, counter, receive.stdin);
    piping.catch(() => {});
    await Promise.race([piping, aborted]);
    piped = true;
    // The pipeline ends once the receiver's stdin took the last byte and was closed.
    written = read;
  } catch (e) {
    piped = true;
    error = (e as Error).message;
    closeBoth();
  } finally {
    clearInterval(timer);
  }
  const ended = (done: Promise<{ code: number | null; stderr: string }>) =>
    closedAt === undefined ? done : Promise.race([done, cutOff(o.closeWaitMs ?? 10_000)]);
  const [s, r] = await Promise.all([ended(send.done), ended(receive.done)]);
  const ms = Date.now() - started;
  o.progress(progressLine(read, ms, last.bytes, last.ms));
  const problem = relayProblem({
    sendCode: s.code,
    sendStderr: s.stderr,
    receiveCode: r.code,
    receiveStderr: r.stderr,
    bytesRead: read,
    bytesWritten: written,
    error,
  });
  return { bytes: read, ms, problem, receiveStderr: r.stderr, receiveCode: r.code };
}

/** After `ms`: an end that never confirmed its close, reported as cut off. */
function cutOff(ms: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve({ code: null, stderr: "" }), ms);
    t.unref();
  });
}

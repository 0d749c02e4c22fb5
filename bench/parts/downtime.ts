/**
 * Part "downtime": how long a running container is down while it is converted, with ifRunning "live"
 * against "restart", and "restart" against the floor of a conversion (new subvolume + cp -a --reflink +
 * rm -rf, run on the host on a stopped copy). One template of ENTRIES entries (busybox + bulk/, see
 * tree-gen.ts) whose init exits on the halt signal, so a stop takes milliseconds and the figures measure
 * the conversion, not a shutdown. Per run, on fresh reflink copies: "live" with a writer inside the
 * container that appends to 1% of its regular files while the run is held between the pre-copy and the
 * stop (the step failpoint), i.e. after the pre-copy started; "restart" on an untouched copy; the floor.
 *
 * Downtime is observed on the host: a poller runs `lxc-info -s` every 10 ms and reports the time from
 * the first state other than RUNNING to RUNNING again.
 */

import type { RootfsInputs } from "../../provider/rootfs/inputs";
import { convergeWith } from "../../provider/rootfs/provider";
import { openRemote } from "../../provider/transport/ssh";
import { type FleetHost, hostExec } from "../../test/support/fleet";
import type { BenchContext } from "../lib/context";
import { quietly, rootfsInputs } from "../lib/context";
import { cloneTemplateMany, destroy, settle, sh, timedOnHost, treeSize } from "../lib/host";
import { type CommandTiming, timedRemote } from "../lib/remote-timing";
import { FLOOR_SCRIPT, makeTemplate, templateName } from "./conversion";

export interface DowntimeResult {
  entries: number;
  /** Regular files the writer appended to during each live run. */
  written: number[];
  /** ms per run. */
  live: number[];
  restart: number[];
  floor: number[];
  /** Whole conversion time as the provider saw it, ms. */
  liveTotal: number[];
  restartTotal: number[];
  /** Per run: the steps from the stop to the start (the downtime), in order, with their ms. */
  liveSteps: { op: string; ms: number }[][];
  restartSteps: { op: string; ms: number }[][];
}

/** The steps of a conversion's batches from its `stop` to its `start`, both included. */
function downSteps(timings: CommandTiming[]): { op: string; ms: number }[] {
  const all = timings.flatMap((t) => t.steps);
  const from = all.findIndex((s) => s.op === "stop");
  const to = all.findIndex((s, i) => i > from && s.op === "start");
  return from < 0 || to < 0 ? [] : all.slice(from, to + 1);
}

/** Prints "DOWN_NS UP_NS" once the container has left RUNNING and is RUNNING again. */
const POLLER = `n=$1; down=; end=$(($(date +%s) + 900))
while [ "$(date +%s)" -lt $end ]; do
  s=$(lxc-info -n "$n" -s -H 2>/dev/null); t=$(date +%s%N)
  if [ -z "$down" ] && [ "$s" != RUNNING ]; then down=$t; fi
  if [ -n "$down" ] && [ "$s" = RUNNING ]; then echo "$down $t"; exit 0; fi
  sleep 0.01
done
exit 1`;

/** An init that exits on SIGPWR (lxc-stop's halt signal for this config) at once. */
const QUICK_INIT = `r=/var/lib/lxc/$1/rootfs
printf '#!/bin/sh\\ntrap "exit 0" PWR TERM USR1\\nwhile :; do sleep 1 & wait $!; done\\n' >"$r/sbin/plb-init"
chmod 755 "$r/sbin/plb-init"
sed -i '/^lxc.signal.halt/d' "/var/lib/lxc/$1/config"
printf 'lxc.init.cmd = /sbin/plb-init\\nlxc.signal.halt = SIGPWR\\n' >>"/var/lib/lxc/$1/config"`;

/** Inside the container: append a line to every 100th regular file of bulk/; prints how many. */
const WRITER = `find /bulk -type f | awk 'NR % 100 == 0' >/tmp/w.list
while read -r f; do echo written >>"$f"; done </tmp/w.list
rm /tmp/w.list
find /bulk -type f -newer /sbin/plb-init | wc -l`;

async function startPoller(host: FleetHost, name: string) {
  const done = hostExec(host, ["sh", "-c", POLLER, "sh", name]);
  await new Promise((r) => setTimeout(r, 300));
  return async (): Promise<number> => {
    const r = await done;
    const m = /^(\d+) (\d+)$/m.exec(r.stdout);
    if (r.code !== 0 || !m) throw new Error(`downtime poller for ${name}: exit ${r.code} ${r.stderr}`);
    return Number(BigInt(m[2]) - BigInt(m[1])) / 1e6;
  };
}

async function startContainer(host: FleetHost, name: string): Promise<void> {
  await sh(host, 'lxc-start -n "$1" -d && lxc-wait -n "$1" -s RUNNING -t 30', name);
}

async function convert(
  ctx: BenchContext,
  inputs: RootfsInputs,
  steps: { op: string; ms: number }[][],
): Promise<number> {
  const timings: CommandTiming[] = [];
  const t = performance.now();
  const outs = await quietly(ctx, () =>
    convergeWith(timedRemote(openRemote(inputs.connection), timings), inputs),
  );
  steps.push(downSteps(timings));
  if (!outs.rootfsIsSubvolume || outs.state !== "RUNNING")
    throw new Error(`${inputs.container}: not converted and running: ${JSON.stringify(outs)}`);
  return performance.now() - t;
}

/** On HOST (h2 by default: the fault matrix cuts h1's link). */
export async function benchDowntime(
  ctx: BenchContext,
  entries = 100_000,
  host: FleetHost = ctx.h2,
): Promise<DowntimeResult> {
  const spec = { tag: `dt${entries / 1000}k`, entries };
  const tpl = templateName(spec.tag);
  await makeTemplate({ ...ctx, h1: host }, spec);
  await sh(host, QUICK_INIT, tpl);
  await settle(host);
  const size = await treeSize(host, tpl);
  ctx.log(`downtime: template ${size.entries} entries`);
  const res: DowntimeResult = {
    entries: size.entries,
    written: [],
    live: [],
    restart: [],
    floor: [],
    liveTotal: [],
    restartTotal: [],
    liveSteps: [],
    restartSteps: [],
  };
  const [live, restart, floor] = ["bench-dt-live", "bench-dt-restart", "bench-dt-floor"];
  // The provider's connection is dialled before any clock starts.
  await openRemote(rootfsInputs(ctx, host, live).connection).check(["true"]);
  for (let i = 0; i < ctx.runs; i++) {
    await cloneTemplateMany(host, tpl, [live, restart, floor]);
    await startContainer(host, live);
    await startContainer(host, restart);
    await settle(host);

    // live: held between the pre-copy and the stop while the writer runs.
    const hold = `/run/plb-hold/${live}.stop`;
    await sh(host, 'mkdir -p /run/plb-hold && rm -f "$1.reached" && : >"$1"', hold);
    const downLive = await startPoller(host, live);
    const run = convert(ctx, { ...rootfsInputs(ctx, host, live), ifRunning: "live" }, res.liveSteps);
    const failed = run.then(
      () => undefined,
      (e: Error) => e,
    );
    for (;;) {
      if ((await sh(host, '[ -e "$1.reached" ] && echo y || true', hold)) === "y\n") break;
      const e = await Promise.race([failed, new Promise((r) => setTimeout(r, 100))]);
      if (e) throw e;
    }
    res.written.push(Number((await sh(host, 'lxc-attach -n "$1" -- /bin/sh -c "$2"', live, WRITER)).trim()));
    await sh(host, 'rm -f "$1" "$1.reached"', hold);
    res.liveTotal.push(await run);
    res.live.push(await downLive());

    const downRestart = await startPoller(host, restart);
    res.restartTotal.push(
      await convert(ctx, { ...rootfsInputs(ctx, host, restart), ifRunning: "restart" }, res.restartSteps),
    );
    res.restart.push(await downRestart());

    const f = await timedOnHost(host, FLOOR_SCRIPT, floor);
    if (f.code !== 0 || f.intervals.length !== 2) throw new Error(`floor failed: ${f.stderr}`);
    res.floor.push(f.intervals[0]);

    for (const n of [live, restart, floor]) await destroy(host, n);
    await settle(host);
    ctx.log(
      `downtime run ${i + 1}/${ctx.runs}: live ${res.live[i].toFixed(0)} ms (${res.written[i]} files written), ` +
        `restart ${res.restart[i].toFixed(0)} ms, floor ${res.floor[i].toFixed(0)} ms`,
    );
  }
  await destroy(host, tpl);
  await settle(host);
  return res;
}

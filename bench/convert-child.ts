/**
 * The provider process of the conversion benchmark: converts one container on a fleet host the way the
 * dynamic provider does (pooled SSH, convergeWith) in a fresh node process, timing every remote command,
 * and prints the time, the commands and its own peak RSS as one JSON line. The connection is made (and a
 * `true` run) before the clock starts. With `--idle` it only connects: the baseline for memory.
 *
 *   node convert-child.js HOST CONTAINER [--idle]
 */
import { readFileSync } from "node:fs";
import { rootfsArgsSchema } from "../provider/rootfs/inputs";
import { convergeWith } from "../provider/rootfs/provider";
import { closeAllConnections, openRemote } from "../provider/transport/ssh";
import { loadInventory } from "../test/support/fleet";
import { type CommandTiming, timedRemote } from "./lib/remote-timing";

export interface ChildReport {
  ms: number;
  files: number | null;
  /** One SSH round trip (`true` on the warm connection), median of 5, measured before the conversion. */
  rttMs: number;
  /** Peak resident set size of this process, KiB (getrusage ru_maxrss). */
  maxRssKb: number;
  commands: CommandTiming[];
  outs?: { rootfsIsSubvolume: boolean; configBackingStore: string; adopted: boolean };
}

async function main(): Promise<void> {
  const [hostName, container, flag] = process.argv.slice(2);
  const inv = loadInventory();
  const host = inv.hosts.find((h) => h.name === hostName);
  if (!host || !container) throw new Error("usage: node convert-child.js HOST CONTAINER [--idle]");
  const inputs = rootfsArgsSchema.parse({
    connection: {
      host: host.address,
      privateKey: readFileSync(inv.users.root.privateKeyPath as string, "utf8"),
      knownHostsPath: inv.knownHostsPath,
    },
    container,
  });
  const commands: CommandTiming[] = [];
  const remote = openRemote(inputs.connection);
  await remote.check(["true"]);
  const rtts: number[] = [];
  for (let i = 0; i < 5; i++) {
    const s = performance.now();
    await remote.check(["true"]);
    rtts.push(performance.now() - s);
  }
  rtts.sort((a, b) => a - b);
  const report: ChildReport = { ms: 0, files: null, rttMs: rtts[2], maxRssKb: 0, commands };
  const t = performance.now();
  if (flag !== "--idle") {
    console.log = () => undefined; // the provider's progress lines
    const outs = await convergeWith(timedRemote(remote, commands), inputs);
    report.files = outs.files;
    report.outs = {
      rootfsIsSubvolume: outs.rootfsIsSubvolume,
      configBackingStore: outs.configBackingStore,
      adopted: outs.adopted,
    };
  }
  report.ms = performance.now() - t;
  await closeAllConnections();
  report.maxRssKb = process.resourceUsage().maxRSS;
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});

/**
 * Fleet rollout: discover containers on many hosts and declare their conversions (and clones) in waves.
 * The constructor only wires resources; the plan comes from plan.ts.
 */
import * as pulumi from "@pulumi/pulumi";
import { LxcSnapshotClone } from "../clone/resource";
import type { ConnectionArgs } from "../core/connection";
import { UserError } from "../core/errors";
import type { LxcConnectionArgs } from "../core/resource";
import { LxcSubvolumeRootfs, type LxcSubvolumeRootfsArgs } from "../rootfs/resource";
import { LxcSnapshot, type LxcSnapshotArgs } from "../snapshot/resource";
import {
  conversionKey,
  copyKey,
  type DiscoveredContainer,
  ownNames,
  parseDiscovery,
  planCopies,
  planRollout,
  selectContainers,
} from "./plan";

export interface DiscoverOptions {
  lxcPath?: string;
  /** Globs of container names to keep (default: all). */
  include?: string[];
  /** Globs of container names to leave out. */
  exclude?: string[];
}

/**
 * Lists the containers on a host at program time, with each one's rootfs state: the
 * `for rootfs in /var/lib/lxc/*\/rootfs` loop of a hand-written conversion script, as data. One SSH round trip.
 */
export async function discoverContainers(
  connection: ConnectionArgs,
  opts: DiscoverOptions = {},
): Promise<DiscoveredContainer[]> {
  const { validate, absolutePath, formatFailures } =
    require("../core/inputs") as typeof import("../core/inputs");
  const { connectionSchema } = require("../core/connection") as typeof import("../core/connection");
  const { openRemote, closeConnection } = require("../transport/ssh") as typeof import("../transport/ssh");
  const { scriptArgv } =
    require("../transport/remote-scripts") as typeof import("../transport/remote-scripts");
  const conn = validate(connectionSchema, connection);
  if (!conn.ok)
    throw new UserError(
      formatFailures(
        `discoverContainers(${connection?.host ?? "?"})`,
        conn.failures.map((f) => ({ ...f, property: `connection.${f.property}` })),
      ),
    );
  const lxcPath = absolutePath.parse(opts.lxcPath ?? "/var/lib/lxc");
  const remote = openRemote(conn.value);
  try {
    const res = await remote.check(scriptArgv("discover", [lxcPath]));
    const all = parseDiscovery(res.stdout);
    const keep = new Set(
      selectContainers(
        all.map((c) => c.name),
        opts.include,
        opts.exclude,
      ),
    );
    return all.filter((c) => keep.has(c.name));
  } finally {
    await closeConnection(conn.value);
  }
}

export interface FleetHostArgs {
  /** A short name for the host, used in resource names and the summary. */
  name: string;
  connection: pulumi.Input<LxcConnectionArgs>;
  lxcPath?: string;
  /** The containers to convert on this host. */
  containers: string[];
  /** Containers left out, with the reason (filled in by `discover`). */
  skipped?: { container: string; reason: string }[];
}

export interface FleetCloneArgs {
  host: string;
  source: string;
  name: string;
  start?: boolean;
  hostname?: string;
  ifSourceRunning?: "fail" | "freeze" | "restart";
  /** Clone from this read-only snapshot of the source (an `LxcSnapshot` or `snapshotBefore` name). */
  snapshot?: string;
}

/**
 * A container copied to other hosts: on each, a cross-host `LxcSnapshotClone` (btrfs send on the source
 * host, receive on the target, relayed through the provider).
 */
export interface FleetCopyArgs {
  /** The source: a host (a `name` of hosts) and one of its containers (or that container's `snapshot`). */
  from: { host: string; container: string; snapshot?: string };
  /** The hosts to copy it to (names of hosts), or "all": every other host (whose discovery succeeded). */
  to: string[] | "all";
  /** The copy's name on every target (default: the source container's name). */
  name?: string;
  start?: boolean;
  hostname?: string;
  ifSourceRunning?: "fail" | "freeze" | "restart";
  /** Bump to refresh every copy from the source's current state, incrementally (LxcSnapshotClone's revision). */
  revision?: string | number;
  /** What a refresh does with a running copy: "fail" (default) or "restart". */
  ifRunning?: "fail" | "restart";
}

/** A restore point per container: its name, and how to take it (the `LxcSnapshot` inputs of those names). */
export type FleetSnapshotArgs = { name: string } & Pick<LxcSnapshotArgs, "ifRunning" | "nestedSubvolumes">;

export interface LxcFleetRolloutArgs {
  hosts: FleetHostArgs[];
  /** The first N hosts, or the named hosts, form a canary wave that must succeed before the rest start. */
  canary?: number | string[];
  /** At most this many conversions at once on one host (default 1); different hosts run in parallel. */
  maxConcurrentPerHost?: number;
  /** Policy for every conversion. */
  conversion?: Pick<LxcSubvolumeRootfsArgs, "ifRunning" | "nestedSubvolumes" | "keepBackup" | "onDelete">;
  clones?: FleetCloneArgs[];
  /**
   * A read-only snapshot (`LxcSnapshot`) of every container the rollout manages, named so: taken once the
   * container is a subvolume (right after its conversion, at once for one already converted), before the
   * rollout's clones of it and before the next wave. Resources that change the containers and depend on the
   * rollout find a restore point on each one.
   */
  snapshotBefore?: string | FleetSnapshotArgs;
  /** Containers copied to other hosts, in the rollout's waves (see FleetCopyArgs). */
  copies?: FleetCopyArgs[];
}

export interface FleetHostSummary {
  converted: string[];
  adopted: string[];
  skipped: string[];
  failed: string[];
}

export interface DiscoverHostArgs extends DiscoverOptions {
  name: string;
  /** Plain values: discovery runs while the program runs. */
  connection: ConnectionArgs;
}

/**
 * Hosts whose discovery failed, by the args object `discover` built for them: how `discover` tells the
 * constructor, without a parameter in the public constructor. Reported in the summary as failed.
 */
const discoveryFailures = new WeakMap<LxcFleetRolloutArgs, Record<string, string>>();

export class LxcFleetRollout extends pulumi.ComponentResource {
  /** Per host: containers converted now, adopted (already converted), skipped and failed. */
  declare readonly summary: pulumi.Output<Record<string, FleetHostSummary>>;
  /** Per clone and per copy (`host/name`): its state and rootfs subvolume UUID. */
  declare readonly clones: pulumi.Output<Record<string, { state: string; subvolumeUuid: string | null }>>;
  readonly conversions: Record<string, LxcSubvolumeRootfs> = {};
  /** With `snapshotBefore`: the restore points, by `host/container`. */
  readonly snapshots: Record<string, LxcSnapshot> = {};

  /** Discovers the containers on every host first (hosts that cannot be reached are reported as failed). */
  static async discover(
    name: string,
    args: Omit<LxcFleetRolloutArgs, "hosts"> & { hosts: DiscoverHostArgs[] },
    opts?: pulumi.ComponentResourceOptions,
  ): Promise<LxcFleetRollout> {
    const failedHosts: Record<string, string> = {};
    const own = ownNames(
      args.hosts.map((h) => h.name),
      args.clones ?? [],
      args.copies ?? [],
    );
    const hosts = await Promise.all(
      args.hosts.map(async (h): Promise<FleetHostArgs> => {
        try {
          const mine = own.get(h.name) ?? new Set<string>();
          const found = (await discoverContainers(h.connection, h)).filter((c) => !mine.has(c.name));
          const usable = found.filter((c) => !c.problem && c.fstype === "btrfs" && c.rootfs === "dir");
          const skipped = found
            .filter((c) => !usable.includes(c))
            .map((c) => ({
              container: c.name,
              reason:
                c.problem ?? (c.fstype !== "btrfs" ? `on ${c.fstype}, not btrfs` : `rootfs is ${c.rootfs}`),
            }));
          return {
            name: h.name,
            connection: h.connection,
            lxcPath: h.lxcPath,
            containers: usable.map((c) => c.name),
            skipped,
          };
        } catch (e) {
          failedHosts[h.name] = (e as Error).message;
          return { name: h.name, connection: h.connection, lxcPath: h.lxcPath, containers: [] };
        }
      }),
    );
    for (const [h, why] of Object.entries(failedHosts))
      console.error(`[lxc-btrfs] host ${h}: discovery failed: ${why}`);
    const all: LxcFleetRolloutArgs = { ...args, hosts };
    discoveryFailures.set(all, failedHosts);
    return new LxcFleetRollout(name, all, opts);
  }

  constructor(name: string, args: LxcFleetRolloutArgs, opts?: pulumi.ComponentResourceOptions) {
    super("lxc-btrfs:index:LxcFleetRollout", name, {}, opts);
    const failedHosts = discoveryFailures.get(args) ?? {};
    let plan: ReturnType<typeof planRollout>;
    let copyPlan: ReturnType<typeof planCopies>;
    try {
      const opts = { canary: args.canary, maxConcurrentPerHost: args.maxConcurrentPerHost };
      plan = planRollout(args.hosts, opts);
      copyPlan = planCopies(args.hosts, plan, args.copies ?? [], {
        ...opts,
        unreachable: Object.keys(failedHosts),
      });
    } catch (e) {
      throw e instanceof UserError ? new UserError(`LxcFleetRollout ${name}: ${e.message}`) : e;
    }
    const byName = new Map(args.hosts.map((h) => [h.name, h]));
    const snap =
      typeof args.snapshotBefore === "string" ? { name: args.snapshotBefore } : args.snapshotBefore;
    // What waits for a container's work waits for its last resource: the snapshot, when there is one.
    const last = (key: string) => this.snapshots[key] ?? this.conversions[key];
    for (const step of plan) {
      const host = byName.get(step.host) as FleetHostArgs;
      const key = conversionKey(step.host, step.container);
      const id = `${name}-${step.host}-${step.container}`;
      const where = { connection: host.connection, container: step.container, lxcPath: host.lxcPath };
      this.conversions[key] = new LxcSubvolumeRootfs(
        id,
        { ...where, ...args.conversion },
        { parent: this, dependsOn: step.after.map(last) },
      );
      if (snap)
        this.snapshots[key] = new LxcSnapshot(
          `${id}-${snap.name}`,
          { ...where, ...snap },
          { parent: this, dependsOn: [this.conversions[key]] },
        );
    }
    const clones: Record<string, LxcSnapshotClone> = {};
    for (const c of args.clones ?? []) {
      const host = byName.get(c.host);
      if (!host)
        throw new UserError(
          `LxcFleetRollout ${name}: clone ${c.name} names host ${c.host}, which is not among the hosts`,
        );
      const source = last(conversionKey(c.host, c.source));
      clones[`${c.host}/${c.name}`] = new LxcSnapshotClone(
        `${name}-${c.host}-${c.name}`,
        {
          connection: host.connection,
          lxcPath: host.lxcPath,
          source: c.source,
          name: c.name,
          start: c.start,
          hostname: c.hostname,
          ifSourceRunning: c.ifSourceRunning,
          snapshot: c.snapshot,
        },
        { parent: this, dependsOn: source ? [source] : [] },
      );
    }
    // Copies, by copyKey (`copy:host/name`), the keys their plan waits on.
    const copies: Record<string, LxcSnapshotClone> = {};
    for (const p of copyPlan) {
      const c = (args.copies ?? [])[p.index];
      const [target, source] = [byName.get(p.host), byName.get(p.fromHost)] as FleetHostArgs[];
      if (clones[`${p.host}/${p.name}`])
        throw new UserError(
          `LxcFleetRollout ${name}: a clone and a copy are both named ${p.name} on ${p.host}`,
        );
      copies[copyKey(p.host, p.name)] = new LxcSnapshotClone(
        `${name}-${p.host}-${p.name}`,
        {
          connection: target.connection,
          sourceConnection: source.connection,
          lxcPath: target.lxcPath,
          source: p.container,
          name: p.name,
          snapshot: c.from.snapshot,
          start: c.start,
          hostname: c.hostname,
          ifSourceRunning: c.ifSourceRunning,
          revision: c.revision,
          ifRunning: c.ifRunning,
        },
        { parent: this, dependsOn: p.after.map((k) => copies[k] ?? last(k)) },
      );
    }
    this.summary = summarize(args.hosts, this.conversions, failedHosts);
    this.clones = pulumi
      .all(
        [
          ...Object.entries(clones),
          ...copyPlan.map((p) => [`${p.host}/${p.name}`, copies[copyKey(p.host, p.name)]] as const),
        ].map(([k, r]) => pulumi.all([k, r.state, r.subvolumeUuid])),
      )
      .apply((rows) =>
        Object.fromEntries(rows.map(([k, state, uuid]) => [k, { state, subvolumeUuid: uuid }])),
      );
    this.registerOutputs({ summary: this.summary, clones: this.clones });
  }
}

function summarize(
  hosts: FleetHostArgs[],
  conversions: Record<string, LxcSubvolumeRootfs>,
  failedHosts: Record<string, string>,
): pulumi.Output<Record<string, FleetHostSummary>> {
  const rows = hosts.flatMap((h) =>
    h.containers.map((c) => pulumi.all([h.name, c, conversions[conversionKey(h.name, c)].adopted])),
  );
  return pulumi.all(rows).apply((done) => {
    const out: Record<string, FleetHostSummary> = {};
    for (const h of hosts) {
      out[h.name] = {
        converted: [],
        adopted: [],
        skipped: (h.skipped ?? []).map((s) => `${s.container} (${s.reason})`),
        failed: failedHosts[h.name] ? [`discovery: ${failedHosts[h.name]}`] : [],
      };
    }
    for (const [host, container, adopted] of done)
      (adopted ? out[host].adopted : out[host].converted).push(container);
    return out;
  });
}

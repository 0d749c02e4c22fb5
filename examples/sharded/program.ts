// The program every shard runs: the fleet rollout of examples/fleet over the shard's own hosts. The runner
// (index.ts) hands each stack this program with its shard; nothing here knows about other shards.
import { type ConnectionArgs, type FleetHostSummary, LxcFleetRollout } from "pulumi-lxc-btrfs";

export interface ShardHost {
  /** Short name, unique within the shard: used in resource names and the summary. */
  name: string;
  connection: ConnectionArgs;
  lxcPath?: string;
  include?: string[];
  exclude?: string[];
}

export interface RolloutPolicy {
  canary?: number | string[];
  maxConcurrentPerHost?: number;
  conversion?: {
    ifRunning?: "fail" | "restart";
    nestedSubvolumes?: "fail" | "keep";
    keepBackup?: boolean;
    onDelete?: "retain" | "revert";
  };
}

export interface Shard extends RolloutPolicy {
  /** Also the stack name. */
  name: string;
  hosts: ShardHost[];
}

/**
 * The program of one shard. It records, for the runner's report, which resource converts which container
 * (`host/container`), so that a failed update can still be told per container.
 */
export function shardProgram(shard: Shard, resources: Map<string, string>) {
  return async (): Promise<{ summary: unknown }> => {
    const rollout = await LxcFleetRollout.discover(shard.name, {
      hosts: shard.hosts.map((h) => ({
        name: h.name,
        connection: h.connection,
        lxcPath: h.lxcPath,
        include: h.include,
        exclude: h.exclude,
      })),
      canary: shard.canary,
      maxConcurrentPerHost: shard.maxConcurrentPerHost,
      conversion: shard.conversion,
    });
    // LxcFleetRollout names each conversion `<rollout>-<host>-<container>`.
    for (const key of Object.keys(rollout.conversions)) {
      const slash = key.lastIndexOf("/");
      resources.set(`${shard.name}-${key.slice(0, slash)}-${key.slice(slash + 1)}`, key);
    }
    return { summary: rollout.summary };
  };
}

export type Summary = Record<string, FleetHostSummary>;

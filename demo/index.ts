/**
 * The demo: roll out btrfs subvolume rootfs conversions over a fleet, canary host first, then clone two
 * containers as snapshots.
 *
 * By default it targets the local sandbox fleet (`npm run fleet:up`) through its inventory. To target
 * real hosts instead:
 *   pulumi config set --path 'hosts[0].name' web-a
 *   pulumi config set --path 'hosts[0].host' 10.0.0.5
 *   pulumi config set --path 'hosts[0].user' deploy          # optional, default root
 *   pulumi config set --path 'hosts[0].sudo' true            # optional
 *   pulumi config set --secret privateKey "$(cat ~/.ssh/id_ed25519)"   # or: pulumi config set privateKeyPath ~/.ssh/id_ed25519
 *   pulumi config set --path 'clones[0].host' web-a; pulumi config set --path 'clones[0].source' web1; pulumi config set --path 'clones[0].name' web1-test
 */
import { readFileSync } from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { type DiscoverHostArgs, type FleetCloneArgs, LxcFleetRollout } from "pulumi-lxc-btrfs";

interface HostConfig {
  name: string;
  host: string;
  port?: number;
  user?: string;
  sudo?: boolean;
  knownHostsPath?: string;
  lxcPath?: string;
  exclude?: string[];
}

interface Inventory {
  knownHostsPath: string;
  users: { root: { privateKeyPath: string } };
  hosts: { name: string; address: string; containers: { name: string }[] }[];
}

/** A secret's plain value, for discovery at program time; the resources get the secret Output itself. */
function reveal<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

export = async () => {
  const cfg = new pulumi.Config();
  const configured = cfg.getObject<HostConfig[]>("hosts");
  let hosts: DiscoverHostArgs[];
  let clones: FleetCloneArgs[];
  if (configured) {
    const keyPath = cfg.get("privateKeyPath");
    const secretKey = cfg.getSecret("privateKey");
    const privateKey = secretKey ? await reveal(secretKey) : undefined;
    hosts = configured.map((h) => ({
      name: h.name,
      connection: {
        host: h.host,
        port: h.port,
        user: h.user,
        sudo: h.sudo,
        knownHostsPath: h.knownHostsPath,
        privateKey,
        privateKeyPath: keyPath,
      },
      lxcPath: h.lxcPath,
      exclude: h.exclude,
    }));
    clones = cfg.getObject<FleetCloneArgs[]>("clones") ?? [];
  } else {
    const dir = process.env.PLB_FLEET_DIR ?? "/var/tmp/pulumi-lxc-btrfs/fleet";
    const inv: Inventory = JSON.parse(readFileSync(`${dir}/inventory.json`, "utf8"));
    hosts = inv.hosts.map((h) => ({
      name: h.name,
      // The key stays in a file where Pulumi runs: nothing secret goes into state.
      connection: {
        host: h.address,
        privateKeyPath: inv.users.root.privateKeyPath,
        knownHostsPath: inv.knownHostsPath,
      },
      exclude: ["*-clone", "it-*", "ct-*", "e2e-*", "bench-*"],
    }));
    clones = [
      { host: "h1", source: "web1", name: "web1-clone", hostname: "web1-clone" },
      { host: "h2", source: "app1", name: "app1-clone", start: false },
    ];
  }
  const rollout = await LxcFleetRollout.discover("demo", {
    hosts,
    canary: 1,
    maxConcurrentPerHost: 2,
    clones,
  });
  return { summary: rollout.summary, clones: rollout.clones };
};

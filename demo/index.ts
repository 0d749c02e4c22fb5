/**
 * The demo: roll out btrfs subvolume rootfs conversions over a fleet, canary host first, then clone
 * containers as snapshots. It reads only stack config, as any program would; `npm run demo`
 * (scripts/demo.sh) sets it for the local sandbox fleet. For real hosts:
 *   pulumi config set --path 'hosts[0].name' web-a
 *   pulumi config set --path 'hosts[0].host' 10.0.0.5
 *   pulumi config set --path 'hosts[0].port' 2222                  # optional, default 22
 *   pulumi config set --path 'hosts[0].user' deploy                # optional, default root
 *   pulumi config set --path 'hosts[0].sudo' true                  # optional
 *   pulumi config set --path 'hosts[0].lxcPath' /srv/lxc           # optional, default /var/lib/lxc
 *   pulumi config set --path 'hosts[0].exclude[0]' 'scratch-*'     # optional, per host
 *   pulumi config set --secret privateKey "$(cat ~/.ssh/id_ed25519)"   # or: pulumi config set privateKeyPath ~/.ssh/id_ed25519
 *   pulumi config set knownHostsPath ~/.ssh/known_hosts            # optional; also per host (hosts[0].knownHostsPath)
 *   pulumi config set --path 'exclude[0]' '*-clone'                # optional: globs left out on every host
 *   pulumi config set --path 'clones[0].host' web-a; pulumi config set --path 'clones[0].source' web1; pulumi config set --path 'clones[0].name' web1-test
 *   pulumi config set onDelete revert                             # optional: `pulumi destroy` turns each rootfs back into a directory (default retain)
 */
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

/** A secret's plain value, for discovery at program time; the resources get the secret Output itself. */
function reveal<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

export = async () => {
  const cfg = new pulumi.Config();
  const keyPath = cfg.get("privateKeyPath");
  const secretKey = cfg.getSecret("privateKey");
  const privateKey = secretKey ? await reveal(secretKey) : undefined;
  const knownHostsPath = cfg.get("knownHostsPath");
  const exclude = cfg.getObject<string[]>("exclude") ?? [];
  const hosts: DiscoverHostArgs[] = cfg.requireObject<HostConfig[]>("hosts").map((h) => ({
    name: h.name,
    connection: {
      host: h.host,
      port: h.port,
      user: h.user,
      sudo: h.sudo,
      knownHostsPath: h.knownHostsPath ?? knownHostsPath,
      privateKey,
      privateKeyPath: keyPath,
    },
    lxcPath: h.lxcPath,
    exclude: [...exclude, ...(h.exclude ?? [])],
  }));
  const rollout = await LxcFleetRollout.discover("demo", {
    hosts,
    canary: 1,
    maxConcurrentPerHost: 2,
    clones: cfg.getObject<FleetCloneArgs[]>("clones") ?? [],
    conversion: { onDelete: cfg.get("onDelete") as "retain" | "revert" | undefined },
  });
  return { summary: rollout.summary, clones: rollout.clones };
};

// Discovers every container on several hosts and converts them in waves: the canary host first, then the
// others in parallel, at most `maxConcurrentPerHost` conversions at a time on one host. Everything comes
// from stack config (see README.md for every key):
//
//   pulumi config set --path 'hosts[0].name' a; pulumi config set --path 'hosts[0].host' 10.0.0.5
//   pulumi config set --path 'hosts[1].name' b; pulumi config set --path 'hosts[1].host' 10.0.0.6
//   pulumi config set privateKeyPath ~/.ssh/id_ed25519
//   pulumi config set lxcPath /srv/lxc          # optional: where the containers live (default /var/lib/lxc)
//   pulumi up
//   pulumi config set snapshotBefore pre-upgrade # optional: a read-only restore point on every container
//   pulumi up
//   pulumi config set --path 'copies[0].from.host' a          # optional: copy a container to other hosts
//   pulumi config set --path 'copies[0].from.container' web1
//   pulumi config set --path 'copies[0].to' all; pulumi config set --path 'copies[0].revision' 1
//   pulumi up                                                 # bump revision to refresh the copies
//
// Directories whose names LXC allows but this provider does not (spaces, tabs, shell characters, a
// leading dash, non-UTF-8 bytes) are listed under summary.<host>.skipped with the reason; the rest go on.
import * as pulumi from "@pulumi/pulumi";
import { type FleetCopyArgs, LxcFleetRollout } from "pulumi-lxc-btrfs";

interface HostConfig {
  name: string;
  host: string;
  port?: number;
  user?: string;
  sudo?: boolean;
}

export = async () => {
  const cfg = new pulumi.Config();
  const hosts = cfg.requireObject<HostConfig[]>("hosts");
  const rollout = await LxcFleetRollout.discover("fleet", {
    hosts: hosts.map((h) => ({
      name: h.name,
      connection: {
        host: h.host,
        port: h.port,
        user: h.user,
        sudo: h.sudo,
        privateKeyPath: cfg.get("privateKeyPath"),
        knownHostsPath: cfg.get("knownHostsPath"),
      },
      lxcPath: cfg.get("lxcPath"),
      include: cfg.getObject<string[]>("include"),
      exclude: cfg.getObject<string[]>("exclude"),
    })),
    canary: cfg.getNumber("canary") ?? 1,
    maxConcurrentPerHost: cfg.getNumber("maxConcurrentPerHost") ?? 2,
    conversion: { onDelete: "revert" },
    snapshotBefore: cfg.get("snapshotBefore"),
    copies: cfg.getObject<FleetCopyArgs[]>("copies"),
  });
  return { summary: rollout.summary };
};

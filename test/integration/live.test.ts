/**
 * ifRunning "live" and "restart" against a real running container: a Debian container with a writer
 * inside that changes its tree between the pre-copy and the stop (held there by the step failpoint
 * /run/plb-hold/NAME.stop, so the changes are deterministic), converted while it runs. Asserts the tree
 * after the conversion equals a manifest of the source as it was when stopped (the old tree too, kept with
 * keepBackup), that the container ends RUNNING, and that "restart" starts it before the old tree goes.
 */
import { readFileSync } from "node:fs";
import { expect } from "chai";
import { type RootfsInputs, rootfsArgsSchema } from "../../provider/rootfs/inputs";
import * as rootfs from "../../provider/rootfs/provider";
import { closeAllConnections } from "../../provider/transport/ssh";
import { type FleetHost, loadInventory, manifest } from "../support/fleet";
import { destroyContainers, hostSh, waitFor } from "../support/host";

const inv = loadInventory();
// h2: the fault matrix cuts h1's link and kills its sshd; these runs must not be cut by it.
const host = inv.hosts.find((h) => h.name === "h2") as FleetHost;
const key = readFileSync(inv.users.root.privateKeyPath as string, "utf8");
const LXC = "/var/lib/lxc";
const HOLD = "/run/plb-hold";
const LOCAL = "/var/cache/pulumi-lxc-btrfs/debian-bookworm-minbase.lxc";

const sh = (script: string, ...args: string[]) => hostSh(host, script, ...args);

function inputs(container: string, extra: Partial<RootfsInputs> = {}): RootfsInputs {
  return rootfsArgsSchema.parse({
    connection: { host: host.address, privateKey: key, knownHostsPath: inv.knownHostsPath },
    container,
    ...extra,
  });
}

/**
 * A running Debian minbase container (dir: rootfs) of its own: minbase has no init, so its init is a
 * shell that exits on the halt signal (SIGPWR), and lxc-stop takes milliseconds, not its 30 s timeout.
 */
async function runningDebian(name: string): Promise<void> {
  await destroyContainers(host, name);
  await sh(
    `set -e
lxc-create -n "$1" -t local -- --metadata "$2/meta.tar.xz" --fstree "$2/rootfs.tar.xz" >/dev/null 2>&1
r=/var/lib/lxc/$1/rootfs
printf '#!/bin/sh\\ntrap "exit 0" PWR TERM\\nwhile :; do sleep 1 & wait $!; done\\n' >"$r/usr/local/sbin/plb-init"
chmod 755 "$r/usr/local/sbin/plb-init"
printf 'lxc.init.cmd = /usr/local/sbin/plb-init\\n' >>"/var/lib/lxc/$1/config"
mkdir -p "$r/srv/w/dir" && cd "$r/srv/w"
for f in append delete rename chmod forged replaced linked; do echo "$f" >"$f"; done
ln linked dir/linked2; echo deep >dir/deep
lxc-start -n "$1" -d && lxc-wait -n "$1" -s RUNNING -t 10`,
    name,
    LOCAL,
  );
}

/**
 * The writer, run inside the container: files created, appended, deleted, renamed, chmod-ed, one
 * rewritten in place with its size and mtime put back (only its ctime tells), one replaced by a
 * directory, a new hardlink and a whole new subtree.
 */
const WRITER = `cd /srv/w
echo new >created
echo more >>append
rm delete
mv rename renamed
chmod 600 chmod
touch -r forged /tmp/ref && echo FORGE >forged && touch -r /tmp/ref forged && rm /tmp/ref
rm replaced && mkdir replaced && echo inside >replaced/file
ln linked dir/linked3
mkdir -p new/sub && echo n >new/sub/n && mv dir moved
`;

/**
 * A manifest without its top directory's line: starting a container changes the mtime of its rootfs
 * directory (LXC makes and removes an entry there to pivot into it), so the new tree, running, differs
 * from the stopped source in that one line. The old tree is compared whole.
 */
const belowTop = (m: string) => m.split("\n").filter((l) => !l.startsWith(".\t")).join("\n");

const state = async (name: string) => (await sh('lxc-info -n "$1" -s -H', name)).trim();

async function held(name: string, point: string): Promise<void> {
  await sh('mkdir -p "$1" && rm -f "$2.reached" && : >"$2"', HOLD, `${HOLD}/${name}.${point}`);
}
async function reached(name: string, point: string): Promise<void> {
  await waitFor(
    async () => (await sh('[ -e "$1.reached" ] && echo y || true', `${HOLD}/${name}.${point}`)) === "y\n",
    120_000,
  );
}
const release = (name: string, point: string) => sh('rm -f "$1" "$1.reached"', `${HOLD}/${name}.${point}`);

describe("ifRunning live and restart on a running container", function () {
  this.timeout(600_000);
  after(async () => {
    await closeAllConnections();
  });

  describe('"live": a Debian container with a writer inside', () => {
    const name = "live-deb";
    before(() => runningDebian(name));
    after(() => destroyContainers(host, name));

    it("converts while it runs, ends RUNNING, and its tree (and the kept old tree) equal the source as it was when stopped", async () => {
      await held(name, "stop");
      const run = rootfs.create(inputs(name, { ifRunning: "live", keepBackup: true }));
      const failed = run.then(
        () => undefined,
        (e: Error) => e,
      );
      await reached(name, "stop");
      // Between the pre-copy and the stop: the pre-copy is done, the container still runs.
      expect(await state(name)).to.equal("RUNNING");
      expect(await sh('ls -A "/var/lib/lxc/$1"', name)).to.equal(
        ".plb-journal\n.plb-journal.since\nconfig\nrootfs\nrootfs.plb-new\n",
      );
      expect(await sh('sed -n "s/^phase=//p" "/var/lib/lxc/$1/.plb-journal"', name)).to.equal("catching-up\n");
      await sh('lxc-attach -n "$1" -- sh -c "$2"', name, WRITER);
      const atStop = await manifest(host, `${LXC}/${name}/rootfs`);
      await release(name, "stop");
      const err = await failed;
      if (err) throw err;
      const { outs } = await run;
      expect(outs).to.include({
        rootfsIsSubvolume: true,
        configBackingStore: "btrfs",
        state: "RUNNING",
        interrupted: null,
      });
      expect(await state(name)).to.equal("RUNNING");
      expect(await manifest(host, `${LXC}/${name}/rootfs.pre-btrfs`)).to.equal(atStop);
      expect(belowTop(await manifest(host, `${LXC}/${name}/rootfs`))).to.equal(belowTop(atStop));
      // The writer's changes are in the new tree, the in-place rewrite with forged times included.
      expect(
        await sh(
          'cd "/var/lib/lxc/$1/rootfs/srv/w" && cat forged append replaced/file && stat -c "%a %h" chmod moved/linked3 && ls',
          name,
        ),
      ).to.equal(
        "FORGE\nappend\nmore\ninside\n600 1\n644 3\nappend\nchmod\ncreated\nforged\nlinked\nmoved\nnew\nrenamed\nreplaced\n",
      );
      expect(await sh('ls -A "/var/lib/lxc/$1"', name)).to.equal("config\nconfig.pre-btrfs\nrootfs\nrootfs.pre-btrfs\n");
    });
  });

  describe('"restart": the container runs again before the old tree is removed', () => {
    const name = "live-restart";
    before(() => runningDebian(name));
    after(() => destroyContainers(host, name));

    it("is RUNNING on the new subvolume while the old tree still waits for its removal", async () => {
      const before = await manifest(host, `${LXC}/${name}/rootfs`);
      await held(name, "remove");
      const run = rootfs.create(inputs(name, { ifRunning: "restart" }));
      const failed = run.then(
        () => undefined,
        (e: Error) => e,
      );
      await reached(name, "remove");
      expect(await state(name)).to.equal("RUNNING");
      expect(await sh('stat -c %i "/var/lib/lxc/$1/rootfs"; ls -A "/var/lib/lxc/$1"', name)).to.equal(
        "256\n.plb-journal\nconfig\nconfig.pre-btrfs\nrootfs\nrootfs.pre-btrfs\n",
      );
      expect(await manifest(host, `${LXC}/${name}/rootfs.pre-btrfs`)).to.equal(before);
      await release(name, "remove");
      const err = await failed;
      if (err) throw err;
      const { outs } = await run;
      expect(outs).to.include({ rootfsIsSubvolume: true, state: "RUNNING" });
      expect(belowTop(await manifest(host, `${LXC}/${name}/rootfs`))).to.equal(belowTop(before));
      expect(await sh('ls -A "/var/lib/lxc/$1"', name)).to.equal("config\nconfig.pre-btrfs\nrootfs\n");
    });
  });
});

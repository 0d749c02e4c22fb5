/**
 * ifRunning "live" and "restart" against a real running container: a Debian container with a writer
 * inside that changes its tree between the pre-copy and the stop (held there by the step failpoint
 * /run/plb-hold/NAME.stop, so the changes are deterministic), converted while it runs. Asserts the tree
 * after the conversion equals a manifest of the source as it was when stopped (the old tree too, kept with
 * keepBackup), that the container ends RUNNING, and that "restart" starts it before the old tree goes.
 * Then the fault matrix of the live steps: each fault strikes while a run is held at a step; the next run
 * must end with the converted container RUNNING (started again if the faulted run left it stopped), its
 * tree as before, nothing left over.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { expect } from "chai";
import { type RootfsInputs, rootfsArgsSchema } from "../../provider/rootfs/inputs";
import * as rootfs from "../../provider/rootfs/provider";
import { closeAllConnections } from "../../provider/transport/ssh";
import { type FaultAction, type FleetHost, fault, loadInventory, manifest } from "../support/fleet";
import { destroyContainers, failpoint, HOLD, hostSh, waitFor } from "../support/host";
import { logged } from "../support/log";

const inv = loadInventory();
// h4: the fault matrix cuts h1's link and other suites restart h2's sshd; these runs must not be cut by them.
const host = inv.hosts.find((h) => h.name === "h4") as FleetHost;
const key = readFileSync(inv.users.root.privateKeyPath as string, "utf8");
const LXC = "/var/lib/lxc";
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
mkdir rel rel.new && echo version=1 >rel/app.conf && echo version=2 >rel.new/app.conf
touch -d 2020-01-01 rel/app.conf rel.new/app.conf
echo x >xattr && setfattr -n user.plb -v 1 xattr && echo cow >nocow
mkdir hl && echo h >hl/a && ln hl/a hl-outside
echo a >tab && ln tab "t$(printf '\\t')b" && echo other >t
lxc-start -n "$1" -d && lxc-wait -n "$1" -s RUNNING -t 10`,
    name,
    LOCAL,
  );
}

/**
 * The writer, run inside the container: files created, appended, deleted, renamed, chmod-ed, one
 * rewritten in place with its size and mtime put back (only its ctime tells), one replaced by a
 * directory, a new hardlink, a whole new subtree, and a release directory swapped in by two renames (its
 * file has the same size and mtime as the one it replaces, and a ctime from before the pre-copy).
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
mv rel rel.old && mv rel.new rel
`;

/**
 * Changes made from the host at the same point (Debian minbase has no setfattr or chattr inside): an xattr
 * removed from a file rewritten in place, a file replaced by a NOCOW one, a directory whose file has
 * another name outside it renamed (the name under it is new, its inode is not), and 2000 new hardlinked
 * pairs with long names (more than one cp run's worth of arguments).
 */
const HOST_WRITER = `cd "$1/srv/w"
echo y >xattr && setfattr -x user.plb xattr
rm nocow && touch nocow && chattr +C nocow && echo nocow >nocow
mv hl hl.moved
echo more >>tab
mkdir many && cd many && seq 1 2000 | sed 's/^/a-rather-long-file-name-so-that-xargs-needs-several-cp-runs-for-them-/' |
  xargs sh -c 'for f; do echo "$f" >"$f" && ln "$f" "$f.link"; done' -
`;

/**
 * A manifest without its top directory's line: starting a container changes the mtime of its rootfs
 * directory (LXC makes and removes an entry there to pivot into it), so the new tree, running, differs
 * from the stopped source in that one line. The old tree is compared whole.
 */
const belowTop = (m: string) =>
  m
    .split("\n")
    .filter((l) => !l.startsWith(".\t"))
    .join("\n");

const state = async (name: string) => (await sh('lxc-info -n "$1" -s -H', name)).trim();

const held = (name: string, point: string) => failpoint(host, name, point).set();
const reached = (name: string, point: string) => failpoint(host, name, point).reached();
const release = (name: string, point: string) => failpoint(host, name, point).release();

/**
 * Starts a create held at each of `points` and waits until it reached the first; `failed` is what it
 * throws (undefined once it succeeds).
 */
async function createHeld(name: string, points: string[], args: RootfsInputs) {
  for (const point of points) await held(name, point);
  const run = rootfs.create(args);
  const failed = run.then(
    () => undefined,
    (e: Error) => e,
  );
  await reached(name, points[0]);
  return { run, failed };
}

/** Removes the container and any failpoint left for it (by a test that failed while a run was held). */
async function dropContainer(name: string): Promise<void> {
  await sh(`rm -f ${HOLD}/${name}.*`);
  await destroyContainers(host, name);
}

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
      // Past the catch-up's one-second ctime margin: the swapped-in release files' ctimes must predate the
      // pre-copy for the test to show they are found by their directory's identity, not by their ctime.
      await new Promise((r) => setTimeout(r, 2500));
      const { run, failed } = await createHeld(
        name,
        ["stop"],
        inputs(name, { ifRunning: "live", keepBackup: true }),
      );
      // Between the pre-copy and the stop: the pre-copy is done, the container still runs.
      expect(await state(name)).to.equal("RUNNING");
      expect(await sh('ls -A "/var/lib/lxc/$1"', name)).to.equal(
        ".plb-journal\n.plb-journal.all\n.plb-journal.dirs\n.plb-journal.since\nconfig\nrootfs\nrootfs.plb-new\n",
      );
      expect(await sh('sed -n "s/^phase=//p" "/var/lib/lxc/$1/.plb-journal"', name)).to.equal(
        "catching-up\n",
      );
      await sh('lxc-attach -n "$1" -- sh -c "$2"', name, WRITER);
      await sh(HOST_WRITER, `${LXC}/${name}/rootfs`);
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
          'cd "/var/lib/lxc/$1/rootfs/srv/w" && cat forged append replaced/file rel/app.conf && stat -c "%a %h" chmod moved/linked3 && ls',
          name,
        ),
      ).to.equal(
        "FORGE\nappend\nmore\ninside\nversion=2\n600 1\n644 3\nappend\nchmod\ncreated\nforged\nhl-outside\nhl.moved\nlinked\nmany\nmoved\nnew\nnocow\nrel\nrel.old\nrenamed\nreplaced\nt\nt\tb\ntab\nxattr\n",
      );
      expect(
        await sh(
          'cd "/var/lib/lxc/$1/rootfs/srv/w" && getfattr -d xattr; lsattr nocow | cut -d" " -f1 | tr -d -; stat -c "%h %i" hl-outside hl.moved/a | uniq -c | sed "s/^ *//; s/ .*//"; find many -type f -links 2 | wc -l; find many -printf "%i\n" | sort | uniq -d | wc -l',
          name,
        ),
      ).to.equal("C\n2\n4000\n2000\n");
      expect(await sh('ls -A "/var/lib/lxc/$1"', name)).to.equal(
        "config\nconfig.pre-btrfs\nrootfs\nrootfs.pre-btrfs\n",
      );
    });
  });

  describe('"live": the pre-copy reads a still image, not the running tree', () => {
    const name = "live-image";
    const SECRET = "/var/tmp/plb-live-secret";
    before(async () => {
      await runningDebian(name);
      await sh('mkdir -p "$1/srv/img/d" && echo original >"$1/srv/img/d/file"', `${LXC}/${name}/rootfs`);
      await sh('mkdir -p "$1" && echo HOSTSECRET >"$1/file"', SECRET);
    });
    after(async () => {
      await dropContainer(name);
      await sh('rm -rf "$1"', SECRET);
    });

    it("copies the tree as it was at its snapshot: a directory swapped for a symlink to a host path meanwhile is neither followed nor seen until the catch-up", async () => {
      const { run, failed } = await createHeld(
        name,
        ["precopy-image", "stop"],
        inputs(name, { ifRunning: "live", keepBackup: true }),
      );
      // The snapshot is taken; the copy has not started. The container swaps a directory for a symlink
      // that, followed on the host, would lead to a host directory, and writes a new file.
      await sh(
        'lxc-attach -n "$1" -- sh -c "cd /srv/img && echo after >after && mv d d.orig && ln -s "$2" d"',
        name,
        SECRET,
      );
      expect(await sh('ls -A "/var/lib/lxc/$1"', name)).to.equal(
        ".plb-journal\n.plb-journal.since\n.plb-precopy\nconfig\nrootfs\nrootfs.plb-new\n",
      );
      await release(name, "precopy-image");
      await reached(name, "stop");
      // The pre-copy is the image: the old directory and its file, no new file; its snapshot is gone.
      expect(
        await sh(
          'cd "/var/lib/lxc/$1/rootfs.plb-new/srv/img" && ls -A && [ -d d ] && [ ! -L d ] && cat d/file; ls -A "/var/lib/lxc/$1"',
          name,
        ),
      ).to.equal(
        "d\noriginal\n.plb-journal\n.plb-journal.all\n.plb-journal.dirs\n.plb-journal.since\nconfig\nrootfs\nrootfs.plb-new\n",
      );
      const atStop = await manifest(host, `${LXC}/${name}/rootfs`);
      await release(name, "stop");
      const err = await failed;
      if (err) throw err;
      expect((await run).outs).to.include({ rootfsIsSubvolume: true, state: "RUNNING" });
      expect(await manifest(host, `${LXC}/${name}/rootfs.pre-btrfs`)).to.equal(atStop);
      expect(belowTop(await manifest(host, `${LXC}/${name}/rootfs`))).to.equal(belowTop(atStop));
      // The catch-up brought the symlink over as a symlink, and no host file's content is in the tree.
      expect(
        await sh(
          'cd "/var/lib/lxc/$1/rootfs/srv/img" && ls -A && readlink d && cat d.orig/file after; grep -r -l HOSTSECRET "/var/lib/lxc/$1/rootfs" || echo none',
          name,
        ),
      ).to.equal(`after\nd\nd.orig\n${SECRET}\noriginal\nafter\nnone\n`);
    });
  });

  describe('"live": a nested subvolume inside the rootfs (nestedSubvolumes: "keep")', () => {
    const name = "live-nested";
    before(async () => {
      await runningDebian(name);
      await sh(
        'btrfs subvolume create "$1/srv/nested" >/dev/null && mkdir "$1/srv/nested/d" && echo inside >"$1/srv/nested/d/f" && chmod 700 "$1/srv/nested"',
        `${LXC}/${name}/rootfs`,
      );
    });
    after(() => destroyContainers(host, name));

    it("converts: the nested subvolume (an empty directory in the pre-copy's snapshot) is caught up, verified, then moved in whole", async () => {
      const uuid = () =>
        sh(
          'btrfs subvolume show "$1" | sed -n "s/^[[:space:]]*UUID:[[:space:]]*//p"',
          `${LXC}/${name}/rootfs/srv/nested`,
        );
      const before = await manifest(host, `${LXC}/${name}/rootfs`);
      const id = await uuid();
      const { outs } = await rootfs.create(inputs(name, { ifRunning: "live", nestedSubvolumes: "keep" }));
      expect(outs).to.include({ rootfsIsSubvolume: true, state: "RUNNING", interrupted: null });
      expect(await uuid()).to.equal(id);
      expect(belowTop(await manifest(host, `${LXC}/${name}/rootfs`))).to.equal(belowTop(before));
      expect(await sh('find "/var/lib/lxc/$1" -type d -inum 256 | sort', name)).to.equal(
        `${LXC}/${name}/rootfs\n${LXC}/${name}/rootfs/srv/nested\n`,
      );
    });
  });

  describe('"live": a busy tree (files made and removed all through the pre-copy)', () => {
    const name = "live-churn";
    before(async () => {
      await runningDebian(name);
      // 20k files so that the pre-copy takes a while; a loop inside keeps making and removing files and
      // directories until the container stops.
      await sh(
        'mkdir -p "$1/srv/bulk" && cd "$1/srv/bulk" && seq 1 20000 | xargs touch && mkdir -p "$1/srv/churn" && cd "$1/srv/churn" && seq 1 500 | xargs touch',
        `${LXC}/${name}/rootfs`,
      );
      await sh(
        `lxc-attach -n "$1" -- sh -c 'exec </dev/null >/dev/null 2>&1; cd /srv/churn; i=0; while :; do i=$((i + 1)); echo $i >f$((i % 700)); rm -f f$(((i + 350) % 700)); mkdir -p d$((i % 9)) && echo $i >d$((i % 9))/x; rm -rf d$(((i + 4) % 9)); done &'`,
        name,
      );
    });
    after(() => destroyContainers(host, name));

    it("converts on the first run, ends RUNNING, and its tree equals the kept old tree (the source at its stop)", async () => {
      const churning = async () => (await sh('ls "$1/srv/churn" | wc -l', `${LXC}/${name}/rootfs`)).trim();
      const n0 = await churning();
      await new Promise((r) => setTimeout(r, 300));
      expect(await churning()).to.not.equal(n0, "the loop inside the container changes /srv/churn");
      const {
        result: { outs },
        lines,
      } = await logged(() => rootfs.create(inputs(name, { ifRunning: "live", keepBackup: true })));
      expect(outs).to.include({ rootfsIsSubvolume: true, state: "RUNNING", interrupted: null });
      expect(lines.filter((l) => /roll|differs|again/.test(l))).to.deep.equal([]);
      expect(await state(name)).to.equal("RUNNING");
      const old = await manifest(host, `${LXC}/${name}/rootfs.pre-btrfs`);
      expect(belowTop(await manifest(host, `${LXC}/${name}/rootfs`))).to.equal(belowTop(old));
      expect(await sh('ls -A "/var/lib/lxc/$1"', name)).to.equal(
        "config\nconfig.pre-btrfs\nrootfs\nrootfs.pre-btrfs\n",
      );
    });
  });

  describe('"restart": the container runs again before the old tree is removed', () => {
    const name = "live-restart";
    before(() => runningDebian(name));
    after(() => destroyContainers(host, name));

    it("is RUNNING on the new subvolume while the old tree still waits for its removal", async () => {
      const before = await manifest(host, `${LXC}/${name}/rootfs`);
      const { run, failed } = await createHeld(name, ["remove"], inputs(name, { ifRunning: "restart" }));
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

  describe("the verification reads symlinks' own xattrs, never their targets'", () => {
    const name = "live-lxattr";
    const HOSTFILE = "/var/tmp/plb-lxattr-target";
    before(async () => {
      await runningDebian(name);
      await sh('lxc-stop -n "$1" -t 10', name);
      // The symlink's target, seen from the host, is a host file with an xattr of its own.
      await sh('echo host >"$1" && setfattr -n user.host -v 1 "$1"', HOSTFILE);
      await sh(
        'ln -s "$2" "$1/srv/l" && setfattr -h -n trusted.plb -v 1 "$1/srv/l"',
        `${LXC}/${name}/rootfs`,
        HOSTFILE,
      );
    });
    after(async () => {
      await dropContainer(name);
      await sh('rm -f "$1"', HOSTFILE);
    });

    it("a symlink's xattr missing from the copy fails the verification: the copy is discarded, the original kept", async () => {
      const before = await manifest(host, `${LXC}/${name}/rootfs`);
      const { failed } = await createHeld(name, ["verify"], inputs(name));
      // cp copied it; take it away from the copy only. Its target's xattrs are the same either way.
      await sh('setfattr -h -x trusted.plb "$1/rootfs.plb-new/srv/l"', `${LXC}/${name}`);
      await release(name, "verify");
      const err = await failed;
      expect(err?.message).to.equal(
        `LxcSubvolumeRootfs ${name} on root@${host.address}:22: the copy does not match the original (xattrs differ); the copy was discarded and the original left as it was.\n< xattrs srv/l trusted.plb=0x31`,
      );
      expect(await sh('ls -A "/var/lib/lxc/$1"', name)).to.equal("config\nrootfs\n");
      expect(await manifest(host, `${LXC}/${name}/rootfs`)).to.equal(before);
      const { outs } = await rootfs.create(inputs(name));
      expect(outs).to.include({ rootfsIsSubvolume: true, interrupted: null });
      expect(
        await sh('getfattr -h -n trusted.plb --only-values "$1/srv/l"', `${LXC}/${name}/rootfs`),
      ).to.equal("1");
    });
  });

  describe("a stopped container's tree written to while it is being copied", () => {
    const name = "live-written";
    before(async () => {
      await runningDebian(name);
      await sh('lxc-stop -n "$1" -t 10', name);
    });
    after(() => dropContainer(name));

    it("is refused by the verification even when the copy matches (the walks of the source ran beside the copy), and rolled back", async () => {
      const { failed } = await createHeld(name, ["verify"], inputs(name));
      // The same change to both trees: only the ctime tells that the source changed after its walks began.
      await sh(
        'for t in rootfs rootfs.plb-new; do touch -r "$1/$t/etc/hostname" /tmp/plb-ref && echo x >"$1/$t/etc/hostname" && touch -r /tmp/plb-ref "$1/$t/etc/hostname"; done; rm /tmp/plb-ref',
        `${LXC}/${name}`,
      );
      const after = await manifest(host, `${LXC}/${name}/rootfs`);
      await release(name, "verify");
      const err = await failed;
      expect(err?.message).to.match(
        new RegExp(
          `: ${LXC}/${name}/rootfs changed while it was being copied \\(was ${name} started, or its tree written to from the host\\?\\); the copy is discarded: run again`,
        ),
      );
      expect(await sh('ls -A "/var/lib/lxc/$1"', name)).to.equal("config\nrootfs\n");
      expect(await manifest(host, `${LXC}/${name}/rootfs`)).to.equal(after);
    });
  });

  describe('"live" revert (onDelete: "revert"): the rootfs is a subvolume, snapshotted itself', () => {
    const name = "live-revert";
    before(() => runningDebian(name));
    after(() => destroyContainers(host, name));

    it("converts, then reverts while it runs: a directory again with the same tree, RUNNING", async () => {
      const { outs } = await rootfs.create(inputs(name, { ifRunning: "live", onDelete: "revert" }));
      expect(outs).to.include({ rootfsIsSubvolume: true, state: "RUNNING" });
      await new Promise((r) => setTimeout(r, 1500));
      const before = await manifest(host, `${LXC}/${name}/rootfs`);
      await rootfs.del("", outs);
      expect(await state(name)).to.equal("RUNNING");
      expect(await sh('stat -c %i "/var/lib/lxc/$1/rootfs"', name)).to.not.equal("256\n");
      expect(await sh('grep "^lxc.rootfs.path" "/var/lib/lxc/$1/config"', name)).to.equal(
        `lxc.rootfs.path = dir:${LXC}/${name}/rootfs\n`,
      );
      expect(belowTop(await manifest(host, `${LXC}/${name}/rootfs`))).to.equal(belowTop(before));
      expect(await sh('ls -A "/var/lib/lxc/$1"', name)).to.equal(
        "config\nconfig.pre-btrfs\nconfig.pre-dir\nrootfs\n",
      );
    });
  });

  describe("a container started by hand while it is stopped for its conversion", () => {
    const name = "live-started";
    before(() => runningDebian(name));
    after(() => dropContainer(name));

    it("is not swapped from under: the swap refuses, the copy is discarded, the original stays in place and running", async () => {
      const before = await manifest(host, `${LXC}/${name}/rootfs`);
      const { failed } = await createHeld(name, ["swap"], inputs(name, { ifRunning: "restart" }));
      await sh('lxc-start -n "$1" -d && lxc-wait -n "$1" -s RUNNING -t 10', name);
      await release(name, "swap");
      const err = await failed;
      expect(err?.message).to.contain(
        `${name} is running (started since it was stopped for the conversion); not swapping its rootfs: run again`,
      );
      expect(await state(name)).to.equal("RUNNING");
      expect(
        await sh(
          'stat -c %i "/var/lib/lxc/$1/rootfs" | grep -vx 256 >/dev/null && ls -A "/var/lib/lxc/$1"',
          name,
        ),
      ).to.equal("config\nrootfs\n");
      expect(belowTop(await manifest(host, `${LXC}/${name}/rootfs`))).to.equal(belowTop(before));
    });
  });

  describe("fault matrix of the live steps × link cut, sshd killed, provider SIGKILL, disk full", () => {
    const name = "live-fault";
    const table: string[] = [];
    after(async () => {
      await destroyContainers(host, name);
      await sh(`rm -rf ${HOLD}/${name}.*`);
      console.log(`\n      live step × fault -> outcome\n${table.map((l) => `      ${l}`).join("\n")}\n`);
    });
    // busybox's own init runs syslogd, which writes the tree on every start and stop: an init that
    // writes nothing and exits on the halt signal instead, so "the tree as before" is exact.
    const QUIET_INIT =
      'printf "#!/bin/sh\\ntrap \\"exit 0\\" PWR TERM USR1\\nwhile :; do sleep 1 & wait \\$!; done\\n" >sbin/plb-init && chmod 755 sbin/plb-init && sed -i "/^lxc.signal.halt/d" "/var/lib/lxc/$1/config" && printf "lxc.init.cmd = /sbin/plb-init\\nlxc.signal.halt = SIGPWR\\n" >>"/var/lib/lxc/$1/config"';
    type Fault = "link cut" | "sshd killed" | "provider SIGKILL" | "disk full";
    const INJECT: Record<Fault, [FaultAction, FaultAction] | undefined> = {
      "link cut": ["cut", "restore"],
      "sshd killed": ["sshd-stop", "sshd-start"],
      "provider SIGKILL": undefined,
      "disk full": ["fill", "unfill"],
    };
    // One dial attempt: a run against a cut link gives up after keepalive instead of retrying.
    const faulty = rootfsArgsSchema.parse({
      connection: {
        host: host.address,
        privateKey: key,
        knownHostsPath: inv.knownHostsPath,
        dialErrorLimit: 1,
        perDialTimeout: 4,
      },
      container: name,
      ifRunning: "live",
    });
    // precopy, precopy-image and stop: the container runs; catchup and verify: it is stopped (a provider SIGKILL there
    // leaves it stopped); start: swapped, stopped; remove: running on the new tree.
    // precopy-image: inside the pre-copy, its snapshot taken (the next run must remove it).
    for (const step of ["precopy", "precopy-image", "stop", "catchup", "verify", "start", "remove"]) {
      for (const f of Object.keys(INJECT) as Fault[]) {
        it(`${step} × ${f}: the next run converts, the container RUNNING, the tree intact, nothing left over`, async () => {
          await destroyContainers(host, name);
          await sh(
            `lxc-create -n "$1" -t busybox >/dev/null 2>&1 && printf "lxc.net.0.type = empty\\n" >>"/var/lib/lxc/$1/config" && cd "/var/lib/lxc/$1/rootfs" && mkdir bulk && (cd bulk && seq 1 2000 | xargs touch && ln 1 hard) && mkdir -p var/log/journal && chattr +C var/log/journal && head -c 1048576 /dev/urandom >var/log/journal/system.journal && echo locked >etc/locked && chattr +i etc/locked && ${QUIET_INIT} && lxc-start -n "$1" -d && lxc-wait -n "$1" -s RUNNING -t 10`,
            name,
          );
          const before = await manifest(host, `${LXC}/${name}/rootfs`);
          await held(name, step);
          let ended: Promise<string>;
          let child: ChildProcess | undefined;
          if (f === "provider SIGKILL") {
            const mod = path.resolve(__dirname, "../../provider/rootfs-provider.js");
            const code = `require(${JSON.stringify(mod)}).create(JSON.parse(process.argv[1])).then(() => process.exit(0), () => process.exit(1))`;
            const c = spawn(process.execPath, ["-e", code, JSON.stringify(faulty)], { stdio: "ignore" });
            child = c;
            ended = new Promise((resolve) => c.on("exit", (x) => resolve(x === 0 ? "succeeded" : "failed")));
          } else {
            ended = rootfs.create(faulty).then(
              () => "succeeded",
              () => "failed",
            );
          }
          await reached(name, step);
          const wasAtHold = await state(name);
          const inject = INJECT[f];
          if (inject) await fault(host, inject[0]);
          else child?.kill("SIGKILL");
          await release(name, step);
          const how = await ended;
          if (inject) await fault(host, inject[1]);
          await closeAllConnections();
          await waitFor(
            "the faulted run's host-side script to end",
            async () => (await sh(`pgrep -f "plb-[s]tep .*${name}" >/dev/null && echo busy || true`)) === "",
            120_000,
          );
          if (f !== "disk full") expect(how).to.equal("failed");
          const left = await sh(
            'lxc-info -n "$1" -s -H; cat "/var/lib/lxc/$1/.plb-journal" 2>/dev/null | sed -n "s/^phase=//p"',
            name,
          );
          const {
            result: { outs },
            lines,
          } = await logged(() => rootfs.create(inputs(name, { ifRunning: "live" })));
          expect(outs).to.include({
            rootfsIsSubvolume: true,
            configBackingStore: "btrfs",
            state: "RUNNING",
            interrupted: null,
          });
          expect(await state(name)).to.equal("RUNNING");
          const after = await manifest(host, `${LXC}/${name}/rootfs`);
          expect(belowTop(after)).to.equal(belowTop(before));
          expect(await sh('ls -A "/var/lib/lxc/$1"', name)).to.equal("config\nconfig.pre-btrfs\nrootfs\n");
          expect(await sh('find "/var/lib/lxc/$1" -type d -inum 256', name)).to.equal(
            `${LXC}/${name}/rootfs\n`,
          );
          const recovery = lines
            .find((l) => / (roll back|resume) an interrupted/.test(l))
            ?.replace(/^.*: /, "");
          table.push(
            `${step.padEnd(13)} × ${f.padEnd(16)} -> held ${wasAtHold.trim()}; faulted run ${how}, left ${left.trim().replace(/\n/, ", journal ") || "-"}; next run: ${recovery ?? (outs.adopted ? "found it done" : "converted")}`,
          );
        });
      }
    }
  });
});

/**
 * LxcSubvolumeRootfs against real hosts: real LXC containers on loop-mounted btrfs, over real SSH.
 * Every test asserts host state: manifests of the tree before and after, the config text, subvolume
 * facts, and the exact refusal text with the host left byte-for-byte as it was.
 */
import { readFileSync } from "node:fs";
import { expect } from "chai";
import { cloneArgsSchema } from "../../provider/clone/inputs";
import * as clone from "../../provider/clone/provider";
import { type RootfsInputs, rootfsArgsSchema } from "../../provider/rootfs/inputs";
import * as rootfs from "../../provider/rootfs/provider";
import { batchArgs } from "../../provider/rootfs/steps";
import type { Remote } from "../../provider/transport/remote";
import { scriptArgv } from "../../provider/transport/remote-scripts";
import { closeAllConnections, openRemote } from "../../provider/transport/ssh";
import { type FleetHost, fault, hostExec, loadInventory, manifest } from "../support/fleet";
import {
  destroyContainers as destroy,
  hostSh,
  makeBusybox,
  NO_NETWORK,
  rejectionOf,
  waitFor,
} from "../support/host";

const inv = loadInventory();
const h1 = inv.hosts.find((h) => h.name === "h1") as FleetHost;
const h3 = inv.hosts.find((h) => h.fs !== "btrfs") as FleetHost;
const rootKey = readFileSync(inv.users.root.privateKeyPath!, "utf8");
const LXC = "/var/lib/lxc";

function inputs(host: FleetHost, container: string, extra: Partial<RootfsInputs> = {}): RootfsInputs {
  return rootfsArgsSchema.parse({
    connection: { host: host.address, privateKey: rootKey, knownHostsPath: inv.knownHostsPath },
    container,
    ...extra,
  });
}

/** A fresh busybox container, created the way users do, with a dir: rootfs. */
const makeContainer = (host: FleetHost, name: string) => makeBusybox(host, name, NO_NETWORK);

async function config(host: FleetHost, name: string): Promise<string> {
  return hostSh(host, 'cat "/var/lib/lxc/$1/config"', name);
}

/** The container directory's entries, config and rootfs identity: all a refusal could have changed. */
async function outside(host: FleetHost, name: string): Promise<string> {
  return hostSh(host, 'cd "/var/lib/lxc/$1" && ls -A && sha256sum config && stat -c "%i %a %U" rootfs', name);
}

/** The whole container directory, for "the host is exactly as it was". */
async function dirManifest(host: FleetHost, name: string): Promise<string> {
  return manifest(host, `${LXC}/${name}`);
}

/** Apparent size of a container's rootfs on h1, in bytes. */
async function treeBytes(name: string): Promise<number> {
  return Number(await hostSh(h1, 'du -s -B1 --apparent-size "/var/lib/lxc/$1/rootfs" | cut -f1', name));
}

/**
 * Data bytes in use on h1's btrfs, flushed first. Data only: small files live inline in metadata, and a
 * reflink copy adds metadata but no data blocks.
 */
async function dataUsed(): Promise<number> {
  return Number(
    await hostSh(
      h1,
      'sync -f /var/lib/lxc && btrfs filesystem df -b /var/lib/lxc | sed -n "s/^Data, [a-z0-9]*: total=[0-9]*, used=//p"',
    ),
  );
}

/** Removes what keepBackup and a revert leave beside the rootfs, immutable entries of the backup included. */
async function removeKeptBackup(name: string): Promise<void> {
  await hostSh(
    h1,
    'cd "/var/lib/lxc/$1" && find rootfs.pre-btrfs \\( -type f -o -type d \\) -exec chattr -i -a {} + && rm -rf rootfs.pre-btrfs config.pre-btrfs config.pre-dir',
    name,
  );
}

describe("LxcSubvolumeRootfs on the fleet", function () {
  this.timeout(600_000);
  after(() => closeAllConnections());

  describe("conversion", () => {
    const name = "it-bb1";
    before(() => makeContainer(h1, name));
    after(() => destroy(h1, name));

    it("turns a dir: busybox rootfs into a subvolume with the same tree and a btrfs: config", async () => {
      const before = await manifest(h1, `${LXC}/${name}/rootfs`);
      const cfgBefore = await config(h1, name);
      expect(cfgBefore).to.include(`lxc.rootfs.path = dir:${LXC}/${name}/rootfs`);
      // LXC 5 tools print errors only with a log priority set.
      const snap = await hostExec(h1, [
        "lxc-copy",
        "-l",
        "ERROR",
        "-n",
        name,
        "-N",
        `${name}-x`,
        "-s",
        "-B",
        "btrfs",
      ]);
      expect(snap.code).to.not.equal(0);
      expect(snap.stdout + snap.stderr).to.include("btrfs snapshot from dir backing store is not supported");

      const { id, outs } = await rootfs.create(inputs(h1, name));
      expect(id).to.equal(`${h1.address}:22:${LXC}/${name}`);
      expect(outs).to.include({
        rootfsIsSubvolume: true,
        configBackingStore: "btrfs",
        adopted: false,
        state: "STOPPED",
        rootfsPath: `${LXC}/${name}/rootfs`,
      });
      expect(outs.subvolumeId).to.be.a("number").greaterThan(255);
      expect(outs.subvolumeUuid).to.match(/^[0-9a-f-]{36}$/);
      expect(await manifest(h1, `${LXC}/${name}/rootfs`)).to.equal(before);
      expect(await config(h1, name)).to.equal(
        cfgBefore.replace(`dir:${LXC}/${name}/rootfs`, `btrfs:${LXC}/${name}/rootfs`),
      );
      expect(await hostSh(h1, 'cat "/var/lib/lxc/$1/config.pre-btrfs"', name)).to.equal(cfgBefore);
      expect(await hostSh(h1, 'ls -A "/var/lib/lxc/$1"', name)).to.equal(
        "config\nconfig.pre-btrfs\nrootfs\n",
      );
      expect(
        (
          await hostSh(
            h1,
            'btrfs subvolume show "/var/lib/lxc/$1/rootfs" | sed -n "s/^\\s*UUID:\\s*//p"',
            name,
          )
        ).trim(),
      ).to.equal(outs.subvolumeUuid);
    });

    it("makes lxc-copy -s -B btrfs work, and the container starts", async () => {
      const snap = await hostExec(h1, ["lxc-copy", "-n", name, "-N", `${name}-snap`, "-s", "-B", "btrfs"]);
      expect(snap.code, snap.stderr).to.equal(0);
      expect(
        (
          await hostSh(
            h1,
            'btrfs subvolume show "/var/lib/lxc/$1-snap/rootfs" | sed -n "s/^\\s*Parent UUID:\\s*//p"',
            name,
          )
        ).trim(),
      ).to.match(/^[0-9a-f-]{36}$/);
      await destroy(h1, `${name}-snap`);
      expect((await hostExec(h1, ["lxc-start", "-n", name])).code).to.equal(0);
      try {
        const att = await hostExec(h1, ["lxc-attach", "-n", name, "--", "/bin/sh", "-c", "echo inside"]);
        expect(att.stdout).to.equal("inside\n");
      } finally {
        await hostExec(h1, ["lxc-stop", "-k", "-n", name]);
      }
    });

    it("adopts on a second create and changes nothing", async () => {
      const before = await dirManifest(h1, name);
      const { outs } = await rootfs.create(inputs(h1, name));
      expect(outs.adopted).to.equal(true);
      expect(await dirManifest(h1, name)).to.equal(before);
    });

    it("shows a hand-edited prefix as drift in read, and update repairs it", async () => {
      await hostSh(
        h1,
        'sed -i "s|^lxc.rootfs.path = btrfs:|lxc.rootfs.path = dir:|" "/var/lib/lxc/$1/config"',
        name,
      );
      const prior = (await rootfs.create(inputs(h1, name))).outs;
      // create repaired it already (converge); break it again and go through read -> diff -> update.
      await hostSh(
        h1,
        'sed -i "s|^lxc.rootfs.path = btrfs:|lxc.rootfs.path = |" "/var/lib/lxc/$1/config"',
        name,
      );
      const r = await rootfs.read(`${h1.address}:22:${LXC}/${name}`, prior);
      expect(r.props?.configBackingStore).to.equal("bare");
      expect(rootfs.diffRootfs(r.props ?? {}, inputs(h1, name))).to.deep.equal({
        changes: true,
        replaces: [],
      });
      const { outs } = await rootfs.update("", r.props as rootfs.RootfsOutputs, inputs(h1, name));
      expect(outs.configBackingStore).to.equal("btrfs");
      expect(outs.adopted).to.equal(false);
      expect(rootfs.diffRootfs(outs, inputs(h1, name))).to.deep.equal({ changes: false, replaces: [] });
    });

    it("reverts on delete with onDelete: revert, to the same tree with a dir: config", async () => {
      const before = await manifest(h1, `${LXC}/${name}/rootfs`);
      const { outs } = await rootfs.create(inputs(h1, name, { onDelete: "revert" }));
      await rootfs.del("", outs);
      expect(await manifest(h1, `${LXC}/${name}/rootfs`)).to.equal(before);
      expect(await config(h1, name)).to.include(`lxc.rootfs.path = dir:${LXC}/${name}/rootfs\n`);
      expect(await hostSh(h1, 'stat -c %i "/var/lib/lxc/$1/rootfs"', name)).to.not.equal("256\n");
      const r = await rootfs.read("", { ...outs });
      expect(r.props).to.include({ rootfsIsSubvolume: false, configBackingStore: "dir" });
    });

    it("reports a deleted container as gone in read", async () => {
      const { outs } = await rootfs.create(inputs(h1, name));
      await destroy(h1, name);
      expect(await rootfs.read("", outs)).to.deep.equal({});
      await makeContainer(h1, name);
    });
  });

  describe("round trips", () => {
    const name = "it-bb3rt";
    before(() => makeContainer(h1, name));
    after(() => destroy(h1, name));

    it("a conversion takes three: the inspection that ends the last batch is the next round's (read from the host)", async () => {
      const real = openRemote(inputs(h1, name).connection);
      const sent: string[] = [];
      // Each command as its script's name and, for a step batch, its ops (`OP NARGS ARG...` after its
      // lxcPath and name).
      const what = (argv: readonly string[]) => {
        const [script, ...args] = argv.slice(3);
        if (script !== "plb-step") return `${script} ${args.join(" ")}`;
        const ops: string[] = [];
        for (let at = 2; at < args.length; at += 2 + Number(args[at + 1])) ops.push(args[at]);
        return `${script} ${ops.join(" ")}`;
      };
      const recording: Remote = {
        target: real.target,
        key: `${real.key}#it-bb3rt`,
        run: (argv, o) => {
          sent.push(what(argv));
          return real.run(argv, o);
        },
        check: (argv, o) => {
          sent.push(what(argv));
          return real.check(argv, o);
        },
      };
      const before = await manifest(h1, `${LXC}/${name}/rootfs`);
      const outs = await rootfs.convergeWith(recording, inputs(h1, name));
      // The inspection, the batch up to the verification, the swap's batch ending with the inspection
      // (`inspect 1 NONCE`) that found the container converted: no fourth command.
      expect(sent).to.deep.equal([
        `plb-inspect-rootfs ${LXC} ${name} auto`,
        "plb-step journal subvol-create copy verify",
        "plb-step journal swap journal write-config move-nested remove journal-clear inspect",
      ]);
      expect(outs).to.include({ rootfsIsSubvolume: true, configBackingStore: "btrfs", adopted: false });
      expect(outs.entries).to.be.greaterThan(100);
      expect(await manifest(h1, `${LXC}/${name}/rootfs`)).to.equal(before);
      // And the next run adopts it with one inspection.
      sent.length = 0;
      expect(await rootfs.convergeWith(recording, inputs(h1, name), "update")).to.include({ adopted: true });
      expect(sent).to.deep.equal([`plb-inspect-rootfs ${LXC} ${name} auto`]);
    });
  });

  describe("a Debian container", () => {
    const deb = h1.containers.find((c) => c.kind === "debian")?.name as string;
    it("converts losslessly and starts", async () => {
      const before = await manifest(h1, `${LXC}/${deb}/rootfs`);
      const { outs } = await rootfs.create(inputs(h1, deb, { onDelete: "revert" }));
      expect(outs).to.include({ rootfsIsSubvolume: true, configBackingStore: "btrfs" });
      expect(outs.files).to.be.greaterThan(5000);
      expect(await manifest(h1, `${LXC}/${deb}/rootfs`)).to.equal(before);
      // A minbase Debian has no init: run a long sleep as the container's first process.
      expect((await hostExec(h1, ["lxc-start", "-n", deb, "--", "/bin/sleep", "infinity"])).code).to.equal(0);
      try {
        const att = await hostExec(h1, ["lxc-attach", "-n", deb, "--", "cat", "/etc/debian_version"]);
        expect(att.stdout).to.match(/^12\./);
      } finally {
        await hostExec(h1, ["lxc-stop", "-k", "-n", deb]);
      }
      // Running it changed the tree (as running does); the revert must keep exactly that tree.
      const ran = await manifest(h1, `${LXC}/${deb}/rootfs`);
      await rootfs.del("", outs);
      expect(await manifest(h1, `${LXC}/${deb}/rootfs`)).to.equal(ran);
    });
  });

  describe("a Debian container that booted systemd (journald wrote a NOCOW journal on btrfs)", () => {
    const sd = h1.containers.find((c) => c.kind === "systemd" && c.booted)?.name as string;
    const cl = `${sd}-c`;
    after(() => destroy(h1, cl));

    it("converts losslessly, flags included, with data growth < 1%; a started clone boots with its own name", async () => {
      expect(sd, "the fleet has a booted systemd container").to.be.a("string");
      const before = await manifest(h1, `${LXC}/${sd}/rootfs`);
      const nocow = before.split("\n").filter((l) => /\tflags=[^\t]*C/.test(l));
      const journals = nocow.filter((l) => /^var\/log\/journal\/[0-9a-f]{32}\/system\.journal\t/.test(l));
      expect(journals, "the active journal is a NOCOW file with data").to.have.length(1);
      expect(Number(/\tsize=(\d+)/.exec(journals[0])?.[1])).to.be.greaterThan(0);
      const tree = await treeBytes(sd);
      const usedBefore = await dataUsed();
      const { outs } = await rootfs.create(inputs(h1, sd, { keepBackup: true, onDelete: "revert" }));
      expect(outs).to.include({ rootfsIsSubvolume: true, configBackingStore: "btrfs", adopted: false });
      expect(await manifest(h1, `${LXC}/${sd}/rootfs`)).to.equal(before);
      const growth = (await dataUsed()) - usedBefore;
      console.log(
        `      ${sd}: ${outs.files} entries, ${nocow.length} NOCOW (lsattr C), tree ${tree} bytes; data usage grew by ${growth} bytes`,
      );
      expect(growth).to.be.below(tree / 100);

      const made = await clone.create(
        cloneArgsSchema.parse({
          connection: inputs(h1, sd).connection,
          source: sd,
          name: cl,
          start: true,
        }),
      );
      expect(made.outs.state).to.equal("RUNNING");
      // Until systemd has its bus up, systemctl prints nothing ("Failed to connect to bus" on stderr).
      let up = "";
      await waitFor(
        "systemd in the clone to answer systemctl",
        async () => {
          const r = await hostExec(h1, [
            "lxc-attach",
            "-n",
            cl,
            "--",
            "systemctl",
            "is-system-running",
            "--wait",
          ]);
          up = r.stdout.trim();
          return up !== "";
        },
        120_000,
      );
      expect(up).to.be.oneOf(["running", "degraded"]);
      expect((await hostExec(h1, ["lxc-attach", "-n", cl, "--", "hostname"])).stdout).to.equal(`${cl}\n`);
      // The clone's journald writes its own NOCOW journal; the source's tree does not change.
      await hostExec(h1, [
        "lxc-attach",
        "-n",
        cl,
        "--",
        "sh",
        "-c",
        "logger clone-was-here && journalctl --flush",
      ]);
      expect(await manifest(h1, `${LXC}/${sd}/rootfs`)).to.equal(before);
      await clone.del("", made.outs);

      // Back to a directory, flags and all, as the fleet made it (the kept backup goes too).
      await rootfs.del("", outs);
      expect(await manifest(h1, `${LXC}/${sd}/rootfs`)).to.equal(before);
      await removeKeptBackup(sd);
    });
  });

  describe("a hostile tree", () => {
    const name = "it-hostile";
    const HOSTILE = `
      r=/var/lib/lxc/$1/rootfs
      cd "$r"
      echo dot >.hidden; mkdir -p .dotdir/sub; echo x >.dotdir/sub/.f
      echo same >hl1; ln hl1 hl2; ln hl1 .dotdir/hl3
      echo attr >xa; setfattr -n user.test -v hello xa; setfacl -m u:1234:rwx xa; setfacl -d -m g:5:rx .dotdir
      truncate -s 256M sparse; printf 'tail' >>sparse
      mknod blk b 7 200; mknod chr c 1 7; mkfifo fifo
      python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$r/sock" 2>/dev/null || true
      ln -s /etc/passwd abs-link; ln -s ../../../.. escape-link; ln -s dangling-target dangling
      mkdir "sp ace"; touch "sp ace/f i l e" "$(printf 'new\\nline')" "$(printf 'bad\\377byte')" "q'uote" 'd"q' '$(id)' '\`id\`' '-dash' '*'
      mkdir -p uidrange; touch uidrange/f; chown -R 100000:100000 uidrange; chmod 4755 uidrange/f; chmod 1777 .dotdir
      btrfs subvolume create nested >/dev/null; echo inner >nested/data; mkdir -p nested/deep; btrfs subvolume create nested/deep/sub2 >/dev/null; echo deeper >nested/deep/sub2/d
      touch -h -d '2001-02-03 04:05:06.123456789' abs-link xa
      touch -d '1999-12-31 23:59:59' .
    `;
    before(async () => {
      await makeContainer(h1, name);
      await hostSh(h1, HOSTILE, name);
    });
    after(() => destroy(h1, name));

    it("refuses nested subvolumes by default, listing them, and changes nothing", async () => {
      const before = await dirManifest(h1, name);
      const msg = await rejectionOf(rootfs.create(inputs(h1, name)));
      expect(msg).to.equal(
        `LxcSubvolumeRootfs ${name} on root@${h1.address}:22: nested subvolumes inside ${LXC}/${name}/rootfs: ${LXC}/${name}/rootfs/nested; ` +
          'set nestedSubvolumes: "keep" to move them into the new subvolume. Nothing was changed.',
      );
      expect(await dirManifest(h1, name)).to.equal(before);
    });

    it("converts losslessly with nestedSubvolumes: keep, nested ones staying subvolumes; and reverts losslessly", async () => {
      const before = await manifest(h1, `${LXC}/${name}/rootfs`);
      const { outs } = await rootfs.create(
        inputs(h1, name, { nestedSubvolumes: "keep", onDelete: "revert" }),
      );
      expect(outs.rootfsIsSubvolume).to.equal(true);
      expect(await manifest(h1, `${LXC}/${name}/rootfs`)).to.equal(before);
      const inos = await hostSh(
        h1,
        'stat -c %i "/var/lib/lxc/$1/rootfs" "/var/lib/lxc/$1/rootfs/nested" "/var/lib/lxc/$1/rootfs/nested/deep/sub2"',
        name,
      );
      expect(inos).to.equal("256\n256\n256\n");
      await rootfs.del("", outs);
      expect(await manifest(h1, `${LXC}/${name}/rootfs`)).to.equal(before);
      expect(await hostSh(h1, 'stat -c %i "/var/lib/lxc/$1/rootfs/nested"', name)).to.equal("256\n");
    });
  });

  describe("a tree with inode flags (NOCOW journal, immutable, append-only, compression property)", () => {
    const name = "it-flags";
    // Every flag lsattr shows that btrfs keeps: C (NOCOW), i, a, A (noatime), d (nodump), c (compress),
    // m (no-compress), S (sync), D (dirsync), on files and directories; plus the compression property.
    const FLAGGED = `
      r=/var/lib/lxc/$1/rootfs
      cd "$r"
      mkdir -p var/log/journal/abc && chattr +C var/log/journal var/log/journal/abc
      head -c 8388608 /dev/urandom >var/log/journal/abc/system.journal
      head -c 4194304 /dev/urandom >var/log/journal/abc/user-1000.journal
      ln var/log/journal/abc/user-1000.journal var/log/journal/abc/hardlinked.journal
      mkdir -p var/lib/mysql && echo cow >var/lib/mysql/created-before-C && chattr +C var/lib/mysql
      head -c 2097152 /dev/urandom >var/lib/mysql/ibdata1
      echo secret >etc/immutable && chattr +i etc/immutable
      echo log >var/log/append.log && chattr +a var/log/append.log
      echo a >noatime && chattr +A noatime; echo d >nodump && chattr +d nodump
      echo c >compress && chattr +c compress; echo m >nocompress && chattr +m nocompress
      echo s >syncfile && chattr +S syncfile; mkdir dirsync && chattr +D dirsync
      echo z >zstd && btrfs property set zstd compression zstd
      mkdir "$(printf 'new\\nline')" && head -c 65536 /dev/urandom >"$(printf 'new\\nline')/nocow" 2>/dev/null; chattr +C "$(printf 'new\\nline')"
      : >"$(printf 'new\\nline')/empty-nocow"
      mkdir -p srv/frozen && echo in >srv/frozen/file && touch -d '2001-02-03 04:05:06' srv/frozen && chattr +i srv/frozen
      touch -d '2001-02-03 04:05:06' var/log/journal .
    `;
    before(async () => {
      await makeContainer(h1, name);
      await hostSh(h1, FLAGGED, name);
    });
    after(() => destroy(h1, name));

    it("converts losslessly, flags and property included, reflinking NOCOW files (data grows < 1%), and reverts the same", async () => {
      const before = await manifest(h1, `${LXC}/${name}/rootfs`);
      for (const want of [
        "flags=C",
        "flags=i",
        "flags=a",
        "flags=A",
        "flags=d",
        "flags=c",
        "flags=m",
        "flags=S",
        "flags=D",
      ])
        expect(before, want).to.include(`\t${want}\t`);
      expect(before).to.include("btrfs.compression=0x7a737464");
      const tree = await treeBytes(name);
      const usedBefore = await dataUsed();
      const { outs } = await rootfs.create(inputs(h1, name, { keepBackup: true, onDelete: "revert" }));
      expect(outs).to.include({ rootfsIsSubvolume: true, configBackingStore: "btrfs" });
      expect(await manifest(h1, `${LXC}/${name}/rootfs`)).to.equal(before);
      // The original is kept (keepBackup), so any data block the conversion copied would show up here: data only (small files live inline in metadata).
      const growth = (await dataUsed()) - usedBefore;
      console.log(`      flagged tree: ${tree} bytes; conversion grew data usage by ${growth} bytes`);
      expect(growth).to.be.below(tree / 100);
      expect(await manifest(h1, `${LXC}/${name}/rootfs.pre-btrfs`)).to.equal(before);

      await rootfs.del("", outs);
      expect(await manifest(h1, `${LXC}/${name}/rootfs`)).to.equal(before);
      expect(await hostSh(h1, 'stat -c %i "/var/lib/lxc/$1/rootfs"', name)).to.not.equal("256\n");
      // The kept backup still holds the immutable files; the revert removed its own old subvolume.
      expect(await hostSh(h1, 'ls -A "/var/lib/lxc/$1"', name)).to.equal(
        "config\nconfig.pre-btrfs\nconfig.pre-dir\nrootfs\nrootfs.pre-btrfs\n",
      );
    });

    it("removes an old tree holding immutable and append-only entries (keepBackup: false), leaving nothing", async () => {
      await removeKeptBackup(name);
      const before = await manifest(h1, `${LXC}/${name}/rootfs`);
      const { outs } = await rootfs.create(inputs(h1, name));
      expect(outs.rootfsIsSubvolume).to.equal(true);
      expect(await manifest(h1, `${LXC}/${name}/rootfs`)).to.equal(before);
      expect(await hostSh(h1, 'ls -A "/var/lib/lxc/$1"', name)).to.equal(
        "config\nconfig.pre-btrfs\nrootfs\n",
      );
    });

    it("refuses a rootfs directory that is itself immutable, changing nothing", async () => {
      const other = "it-flags-top";
      await makeContainer(h1, other);
      try {
        await hostSh(h1, 'chattr +i "/var/lib/lxc/$1/rootfs"', other);
        const before = await dirManifest(h1, other);
        const msg = await rejectionOf(rootfs.create(inputs(h1, other)));
        expect(msg).to.equal(
          `LxcSubvolumeRootfs ${other} on root@${h1.address}:22: ${LXC}/${other}/rootfs itself is immutable or append-only (lsattr: ----i-----------------), so it cannot be renamed; clear it with chattr -i -a ${LXC}/${other}/rootfs and run again. Nothing was changed.`,
        );
        expect(await dirManifest(h1, other)).to.equal(before);
      } finally {
        await destroy(h1, other);
      }
    });
  });

  describe("refusals leave the host exactly as it was", () => {
    const name = "it-refuse";
    beforeEach(() => makeContainer(h1, name));
    afterEach(async () => {
      await hostSh(h1, 'umount "/var/lib/lxc/$1/rootfs/mnt" 2>/dev/null || true', name);
      await destroy(h1, name);
    });

    const cases: [string, string, (n: string) => string][] = [
      [
        "a running container",
        'lxc-start -n "$1"',
        (n) => `container ${n} is RUNNING; stop it first or set ifRunning: "restart" or "live"`,
      ],
      [
        "a mount point inside rootfs",
        'mkdir -p "/var/lib/lxc/$1/rootfs/mnt" && mount -t tmpfs none "/var/lib/lxc/$1/rootfs/mnt"',
        (n) => `mount points inside ${LXC}/${n}/rootfs: ${LXC}/${n}/rootfs/mnt; unmount them first`,
      ],
      [
        "two rootfs lines",
        'echo "lxc.rootfs.path = dir:/var/lib/lxc/$1/rootfs" >>"/var/lib/lxc/$1/config"',
        (n) =>
          `${LXC}/${n}/config: the config has 2 lxc.rootfs.path lines (lines ${"X"}); keep exactly one and run again`,
      ],
      [
        "a legacy lxc.rootfs key",
        'sed -i "s/^lxc.rootfs.path =/lxc.rootfs =/" "/var/lib/lxc/$1/config"',
        (n) =>
          `${LXC}/${n}/config: the config uses the legacy key lxc.rootfs (LXC < 3.0); convert it with lxc-update-config -c <config> and run again`,
      ],
      [
        "a symlinked rootfs",
        'mv "/var/lib/lxc/$1/rootfs" "/var/lib/lxc/$1/real" && ln -s real "/var/lib/lxc/$1/rootfs"',
        (n) => `${LXC}/${n}/rootfs is a symlink; expected a directory`,
      ],
      [
        "a missing config",
        'rm "/var/lib/lxc/$1/config"',
        (n) => `${LXC}/${n}/config is missing or unreadable; is ${n} an LXC container?`,
      ],
    ];
    for (const [what, setup, reason] of cases) {
      it(`refuses ${what}`, async () => {
        await hostSh(h1, setup, name);
        // A running container changes its own rootfs; there, compare everything but the live tree.
        const snapshot =
          what === "a running container" ? () => outside(h1, name) : () => dirManifest(h1, name);
        const before = await snapshot();
        const msg = await rejectionOf(rootfs.create(inputs(h1, name)));
        const want = `LxcSubvolumeRootfs ${name} on root@${h1.address}:22: ${reason(name)}. Nothing was changed.`;
        if (want.includes("(lines X)"))
          expect(msg).to.match(new RegExp(`^${reEscape(want).replace("X", "\\d+, \\d+")}$`));
        else expect(msg).to.equal(want);
        expect(await snapshot()).to.equal(before);
        await hostSh(h1, 'lxc-stop -k -n "$1" >/dev/null 2>&1 || true', name);
      });
    }

    it("refuses a missing container", async () => {
      const msg = await rejectionOf(rootfs.create(inputs(h1, "it-no-such")));
      expect(msg).to.equal(
        `LxcSubvolumeRootfs it-no-such on root@${h1.address}:22: container it-no-such does not exist: ${LXC}/it-no-such is missing; check the name and lxcPath. Nothing was changed.`,
      );
    });

    it("refuses when the filesystem is full", async () => {
      const before = await dirManifest(h1, name);
      await fault(h1, "fill");
      try {
        const msg = await rejectionOf(rootfs.create(inputs(h1, name)));
        expect(msg).to.match(
          new RegExp(
            `^LxcSubvolumeRootfs ${name} on root@${reEscape(h1.address)}:22: not enough free space in ${LXC}/${name}: \\d+ bytes available, \\d+ needed for the metadata of \\d+ entries; free some space and run again\\. Nothing was changed\\.$`,
          ),
        );
      } finally {
        await fault(h1, "unfill");
      }
      expect(await dirManifest(h1, name)).to.equal(before);
    });

    it("refuses a container on ext4, naming the filesystem", async () => {
      const c = h3.containers[0].name;
      const before = await manifest(h3, `${LXC}/${c}`);
      const msg = await rejectionOf(rootfs.create(inputs(h3, c)));
      expect(msg).to.equal(
        `LxcSubvolumeRootfs ${c} on root@${h3.address}:22: ${LXC}/${c} is on ext2/ext3, not btrfs; LxcSubvolumeRootfs needs /var/lib/lxc on a btrfs filesystem. Nothing was changed.`,
      );
      expect(await manifest(h3, `${LXC}/${c}`)).to.equal(before);
    });
  });

  describe("restart policy", () => {
    const name = "it-restart";
    before(() => makeContainer(h1, name));
    after(() => destroy(h1, name));
    it("stops, converts and starts a running container again with ifRunning: restart", async () => {
      await hostSh(h1, 'lxc-start -n "$1"', name);
      const { outs } = await rootfs.create(inputs(h1, name, { ifRunning: "restart" }));
      expect(outs).to.include({ rootfsIsSubvolume: true, state: "RUNNING" });
    });
  });

  describe("batched reads", () => {
    const names = ["it-rd-1", "it-rd-2", "it-rd-3"];
    const conn = {
      host: h1.address,
      privateKey: rootKey,
      knownHostsPath: inv.knownHostsPath,
      dialErrorLimit: 1,
      perDialTimeout: 4,
    };
    const readAll = () =>
      Promise.allSettled(
        names.map((n) => rootfs.read("", inputs(h1, n, { connection: conn as never }) as never)),
      );
    before(async () => {
      for (const n of names) await makeContainer(h1, n);
    });
    after(async () => {
      await fault(h1, "restore");
      await fault(h1, "clear");
      await destroy(h1, ...names);
    });

    it("concurrent reads of one host each get their own inspection", async () => {
      const res = await readAll();
      expect(
        res.map((r) => (r.status === "fulfilled" ? r.value.props?.container : r.reason.message)),
      ).to.deep.equal(names);
      expect(
        res.every((r) => r.status === "fulfilled" && r.value.props?.rootfsIsSubvolume === false),
      ).to.equal(true);
    });

    it("a link cut while a batch is in flight fails each waiting read with its own resource name", async () => {
      await readAll(); // the pooled connection is up
      await fault(h1, "latency", 400);
      const pending = readAll();
      // 400 ms each way: the channel opens after ~0.8 s and the batch runs after ~1.6 s; cut while it runs.
      await new Promise((r) => setTimeout(r, 2000));
      await fault(h1, "cut");
      const res = await pending;
      await fault(h1, "restore");
      await fault(h1, "clear");
      const messages = res.map((r) => (r.status === "rejected" ? (r.reason as Error).message : "succeeded"));
      names.forEach((n, i) => {
        expect(messages[i]).to.match(
          new RegExp(
            `^LxcSubvolumeRootfs ${n}: on root@${h1.address.replace(/\./g, "\\.")}:22: [\\s\\S]*(the SSH connection was lost while the command ran|the connection was lost or refused a session)`,
          ),
        );
      });
    });
  });

  describe("crash safety", () => {
    const name = "it-crash";
    beforeEach(async () => {
      await makeContainer(h1, name);
      // Enough entries that the copy is still running when we interrupt it.
      await hostSh(
        h1,
        'cd "/var/lib/lxc/$1/rootfs" && mkdir -p bulk && cd bulk && seq 1 30000 | xargs touch',
        name,
      );
    });
    afterEach(() => destroy(h1, name));

    async function interruptCopy(how: () => Promise<void>): Promise<void> {
      const before = await manifest(h1, `${LXC}/${name}/rootfs`);
      // Observed from the start: the rejection may come while we are still injecting the fault.
      const refused = rejectionOf(
        rootfs.create(
          inputs(h1, name, {
            connection: {
              host: h1.address,
              privateKey: rootKey,
              knownHostsPath: inv.knownHostsPath,
              dialErrorLimit: 1,
              perDialTimeout: 5,
            } as never,
          }),
        ),
      );
      await waitFor(
        "the conversion's copy to start",
        async () =>
          (
            await hostSh(
              h1,
              'pgrep -f "[c]p -a --preserve=xattr .*/it-crash/rootfs/" >/dev/null && echo yes || echo no',
            )
          ).trim() === "yes",
      );
      await how();
      await refused;
      await closeAllConnections();
      // The original is untouched whatever happened; the next run rolls back and converts.
      expect(await manifest(h1, `${LXC}/${name}/rootfs`)).to.equal(before);
      const { outs } = await rootfs.create(inputs(h1, name));
      expect(outs.rootfsIsSubvolume).to.equal(true);
      expect(await manifest(h1, `${LXC}/${name}/rootfs`)).to.equal(before);
      expect(await hostSh(h1, 'ls -A "/var/lib/lxc/$1"', name)).to.equal(
        "config\nconfig.pre-btrfs\nrootfs\n",
      );
    }

    it("recovers when the remote copy is killed", () =>
      interruptCopy(async () => {
        await hostSh(h1, 'pkill -KILL -f "[c]p -a --preserve=xattr .*/it-crash/rootfs/"');
      }));

    it("recovers when sshd dies mid-copy", () =>
      interruptCopy(async () => {
        await fault(h1, "sshd-stop");
        await hostSh(h1, 'pkill -KILL -f "[c]p -a --preserve=xattr .*/it-crash/rootfs/" || true');
        await fault(h1, "sshd-start");
      }));

    it("a rollback sent after a swap whose marker was lost refuses on the host, and the next run finishes the swap", async () => {
      const before = await manifest(h1, `${LXC}/${name}/rootfs`);
      // The swap's first rename happened, and the link died before its marker reached the provider.
      await hostSh(
        h1,
        'P=/var/lib/lxc/$1; printf "op=convert\\nphase=swapping\\nwas_running=0\\n" >$P/.plb-journal; btrfs subvolume create $P/rootfs.plb-new >/dev/null; cp -a --reflink=always $P/rootfs/. $P/rootfs.plb-new/; mv $P/rootfs $P/rootfs.pre-btrfs',
        name,
      );
      const P = `${LXC}/${name}`;
      const rollback = batchArgs(LXC, name, [
        { op: "unswapped", cur: `${P}/rootfs`, old: `${P}/rootfs.pre-btrfs` },
        { op: "discard", path: `${P}/rootfs.plb-new` },
        { op: "journal-clear" },
      ]);
      const r = await hostExec(h1, scriptArgv("step", rollback));
      expect([r.code, r.stdout, r.stderr]).to.deep.equal([
        3,
        "@@step 1 unswapped\n",
        `the swap into ${P}/rootfs had started; not rolling back (the next run finishes it)\n`,
      ]);
      expect(await hostSh(h1, 'ls -A "/var/lib/lxc/$1"', name)).to.equal(
        ".plb-journal\nconfig\nrootfs.plb-new\nrootfs.pre-btrfs\n",
      );
      const { outs } = await rootfs.create(inputs(h1, name));
      expect(outs).to.include({ rootfsIsSubvolume: true, configBackingStore: "btrfs", interrupted: null });
      expect(await manifest(h1, `${LXC}/${name}/rootfs`)).to.equal(before);
    });

    for (const [phase, prep] of [
      [
        "after the copy, before the swap",
        'P=/var/lib/lxc/$1; printf "op=convert\\nphase=copying\\nwas_running=0\\n" >$P/.plb-journal; btrfs subvolume create $P/rootfs.plb-new >/dev/null; cp -a --reflink=always $P/rootfs/. $P/rootfs.plb-new/',
      ],
      [
        "halfway through the swap",
        'P=/var/lib/lxc/$1; printf "op=convert\\nphase=swapping\\nwas_running=0\\n" >$P/.plb-journal; btrfs subvolume create $P/rootfs.plb-new >/dev/null; cp -a --reflink=always $P/rootfs/. $P/rootfs.plb-new/; mv $P/rootfs $P/rootfs.pre-btrfs',
      ],
      [
        "after the swap, before the config",
        'P=/var/lib/lxc/$1; printf "op=convert\\nphase=swapped\\nwas_running=0\\n" >$P/.plb-journal; btrfs subvolume create $P/rootfs.plb-new >/dev/null; cp -a --reflink=always $P/rootfs/. $P/rootfs.plb-new/; mv $P/rootfs $P/rootfs.pre-btrfs; mv $P/rootfs.plb-new $P/rootfs',
      ],
    ] as const) {
      it(`resumes or rolls back a conversion stopped ${phase}`, async () => {
        const before = await manifest(h1, `${LXC}/${name}/rootfs`);
        await hostSh(h1, prep, name);
        const seen = await rootfs.read("", { ...inputs(h1, name) } as rootfs.RootfsOutputs);
        expect(seen.props?.interrupted).to.match(
          /^convert interrupted in phase (copying|swapping|swapped) on root@/,
        );
        const { outs } = await rootfs.create(inputs(h1, name));
        expect(outs).to.include({ rootfsIsSubvolume: true, configBackingStore: "btrfs", interrupted: null });
        expect(await manifest(h1, `${LXC}/${name}/rootfs`)).to.equal(before);
        expect(await hostSh(h1, 'ls -A "/var/lib/lxc/$1"', name)).to.equal(
          "config\nconfig.pre-btrfs\nrootfs\n",
        );
      });
    }
  });
});

function reEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

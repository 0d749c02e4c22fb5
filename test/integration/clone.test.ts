/**
 * LxcSnapshotClone against real hosts: snapshots of converted containers, their identity, their
 * independence from the source, freeze, refusals, adoption, drift and deletion.
 */
import { readFileSync } from "node:fs";
import { expect } from "chai";
import { type CloneInputs, cloneArgsSchema } from "../../provider/clone/inputs";
import * as clone from "../../provider/clone/provider";
import { rootfsArgsSchema } from "../../provider/rootfs/inputs";
import * as rootfs from "../../provider/rootfs/provider";
import { scriptArgv } from "../../provider/transport/remote-scripts";
import { closeAllConnections } from "../../provider/transport/ssh";
import { type FleetHost, hostExec, loadInventory, manifest } from "../support/fleet";
import { destroyContainers, hostSh, makeBusybox, NO_NETWORK, rejectionOf, waitFor } from "../support/host";

const inv = loadInventory();
const h2 = inv.hosts.find((h) => h.name === "h2") as FleetHost;
const key = readFileSync(inv.users.root.privateKeyPath!, "utf8");
const connection = { host: h2.address, privateKey: key, knownHostsPath: inv.knownHostsPath };
const TARGET = `root@${h2.address}:22`;

function args(source: string, name: string, extra: Partial<CloneInputs> = {}): CloneInputs {
  return cloneArgsSchema.parse({ connection, source, name, ...extra });
}

const sh = (script: string, ...a: string[]) => hostSh(h2, script, ...a);

const makeSource = (name: string, extraConfig = "") => makeBusybox(h2, name, extraConfig);

async function convert(name: string, nested: "fail" | "keep" = "fail"): Promise<void> {
  await rootfs.create(rootfsArgsSchema.parse({ connection, container: name, nestedSubvolumes: nested }));
}

const destroy = (...names: string[]) => destroyContainers(h2, ...names);

const state = async (n: string) => (await sh('lxc-info -n "$1" -s | awk "{print \\$2}"', n)).trim();

describe("LxcSnapshotClone on the fleet", function () {
  this.timeout(600_000);
  after(() => closeAllConnections());

  describe("a busybox clone", () => {
    const SRC = "ct-src";
    const CL = "ct-clone";
    const extra =
      // A real second interface (macvlan on the host's eth0) so the MAC matters when the clone runs.
      "lxc.net.1.type = macvlan\nlxc.net.1.link = eth0\nlxc.net.1.macvlan.mode = bridge\nlxc.net.1.hwaddr = 00:16:3e:11:22:33\n" +
      "lxc.mount.entry = /var/lib/lxc/ct-src/shared srv none bind,optional,create=dir 0 0\n" +
      "lxc.log.file = /var/lib/lxc/ct-src/ct-src.log\n";
    let outs: clone.CloneOutputs;
    before(async () => {
      await makeSource(SRC, extra);
      await sh(
        'printf "127.0.0.1 localhost\\n127.0.1.1 ct-src ct-src.example.com # ct-src here\\n" >/var/lib/lxc/ct-src/rootfs/etc/hosts',
      );
      await convert(SRC);
    });
    after(() => destroy(CL, SRC));

    it("is a snapshot of the source with its own name, hostname, MACs, paths and /etc/hosts, and runs", async () => {
      const srcUuid = (
        await sh('btrfs subvolume show /var/lib/lxc/ct-src/rootfs | sed -n "s/^\\s*UUID:\\s*//p"')
      ).trim();
      ({ outs } = await clone.create(args(SRC, CL, { start: true, hostname: "ct-host" })));
      expect(outs).to.include({
        state: "RUNNING",
        parentUuid: srcUuid,
        adopted: false,
        actualHostname: "ct-host",
        rootfsPath: `/var/lib/lxc/${CL}/rootfs`,
      });
      expect(outs.drift).to.deep.equal([]);
      expect(outs.hwaddrs).to.have.length(1);
      expect(outs.hwaddrs[0]).to.not.equal("00:16:3e:11:22:33");
      const cfg = await sh("cat /var/lib/lxc/ct-clone/config");
      expect(cfg).to.include(
        "lxc.mount.entry = /var/lib/lxc/ct-clone/shared srv none bind,optional,create=dir 0 0\n",
      );
      expect(cfg).to.include("lxc.log.file = /var/lib/lxc/ct-clone/ct-src.log\n");
      expect(cfg).to.include("lxc.uts.name = ct-host\n");
      expect(cfg).to.include("lxc.rootfs.path = btrfs:/var/lib/lxc/ct-clone/rootfs\n");
      expect(cfg).to.not.include("/var/lib/lxc/ct-src/");
      expect(await sh("cat /var/lib/lxc/ct-clone/rootfs/etc/hosts")).to.equal(
        "127.0.0.1 localhost\n127.0.1.1 ct-host ct-host.example.com # ct-src here\n",
      );
      expect((await hostExec(h2, ["lxc-attach", "-n", CL, "--", "/bin/hostname"])).stdout).to.equal(
        "ct-host\n",
      );
      const mac = await hostExec(h2, ["lxc-attach", "-n", CL, "--", "cat", "/sys/class/net/eth0/address"]);
      expect(mac.stdout).to.equal(`${outs.hwaddrs[0]}\n`);
      const all = await sh(
        'cat /var/lib/lxc/*/config | sed -n "s/^lxc.net.[0-9]*.hwaddr = //p" | sort | uniq -d',
      );
      expect(all).to.equal("");
    });

    it("does not share writes with the source, either way", async () => {
      await sh(
        "echo from-clone >/var/lib/lxc/ct-clone/rootfs/root/clone-only; echo from-src >/var/lib/lxc/ct-src/rootfs/root/src-only",
      );
      expect(
        await sh("ls /var/lib/lxc/ct-src/rootfs/root; echo --; ls /var/lib/lxc/ct-clone/rootfs/root"),
      ).to.equal("src-only\n--\nclone-only\n");
    });

    it("adopts an existing snapshot of the source on create", async () => {
      const before = await manifest(h2, `/var/lib/lxc/${CL}`, {});
      const again = await clone.create(args(SRC, CL, { start: true, hostname: "ct-host" }));
      expect(again.outs.adopted).to.equal(true);
      expect(again.outs.subvolumeUuid).to.equal(outs.subvolumeUuid);
      expect(await state(CL)).to.equal("RUNNING");
      expect(
        (await manifest(h2, `/var/lib/lxc/${CL}`))
          .split("\n")
          .filter((l) => !l.startsWith("rootfs/"))
          .join("\n"),
      ).to.equal(
        before
          .split("\n")
          .filter((l) => !l.startsWith("rootfs/"))
          .join("\n"),
      );
    });

    it("reports hand-made drift in read and repairs it in update without recreating", async () => {
      await sh(
        'sed -i "s/^lxc.uts.name = .*/lxc.uts.name = someone-else/" /var/lib/lxc/ct-clone/config; lxc-stop -k -n ct-clone',
      );
      const r = await clone.read("", outs);
      expect(r.props?.drift).to.deep.equal([
        "hostname is someone-else, want ct-host",
        "state is STOPPED, want RUNNING",
      ]);
      expect(
        clone.diffClone(r.props ?? {}, args(SRC, CL, { start: true, hostname: "ct-host" })),
      ).to.deep.equal({
        changes: true,
        replaces: [],
        deleteBeforeReplace: false,
      });
      const u = await clone.update(
        "",
        r.props as clone.CloneOutputs,
        args(SRC, CL, { start: true, hostname: "ct-host" }),
      );
      expect(u.outs).to.include({
        state: "RUNNING",
        actualHostname: "ct-host",
        subvolumeUuid: outs.subvolumeUuid,
      });
      const again = await clone.read("", u.outs);
      expect(again.props?.drift).to.deep.equal([]);
    });

    it("updates hostname and running state in place", async () => {
      const u = await clone.update("", outs, args(SRC, CL, { start: false, hostname: "ct-host2" }));
      expect(u.outs).to.include({
        state: "STOPPED",
        actualHostname: "ct-host2",
        subvolumeUuid: outs.subvolumeUuid,
      });
      expect(
        await sh(
          "cat /var/lib/lxc/ct-clone/rootfs/etc/hostname; grep ct-host2 /var/lib/lxc/ct-clone/rootfs/etc/hosts",
        ),
      ).to.equal("ct-host2\n127.0.1.1 ct-host2 ct-host2.example.com # ct-src here\n");
      outs = (await clone.update("", u.outs, args(SRC, CL, { start: true, hostname: "ct-host2" }))).outs;
      expect(outs.state).to.equal("RUNNING");
    });

    it("deletes a running clone, never touching the source, and treats a missing clone as deleted", async () => {
      const src = await manifest(h2, `/var/lib/lxc/${SRC}`);
      await clone.del("", outs);
      expect(await sh('ls /var/lib/lxc | grep -c "^ct-clone$" || true')).to.equal("0\n");
      expect(await manifest(h2, `/var/lib/lxc/${SRC}`)).to.equal(src);
      await clone.del("", outs);
      expect(await clone.read("", outs)).to.deep.equal({});
    });
  });

  describe("refusals", () => {
    const SRC = "ct-plain";
    before(() => makeSource(SRC));
    after(() => destroy(SRC, "ct-taken", "ct-x"));

    it("refuses an unconverted source, pointing at LxcSubvolumeRootfs, and changes nothing", async () => {
      const before = await manifest(h2, "/var/lib/lxc");
      const msg = await rejectionOf(clone.create(args(SRC, "ct-x")));
      expect(msg).to.equal(
        `LxcSnapshotClone ct-x (from ${SRC}) on ${TARGET}: source ${SRC}'s rootfs is not a btrfs subvolume with a btrfs: config, so it cannot be snapshot-cloned; declare an LxcSubvolumeRootfs for ${SRC} and pass it in this clone's dependsOn. Nothing was changed.`,
      );
      expect(await manifest(h2, "/var/lib/lxc")).to.equal(before);
    });

    it("refuses a name taken by a container that is not a snapshot of the source", async () => {
      await convert(SRC);
      await makeSource("ct-taken");
      const before = await manifest(h2, "/var/lib/lxc/ct-taken");
      const msg = await rejectionOf(clone.create(args(SRC, "ct-taken")));
      expect(msg).to.equal(
        `LxcSnapshotClone ct-taken (from ${SRC}) on ${TARGET}: a container named ct-taken already exists and is not a snapshot of ${SRC}; choose another name or remove it. Nothing was changed.`,
      );
      expect(await manifest(h2, "/var/lib/lxc/ct-taken")).to.equal(before);
    });

    it("refuses a running source with ifSourceRunning: fail", async () => {
      await sh('lxc-start -n "$1"', SRC);
      try {
        const msg = await rejectionOf(clone.create(args(SRC, "ct-x")));
        expect(msg).to.equal(
          `LxcSnapshotClone ct-x (from ${SRC}) on ${TARGET}: source ${SRC} is RUNNING; stop it, or set ifSourceRunning: "freeze" or "restart". Nothing was changed.`,
        );
        expect(await sh('ls /var/lib/lxc | grep -c "^ct-x$" || true')).to.equal("0\n");
      } finally {
        await sh('lxc-stop -k -n "$1"', SRC);
      }
    });
  });

  describe("a running source", () => {
    const SRC = "ct-live";
    before(async () => {
      await makeSource(SRC);
      await convert(SRC);
      await sh('lxc-start -n "$1"', SRC);
    });
    after(() => destroy("ct-frozen", "ct-restarted", SRC));

    it("freeze: the source keeps running and ends unfrozen", async () => {
      const { outs } = await clone.create(args(SRC, "ct-frozen", { ifSourceRunning: "freeze" }));
      expect(outs.state).to.equal("STOPPED");
      expect(await state(SRC)).to.equal("RUNNING");
    });

    it("freeze: the source is unfrozen even when the snapshot fails midway", async () => {
      // lxc-clone does not exist on LXC 5: the snapshot fails after the freeze.
      const make = ["make", "/var/lib/lxc", SRC, "ct-broken", "freeze", "lxc-clone", "0"];
      const r = await hostExec(h2, scriptArgv("clone", make));
      expect(r.code).to.not.equal(0);
      expect(await state(SRC)).to.equal("RUNNING");
      expect(await sh('ls /var/lib/lxc | grep -c "^ct-broken$" || true')).to.equal("0\n");
      // The create's marker stays until the provider's destroy, which removes it.
      const marker = 'ls -A /var/lib/lxc | grep -c "^.plb-making-ct-broken$" || true';
      expect(await sh(marker)).to.equal("1\n");
      expect(
        (await hostExec(h2, scriptArgv("clone", ["destroy", "/var/lib/lxc", SRC, "ct-broken"]))).code,
      ).to.equal(0);
      expect(await sh(marker)).to.equal("0\n");
    });

    it("restart: stops the source for the snapshot and starts it again", async () => {
      const { outs } = await clone.create(args(SRC, "ct-restarted", { ifSourceRunning: "restart" }));
      expect(outs.parentUuid).to.match(/^[0-9a-f-]{36}$/);
      expect(await state(SRC)).to.equal("RUNNING");
    });
  });

  describe("a source whose rootfs plants symlinks for our temp files", () => {
    after(() => destroy("ct-plant-c", "ct-plant"));

    it("writes /etc/hosts and /etc/hostname of the clone without following them; the host file is untouched", async () => {
      await makeSource("ct-plant");
      await sh(
        'printf "secret\\n" >/var/lib/lxc/plb-victim && chmod 600 /var/lib/lxc/plb-victim && cd /var/lib/lxc/ct-plant/rootfs/etc && printf "127.0.1.1 ct-plant\\n" >hosts && ln -s /var/lib/lxc/plb-victim hosts.plb-tmp && ln -s /var/lib/lxc/plb-victim hostname.plb-tmp',
      );
      await convert("ct-plant");
      await clone.create(args("ct-plant", "ct-plant-c"));
      expect(await sh('stat -c "%a %s" /var/lib/lxc/plb-victim; cat /var/lib/lxc/plb-victim')).to.equal(
        "600 7\nsecret\n",
      );
      expect(
        await sh("cat /var/lib/lxc/ct-plant-c/rootfs/etc/hosts /var/lib/lxc/ct-plant-c/rootfs/etc/hostname"),
      ).to.equal("127.0.1.1 ct-plant-c\nct-plant-c\n");
      expect(await sh("ls -A /var/lib/lxc/ct-plant-c/rootfs/etc | grep -c plb-tmp || true")).to.equal("0\n");
      await sh("rm -f /var/lib/lxc/plb-victim");
    });
  });

  describe("clones never write the host, whatever symlinks the source holds", () => {
    // Files this test owns on the machine, outside every fleet host's /var/lib/lxc (the fleet hosts share
    // the machine's filesystem but for /var/lib/lxc): a symlink in a source rootfs that LXC or we follow
    // would change them.
    const CANARY = "/var/tmp/plb-canary";
    const canaries = ["hostname", "hosts", "tmp", "etc/hostname", "etc/hosts"];
    const canaryState = () =>
      sh(
        'cd "$1" && for f in hostname hosts tmp etc/hostname etc/hosts; do printf "%s %s %s\\n" "$f" "$(stat -c "%s %.9Y %a" "$f")" "$(sha256sum <"$f" | cut -c1-16)"; done',
        CANARY,
      );
    let pristine = "";
    const OTHER = "ct-sym-other";
    before(async () => {
      await sh(
        'rm -rf "$1" && mkdir -p "$1/etc" && for f in hostname hosts tmp etc/hostname etc/hosts; do printf "host file %s\\n" "$f" >"$1/$f"; done && touch -d "2001-01-01 00:00:00" "$1"/* "$1"/etc/*',
        CANARY,
      );
      await makeSource(OTHER);
      await sh('printf "other-secret\\n" >"/var/lib/lxc/$1/rootfs/etc/hostname"', OTHER);
      pristine = await canaryState();
      expect(pristine.split("\n").filter(Boolean)).to.have.length(canaries.length);
    });
    after(async () => {
      await sh('rm -rf "$1"', CANARY);
      await destroy(OTHER);
    });

    const ok: [string, string][] = [
      ["/etc/hostname -> an absolute host file", `ln -sf ${CANARY}/hostname etc/hostname`],
      [
        "/etc/hostname -> a relative path out to a host file",
        `ln -sf ../../../../../../${CANARY.slice(1)}/hostname etc/hostname`,
      ],
      [
        "/etc/hostname -> another container's /etc/hostname",
        `ln -sf /var/lib/lxc/${OTHER}/rootfs/etc/hostname etc/hostname`,
      ],
      ["/etc/hosts -> an absolute host file", `ln -sf ${CANARY}/hosts etc/hosts`],
      [
        "our temp names -> host files",
        `ln -s ${CANARY}/tmp etc/hostname.plb-tmp && ln -s ${CANARY}/tmp etc/hosts.plb-tmp && ln -s ${CANARY}/tmp config.plb-tmp`,
      ],
    ];
    for (const [what, plant] of ok) {
      it(`${what}: the clone gets its own hostname; no host file or other container changes`, async () => {
        const src = "ct-sym";
        const cl = "ct-sym-c";
        try {
          await makeSource(src);
          await sh(`cd "/var/lib/lxc/$1/rootfs" && printf "127.0.1.1 ct-sym\\n" >etc/hosts && ${plant}`, src);
          await convert(src);
          const { outs } = await clone.create(args(src, cl));
          expect(outs.state).to.equal("STOPPED");
          expect(await canaryState()).to.equal(pristine);
          expect(await sh('cat "/var/lib/lxc/$1/rootfs/etc/hostname"', OTHER)).to.equal("other-secret\n");
          expect(await sh('grep "^lxc.uts.name" "/var/lib/lxc/$1/config"', cl)).to.equal(
            `lxc.uts.name = ${cl}\n`,
          );
          // /etc/hostname is a regular file with the clone's name (a symlink there was replaced, not followed).
          expect(
            await sh(
              'stat -c %F "/var/lib/lxc/$1/rootfs/etc/hostname" && cat "/var/lib/lxc/$1/rootfs/etc/hostname"',
              cl,
            ),
          ).to.equal(`regular file\n${cl}\n`);
          // The source keeps its own name (the busybox template quotes it) and its symlinks.
          expect(await sh('grep "^lxc.uts.name" "/var/lib/lxc/$1/config"', src)).to.equal(
            `lxc.uts.name = "${src}"\n`,
          );
        } finally {
          await destroy(cl, src);
        }
      });
    }

    it("/etc -> a host directory: a clear refusal naming the file, nothing left behind, no host file changed", async () => {
      const src = "ct-sym";
      const cl = "ct-sym-c";
      try {
        await makeSource(src);
        await sh(`cd "/var/lib/lxc/$1/rootfs" && mv etc etc.real && ln -s ${CANARY}/etc etc`, src);
        await convert(src);
        const msg = await rejectionOf(clone.create(args(src, cl)));
        expect(msg).to.include(
          `/var/lib/lxc/${cl}/rootfs/etc is a symlink or not a directory in the source's snapshot; the clone's /etc/hostname cannot be written without following it: make /etc a directory in ${src} and run again`,
        );
        expect(await canaryState()).to.equal(pristine);
        expect(
          await sh('ls -A /var/lib/lxc | grep -c -e "^$1\\$" -e "^.plb-making-$1\\$" || true', cl),
        ).to.equal("0\n");
      } finally {
        await destroy(cl, src);
      }
    });

    it("a started clone of a source with a symlinked /etc/hostname says its own name inside", async () => {
      const src = "ct-sym";
      const cl = "ct-sym-run";
      try {
        await makeSource(src, NO_NETWORK);
        await sh(`cd "/var/lib/lxc/$1/rootfs" && ln -sf ${CANARY}/etc/hostname etc/hostname`, src);
        await convert(src);
        const { outs } = await clone.create(args(src, cl, { start: true }));
        expect(outs.state).to.equal("RUNNING");
        expect((await hostExec(h2, ["lxc-attach", "-n", cl, "--", "hostname"])).stdout).to.equal(`${cl}\n`);
        expect(await canaryState()).to.equal(pristine);
      } finally {
        await destroy(cl, src);
      }
    });
  });

  describe("nested subvolumes and Debian", () => {
    after(() => destroy("ct-nested-c", "ct-nested", "deb2-c", "ct-deb"));

    it("a clone contains the data of subvolumes nested in the source, as subvolumes", async () => {
      await makeSource("ct-nested");
      await sh(
        "cd /var/lib/lxc/ct-nested/rootfs && btrfs subvolume create data >/dev/null && echo payload >data/f && mkdir -p data/x && btrfs subvolume create data/x/inner >/dev/null && echo deep >data/x/inner/g",
      );
      await convert("ct-nested", "keep");
      await clone.create(args("ct-nested", "ct-nested-c"));
      expect(
        await sh(
          "cat /var/lib/lxc/ct-nested-c/rootfs/data/f /var/lib/lxc/ct-nested-c/rootfs/data/x/inner/g; stat -c %i /var/lib/lxc/ct-nested-c/rootfs/data /var/lib/lxc/ct-nested-c/rootfs/data/x/inner",
        ),
      ).to.equal("payload\ndeep\n256\n256\n");
    });

    it("clones a converted Debian container that starts with its own hostname", async () => {
      const fleetDeb = h2.containers.find((c) => c.kind === "debian")?.name as string;
      const deb = "ct-deb";
      // A full copy of the fleet's Debian container (left as it was for other tests), with a first
      // process, since a minbase Debian has no init.
      await sh(
        'lxc-copy -n "$1" -N "$2" && echo "lxc.init.cmd = /bin/sleep infinity" >>"/var/lib/lxc/$2/config"',
        fleetDeb,
        deb,
      );
      await convert(deb);
      const { outs } = await clone.create(args(deb, "deb2-c", { start: true }));
      expect(outs.state).to.equal("RUNNING");
      // lxc-copy writes /etc/hostname without a newline; we leave a correct file alone.
      expect(
        (await hostExec(h2, ["lxc-attach", "-n", "deb2-c", "--", "cat", "/etc/hostname"])).stdout.trim(),
      ).to.equal("deb2-c");
      await sh("echo x >/var/lib/lxc/deb2-c/rootfs/etc/clone-marker");
      expect(
        await sh(`test -e /var/lib/lxc/${deb}/rootfs/etc/clone-marker && echo shared || echo separate`),
      ).to.equal("separate\n");
    });
  });

  describe("a name taken between the inspection and the snapshot", () => {
    const SRC = "ct-shell-src";
    const CL = "ct-shell-taken";
    const HOLD = `/run/plb-hold/${CL}.snapshot`;
    before(async () => {
      await makeSource(SRC);
      await convert(SRC);
    });
    after(async () => {
      await sh('rm -f "$1" "$1.reached"', HOLD);
      await destroy(CL, SRC);
    });

    it("is refused before anything is written: no create marker, the other directory untouched", async () => {
      // The failpoint holds make just before its check; the name is taken meanwhile.
      await sh('mkdir -p /run/plb-hold && rm -f "$1.reached" && : >"$1"', HOLD);
      const refused = rejectionOf(clone.create(args(SRC, CL)));
      await waitFor(
        `${HOLD}.reached`,
        async () => (await sh('[ -e "$1.reached" ] && echo y || true', HOLD)) === "y\n",
      );
      await sh('mkdir "/var/lib/lxc/$1" && echo theirs >"/var/lib/lxc/$1/file"', CL);
      await sh('rm -f "$1"', HOLD);
      expect(await refused).to.equal(
        `LxcSnapshotClone ${CL} (from ${SRC}) on ${TARGET}: a container named ${CL} appeared while the clone ` +
          "was being made; choose another name or remove it. Nothing was changed.",
      );
      expect(await sh('ls -A /var/lib/lxc | grep -c -e "^.plb-making-$1$" || true', CL)).to.equal("0\n");
      expect(await sh('ls -A "/var/lib/lxc/$1"; cat "/var/lib/lxc/$1/file"', CL)).to.equal("file\ntheirs\n");
    });
  });
});

/**
 * examples/sharded with the real Pulumi CLI: three shards (three groups of containers on h4, each in its own
 * lxcPath) run as three stacks at once through the Automation API. The first run has one shard whose update
 * fails (a running container) and one with a host that cannot be listed; the others are not held up, the
 * report names each failure and the exit code is 1. After the fixes every shard succeeds, a refreshed
 * preview changes nothing, and destroy reverts each shard's containers. Host state is checked after each.
 *
 * All of it twice: with the state in a local directory (`file://`), and in the fleet's PostgreSQL database
 * (`postgres://`, a team's shared backend), where two runners on the same shard at once are tried too: the
 * second is refused by the stack's lock, and its report says who holds it and how to clear a stale one.
 *
 * Only containers this test creates are touched: `shd-*` under /var/lib/lxc/shard-{a,b,b-extra,c} on h4.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { expect } from "chai";
import type { ShardReport } from "../../examples/sharded/index";
import { lockedMessage } from "../../examples/sharded/lock";
import { getHost, loadInventory, run } from "../support/fleet";
import { hostSh, waitFor } from "../support/host";
import { type PostgresState, postgresState } from "../support/postgres";
import { exportStack, pulumiEnv, runPulumi } from "../support/pulumi";
import { linkPackage, repoRoot } from "../support/repo";

const inv = loadInventory();
const h4 = getHost("h4", inv);
const ROOT = "/var/lib/lxc";
const DIRS = ["shard-a", "shard-b", "shard-b-extra", "shard-c"].map((d) => `${ROOT}/${d}`);

// Stops our containers, deletes the subvolumes among their rootfs trees, then the directories.
const CLEANUP = `
for d in ${DIRS.join(" ")}; do
  [ -d "$d" ] || continue
  for c in "$d"/shd-*; do [ -d "$c" ] && lxc-stop -k -P "$d" -n "\${c##*/}" >/dev/null 2>&1; done
  for r in "$d"/shd-*/rootfs "$d"/shd-*/rootfs.*; do
    if [ -d "$r" ] && [ ! -L "$r" ] && [ "$(stat -c %i "$r")" = 256 ]; then btrfs subvolume delete "$r" >/dev/null || exit 1; fi
  done
  rm -rf "$d" || exit 1
done`;

const SETUP = `
set -e
mkdir -p ${ROOT}/shard-a ${ROOT}/shard-b ${ROOT}/shard-c
for c in shd-a1 shd-a2 shd-a3; do lxc-create -P ${ROOT}/shard-a -n $c -t busybox >/dev/null 2>&1; done
# Already a subvolume with a btrfs: config: adopted, not converted.
lxc-create -P ${ROOT}/shard-b -n shd-b1 -B btrfs -t busybox >/dev/null 2>&1
lxc-create -P ${ROOT}/shard-b -n shd-b2 -t busybox >/dev/null 2>&1
# A rootfs that is a symlink: skipped, with the reason.
lxc-create -P ${ROOT}/shard-b -n shd-b3 -t busybox >/dev/null 2>&1
mv ${ROOT}/shard-b/shd-b3/rootfs ${ROOT}/shard-b/shd-b3/rootfs.real
ln -s rootfs.real ${ROOT}/shard-b/shd-b3/rootfs
for c in shd-c1 shd-c2; do lxc-create -P ${ROOT}/shard-c -n $c -t busybox >/dev/null 2>&1; done
# Running: its conversion is refused (ifRunning "fail"), after shd-c1 converted (one at a time, by name).
lxc-start -P ${ROOT}/shard-c -n shd-c2`;

const sh = (script: string) => hostSh(h4, script);

/** One line per container: rootfs kind, subvolume or not, the config's rootfs line, the LXC state. */
async function hostState(): Promise<string[]> {
  const out = await sh(`
for d in ${DIRS.join(" ")}; do
  for c in "$d"/shd-*; do
    [ -d "$c" ] || continue
    n=\${c##*/}
    if [ -L "$c/rootfs" ]; then k=symlink; elif [ "$(stat -c %i "$c/rootfs")" = 256 ]; then k=subvolume; else k=dir; fi
    printf '%s %s %s %s\\n' "\${d##*/}/$n" "$k" "$(sed -n 's/^lxc.rootfs.path = //p' "$c/config")" "$(lxc-info -P "$d" -n "$n" -s | awk '{print $2}')"
  done
done`);
  return out.trim().split("\n");
}

const line = (dir: string, name: string, kind: string, store: string, state = "STOPPED") =>
  `${dir}/${name} ${kind} ${store}:${ROOT}/${dir}/${name}/rootfs ${state}`;
const symlinkB3 = `shard-b/shd-b3 symlink dir:${ROOT}/shard-b/shd-b3/rootfs STOPPED`;

/** hostState() once every container is stopped and its rootfs is `kind` (shd-b3's symlink aside). */
const everyContainer = (kind: "subvolume" | "dir") =>
  [
    ["shard-a", "shd-a1"],
    ["shard-a", "shd-a2"],
    ["shard-a", "shd-a3"],
    ["shard-b", "shd-b1"],
    ["shard-b", "shd-b2"],
    ["shard-b", "shd-b3"],
    ["shard-b-extra", "shd-b4"],
    ["shard-c", "shd-c1"],
    ["shard-c", "shd-c2"],
  ].map(([dir, name]) =>
    name === "shd-b3" ? symlinkB3 : line(dir, name, kind, kind === "subvolume" ? "btrfs" : "dir"),
  );

const PROJECT = "lxc-btrfs-sharded";
const SHARDS = ["shard-a", "shard-b", "shard-c"];

for (const backend of ["file", "postgres"] as const)
  describe(`examples/sharded: one stack per shard through the Automation API, with the real CLI, state in ${backend === "file" ? "a directory" : "PostgreSQL"}`, function () {
    this.timeout(900_000);
    const cwd = path.join(repoRoot(), "examples", "sharded");
    const runner = path.join(repoRoot(), "dist", "examples", "sharded", "index.js");
    let tmp: string;
    let env: NodeJS.ProcessEnv;
    let pg: PostgresState | undefined;

    before(async () => {
      linkPackage();
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), "plb-sharded-"));
      // postgres: the state in a table of its own; the directory given to pulumiEnv must stay unused.
      pg = backend === "postgres" ? postgresState("sharded", inv) : undefined;
      env = pulumiEnv({ stateDir: path.join(tmp, "state"), extra: pg?.env });
      await sh(CLEANUP); // what an interrupted earlier run of this test left
      await sh(SETUP);
    });

    after(async () => {
      await sh(CLEANUP);
      expect(await sh(`ls -d ${DIRS.join(" ")} 2>/dev/null || true`)).to.equal("");
      if (pg) {
        // Everything went to the database: the directory stayed empty.
        expect(fs.readdirSync(path.join(tmp, "state"))).to.deep.equal([]);
        await pg.drop();
      }
      fs.rmSync(tmp, { recursive: true, force: true });
    });

    /** Every stack of the backend, as `pulumi stack ls --all` lists them. */
    const stacks = async () =>
      (
        JSON.parse((await runPulumi(["stack", "ls", "--all", "--json"], { cwd: tmp, env })).stdout) as {
          name: string;
        }[]
      )
        .map((x) => x.name)
        .sort();
    const exportOf = (shard: string) =>
      exportStack({ cwd: tmp, env, stack: `organization/${PROJECT}/${shard}` });

    const writeShards = (name: string, content: unknown) => {
      const file = path.join(tmp, name);
      fs.writeFileSync(file, JSON.stringify(content, null, 2));
      return file;
    };
    const host = (name: string, dir: string) => ({
      name,
      connection: { host: h4.address },
      lxcPath: `${ROOT}/${dir}`,
    });
    const shardsFile = () =>
      writeShards("shards.json", {
        concurrency: 3,
        connection: {
          user: "root",
          privateKeyPath: inv.users.root.privateKeyPath,
          knownHostsPath: inv.knownHostsPath,
        },
        conversion: { onDelete: "revert" },
        shards: [
          { name: "shard-a", hosts: [host("h4", "shard-a")] },
          { name: "shard-b", hosts: [host("h4", "shard-b"), host("h4-extra", "shard-b-extra")] },
          { name: "shard-c", hosts: [host("h4", "shard-c")] },
        ],
      });

    let runs = 0;
    async function runExample(file: string, args: string[]) {
      // Its own report file: two runs may be under way at once.
      const report = path.join(tmp, `report-${args.join("-")}-${++runs}.json`);
      const res = await run(
        "node",
        [runner, file, ...args, "--json", report, "--log-dir", path.join(tmp, "logs")],
        {
          cwd,
          env,
          timeoutMs: 600_000,
        },
      );
      const reports = fs.existsSync(report)
        ? (JSON.parse(fs.readFileSync(report, "utf8")) as ShardReport[])
        : [];
      fs.rmSync(report, { force: true });
      const where = `examples/sharded ${args.join(" ")} (exit ${res.code})\n--- stdout ---\n${res.stdout}\n--- stderr ---\n${res.stderr}`;
      return { ...res, reports, where };
    }

    /** The reports without their timings, which the test checks separately. */
    const outcome = (reports: ShardReport[]) =>
      reports.map(({ started: _s, durationMs: _d, ...rest }) => rest);
    /** The report of one shard's `up` without its timings: a success that converted nothing unless `r` says otherwise. */
    const upReport = (shard: string, hosts: string[], r: Partial<ShardReport>) => ({
      shard,
      action: "up",
      hosts,
      ok: true,
      converted: [],
      adopted: [],
      skipped: [],
      failed: [],
      changes: {},
      ...r,
    });

    function logDurations(what: string, reports: ShardReport[]) {
      console.log(
        `      ${what}: ${reports.map((r) => `${r.shard} ${(r.durationMs / 1000).toFixed(1)}s`).join(", ")}`,
      );
    }

    it("refuses a SHARDS.json that puts a host in two shards or holds a password, before any stack runs", async () => {
      const base = {
        connection: { host: h4.address, privateKeyPath: inv.users.root.privateKeyPath },
        shards: [
          { name: "one", hosts: [{ name: "h4", lxcPath: `${ROOT}/shard-a` }] },
          { name: "two", hosts: [{ name: "h4", lxcPath: `${ROOT}/shard-a/` }] },
        ],
      };
      const twice = writeShards("twice.json", base);
      let res = await runExample(twice, ["up"]);
      expect(res.code, res.where).to.equal(2);
      expect(res.stderr, res.where).to.equal(
        `${twice}: shard two, host h4: ${h4.address}:22 ${ROOT}/shard-a is already in shard one: a container ` +
          "belongs to one stack; give each shard its own hosts or lxcPath\n",
      );
      const secret = "do-not-print-me";
      const withPassword = writeShards("password.json", {
        ...base,
        shards: [{ name: "one", hosts: [{ name: "h4", connection: { password: secret } }] }],
      });
      res = await runExample(withPassword, ["up"]);
      expect(res.code, res.where).to.equal(2);
      expect(res.stderr, res.where).to.equal(
        `${withPassword}: shard one, host h4: connection.password is not read from this file: use privateKeyPath or agentSocketPath\n`,
      );
      expect(res.stdout + res.stderr).to.not.include(secret);
      // Nothing ran: no stack was created.
      expect(await stacks(), res.where).to.deep.equal([]);
    });

    it("runs 3 shards at once, reports each, fails only the broken ones, then up, preview and destroy per shard", async () => {
      const file = shardsFile();
      const runningC2 = `shard-c/shd-c2 dir dir:${ROOT}/shard-c/shd-c2/rootfs RUNNING`;

      // 1. shard-c's second container is running and shard-b's extra host has no lxcPath yet.
      const started = Date.now();
      const first = await runExample(file, ["up"]);
      const wall = Date.now() - started;
      expect(first.code, first.where).to.equal(1);
      const c2Error =
        `h4/shd-c2: LxcSubvolumeRootfs shd-c2 on root@${h4.address}:22: container shd-c2 is RUNNING; ` +
        'stop it first or set ifRunning: "restart" or "live". Nothing was changed.';
      const extraError =
        `h4-extra: discovery: on root@${h4.address}:22: \`plb-discover ${ROOT}/shard-b-extra\` exited with code 3: ` +
        `lxcpath ${ROOT}/shard-b-extra does not exist`;
      expect(outcome(first.reports), first.where).to.deep.equal([
        upReport("shard-a", ["h4"], {
          converted: ["h4/shd-a1", "h4/shd-a2", "h4/shd-a3"],
          changes: { create: 5 }, // the stack, the rollout and 3 conversions
        }),
        upReport("shard-b", ["h4", "h4-extra"], {
          ok: false,
          converted: ["h4/shd-b2"],
          adopted: ["h4/shd-b1"],
          skipped: ["h4/shd-b3 (rootfs is symlink)"],
          failed: [extraError],
          changes: { create: 4 },
          error: `1 host(s) could not be listed; fix them and run again: ${extraError}`,
        }),
        upReport("shard-c", ["h4"], {
          ok: false,
          converted: ["h4/shd-c1"],
          failed: [c2Error],
          changes: { create: 3 },
          error: c2Error,
        }),
      ]);
      // All three ran at once: each started before any other finished.
      const spans = first.reports.map((r) => [Date.parse(r.started), Date.parse(r.started) + r.durationMs]);
      const firstEnd = Math.min(...spans.map((s) => s[1]));
      for (const [i, s] of spans.entries())
        expect(s[0], `${first.reports[i].shard} started after another shard had finished`).to.be.below(
          firstEnd,
        );
      expect(Math.max(...first.reports.map((r) => r.durationMs))).to.be.at.most(wall);
      expect(first.stdout, first.where).to.match(
        /^shard +hosts +converted +adopted +skipped +failed +changes +time +result\n/,
      );
      expect(first.stdout, first.where).to.match(/\nshard-a +h4 +3 +0 +0 +0 +create=5 +\d+\.\ds +ok\n/);
      expect(first.stdout, first.where).to.match(
        /\nshard-b +h4,h4-extra +1 +1 +1 +1 +create=4 +\d+\.\ds +FAILED\n/,
      );
      expect(first.stdout, first.where).to.match(/\nshard-c +h4 +1 +0 +0 +1 +create=3 +\d+\.\ds +FAILED\n/);
      expect(first.stdout, first.where).to.include(`\nshard shard-c (h4) failed:\n${c2Error}\n`);
      expect(first.stdout, first.where).to.include("\nup: 1 of 3 shard(s) succeeded in ");
      logDurations("up, 2 shards failing", first.reports);
      expect(await hostState()).to.deep.equal([
        line("shard-a", "shd-a1", "subvolume", "btrfs"),
        line("shard-a", "shd-a2", "subvolume", "btrfs"),
        line("shard-a", "shd-a3", "subvolume", "btrfs"),
        line("shard-b", "shd-b1", "subvolume", "btrfs"),
        line("shard-b", "shd-b2", "subvolume", "btrfs"),
        symlinkB3,
        line("shard-c", "shd-c1", "subvolume", "btrfs"),
        runningC2,
      ]);

      // 2. Fixed: shd-c2 stopped, the extra host's lxcPath made, with a container. Only the new work runs.
      await sh(
        `lxc-stop -k -P ${ROOT}/shard-c -n shd-c2 && mkdir ${ROOT}/shard-b-extra && ` +
          `lxc-create -P ${ROOT}/shard-b-extra -n shd-b4 -t busybox >/dev/null 2>&1`,
      );
      const second = await runExample(file, ["up"]);
      expect(second.code, second.where).to.equal(0);
      expect(outcome(second.reports), second.where).to.deep.equal([
        upReport("shard-a", ["h4"], {
          converted: ["h4/shd-a1", "h4/shd-a2", "h4/shd-a3"],
          changes: { same: 5 },
        }),
        upReport("shard-b", ["h4", "h4-extra"], {
          converted: ["h4-extra/shd-b4", "h4/shd-b2"],
          adopted: ["h4/shd-b1"],
          skipped: ["h4/shd-b3 (rootfs is symlink)"],
          changes: { create: 1, same: 4 },
        }),
        upReport("shard-c", ["h4"], {
          converted: ["h4/shd-c1", "h4/shd-c2"],
          changes: { create: 1, same: 3 },
        }),
      ]);
      expect(second.stdout, second.where).to.match(/\nup: 3 of 3 shard\(s\) succeeded in \d+\.\ds\n$/);
      logDurations("up, all succeeding", second.reports);
      const converted = everyContainer("subvolume");
      expect(await hostState()).to.deep.equal(converted);

      // 3. A refreshed preview of every shard: each stack reads its own containers, and nothing changes.
      const preview = await runExample(file, ["preview", "--refresh"]);
      expect(preview.code, preview.where).to.equal(0);
      expect(
        preview.reports.map((r) => [r.shard, r.ok, r.changes]),
        preview.where,
      ).to.deep.equal([
        ["shard-a", true, { same: 5 }],
        ["shard-b", true, { same: 5 }],
        ["shard-c", true, { same: 4 }],
      ]);
      logDurations("preview --refresh", preview.reports);
      expect(await hostState()).to.deep.equal(converted);

      // 4. Destroy each shard: onDelete "revert" turns every container back into a plain directory.
      const destroy = await runExample(file, ["destroy"]);
      expect(destroy.code, destroy.where).to.equal(0);
      expect(
        destroy.reports.map((r) => [r.shard, r.ok, r.changes, r.error]),
        destroy.where,
      ).to.deep.equal([
        ["shard-a", true, { delete: 5 }, undefined],
        ["shard-b", true, { delete: 5 }, undefined],
        ["shard-c", true, { delete: 4 }, undefined],
      ]);
      logDurations("destroy", destroy.reports);
      expect(await hostState()).to.deep.equal(everyContainer("dir"));
      // Each shard's stack is empty now.
      expect(await stacks()).to.deep.equal(SHARDS.map((s) => `organization/${PROJECT}/${s}`));
      for (const s of SHARDS)
        expect((await exportOf(s)).deployment.resources ?? [], `stack ${s} after destroy`).to.deep.equal([]);
      if (pg) {
        // The stacks live in the table: one checkpoint row per shard, and no lock left.
        const keys = (await pg.rows()).map((r) => r.key);
        for (const s of SHARDS)
          expect(keys, s).to.include(`${inv.postgres.database}/.pulumi/stacks/${PROJECT}/${s}.json`);
        expect(keys.filter((k) => k.includes("/.pulumi/locks/"))).to.deep.equal([]);
      }
    });

    if (backend === "postgres")
      it("refuses a second runner on the same shard while the first holds its lock, and says how to clear a stale one", async () => {
        if (!pg) throw new Error("no database");
        const db = pg;
        const file = writeShards("shard-a.json", {
          connection: {
            user: "root",
            privateKeyPath: inv.users.root.privateKeyPath,
            knownHostsPath: inv.knownHostsPath,
          },
          conversion: { onDelete: "revert" },
          shards: [{ name: "shard-a", hosts: [host("h4", "shard-a")] }],
        });
        const locks = async () =>
          (await db.rows()).filter((r) => r.key.includes(`/.pulumi/locks/organization/${PROJECT}/shard-a/`));
        expect(await locks()).to.deep.equal([]);

        // The first runner converts shard-a's three containers. Once its lock is in the table, its pulumi (the
        // lock's pid) is paused, so that the lock is held for as long as the second runner needs to try.
        const firstRun = runExample(file, ["up"]);
        let holder: { pid: number; username: string; hostname: string; timestamp: string } | undefined;
        await waitFor(
          "the first runner's lock on shard-a",
          async () => {
            const l = await locks();
            if (l.length === 1) holder = JSON.parse(l[0].text);
            return l.length === 1;
          },
          120_000,
        );
        if (!holder) throw new Error("no lock");
        process.kill(holder.pid, "SIGSTOP");
        let second: Awaited<ReturnType<typeof runExample>>;
        try {
          second = await runExample(file, ["up"]);
        } finally {
          process.kill(holder.pid, "SIGCONT");
        }
        const expected = lockedMessage(PROJECT, "shard-a", [
          {
            user: holder.username,
            host: holder.hostname,
            pid: holder.pid,
            since: new Date(holder.timestamp).toISOString().replace(/\.\d+Z$/, "Z"),
          },
        ]);
        expect(holder.username).to.equal(os.userInfo().username);
        expect(holder.hostname).to.equal(os.hostname());
        expect(second.code, second.where).to.equal(1);
        expect(outcome(second.reports), second.where).to.deep.equal([
          upReport("shard-a", ["h4"], { ok: false, error: expected }),
        ]);
        expect(second.stdout, second.where).to.include(`\nshard shard-a (h4) failed:\n${expected}\n`);
        expect(second.stdout, second.where).to.include("\nup: 0 of 1 shard(s) succeeded in ");

        // The first runner was not disturbed: it finishes, converts, and its lock is gone.
        const first = await firstRun;
        expect(first.code, first.where).to.equal(0);
        expect(outcome(first.reports), first.where).to.deep.equal([
          upReport("shard-a", ["h4"], {
            converted: ["h4/shd-a1", "h4/shd-a2", "h4/shd-a3"],
            changes: { create: 5 },
          }),
        ]);
        expect(await locks()).to.deep.equal([]);
        expect((await hostState()).filter((l) => l.startsWith("shard-a/"))).to.deep.equal([
          line("shard-a", "shd-a1", "subvolume", "btrfs"),
          line("shard-a", "shd-a2", "subvolume", "btrfs"),
          line("shard-a", "shd-a3", "subvolume", "btrfs"),
        ]);

        // Then the same shard runs again, one runner at a time: nothing to do, and destroy reverts it.
        const again = await runExample(file, ["up"]);
        expect(
          outcome(again.reports).map((r) => [r.ok, r.changes]),
          again.where,
        ).to.deep.equal([[true, { same: 5 }]]);
        const destroy = await runExample(file, ["destroy"]);
        expect(
          destroy.reports.map((r) => [r.ok, r.changes]),
          destroy.where,
        ).to.deep.equal([[true, { delete: 5 }]]);
        expect((await hostState()).filter((l) => l.startsWith("shard-a/"))).to.deep.equal([
          line("shard-a", "shd-a1", "dir", "dir"),
          line("shard-a", "shd-a2", "dir", "dir"),
          line("shard-a", "shd-a3", "dir", "dir"),
        ]);
      });
  });

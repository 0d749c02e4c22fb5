/**
 * State written by 0.1.0 stores a provider that `require`s the implementation by absolute path
 * (test/fixtures/provider-0.1.0-*.js.txt are those texts as 0.1.0 serialized them, with the directory as
 * @@PROVIDER_DIR@@). Where that path still holds this package (upgraded in place) it must keep loading and
 * working; and the current provider rewrites such state on the next `pulumi up` without touching a host.
 */
import * as path from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import { expect } from "chai";
import { clone, isPathBoundProvider, rootfs } from "../../provider/dynamic";
import { fixture, ROOT } from "./fixtures";

const requireFromString = require("require-from-string") as (
  code: string,
  filename?: string,
) => {
  handler: () => pulumi.dynamic.ResourceProvider;
};
const DIST = path.join(ROOT, "dist", "provider");
const legacy = (kind: "rootfs" | "clone") =>
  fixture(`provider-0.1.0-${kind}.js.txt`).split("@@PROVIDER_DIR@@").join(DIST);

const CONN = {
  host: "127.0.0.1",
  port: 1,
  user: "root",
  insecureSkipHostKeyCheck: false,
  dialErrorLimit: 1,
  perDialTimeout: 15,
  commandTimeout: 3600,
  sudo: false,
};
const ROOTFS_IN = {
  connection: CONN,
  container: "web1",
  lxcPath: "/var/lib/lxc",
  ifRunning: "fail",
  nestedSubvolumes: "fail",
  keepBackup: false,
  onDelete: "retain",
};
const ROOTFS_OUT = {
  ...ROOTFS_IN,
  target: "root@127.0.0.1:1",
  rootfsPath: "/var/lib/lxc/web1/rootfs",
  rootfsIsSubvolume: true,
  subvolumeId: 256,
  subvolumeUuid: "3c1d4f3e-0000-4000-8000-000000000001",
  configBackingStore: "btrfs",
  adopted: false,
  files: 12,
  bytes: 3456,
  state: "STOPPED",
  interrupted: null,
};
const CLONE_IN = {
  connection: CONN,
  lxcPath: "/var/lib/lxc",
  source: "web1",
  name: "web1-c",
  ifSourceRunning: "fail",
  start: false,
};
const CLONE_OUT = {
  ...CLONE_IN,
  target: "root@127.0.0.1:1",
  rootfsPath: "/var/lib/lxc/web1-c/rootfs",
  subvolumeId: 257,
  subvolumeUuid: "3c1d4f3e-0000-4000-8000-000000000002",
  parentUuid: "3c1d4f3e-0000-4000-8000-000000000001",
  sourceGeneration: 10,
  state: "STOPPED",
  hwaddrs: [],
  actualHostname: "web1-c",
  adopted: false,
  drift: [],
};

describe("state written by 0.1.0 (provider bound to an absolute path)", () => {
  for (const [kind, impl, ins, outs] of [
    ["rootfs", rootfs, ROOTFS_IN, ROOTFS_OUT],
    ["clone", clone, CLONE_IN, CLONE_OUT],
  ] as const) {
    describe(kind, () => {
      const dbr = (replace: boolean) => (kind === "clone" ? { deleteBeforeReplace: replace } : {});
      it("still loads where the path holds this package, and its methods work", async () => {
        const old = requireFromString(legacy(kind), "").handler();
        expect(Object.keys(old).sort()).to.deep.equal([
          "check",
          "create",
          "delete",
          "diff",
          "read",
          "update",
        ]);
        const res = await old.check!({}, { ...ins });
        expect(res.failures).to.equal(undefined);
        expect(await old.diff!("id", { ...outs }, { ...ins })).to.deep.equal({
          changes: false,
          replaces: [],
          ...dbr(false),
        });
      });

      it("is recognized as path-bound; the current form is not", () => {
        expect(isPathBoundProvider(legacy(kind))).to.equal(true);
        expect(isPathBoundProvider('exports.handler = __f0; require("pulumi-lxc-btrfs/dynamic")')).to.equal(
          false,
        );
        expect(isPathBoundProvider(undefined)).to.equal(false);
      });

      it("diff reports an update when only the stored provider is stale, the real diff otherwise", async () => {
        const stale = { ...outs, __provider: legacy(kind) };
        const current = { ...outs, __provider: "current" };
        expect(await impl.diff!("id", stale, { ...ins, __provider: "current" })).to.deep.equal({
          changes: true,
          replaces: [],
          ...dbr(false),
        });
        expect(await impl.diff!("id", current, { ...ins, __provider: "current" })).to.deep.equal({
          changes: false,
          replaces: [],
          ...dbr(false),
        });
        const renamed = kind === "rootfs" ? { container: "web2" } : { name: "web1-d" };
        expect(await impl.diff!("id", stale, { ...ins, ...renamed, __provider: "current" })).to.deep.equal({
          changes: true,
          replaces: [Object.keys(renamed)[0]],
          ...dbr(false),
        });
      });

      it("update then stores the same outputs again without contacting the host", async () => {
        // A real update would dial 127.0.0.1:1 and fail this test with "connection refused".
        const res = await impl.update!(
          "id",
          { ...outs, __provider: legacy(kind) },
          { ...ins, __provider: "current" },
        );
        expect(res).to.deep.equal({ outs });
      });
    });
  }
});

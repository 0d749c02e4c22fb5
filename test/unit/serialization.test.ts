/**
 * What Pulumi stores as `__provider` for every resource, in its inputs and again in its outputs: the classes
 * store one line (core/resource.ts, storedProvider) that names the implementation by package, resolved
 * where it runs; no module by value (zod, node-ssh, our own code), no secret (pulumi/pulumi#5294, #13960)
 * and no path of the machine that wrote it. The provider objects the package exports (rootfsProvider, ...)
 * still serialize the same way when a user passes one to pulumi.dynamic.Resource themselves.
 */
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { expect } from "chai";
import { cloneProvider } from "../../provider/clone/resource";
import { storedProvider } from "../../provider/core/resource";
import { clone, rootfs, snapshot } from "../../provider/dynamic";
import { rootfsProvider } from "../../provider/rootfs/resource";
import { snapshotProvider } from "../../provider/snapshot/resource";
import { ROOT } from "./fixtures";

const requireFromString = require("require-from-string") as (
  code: string,
  filename?: string,
) => {
  handler: () => pulumi.dynamic.ResourceProvider;
};

/** The text pulumi.dynamic.Resource stores: `serializeFunction(() => provider, { allowSecrets: true })`. */
async function serialized(provider: pulumi.dynamic.ResourceProvider) {
  return pulumi.runtime.serializeFunction(() => provider, { allowSecrets: true });
}

const NEWS = {
  rootfs: { connection: { host: "h1" }, container: "web1" },
  clone: { connection: { host: "h1" }, source: "web1", name: "web1-c" },
  snapshot: { connection: { host: "h1" }, container: "web1", name: "pre" },
};

/** The provider process compiles the text as a module of its working directory (the program's). */
const load = (text: string) => requireFromString(text, path.join(ROOT, "program.js")).handler();

async function checksInputs(provider: pulumi.dynamic.ResourceProvider, kind: keyof typeof NEWS) {
  const res = await provider.check!({}, NEWS[kind]);
  expect(res.failures).to.equal(undefined);
  expect(res.inputs).to.deep.include({ lxcPath: "/var/lib/lxc" });
  expect((res.inputs as { connection: { port: number } }).connection.port).to.equal(22);
}

describe("the stored provider (storedProvider)", () => {
  for (const kind of ["rootfs", "clone", "snapshot"] as const) {
    it(`${kind}: one line that names the package and the provider, no path, nothing captured`, () => {
      const text = storedProvider(kind);
      expect(text).to.equal(`exports.handler = () => require("pulumi-lxc-btrfs/dynamic").${kind};`);
      // In state it is a JSON string: well under a tenth of the 2.2 KB the closure serializer writes.
      expect(JSON.stringify(text).length).to.be.below(100);
    });

    it(`${kind}: loaded in a program's directory, handler() is the provider dynamic.ts exports`, async () => {
      const loaded = load(storedProvider(kind));
      expect(loaded).to.equal({ rootfs, clone, snapshot }[kind]);
      for (const m of ["configure", "check", "diff", "create", "read", "update", "delete"] as const) {
        expect(loaded[m], m).to.be.a("function");
      }
      await checksInputs(loaded, kind);
    });
  }
});

describe("the exported provider objects, serialized by pulumi.dynamic.Resource (and by 0.2.0's classes)", () => {
  for (const [name, provider, kind] of [
    ["rootfsProvider", rootfsProvider, "rootfs"],
    ["cloneProvider", cloneProvider, "clone"],
    ["snapshotProvider", snapshotProvider, "snapshot"],
  ] as const) {
    it(`${name} serializes to about 2 KB that names the package, no path and nothing else`, async () => {
      const { text, containsSecrets } = await serialized(provider);
      expect(containsSecrets).to.equal(false);
      expect(text.length).to.be.below(2304);
      for (const forbidden of ["zod", "node-ssh", "ssh2", "quoteArg", "planConvert", "BEGIN OPENSSH", ROOT]) {
        expect(text, forbidden).to.not.include(forbidden);
      }
      // No string literal that is an absolute path, and no captured variable at all.
      expect(text).to.not.match(/["'`]\//);
      expect(text).to.not.match(/with\(\{ (?!this: undefined, arguments: undefined \}|provider: __provider)/);
      const methods = ["configure", "check", "diff", "create", "read", "update", "delete"];
      for (const m of methods) {
        expect(text).to.include(`require("pulumi-lxc-btrfs/dynamic").${kind}.${m}(`);
      }
      expect(text.match(/require\(/g)).to.have.length(methods.length);
    });

    it(`${name} deserialized in a program's directory loads the package by name and checks inputs`, async () => {
      await checksInputs(load((await serialized(provider)).text), kind);
    });
  }
});

/**
 * What Pulumi stores as `__provider` for every resource: the providers must serialize small, capture no
 * module by value (zod, node-ssh, our own code), no secret (pulumi/pulumi#5294, #13960) and no path of the
 * machine that wrote it: each method names the implementation by package, resolved where it runs.
 */
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { expect } from "chai";
import { cloneProvider } from "../../provider/clone/resource";
import { rootfsProvider } from "../../provider/rootfs/resource";
import { snapshotProvider } from "../../provider/snapshot/resource";
import { ROOT } from "./fixtures";

const requireFromString = require("require-from-string") as (
  code: string,
  filename?: string,
) => {
  handler: () => pulumi.dynamic.ResourceProvider;
};

/** The text dynamic.Resource stores: `serializeFunction(() => provider, { allowSecrets: true })`. */
async function serialized(provider: pulumi.dynamic.ResourceProvider) {
  return pulumi.runtime.serializeFunction(() => provider, { allowSecrets: true });
}

describe("serialized providers", () => {
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
      const { text } = await serialized(provider);
      // The provider process compiles the text as a module of its working directory (the program's).
      const loaded = requireFromString(text, path.join(ROOT, "program.js")).handler();
      const news = {
        rootfs: { connection: { host: "h1" }, container: "web1" },
        clone: { connection: { host: "h1" }, source: "web1", name: "web1-c" },
        snapshot: { connection: { host: "h1" }, container: "web1", name: "pre" },
      }[kind];
      const res = await loaded.check!({}, news);
      expect(res.failures).to.equal(undefined);
      expect(res.inputs).to.deep.include({ lxcPath: "/var/lib/lxc" });
      expect((res.inputs as { connection: { port: number } }).connection.port).to.equal(22);
    });
  }
});

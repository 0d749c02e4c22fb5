/**
 * What Pulumi stores as `__provider` for every resource: the providers must serialize small, capture no
 * module by value (zod, node-ssh, our own code) and no secret (pulumi/pulumi#5294, #13960).
 */
import * as pulumi from "@pulumi/pulumi";
import { expect } from "chai";
import { cloneProvider, rootfsProvider } from "../../provider/resources";

describe("serialized providers", () => {
  for (const [name, provider] of [
    ["rootfsProvider", rootfsProvider],
    ["cloneProvider", cloneProvider],
  ] as const) {
    it(`${name} serializes to a few KB of loader code and nothing else`, async () => {
      const { text, containsSecrets } = await pulumi.runtime.serializeFunction(() => provider, {
        isFactoryFunction: true,
      });
      expect(containsSecrets).to.equal(false);
      expect(text.length).to.be.below(4096);
      for (const forbidden of ["zod", "node-ssh", "ssh2", "quoteArg", "planConvert", "BEGIN OPENSSH"]) {
        expect(text, forbidden).to.not.include(forbidden);
      }
      // Only the absolute path of the implementation module is captured.
      expect(text).to.match(/(ROOTFS|CLONE)_IMPL: "\/[^"]+\/provider\/(rootfs|clone)-provider\.js"/);
    });
  }
});

/**
 * Connection secrets from provider configuration (stack config `lxc-btrfs:*`): which wins, what is filled
 * in, and that a bad value is refused naming the key, never the value.
 */
import * as pulumi from "@pulumi/pulumi";
import { expect } from "chai";
import { type Connection, connectionSchema } from "../../../provider/core/connection";
import {
  configureCredentials,
  providerCredentials,
  resetCredentials,
  withProviderCredentials,
} from "../../../provider/transport/credentials";
import { openRemote, poolStats } from "../../../provider/transport/ssh";

const KEY =
  "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-config\n-----END OPENSSH PRIVATE KEY-----\n";
const conn = (fields: Record<string, unknown>): Connection =>
  connectionSchema.parse({ host: "h1", ...fields });
const config = (values: Record<string, string>) => ({ get: (k: string) => values[k] });

describe("credentials from provider configuration", () => {
  afterEach(() => resetCredentials());
  let dialsBefore = 0;
  beforeEach(() => {
    dialsBefore = poolStats().dials;
  });

  it("fill in a connection that names no credential, and say so", () => {
    const c = conn({});
    expect(withProviderCredentials(c, { privateKey: KEY, privateKeyPassword: "pw" })).to.deep.equal({
      ...c,
      privateKey: KEY,
      privateKeyPassword: "pw",
      credentialsFrom: "config",
    });
    expect(withProviderCredentials(c, { password: "secret" })).to.deep.equal({
      ...c,
      password: "secret",
      credentialsFrom: "config",
    });
  });

  for (const own of [
    { privateKey: "-----BEGIN own" },
    { privateKeyPath: "/root/.ssh/id_ed25519" },
    { password: "own" },
    { agentSocketPath: "/run/ssh-agent.sock" },
  ]) {
    it(`lose to a connection's own ${Object.keys(own)[0]}: the config is not used for it at all`, () => {
      const c = conn(own);
      expect(
        withProviderCredentials(c, { privateKey: KEY, privateKeyPassword: "pw", password: "p" }),
      ).to.equal(c);
    });
  }

  it("keep a connection's own privateKeyPassword", () => {
    const c = conn({ privateKeyPassword: "own" });
    expect(withProviderCredentials(c, { privateKey: KEY, privateKeyPassword: "cfg" })).to.deep.equal({
      ...c,
      privateKey: KEY,
      privateKeyPassword: "own",
      credentialsFrom: "config",
    });
  });

  it("decide for the jump host on its own fields", () => {
    const c = conn({ privateKeyPath: "/k", proxy: { host: "jump" } });
    const out = withProviderCredentials(c, { privateKey: KEY });
    expect(out.privateKey).to.equal(undefined);
    expect(out.privateKeyPath).to.equal("/k");
    expect(out.proxy).to.deep.equal({ ...c.proxy, privateKey: KEY, credentialsFrom: "config" });
  });

  it("leave every connection as given when the config has none", () => {
    const c = conn({ proxy: { host: "jump" } });
    expect(withProviderCredentials(c, {})).to.deep.equal(c);
    expect(withProviderCredentials(c, { privateKeyPassword: "pw" })).to.deep.equal(c);
  });

  it("are read by configure from the lxc-btrfs namespace and kept for the process", () => {
    configureCredentials(
      config({ "lxc-btrfs:privateKey": KEY, "lxc-btrfs:password": "p", "proj:privateKey": "other" }),
    );
    expect(providerCredentials()).to.deep.equal({ privateKey: KEY, password: "p" });
    configureCredentials(config({}));
    expect(providerCredentials()).to.deep.equal({});
  });

  it("refuse an empty value naming the key and what to run, never the value, where the config is needed", () => {
    const msg =
      "stack config lxc-btrfs:privateKeyPassword is set but empty or not a string; set it with " +
      "`pulumi config set --secret lxc-btrfs:privateKeyPassword ...` or remove it with " +
      "`pulumi config rm lxc-btrfs:privateKeyPassword`";
    configureCredentials(config({ "lxc-btrfs:privateKey": KEY, "lxc-btrfs:privateKeyPassword": "  " }));
    expect(() => providerCredentials()).to.throw(msg);
    expect(() => withProviderCredentials(conn({}))).to.throw(msg);
    const own = conn({ privateKeyPath: "/k" });
    expect(withProviderCredentials(own)).to.equal(own);
  });

  it("fail a remote's first command, not its opening, when the config is unusable (no dial)", async () => {
    configureCredentials(config({ "lxc-btrfs:password": "" }));
    const remote = openRemote(conn({ host: "127.0.0.1", port: 1 }));
    expect(remote.target).to.equal("root@127.0.0.1:1");
    let err: Error | undefined;
    await remote.run(["true"]).catch((e: Error) => {
      err = e;
    });
    expect(err?.message).to.equal(
      "stack config lxc-btrfs:password is set but empty or not a string; set it with " +
        "`pulumi config set --secret lxc-btrfs:password ...` or remove it with `pulumi config rm lxc-btrfs:password`",
    );
    expect(poolStats().dials).to.equal(dialsBefore);
  });

  it("come from the program's own stack config where configure never runs (discovery)", () => {
    const saved = pulumi.runtime.allConfig();
    pulumi.runtime.setAllConfig({ "lxc-btrfs:privateKey": KEY, "other:password": "x" });
    try {
      expect(providerCredentials()).to.deep.equal({ privateKey: KEY });
      expect(withProviderCredentials(conn({})).privateKey).to.equal(KEY);
    } finally {
      pulumi.runtime.setAllConfig(saved);
    }
    expect(providerCredentials()).to.deep.equal({});
  });
});

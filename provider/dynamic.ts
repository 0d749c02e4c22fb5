/**
 * The implementation behind the stored providers: what `__provider` in state loads, by package name
 * (`require("pulumi-lxc-btrfs/dynamic")`), in the provider process: the one line this version stores
 * (`exports.handler = () => require("pulumi-lxc-btrfs/dynamic").rootfs;`, core/resource.ts) returns one of the
 * objects below, and 0.2.0's serialized closure calls their methods one by one. That process runs in the
 * program's directory, so the name resolves to the copy of this package the program has installed, wherever
 * that is: the state names no path of the machine that wrote it.
 *
 * Besides forwarding to rootfs/provider.ts, clone/provider.ts and snapshot/provider.ts, it
 * - takes connection secrets from the stack config in `configure` (transport/credentials.ts), and
 * - rewrites state written by 0.1.0, whose stored provider `require`s the implementation by absolute path
 *   (`ROOTFS_IMPL: "/…/dist/provider/rootfs-provider.js"`): `diff` reports a change for such a resource and
 *   `update`, when nothing else changed, returns the stored outputs as they are, without contacting the host,
 *   so the engine stores them with the current provider.
 */
import type * as pulumi from "@pulumi/pulumi";
import { configureCredentials } from "./transport/credentials";

type Impl = {
  check(olds: unknown, news: unknown): Promise<pulumi.dynamic.CheckResult>;
  diff(olds: never, news: never): { changes: boolean; replaces: string[]; deleteBeforeReplace?: boolean };
  create(news: never): Promise<pulumi.dynamic.CreateResult>;
  read(id: string, props: never): Promise<pulumi.dynamic.ReadResult>;
  update(id: string, olds: never, news: never): Promise<pulumi.dynamic.UpdateResult>;
  del(id: string, props: never): Promise<void>;
};

/** A stored provider of 0.1.0: it names the implementation by an absolute path. */
export function isPathBoundProvider(serialized: unknown): boolean {
  return typeof serialized === "string" && /\b(ROOTFS|CLONE)_IMPL: "\//.test(serialized);
}

function provider(load: () => Impl): pulumi.dynamic.ResourceProvider {
  // Only the stored provider is stale: nothing to do on the host, just store the outputs again.
  const onlyProviderStale = (olds: Record<string, unknown>, news: Record<string, unknown>) =>
    isPathBoundProvider(olds.__provider) && !load().diff(olds as never, news as never).changes;
  return {
    configure: async (req) => {
      configureCredentials(req.config);
    },
    check: (olds, news) => load().check(olds, news),
    diff: async (_id, olds, news) => {
      const d = load().diff(olds as never, news as never);
      return d.changes || !isPathBoundProvider(olds.__provider) ? d : { ...d, changes: true };
    },
    create: (inputs) => load().create(inputs as never),
    read: (id, props) => load().read(id, props as never),
    update: async (id, olds, news) => {
      if (!onlyProviderStale(olds, news)) return load().update(id, olds as never, news as never);
      const { __provider: _, ...outs } = olds;
      return { outs };
    },
    delete: (id, props) => load().del(id, props as never),
  };
}

function lazy(load: () => Impl): () => Impl {
  let impl: Impl | undefined;
  return () => {
    impl ??= load();
    return impl;
  };
}

/** LxcSubvolumeRootfs. */
export const rootfs = provider(
  lazy(() => {
    const m = require("./rootfs/provider") as typeof import("./rootfs/provider");
    return m as unknown as Impl;
  }),
);

/** LxcSnapshotClone. */
export const clone = provider(
  lazy(() => {
    const m = require("./clone/provider") as typeof import("./clone/provider");
    return m as unknown as Impl;
  }),
);

/** LxcSnapshot. */
export const snapshot = provider(
  lazy(() => {
    const m = require("./snapshot/provider") as typeof import("./snapshot/provider");
    return { ...m, diff: m.diffSnapshot } as unknown as Impl;
  }),
);

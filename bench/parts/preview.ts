/**
 * Part 4: a no-op `pulumi preview` of 30 LxcSubvolumeRootfs (already converted by an `up` first) against
 * a no-op preview of 30 trivial dynamic resources (create only), interleaved, real CLI. Our check and
 * diff make no network calls, so the two should cost about the same; SSH logins are counted to show it.
 */
import * as path from "node:path";
import { countAccepted } from "../../test/support/fleet";
import type { BenchContext } from "../lib/context";
import { cloneTemplateMany, createBusybox, destroy, settle } from "../lib/host";
import { isNoop, makeProject } from "../lib/pulumi-project";

export const PREVIEW_RESOURCES = 30;

export interface PreviewResult {
  ours: number[];
  trivial: number[];
  /** SSH logins on h1 during each of our previews. */
  accepted: number[];
  upMs: number;
}

export async function benchPreview(ctx: BenchContext): Promise<PreviewResult> {
  const h = ctx.h1;
  const tpl = "bench-tpl-bb";
  const containers = Array.from(
    { length: PREVIEW_RESOURCES },
    (_, i) => `bench-p-${String(i + 1).padStart(2, "0")}`,
  );
  await createBusybox(h, tpl);
  await cloneTemplateMany(h, tpl, containers);
  await settle(h);
  const env = {
    BENCH_HOST: h.name,
    BENCH_CONTAINERS: containers.join(","),
    BENCH_COUNT: String(PREVIEW_RESOURCES),
  };
  const ours = makeProject(
    ctx.workDir,
    "bench-preview-rootfs",
    path.join(ctx.buildDir, "programs", "preview-rootfs.js"),
  );
  const trivial = makeProject(
    ctx.workDir,
    "bench-preview-trivial",
    path.join(ctx.buildDir, "programs", "preview-trivial.js"),
  );
  await ours.init("p");
  await trivial.init("p");
  const up = await ours.run(["up", "--yes", "--skip-preview"], "p", env);
  await trivial.run(["up", "--yes", "--skip-preview"], "p", env);
  ctx.log(`preview: up of ${PREVIEW_RESOURCES} conversions took ${up.ms.toFixed(0)} ms`);
  const res: PreviewResult = { ours: [], trivial: [], accepted: [], upMs: up.ms };
  for (let i = 0; i < ctx.runs; i++) {
    const before = countAccepted(h);
    const a = await ours.run(["preview"], "p", env);
    res.accepted.push(countAccepted(h) - before);
    const b = await trivial.run(["preview"], "p", env);
    if (!isNoop(a.stdout) || !isNoop(b.stdout))
      throw new Error(`preview is not a no-op:\n${a.stdout}\n${b.stdout}`);
    res.ours.push(a.ms);
    res.trivial.push(b.ms);
    ctx.log(`preview run ${i + 1}/${ctx.runs}: ours ${a.ms.toFixed(0)} ms, trivial ${b.ms.toFixed(0)} ms`);
  }
  for (const c of [...containers, tpl]) await destroy(h, c);
  await settle(h);
  return res;
}

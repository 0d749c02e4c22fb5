/**
 * Runs inside the dynamic provider process only (loaded with the implementation). When the engine dies
 * (a killed `pulumi up`), the provider's stdout/stderr pipes close: the SDK's uncaught-error handler then
 * writes to a closed pipe, which raises again, forever, at full CPU. Exit instead, and also when we are
 * orphaned (our parent is gone).
 */
let installed = false;

export function guardProviderProcess(): void {
  if (installed) return;
  installed = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") process.exit(1);
    });
  }
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(1);
  }, 1000).unref();
}

/** Capturing the provider's progress lines (console.log) around a piece of work, for tests. */

/** Runs `work` with console.log captured; returns its lines with what work returned or threw. */
export async function withLog<T>(
  work: () => Promise<T>,
): Promise<{ log: string[]; value?: T; error?: Error }> {
  const log: string[] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => log.push(a.join(" "));
  try {
    return { log, value: await work() };
  } catch (e) {
    return { log, error: e as Error };
  } finally {
    console.log = orig;
  }
}

/** As withLog, but what `work` throws is thrown again (after console.log is restored). */
export async function logged<T>(work: () => Promise<T>): Promise<{ result: T; lines: string[] }> {
  const { log, value, error } = await withLog(work);
  if (error) throw error;
  return { result: value as T, lines: log };
}

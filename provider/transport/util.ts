/** Small helpers the transport's modules share: a pause, and the trace line. */

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** With LXC_BTRFS_TRACE set, one line on stderr (no secrets: targets and shortened argv only). */
export function trace(msg: string): void {
  if (process.env.LXC_BTRFS_TRACE) console.error(`[lxc-btrfs trace] ${msg}`);
}

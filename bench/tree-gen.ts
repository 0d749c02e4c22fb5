/**
 * Writes a synthetic tree for the conversion benchmark, run on a fleet host (node via nsenter):
 *
 *   node tree-gen.js DIR ENTRIES
 *
 * DIR/ gets ENTRIES entries: directories of 100 entries each, holding small files (100 B - 2 KB, which
 * BTRFS stores inline in metadata), every 20th file 16-48 KiB (real data extents), a symlink every 250th
 * entry, a hardlink every 500th and a dotfile per directory. Contents are slices of one random buffer:
 * incompressible, and fast to write.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

export function writeTree(dir: string, entries: number): { files: number; dirs: number; bytes: number } {
  const pool = randomBytes(1 << 20);
  const perDir = 100;
  const dirs = Math.max(1, Math.ceil(entries / (perDir + 1)));
  const files = entries - dirs;
  let bytes = 0;
  let lastFile = "";
  fs.mkdirSync(dir, { recursive: true });
  for (let k = 0; k < files; k++) {
    const d = path.join(dir, `d${String(Math.floor(k / perDir)).padStart(4, "0")}`);
    if (k % perDir === 0) {
      fs.mkdirSync(d);
      lastFile = "";
    }
    if (k % perDir === 0) {
      write(path.join(d, `.hidden-${k}`), 64);
    } else if (k % 250 === 3 && lastFile) {
      fs.symlinkSync(path.basename(lastFile), path.join(d, `l${k}`));
    } else if (k % 500 === 7 && lastFile) {
      fs.linkSync(lastFile, path.join(d, `h${k}`));
    } else {
      const size = k % 20 === 1 ? 16384 * (1 + (k % 3)) : 100 + ((k * 131) % 1900);
      lastFile = path.join(d, `f${k}`);
      write(lastFile, size);
    }
  }
  return { files, dirs, bytes };

  function write(file: string, size: number): void {
    const off = (size * 7919 + bytes) % (pool.length - size);
    fs.writeFileSync(file, pool.subarray(off, off + size));
    bytes += size;
  }
}

if (require.main === module) {
  const [dir, n] = process.argv.slice(2);
  if (!dir || !/^\d+$/.test(n ?? "")) {
    console.error("usage: node tree-gen.js DIR ENTRIES");
    process.exit(2);
  }
  console.log(JSON.stringify(writeTree(dir, Number(n))));
}

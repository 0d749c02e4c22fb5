/** What `btrfs subvolume show` and /proc/self/mountinfo say, parsed. Pure. */

export interface SubvolumeInfo {
  id: number;
  uuid: string;
  parentUuid: string | null;
  generation: number;
}

/** `/proc/self/mountinfo` writes space, tab, newline and backslash as `\040`-style octal escapes. */
export function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Fields of `btrfs subvolume show` (btrfs-progs 5.x-6.x text output). */
export function parseSubvolumeFields(fields: Map<string, string>): SubvolumeInfo {
  const id = Number(fields.get("Subvolume ID"));
  const gen = Number(fields.get("Generation"));
  const uuid = fields.get("UUID");
  if (!uuid || !/^[0-9a-f-]{36}$/.test(uuid) || !Number.isInteger(id) || !Number.isInteger(gen)) {
    throw new Error(
      "unrecognised `btrfs subvolume show` output (a btrfs-progs version this provider does not know)",
    );
  }
  const parent = fields.get("Parent UUID");
  return { id, uuid, parentUuid: parent && parent !== "-" ? parent : null, generation: gen };
}

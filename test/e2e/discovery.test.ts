/**
 * Discovery over a host holding directories whose names LXC allows but this provider refuses, next to
 * normal containers: one `pulumi up` of examples/fleet with the real CLI converts the normal ones and
 * reports every odd one in the summary, escaped, with the reason; the odd ones are left as they were.
 */
import * as fs from "node:fs";
import { expect } from "chai";
import { exampleStack, fleetAccess } from "../support/examples";
import { type FleetHost, loadInventory, manifest } from "../support/fleet";
import { hostSh } from "../support/host";

const inv = loadInventory();
const h4 = inv.hosts.find((h) => h.name === "h4") as FleetHost;
// An LXC path of its own on h4, so that no other test's containers are discovered with these.
const P = "/var/lib/lxc/plb-odd";
const REASON =
  "its name is not one this provider accepts (1-64 letters, digits, '_', '.' or '-', starting with a letter or digit, without '..'); rename it with lxc-copy -R to manage it";

const SETUP = `
  P=$1
  rm -rf "$P"; mkdir -p "$P"
  for c in odd-good1 odd-good2; do
    lxc-create -P "$P" -n "$c" -t busybox >/dev/null 2>&1 || exit 1
  done
  for n in "with space" "$(printf 'tab\\there')" "$(printf 'new\\nline')" 'sh;$(id)' -dash "$(printf 'bad\\377byte')" \\
    'back\\slash' a..b "$(printf 'x%.0s' $(seq 65))"; do
    mkdir -p "$P/$n/rootfs" && echo data >"$P/$n/rootfs/file" && cp "$P/odd-good1/config" "$P/$n/config" || exit 1
  done
`;

describe("discovery of odd container directory names, with the real Pulumi CLI", function () {
  this.timeout(900_000);
  let run: (args: string[]) => Promise<{ stdout: string }>;
  let state: string;

  before(async () => {
    await hostSh(h4, SETUP, P);
    ({ run, state } = await exampleStack("fleet", "odd", {
      hosts: [{ name: "h4", host: h4.address }],
      lxcPath: P,
      ...fleetAccess(inv),
    }));
  });
  after(async () => {
    await hostSh(
      h4,
      'find "$1" -mindepth 2 -maxdepth 2 -name rootfs -inum 256 -exec btrfs subvolume delete {} + >/dev/null; rm -rf "$1"',
      P,
    );
    if (state) fs.rmSync(state, { recursive: true, force: true });
  });

  it("converts the normal containers and lists every odd one as skipped, leaving it untouched", async () => {
    const oddBefore = await manifest(h4, P).then((m) =>
      m.split("\n").filter((l) => !l.startsWith("odd-good")),
    );
    await run(["up", "--yes", "--skip-preview"]);
    const summary = JSON.parse((await run(["stack", "output", "--json"])).stdout).summary;
    expect(summary).to.deep.equal({
      h4: {
        converted: ["odd-good1", "odd-good2"],
        adopted: [],
        skipped: [
          "-dash",
          "a..b",
          "back\\\\slash",
          "bad\\xffbyte",
          "new\\x0aline",
          "sh;$(id)",
          "tab\\x09here",
          "with space",
          "x".repeat(65),
        ].map((n) => `${n} (${REASON})`),
        failed: [],
      },
    });
    expect(await hostSh(h4, 'stat -c %i "$1/odd-good1/rootfs" "$1/odd-good2/rootfs"', P)).to.equal(
      "256\n256\n",
    );
    const oddAfter = (await manifest(h4, P)).split("\n").filter((l) => !l.startsWith("odd-good"));
    // The top directory's mtime is the only change: converting odd-good1/2 renamed entries in their own dirs.
    expect(oddAfter.slice(1)).to.deep.equal(oddBefore.slice(1));
    await run(["destroy", "--yes", "--skip-preview"]);
    expect(
      await hostSh(h4, 'grep -h "^lxc.rootfs.path" "$1/odd-good1/config" "$1/odd-good2/config"', P),
    ).to.equal(`lxc.rootfs.path = dir:${P}/odd-good1/rootfs\nlxc.rootfs.path = dir:${P}/odd-good2/rootfs\n`);
  });
});

// The method matrix through the lab (docs/lab.md) with real curl and nginx in network namespaces,
// one lab per method, on one I/O backend of the daemon (docs/io.md): DR, TUN and FULLNAT with
// round robin, wrr 3:2:1 (DR), ping and TTL exceeded, path MTU through the tunnel (the client gets
// fragmentation needed 1480 and its upload completes), a 10 MiB FULLNAT download checked byte for
// byte; with `nat`, NAT over IPv4 and IPv6 (rr, ping and TTL exceeded, a 10 MiB download). Every
// suite's title names the backend, and its first step checks that every served interface runs it.
// lab-methods.test.ts runs it on the default backend, lab-methods-xdp.test.ts on AF_XDP.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "../../src/daemon/control.js";
import { nsExecStatus } from "../../src/io/netns.js";
import { labUp } from "../../src/lab/lab.js";
import { LAB_ADDR6, type LabMethod, type LabNames, labDown } from "../../src/lab/topology.js";
import {
  count,
  curl,
  download,
  ipvsadm,
  labUnavailable,
  patternSha256,
  ping,
  runNames,
  table,
  VIP,
} from "./lab-methods-helpers.js";

export type SuiteIo = "mmsg" | "xdp";

/** The backend every served interface must report: `xdp-native`, `xdp-generic`… for xdp. */
function assertBackend(got: readonly string[], io: SuiteIo): void {
  assert.ok(got.length > 0, "no served interface");
  for (const b of got)
    assert.ok(io === "xdp" ? b.startsWith("xdp-") : b === io, `interfaces run ${got.join(", ")}`);
}

/**
 * The suites on backend `io`; `tag` names the run's namespaces (tsvs-TAG<pid>-*, runNames).
 * `nat`: add the NAT suites (IPv4 and IPv6) that lab-methods-nat.test.ts and ipv6.test.ts hold
 * for the default backend.
 */
export function labMethodSuites(io: SuiteIo, tag: string, opts: { nat?: boolean } = {}): void {
  const unavailable = labUnavailable();
  const skip = unavailable === null ? false : `lab methods e2e: ${unavailable}`;
  let names: LabNames | undefined;
  const tmp = mkdtempSync(join(tmpdir(), "tsvs-lm-"));

  after(async () => {
    if (names !== undefined) await labDown(names);
    rmSync(tmp, { recursive: true, force: true });
  });

  async function up(method: LabMethod, ipv6 = false): Promise<LabNames> {
    names ??= await runNames(tag);
    const st = await labUp(names, { method, ipv6, daemonArgs: ["--io", io] });
    assert.equal(st.daemonStatus, "running", st.daemonStatus);
    assert.equal(st.servers, "nginx");
    const s = await request(names.controlSock, { op: "status" });
    assert.ok("status" in s, JSON.stringify(s));
    assertBackend(
      s.status.interfaces.map((i) => i.io ?? "?"),
      io,
    );
    return names;
  }

  /** 30 requests over rr: 10/10/10 over r1-r3, or 8/8/7/7 over r1-r4 (TUN and FULLNAT reach r4 too). */
  function assertRr30(n: LabNames, withR4: boolean, url = `http://${VIP}/`): void {
    const got = count(n, 30, url);
    if (!withR4) assert.deepEqual(got, { r1: 10, r2: 10, r3: 10 });
    else {
      assert.deepEqual(Object.keys(got).sort(), ["r1", "r2", "r3", "r4"], JSON.stringify(got));
      assert.deepEqual(Object.values(got).sort(), [7, 7, 8, 8], JSON.stringify(got));
    }
  }

  function assertPingAndTtl(n: LabNames): void {
    const p = ping(n, VIP);
    assert.equal(p.status, 0, p.stdout + p.stderr);
    const tr = nsExecStatus(
      n.client,
      ["traceroute", "-n", "-T", "-p", "80", "-q", "1", "-w", "2", "-m", "1", VIP],
      15_000,
    );
    assert.match(tr.stdout, /^ 1 {2}198\.18\.0\.(100|1) {2}\d/m, tr.stdout + tr.stderr);
  }

  const on = `(io ${io})`;

  if (opts.nat === true) {
    describe(`NAT through the lab ${on}`, { skip, timeout: 120_000 }, () => {
      let n: LabNames;
      before(async () => {
        n = await up("nat");
      });

      it("rr: 30 curl requests give 10/10/10", () => {
        assertRr30(n, false);
      });

      it("ping answers from the VIP; a TTL-1 SYN gets time exceeded from the director", () => {
        assertPingAndTtl(n);
      });

      it("a 10 MiB download through NAT arrives intact (sha256 of the /bytes pattern)", () => {
        const n10 = 10 << 20;
        assert.equal(download(n, n10), `${n10} ${patternSha256(n10)}`);
      });
    });

    describe(`NAT over IPv6 through the lab ${on}`, { skip, timeout: 120_000 }, () => {
      let n: LabNames;
      before(async () => {
        n = await up("nat", true);
      });

      it(`rr on [${LAB_ADDR6.VIP}]:80: 30 curl requests give 10/10/10 (the real servers solicit their gateway, the director's address, meanwhile)`, () => {
        assertRr30(n, false, `http://[${LAB_ADDR6.VIP}]/`);
      });

      it("a 10 MiB download over IPv6 arrives intact", () => {
        const n10 = 10 << 20;
        assert.equal(download(n, n10, 60, `http://[${LAB_ADDR6.VIP}]`), `${n10} ${patternSha256(n10)}`);
      });
    });
  }

  describe(`DR through the lab ${on}`, { skip, timeout: 120_000 }, () => {
    let n: LabNames;
    before(async () => {
      n = await up("dr");
    });

    it("rr: 30 curl requests give 10/10/10 (replies go straight from the real servers)", () => {
      assertRr30(n, false);
    });

    it("ping answers from the VIP; a TTL-1 SYN gets time exceeded from the director", () => {
      assertPingAndTtl(n);
    });

    it("wrr 3:2:1: 60 requests give 30/20/10", async () => {
      await table(n, [
        `-A -t ${VIP}:80 -s wrr`,
        `-a -t ${VIP}:80 -r 198.18.1.11:80 -g -w 3`,
        `-a -t ${VIP}:80 -r 198.18.1.12:80 -g -w 2`,
        `-a -t ${VIP}:80 -r 198.18.1.13:80 -g -w 1`,
      ]);
      assert.deepEqual(count(n, 60), { r1: 30, r2: 20, r3: 10 });
    });
  });

  describe(`TUN through the lab ${on}`, { skip, timeout: 120_000 }, () => {
    let n: LabNames;
    before(async () => {
      n = await up("tun");
    });

    it("rr over r1-r4 (r4 behind the router, reached by IPIP): 30 requests give 8/8/7/7", () => {
      assertRr30(n, true);
    });

    it("ping answers from the VIP; a TTL-1 SYN gets time exceeded from the director", () => {
      assertPingAndTtl(n);
    });

    it("path MTU: full-size client segments get fragmentation needed (1480) and the upload still completes", async () => {
      const before = await request(n.controlSock, { op: "status" });
      const size = 1 << 20;
      const file = join(tmp, "upload");
      writeFileSync(file, Buffer.alloc(size, 0x61));
      nsExecStatus(n.client, ["ip", "route", "flush", "cache"]);
      const r = curl(n, `http://${VIP}/sink`, ["-H", "Expect:", "--data-binary", `@${file}`], 20);
      assert.equal(r.status, 0, `curl exit ${r.status} ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^r[1-4] ${size}\\n$`));
      // The client's kernel took the director's frag-needed: a PMTU exception for the VIP.
      const route = nsExecStatus(n.client, ["ip", "route", "get", VIP]).stdout;
      assert.match(route, /mtu 1480/, route);
      const after = await request(n.controlSock, { op: "status" });
      assert.ok("status" in before && "status" in after);
      assert.ok((after.status.drops.frag_needed ?? 0) > (before.status.drops.frag_needed ?? 0));
    });
  });

  describe(`FULLNAT through the lab ${on}`, { skip, timeout: 120_000 }, () => {
    let n: LabNames;
    before(async () => {
      n = await up("fullnat");
    });

    it("rr over r1-r4 (replies to the LIP, through the router for r4): 30 requests give 8/8/7/7", () => {
      assertRr30(n, true);
    });

    it("ping answers from the VIP; a TTL-1 SYN gets time exceeded from the director", () => {
      assertPingAndTtl(n);
    });

    it("a 10 MiB download through FULLNAT arrives intact (sha256 of the /bytes pattern)", async () => {
      const n10 = 10 << 20;
      assert.equal(download(n, n10), `${n10} ${patternSha256(n10)}`);
      assert.match(await ipvsadm(n, ["-Ln"]), /FullNat/);
    });
  });
}

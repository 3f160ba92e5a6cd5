import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { configMain } from "../../src/cli/config.js";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await configMain(args, {
    stdout: {
      write: (s: string) => {
        out += s;
      },
    },
    stderr: {
      write: (s: string) => {
        err += s;
      },
    },
  });
  return { code, out, err };
}

describe("tsvs config check", () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvs-cfg-"));
  after(() => rmSync(dir, { recursive: true }));
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it("prints ipvsadm -R input and warnings for a keepalived.conf", async () => {
    const p = file(
      "k.conf",
      "global_defs {\n vrrp_strict\n}\nvirtual_server 10.0.0.1 80 {\n lb_kind NAT\n real_server 10.0.1.1 8080 {\n  weight 2\n }\n}\n",
    );
    const r = await run(["check", p]);
    assert.deepEqual(r, {
      code: 0,
      out: "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 2\n",
      err: `${p}:2:2: warning: vrrp_strict in global_defs: strict mode (RFC-only behaviour, no authentication, firewall rules) is not implemented (ignored)\n`,
    });
    for (const line of r.out.trim().split("\n")) assert.equal(parseIpvsadm(line.split(" ")).kind, "ctl");
  });

  it("prints a comment line per VRRP instance, sync group and sync daemon first", async () => {
    const p = file(
      "ha.conf",
      "global_defs {\n lvs_sync_daemon eth1 inst VI_1\n}\nvrrp_instance VI_1 {\n interface eth0\n" +
        " virtual_router_id 51\n virtual_ipaddress {\n  10.0.0.1/24\n }\n}\nvirtual_server fwmark 1 {\n}\n",
    );
    const r = await run(["check", p]);
    assert.deepEqual(r, {
      code: 0,
      out:
        "# vrrp_instance VI_1: eth0 vrid 51 BACKUP priority 100 v2 advert 1s vips 10.0.0.1/24\n" +
        "# lvs_sync_daemon: eth1 follows VI_1 syncid 51 group 224.0.0.81 port 8848\n" +
        "-A -f 1 -s wlc\n",
      err: "",
    });
  });

  it("reads YAML by extension, or as told by --format", async () => {
    const text = "virtual_servers:\n  - fwmark: 1\n    scheduler: rr\n";
    assert.deepEqual(await run(["check", file("c.yaml", text)]), {
      code: 0,
      out: "-A -f 1 -s rr\n",
      err: "",
    });
    assert.equal((await run(["check", "--format", "yaml", file("c.txt", text)])).code, 0);
  });

  it("exits 1 with file:line:col errors", async () => {
    const p = file("bad.yaml", "virtual_servers:\n  - fwmark: 1\n    quorum: -1\n");
    assert.deepEqual(await run(["check", p]), {
      code: 1,
      out: "",
      err: `${p}:3:13: quorum must be 0..2147483647\n`,
    });
  });

  it("prints IPv6 services as ipvsadm takes them, and IPv6 errors at file:line:col", async () => {
    const p = file(
      "v6.conf",
      "virtual_server 2001:db8::100 443 {\n lb_kind NAT\n persistence_timeout 60\n persistence_granularity 64\n" +
        " real_server 2001:db8:1::11 8443 { }\n}\nvirtual_server fwmark 5 {\n ip_family inet6\n}\n",
    );
    const r = await run(["check", p]);
    assert.deepEqual(r, {
      code: 0,
      out:
        "-A -t [2001:db8::100]:443 -s wlc -p 60 -M 64\n" +
        "-a -t [2001:db8::100]:443 -r [2001:db8:1::11]:8443 -m -w 1\n" +
        "-A -f 5 -6 -s wlc\n",
      err: "",
    });
    for (const line of r.out.trim().split("\n")) assert.equal(parseIpvsadm(line.split(" ")).kind, "ctl");
    const bad = file(
      "v6bad.yaml",
      "virtual_servers:\n  - address: 2001:db8::100\n    port: 80\n    real_servers:\n      - address: 2001:db8:1::1::1\n",
    );
    assert.deepEqual(await run(["check", bad]), {
      code: 1,
      out: "",
      err: `${bad}:5:18: address must be an IPv4 or IPv6 address\n`,
    });
  });

  it("prints IPv6 local addresses as -P lines, and refuses one an IPv4 service cannot take at its line", async () => {
    const p = file(
      "laddr6.conf",
      "virtual_server 2001:db8::100 80 {\n lb_kind FNAT\n laddr_group_name L\n" +
        " real_server 2001:db8:1::11 80 { }\n real_server 10.0.1.11 80 { }\n}\n" +
        "local_address_group L {\n 2001:db8:ff::10-11 dpdk0\n 10.0.2.1\n}\n",
    );
    const r = await run(["check", p]);
    assert.deepEqual(r, {
      code: 0,
      out:
        "-A -t [2001:db8::100]:80 -s wlc\n" +
        "-a -t [2001:db8::100]:80 -r [2001:db8:1::11]:80 --fullnat -w 1\n" +
        "-a -t [2001:db8::100]:80 -r 10.0.1.11:80 --fullnat -w 1\n" +
        "-P -t [2001:db8::100]:80 -z 2001:db8:ff::10\n" +
        "-P -t [2001:db8::100]:80 -z 2001:db8:ff::11\n" +
        "-P -t [2001:db8::100]:80 -z 10.0.2.1\n",
      err: "",
    });
    for (const line of r.out.trim().split("\n")) assert.equal(parseIpvsadm(line.split(" ")).kind, "ctl");
    const bad = file(
      "laddr6bad.yaml",
      "virtual_servers:\n  - address: 10.0.0.1\n    port: 80\n    lb_kind: FULLNAT\n    local_addresses:\n      - 10.0.2.1\n      - 2001:db8:ff::10\n",
    );
    const e = await run(["check", bad]);
    assert.equal(e.code, 1);
    assert.match(
      e.err,
      /laddr6bad\.yaml:7:9: local address 2001:db8:ff::10 is IPv6, TCP 10\.0\.0\.1:80 IPv4: /,
    );
  });

  it("exits 1 for a missing file and 2 for usage errors", async () => {
    assert.equal((await run(["check", join(dir, "none.conf")])).code, 1);
    assert.equal((await run(["check"])).code, 2);
    assert.equal((await run(["lint", "x"])).code, 2);
    assert.equal((await run(["check", "--format", "json", "x"])).code, 2);
  });
});

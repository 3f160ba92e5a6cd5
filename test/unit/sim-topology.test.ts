import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatIPv4, readU32 } from "../../src/core/addr.js";
import { ARP_REPLY, ARP_REQUEST, writeArp } from "../../src/core/packet/arp.js";
import { BROADCAST_MAC, parseMac, writeEthHeader } from "../../src/core/packet/eth.js";
import { ETH_P_ARP, ETH_P_IP } from "../../src/core/packet/flow.js";
import { ipipEncap } from "../../src/core/packet/ipip.js";
import { httpGet, udpRequest } from "../../src/sim/apps.js";
import { SimClock } from "../../src/sim/clock.js";
import { ip } from "../../src/sim/host.js";
import { buildLab, LAB, LAB_MACS, type Lab, type LabMethod } from "../../src/sim/topology.js";

/**
 * A stand-in director, just enough to exercise the lab's wiring: answers ARP for the VIP on
 * eth0 and sends every VIP datagram to one real server, by DR (MAC rewrite) or TUN (IPIP).
 */
function stubDirector(lab: Lab, mode: "dr" | "tun", rsMac: string, rsAddr: string) {
  const seen: Array<{ ifindex: number; arp: boolean; src: string; dst: string }> = [];
  const eth0 = lab.directorIfaces[0];
  const eth1 = lab.directorIfaces[1];
  const dstMac = parseMac(rsMac) as Uint8Array;
  const send = lab.attachDirector((ifindex, buf, len) => {
    const arp = buf[12] === 0x08 && buf[13] === 0x06;
    seen.push({
      ifindex,
      arp,
      src: formatIPv4(readU32(buf, arp ? 28 : 26)),
      dst: formatIPv4(readU32(buf, arp ? 38 : 30)),
    });
    if (arp) {
      if (ifindex === 1 && buf[21] === ARP_REQUEST && readU32(buf, 38) === lab.vip) {
        const out = new Uint8Array(42);
        const sha = buf.slice(22, 28);
        writeEthHeader(out, 0, sha, eth0.mac, ETH_P_ARP);
        writeArp(out, 14, ARP_REPLY, eth0.mac, lab.vip, sha, readU32(buf, 28));
        send(1, out, 0, 42);
      }
      return;
    }
    if (ifindex !== 1 || readU32(buf, 30) !== lab.vip) return;
    if (mode === "dr") {
      writeEthHeader(buf, 0, dstMac, eth1.mac, ETH_P_IP);
      send(2, buf, 0, len);
      return;
    }
    const ipLen = len - 14;
    const out = new Uint8Array(14 + 20 + ipLen);
    ipipEncap(out, 14, buf, 14, ipLen, ip(LAB.dirEth1), ip(rsAddr), 64, 0, false);
    writeEthHeader(out, 0, dstMac, eth1.mac, ETH_P_IP);
    send(2, out, 0, out.length);
  });
  return { send, seen };
}

function get(lab: Lab, path = "/"): string {
  let out = "";
  httpGet(lab.hosts.client, LAB.vip, 80, path, {}, (err, r) => {
    out = err !== null ? err.code : `${r?.status} ${new TextDecoder().decode(r?.body)}`;
  });
  lab.clock.runUntilIdle();
  return out;
}

describe("sim lab topology", () => {
  it("DR: the request goes through the director, the reply from r1 straight back via x", () => {
    const lab = buildLab(new SimClock(), "dr");
    const d = stubDirector(lab, "dr", LAB_MACS.r1, LAB.r1);
    assert.equal(get(lab), "200 r1\n");
    // The director never sees a reply datagram: the LAN switch sends them to x only.
    assert.ok(d.seen.every((s) => s.arp || s.src === LAB.client));
    assert.ok(lab.hosts.x.counters.forwarded > 0);
  });

  it("TUN: IPIP to r4 across the router, decapsulated onto its lo VIP", () => {
    const lab = buildLab(new SimClock(), "tun");
    stubDirector(lab, "tun", LAB_MACS.xLan, LAB.r4);
    assert.equal(get(lab, "/bytes/100000").slice(0, 4), "200 ");
    assert.equal(lab.hosts.r4.counters.ipipDecap > 0, true);
  });

  it("an added client reaches the VIP through the same director", () => {
    const lab = buildLab(new SimClock(), "dr");
    stubDirector(lab, "dr", LAB_MACS.r3, LAB.r3);
    const c2 = lab.addClient("c2", "198.18.0.3");
    let out = "";
    httpGet(c2, LAB.vip, 8080, "/", {}, (err, r) => {
      out = err !== null ? err.code : new TextDecoder().decode(r?.body);
    });
    lab.clock.runUntilIdle();
    assert.equal(out, "r3\n");
  });

  it("UDP echo through the DR stub answers from the VIP", () => {
    const lab = buildLab(new SimClock(), "dr");
    stubDirector(lab, "dr", LAB_MACS.r2, LAB.r2);
    let got = "";
    udpRequest(lab.hosts.client, LAB.vip, 53, "q", {}, (err, d, from) => {
      got =
        err !== null ? err.code : `${new TextDecoder().decode(d ?? new Uint8Array())} ${formatIPv4(from)}`;
    });
    lab.clock.runUntilIdle();
    assert.equal(got, `r2 ${LAB.vip}`);
  });

  const arpCases: Array<{ method: LabMethod; answers: boolean }> = [
    { method: "dr", answers: false },
    { method: "tun", answers: false },
    { method: "nat", answers: false },
  ];
  for (const c of arpCases) {
    it(`${c.method}: no real server answers ARP for the VIP on the LAN`, () => {
      const lab = buildLab(new SimClock(), c.method);
      const d = stubDirector(lab, "dr", LAB_MACS.r1, LAB.r1);
      const eth1 = lab.directorIfaces[1];
      const req = new Uint8Array(42);
      writeEthHeader(req, 0, BROADCAST_MAC, eth1.mac, ETH_P_ARP);
      writeArp(req, 14, ARP_REQUEST, eth1.mac, ip(LAB.dirEth1), new Uint8Array(6), lab.vip);
      d.send(2, req, 0, 42);
      lab.clock.runUntilIdle();
      assert.equal(
        d.seen.some((s) => s.arp && s.src === LAB.vip),
        c.answers,
      );
    });
  }

  it("a misconfigured DR real server (arp_ignore=0) does answer ARP for the VIP", () => {
    const lab = buildLab(new SimClock(), "dr");
    lab.hosts.r2.arpIgnore = 0;
    const d = stubDirector(lab, "dr", LAB_MACS.r1, LAB.r1);
    const eth1 = lab.directorIfaces[1];
    const req = new Uint8Array(42);
    writeEthHeader(req, 0, BROADCAST_MAC, eth1.mac, ETH_P_ARP);
    writeArp(req, 14, ARP_REQUEST, eth1.mac, ip(LAB.dirEth1), new Uint8Array(6), lab.vip);
    d.send(2, req, 0, 42);
    lab.clock.runUntilIdle();
    assert.deepEqual(
      d.seen.filter((s) => s.arp && s.src === LAB.vip).map((s) => s.ifindex),
      [2],
    );
  });

  it("NAT: r4 reaches the client net through x and the director's LAN address", () => {
    const lab = buildLab(new SimClock(), "nat");
    const d = stubDirector(lab, "dr", LAB_MACS.r1, LAB.r1);
    // The director answers ARP only for the VIP here; teach x the DIP's MAC as the engine would answer.
    const eth1 = lab.directorIfaces[1];
    lab.hosts.x.neigh.set(ip(LAB.dirEth1), { mac: eth1.mac, iface: lab.hosts.x.ifaces[0] });
    lab.hosts.r4.ping(LAB.client, () => {});
    lab.clock.runUntilIdle();
    assert.ok(d.seen.some((s) => s.ifindex === 2 && !s.arp && s.src === LAB.r4 && s.dst === LAB.client));
  });

  it("routes between the LAN and the routed net via x", () => {
    const lab = buildLab(new SimClock(), "fullnat");
    let ttl = 0;
    lab.hosts.r1.ping(LAB.r4, (err, r) => {
      assert.equal(err, null);
      ttl = r?.ttl ?? 0;
    });
    lab.clock.runUntilIdle();
    assert.equal(ttl, 63);
  });

  it("exposes the director's interfaces and routes in src/core/route.ts form", () => {
    const lab = buildLab(new SimClock(), "nat");
    assert.deepEqual(
      lab.directorIfaces.map(
        (i) => `${i.ifindex} ${i.name} ${formatIPv4(i.addrs[0].addr)}/${i.addrs[0].prefix} ${i.mtu}`,
      ),
      ["1 eth0 198.18.0.1/24 1500", "2 eth1 198.18.1.1/24 1500"],
    );
    assert.deepEqual(
      lab.directorRoutes.map(
        (r) => `${formatIPv4(r.dst)}/${r.prefix} via ${formatIPv4(r.via)} if ${r.ifindex}`,
      ),
      ["198.18.2.0/24 via 198.18.1.254 if 2"],
    );
    assert.equal(formatIPv4(lab.vip), "198.18.0.100");
    assert.equal(formatIPv4(lab.lip), "198.18.1.100");
    assert.deepEqual(
      lab.servers.map((s) => `${s.name} ${formatIPv4(s.addr)}`),
      ["r1 198.18.1.11", "r2 198.18.1.12", "r3 198.18.1.13", "r4 198.18.2.14"],
    );
  });
});

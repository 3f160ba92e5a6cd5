// The scale-out lab's director configurations (src/lab/scale.ts directorYaml), read back with the
// project's own YAML parser: what `tsvs daemon --config` runs on each director. Every director
// gets the same service with the real servers in the same order (mh's table depends on it), the
// sync daemon as master and backup (no VRRP instance), under NAT one return gateway per director
// that it is master of and the others back up at distinct priorities, and the bgp section.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseYamlConfig } from "../../src/config/yaml.js";
import { formatIPv4 } from "../../src/core/addr.js";
import { directorPlan, directorYaml, SCALE_ADDR, scaleNames } from "../../src/lab/scale.js";
import { LAB_METHODS } from "../../src/lab/topology.js";

const names = scaleNames("tsvs");
const DIRECTORS = [1, 2, 3];

function parsed(k: number, method: (typeof LAB_METHODS)[number], sync = true, bgp = true) {
  const text = directorYaml(names, k, { method, scheduler: "mh", sync, bgp, directors: DIRECTORS });
  return parseYamlConfig(text, `d${k}.yaml`);
}

describe("lab --directors: the directors' tsvs YAML", () => {
  for (const method of LAB_METHODS) {
    it(`${method}: every director has the same service, real servers in the same order, inhibited on failure`, () => {
      const services = DIRECTORS.map((k) => {
        const { model, warnings } = parsed(k, method);
        assert.deepEqual(warnings, []);
        assert.equal(model.virtualServers.length, 1);
        const vs = model.virtualServers[0];
        return {
          vip: formatIPv4(vs.addr),
          port: vs.port,
          scheduler: vs.scheduler,
          lbKind: vs.lbKind,
          servers: vs.realServers.map((r) => `${formatIPv4(r.addr)}:${r.port} ${r.inhibitOnFailure}`),
        };
      });
      assert.deepEqual(services[0], {
        vip: SCALE_ADDR.VIP,
        port: 80,
        scheduler: "mh",
        lbKind: method === "fullnat" ? "FULLNAT" : method.toUpperCase(),
        servers: ["198.18.82.21:80 true", "198.18.82.22:80 true", "198.18.82.23:80 true"],
      });
      assert.deepEqual(services[1], services[0]);
      assert.deepEqual(services[2], services[0]);
    });
  }

  it("sync: master and backup at once (an lvs_sync_daemon tied to no instance), the same syncid everywhere", () => {
    for (const k of DIRECTORS) {
      const sd = parsed(k, "dr").model.ha.lvsSyncDaemon;
      assert.deepEqual([sd?.iface, sd?.instance, sd?.syncid], ["eth1", null, SCALE_ADDR.SYNC_ID]);
    }
    assert.equal(parsed(1, "dr", false).model.ha.lvsSyncDaemon, null);
  });

  it("NAT: one return gateway per director, its own at 150, the others' at distinct lower priorities", () => {
    for (const k of DIRECTORS) {
      const insts = parsed(k, "nat").model.ha.instances;
      assert.deepEqual(
        insts.map((i) => [i.name, i.iface, i.vrid, `${formatIPv4(i.addrs[0].addr)}/${i.addrs[0].prefix}`]),
        DIRECTORS.map((j) => [
          `RET_${j}`,
          "eth1",
          SCALE_ADDR.VRID_BASE + j,
          `${directorPlan(names, j).returnGw}/24`,
        ]),
      );
      assert.equal(insts[k - 1].priority, 150);
    }
    // For each gateway, its backups never tie: the takeover order is fixed.
    for (const j of DIRECTORS) {
      const prios = DIRECTORS.map((k) => parsed(k, "nat").model.ha.instances[j - 1].priority);
      assert.equal(new Set(prios).size, DIRECTORS.length, `RET_${j}: ${prios}`);
    }
    assert.deepEqual(parsed(1, "dr").model.ha.instances, [], "DR: no return gateway");
  });

  it("FULLNAT: each director its own local address", () => {
    const lips = DIRECTORS.map((k) =>
      parsed(k, "fullnat").model.virtualServers[0].localAddresses?.map((l) => formatIPv4(l.addr)),
    );
    assert.deepEqual(
      lips,
      DIRECTORS.map((k) => [directorPlan(names, k).lip]),
    );
  });

  it("bgp: the director's AS and router id, the router as neighbour, the lab's timers", () => {
    const b = parsed(2, "dr").model.bgp;
    assert.ok(b !== undefined);
    assert.deepEqual(
      [b.routerId, b.localAs, b.neighbors, b.holdTime, b.keepaliveTime, b.connectRetryTime],
      ["198.18.81.12", 65012, [{ address: SCALE_ADDR.X_UPLINK, as: SCALE_ADDR.ROUTER_AS }], 3, 1, 1],
    );
    assert.equal(parsed(2, "dr", true, false).model.bgp, undefined);
  });
});

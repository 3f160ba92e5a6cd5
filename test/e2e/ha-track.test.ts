// A vrrp_sync_group's track_interface on a link that is down when the daemon starts (keepalived
// applies every tracker before an instance starts, vrrp_init_state): the group's members start in
// FAULT and stay there past the master-down time, where a start that told only the instances'
// own trackers let them become MASTER of addresses the group said it could not serve. When the
// link comes up the group leaves FAULT and, alone on its nets, takes over.
//
// One director of the HA topology (ha-helpers.ts, namespaces tsvs-hatk<pid>-*) with a veth pair
// of its own, trk0/trk1, left down. VRRPv3, advert_int 0.3 s.

import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ip } from "../../src/io/netns.js";
import { sleep } from "../../src/lab/proc.js";
import { Children, startDaemon } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";
import {
  buildHa,
  HA,
  haNames,
  removeHa,
  removeStaleHa,
  stateOf,
  waitState,
  workDir,
  writeFile,
} from "./ha-helpers.js";

const skip = e2eSkip("VRRP sync group tracker e2e", ["nftables"]);

const ADVERT_S = 0.3;
/** The master-down time at priority 150: 3 × advert + (256 − 150)/256 × advert, ms. */
const DOWN_MS = 3 * ADVERT_S * 1000 + ((256 - 150) / 256) * ADVERT_S * 1000;

function conf(): string {
  const inst = (name: string, iface: string, vrid: number, vip: string): string => `vrrp_instance ${name} {
    state BACKUP
    interface ${iface}
    virtual_router_id ${vrid}
    priority 150
    advert_int ${ADVERT_S}
    version 3
    virtual_ipaddress {
        ${vip}/24
    }
}
`;
  return `global_defs {
    router_id tsvs-track
}

vrrp_sync_group G1 {
    group {
        VI_1
        VI_2
    }
    track_interface {
        trk0
    }
}

${inst("VI_1", "eth0", 61, HA.VIP)}
${inst("VI_2", "eth1", 62, HA.GW)}`;
}

describe("a sync group's tracked link down when the daemon starts", { skip }, () => {
  const n = haNames("tk");
  const dir = workDir(n);
  const children = new Children();

  before(async () => {
    await removeStaleHa("tk");
    buildHa(n);
    ip("-n", n.d1, "link", "add", "trk0", "type", "veth", "peer", "name", "trk1");
    const file = writeFile(join(dir, "d1.conf"), conf());
    await startDaemon(n.d1, ["--config", file, "--http", "off", "--warmup-ms", "0"], children);
  });

  after(async () => {
    await children.stopAll();
    await removeHa(n);
    rmSync(dir, { recursive: true, force: true });
  });

  it("both members are in FAULT from the start and stay there past the master-down time", async () => {
    await waitState(n.d1, "FAULT", 5000, "VI_1");
    await sleep(DOWN_MS + 500);
    assert.deepEqual([stateOf(n.d1, "VI_1"), stateOf(n.d1, "VI_2")], ["FAULT", "FAULT"]);
  });

  it("the link comes up: the group leaves FAULT and, alone, takes over", async () => {
    ip("-n", n.d1, "link", "set", "trk1", "up");
    ip("-n", n.d1, "link", "set", "trk0", "up");
    await waitState(n.d1, "MASTER", 5000, "VI_1");
    await waitState(n.d1, "MASTER", 3000, "VI_2");
  });
});

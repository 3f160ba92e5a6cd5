import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { diff } from "../../src/config/diff.js";
import { parseKeepalived } from "../../src/config/keepalived.js";
import { commandToIpvsadm, toCommands } from "../../src/config/model.js";
import { haSummary } from "../../src/config/vrrp.js";
import { parseYamlConfig } from "../../src/config/yaml.js";
import { parseIPv4 } from "../../src/core/addr.js";
import { vrrpInstanceDefaults } from "../../src/core/vrrp/config.js";
import { configErrors, fixture } from "../support/config.js";

const ip = (s: string) => parseIPv4(s)!;

const errorsOf = configErrors;
const kaErrors = (src: string) => errorsOf(() => parseKeepalived(src, "k.conf"));
const yamlErrors = (src: string) => errorsOf(() => parseYamlConfig(src, "c.yaml"));
const kaWarnings = (src: string) =>
  parseKeepalived(src, "k.conf").warnings.map((w) => `${w.line}:${w.col}: ${w.message}`);
const ka = (src: string) => parseKeepalived(src, "k.conf").model.ha;

/** A vrrp_instance with the given body lines. */
const inst = (body: string, name = "VI_1") =>
  `vrrp_instance ${name} {\n interface eth0\n virtual_router_id 51\n${body}}\n`;

describe("keepalived.conf VRRP: the realistic director (two instances, sync group, script, sync daemon)", () => {
  const { model, warnings } = parseKeepalived(fixture("keepalived-ha.conf"), "ha.conf");
  const ha = model.ha;

  it("keeps the virtual servers", () => {
    assert.deepEqual(toCommands(model).map(commandToIpvsadm), [
      "-A -t 198.18.72.100:80 -s wlc -p 50",
      "-a -t 198.18.72.100:80 -r 198.18.73.21:8080 -m -w 1",
      "-a -t 198.18.72.100:80 -r 198.18.73.22:8080 -m -w 1",
      "-A -t 198.18.72.101:443 -s rr",
      "-a -t 198.18.72.101:443 -r 198.18.73.21:443 -m -w 2",
    ]);
  });

  it("warns only where keepalived would act differently, with file:line:col", () => {
    assert.deepEqual(
      warnings.map((w) => `${w.file}:${w.line}:${w.col}: ${w.message}`),
      [
        "ha.conf:13:4: script_user in global_defs: scripts run as the daemon's user (ignored)",
        "ha.conf:53:9: vrrp_instance VI_1: weight of track_interface eth1 ignored (member of vrrp_sync_group G1: a failure faults the group)",
        "ha.conf:56:9: vrrp_instance VI_1: weight of track_script chk_ipvs ignored (member of vrrp_sync_group G1: a failure faults the group)",
      ],
    );
  });

  it("reads global_defs: router_id, the vrrp_garp defaults, lvs_sync_daemon", () => {
    assert.equal(ha.routerId, "LVS_D1");
    assert.deepEqual(ha.lvsSyncDaemon, {
      iface: "eth1",
      instance: "VI_1",
      syncid: 7,
      maxlen: 1460,
      port: 8848,
      ttl: 1,
      group: ip("224.0.0.81"),
    });
  });

  it("reads VI_1 with every default keepalived would apply", () => {
    assert.deepEqual(
      ha.instances[0],
      vrrpInstanceDefaults({
        name: "VI_1",
        iface: "eth0",
        vrid: 51,
        priority: 150,
        initialState: "BACKUP",
        nopreempt: true,
        authPass: "s3cr3tpw",
        addrs: [
          { addr: ip("198.18.72.100"), prefix: 24, dev: "eth0" },
          { addr: ip("198.18.72.101"), prefix: 24 },
        ],
        excludedAddrs: [{ addr: ip("198.18.72.200"), prefix: 32 }],
        // garp_master_delay 1 is the instance's; the refresh and the lower-priority delay come
        // from global_defs (vrrp_garp_master_refresh 60, vrrp_garp_master_delay 2).
        garpMasterDelayMs: 1000,
        garpMasterRefreshMs: 60_000,
        garpLowerPrioDelayMs: 2000,
        trackInterfaces: [
          { name: "eth0", weight: 0, reverse: false },
          { name: "eth1", weight: 0, reverse: false },
        ],
        trackScripts: [{ name: "chk_ipvs", weight: 0, reverse: false }],
        notify: "/etc/keepalived/notify-all.sh",
      }),
    );
  });

  it("reads VI_2, the NAT gateway", () => {
    const vi2 = ha.instances[1];
    assert.equal(vi2.iface, "eth1");
    assert.equal(vi2.vrid, 52);
    assert.deepEqual(vi2.addrs, [{ addr: ip("198.18.73.1"), prefix: 24 }]);
    assert.equal(vi2.garpMasterDelayMs, 2000);
    assert.equal(vi2.lowerPrioNoAdvert, true);
    assert.equal(vi2.version, 2);
    assert.equal(vi2.advertIntMs, 1000);
    assert.equal(vi2.mcastDst, ip("224.0.0.18"));
  });

  it("reads the sync group and the script", () => {
    assert.deepEqual(ha.syncGroups, [
      {
        name: "G1",
        members: ["VI_1", "VI_2"],
        trackInterfaces: [],
        trackScripts: [],
        notifyMaster: "/etc/keepalived/notify.sh master",
        notifyBackup: "/etc/keepalived/notify.sh backup",
        notifyFault: "/etc/keepalived/notify.sh fault",
        notifyStop: null,
        notify: null,
      },
    ]);
    assert.deepEqual(ha.scripts, [
      {
        name: "chk_ipvs",
        script: "/usr/bin/pgrep -x tsvs",
        intervalMs: 2000,
        timeoutMs: 1000,
        weight: -20,
        reverse: false,
        rise: 2,
        fall: 3,
        initFail: false,
      },
    ]);
  });

  it("means the same as its YAML form (tsvs-ha.yaml)", () => {
    const y = parseYamlConfig(fixture("tsvs-ha.yaml"), "ha.yaml");
    assert.deepEqual(y.model.ha, ha);
    assert.deepEqual(toCommands(y.model).map(commandToIpvsadm), toCommands(model).map(commandToIpvsadm));
    assert.deepEqual(
      y.warnings.map((w) => `${w.line}:${w.col}: ${w.message}`),
      [
        "29:31: vrrp_instance VI_1: weight of track_interface eth1 ignored (member of vrrp_sync_group G1: a failure faults the group)",
        "30:22: vrrp_instance VI_1: weight of track_script chk_ipvs ignored (member of vrrp_sync_group G1: a failure faults the group)",
      ],
    );
  });

  it("summarises one line per instance, group, script and sync daemon", () => {
    assert.deepEqual(haSummary(ha), [
      "vrrp_instance VI_1: eth0 vrid 51 BACKUP priority 150 v2 advert 1s nopreempt auth PASS vips 198.18.72.100/24@eth0,198.18.72.101/24 excluded 198.18.72.200/32 track_interface eth0,eth1 track_script chk_ipvs",
      "vrrp_instance VI_2: eth1 vrid 52 BACKUP priority 150 v2 advert 1s nopreempt auth PASS vips 198.18.73.1/24",
      "vrrp_sync_group G1: VI_1 VI_2",
      'vrrp_script chk_ipvs: interval 2s weight -20 "/usr/bin/pgrep -x tsvs"',
      "lvs_sync_daemon: eth1 follows VI_1 syncid 7 group 224.0.0.81 port 8848",
    ]);
  });

  it("leaves the reload diff to the virtual servers", () => {
    const other = parseKeepalived(
      fixture("keepalived-ha.conf").replace("priority 150", "priority 100"),
      "ha.conf",
    ).model;
    assert.deepEqual(diff(model, other), []);
  });
});

describe("keepalived.conf VRRP defaults", () => {
  it("gives an empty HaConfig without VRRP sections", () => {
    assert.deepEqual(ka("virtual_server fwmark 1 {\n}\n"), {
      routerId: null,
      instances: [],
      syncGroups: [],
      scripts: [],
      lvsSyncDaemon: null,
    });
  });

  it("applies keepalived's defaults to a minimal instance", () => {
    assert.deepEqual(ka(inst("")).instances[0], {
      ...vrrpInstanceDefaults({ name: "VI_1", iface: "eth0", vrid: 51 }),
      priority: 100,
      initialState: "BACKUP",
      version: 2,
      advertIntMs: 1000,
      garpMasterDelayMs: 5000,
      garpMasterRepeat: 5,
      garpLowerPrioDelayMs: 5000,
      garpLowerPrioRepeat: 5,
      downTimerAdverts: 3,
      mcastDst: ip("224.0.0.18"),
    });
  });

  it("gives priority 255 to state MASTER without a priority, 100 otherwise", () => {
    assert.equal(ka(inst(" state MASTER\n")).instances[0].priority, 255);
    assert.equal(ka(inst(" state MASTER\n priority 120\n")).instances[0].priority, 120);
    assert.equal(ka(inst(" state BACKUP\n")).instances[0].priority, 100);
  });

  it("takes version and garp defaults from global_defs", () => {
    const ha = ka(
      "global_defs {\n vrrp_version 3\n vrrp_garp_master_delay 10\n vrrp_garp_master_repeat 2\n" +
        " vrrp_garp_master_refresh_repeat 4\n vrrp_garp_lower_prio_repeat 1\n vrrp_garp_lower_prio_delay 3\n}\n" +
        inst(" advert_int 0.5\n"),
    );
    const i = ha.instances[0];
    assert.equal(i.version, 3);
    assert.equal(i.advertIntMs, 500);
    assert.equal(i.garpMasterDelayMs, 10_000);
    assert.equal(i.garpMasterRepeat, 2);
    assert.equal(i.garpMasterRefreshRepeat, 4);
    assert.equal(i.garpLowerPrioDelayMs, 3000);
    assert.equal(i.garpLowerPrioRepeat, 1);
    assert.equal(ka(inst(" version 2\n garp_master_delay 1\n")).instances[0].garpLowerPrioDelayMs, 5000);
  });

  it("rounds a fractional VRRPv2 advert_int to whole seconds, with a warning", () => {
    const src = inst(" advert_int 1.5\n");
    assert.equal(ka(src).instances[0].advertIntMs, 2000);
    assert.deepEqual(kaWarnings(src), ["4:13: VRRPv2 advert_int must be whole seconds: 1.5 rounded to 2"]);
    assert.equal(ka(inst(" version 3\n advert_int 0.25\n")).instances[0].advertIntMs, 250);
    assert.deepEqual(kaWarnings(inst(" version 3\n advert_int 0.125\n")), [
      "5:13: VRRPv3 advert_int is in units of 10 ms: 0.125 rounded to 0.13",
    ]);
  });

  it("reads authentication PASS (8 characters), ignores it with v3 as keepalived", () => {
    const auth = (p: string) => ` authentication {\n  auth_type PASS\n  auth_pass ${p}\n }\n`;
    assert.equal(ka(inst(auth("secret"))).instances[0].authPass, "secret");
    assert.equal(ka(inst(auth("longpassword"))).instances[0].authPass, "longpass");
    assert.deepEqual(kaWarnings(inst(auth("longpassword"))), [
      "6:13: auth_pass is longer than 8 characters: only the first 8 are used",
    ]);
    const v3 = inst(` version 3\n${auth("secret")}`);
    assert.equal(ka(v3).instances[0].authPass, null);
    assert.deepEqual(kaWarnings(v3), [
      "5:2: vrrp_instance VI_1: VRRP version 3 does not support authentication (ignored, as keepalived)",
    ]);
  });

  it("clears nopreempt and preempt_delay with state MASTER, with a warning as keepalived", () => {
    const src = inst(" state MASTER\n priority 150\n nopreempt\n preempt_delay 10\n");
    const i = ka(src).instances[0];
    assert.equal(i.nopreempt, false);
    assert.equal(i.preemptDelayMs, 0);
    assert.deepEqual(kaWarnings(src), [
      "6:2: vrrp_instance VI_1: nopreempt does not work with state MASTER: cleared (as keepalived; use state BACKUP)",
      "7:2: vrrp_instance VI_1: preempt_delay does not work with state MASTER: cleared (as keepalived)",
    ]);
    const b = ka(inst(" preempt_delay 2.5\n")).instances[0];
    assert.equal(b.preemptDelayMs, 2500);
    assert.equal(ka(inst(" nopreempt\n preempt\n")).instances[0].nopreempt, false);
  });

  it("reads addresses, unicast, mcast_dst_ip, trackers, notify scripts and the flags", () => {
    const i = ka(
      "vrrp_script chk {\n script /bin/true\n weight 10 reverse\n}\n" +
        inst(
          " virtual_ipaddress {\n  10.0.0.1/24 dev eth1 label eth1:1\n  10.0.0.2\n }\n" +
            " unicast_src_ip 10.0.0.10\n unicast_peer {\n  10.0.0.11\n  10.0.0.12 min_ttl 250\n }\n" +
            " mcast_dst_ip 224.0.0.99\n" +
            " track_interface {\n  eth1 weight -30 reverse\n }\n" +
            " track_script {\n  chk\n }\n" +
            " notify_master \"/bin/n.sh 'to master'\"\n notify_backup /bin/b.sh\n notify_fault /bin/f.sh\n notify_stop /bin/s.sh\n" +
            " garp_master_refresh 30\n garp_master_refresh_repeat 2\n garp_lower_prio_delay 1\n garp_lower_prio_repeat 3\n" +
            " down_timer_adverts 5\n lower_prio_no_advert\n higher_prio_send_advert on\n use_vmac vrrp51\n" +
            " v3_checksum_as_v2\n old_unicast_checksum\n dont_track_primary\n smtp_alert\n",
        ),
    ).instances[0];
    assert.deepEqual(i.addrs, [
      { addr: ip("10.0.0.1"), prefix: 24, dev: "eth1" },
      { addr: ip("10.0.0.2"), prefix: 32 },
    ]);
    assert.equal(i.unicastSrc, ip("10.0.0.10"));
    assert.deepEqual(i.unicastPeers, [ip("10.0.0.11"), ip("10.0.0.12")]);
    assert.equal(i.mcastDst, ip("224.0.0.99"));
    assert.deepEqual(i.trackInterfaces, [{ name: "eth1", weight: -30, reverse: true }]);
    // A track_script without a weight takes the script's weight and reverse.
    assert.deepEqual(i.trackScripts, [{ name: "chk", weight: 10, reverse: true }]);
    assert.equal(i.notifyMaster, "/bin/n.sh 'to master'");
    assert.equal(i.notifyBackup, "/bin/b.sh");
    assert.equal(i.notifyFault, "/bin/f.sh");
    assert.equal(i.notifyStop, "/bin/s.sh");
    assert.equal(i.garpMasterRefreshMs, 30_000);
    assert.equal(i.garpMasterRefreshRepeat, 2);
    assert.equal(i.garpLowerPrioDelayMs, 1000);
    assert.equal(i.garpLowerPrioRepeat, 3);
    assert.equal(i.downTimerAdverts, 5);
    assert.equal(i.lowerPrioNoAdvert, true);
    assert.equal(i.higherPrioSendAdvert, true);
    assert.equal(i.useVmac, true);
    assert.equal(i.v3ChecksumAsV2, true);
  });

  it("reads vrrp_script defaults: interval 1 s, timeout = interval, rise/fall 1", () => {
    const ha = ka('vrrp_script s {\n script "/bin/x a"\n interval 3\n init_fail\n user nobody\n}\n');
    assert.deepEqual(ha.scripts, [
      {
        name: "s",
        script: "/bin/x a",
        intervalMs: 3000,
        timeoutMs: 3000,
        weight: 0,
        reverse: false,
        rise: 1,
        fall: 1,
        initFail: true,
      },
    ]);
  });

  it("reads lvs_sync_daemon's positional instance, and syncid = the instance's VRID by default", () => {
    const sd = (line: string) => ka(`global_defs {\n ${line}\n}\n${inst("")}`).lvsSyncDaemon;
    assert.deepEqual(sd("lvs_sync_daemon eth1 VI_1"), {
      iface: "eth1",
      instance: "VI_1",
      syncid: 51,
      maxlen: null,
      port: null,
      ttl: null,
      group: null,
    });
    assert.equal(sd("lvs_sync_daemon eth1 VI_1 id 7")?.syncid, 7);
    assert.deepEqual(sd("lvs_sync_daemon eth1"), {
      iface: "eth1",
      instance: null,
      syncid: 0,
      maxlen: null,
      port: null,
      ttl: null,
      group: null,
    });
    assert.deepEqual(ka(`${inst(" lvs_sync_daemon_interface eth2\n")}`).lvsSyncDaemon, {
      iface: "eth2",
      instance: "VI_1",
      syncid: 51,
      maxlen: null,
      port: null,
      ttl: null,
      group: null,
    });
  });

  it("reads sync group members written on one line, and keeps weights with sync_group_tracking_weight", () => {
    const ha = ka(
      `${inst(" track_interface {\n  eth1 weight 5\n }\n")}${inst("", "VI_2").replace("51", "52")}` +
        "vrrp_sync_group G {\n group { VI_1 VI_2 }\n sync_group_tracking_weight\n}\n",
    );
    assert.deepEqual(ha.syncGroups[0].members, ["VI_1", "VI_2"]);
    assert.deepEqual(ha.instances[0].trackInterfaces, [{ name: "eth1", weight: 5, reverse: false }]);
  });

  it("drops weighted trackers of the address owner (priority 255), as keepalived", () => {
    const src = inst(" priority 255\n track_interface {\n  eth1 weight 5\n  eth2\n }\n");
    assert.deepEqual(ka(src).instances[0].trackInterfaces, [{ name: "eth2", weight: 0, reverse: false }]);
    assert.deepEqual(kaWarnings(src), [
      "1:1: vrrp_instance VI_1: track_interface eth1 with a weight ignored (the address owner's priority does not move)",
    ]);
  });

  it("accepts the common global_defs keys silently and warns where behaviour would change", () => {
    assert.deepEqual(
      kaWarnings(
        "global_defs {\n notification_email {\n  a@b.c\n }\n smtp_server 10.0.0.1\n enable_script_security\n" +
          " vrrp_skip_check_adv_addr\n vrrp_iptables\n vrrp_strict\n lvs_timeouts tcp 900\n bogus_key 1\n}\n",
      ),
      [
        "9:2: vrrp_strict in global_defs: strict mode (RFC-only behaviour, no authentication, firewall rules) is not implemented (ignored)",
        "10:2: lvs_timeouts in global_defs: set the IPVS timeouts with `tsvs ipvsadm --set` (ignored)",
        "11:2: bogus_key in global_defs is not supported by tsvs (ignored)",
      ],
    );
  });

  it("warns about unknown and unsupported keywords inside the blocks, with their position", () => {
    assert.deepEqual(
      kaWarnings(
        `${inst(" strict_mode\n track_file {\n  f\n }\n wibble 3\n")}` +
          "vrrp_script s {\n script /bin/true\n frobnicate\n}\n" +
          "vrrp_sync_group G {\n group {\n  VI_1\n }\n colour red\n}\n",
      ),
      [
        "4:2: strict_mode in vrrp_instance: strict mode is not implemented (ignored)",
        "5:2: track_file in vrrp_instance: not supported by tsvs (ignored)",
        "8:2: wibble in vrrp_instance is not supported by tsvs (ignored)",
        "12:2: frobnicate in vrrp_script is not supported by tsvs (ignored)",
        "18:2: colour in vrrp_sync_group is not supported by tsvs (ignored)",
        "14:1: vrrp_sync_group G has only one member",
      ],
    );
  });

  it("reads notify_deleted as keepalived: a flag, an optional script, the first one kept", () => {
    const bare = ka(inst(" notify_deleted\n")).instances[0];
    assert.equal(bare.notifyDeleted, true);
    assert.equal(bare.notifyDeletedScript, null);
    assert.equal(ka(inst("")).instances[0].notifyDeleted, false);
    const src = inst(' notify_deleted "/bin/d.sh gone"\n notify_deleted /bin/other.sh\n');
    const withScript = ka(src).instances[0];
    assert.equal(withScript.notifyDeleted, true);
    assert.equal(withScript.notifyDeletedScript, "/bin/d.sh gone");
    assert.deepEqual(kaWarnings(src), ["5:2: (VI_1) notify_deleted already specified - ignoring"]);
  });

  it("warns that words after a notify script are keepalived's user/group", () => {
    assert.deepEqual(kaWarnings(inst(" notify_master /bin/x.sh arg\n")), [
      "4:26: notify_master: \"arg\" is keepalived's script user/group (ignored: scripts run as the daemon's user); quote the command line to pass arguments",
    ]);
  });
});

describe("keepalived.conf VRRP errors", () => {
  it("names file:line:col of every error (keepalived-ha-errors.conf)", () => {
    assert.deepEqual(
      errorsOf(() => parseKeepalived(fixture("keepalived-ha-errors.conf"), "e.conf")),
      [
        'e.conf:9:14: priority must be 1..255, not "300"',
        'e.conf:28:23: virtual_router_id must be 1..255, not "256"',
        "e.conf:30:19: auth_type AH (IPsec AH authentication) is not supported by tsvs",
        'e.conf:35:11: state must be MASTER or BACKUP, not "SLAVE"',
        "e.conf:3:31: lvs_sync_daemon: no vrrp_instance VI_9",
        "e.conf:11:9: vrrp_instance VI_1: track_script chk_missing: no vrrp_script chk_missing",
        "e.conf:15:9: (VI_1): address family must match VRRP instance [2001:db8::10/64]",
        "e.conf:18:1: vrrp_instance VI_1 is already defined at line 5",
        "e.conf:24:23: virtual_router_id 51 on eth0 is already used by vrrp_instance VI_1 (line 5)",
        "e.conf:39:16: advert_int 50 is out of range for VRRPv3 (0.01..40.95 s)",
        "e.conf:41:1: vrrp_instance VI_5 needs an interface",
        "e.conf:47:9: vrrp_sync_group G1: no vrrp_instance VI_7",
      ],
    );
  });

  for (const [name, src, want] of [
    ["a vrid of 0", inst("").replace("51", "0"), 'k.conf:3:20: virtual_router_id must be 1..255, not "0"'],
    ["a priority of 0", inst(" priority 0\n"), 'k.conf:4:11: priority must be 1..255, not "0"'],
    [
      "a missing virtual_router_id",
      "vrrp_instance V {\n interface eth0\n}\n",
      "k.conf:1:1: vrrp_instance V needs a virtual_router_id",
    ],
    [
      "a v2 advert_int over 255 s",
      inst(" advert_int 300\n"),
      'k.conf:4:13: advert_int must be 0.01..255, not "300"',
    ],
    [
      "an IPv6 unicast peer of an IPv4 instance",
      inst(" virtual_ipaddress {\n  10.0.0.1\n }\n unicast_peer {\n  fe80::1\n }\n"),
      "k.conf:8:3: Configuration error: VRRP instance[VI_1] and unicast peer address[fe80::1] MUST be of the same family",
    ],
    [
      "a unicast mcast_dst_ip",
      inst(" mcast_dst_ip 10.0.0.1\n"),
      "k.conf:4:15: mcast_dst_ip 10.0.0.1 is not a multicast address",
    ],
    [
      "a bad track weight",
      inst(" track_interface {\n  eth1 weight 300\n }\n"),
      'k.conf:5:15: weight must be -254..254, not "300"',
    ],
    [
      "a vrrp_script without script",
      "vrrp_script s {\n interval 1\n}\n",
      "k.conf:1:1: vrrp_script s needs a script",
    ],
    [
      "a duplicate vrrp_script",
      'vrrp_script s {\n script "a"\n}\nvrrp_script s {\n script "b"\n}\n',
      "k.conf:4:1: vrrp_script s is already defined at line 1",
    ],
    [
      "an instance in two sync groups",
      `${inst("")}vrrp_sync_group A {\n group {\n  VI_1\n }\n}\nvrrp_sync_group B {\n group {\n  VI_1\n }\n}\n`,
      "k.conf:12:3: vrrp_sync_group B: VI_1 is already in vrrp_sync_group A",
    ],
    [
      "auth_hmac",
      inst(" auth_hmac {\n  key x\n }\n"),
      "k.conf:4:2: auth_hmac (keepalived's HMAC-SHA256 extension) is not supported by tsvs",
    ],
    [
      "a non-multicast sync group",
      "global_defs {\n lvs_sync_daemon eth1 group 10.0.0.1\n}\n",
      "k.conf:2:29: lvs_sync_daemon group 10.0.0.1 is not multicast",
    ],
  ] as const) {
    it(`refuses ${name}`, () => {
      const errs = kaErrors(src);
      assert.ok(errs.includes(want), errs.join("\n"));
    });
  }
});

describe("tsvs YAML vrrp section", () => {
  const base = (inst: string) =>
    `virtual_servers: []\nvrrp:\n  instances:\n    - name: VI_1\n      interface: eth0\n      virtual_router_id: 51\n${inst}`;

  it("applies the same defaults as keepalived.conf", () => {
    const y = parseYamlConfig(base(""), "c.yaml").model.ha;
    assert.deepEqual(y, ka(inst("")));
    const m = parseYamlConfig(base("      state: MASTER\n"), "c.yaml").model.ha;
    assert.equal(m.instances[0].priority, 255);
  });

  it("takes notify_deleted as true, false or a command line", () => {
    const y = (v: string) =>
      parseYamlConfig(base(`      notify_deleted: ${v}\n`), "c.yaml").model.ha.instances[0];
    assert.deepEqual([y("true").notifyDeleted, y("true").notifyDeletedScript], [true, null]);
    assert.deepEqual([y("false").notifyDeleted, y("false").notifyDeletedScript], [false, null]);
    assert.deepEqual(
      [y('"/bin/d.sh gone"').notifyDeleted, y('"/bin/d.sh gone"').notifyDeletedScript],
      [true, "/bin/d.sh gone"],
    );
    assert.deepEqual(yamlErrors(base("      notify_deleted: 3\n")), [
      "c.yaml:7:23: notify_deleted must be true, false or a command line",
    ]);
  });

  it("gives an empty HaConfig without a vrrp section", () => {
    assert.deepEqual(parseYamlConfig("virtual_servers: []\n", "c.yaml").model.ha, ka(""));
  });

  it("names file:line:col of value errors and of cross-section errors", () => {
    assert.deepEqual(yamlErrors(base("      priority: 0\n")), ["c.yaml:7:17: priority must be 1..255"]);
    assert.deepEqual(yamlErrors(base('      virtual_ipaddress: [10.0.0.1/24, "2001:db8::1/64"]\n')), [
      "c.yaml:7:40: (VI_1): address family must match VRRP instance [2001:db8::1/64]",
    ]);
    assert.deepEqual(yamlErrors(base("      wieght: 1\n")), ['c.yaml:7:7: unknown key "wieght"']);
    assert.deepEqual(
      yamlErrors(
        `${base("      track_script: [nope]\n")}    - name: VI_1\n      interface: eth0\n      virtual_router_id: 51\n` +
          "  sync_groups:\n    - name: G\n      group: [VI_1, VI_9]\n  lvs_sync_daemon:\n    interface: eth1\n    instance: VI_8\n",
      ),
      [
        "c.yaml:7:22: vrrp_instance VI_1: track_script nope: no vrrp_script nope",
        "c.yaml:8:7: vrrp_instance VI_1 is already defined at line 4",
        "c.yaml:13:21: vrrp_sync_group G: no vrrp_instance VI_9",
        "c.yaml:16:15: lvs_sync_daemon: no vrrp_instance VI_8",
      ],
    );
    assert.deepEqual(
      yamlErrors(`${base("")}    - name: VI_2\n      interface: eth0\n      virtual_router_id: 51\n`),
      ["c.yaml:9:26: virtual_router_id 51 on eth0 is already used by vrrp_instance VI_1 (line 4)"],
    );
  });
});

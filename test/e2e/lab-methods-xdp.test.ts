// The method matrix of lab-methods-suites.ts on the AF_XDP backend (`tsvs daemon --io xdp`,
// docs/io.md "AF_XDP"): NAT over IPv4 and IPv6, DR, TUN and FULLNAT, with ping, TTL exceeded, path
// MTU and 10 MiB downloads; each suite checks that every served interface runs XDP.
// Prefix tsvs-mx<pid>; every lab is removed after its group (and a killed run's by the next run).
// Needs root, iproute2, curl, nginx, nft, ping, traceroute and XDP on veth (CONFIG_XDP_SOCKETS,
// the BPF JIT): skipped with the reason, failed on CI.

import { labMethodSuites } from "./lab-methods-suites.js";

labMethodSuites("xdp", "mx", { nat: true });

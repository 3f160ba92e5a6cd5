// DR (-g), TUN (-i) and FULLNAT through the lab on the daemon's default I/O backend (the method
// matrix of lab-methods-suites.ts; NAT has its own file, lab-methods-nat.test.ts, and AF_XDP its
// run of the matrix, lab-methods-xdp.test.ts).
// Prefix tsvs-m<pid>; every lab is removed after its group (and a killed run's by the next run).
// Needs root, iproute2, curl, nginx, nft, ping, traceroute: skipped with the reason, failed on CI.

import { labMethodSuites } from "./lab-methods-suites.js";

labMethodSuites("mmsg", "m");

// A TUN device that lives exactly as long as this process holds it open: the liveness token of the
// BGP announcement (src/daemon/bgp.ts, src/config/bird.ts). No frame is ever read or written.
//
// drivers/net/tun.c: TUNSETIFF on an open /dev/net/tun creates the device and attaches the file to
// it; without TUNSETPERSIST, tun_chr_close() -> tun_detach() unregisters the device when the last
// file closes. The kernel closes a process's files when it dies, whatever the signal (SIGKILL
// included), so the device — and what BIRD hangs on it — goes with the process. The file is
// opened close-on-exec (libuv opens every file O_CLOEXEC): a child (a misc health check, BIRD)
// must not hold it and keep the device alive after the daemon.

import { closeSync, constants, openSync } from "node:fs";
import { TsvsError } from "../core/errors.js";
import { libc, SIZEOF_IFREQ, SOCK_CLOEXEC, SyscallError } from "./libc.js";

// <linux/if_tun.h>, <linux/sockios.h>, <net/if.h>
const TUNSETIFF = 0x400454ca; // _IOW('T', 202, int)
const TUNGETIFF = 0x800454d2; // _IOR('T', 210, unsigned int)
const IFF_TUN = 0x0001;
const IFF_PERSIST = 0x0800;
const IFF_NO_PI = 0x1000;
const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const IFF_UP = 0x1;
const AF_INET = 2;
const SOCK_DGRAM = 2;
const IFNAMSIZ = 16;
/** ifr_flags: a short right after the name. */
const IFR_FLAGS_OFF = 16;

function ifreq(name: string): Buffer {
  const b = Buffer.alloc(SIZEOF_IFREQ);
  const n = Buffer.from(name, "utf8");
  if (n.length === 0 || n.length >= IFNAMSIZ)
    throw new TsvsError("TSVS_ERR_INVALID", `interface name "${name}": 1..${IFNAMSIZ - 1} bytes`);
  n.copy(b, 0);
  return b;
}

/** An open, up TUN device; close() deletes it (as the process's death does). */
export class TunDevice {
  private fd: number;

  private constructor(
    readonly name: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /**
   * Creates the device `name` (EBUSY: another process holds a device of that name) and brings it
   * up (SIOCSIFFLAGS, as `ip link set NAME up`). Needs CAP_NET_ADMIN.
   */
  static open(name: string): TunDevice {
    const c = libc();
    const req = ifreq(name);
    let fd: number;
    try {
      fd = openSync("/dev/net/tun", constants.O_RDWR);
    } catch (e) {
      throw new TsvsError("TSVS_ERR_HOST", `/dev/net/tun: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    try {
      req.writeUInt16LE(IFF_TUN | IFF_NO_PI, IFR_FLAGS_OFF);
      if (c.ioctlPtr(fd, TUNSETIFF, req) !== 0) throw new SyscallError(`TUNSETIFF ${name}`, c.errno());
      // A persistent device of that name (made by someone else) would outlive the process.
      if (c.ioctlPtr(fd, TUNGETIFF, req) !== 0) throw new SyscallError(`TUNGETIFF ${name}`, c.errno());
      if (req.readUInt16LE(IFR_FLAGS_OFF) & IFF_PERSIST)
        throw new TsvsError(
          "TSVS_ERR_HOST",
          `${name} is a persistent TUN device: it would outlive this process`,
        );
      setUp(name);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    return new TunDevice(name, fd);
  }

  get open(): boolean {
    return this.fd >= 0;
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }
}

/** IFF_UP on an interface through an AF_INET datagram socket's ioctl (netdevice(7)). */
function setUp(name: string): void {
  const c = libc();
  const s = c.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) throw new SyscallError("socket(AF_INET)", c.errno());
  try {
    const req = ifreq(name);
    if (c.ioctlPtr(s, SIOCGIFFLAGS, req) !== 0) throw new SyscallError(`SIOCGIFFLAGS ${name}`, c.errno());
    req.writeUInt16LE(req.readUInt16LE(IFR_FLAGS_OFF) | IFF_UP, IFR_FLAGS_OFF);
    if (c.ioctlPtr(s, SIOCSIFFLAGS, req) !== 0) throw new SyscallError(`SIOCSIFFLAGS ${name}`, c.errno());
  } finally {
    c.close(s);
  }
}

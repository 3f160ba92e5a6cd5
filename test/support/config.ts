// What the configuration tests share: fixtures from test/fixtures, the diagnostics of a file that
// is refused, and a table built by the control core listed as ipvsadm -Sn lists it.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { formatSave } from "../../src/cli/ipvsadm/format.js";
import { ConfigError } from "../../src/config/model.js";
import { serviceSnapshot, zeroStats } from "../../src/control/snapshot.js";
import { type CtlHooks, IpvsCtl } from "../../src/core/ctl.js";
import type { CtlCommand } from "../../src/core/ctl-types.js";

/** A file of test/fixtures, found from the repository root or from the built test. */
export function fixture(name: string): string {
  const dirs = [
    join(process.cwd(), "test/fixtures"),
    fileURLToPath(new URL("../../../test/fixtures", import.meta.url)),
  ];
  for (const d of dirs) if (existsSync(join(d, name))) return readFileSync(join(d, name), "utf8");
  throw new Error(`fixture ${name} not found (run from the repository root)`);
}

/** The `file:line:col: message` lines of the ConfigError `parse` throws (it must throw one). */
export function configErrors(parse: () => unknown): string[] {
  try {
    parse();
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.message.split("\n");
  }
  assert.fail("expected a ConfigError");
}

const noop = () => {};
const HOOKS: CtlHooks = {
  onSetTimeout: noop,
  onDestRemoved: noop,
  onServiceRemoved: noop,
  onDestQuiesced: noop,
};

/** A control core with nothing behind it (no engine): the table alone. */
export function tableCtl(): IpvsCtl {
  return new IpvsCtl(HOOKS);
}

/** The commands applied to a control core, listed as ipvsadm -Sn lists them. */
export function saved(cmds: readonly CtlCommand[], ctl = tableCtl()): string {
  ctl.applyAll(cmds);
  return formatSave(
    {
      services: ctl.services().map(serviceSnapshot),
      connTabSize: 4096,
      total: zeroStats(),
      timeouts: { tcp: 0, tcpFin: 0, udp: 0 },
    },
    true,
  );
}

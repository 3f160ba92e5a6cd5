// The control socket's directory: made private when the daemon makes it, left as it is when it
// exists (a daemon once turned /tmp into 0700 with --control /tmp/x.sock, and apt broke with it).

import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ControlServer, request } from "../../src/daemon/control.js";

const mode = (p: string): number => statSync(p).mode & 0o7777;

describe("control socket directory", () => {
  it("an existing directory keeps its mode; the socket is 0600 and answers", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsvs-ctl-"));
    chmodSync(dir, 0o1777);
    const path = join(dir, "c.sock");
    const srv = new ControlServer(path);
    try {
      await srv.listen(async () => ({ reloaded: "ok" }));
      assert.equal(mode(dir), 0o1777);
      assert.equal(mode(path), 0o600);
      assert.deepEqual(await request(path, { op: "reload" }), { reloaded: "ok" });
    } finally {
      await srv.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a directory it makes is 0700 and goes with the server", async () => {
    const parent = mkdtempSync(join(tmpdir(), "tsvs-ctl-"));
    const dir = join(parent, "run");
    const srv = new ControlServer(join(dir, "c.sock"));
    try {
      await srv.listen(async () => ({ reloaded: "ok" }));
      assert.equal(mode(dir), 0o700);
      await srv.close();
      assert.equal(existsSync(dir), false);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

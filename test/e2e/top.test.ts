// `tsvs top` end to end, against a daemon forwarding real curl traffic over NAT:
//
//   ns c (client)                 ns d (director: tsvs daemon)          ns r1, r2 (real servers)
//   tpc 198.18.0.1/24  ⇄  tpd 198.18.0.254/24   tpD 198.18.1.254/24 ⇄ tpr 198.18.1.11/24
//                                               tpE 198.18.2.254/24 ⇄ tps 198.18.2.12/24
//
// `top --once` prints the service and its real servers with the connection counts ipvsadm -Ln
// shows; under tmux, `top` draws on the alternate screen, quits on q with the terminal put back,
// and says so and exits 1 when the daemon goes away.
// Needs root, iproute2, nft, curl and tmux: skipped with the reason otherwise, failed when CI=true.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { delNetns, nsExecStatus } from "../../src/io/netns.js";
import {
  Children,
  type Daemon,
  ENTRY,
  ipvsadmDests,
  startDaemon,
  startHttp,
  startListener,
  tsvsIn,
} from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";
import { buildTwoLanNat, twoLanNatNames } from "../support/two-lan-nat.js";

const skip = e2eSkip("top e2e", ["nftables", "curl", "tmux"]);

const P = process.pid;
const NET = twoLanNatNames("tp");
const NS = NET.ns;
const IF = NET.ifs;
const VIP = "198.18.0.100";
const RS = ["198.18.1.11", "198.18.2.12"];
const SVC_ROW = `TCP  ${VIP}:80 rr`;
/** A tmux server of this suite's own (-L), so that no user's sessions are seen or touched. */
const TMUX = `tsvs-tp${P}`;

const children = new Children();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function tmux(...args: string[]): string {
  const r = spawnSync("tmux", ["-L", TMUX, ...args], { encoding: "utf8", timeout: 5_000 });
  assert.equal(r.status, 0, `tmux ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** `#{…}` formats of the session's pane. */
function pane(session: string, format: string): string {
  return tmux("display-message", "-p", "-t", session, format).trim();
}

async function until(what: string, ms: number, test: () => boolean, detail: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!test()) {
    assert.ok(Date.now() < end, `${what} within ${ms} ms:\n${detail()}`);
    await sleep(100);
  }
}

/** The fields after the row's name in top's table. */
function topRow(lines: string[], name: string): number[] {
  const l = lines.find((x) => x.startsWith(name));
  assert.ok(l !== undefined, `no row "${name}" in:\n${lines.join("\n")}`);
  return l.slice(name.length).trim().split(/\s+/).map(Number);
}

describe("tsvs top against a daemon with traffic", { skip, timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvs-tp-"));
  const sock = join(dir, "run", "control.sock");
  const conf = join(dir, "tmux.conf");
  let daemon: Daemon | undefined;

  before(async () => {
    buildTwoLanNat(NET);
    // No user configuration: tmux's defaults.
    writeFileSync(conf, "");

    daemon = await startDaemon(
      NS.d,
      ["--iface", IF.d0, "--iface", IF.d1, "--iface", IF.d2, "--control", sock, "--http", "off"],
      children,
    );
    await Promise.all([startHttp(NS.r1, "r1", children), startHttp(NS.r2, "r2", children)]);
    for (const argv of [
      ["-A", "-t", `${VIP}:80`, "-s", "rr"],
      ...RS.map((r, i) => ["-a", "-t", `${VIP}:80`, "-r", `${r}:80`, "-m", "-w", String(i + 1)]),
    ]) {
      const r = tsvsIn(NS.d, sock, "ipvsadm", ...argv);
      assert.equal(r.status, 0, `ipvsadm ${argv.join(" ")}: ${r.stderr}`);
    }
    // One connection held open (active), six closed by the server after one request (inactive).
    await startListener(
      NS.c,
      `require("net").connect(80, ${JSON.stringify(VIP)}, () => console.log("connected"));`,
      children,
      "held connection",
    );
    for (let i = 0; i < 6; i++) {
      const r = nsExecStatus(NS.c, ["curl", "-sS", "--max-time", "3", `http://${VIP}/`], 10_000);
      assert.equal(r.status, 0, `curl #${i + 1}: ${r.stderr}\ndaemon:\n${daemon.stderr()}`);
    }
  });

  after(async () => {
    spawnSync("tmux", ["-L", TMUX, "kill-server"], { stdio: "ignore", timeout: 5_000 });
    await children.stopAll();
    for (const ns of Object.values(NS)) delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  it("--once prints the service and its real servers with ipvsadm's connection counts", async () => {
    // The counts hold still once the last FIN is answered: a frame between two equal readings.
    for (let tries = 0; ; tries++) {
      const before = JSON.stringify([...ipvsadmDests(NS.d, sock)]);
      const r = tsvsIn(NS.d, sock, "top", "--once", "-d", "0.3");
      assert.equal(r.status, 0, r.stderr);
      assert.ok(!r.stdout.includes("\x1b"), "no terminal control in --once");
      const dests = ipvsadmDests(NS.d, sock);
      if (before !== JSON.stringify([...dests])) {
        assert.ok(tries < 10, "the table kept changing");
        await sleep(200);
        continue;
      }
      const lines = r.stdout.split("\n");
      assert.match(lines[0], /^tsvs top — pid \d+, up \d+\w, 1 worker, 1 service, 2 real servers/);
      let active = 0;
      let all = 0;
      for (const rs of RS) {
        const want = dests.get(`${rs}:80`);
        assert.ok(want !== undefined, rs);
        const [weight, act, inact] = topRow(lines, `  -> ${rs}:80 Masq`);
        assert.deepEqual([weight, act, inact], want, `${rs} in:\n${r.stdout}`);
        active += act;
        all += act + inact;
      }
      assert.equal(active, 1, r.stdout);
      assert.equal(all, 7, r.stdout);
      const [svcActive, svcInact] = topRow(lines, SVC_ROW);
      assert.deepEqual([svcActive, svcInact], [1, 6]);
      break;
    }
  });

  /**
   * `tsvs top` in a new tmux session of its own; once top exits, the shell around it prints its
   * exit status and the terminal's line mode (icanon, or -icanon if raw mode was left on) and
   * stays, so that the terminal top left behind can be read. Returns the screen reader (the
   * history too, wrapped lines joined).
   */
  function startTop(session: string): () => string {
    const top = [process.execPath, ENTRY, "top", "--control", sock, "-d", "0.3"];
    const report = `echo "top exited $?"; stty -a | tr -s " ;" "\\n" | grep -x -e icanon -e -icanon; exec sleep 60`;
    const shell = ["sh", "-c", `"$@"; ${report}`, "sh", "ip", "netns", "exec", NS.d, ...top];
    tmux("-f", conf, "new-session", "-d", "-s", session, "-x", "100", "-y", "30", ...shell);
    return () => tmux("capture-pane", "-p", "-J", "-S", "-", "-t", session);
  }

  /** The shell has printed both top's exit status and the line mode (stty runs after the echo). */
  function exitReported(text: string): boolean {
    return /^top exited \d+$/m.test(text) && /^-?icanon$/m.test(text);
  }

  it("under tmux: draws the service on the alternate screen and quits on q, the terminal put back", async () => {
    const screen = startTop("q");
    await until(
      "the service on screen",
      8_000,
      () => screen().includes(SVC_ROW) && RS.every((rs) => screen().includes(`-> ${rs}:80`)),
      screen,
    );
    assert.equal(pane("q", "#{alternate_on}"), "1", "top draws on the alternate screen");
    assert.equal(pane("q", "#{cursor_flag}"), "0", "top hides the cursor");
    tmux("send-keys", "-t", "q", "q");
    await until("top to exit on q", 5_000, () => exitReported(screen()), screen);
    const text = screen();
    assert.match(text, /^top exited 0$/m, text);
    assert.match(text, /^icanon$/m, "raw mode is undone");
    assert.equal(pane("q", "#{alternate_on}"), "0", "the alternate screen is left");
    assert.equal(pane("q", "#{cursor_flag}"), "1", "the cursor is shown again");
    assert.ok(!text.includes(SVC_ROW), "the normal screen is back");
  });

  it("under tmux: says the daemon is lost and exits 1 when it stops", async () => {
    const screen = startTop("lost");
    await until("the service on screen", 8_000, () => screen().includes(SVC_ROW), screen);
    assert.ok(daemon !== undefined);
    daemon.proc.kill("SIGTERM");
    assert.equal(await daemon.exited, 0, daemon.stderr());
    await until("top to exit", 5_000, () => exitReported(screen()), screen);
    const text = screen();
    assert.match(text, /^tsvs top: lost the daemon at /m, text);
    assert.match(text, /^top exited 1$/m, text);
    assert.match(text, /^icanon$/m, "raw mode is undone");
    assert.equal(pane("lost", "#{alternate_on}"), "0");
  });
});

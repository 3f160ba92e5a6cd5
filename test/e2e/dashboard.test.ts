// The live dashboard end to end: a daemon with a configuration file (a NAT service, two real
// servers with TCP checks, a third that nothing answers), headless Chromium (the Debian package,
// driven by puppeteer-core over a pipe) started inside the director's namespace so that
// http://127.0.0.1:9715/ is the daemon's, and real curl traffic from the client namespace.
//
//   ns c (client)                 ns d (director: tsvs daemon, chromium)   ns r1, r2 (real servers)
//   dbc 198.18.0.1/24  ⇄  dbd 198.18.0.254/24   dbD 198.18.1.254/24 ⇄ dbr 198.18.1.11/24
//                                               dbE 198.18.2.254/24 ⇄ dbs 198.18.2.12/24
//
// It asserts: the page loads with no console error, no failed request and no 4xx/5xx; the numbers
// change while traffic runs and lie between two `ipvsadm -Ln --stats --exact` readings taken
// around them; once the traffic stops they equal `-Ln` (weights, active, inactive) and `--stats`;
// health shows up/down; the charts have points; with the token, drain sets weight 0 (`-Ln` and the
// page); the connection search finds the client's connections; at 390×844 nothing overflows.
// Screenshots go to a temporary directory, removed afterwards unless TSVS_KEEP_SHOTS=1 (then its
// path is printed); with TSVS_UPDATE_DOCS_IMG=1 the desktop one is also copied to
// docs/img/dashboard.png.
// Needs root, iproute2, nft, curl and chromium: skipped with the reason otherwise, failed on CI.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { delNetns } from "../../src/io/netns.js";
import { commandPath } from "../../src/lab/packages.js";
import { Children, ipvsadmDests, startDaemon, startHttp, tsvsIn } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";
import { buildTwoLanNat, twoLanNatNames } from "../support/two-lan-nat.js";

const skip = e2eSkip("dashboard e2e", ["nftables", "curl", "chromium"]);

const NET = twoLanNatNames("db");
const NS = NET.ns;
const VIP = "198.18.0.100";
const RS = [
  { addr: "198.18.1.11", weight: 3 },
  { addr: "198.18.2.12", weight: 2 },
];
/** Checked, but nothing answers there: down, kept out of the table (alpha). */
const DEAD = "198.18.1.13";
const SVC_KEY = `tcp/${VIP}/80`;
const idOf = (addr: string): string => `${SVC_KEY}>${addr}:80`;
const BASE = "http://127.0.0.1:9715";
const REQUESTS = 120;
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

const CONFIG = `# tsvs e2e: the dashboard (test/e2e/dashboard.test.ts)
virtual_servers:
  - address: ${VIP}
    port: 80
    protocol: tcp
    scheduler: wrr
    lb_kind: NAT
    delay_loop: 1
    alpha: true
    real_servers:
${[...RS, { addr: DEAD, weight: 1 }]
  .map(
    (r) => `      - address: ${r.addr}
        weight: ${r.weight}
        check: { type: tcp, connect_timeout: 1, retry: 0 }`,
  )
  .join("\n")}
`;

const children = new Children();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Conns InPkts OutPkts InBytes OutBytes per "RIP:80" (one service). */
function ipvsadmStats(sock: string): Map<string, number[]> {
  const r = tsvsIn(NS.d, sock, "ipvsadm", "-Ln", "--stats", "--exact");
  assert.equal(r.status, 0, r.stderr);
  const out = new Map<string, number[]>();
  for (const line of r.stdout.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (line.startsWith("  -> ") && /^\d/.test(f[2] ?? "")) out.set(f[1], f.slice(2, 7).map(Number));
  }
  return out;
}

type Row = Record<string, string>;

/**
 * Every real server row of the page: field → its exact figure (data-value), and `field.in` /
 * `field.out` for the in/out pairs. Run in the page (a string: the tests compile without DOM types).
 */
function pageRows(page: Page): Promise<Record<string, Row>> {
  return page.evaluate(`(() => {
    const out = {};
    for (const tr of document.querySelectorAll("tr[data-dest]")) {
      const o = { text: tr.textContent };
      for (const td of tr.querySelectorAll("td[data-field]"))
        for (const [k, v] of Object.entries(td.dataset))
          if (k !== "field" && k !== "label") o[td.dataset.field + (k === "value" ? "" : "." + k)] = v;
      const b = tr.querySelector("button[data-drain]");
      if (b !== null) o.drainDisabled = String(b.disabled);
      out[tr.dataset.dest] = o;
    }
    return out;
  })()`) as Promise<Record<string, Row>>;
}

const seqOf = async (page: Page): Promise<number> =>
  Number(await page.evaluate(`document.getElementById("live").dataset.seq`));

/** Waits until the page has shown `n` more snapshots than now. */
async function nextSnapshots(page: Page, n: number): Promise<void> {
  const s = await seqOf(page);
  await page.waitForFunction(`Number(document.getElementById("live").dataset.seq) >= ${s + n}`, {
    timeout: 5000,
  });
}

/** [conns, inpkts, outpkts, inbytes, outbytes] as the page shows them for a real server. */
function pageStats(r: Row): number[] {
  return [r.conns, r["pkts.in"], r["pkts.out"], r["bytes.in"], r["bytes.out"]].map(Number);
}

interface Watch {
  errors: string[];
}

/** Console errors, page errors, failed requests and 4xx/5xx answers of a page, as they come. */
function watch(page: Page): Watch {
  const w: Watch = { errors: [] };
  page.on("console", (m) => {
    if (m.type() === "error") w.errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => w.errors.push(`pageerror: ${(e as Error).message}`));
  page.on("requestfailed", (r) => w.errors.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) w.errors.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  return w;
}

/**
 * Chromium in the director's namespace: `ip netns exec` execs it, so the pid is Chromium's; CDP
 * goes over a pipe, which needs no port reachable from here.
 */
async function launchChromium(): Promise<Browser> {
  const ip = commandPath("ip");
  assert.ok(ip !== null);
  return puppeteer.launch({
    executablePath: ip,
    ignoreDefaultArgs: true,
    pipe: true,
    args: [
      "netns",
      "exec",
      NS.d,
      "/usr/bin/chromium",
      ...puppeteer.defaultArgs({ headless: true, args: [] }).filter((a) => a !== "about:blank"),
      "--no-sandbox",
      "--headless=new",
      "about:blank",
    ],
    defaultViewport: { width: 1280, height: 900 },
    timeout: 20_000,
  });
}

describe("tsvs daemon --http: the live dashboard in headless Chromium", { skip, timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvs-db-"));
  const shots = mkdtempSync(join(tmpdir(), "tsvs-dashboard-shots-"));
  const sock = join(dir, "run", "control.sock");
  const config = join(dir, "farm.yaml");
  let browser: Browser | null = null;
  let browserPid: number | undefined;

  before(() => {
    buildTwoLanNat(NET);
    writeFileSync(config, CONFIG);
  });

  after(async () => {
    if (browser !== null) await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
    if (browserPid !== undefined) {
      try {
        process.kill(browserPid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await children.stopAll();
    for (const ns of Object.values(NS)) delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
    if (process.env.TSVS_KEEP_SHOTS !== "1") rmSync(shots, { recursive: true, force: true });
  });

  it("live numbers = ipvsadm, health, charts, drain with the token, connection search, phone layout", async () => {
    const t0 = Date.now();
    const d = await startDaemon(NS.d, [...NET.ifaceArgs, "--control", sock, "--config", config], children);
    await Promise.all([startHttp(NS.r1, "r1", children), startHttp(NS.r2, "r2", children)]);
    // alpha: the real servers join on their first good check.
    for (let i = 0; ; i++) {
      if (ipvsadmDests(NS.d, sock).size === 2) break;
      assert.ok(i < 50, `the checked servers did not join:\n${d.stderr()}`);
      await sleep(100);
    }

    browser = await launchChromium();
    browserPid = browser.process()?.pid;
    const page = await browser.newPage();
    page.setDefaultTimeout(10_000);
    const w = watch(page);
    const res = await page.goto(`${BASE}/`, { waitUntil: "load" });
    assert.equal(res?.status(), 200);
    assert.match(res?.headers()["content-security-policy"] ?? "", /^default-src 'self'/);
    await page.waitForSelector(`#live[data-state="live"]`);
    await page.waitForSelector(`tr[data-dest="${idOf(RS[1].addr)}"]`);

    // Health: the two servers up, the third down and out of the table.
    let rows = await pageRows(page);
    for (const r of RS) assert.equal(rows[idOf(r.addr)].health, "up", JSON.stringify(rows));
    assert.equal(rows[idOf(DEAD)]?.health, "down", "the server nothing answers: down");
    assert.match(rows[idOf(DEAD)].text, /out of the table/);
    assert.equal(rows[idOf(RS[0].addr)].drainDisabled, "true", "no token: drain disabled");

    // Traffic: REQUESTS curl requests, one at a time (bounded in count and time).
    const loop = `i=0; while [ $i -lt ${REQUESTS} ]; do curl -s -o /dev/null --max-time 2 http://${VIP}/ && echo ok; i=$((i+1)); sleep 0.04; done`;
    const traffic = children.add(
      spawn("ip", ["netns", "exec", NS.c, "timeout", "40", "sh", "-c", loop], {
        stdio: ["ignore", "pipe", "ignore"],
      }),
    );
    let ok = 0;
    traffic.stdout?.on("data", (b: Buffer) => {
      ok += b
        .toString()
        .split("\n")
        .filter((l) => l === "ok").length;
    });
    const trafficDone = new Promise<number | null>((r) => traffic.once("exit", (code) => r(code)));

    // While it runs: the page's figures move, and each reading lies between two ipvsadm readings
    // (the page's snapshot is asked after the first ends and before the second starts).
    await sleep(1500);
    const first = await pageRows(page);
    let peakCps = 0;
    for (let round = 0; round < 3; round++) {
      const before = ipvsadmStats(sock);
      await nextSnapshots(page, 2);
      rows = await pageRows(page);
      const afterStats = ipvsadmStats(sock);
      for (const r of RS) {
        const k = `${r.addr}:80`;
        const p = pageStats(rows[idOf(r.addr)]);
        const lo = before.get(k) ?? [];
        const hi = afterStats.get(k) ?? [];
        p.forEach((v, i) => {
          assert.ok(
            lo[i] <= v && v <= hi[i],
            `${k} field ${i}: ipvsadm ${lo[i]} ≤ page ${v} ≤ ipvsadm ${hi[i]}`,
          );
        });
        peakCps = Math.max(peakCps, Number(rows[idOf(r.addr)].cps));
      }
      await sleep(800);
    }
    for (const r of RS)
      assert.ok(
        Number(rows[idOf(r.addr)].conns) > Number(first[idOf(r.addr)].conns),
        `the page's connection count of ${r.addr} grew while traffic ran`,
      );

    assert.equal(await trafficDone, 0, "the curl loop finished in time");
    assert.equal(ok, REQUESTS, "every request answered");

    // Traffic over: the figures hold still; the page equals -Ln and --stats exactly.
    for (let tries = 0; ; tries++) {
      const s0 = ipvsadmStats(sock);
      const d0 = ipvsadmDests(NS.d, sock);
      await nextSnapshots(page, 2);
      rows = await pageRows(page);
      const s1 = ipvsadmStats(sock);
      const d1 = ipvsadmDests(NS.d, sock);
      const still = JSON.stringify([...s0, ...d0]) === JSON.stringify([...s1, ...d1]);
      const same = RS.every((r) => {
        const k = `${r.addr}:80`;
        const row = rows[idOf(r.addr)];
        return (
          JSON.stringify(pageStats(row)) === JSON.stringify(s1.get(k)) &&
          JSON.stringify([row.weight, row.active, row.inactive].map(Number)) === JSON.stringify(d1.get(k))
        );
      });
      if (still && same) break;
      assert.ok(
        tries < 8,
        `the page never matched ipvsadm: ${JSON.stringify({ rows, s1: [...s1], d1: [...d1] })}`,
      );
    }
    const total = RS.reduce((n, r) => n + Number(rows[idOf(r.addr)].conns), 0);
    assert.equal(total, REQUESTS, "every connection counted once");
    for (const r of RS) assert.equal(Number(rows[idOf(r.addr)].weight), r.weight);
    peakCps = Math.max(peakCps, ...RS.map((r) => Number(rows[idOf(r.addr)].cps)));
    assert.ok(peakCps > 0, "the estimator's conn/s showed traffic");

    // The charts: points for the ticks so far (history kept by the daemon), some of them nonzero.
    const chart = (await page.evaluate(`(() => {
      const s = document.getElementById("charts");
      return { points: Number(s.dataset.points), series: Number(s.dataset.series),
               peak: Number(s.dataset.peakCps), canvases: document.querySelectorAll("#charts canvas").length };
    })()`)) as { points: number; series: number; peak: number; canvases: number };
    assert.ok(chart.points >= 8, `chart points: ${JSON.stringify(chart)}`);
    assert.equal(chart.series, 3, "all, and the two real servers");
    assert.ok(chart.peak > 0, `a nonzero conn/s in the chart: ${JSON.stringify(chart)}`);
    assert.equal(chart.canvases, 3);

    // Drain with the token: weight 0 in ipvsadm -Ln and on the page.
    const token = readFileSync(join(dir, "run", "http.token"), "utf8").trim();
    await page.type("#token", token);
    await page.click(`#token-form button[type="submit"]`);
    const drainSel = `button[data-drain="${idOf(RS[0].addr)}"]`;
    await page.waitForSelector(`${drainSel}:not([disabled])`);
    await page.click(drainSel);
    for (let i = 0; ; i++) {
      if (ipvsadmDests(NS.d, sock).get(`${RS[0].addr}:80`)?.[0] === 0) break;
      assert.ok(i < 30, "ipvsadm -Ln never showed weight 0");
      await sleep(100);
    }
    await page.waitForSelector(`tr[data-dest="${idOf(RS[0].addr)}"] td[data-field="weight"][data-value="0"]`);
    await nextSnapshots(page, 1);
    rows = await pageRows(page);
    assert.equal(rows[idOf(RS[0].addr)].weight, "0", "the live snapshot says 0 too");
    assert.equal(rows[idOf(RS[1].addr)].weight, String(RS[1].weight), "the other one untouched");
    assert.equal(ipvsadmDests(NS.d, sock).get(`${RS[1].addr}:80`)?.[0], RS[1].weight);

    // The connection search (REST /api/v1/connections?client=…): the client's connections.
    await page.type(`#conn-form input[name="client"]`, "198.18.0.1");
    await page.click(`#conn-form button[type="submit"]`);
    await page.waitForSelector("#conn-table:not([hidden]) tbody tr");
    const found = (await page.evaluate(
      `[...document.querySelectorAll("#conn-table tbody td[data-field=client]")].map((td) => td.textContent)`,
    )) as string[];
    assert.ok(found.length > 0);
    assert.ok(
      found.every((c) => c.startsWith("198.18.0.1:")),
      found.join(" "),
    );
    const lnc = tsvsIn(NS.d, sock, "ipvsadm", "-Lnc");
    assert.ok(lnc.stdout.includes(found[0]), `${found[0]} in ipvsadm -Lnc:\n${lnc.stdout}`);
    const ofClient = lnc.stdout
      .split("\n")
      .filter((l) => l.trim().split(/\s+/)[3]?.startsWith("198.18.0.1:"));
    const note = async (): Promise<string> =>
      String(await page.evaluate(`document.getElementById("conn-note").textContent`));
    assert.equal(await note(), `1–20 of ${ofClient.length} matching connections.`);
    await page.click("#conn-next");
    await page.waitForFunction(`document.getElementById("conn-note").textContent.startsWith("21–40 of")`);

    await page.click("#conn-prev");
    await page.waitForFunction(`document.getElementById("conn-note").textContent.startsWith("1–20 of")`);
    await page.evaluate("window.scrollTo(0, 0)");
    await page.screenshot({ path: join(shots, "dashboard-desktop.png"), fullPage: true });
    assert.deepEqual(w.errors, [], "no console error, failed request or error status (desktop)");

    // A phone: 390×844, the same page, nothing wider than the screen.
    const phone = await browser.newPage();
    phone.setDefaultTimeout(10_000);
    await phone.setViewport({
      width: 390,
      height: 844,
      isMobile: true,
      hasTouch: true,
      deviceScaleFactor: 2,
    });
    const pw = watch(phone);
    await phone.goto(`${BASE}/`, { waitUntil: "load" });
    await phone.waitForSelector(
      `tr[data-dest="${idOf(RS[0].addr)}"] td[data-field="weight"][data-value="0"]`,
    );
    await phone.waitForFunction(`Number(document.getElementById("charts").dataset.points) > 5`);
    const widths = (await phone.evaluate(`(() => ({
      scroll: document.documentElement.scrollWidth,
      client: document.documentElement.clientWidth,
      wide: [...document.querySelectorAll("body *")]
        .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
        .map((e) => e.tagName + "." + e.className).slice(0, 5),
    }))()`)) as { scroll: number; client: number; wide: string[] };
    assert.equal(widths.client, 390);
    assert.ok(widths.scroll <= widths.client, `horizontal overflow at 390 px: ${JSON.stringify(widths)}`);
    assert.deepEqual(widths.wide, []);
    await phone.screenshot({ path: join(shots, "dashboard-phone.png"), fullPage: true });
    assert.deepEqual(pw.errors, [], "no console error, failed request or error status (phone)");

    if (process.env.TSVS_KEEP_SHOTS === "1") console.log(`# dashboard screenshots: ${shots}`);
    if (process.env.TSVS_UPDATE_DOCS_IMG === "1") {
      mkdirSync(join(ROOT, "docs", "img"), { recursive: true });
      copyFileSync(join(shots, "dashboard-desktop.png"), join(ROOT, "docs", "img", "dashboard.png"));
      console.log("# copied to docs/img/dashboard.png");
    }
    console.log(`# dashboard e2e: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await Promise.all([page.close(), phone.close()]);
    d.proc.kill("SIGTERM");
    assert.equal(await d.exited, 0, d.stderr());
  });

  it("off loopback: the page asks for the token, then goes live with it in the stream's header", async () => {
    assert.ok(browser !== null, "the first test launched Chromium");
    const tokenFile = join(dir, "token");
    const token = "dashboard-e2e-token-0123456789";
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const base = "http://198.18.0.254:9716";
    const d = await startDaemon(
      NS.d,
      [
        ...NET.ifaceArgs,
        "--control",
        sock,
        "--config",
        config,
        "--http",
        "198.18.0.254:9716",
        "--http-token-file",
        tokenFile,
      ],
      children,
    );
    const page = await browser.newPage();
    page.setDefaultTimeout(10_000);
    const w = watch(page);
    await page.goto(`${base}/`, { waitUntil: "load" });
    await page.waitForSelector(`#live[data-state="denied"]`);
    assert.match(
      String(await page.evaluate(`document.getElementById("summary").textContent`)),
      /needs the bearer token/,
    );
    await page.type("#token", token);
    await page.click(`#token-form button[type="submit"]`);
    await page.waitForSelector(`#live[data-state="live"]`);
    await page.waitForSelector(`tr[data-dest="${idOf(RS[0].addr)}"]`);
    // The one refused stream, and Chromium's console line about it: nothing else.
    assert.ok(w.errors.length > 0 && w.errors.every((e) => /401/.test(e)), w.errors.join("\n"));
    await page.close();
    d.proc.kill("SIGTERM");
    assert.equal(await d.exited, 0, d.stderr());
  });
});

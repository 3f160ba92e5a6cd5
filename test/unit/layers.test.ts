// The floors of the house (docs/architecture.md): src/core is pure; the CLI is a front end that
// nothing imports; no two top-level folders import each other, directly or around a loop. Read
// from the sources' import statements, so a change that breaks the layering fails here.

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

/** The repository: the first folder above this (built) test with a package.json, else the working directory. */
function repoRoot(): string {
  for (let d = dirname(fileURLToPath(import.meta.url)); d !== dirname(d); d = dirname(d))
    if (existsSync(join(d, "package.json")) && existsSync(join(d, "src"))) return d;
  return process.cwd();
}

const ROOT = repoRoot();
const SRC = join(ROOT, "src");

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return sources(p);
    return n.endsWith(".ts") ? [p] : [];
  });
}

/** Every `from "…"` / `import("…")` specifier of a file (type-only imports count: they are coupling too). */
function specifiers(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)["']([^"']+)["']/g)) out.push(m[1]);
  return out;
}

/** The top-level folder of a file under src ("core", "cli", …; "." for src/index.ts). */
function floor(file: string): string {
  const rel = relative(SRC, file).split("/");
  return rel.length === 1 ? "." : rel[0];
}

interface Edge {
  from: string;
  to: string;
  spec: string;
}

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const f of sources(SRC)) {
    for (const spec of specifiers(readFileSync(f, "utf8"))) {
      if (!spec.startsWith(".")) {
        out.push({ from: f, to: spec, spec });
        continue;
      }
      out.push({ from: f, to: resolve(dirname(f), spec.replace(/\.js$/, ".ts")), spec });
    }
  }
  return out;
}

describe("layers", () => {
  const all = edges();
  const local = all.filter((e) => e.to.startsWith(SRC));

  it("nothing outside src/cli imports from src/cli", () => {
    const bad = local
      .filter((e) => floor(e.from) !== "cli" && floor(e.to) === "cli")
      .map((e) => `${relative(ROOT, e.from)} imports ${e.spec}`);
    assert.deepEqual(bad, []);
  });

  it("src/core imports nothing from node: and nothing outside src/core", () => {
    const bad = all
      .filter((e) => floor(e.from) === "core")
      .filter(
        (e) =>
          e.spec.startsWith("node:") ||
          (e.to.startsWith(SRC) && floor(e.to) !== "core") ||
          !e.spec.startsWith("."),
      )
      .map((e) => `${relative(ROOT, e.from)} imports ${e.spec}`);
    assert.deepEqual(bad, []);
  });

  it("no import cycle between top-level folders", () => {
    const graph = new Map<string, Set<string>>();
    for (const e of local) {
      const a = floor(e.from);
      const b = floor(e.to);
      if (a === b) continue;
      if (!graph.has(a)) graph.set(a, new Set());
      graph.get(a)?.add(b);
    }
    // Depth-first search for a back edge; report the loop it closes.
    const state = new Map<string, "open" | "done">();
    const path: string[] = [];
    const cycles: string[] = [];
    const visit = (n: string): void => {
      state.set(n, "open");
      path.push(n);
      for (const m of graph.get(n) ?? []) {
        const s = state.get(m);
        if (s === "open") cycles.push([...path.slice(path.indexOf(m)), m].join(" → "));
        else if (s === undefined) visit(m);
      }
      path.pop();
      state.set(n, "done");
    };
    for (const n of [...graph.keys()].sort()) if (!state.has(n)) visit(n);
    const detail = cycles.map((c) => {
      const [a, b] = c.split(" → ");
      const why = local.find((e) => floor(e.from) === a && floor(e.to) === b);
      return `${c} (e.g. ${why === undefined ? "?" : `${relative(ROOT, why.from)} imports ${why.spec}`})`;
    });
    assert.deepEqual(detail, []);
  });
});

// A small SVG writer for the bench chart: one panel per workload, one horizontal bar per director,
// the value written at the bar's end. Plain strings, no dependency.

export interface ChartBar {
  label: string;
  /** null: no figure (unavailable); drawn as a note instead of a bar. */
  value: number | null;
  note?: string;
  /** Bar colour group. */
  kind: "tsvs" | "other" | "ceiling";
}

export interface ChartPanel {
  title: string;
  unit: string;
  bars: ChartBar[];
}

const COLOURS: Record<ChartBar["kind"], string> = {
  tsvs: "#2f6fb0",
  other: "#d08a2e",
  ceiling: "#9a9a9a",
};

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) =>
    c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === "&" ? "&amp;" : c === '"' ? "&quot;" : "&apos;",
  );
}

/** A figure with 3 significant digits and a k/M suffix ("12.3k", "1.05M", "0.812"). */
export function formatValue(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${(v / 1e3).toPrecision(3)}k`;
  if (a >= 100) return String(Math.round(v));
  return String(Number(v.toPrecision(3)));
}

export function renderChart(
  title: string,
  subtitle: readonly string[],
  panels: readonly ChartPanel[],
): string {
  const W = 860;
  const labelW = 190;
  const barMax = W - labelW - 110;
  const rowH = 18;
  const out: string[] = [];
  let y = 46 + 14 * subtitle.length;
  const body: string[] = [];
  for (const p of panels) {
    body.push(
      `<text x="10" y="${y}" font-size="14" font-weight="bold">${escapeXml(p.title)} (${escapeXml(p.unit)})</text>`,
    );
    y += 8;
    const max = Math.max(
      0,
      ...p.bars.map((b) => (b.value !== null && Number.isFinite(b.value) ? b.value : 0)),
    );
    for (const b of p.bars) {
      const ty = y + rowH - 5;
      body.push(
        `<text x="${labelW - 6}" y="${ty}" font-size="12" text-anchor="end">${escapeXml(b.label)}</text>`,
      );
      if (b.value === null || !Number.isFinite(b.value)) {
        body.push(
          `<text x="${labelW + 4}" y="${ty}" font-size="11" fill="#777">${escapeXml(b.note ?? "n/a")}</text>`,
        );
      } else {
        const w = max > 0 ? Math.max(1, (Math.max(0, b.value) / max) * barMax) : 1;
        body.push(
          `<rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 5}" fill="${COLOURS[b.kind]}"/>`,
        );
        body.push(
          `<text x="${(labelW + w + 4).toFixed(1)}" y="${ty}" font-size="11">${escapeXml(formatValue(b.value))}</text>`,
        );
      }
      y += rowH;
    }
    y += 22;
  }
  const H = y;
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="10" y="20" font-size="16" font-weight="bold">${escapeXml(title)}</text>`);
  subtitle.forEach((line, i) => {
    out.push(`<text x="10" y="${36 + 14 * i}" font-size="11" fill="#555">${escapeXml(line)}</text>`);
  });
  out.push(...body);
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

// Reading a configuration file: tsvs YAML (.yaml, .yml) or keepalived.conf (anything
// else), or the format named explicitly.

import { readFile } from "node:fs/promises";
import { TsvsError } from "../core/errors.js";
import { parseKeepalived } from "./keepalived.js";
import type { ParsedConfig } from "./model.js";
import { parseYamlConfig } from "./yaml.js";

export type ConfigFormat = "yaml" | "keepalived";

export function formatOf(path: string): ConfigFormat {
  return /\.ya?ml$/i.test(path) ? "yaml" : "keepalived";
}

/** Parses configuration text; throws ConfigError. */
export function parseConfig(src: string, file: string, format: ConfigFormat = formatOf(file)): ParsedConfig {
  return format === "yaml" ? parseYamlConfig(src, file) : parseKeepalived(src, file);
}

/** Reads and parses a configuration file; throws ConfigError, or TsvsError when it cannot be read. */
export async function loadConfigFile(
  path: string,
  format: ConfigFormat = formatOf(path),
): Promise<ParsedConfig> {
  let src: string;
  try {
    src = await readFile(path, "utf8");
  } catch (e) {
    throw new TsvsError(
      "TSVS_ERR_PARSE",
      `${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  return parseConfig(src, path, format);
}

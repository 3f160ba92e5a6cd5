// A process entry with the same commands as `tsvs` (src/cli/tsvs.ts), for the lab and the e2e
// tests, which start the daemon and its clients with `node dist/src/cli/entry.js COMMAND ARGS`.

import { main } from "./tsvs.js";

process.exitCode = await main(process.argv.slice(2));

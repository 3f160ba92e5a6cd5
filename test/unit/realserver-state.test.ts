// Whose state a `tsvs realserver` state directory holds (src/realserver/checks.ts stateOwner): the
// directory is named after the namespace's inode, which the kernel gives to a later namespace once
// the first is deleted, so the identity written beside the state (netns cookie and boot id) decides
// whether it is this namespace's, an older tsvs's (no identity), or a dead namespace's.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type NetnsIdentity,
  type StateOwner,
  type StateOwnerInput,
  stateOwner,
} from "../../src/realserver/checks.js";

const BOOT = "0e70dd72-f2f5-4b25-959e-65b8b83a45fe";
const OTHER_BOOT = "5b1d4c0e-9a7f-4a53-8f0b-2c7e1f6d3a90";
const here: NetnsIdentity = { cookie: "136022", bootId: BOOT };
const dead: NetnsIdentity = { cookie: "131919", bootId: BOOT };

describe("stateOwner", () => {
  const cases: { description: string; input: StateOwnerInput; expected: StateOwner }[] = [
    {
      description: "no file in the directory: nothing to take, setup starts fresh",
      input: { hasFiles: false, stored: null, current: here, legacyHere: false },
      expected: "none",
    },
    {
      description: "an empty directory wins over a would-be stale identity (nothing to act on)",
      input: { hasFiles: false, stored: dead, current: here, legacyHere: false },
      expected: "none",
    },
    {
      description: "the identity written is this namespace's",
      input: { hasFiles: true, stored: here, current: here, legacyHere: false },
      expected: "ours",
    },
    {
      description: "another cookie: a deleted namespace had this inode",
      input: { hasFiles: true, stored: dead, current: here, legacyHere: false },
      expected: "stale",
    },
    {
      description: "another cookie, even though a VIP or decapsulator like the state's is here",
      input: { hasFiles: true, stored: dead, current: here, legacyHere: true },
      expected: "stale",
    },
    {
      description: "the same cookie of another boot (/run kept across a reboot; cookies start over)",
      input: {
        hasFiles: true,
        stored: { cookie: here.cookie, bootId: OTHER_BOOT },
        current: here,
        legacyHere: false,
      },
      expected: "stale",
    },
    {
      description: "no identity (an older tsvs) and its decapsulator or VIP is here: taken once",
      input: { hasFiles: true, stored: null, current: here, legacyHere: true },
      expected: "legacy",
    },
    {
      description: "no identity and nothing of it here: a dead namespace's",
      input: { hasFiles: true, stored: null, current: here, legacyHere: false },
      expected: "stale",
    },
    {
      description: "kernel without SO_NETNS_COOKIE: trusted by inode as before",
      input: { hasFiles: true, stored: null, current: null, legacyHere: false },
      expected: "unverified",
    },
    {
      description: "kernel without SO_NETNS_COOKIE and an identity of another: still nothing to compare",
      input: { hasFiles: true, stored: dead, current: null, legacyHere: false },
      expected: "unverified",
    },
  ];
  for (const c of cases) {
    it(c.description, () => {
      assert.equal(stateOwner(c.input), c.expected);
    });
  }

  it("any difference of cookie or boot id is stale, equality is ours (every pair of a small set)", () => {
    const ids: NetnsIdentity[] = [];
    for (const cookie of ["1", "2", "18446744073709551615"])
      for (const bootId of [BOOT, OTHER_BOOT]) ids.push({ cookie, bootId });
    for (const stored of ids)
      for (const current of ids) {
        const same = stored.cookie === current.cookie && stored.bootId === current.bootId;
        for (const legacyHere of [false, true])
          assert.equal(
            stateOwner({ hasFiles: true, stored, current, legacyHere }),
            same ? "ours" : "stale",
            `${JSON.stringify(stored)} vs ${JSON.stringify(current)}`,
          );
      }
  });
});

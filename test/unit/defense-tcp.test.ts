// secure_tcp's state table: tcpNextState(..., dos = true) against the kernel's tcp_states_dos
// (net/netfilter/ipvs/ip_vs_proto_tcp.c, mainline since the sloppy-TCP change of 3.12), every cell,
// and the packet sequences that make it stricter than tcp_states.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  DIR_INPUT,
  DIR_INPUT_ONLY,
  DIR_OUTPUT,
  TCP_S_ESTABLISHED,
  TCP_S_LAST,
  TCP_S_NONE,
  TCP_S_SYN_RECV,
  TCP_S_SYNACK,
  TCP_STATE_NAMES,
  TCP_STATES,
  TCP_STATES_DOS,
  tcpNextState,
} from "../../src/core/proto/tcp.js";

// Flag bits as on the wire, written here independently of the codecs.
const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const ACK = 0x10;

// Typed in from tcp_states_dos[], columns sNO sES sSS sSR sFW sTW sCL sCW sLA sLI sSA.
const KERNEL_DOS = {
  input: {
    syn: "SR ES ES SR SR SR SR SR SR SR SA",
    fin: "CL CW SS TW TW TW CL CW LA LI SA",
    ack: "ES ES SS SR FW TW CL CW CL LI SA",
    rst: "CL CL CL SR CL CL CL CL LA LI CL",
  },
  output: {
    syn: "SS ES SS SA SS SS SS SS SS LI SA",
    fin: "TW FW SS TW FW TW CL TW LA LI TW",
    ack: "ES ES SS ES FW TW CL CW LA ES ES",
    rst: "CL CL SS CL CL TW CL CL CL CL CL",
  },
  inputOnly: {
    syn: "SA ES ES SR SA SA SA SA SA SA SA",
    fin: "CL FW SS TW FW TW CL CW LA LI TW",
    ack: "ES ES SS ES FW TW CL CW CL LI ES",
    rst: "CL CL CL SR CL CL CL CL LA LI CL",
  },
} as const;

const ABBREV = ["NO", "ES", "SS", "SR", "FW", "TW", "CL", "CW", "LA", "LI", "SA"];

function row(s: string): number[] {
  const cells = s.split(" ").map((a) => {
    const v = ABBREV.indexOf(a);
    assert.ok(v >= 0, a);
    return v;
  });
  assert.equal(cells.length, TCP_S_LAST);
  return cells;
}

const EVENTS = [
  { name: "syn", flags: SYN },
  { name: "fin", flags: FIN },
  { name: "ack", flags: ACK },
  { name: "rst", flags: RST },
] as const;

const BLOCKS = [
  { name: "input", off: DIR_INPUT, dir: DIR_INPUT, noOutput: false },
  { name: "output", off: DIR_OUTPUT, dir: DIR_OUTPUT, noOutput: false },
  { name: "inputOnly", off: DIR_INPUT_ONLY, dir: DIR_INPUT, noOutput: true },
] as const;

describe("tcpNextState with secure_tcp follows tcp_states_dos in every cell", () => {
  for (const b of BLOCKS)
    for (const ev of EVENTS)
      it(`${b.name} ${ev.name}`, () => {
        const expected = row(KERNEL_DOS[b.name][ev.name]);
        for (let s = 0; s < TCP_S_LAST; s++)
          assert.equal(
            tcpNextState(s, b.dir, ev.flags, b.noOutput, true),
            expected[s],
            `${b.name} ${ev.name} from ${TCP_STATE_NAMES[s]}`,
          );
      });

  it("exports the table as data laid out like the kernel's", () => {
    assert.equal(TCP_STATES_DOS.length, 12);
    for (const b of BLOCKS)
      EVENTS.forEach((ev, i) => {
        assert.deepEqual(TCP_STATES_DOS[b.off + i], row(KERNEL_DOS[b.name][ev.name]), `${b.name} ${ev.name}`);
      });
  });

  it("differs from tcp_states in exactly these cells", () => {
    const diffs: string[] = [];
    for (let r = 0; r < 12; r++)
      for (let s = 0; s < TCP_S_LAST; s++)
        if (TCP_STATES[r][s] !== TCP_STATES_DOS[r][s]) diffs.push(`${r}:${ABBREV[s]}`);
    // INPUT syn/fin/ack/rst in SA; INPUT ack in SR; OUTPUT syn in SR and SA; INPUT-ONLY syn in
    // every state but ES, SS and SR.
    assert.deepEqual(diffs, [
      "0:SA",
      "1:SA",
      "2:SR",
      "2:SA",
      "3:SA",
      "4:SR",
      "4:SA",
      "8:NO",
      "8:FW",
      "8:TW",
      "8:CL",
      "8:CW",
      "8:LA",
      "8:LI",
      "8:SA",
    ]);
  });
});

describe("packet sequences: what secure_tcp changes", () => {
  function run(seq: Array<[number, number]>, noOutput: boolean, dos: boolean): string[] {
    let s = TCP_S_NONE;
    return seq.map(([dir, flags]) => {
      s = tcpNextState(s, dir, flags, noOutput && dir === DIR_INPUT, dos);
      return TCP_STATE_NAMES[s];
    });
  }
  const cases = [
    {
      desc: "NAT, client SYN then ACK without the server: ESTABLISHED only without secure_tcp",
      seq: [
        [DIR_INPUT, SYN],
        [DIR_INPUT, ACK],
      ] as Array<[number, number]>,
      noOutput: false,
      plain: ["SYN_RECV", "ESTABLISHED"],
      dos: ["SYN_RECV", "SYN_RECV"],
    },
    {
      desc: "NAT, full handshake: the server's SYN/ACK, then its ACK, establish",
      seq: [
        [DIR_INPUT, SYN],
        [DIR_OUTPUT, SYN | ACK],
        [DIR_INPUT, ACK],
        [DIR_OUTPUT, ACK],
      ] as Array<[number, number]>,
      noOutput: false,
      plain: ["SYN_RECV", "SYN_RECV", "ESTABLISHED", "ESTABLISHED"],
      dos: ["SYN_RECV", "SYNACK", "SYNACK", "ESTABLISHED"],
    },
    {
      desc: "DR (input only): SYN goes to SYNACK, the ACK establishes",
      seq: [
        [DIR_INPUT, SYN],
        [DIR_INPUT, ACK],
      ] as Array<[number, number]>,
      noOutput: true,
      plain: ["SYN_RECV", "ESTABLISHED"],
      dos: ["SYNACK", "ESTABLISHED"],
    },
  ];
  for (const c of cases)
    it(c.desc, () => {
      assert.deepEqual(run(c.seq, c.noOutput, false), c.plain);
      assert.deepEqual(run(c.seq, c.noOutput, true), c.dos);
    });

  it("the default stays tcp_states", () => {
    assert.equal(tcpNextState(TCP_S_SYN_RECV, DIR_INPUT, ACK, false), TCP_S_ESTABLISHED);
    assert.equal(tcpNextState(TCP_S_SYN_RECV, DIR_OUTPUT, SYN | ACK, false), TCP_S_SYN_RECV);
    assert.equal(tcpNextState(TCP_S_SYN_RECV, DIR_OUTPUT, SYN | ACK, false, true), TCP_S_SYNACK);
  });
});

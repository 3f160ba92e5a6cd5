import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  DIR_INPUT,
  DIR_INPUT_ONLY,
  DIR_OUTPUT,
  TCP_EV_ACK,
  TCP_EV_FIN,
  TCP_EV_RST,
  TCP_EV_SYN,
  TCP_S_CLOSE,
  TCP_S_CLOSE_WAIT,
  TCP_S_ESTABLISHED,
  TCP_S_FIN_WAIT,
  TCP_S_LAST,
  TCP_S_LAST_ACK,
  TCP_S_LISTEN,
  TCP_S_NONE,
  TCP_S_SYN_RECV,
  TCP_S_SYN_SENT,
  TCP_S_SYNACK,
  TCP_S_TIME_WAIT,
  TCP_STATE_NAMES,
  TCP_STATES,
  tcpEventIndex,
  tcpNextState,
} from "../../src/core/proto/tcp.js";

// Flag bits as on the wire (RFC 793 / 3168 byte 13), written here independently of the codecs.
const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const PSH = 0x08;
const ACK = 0x10;
const URG = 0x20;

// Typed in from tcp_states[] of net/netfilter/ipvs/ip_vs_proto_tcp.c (mainline), one line per
// row, columns sNO sES sSS sSR sFW sTW sCL sCW sLA sLI sSA. (The table in SPEC.md §3 has
// CL in the NO column of "INPUT ack": the row as it was before the sloppy-TCP change of 3.12.)
const KERNEL = {
  input: {
    syn: "SR ES ES SR SR SR SR SR SR SR SR",
    fin: "CL CW SS TW TW TW CL CW LA LI TW",
    ack: "ES ES SS ES FW TW CL CW CL LI ES",
    rst: "CL CL CL SR CL CL CL CL LA LI SR",
  },
  output: {
    syn: "SS ES SS SR SS SS SS SS SS LI SR",
    fin: "TW FW SS TW FW TW CL TW LA LI TW",
    ack: "ES ES SS ES FW TW CL CW LA ES ES",
    rst: "CL CL SS CL CL TW CL CL CL CL CL",
  },
  inputOnly: {
    syn: "SR ES ES SR SR SR SR SR SR SR SR",
    fin: "CL FW SS TW FW TW CL CW LA LI TW",
    ack: "ES ES SS ES FW TW CL CW CL LI ES",
    rst: "CL CL CL SR CL CL CL CL LA LI CL",
  },
} as const;

const ABBREV: Record<string, number> = {
  NO: 0,
  ES: 1,
  SS: 2,
  SR: 3,
  FW: 4,
  TW: 5,
  CL: 6,
  CW: 7,
  LA: 8,
  LI: 9,
  SA: 10,
};

function row(s: string): number[] {
  const cells = s.split(" ").map((a) => {
    const v = ABBREV[a];
    assert.notEqual(v, undefined, a);
    return v;
  });
  assert.equal(cells.length, 11);
  return cells;
}

const EVENTS = [
  { name: "syn", flags: SYN },
  { name: "fin", flags: FIN },
  { name: "ack", flags: ACK },
  { name: "rst", flags: RST },
] as const;

// How each block is reached through tcpNextState(state, dir, flags, noOutput).
const BLOCKS = [
  { name: "input", rows: KERNEL.input, dir: DIR_INPUT, noOutput: false },
  { name: "output", rows: KERNEL.output, dir: DIR_OUTPUT, noOutput: false },
  { name: "inputOnly", rows: KERNEL.inputOnly, dir: DIR_INPUT, noOutput: true },
] as const;

describe("TCP state names and numbers (ip_vs.h, tcp_state_name_table)", () => {
  it("numbers the states as the kernel's IP_VS_TCP_S_*", () => {
    assert.deepEqual(
      [
        TCP_S_NONE,
        TCP_S_ESTABLISHED,
        TCP_S_SYN_SENT,
        TCP_S_SYN_RECV,
        TCP_S_FIN_WAIT,
        TCP_S_TIME_WAIT,
        TCP_S_CLOSE,
        TCP_S_CLOSE_WAIT,
        TCP_S_LAST_ACK,
        TCP_S_LISTEN,
        TCP_S_SYNACK,
        TCP_S_LAST,
      ],
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    );
    assert.deepEqual([DIR_INPUT, DIR_OUTPUT, DIR_INPUT_ONLY], [0, 4, 8]);
    assert.deepEqual([TCP_EV_SYN, TCP_EV_FIN, TCP_EV_ACK, TCP_EV_RST], [0, 1, 2, 3]);
  });

  it("names the states as ipvsadm -L -c prints them", () => {
    assert.deepEqual(TCP_STATE_NAMES, [
      "NONE",
      "ESTABLISHED",
      "SYN_SENT",
      "SYN_RECV",
      "FIN_WAIT",
      "TIME_WAIT",
      "CLOSE",
      "CLOSE_WAIT",
      "LAST_ACK",
      "LISTEN",
      "SYNACK",
    ]);
  });
});

describe("tcpNextState follows the kernel's tcp_states table in every cell", () => {
  for (const b of BLOCKS) {
    for (const ev of EVENTS) {
      it(`${b.name} ${ev.name}: all 11 states`, () => {
        const expected = row(b.rows[ev.name]);
        for (let s = 0; s < TCP_S_LAST; s++) {
          assert.equal(
            tcpNextState(s, b.dir, ev.flags, b.noOutput),
            expected[s],
            `${b.name} ${ev.name} from ${TCP_STATE_NAMES[s]}`,
          );
        }
      });
    }
  }

  it("exports the table as data laid out like the kernel's (3 blocks x 4 events x 11 states)", () => {
    assert.equal(TCP_STATES.length, 12);
    for (const b of BLOCKS) {
      const off = b.name === "input" ? DIR_INPUT : b.name === "output" ? DIR_OUTPUT : DIR_INPUT_ONLY;
      EVENTS.forEach((ev, i) => {
        assert.deepEqual(TCP_STATES[off + i], row(b.rows[ev.name]), `${b.name} ${ev.name}`);
      });
    }
  });

  it("uses the INPUT_ONLY rows only for input with NOOUTPUT; output ignores NOOUTPUT", () => {
    for (let s = 0; s < TCP_S_LAST; s++) {
      for (const ev of EVENTS) {
        assert.equal(
          tcpNextState(s, DIR_OUTPUT, ev.flags, true),
          tcpNextState(s, DIR_OUTPUT, ev.flags, false),
        );
      }
    }
    // The cells where the two input blocks differ: a FIN from ESTABLISHED, a RST in SYNACK.
    assert.equal(tcpNextState(TCP_S_ESTABLISHED, DIR_INPUT, FIN | ACK, false), TCP_S_CLOSE_WAIT);
    assert.equal(tcpNextState(TCP_S_ESTABLISHED, DIR_INPUT, FIN | ACK, true), TCP_S_FIN_WAIT);
    assert.equal(tcpNextState(TCP_S_SYNACK, DIR_INPUT, RST, false), TCP_S_SYN_RECV);
    assert.equal(tcpNextState(TCP_S_SYNACK, DIR_INPUT, RST, true), TCP_S_CLOSE);
  });
});

describe("tcp_state_idx: flag priority rst > syn > fin > ack", () => {
  const cases: Array<{ flags: number; ev: number; label: string }> = [
    { flags: RST | SYN | FIN | ACK, ev: TCP_EV_RST, label: "RST+SYN+FIN+ACK" },
    { flags: RST | ACK, ev: TCP_EV_RST, label: "RST+ACK" },
    { flags: RST | SYN, ev: TCP_EV_RST, label: "RST+SYN" },
    { flags: SYN | FIN, ev: TCP_EV_SYN, label: "SYN+FIN" },
    { flags: SYN | ACK, ev: TCP_EV_SYN, label: "SYN+ACK" },
    { flags: SYN, ev: TCP_EV_SYN, label: "SYN" },
    { flags: FIN | ACK, ev: TCP_EV_FIN, label: "FIN+ACK" },
    { flags: FIN | PSH, ev: TCP_EV_FIN, label: "FIN+PSH" },
    { flags: ACK | PSH, ev: TCP_EV_ACK, label: "ACK+PSH" },
    { flags: ACK | URG, ev: TCP_EV_ACK, label: "ACK+URG" },
    { flags: 0, ev: -1, label: "none" },
    { flags: PSH | URG, ev: -1, label: "PSH+URG" },
    { flags: 0xc0, ev: -1, label: "ECE+CWR" },
  ];
  for (const c of cases) {
    it(`${c.label} is event ${c.ev}`, () => assert.equal(tcpEventIndex(c.flags), c.ev));
  }

  it("applies the priority in transitions: a SYN+ACK from the server in NONE is a syn (SYN_SENT)", () => {
    assert.equal(tcpNextState(TCP_S_NONE, DIR_OUTPUT, SYN | ACK, false), TCP_S_SYN_SENT);
    // RST wins over SYN: input RST+SYN in ESTABLISHED closes.
    assert.equal(tcpNextState(TCP_S_ESTABLISHED, DIR_INPUT, RST | SYN, false), TCP_S_CLOSE);
    // FIN wins over ACK: input FIN+ACK in SYN_RECV goes to TIME_WAIT, not ESTABLISHED.
    assert.equal(tcpNextState(TCP_S_SYN_RECV, DIR_INPUT, FIN | ACK, false), TCP_S_TIME_WAIT);
  });

  it("leaves the state unchanged for a segment with none of the four flags", () => {
    for (const b of BLOCKS) {
      for (let s = 0; s < TCP_S_LAST; s++) {
        assert.equal(tcpNextState(s, b.dir, PSH | URG, b.noOutput), s);
        assert.equal(tcpNextState(s, b.dir, 0, b.noOutput), s);
      }
    }
  });

  it("returns an out-of-range state unchanged instead of reading past the table", () => {
    assert.equal(tcpNextState(TCP_S_LAST, DIR_INPUT, SYN, false), TCP_S_LAST);
    assert.equal(tcpNextState(200, DIR_OUTPUT, ACK, false), 200);
  });
});

describe("a NAT connection's life through the table", () => {
  it("walks handshake, data, active close by the client", () => {
    const steps: Array<[number, number, number]> = [
      [DIR_INPUT, SYN, TCP_S_SYN_RECV],
      [DIR_OUTPUT, SYN | ACK, TCP_S_SYN_RECV],
      [DIR_INPUT, ACK, TCP_S_ESTABLISHED],
      [DIR_OUTPUT, ACK | PSH, TCP_S_ESTABLISHED],
      [DIR_INPUT, FIN | ACK, TCP_S_CLOSE_WAIT],
      [DIR_OUTPUT, FIN | ACK, TCP_S_TIME_WAIT],
      [DIR_INPUT, ACK, TCP_S_TIME_WAIT],
    ];
    let s = TCP_S_NONE;
    for (const [dir, flags, want] of steps) {
      s = tcpNextState(s, dir, flags, false);
      assert.equal(TCP_STATE_NAMES[s], TCP_STATE_NAMES[want]);
    }
  });

  it("walks a DR connection (input only) to FIN_WAIT on the client's FIN", () => {
    let s = TCP_S_NONE;
    s = tcpNextState(s, DIR_INPUT, SYN, true);
    assert.equal(s, TCP_S_SYN_RECV);
    s = tcpNextState(s, DIR_INPUT, ACK, true);
    assert.equal(s, TCP_S_ESTABLISHED);
    s = tcpNextState(s, DIR_INPUT, FIN | ACK, true);
    assert.equal(s, TCP_S_FIN_WAIT);
    s = tcpNextState(s, DIR_INPUT, ACK, true);
    assert.equal(s, TCP_S_FIN_WAIT);
    s = tcpNextState(s, DIR_INPUT, RST, true);
    assert.equal(s, TCP_S_CLOSE);
    assert.equal(tcpNextState(TCP_S_LAST_ACK, DIR_INPUT, ACK, true), TCP_S_CLOSE);
    assert.equal(tcpNextState(TCP_S_LISTEN, DIR_OUTPUT, ACK, false), TCP_S_ESTABLISHED);
    assert.equal(tcpNextState(TCP_S_CLOSE_WAIT, DIR_OUTPUT, FIN, false), TCP_S_TIME_WAIT);
  });
});

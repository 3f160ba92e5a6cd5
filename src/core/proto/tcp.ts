// TCP connection states and transitions of IPVS (net/netfilter/ipvs/ip_vs_proto_tcp.c).
//
// The transition table is the kernel's `tcp_states` as data: three direction blocks (INPUT =
// client→director, OUTPUT = real server→director, INPUT_ONLY = input of a connection whose
// replies never cross the director, i.e. DR/TUN with IP_VS_CONN_F_NOOUTPUT) of four event rows
// (syn, fin, ack, rst), each row indexed by the current state. The rows are those of mainline
// since the sloppy-TCP change (Linux 3.12): an ACK seen in NONE (input and input-only) leads to
// ESTABLISHED, which is how a sloppy_tcp connection created mid-stream gets established.
// The secure_tcp defence (defense.ts) switches to the kernel's second table, tcp_states_dos
// (tcp_timeout_change): a client's ACK does not establish a connection until the real server's
// SYN-ACK was seen (SYN_RECV → SYNACK on output), so a flood of spoofed handshakes stays embryonic.

import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from "../packet/flow.js";

export { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN };

// IP_VS_TCP_S_* (include/uapi/linux/ip_vs.h).
export const TCP_S_NONE = 0;
export const TCP_S_ESTABLISHED = 1;
export const TCP_S_SYN_SENT = 2;
export const TCP_S_SYN_RECV = 3;
export const TCP_S_FIN_WAIT = 4;
export const TCP_S_TIME_WAIT = 5;
export const TCP_S_CLOSE = 6;
export const TCP_S_CLOSE_WAIT = 7;
export const TCP_S_LAST_ACK = 8;
export const TCP_S_LISTEN = 9;
export const TCP_S_SYNACK = 10;
export const TCP_S_LAST = 11;

/** tcp_state_name_table, as `ipvsadm -L -c` prints the states. */
export const TCP_STATE_NAMES: readonly string[] = [
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
];

// Row offsets of the direction blocks (TCP_DIR_* in ip_vs_proto_tcp.c).
export const DIR_INPUT = 0;
export const DIR_OUTPUT = 4;
export const DIR_INPUT_ONLY = 8;

// Event rows inside a direction block (tcp_state_idx's return values).
export const TCP_EV_SYN = 0;
export const TCP_EV_FIN = 1;
export const TCP_EV_ACK = 2;
export const TCP_EV_RST = 3;

const sES = TCP_S_ESTABLISHED;
const sSS = TCP_S_SYN_SENT;
const sSR = TCP_S_SYN_RECV;
const sFW = TCP_S_FIN_WAIT;
const sTW = TCP_S_TIME_WAIT;
const sCL = TCP_S_CLOSE;
const sCW = TCP_S_CLOSE_WAIT;
const sLA = TCP_S_LAST_ACK;
const sLI = TCP_S_LISTEN;
const sSA = TCP_S_SYNACK;

// (No transition leads to NONE, so that alias is not needed.)

/** tcp_states[DIR + EVENT][state]: 12 rows of TCP_S_LAST next states. */
// biome-ignore format: laid out like the kernel's table
export const TCP_STATES: readonly (readonly number[])[] = [
  /*            sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA */
  /* INPUT */
  /* syn */    [sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR],
  /* fin */    [sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW],
  /* ack */    [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES],
  /* rst */    [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR],
  /* OUTPUT */
  /* syn */    [sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR],
  /* fin */    [sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW],
  /* ack */    [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES],
  /* rst */    [sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL],
  /* INPUT-ONLY */
  /* syn */    [sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR],
  /* fin */    [sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW],
  /* ack */    [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES],
  /* rst */    [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL],
];

/**
 * tcp_states_dos (ip_vs_proto_tcp.c, mainline since the sloppy-TCP change): the table secure_tcp
 * selects. Differences from tcp_states: INPUT syn/fin/ack in SYNACK stay SYNACK, INPUT ack in
 * SYN_RECV stays SYN_RECV, OUTPUT syn in SYN_RECV or SYNACK goes to SYNACK, INPUT-ONLY syn goes to
 * SYNACK (except from ESTABLISHED, SYN_SENT and SYN_RECV).
 */
// biome-ignore format: laid out like the kernel's table
export const TCP_STATES_DOS: readonly (readonly number[])[] = [
  /*            sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA */
  /* INPUT */
  /* syn */    [sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSA],
  /* fin */    [sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sSA],
  /* ack */    [sES, sES, sSS, sSR, sFW, sTW, sCL, sCW, sCL, sLI, sSA],
  /* rst */    [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL],
  /* OUTPUT */
  /* syn */    [sSS, sES, sSS, sSA, sSS, sSS, sSS, sSS, sSS, sLI, sSA],
  /* fin */    [sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW],
  /* ack */    [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES],
  /* rst */    [sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL],
  /* INPUT-ONLY */
  /* syn */    [sSA, sES, sES, sSR, sSA, sSA, sSA, sSA, sSA, sSA, sSA],
  /* fin */    [sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW],
  /* ack */    [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES],
  /* rst */    [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL],
];

// Both tables flattened for the per-packet lookup, tcp_states then tcp_states_dos:
// FLAT[(dos ? DOS_BASE : 0) + (dir + ev) * TCP_S_LAST + state].
const DOS_BASE = TCP_STATES.length * TCP_S_LAST;
const FLAT = Uint8Array.from([...TCP_STATES.flat(), ...TCP_STATES_DOS.flat()]);

/** tcp_state_idx: the event row of a segment, priority rst > syn > fin > ack; -1 for none. */
export function tcpEventIndex(tcpFlags: number): number {
  if ((tcpFlags & TCP_RST) !== 0) return TCP_EV_RST;
  if ((tcpFlags & TCP_SYN) !== 0) return TCP_EV_SYN;
  if ((tcpFlags & TCP_FIN) !== 0) return TCP_EV_FIN;
  if ((tcpFlags & TCP_ACK) !== 0) return TCP_EV_ACK;
  return -1;
}

/**
 * The state set_tcp_state computes for a segment with `tcpFlags` seen in direction `dir`
 * (DIR_INPUT or DIR_OUTPUT). With `noOutput` (IP_VS_CONN_F_NOOUTPUT still set) input
 * segments use the INPUT_ONLY block; clearing the flag on the first output segment is the
 * caller's business. A segment without any of the four flags leaves the state unchanged.
 * States outside 0..TCP_S_LAST-1 are returned unchanged. `dos`: the secure_tcp table
 * (tcp_states_dos) is in use.
 */
export function tcpNextState(
  state: number,
  dir: number,
  tcpFlags: number,
  noOutput: boolean,
  dos = false,
): number {
  const ev = tcpEventIndex(tcpFlags);
  if (ev < 0 || state < 0 || state >= TCP_S_LAST) return state;
  const off = noOutput && dir === DIR_INPUT ? DIR_INPUT_ONLY : dir;
  return FLAT[(dos ? DOS_BASE : 0) + (off + ev) * TCP_S_LAST + state];
}

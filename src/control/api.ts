// The one API to a director's state (as libipvs is to the kernel's): typed commands in, plain
// snapshots out. Every front end goes through it — the ipvsadm text front end (src/cli/ipvsadm),
// the configuration files (src/config), the health checks (src/health), the control socket — and
// the data-plane worker runs it on commands it receives as structured messages, never as text.
//
// A batch is validated whole and applied whole: the table commands go to IpvsCtl's shadow check,
// sysctl and fwmark commands are checked here first, so a batch with one bad command changes
// nothing and its error names the command (CtlError.index).

import { canonicalIPv6, ipv6TextWords, ipv6WordsText, parseIPv4 } from "../core/addr.js";
import { CtlError } from "../core/ctl.js";
import type { CtlCommand } from "../core/ctl-types.js";
import { Fwd } from "../core/dest.js";
import type { Engine } from "../core/engine.js";
import { TsvsError } from "../core/errors.js";
import type { FwmarkRuleView } from "../core/fwmark.js";
import {
  type ControlCommand,
  isDefenseMode,
  isTableCommand,
  SYSCTLS,
  type SysctlValue,
  sysctlError,
  sysctlFields,
  sysctlValue,
} from "./commands.js";
import { parseFwmarkRule } from "./fwmark-rule.js";
import { type TableSnapshot, tableSnapshot } from "./snapshot.js";

/** A NAT/FULLNAT destination whose replies the director consumes: proto 0 = TCP and UDP (fwmark services). */
export interface GuardDest {
  addr: number;
  proto: number;
  port: number;
}

/** An IPv6 NAT/FULLNAT destination the kernel must not answer for (the address as text). */
export interface GuardDest6 {
  addr6: string;
  proto: number;
  port: number;
}

/**
 * What the kernel must not see (the daemon's nft guard): owned addresses, NAT destinations; IPv6
 * ones apart (an IPv6 service's `addr` is a fold, never an IPv4 address to guard).
 */
export interface Guard {
  owned: number[];
  nat: GuardDest[];
  /** Absent: none (a guard from before IPv6, or a test's). */
  owned6?: string[];
  nat6?: GuardDest6[];
}

/**
 * The destination address of a rule that names one host (`-d ADDR` or `-d ADDR/32`, not negated),
 * read from the classifier's canonical text: the director must own it (answer ARP, keep the kernel
 * out) for the fwmark service to see its packets, as the VIP of a fwmark service sits on the
 * director's lo in a kernel setup. Null for a network or no -d.
 */
export function ruleHostDst(canonical: string): number | null {
  const tok = canonical.split(/\s+/);
  for (let i = 0; i + 1 < tok.length; i++) {
    if (tok[i] !== "-d" || (i > 0 && tok[i - 1] === "!")) continue;
    const m = /^(\d+\.\d+\.\d+\.\d+)\/32$/.exec(tok[i + 1]);
    return m === null ? null : (parseIPv4(m[1]) ?? null);
  }
  return null;
}

/**
 * ruleHostDst for an ip6tables rule (`-d ADDR/128`, not negated): the address as text (inet_ntop's
 * form), which the director must own (answer NDP, keep the kernel out). Null for a network, no -d,
 * or an IPv4 rule.
 */
export function ruleHostDst6(canonical: string): string | null {
  const tok = canonical.split(/\s+/);
  for (let i = 0; i + 1 < tok.length; i++) {
    if (tok[i] !== "-d" || (i > 0 && tok[i - 1] === "!")) continue;
    const m = /^([0-9a-fA-F:.]*:[0-9a-fA-F:.]*)\/128$/.exec(tok[i + 1]);
    return m === null ? null : canonicalIPv6(m[1]);
  }
  return null;
}

/** An ip6tables rule's canonical text: it names an IPv6 address, or starts with -6. */
function isRule6(canonical: string): boolean {
  return canonical.startsWith("-6 ") || /(^|\s)-[sd] [^\s]*:/.test(canonical);
}

/** A rule's canonical text (as iptables -D compares rules), or the parse error. */
function canonicalRule(rule: string): string {
  return parseFwmarkRule(rule).text;
}

/** Sorted, so that equal guards compare equal (the daemon updates nft only on a change). */
export function sortGuard(g: Guard): Guard {
  return {
    owned: [...new Set(g.owned)].sort((a, b) => a - b),
    nat: [...g.nat].sort((a, b) => a.addr - b.addr || a.proto - b.proto || a.port - b.port),
    owned6: [...new Set(g.owned6 ?? [])].sort(),
    nat6: [...(g.nat6 ?? [])].sort((a, b) =>
      a.addr6 < b.addr6 ? -1 : a.addr6 > b.addr6 ? 1 : a.proto - b.proto || a.port - b.port,
    ),
  };
}

export class ControlApi {
  readonly engine: Engine;
  private readonly now: () => number;
  /** Fwmark rule id → the host address the rule made the director's (ruleHostDst). */
  private readonly fwOwned = new Map<number, number>();
  /** The same for ip6tables rules (ruleHostDst6): the address's words. */
  private readonly fwOwned6 = new Map<number, Int32Array>();
  /** VRRP's addresses, master and held back alike (setVrrpAddresses). */
  private vrrpOwned: { owned: readonly number[]; owned6: readonly string[] } = { owned: [], owned6: [] };

  constructor(engine: Engine, now: () => number) {
    this.engine = engine;
    this.now = now;
  }

  /**
   * Applies the batch, all of it or nothing. Throws CtlError (TSVS_ERR_…, ipvsadm's message, the
   * failing command's index). Returns the fwmark rules the batch added or deleted, in order.
   */
  apply(cmds: readonly ControlCommand[]): FwmarkRuleView[] {
    const table: CtlCommand[] = [];
    const tableIndex: number[] = [];
    const plan = this.planOthers(cmds, table, tableIndex);
    try {
      if (table.length > 0) this.engine.applyAll(table);
    } catch (e) {
      if (e instanceof CtlError) throw new CtlError(e.code, e.message, tableIndex[e.index] ?? e.index);
      throw e;
    }
    return plan.map((run) => run()).filter((v): v is FwmarkRuleView => v !== null);
  }

  /**
   * Checks every sysctl and fwmark command against the state the batch would leave (rules added
   * earlier in the batch can be deleted later in it) and returns the steps that apply them, which
   * cannot fail. Table commands are collected for IpvsCtl's own all-or-nothing check.
   */
  private planOthers(
    cmds: readonly ControlCommand[],
    table: CtlCommand[],
    tableIndex: number[],
  ): Array<() => FwmarkRuleView | null> {
    const steps: Array<() => FwmarkRuleView | null> = [];
    const fw = this.engine.fwmarks;
    // The rule list as the batch changes it: canonical texts, null for a rule the batch removed.
    const rules: Array<{ id: number | null; text: string } | null> = fw
      .list()
      .map((r) => ({ id: r.id, text: r.rule }));
    const bad = (i: number, message: string): never => {
      throw new CtlError("TSVS_ERR_INVALID", message, i);
    };
    cmds.forEach((cmd, i) => {
      if (isTableCommand(cmd)) {
        table.push(cmd);
        tableIndex.push(i);
        return;
      }
      switch (cmd.op) {
        case "set-sysctl": {
          const values = this.engine.sysctls as unknown as Record<string, unknown>;
          const why = sysctlError(cmd.name, cmd.value, cmd.value2, values);
          if (why !== null) bad(i, why);
          steps.push(() => {
            Object.assign(this.engine.sysctls, sysctlFields(cmd.name, cmd.value, cmd.value2));
            // proc_do_defense_mode: a new mode takes effect now, not at the next second.
            if (isDefenseMode(cmd.name)) this.engine.updateDefense();
            return null;
          });
          return;
        }
        case "add-fwmark": {
          let text = "";
          try {
            text = canonicalRule(cmd.rule);
          } catch (e) {
            if (e instanceof TsvsError) bad(i, `fwmark add: ${e.message}`);
            throw e;
          }
          rules.push({ id: null, text });
          steps.push(() => this.addFwmark(cmd.rule));
          return;
        }
        case "del-fwmark": {
          const arg = cmd.rule.trim();
          let at = -1;
          if (/^\d+$/.test(arg)) at = rules.findIndex((r) => r !== null && r.id === Number(arg));
          else {
            let want = "";
            try {
              want = canonicalRule(arg);
            } catch (e) {
              if (e instanceof TsvsError) bad(i, `fwmark del: ${e.message}`);
              throw e;
            }
            // As iptables -D RULE: the first rule that is the same once both are canonical.
            at = rules.findIndex((r) => r !== null && r.text === want);
          }
          if (at < 0) bad(i, "fwmark del: no such rule (does a matching rule exist?)");
          const target = rules[at] as { id: number | null; text: string };
          rules[at] = null;
          steps.push(() => this.delFwmark(target.id, target.text));
          return;
        }
        case "flush-fwmarks":
          for (let k = 0; k < rules.length; k++) rules[k] = null;
          steps.push(() => {
            for (const id of [...this.fwOwned.keys(), ...this.fwOwned6.keys()]) this.releaseOwned(id);
            fw.clear();
            return null;
          });
          return;
      }
    });
    return steps;
  }

  private addFwmark(rule: string): FwmarkRuleView | null {
    const fw = this.engine.fwmarks;
    const id = fw.add(parseFwmarkRule(rule));
    const view = fw.list().find((r) => r.id === id) ?? null;
    const host = view === null ? null : ruleHostDst(view.rule);
    if (host !== null) {
      this.engine.ctl.addOwnedAddress(host);
      this.fwOwned.set(id, host);
    }
    const host6 = view === null ? null : ruleHostDst6(view.rule);
    const w = host6 === null ? null : ipv6TextWords(host6);
    if (w !== null) {
      this.engine.ctl.addOwnedAddress6(w);
      this.fwOwned6.set(id, w);
    }
    return view;
  }

  /** id null: a rule added earlier in the same batch, found by its canonical text. */
  private delFwmark(id: number | null, text: string): FwmarkRuleView | null {
    const fw = this.engine.fwmarks;
    const view = fw.list().find((r) => (id === null ? r.rule === text : r.id === id));
    if (view === undefined) return null;
    fw.remove(view.id);
    this.releaseOwned(view.id);
    return view;
  }

  private releaseOwned(id: number): void {
    const a = this.fwOwned.get(id);
    if (a !== undefined) {
      this.fwOwned.delete(id);
      this.engine.ctl.removeOwnedAddress(a);
    }
    const w = this.fwOwned6.get(id);
    if (w !== undefined) {
      this.fwOwned6.delete(id);
      this.engine.ctl.removeOwnedAddress6(w);
    }
  }

  /** The table as plain data (with the connections when asked: ipvsadm -Lc). */
  snapshot(withConns: boolean): TableSnapshot {
    return tableSnapshot(this.engine, this.now(), withConns);
  }

  /** The director sysctls by their /proc names, as numbers (one, when named; sync_threshold as two). */
  sysctls(only?: string): Record<string, SysctlValue> {
    const out: Record<string, SysctlValue> = {};
    const values = this.engine.sysctls as unknown as Record<string, unknown>;
    for (const name of Object.keys(SYSCTLS)) {
      if (only !== undefined && name !== only) continue;
      const v = sysctlValue(name, values);
      if (v !== undefined) out[name] = v;
    }
    return out;
  }

  fwmarkRules(): FwmarkRuleView[] {
    return this.engine.fwmarks.list();
  }

  /**
   * VRRP's addresses (daemon/vrrp.ts, through the worker), whatever their instance's state: the
   * guard keeps the kernel from answering or forwarding them, as for VIPs. The workers answer a
   * MASTER's; a BACKUP's kernel must not either.
   */
  setVrrpAddresses(owned: readonly number[], owned6: readonly string[]): void {
    this.vrrpOwned = { owned: [...owned], owned6: [...owned6] };
  }

  /**
   * VIPs and LIPs (and the addresses fwmark rules made the director's), and the NAT/FULLNAT
   * destinations, sorted so that equal guards compare equal.
   */
  guard(): Guard {
    const e = this.engine;
    // This worker's LIPs: the pool's and the services' laddrs it owns, and deleted laddrs that
    // connections still use (lip.ts); the daemon's guard is the union over the workers.
    const owned = new Set<number>(e.lipTable.owned());
    for (const a of this.fwOwned.values()) owned.add(a >>> 0);
    for (const a of this.vrrpOwned.owned) owned.add(a >>> 0);
    const nat = new Map<string, GuardDest>();
    const nat6 = new Map<string, GuardDest6>();
    for (const s of e.services()) {
      if (s.fwmark === 0 && s.af === 4) owned.add(s.addr >>> 0);
      for (const d of s.dests) {
        if (d.fwd !== Fwd.Masq && d.fwd !== Fwd.FullNat) continue;
        const proto = s.fwmark === 0 ? s.protocol : 0;
        if (d.addr6 !== null) {
          const g = { addr6: ipv6WordsText(d.addr6), proto, port: d.port };
          nat6.set(`${g.addr6}/${proto}/${g.port}`, g);
        } else {
          const g = { addr: d.addr >>> 0, proto, port: d.port };
          nat.set(`${g.addr}/${g.proto}/${g.port}`, g);
        }
      }
    }
    return sortGuard({
      owned: [...owned],
      nat: [...nat.values()],
      // With this worker's IPv6 LIPs that connections still hold after their laddr went (lip.ts).
      owned6: [...new Set([...e.ctl.ownedAddresses6(), ...e.lipTable.owned6(), ...this.vrrpOwned.owned6])],
      nat6: [...nat6.values()],
    });
  }

  /** Whether an iptables fwmark rule matches a network rather than one host (the socket filter must then let all IPv4 in). */
  hasNetworkFwmark(): boolean {
    return this.engine.fwmarks.list().some((r) => !isRule6(r.rule) && ruleHostDst(r.rule) === null);
  }

  /** The same for ip6tables rules (the socket filter must then let all IPv6 in). */
  hasNetworkFwmark6(): boolean {
    return this.engine.fwmarks.list().some((r) => isRule6(r.rule) && ruleHostDst6(r.rule) === null);
  }
}

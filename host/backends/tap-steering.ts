/**
 * Flow steering for a multi-queue tap: an eBPF program (TUNSETSTEERINGEBPF) that computes
 * net/flow-hash.ts's hash in the kernel; the tap sends each frame to queue `hash % queues`.
 * Without it the tap's own steering (automq) moves a flow to whichever queue last carried the
 * guest's packets of that flow (its ACKs), which reorders the flow whenever the guest's ACKs
 * change queue; with it a flow stays on one queue pair. QEMU steers the same way for RSS.
 *
 * The program is a socket filter made only of BPF_LD_ABS/IND loads (network byte order, and a
 * load past the frame's end ends the program returning 0, as flowHash returns 0), ALU and
 * jumps. Loading it needs CAP_BPF (or root with unprivileged BPF disabled); control side only.
 */
import { FLOW_MIX } from "../net/flow-hash.js";
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_TCP, IPPROTO_UDP } from "../net/gateway/wire.js";
import * as libc from "../runtime/libc.js";

// eBPF instruction classes, sizes, modes, operations (linux/bpf_common.h, linux/bpf.h).
const LD = 0x00, ALU = 0x04, JMP = 0x05, ALU64 = 0x07;
const W = 0x00, H = 0x08, B = 0x10;
const ABS = 0x20, IND = 0x40;
const K = 0x00, X = 0x08;
const AND = 0x50, LSH = 0x60, RSH = 0x70, XOR = 0xa0, MOV = 0xb0, MUL = 0x20;
const JA = 0x00, JEQ = 0x10, JNE = 0x50, EXIT = 0x90;

const BPF_PROG_LOAD = 5;
const BPF_PROG_TEST_RUN = 10;
const BPF_PROG_TYPE_SOCKET_FILTER = 1;
const BPF_PROG_TYPE_SCHED_CLS = 3;
const SYS_BPF = 321; // x86_64

type Insn = { op: number; dst: number; src: number; off: number | string; imm: number };

/** A tiny assembler: instructions and labels; jump offsets are resolved by name. */
class Program {
  private readonly insns: Insn[] = [];
  private readonly labels = new Map<string, number>();

  private emit(op: number, dst: number, src: number, off: number | string, imm: number): this {
    this.insns.push({ op, dst, src, off, imm });
    return this;
  }
  label(name: string): this { this.labels.set(name, this.insns.length); return this; }
  /** r0 = ntoh(packet[off]) of `size`; ends the program with 0 if past the end (needs r6 = ctx). */
  ldAbs(size: number, off: number): this { return this.emit(LD | ABS | size, 0, 0, 0, off); }
  /** r0 = ntoh(packet[reg + off]). */
  ldInd(size: number, reg: number, off: number): this { return this.emit(LD | IND | size, 0, reg, 0, off); }
  alu64(op: number, dst: number, srcReg: number): this { return this.emit(ALU64 | op | X, dst, srcReg, 0, 0); }
  alu64k(op: number, dst: number, imm: number): this { return this.emit(ALU64 | op | K, dst, 0, 0, imm); }
  alu32k(op: number, dst: number, imm: number): this { return this.emit(ALU | op | K, dst, 0, 0, imm); }
  alu32(op: number, dst: number, srcReg: number): this { return this.emit(ALU | op | X, dst, srcReg, 0, 0); }
  jeq(reg: number, imm: number, to: string): this { return this.emit(JMP | JEQ | K, reg, 0, to, imm); }
  jne(reg: number, imm: number, to: string): this { return this.emit(JMP | JNE | K, reg, 0, to, imm); }
  ja(to: string): this { return this.emit(JMP | JA, 0, 0, to, 0); }
  exit(): this { return this.emit(JMP | EXIT, 0, 0, 0, 0); }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.insns.length * 8);
    const v = new DataView(out.buffer);
    this.insns.forEach((ins, i) => {
      let off = ins.off;
      if (typeof off === "string") {
        const at = this.labels.get(off);
        if (at === undefined) throw new Error(`steering program: no label ${off}`);
        off = at - (i + 1);
      }
      v.setUint8(i * 8, ins.op);
      v.setUint8(i * 8 + 1, (ins.src << 4) | ins.dst);
      v.setInt16(i * 8 + 2, off, true);
      v.setInt32(i * 8 + 4, ins.imm | 0, true);
    });
    return out;
  }
}

/** The steering program's instructions (r7: the hash so far, r9: the L4 protocol, r8: scratch). */
export function steeringProgram(): Uint8Array {
  const p = new Program();
  p.alu64(MOV, 6, 1) // r6 = ctx, for the loads
    .ldAbs(H, 12)
    .jeq(0, ETHERTYPE_IPV4, "ipv4")
    .jeq(0, ETHERTYPE_IPV6, "ipv6")
    .alu64k(MOV, 0, 0).exit();
  p.label("ipv4")
    .ldAbs(B, 23).alu64(MOV, 9, 0).alu64(MOV, 7, 0)
    .ldAbs(W, 26).alu64(XOR, 7, 0)
    .ldAbs(W, 30).alu64(XOR, 7, 0)
    .ldAbs(H, 20).alu64k(AND, 0, 0x3fff).jne(0, 0, "mix") // a fragment: addresses only
    .jeq(9, IPPROTO_TCP, "ports4").jeq(9, IPPROTO_UDP, "ports4").ja("mix")
    .label("ports4")
    .ldAbs(B, 14).alu64k(AND, 0, 0x0f).alu64k(LSH, 0, 2).alu64(MOV, 8, 0)
    .ldInd(W, 8, 14).ja("ports");
  p.label("ipv6").ldAbs(B, 20).alu64(MOV, 9, 0).alu64(MOV, 7, 0);
  for (let o = 22; o < 54; o += 4) p.ldAbs(W, o).alu64(XOR, 7, 0);
  p.jeq(9, IPPROTO_TCP, "ports6").jeq(9, IPPROTO_UDP, "ports6").ja("mix")
    .label("ports6").ldAbs(W, 54)
    .label("ports") // r0 = source port << 16 | destination port
    .alu64(MOV, 8, 0).alu64k(RSH, 8, 16).alu64k(AND, 0, 0xffff).alu64(XOR, 8, 0).alu64(XOR, 7, 8)
    .label("mix")
    .alu64(MOV, 0, 7).alu32k(MUL, 0, FLOW_MIX)
    .alu32(MOV, 8, 0).alu32k(RSH, 8, 16).alu32(XOR, 0, 8)
    .exit();
  return p.bytes();
}

/**
 * Loads the steering program; returns its fd. Throws SysError (EPERM without CAP_BPF). The tap
 * takes a socket filter; a test run (BPF_PROG_TEST_RUN) shows only a traffic-control program
 * the frame from its Ethernet header on, as the tap does, so tests load the same instructions
 * as "sched-cls".
 */
export function loadSteeringProgram(type: "socket-filter" | "sched-cls" = "socket-filter"): number {
  const insns = steeringProgram();
  const license = new TextEncoder().encode("GPL\0");
  return libc.withNative(insns.length + license.length, (base, put) => {
    put(0, insns);
    put(insns.length, license);
    // union bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, log_level/size/buf, ...
    const attr = new Uint8Array(128);
    const v = new DataView(attr.buffer);
    v.setUint32(0, type === "socket-filter" ? BPF_PROG_TYPE_SOCKET_FILTER : BPF_PROG_TYPE_SCHED_CLS, true);
    v.setUint32(4, insns.length / 8, true);
    v.setBigUint64(8, base, true);
    v.setBigUint64(16, base + BigInt(insns.length), true);
    return libc.syscall3("bpf(BPF_PROG_LOAD)", SYS_BPF, BPF_PROG_LOAD, attr, attr.length);
  });
}

/** Runs the program on one frame in the kernel (BPF_PROG_TEST_RUN); returns its result (for tests). */
export function runSteeringProgram(progFd: number, frame: Uint8Array): number {
  return libc.withNative(frame.length, (base, put) => {
    put(0, frame);
    // test: prog_fd, retval, data_size_in, data_size_out, data_in, data_out, repeat, duration, ...
    const attr = new Uint8Array(80);
    const v = new DataView(attr.buffer);
    v.setUint32(0, progFd, true);
    v.setUint32(8, frame.length, true);
    v.setBigUint64(16, base, true);
    v.setUint32(32, 1, true);
    libc.syscall3("bpf(BPF_PROG_TEST_RUN)", SYS_BPF, BPF_PROG_TEST_RUN, attr, attr.length);
    return v.getUint32(4, true);
  });
}

/**
 * vhost-user message layouts (QEMU docs/interop/vhost-user.rst). A message is a 12-byte header
 * (u32 request, u32 flags, u32 size; native endian) followed by `size` bytes of payload; fds
 * travel as SCM_RIGHTS on the message's first bytes.
 */

/** Front-end → back-end requests. */
export const enum Req {
  GET_FEATURES = 1,
  SET_FEATURES = 2,
  SET_OWNER = 3,
  RESET_OWNER = 4,
  SET_MEM_TABLE = 5,
  SET_LOG_BASE = 6,
  SET_LOG_FD = 7,
  SET_VRING_NUM = 8,
  SET_VRING_ADDR = 9,
  SET_VRING_BASE = 10,
  GET_VRING_BASE = 11,
  SET_VRING_KICK = 12,
  SET_VRING_CALL = 13,
  SET_VRING_ERR = 14,
  GET_PROTOCOL_FEATURES = 15,
  SET_PROTOCOL_FEATURES = 16,
  GET_QUEUE_NUM = 17,
  SET_VRING_ENABLE = 18,
  SEND_RARP = 19,
  NET_SET_MTU = 20,
  GET_CONFIG = 24,
  SET_CONFIG = 25,
  RESET_DEVICE = 34,
  GET_MAX_MEM_SLOTS = 36,
  ADD_MEM_REG = 37,
  REM_MEM_REG = 38,
  SET_STATUS = 39,
  GET_STATUS = 40,
}

export const REQUEST_NAMES: Record<number, string> = {
  1: "GET_FEATURES", 2: "SET_FEATURES", 3: "SET_OWNER", 4: "RESET_OWNER", 5: "SET_MEM_TABLE", 6: "SET_LOG_BASE",
  7: "SET_LOG_FD", 8: "SET_VRING_NUM", 9: "SET_VRING_ADDR", 10: "SET_VRING_BASE", 11: "GET_VRING_BASE",
  12: "SET_VRING_KICK", 13: "SET_VRING_CALL", 14: "SET_VRING_ERR", 15: "GET_PROTOCOL_FEATURES",
  16: "SET_PROTOCOL_FEATURES", 17: "GET_QUEUE_NUM", 18: "SET_VRING_ENABLE", 19: "SEND_RARP", 20: "NET_SET_MTU",
  21: "SET_BACKEND_REQ_FD", 22: "IOTLB_MSG", 23: "SET_VRING_ENDIAN", 24: "GET_CONFIG", 25: "SET_CONFIG",
  26: "CREATE_CRYPTO_SESSION", 27: "CLOSE_CRYPTO_SESSION", 28: "POSTCOPY_ADVISE", 29: "POSTCOPY_LISTEN",
  30: "POSTCOPY_END", 31: "GET_INFLIGHT_FD", 32: "SET_INFLIGHT_FD", 33: "GPU_SET_SOCKET", 34: "RESET_DEVICE",
  35: "VRING_KICK", 36: "GET_MAX_MEM_SLOTS", 37: "ADD_MEM_REG", 38: "REM_MEM_REG", 39: "SET_STATUS", 40: "GET_STATUS",
};

export const HEADER_SIZE = 12;
export const FLAG_VERSION = 0x1;
export const FLAG_REPLY = 0x4;
export const FLAG_NEED_REPLY = 0x8;
/** Largest payload accepted (SET_MEM_TABLE with 8 regions is 264 bytes; config space 256 + 12). */
export const MAX_PAYLOAD = 4096;

/** The virtio feature bit vhost-user borrows to announce protocol features (never seen by guests). */
export const F_PROTOCOL_FEATURES = 30n;
/** VHOST_F_LOG_ALL: the front-end asks for every guest write to be logged (live migration). */
export const F_LOG_ALL = 26n;

/** Protocol feature bits (VHOST_USER_PROTOCOL_F_*). */
export const enum ProtocolFeature {
  MQ = 0,
  LOG_SHMFD = 1,
  RARP = 2,
  REPLY_ACK = 3,
  MTU = 4,
  BACKEND_REQ = 5,
  CONFIG = 9,
  CONFIGURE_MEM_SLOTS = 15,
  STATUS = 16,
}

/** KICK/CALL/ERR payload: bits 0-7 ring index, bit 8 "no fd: poll instead". */
export const VRING_NOFD = 0x100;

export interface Header {
  request: number;
  flags: number;
  size: number;
}

export function decodeHeader(b: Uint8Array): Header {
  const dv = new DataView(b.buffer, b.byteOffset, HEADER_SIZE);
  return { request: dv.getUint32(0, true), flags: dv.getUint32(4, true), size: dv.getUint32(8, true) };
}

export function encodeMessage(request: number, flags: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, request, true);
  dv.setUint32(4, flags, true);
  dv.setUint32(8, payload.length, true);
  out.set(payload, HEADER_SIZE);
  return out;
}

export function u64Payload(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
}

export function readU64(p: Uint8Array): bigint {
  if (p.length < 8) throw new ProtocolError(`payload of ${p.length} bytes, expected a u64`);
  return new DataView(p.buffer, p.byteOffset, 8).getBigUint64(0, true);
}

/** struct vhost_vring_state { u32 index; u32 num; } */
export function readVringState(p: Uint8Array): { index: number; num: number } {
  if (p.length < 8) throw new ProtocolError(`vring state payload of ${p.length} bytes`);
  const dv = new DataView(p.buffer, p.byteOffset, 8);
  return { index: dv.getUint32(0, true), num: dv.getUint32(4, true) };
}

export function vringStatePayload(index: number, num: number): Uint8Array {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, index, true);
  dv.setUint32(4, num, true);
  return b;
}

/** vhost_vring_addr.flags: `log` holds the guest-physical address where the used ring's writes are logged. */
export const VRING_F_LOG = 1;

/** struct vhost_vring_addr { u32 index; u32 flags; u64 desc, used, avail, log } (note: used before avail). */
export interface VringAddr {
  index: number;
  flags: number;
  desc: bigint;
  used: bigint;
  avail: bigint;
  log: bigint;
}

export function readVringAddr(p: Uint8Array): VringAddr {
  if (p.length < 40) throw new ProtocolError(`vring addr payload of ${p.length} bytes`);
  const dv = new DataView(p.buffer, p.byteOffset, 40);
  return {
    index: dv.getUint32(0, true), flags: dv.getUint32(4, true), desc: dv.getBigUint64(8, true),
    used: dv.getBigUint64(16, true), avail: dv.getBigUint64(24, true), log: dv.getBigUint64(32, true),
  };
}

export function vringAddrPayload(a: VringAddr): Uint8Array {
  const b = new Uint8Array(40);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, a.index, true);
  dv.setUint32(4, a.flags, true);
  dv.setBigUint64(8, a.desc, true);
  dv.setBigUint64(16, a.used, true);
  dv.setBigUint64(24, a.avail, true);
  dv.setBigUint64(32, a.log, true);
  return b;
}

/** One memory region: { u64 guest_phys_addr, memory_size, userspace_addr, mmap_offset }. */
export interface MemRegion {
  gpa: bigint;
  size: bigint;
  qva: bigint;
  mmapOffset: bigint;
}

function readRegion(dv: DataView, at: number): MemRegion {
  return {
    gpa: dv.getBigUint64(at, true), size: dv.getBigUint64(at + 8, true),
    qva: dv.getBigUint64(at + 16, true), mmapOffset: dv.getBigUint64(at + 24, true),
  };
}

function writeRegion(dv: DataView, at: number, r: MemRegion): void {
  dv.setBigUint64(at, r.gpa, true);
  dv.setBigUint64(at + 8, r.size, true);
  dv.setBigUint64(at + 16, r.qva, true);
  dv.setBigUint64(at + 24, r.mmapOffset, true);
}

/** SET_MEM_TABLE: { u32 nregions; u32 padding; region[nregions] }. */
export function readMemTable(p: Uint8Array): MemRegion[] {
  if (p.length < 8) throw new ProtocolError("short memory table");
  const dv = new DataView(p.buffer, p.byteOffset, p.length);
  const n = dv.getUint32(0, true);
  if (n > 8 || p.length < 8 + 32 * n) throw new ProtocolError(`memory table of ${n} regions in ${p.length} bytes`);
  return Array.from({ length: n }, (_, i) => readRegion(dv, 8 + 32 * i));
}

export function memTablePayload(regions: MemRegion[]): Uint8Array {
  const b = new Uint8Array(8 + 32 * 8);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, regions.length, true);
  regions.forEach((r, i) => writeRegion(dv, 8 + 32 * i, r));
  return b;
}

/** ADD_MEM_REG / REM_MEM_REG: { u64 padding; region }. */
export function readSingleRegion(p: Uint8Array): MemRegion {
  if (p.length < 40) throw new ProtocolError(`single region payload of ${p.length} bytes`);
  return readRegion(new DataView(p.buffer, p.byteOffset, 40), 8);
}

export function singleRegionPayload(r: MemRegion): Uint8Array {
  const b = new Uint8Array(40);
  writeRegion(new DataView(b.buffer), 8, r);
  return b;
}

/** A message the back-end cannot make sense of; the connection is closed. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

/** SET_LOG_BASE payload (struct vhost_user_log): the log's size and offset in its fd. */
export function readLogBase(p: Uint8Array): { size: bigint; offset: bigint } {
  if (p.length < 16) throw new ProtocolError(`SET_LOG_BASE payload of ${p.length} bytes`);
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  return { size: v.getBigUint64(0, true), offset: v.getBigUint64(8, true) };
}

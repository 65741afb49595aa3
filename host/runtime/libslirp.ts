/**
 * The second FFI module: libslirp (Debian `libslirp0`, the user-mode TCP/IP stack QEMU's
 * `-netdev user` and slirp4netns use) through koffi. Only the calls the uplink needs, with the
 * 4.x configuration (version 4: `disable_dhcp`, opaque timers). Loaded on first use; a missing
 * library is a `SlirpUnavailable` error that names the package.
 */
import koffi, { type LibraryHandle } from "koffi";
import { copyFromNative, freeNative } from "./libc.js";

/** Poll event bits slirp uses in add_poll / get_revents. */
export const SLIRP_POLL_IN = 1 << 0;
export const SLIRP_POLL_OUT = 1 << 1;
export const SLIRP_POLL_PRI = 1 << 2;
export const SLIRP_POLL_ERR = 1 << 3;
export const SLIRP_POLL_HUP = 1 << 4;

/** libslirp could not be loaded. */
export class SlirpUnavailable extends Error {
  constructor(cause: unknown) {
    super(`libslirp is not available (${(cause as Error).message ?? cause}); install the Debian package libslirp0`);
    this.name = "SlirpUnavailable";
  }
}

/** The configuration slirp_new takes (SlirpConfig version 4); addresses as bytes in network order. */
export interface SlirpSettings {
  network: number[];
  netmask: number[];
  /** The host's address on the virtual network: connections to it reach the host's loopback. */
  host: number[];
  /** The DNS address slirp answers at and forwards to the host's resolver. */
  nameserver: number[];
  /** The first address slirp's own DHCP would hand out (its DHCP is off: ours serves). */
  dhcpStart: number[];
  ipv6: { prefix: Uint8Array; prefixLength: number; host: Uint8Array; nameserver: Uint8Array } | null;
  mtu: number;
}

/** The application side of slirp: what the stack calls back (all on the JS thread, during slirp's own calls or timers). */
export interface SlirpCallbacks {
  /** A frame for the virtual network. */
  sendPacket(frame: Uint8Array): void;
  guestError(message: string): void;
  /** A new (disarmed) timer; returns a nonzero handle. */
  timerNew(id: number, cbOpaque: bigint): bigint;
  /** Arms `timer` to fire in `delayMs` (≤ 0: at once), replacing an earlier arming. */
  timerMod(timer: bigint, delayMs: number): void;
  timerFree(timer: bigint): void;
  /** New work may be ready (e.g. a socket buffer drained): poll again soon. */
  notify(): void;
}

export interface SlirpBindings {
  /** Creates a stack; returns its handle. Callbacks stay registered until `cleanup`. */
  create(settings: SlirpSettings, callbacks: SlirpCallbacks): SlirpHandle;
  version: string;
}

export interface SlirpHandle {
  input(frame: Uint8Array): void;
  /** Calls add(fd, events) for each fd slirp wants watched; returns the timeout it asks for (ms, -1: none). */
  fill(add: (fd: number, events: number) => void, timeoutMs: number): number;
  /** Reports readiness: revents(index) for each fd added by the last fill(). */
  poll(error: boolean, revents: (index: number) => number): void;
  handleTimer(id: number, cbOpaque: bigint): void;
  /** Host port → guest port forward; returns false if refused (e.g. the host port is taken). */
  addHostForward(udp: boolean, hostAddr: number[], hostPort: number, guestAddr: number[], guestPort: number): boolean;
  connectionInfo(): string;
  cleanup(): void;
}

const loaded = new Map<string, SlirpBindings>();

/** Loads libslirp (from `path`, default the soname) once; throws SlirpUnavailable if it cannot. */
export function libslirp(path = "libslirp.so.0"): SlirpBindings {
  const have = loaded.get(path);
  if (have) return have;
  let lib: LibraryHandle;
  try {
    lib = koffi.load(path);
  } catch (e) {
    throw new SlirpUnavailable(e);
  }
  const b = bind(lib);
  loaded.set(path, b);
  return b;
}

function bind(lib: LibraryHandle): SlirpBindings {
  // struct in_addr is one uint32 and in6_addr a union with uint32[4] (4-byte aligned): bytes in
  // network order are carried as little-endian words (this module is for little-endian hosts).
  const InAddr = koffi.struct("vnw_in_addr", { s_addr: "uint32_t" });
  const In6Addr = koffi.struct("vnw_in6_addr", { s6_words: koffi.array("uint32_t", 4) });
  koffi.struct("vnw_SlirpConfig", {
    version: "uint32_t",
    restricted: "int",
    in_enabled: "bool",
    vnetwork: InAddr,
    vnetmask: InAddr,
    vhost: InAddr,
    in6_enabled: "bool",
    vprefix_addr6: In6Addr,
    vprefix_len: "uint8_t",
    vhost6: In6Addr,
    vhostname: "const char *",
    tftp_server_name: "const char *",
    tftp_path: "const char *",
    bootfile: "const char *",
    vdhcp_start: InAddr,
    vnameserver: InAddr,
    vnameserver6: In6Addr,
    vdnssearch: "void *",
    vdomainname: "const char *",
    if_mtu: "size_t",
    if_mru: "size_t",
    disable_host_loopback: "bool",
    enable_emu: "bool",
    outbound_addr: "void *",
    outbound_addr6: "void *",
    disable_dns: "bool",
    disable_dhcp: "bool",
  });
  const SendPacket = koffi.proto("intptr_t vnw_slirp_send_packet(uintptr_t buf, size_t len, void *opaque)");
  const GuestError = koffi.proto("void vnw_slirp_guest_error(const char *msg, void *opaque)");
  const ClockGetNs = koffi.proto("int64_t vnw_slirp_clock_get_ns(void *opaque)");
  const TimerNew = koffi.proto("uintptr_t vnw_slirp_timer_new(uintptr_t cb, uintptr_t cb_opaque, void *opaque)");
  const TimerFree = koffi.proto("void vnw_slirp_timer_free(uintptr_t timer, void *opaque)");
  const TimerMod = koffi.proto("void vnw_slirp_timer_mod(uintptr_t timer, int64_t expire_time, void *opaque)");
  const PollFd = koffi.proto("void vnw_slirp_poll_fd(int fd, void *opaque)");
  const Notify = koffi.proto("void vnw_slirp_notify(void *opaque)");
  const InitCompleted = koffi.proto("void vnw_slirp_init_completed(void *slirp, void *opaque)");
  const TimerNewOpaque = koffi.proto("uintptr_t vnw_slirp_timer_new_opaque(int id, uintptr_t cb_opaque, void *opaque)");
  const Callbacks = koffi.struct("vnw_SlirpCb", {
    send_packet: koffi.pointer(SendPacket),
    guest_error: koffi.pointer(GuestError),
    clock_get_ns: koffi.pointer(ClockGetNs),
    timer_new: koffi.pointer(TimerNew),
    timer_free: koffi.pointer(TimerFree),
    timer_mod: koffi.pointer(TimerMod),
    register_poll_fd: koffi.pointer(PollFd),
    unregister_poll_fd: koffi.pointer(PollFd),
    notify: koffi.pointer(Notify),
    init_completed: koffi.pointer(InitCompleted),
    timer_new_opaque: koffi.pointer(TimerNewOpaque),
  });
  const AddPoll = koffi.proto("int vnw_slirp_add_poll(int fd, int events, void *opaque)");
  const GetREvents = koffi.proto("int vnw_slirp_get_revents(int idx, void *opaque)");

  const slirpNew = lib.func("void *slirp_new(const vnw_SlirpConfig *cfg, vnw_SlirpCb *callbacks, void *opaque)");
  const slirpCleanup = lib.func("void slirp_cleanup(void *slirp)");
  const slirpInput = lib.func("void slirp_input(void *slirp, const uint8_t *pkt, int pkt_len)");
  const pollfdsFill = lib.func("void slirp_pollfds_fill(void *slirp, _Inout_ uint32_t *timeout, vnw_slirp_add_poll *add_poll, void *opaque)");
  const pollfdsPoll = lib.func("void slirp_pollfds_poll(void *slirp, int select_error, vnw_slirp_get_revents *get_revents, void *opaque)");
  const handleTimer = lib.func("void slirp_handle_timer(void *slirp, int id, uintptr_t cb_opaque)");
  const addHostfwd = lib.func("int slirp_add_hostfwd(void *slirp, int is_udp, vnw_in_addr host_addr, int host_port, vnw_in_addr guest_addr, int guest_port)");
  const connectionInfo = lib.func("void *slirp_connection_info(void *slirp)");
  const versionString = lib.func("const char *slirp_version_string()");
  const cString = (p: unknown) => koffi.decode(p, "char", -1) as string;

  const create = (s: SlirpSettings, cb: SlirpCallbacks): SlirpHandle => {
    const t0 = process.hrtime.bigint();
    const callbacks = {
      send_packet: koffi.register((buf: bigint, len: number) => {
        const frame = new Uint8Array(Number(len));
        copyFromNative(frame, buf);
        cb.sendPacket(frame);
        return len;
      }, koffi.pointer(SendPacket)),
      guest_error: koffi.register((msg: string) => cb.guestError(msg), koffi.pointer(GuestError)),
      clock_get_ns: koffi.register(() => process.hrtime.bigint() - t0, koffi.pointer(ClockGetNs)),
      // timer_new is only used when timer_new_opaque is missing; it is not.
      timer_new: koffi.register(() => 0n, koffi.pointer(TimerNew)),
      timer_free: koffi.register((timer: bigint) => cb.timerFree(BigInt(timer)), koffi.pointer(TimerFree)),
      // expire_time is in ms of the clock above.
      timer_mod: koffi.register((timer: bigint, expire: bigint) => cb.timerMod(BigInt(timer), Number(expire) - Number((process.hrtime.bigint() - t0) / 1_000_000n)), koffi.pointer(TimerMod)),
      // Slirp also announces each socket here; fill() lists them again before every wait.
      register_poll_fd: koffi.register(() => {}, koffi.pointer(PollFd)),
      unregister_poll_fd: koffi.register(() => {}, koffi.pointer(PollFd)),
      notify: koffi.register(() => cb.notify(), koffi.pointer(Notify)),
      init_completed: koffi.register(() => {}, koffi.pointer(InitCompleted)),
      timer_new_opaque: koffi.register((id: number, cbOpaque: bigint) => cb.timerNew(id, BigInt(cbOpaque)), koffi.pointer(TimerNewOpaque)),
    };
    const registered = Object.values(callbacks);
    // Slirp keeps the callbacks pointer: the struct lives in memory of our own until cleanup.
    const cbs = koffi.alloc(Callbacks, 1);
    koffi.encode(cbs, Callbacks, callbacks);
    const zero6 = new Uint8Array(16);
    const slirp = slirpNew({
      version: 4, restricted: 0, in_enabled: true,
      vnetwork: inAddr(s.network), vnetmask: inAddr(s.netmask), vhost: inAddr(s.host),
      in6_enabled: s.ipv6 !== null,
      vprefix_addr6: in6Addr(s.ipv6?.prefix ?? zero6), vprefix_len: s.ipv6?.prefixLength ?? 0,
      vhost6: in6Addr(s.ipv6?.host ?? zero6),
      vhostname: null, tftp_server_name: null, tftp_path: null, bootfile: null,
      vdhcp_start: inAddr(s.dhcpStart), vnameserver: inAddr(s.nameserver),
      vnameserver6: in6Addr(s.ipv6?.nameserver ?? zero6),
      vdnssearch: null, vdomainname: null, if_mtu: s.mtu, if_mru: s.mtu,
      disable_host_loopback: false, enable_emu: false, outbound_addr: null, outbound_addr6: null,
      disable_dns: false, disable_dhcp: true,
    }, cbs, null);
    if (!slirp) {
      for (const r of registered) koffi.unregister(r);
      koffi.free(cbs);
      throw new Error("slirp_new refused the configuration");
    }
    // add_poll's index is the fd's place in this fill's order (what get_revents is asked by).
    let added = 0;
    let adder: ((fd: number, events: number) => void) | null = null;
    let getter: ((index: number) => number) | null = null;
    const addPoll = koffi.register((fd: number, events: number) => {
      adder?.(fd, events);
      return added++;
    }, koffi.pointer(AddPoll));
    const getREvents = koffi.register((idx: number) => getter?.(idx) ?? 0, koffi.pointer(GetREvents));
    let alive = true;
    return {
      input: (frame) => { if (alive) slirpInput(slirp, frame, frame.length); },
      fill: (add, timeoutMs) => {
        added = 0;
        adder = add;
        const t = [timeoutMs < 0 ? 0xffff_ffff : timeoutMs];
        pollfdsFill(slirp, t, addPoll, null);
        adder = null;
        return t[0] === 0xffff_ffff ? -1 : t[0];
      },
      poll: (error, revents) => {
        getter = revents;
        pollfdsPoll(slirp, error ? 1 : 0, getREvents, null);
        getter = null;
      },
      handleTimer: (id, cbOpaque) => { if (alive) handleTimer(slirp, id, cbOpaque); },
      addHostForward: (udp, hostAddr, hostPort, guestAddr, guestPort) =>
        addHostfwd(slirp, udp ? 1 : 0, inAddr(hostAddr), hostPort, inAddr(guestAddr), guestPort) === 0,
      connectionInfo: () => {
        const p = connectionInfo(slirp);
        const text = cString(p);
        freeNative(p);
        return text;
      },
      cleanup: () => {
        if (!alive) return;
        alive = false;
        slirpCleanup(slirp);
        for (const r of [...registered, addPoll, getREvents]) koffi.unregister(r);
        koffi.free(cbs);
      },
    };
  };
  return { create, version: versionString() as string };
}

/** An IPv4 address (bytes in network order) as struct in_addr's little-endian word. */
function inAddr(b: ArrayLike<number>): { s_addr: number } {
  return { s_addr: new DataView(Uint8Array.from(b).buffer).getUint32(0, true) };
}

function in6Addr(b: Uint8Array): { s6_words: number[] } {
  const dv = new DataView(Uint8Array.from(b).buffer);
  return { s6_words: [0, 4, 8, 12].map((o) => dv.getUint32(o, true)) };
}

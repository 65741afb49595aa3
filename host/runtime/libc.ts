/**
 * The libc calls the host needs (one of its two FFI modules, with libslirp.ts), through koffi, which loads
 * unchanged in Node 20+, Bun and Deno (`--allow-ffi`). Each call checks its return value and
 * throws a SysError naming the call and the errno; calls where EAGAIN is an ordinary outcome
 * return -errno instead so the I/O loop can branch without exceptions.
 *
 * Raw addresses (iovec arrays in the Wasm memory, mmap targets) travel as integers
 * (`uintptr_t` parameters), never as JS objects, so nothing is converted per call.
 */
import koffi from "koffi";
import { constants } from "node:os";

/** A failed system call. */
export class SysError extends Error {
  constructor(readonly call: string, readonly errno: number) {
    super(`${call} failed: ${errnoName(errno)} (${errno})`);
    this.name = "SysError";
  }
  /** The errno's name, e.g. "EACCES". */
  get code(): string { return errnoName(this.errno); }
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([k, v]) => [v as number, k]));

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

export const EAGAIN = constants.errno.EAGAIN;
export const EINTR = constants.errno.EINTR;
export const ENOBUFS = constants.errno.ENOBUFS;

export const O_RDWR = 0o2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLLONESHOT = 1 << 30;
export const EPOLLIN = 0x001;
export const EPOLLPRI = 0x002;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const AF_INET = 2;
export const AF_UNIX = 1;
export const SOCK_DGRAM = 2;
export const SOCK_STREAM = 1;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const MAP_FIXED = 0x10;
export const MFD_CLOEXEC = 1;

const lib = koffi.load("libc.so.6");

const c = {
  open: lib.func("int open(const char *path, int flags, int mode)"),
  close: lib.func("int close(int fd)"),
  ioctlPtr: lib.func("ioctl", "int", ["int", "unsigned long", "void *"]),
  ioctlInt: lib.func("ioctl", "int", ["int", "unsigned long", "unsigned long"]),
  read: lib.func("intptr_t read(int fd, uintptr_t buf, size_t count)"),
  write: lib.func("intptr_t write(int fd, uintptr_t buf, size_t count)"),
  readBuf: lib.func("read", "intptr_t", ["int", "void *", "size_t"]),
  writeBuf: lib.func("write", "intptr_t", ["int", "void *", "size_t"]),
  readv: lib.func("intptr_t readv(int fd, uintptr_t iov, int iovcnt)"),
  writev: lib.func("intptr_t writev(int fd, uintptr_t iov, int iovcnt)"),
  eventfd: lib.func("int eventfd(unsigned int initval, int flags)"),
  epollCreate1: lib.func("int epoll_create1(int flags)"),
  epollCtl: lib.func("int epoll_ctl(int epfd, int op, int fd, void *event)"),
  epollWait: lib.func("int epoll_wait(int epfd, void *events, int maxevents, int timeout)"),
  memfdCreate: lib.func("int memfd_create(const char *name, unsigned int flags)"),
  ftruncate: lib.func("int ftruncate(int fd, int64_t length)"),
  mmap: lib.func("uintptr_t mmap(uintptr_t addr, size_t length, int prot, int flags, int fd, int64_t offset)"),
  munmap: lib.func("int munmap(uintptr_t addr, size_t length)"),
  socket: lib.func("int socket(int domain, int type, int protocol)"),
  fstat: lib.func("fstat", "int", ["int", "void *"]),
  fstatfs: lib.func("fstatfs", "int", ["int", "void *"]),
  socketpair: lib.func("int socketpair(int domain, int type, int protocol, _Out_ int *sv)"),
  bind: lib.func("int bind(int fd, void *addr, uint32_t len)"),
  connect: lib.func("int connect(int fd, void *addr, uint32_t len)"),
  listen: lib.func("int listen(int fd, int backlog)"),
  accept4: lib.func("int accept4(int fd, void *addr, void *len, int flags)"),
  recvmsg: lib.func("intptr_t recvmsg(int fd, void *msg, int flags)"),
  sendmsg: lib.func("intptr_t sendmsg(int fd, void *msg, int flags)"),
  unlink: lib.func("int unlink(const char *path)"),
  mmapAnon: lib.func("mmap", "uintptr_t", ["uintptr_t", "size_t", "int", "int", "int", "int64_t"]),
  memcpyIn: lib.func("void *memcpy(_Out_ uint8_t *dst, uintptr_t src, size_t n)"),
  free: lib.func("void free(void *ptr)"),
  malloc: lib.func("uintptr_t malloc(size_t size)"),
  freeAddress: lib.func("free", "void", ["uintptr_t"]),
  memcpyOut: lib.func("memcpy", "uintptr_t", ["uintptr_t", "void *", "size_t"]),
  syscall: lib.func("long syscall(long number, ...)"),
};

function check(call: string, r: number): number {
  if (r < 0) throw new SysError(call, koffi.errno());
  return r;
}

/** Copies `dst.length` bytes from the native address `src` (memory another library owns) into `dst`. */
export function copyFromNative(dst: Uint8Array, src: bigint | number): void {
  c.memcpyIn(dst, src, dst.length);
}

/** free(3) of memory another library allocated with malloc and handed over. */
export function freeNative(ptr: unknown): void {
  c.free(ptr);
}

/**
 * Runs `fn` with `size` bytes of native memory (for kernel structures that point at other
 * memory, e.g. bpf(2)'s attributes); `put` copies bytes in at an offset. Freed afterwards.
 */
export function withNative<T>(size: number, fn: (base: bigint, put: (offset: number, bytes: Uint8Array) => void) => T): T {
  const base = BigInt(c.malloc(Math.max(1, size)));
  if (base === 0n) throw new SysError("malloc", constants.errno.ENOMEM);
  try {
    return fn(base, (offset, bytes) => {
      if (offset < 0 || offset + bytes.length > size) throw new RangeError("withNative: write outside the block");
      c.memcpyOut(base + BigInt(offset), bytes, bytes.length);
    });
  } finally {
    c.freeAddress(base);
  }
}

/** syscall(2) with an int and a buffer (the kernel reads and writes it) and its length, e.g. bpf(2); throws SysError. */
export function syscall3(name: string, nr: number, a: number, buf: Uint8Array, len: number): number {
  return check(name, Number(c.syscall(nr, "int", a, "void *", buf, "unsigned int", len)));
}

/** open(2); throws SysError. */
export function open(path: string, flags: number, mode = 0): number {
  return check(`open(${path})`, c.open(path, flags | O_CLOEXEC, mode));
}

/** close(2); errors are reported but a closed fd is gone either way. */
export function close(fd: number): void {
  check("close", c.close(fd));
}

/** close(2) for cleanup paths: an fd already closed (or never valid) is not an error there. */
export function closeQuietly(fd: number): void {
  if (fd < 0) return;
  try { close(fd); } catch { /* already closed */ }
}

/** ioctl(2) with a pointer argument (a buffer the kernel reads and/or writes). */
export function ioctl(fd: number, request: number, arg: Uint8Array, name = `ioctl(0x${request.toString(16)})`): number {
  return check(name, c.ioctlPtr(fd, request, arg));
}

/** ioctl(2) with an integer argument passed by value (e.g. TUNSETOFFLOAD). */
export function ioctlValue(fd: number, request: number, value: number, name = `ioctl(0x${request.toString(16)})`): number {
  return check(name, c.ioctlInt(fd, request, value));
}

/** readv(2) on an iovec array at native address `iov`; returns bytes or -errno (never throws). */
export function readv(fd: number, iov: bigint | number, n: number): number {
  const r = Number(c.readv(fd, iov, n));
  return r < 0 ? -koffi.errno() : r;
}

/** writev(2) on an iovec array at native address `iov`; returns bytes or -errno (never throws). */
export function writev(fd: number, iov: bigint | number, n: number): number {
  const r = Number(c.writev(fd, iov, n));
  return r < 0 ? -koffi.errno() : r;
}

/** read(2) into a JS buffer; returns bytes or -errno. */
export function read(fd: number, buf: Uint8Array): number {
  const r = Number(c.readBuf(fd, buf, buf.length));
  return r < 0 ? -koffi.errno() : r;
}

/** write(2) from a JS buffer; returns bytes or -errno. */
export function write(fd: number, buf: Uint8Array): number {
  const r = Number(c.writeBuf(fd, buf, buf.length));
  return r < 0 ? -koffi.errno() : r;
}

export function eventfd(initval = 0, flags = EFD_CLOEXEC | EFD_NONBLOCK): number {
  return check("eventfd", c.eventfd(initval, flags));
}

/** Adds 1 to an eventfd (wakes whoever waits on it). */
export function eventfdSignal(fd: number): void {
  const one = new Uint8Array(8);
  one[0] = 1;
  const r = write(fd, one);
  if (r < 0 && -r !== EAGAIN) throw new SysError("write(eventfd)", -r);
}

/** Reads and clears an eventfd's counter; 0 if it was not signalled. */
export function eventfdDrain(fd: number): number {
  const buf = new Uint8Array(8);
  const r = read(fd, buf);
  if (r < 0) {
    if (-r === EAGAIN) return 0;
    throw new SysError("read(eventfd)", -r);
  }
  return Number(new DataView(buf.buffer).getBigUint64(0, true));
}

/** struct epoll_event is packed on x86_64: u32 events, u64 data (12 bytes). */
const EPOLL_EVENT_SIZE = 12;

export function epollCreate(): number {
  return check("epoll_create1", c.epollCreate1(EPOLL_CLOEXEC));
}

function epollEvent(events: number, token: number): Uint8Array {
  const ev = new Uint8Array(EPOLL_EVENT_SIZE);
  const dv = new DataView(ev.buffer);
  dv.setUint32(0, events, true);
  dv.setBigUint64(4, BigInt(token), true);
  return ev;
}

export function epollAdd(epfd: number, fd: number, events: number, token: number): void {
  check("epoll_ctl(ADD)", c.epollCtl(epfd, EPOLL_CTL_ADD, fd, epollEvent(events, token)));
}

/** Changes the events of a registered fd (re-arms an EPOLLONESHOT registration). */
export function epollMod(epfd: number, fd: number, events: number, token: number): void {
  check("epoll_ctl(MOD)", c.epollCtl(epfd, EPOLL_CTL_MOD, fd, epollEvent(events, token)));
}

export function epollDel(epfd: number, fd: number): void {
  check("epoll_ctl(DEL)", c.epollCtl(epfd, EPOLL_CTL_DEL, fd, new Uint8Array(EPOLL_EVENT_SIZE)));
}

/** A reusable buffer for epoll_wait results. */
export class EpollEvents {
  readonly buf: Uint8Array;
  private readonly dv: DataView;
  constructor(readonly max = 16) {
    this.buf = new Uint8Array(EPOLL_EVENT_SIZE * max);
    this.dv = new DataView(this.buf.buffer);
  }
  events(i: number): number { return this.dv.getUint32(EPOLL_EVENT_SIZE * i, true); }
  token(i: number): number { return Number(this.dv.getBigUint64(EPOLL_EVENT_SIZE * i + 4, true)); }
}

/** epoll_wait(2), blocking the calling thread up to `timeoutMs` (-1: forever). Returns the count (0 on EINTR). */
export function epollWait(epfd: number, out: EpollEvents, timeoutMs: number): number {
  const r = c.epollWait(epfd, out.buf, out.max, timeoutMs);
  if (r < 0) {
    const e = koffi.errno();
    if (e === EINTR) return 0;
    throw new SysError("epoll_wait", e);
  }
  return r;
}

/** epoll_wait(2) on a thread-pool thread; resolves with the count. For hosts without Workers. */
export function epollWaitAsync(epfd: number, out: EpollEvents, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    c.epollWait.async(epfd, out.buf, out.max, timeoutMs, (err: unknown, r: number) => {
      if (err) reject(err);
      else resolve(r < 0 ? 0 : r);
    });
  });
}

export function memfdCreate(name: string): number {
  return check("memfd_create", c.memfdCreate(name, MFD_CLOEXEC));
}

/** Size of the file behind `fd` (fstat st_size). */
export function fstatSize(fd: number): number {
  const st = new Uint8Array(144); // struct stat on x86_64; st_size at 48
  check("fstat", c.fstat(fd, st));
  return Number(new DataView(st.buffer).getBigInt64(48, true));
}

/** The filesystem behind `fd`: its magic (f_type) and block size (f_bsize: the page size of hugetlbfs). */
export function fstatfs(fd: number): { type: number; blockSize: number } {
  const st = new Uint8Array(120); // struct statfs on x86_64: f_type at 0, f_bsize at 8
  check("fstatfs", c.fstatfs(fd, st));
  const dv = new DataView(st.buffer);
  return { type: Number(dv.getBigUint64(0, true)), blockSize: Number(dv.getBigInt64(8, true)) };
}

/** f_type of hugetlbfs (linux/magic.h). */
export const HUGETLBFS_MAGIC = 0x958458f6;

export function ftruncate(fd: number, length: number): void {
  check("ftruncate", c.ftruncate(fd, length));
}

export function mmap(addr: bigint, length: number, prot: number, flags: number, fd: number, offset: number): bigint {
  const r = BigInt(c.mmap(addr, length, prot, flags, fd, offset));
  if (r === 0xffff_ffff_ffff_ffffn) throw new SysError("mmap", koffi.errno());
  return r;
}

export function munmap(addr: bigint, length: number): void {
  check("munmap", c.munmap(addr, length));
}

export function socket(domain: number, type: number, protocol = 0): number {
  return check("socket", c.socket(domain, type | O_CLOEXEC, protocol));
}

export const SOCK_NONBLOCK = 0o4000;
export const SOCK_SEQPACKET = 5;

/** socketpair(2) (close-on-exec); a SOCK_SEQPACKET pair keeps frame boundaries as a tap does. */
export function socketpair(domain: number, type: number): [number, number] {
  const sv = [0, 0];
  check("socketpair", c.socketpair(domain, type | O_CLOEXEC, 0, sv));
  return [sv[0], sv[1]];
}
export const MSG_CMSG_CLOEXEC = 0x40000000;
export const MSG_DONTWAIT = 0x40;
export const MSG_NOSIGNAL = 0x4000;
export const MAP_PRIVATE = 2;
export const MAP_ANONYMOUS = 0x20;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;

/** struct sockaddr_un for `path` (Linux: sa_family u16, sun_path[108]). */
function sockaddrUn(path: string): Uint8Array {
  const p = Buffer.from(path);
  if (p.length >= 108) throw new RangeError(`socket path too long (${p.length} bytes, at most 107): ${path}`);
  const sa = new Uint8Array(110);
  new DataView(sa.buffer).setUint16(0, AF_UNIX, true);
  sa.set(p, 2);
  return sa;
}

/** A listening Unix stream socket at `path` (non-blocking; a stale socket file is replaced). */
export function unixListen(path: string, backlog = 4): number {
  const fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK);
  try {
    c.unlink(path);
    check(`bind(${path})`, c.bind(fd, sockaddrUn(path), 110));
    check("listen", c.listen(fd, backlog));
    return fd;
  } catch (e) {
    c.close(fd);
    throw e;
  }
}

/** A connected Unix stream socket to `path`. */
export function unixConnect(path: string, nonBlocking = false): number {
  const fd = socket(AF_UNIX, SOCK_STREAM | (nonBlocking ? SOCK_NONBLOCK : 0));
  try {
    check(`connect(${path})`, c.connect(fd, sockaddrUn(path), 110));
    return fd;
  } catch (e) {
    c.close(fd);
    throw e;
  }
}

/** accept4(2) non-blocking; returns the new fd or -errno (-EAGAIN when none is pending). */
export function accept(fd: number): number {
  const r = c.accept4(fd, null, null, SOCK_NONBLOCK | O_CLOEXEC);
  return r < 0 ? -koffi.errno() : r;
}

export function unlink(path: string): void {
  c.unlink(path);
}

/** struct msghdr (56 bytes) with one iovec and a control buffer, as native addresses. */
function msghdr(iov: Uint8Array, control: Uint8Array | null): Uint8Array {
  const msg = new Uint8Array(56);
  const dv = new DataView(msg.buffer);
  dv.setBigUint64(16, BigInt(koffi.address(iov)), true); // msg_iov
  dv.setBigUint64(24, 1n, true); // msg_iovlen
  if (control) {
    dv.setBigUint64(32, BigInt(koffi.address(control)), true);
    dv.setBigUint64(40, BigInt(control.length), true);
  }
  return msg;
}

function iovecFor(buf: Uint8Array, len: number): Uint8Array {
  const iov = new Uint8Array(16);
  const dv = new DataView(iov.buffer);
  dv.setBigUint64(0, BigInt(koffi.address(buf)), true);
  dv.setBigUint64(8, BigInt(len), true);
  return iov;
}

/**
 * recvmsg(2) of up to `len` bytes into `buf` with SCM_RIGHTS: returns the byte count (0 at
 * end of stream, -errno on error, -EAGAIN when nothing is there) and the fds received.
 */
export function recvWithFds(fd: number, buf: Uint8Array, len: number, maxFds = 8): { n: number; fds: number[] } {
  const control = new Uint8Array(16 + 4 * maxFds + 8);
  const iov = iovecFor(buf, len);
  const msg = msghdr(iov, control);
  const n = Number(c.recvmsg(fd, msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT));
  if (n < 0) return { n: -koffi.errno(), fds: [] };
  const fds: number[] = [];
  const dv = new DataView(control.buffer);
  const controllen = Number(new DataView(msg.buffer).getBigUint64(40, true));
  for (let at = 0; at + 16 <= controllen;) {
    const clen = Number(dv.getBigUint64(at, true));
    if (clen < 16) break;
    if (dv.getInt32(at + 8, true) === SOL_SOCKET && dv.getInt32(at + 12, true) === SCM_RIGHTS) {
      for (let o = 16; o + 4 <= clen; o += 4) fds.push(dv.getInt32(at + o, true));
    }
    at += (clen + 7) & ~7;
  }
  return { n, fds };
}

/** sendmsg(2) of `data` with `fds` as SCM_RIGHTS; returns bytes sent or -errno. */
export function sendWithFds(fd: number, data: Uint8Array, fds: number[] = []): number {
  const iov = iovecFor(data, data.length);
  let control: Uint8Array | null = null;
  if (fds.length) {
    const clen = 16 + 4 * fds.length;
    control = new Uint8Array((clen + 7) & ~7);
    const dv = new DataView(control.buffer);
    dv.setBigUint64(0, BigInt(clen), true);
    dv.setInt32(8, SOL_SOCKET, true);
    dv.setInt32(12, SCM_RIGHTS, true);
    fds.forEach((f, i) => dv.setInt32(16 + 4 * i, f, true));
  }
  const n = Number(c.sendmsg(fd, msghdr(iov, control), MSG_NOSIGNAL));
  return n < 0 ? -koffi.errno() : n;
}

/** Replaces [addr, addr + length) with fresh zeroed private memory (drops any mapping there). */
export function mmapAnonymousFixed(addr: bigint, length: number): void {
  const r = BigInt(c.mmapAnon(addr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
  if (r === 0xffff_ffff_ffff_ffffn) throw new SysError("mmap(anonymous)", koffi.errno());
}

/** Native address of the first byte of a Wasm memory's backing store. */
export function memoryAddress(memory: WebAssembly.Memory): bigint {
  // On a SharedArrayBuffer koffi needs a view, not the buffer (platform notes).
  return BigInt(koffi.address(new Uint8Array(memory.buffer)));
}

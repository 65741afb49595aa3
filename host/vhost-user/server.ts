/**
 * The vhost-user socket: serves one front-end at a time over a Unix stream socket, in server
 * mode (we listen; QEMU's chardev has server=off) or client mode (we connect to QEMU's
 * server=on socket and reconnect when it goes away). Messages are read with their fds
 * (SCM_RIGHTS) off a non-blocking socket; waiting happens in epoll_wait on a thread-pool
 * thread, so the JS thread stays free. A front-end that disconnects, crashes or sends garbage
 * ends its session only: the back-end releases what it was given and waits for the next.
 */
import { AsyncEpoll } from "../runtime/async-epoll.js";
import * as libc from "../runtime/libc.js";
import type { Logger, Message, VhostUserNetBackend } from "./backend.js";
import { decodeHeader, encodeMessage, FLAG_REPLY, FLAG_VERSION, HEADER_SIZE, MAX_PAYLOAD, REQUEST_NAMES } from "./protocol.js";

export interface ServerOptions {
  socketPath: string;
  /** Connect to the front-end's socket instead of listening (QEMU `server=on`). */
  client?: boolean;
  /** Delay between reconnection attempts in client mode, ms. Default 500. */
  reconnectMs?: number;
  log?: Logger;
}

const TOKEN_SOCK = 1;

export class VhostUserServer {
  private readonly poll = new AsyncEpoll(1);
  private stopping = false;
  private listenFd = -1;
  private readonly log: Logger;
  /** Sessions served so far (connections accepted or made). */
  sessions = 0;

  constructor(readonly backend: VhostUserNetBackend, readonly opts: ServerOptions) {
    this.log = opts.log ?? (() => {});
  }

  /** Serves until stop(); resolves when stopped. */
  async run(): Promise<void> {
    if (!this.opts.client) {
      this.listenFd = libc.unixListen(this.opts.socketPath);
      this.log("info", `listening on ${this.opts.socketPath}`);
    }
    try {
      while (!this.stopping) {
        const fd = this.opts.client ? await this.connectLoop() : await this.acceptOne();
        if (fd < 0) break;
        this.poll.add(fd, libc.EPOLLIN, TOKEN_SOCK);
        this.sessions++;
        this.log("info", `front-end connected (session ${this.sessions})`);
        const why = await this.serve(fd);
        this.log(why === "stopped" ? "info" : "warn", `front-end session ended: ${why}`);
        libc.close(fd);
        await this.backend.disconnect();
      }
    } finally {
      if (this.listenFd >= 0) {
        libc.close(this.listenFd);
        libc.unlink(this.opts.socketPath);
      }
      this.poll.close();
    }
  }

  /** Ends the current session and run(). */
  stop(): void {
    this.stopping = true;
    this.poll.wake();
  }

  /** Waits for readiness of the registered socket; false if stopping. */
  private async wait(): Promise<boolean> {
    for (;;) {
      const ready = await this.poll.wait();
      if (this.stopping) return false;
      if (ready.some((r) => r.token === TOKEN_SOCK)) return true;
    }
  }

  /** Waits for the next front-end; the listening socket is watched only meanwhile. */
  private async acceptOne(): Promise<number> {
    this.poll.add(this.listenFd, libc.EPOLLIN, TOKEN_SOCK);
    try {
      for (;;) {
        const fd = libc.accept(this.listenFd);
        if (fd >= 0) return fd;
        if (!(await this.wait())) return -1;
      }
    } finally {
      this.poll.del(this.listenFd);
    }
  }

  private async connectLoop(): Promise<number> {
    while (!this.stopping) {
      try {
        return libc.unixConnect(this.opts.socketPath, true);
      } catch (e) {
        this.log("debug", `connect ${this.opts.socketPath}: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, this.opts.reconnectMs ?? 500));
      }
    }
    return -1;
  }

  /** Reads and handles messages until the session ends; returns why. */
  private async serve(fd: number): Promise<string> {
    const header = new Uint8Array(HEADER_SIZE);
    const payload = new Uint8Array(MAX_PAYLOAD);
    try {
      for (;;) {
        const h = libc.recvWithFds(fd, header, HEADER_SIZE);
        if (h.n === -libc.EAGAIN) {
          if (!(await this.wait())) return "stopped";
          continue;
        }
        if (h.n === 0) return "front-end closed the connection";
        if (h.n < 0) return `recvmsg: ${libc.errnoName(-h.n)}`;
        const fds = h.fds;
        // Until the message is whole, its fds are ours to close: a front-end that goes away
        // mid-message (or sends one we refuse) must not leave them open.
        const refuse = (why: string) => {
          for (const x of fds) libc.closeQuietly(x);
          return why;
        };
        if (h.n < HEADER_SIZE) {
          const rest = await this.readExact(fd, header.subarray(h.n), HEADER_SIZE - h.n, fds);
          if (rest) return refuse(rest);
        }
        const hdr = decodeHeader(header);
        if ((hdr.flags & 0x3) !== FLAG_VERSION) return refuse(`protocol version ${hdr.flags & 3} (expected 1)`);
        if (hdr.size > MAX_PAYLOAD) return refuse(`${REQUEST_NAMES[hdr.request] ?? hdr.request}: payload of ${hdr.size} bytes`);
        if (hdr.size) {
          const err = await this.readExact(fd, payload, hdr.size, fds);
          if (err) return refuse(err);
        }
        const m: Message = { request: hdr.request, flags: hdr.flags, payload: payload.slice(0, hdr.size), fds };
        const out = await this.backend.handle(m);
        if (out.reply) {
          const sent = libc.sendWithFds(fd, encodeMessage(hdr.request, FLAG_VERSION | FLAG_REPLY, out.reply));
          if (sent < 0) return `sendmsg: ${libc.errnoName(-sent)}`;
        }
        if (out.close) return out.close;
      }
    } finally {
      try { this.poll.del(fd); } catch { /* gone */ }
    }
  }

  /** Reads exactly `len` bytes into `buf` (collecting any fds); returns an error text or null. */
  private async readExact(fd: number, buf: Uint8Array, len: number, fds: number[]): Promise<string | null> {
    let got = 0;
    while (got < len) {
      const r = libc.recvWithFds(fd, buf.subarray(got), len - got);
      if (r.n === -libc.EAGAIN) {
        if (!(await this.wait())) return "stopped";
        continue;
      }
      if (r.n <= 0) return r.n === 0 ? "front-end closed mid-message" : `recvmsg: ${libc.errnoName(-r.n)}`;
      fds.push(...r.fds);
      got += r.n;
    }
    return null;
  }
}

/**
 * The per-thread reactor behind AsyncEpoll: many loops waiting at once hold one thread-pool
 * thread, not one each (Node's pool has 4 threads, so a fifth waiter used to wait forever: a
 * back-end serving three guests, or two under Bun, stopped answering its sockets).
 */
import { afterEach, describe, expect, it } from "vitest";
import { AsyncEpoll } from "../../host/runtime/async-epoll.js";
import * as libc from "../../host/runtime/libc.js";

const open: { polls: AsyncEpoll[]; fds: number[] } = { polls: [], fds: [] };
afterEach(() => {
  for (const p of open.polls) { p.wake(); p.close(); }
  for (const fd of open.fds) libc.close(fd);
  open.polls = [];
  open.fds = [];
});

function waiter(token: number): { poll: AsyncEpoll; fd: number } {
  const fd = libc.eventfd();
  const poll = new AsyncEpoll();
  poll.add(fd, libc.EPOLLIN, token);
  open.polls.push(poll);
  open.fds.push(fd);
  return { poll, fd };
}

const within = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms))]);

describe("AsyncEpoll", () => {
  it("twelve owners wait at once and the last one still hears its fd", async () => {
    const ws = Array.from({ length: 12 }, (_, i) => waiter(i + 1));
    const waits = ws.map((w) => w.poll.wait());
    libc.eventfdSignal(ws[11].fd);
    const ready = await within(waits[11], 3000, "the twelfth waiter");
    expect(ready).toEqual([{ token: 12, events: libc.EPOLLIN }]);
    // The others are still waiting, and each hears its own fd only.
    libc.eventfdSignal(ws[0].fd);
    expect(await within(waits[0], 3000, "the first waiter")).toEqual([{ token: 1, events: libc.EPOLLIN }]);
  });

  it("a level-triggered fd that stays ready is reported at every wait, an EPOLLONESHOT one only after mod()", async () => {
    const level = waiter(1);
    libc.eventfdSignal(level.fd);
    expect(await within(level.poll.wait(), 3000, "first wait")).toHaveLength(1);
    expect(await within(level.poll.wait(), 3000, "second wait")).toHaveLength(1);
    const fd = libc.eventfd();
    open.fds.push(fd);
    const once = new AsyncEpoll();
    open.polls.push(once);
    once.add(fd, libc.EPOLLIN | libc.EPOLLONESHOT, 7);
    libc.eventfdSignal(fd);
    expect(await within(once.wait(), 3000, "one-shot")).toEqual([{ token: 7, events: libc.EPOLLIN }]);
    expect(await once.wait(200)).toEqual([]);
    once.mod(fd, libc.EPOLLIN | libc.EPOLLONESHOT, 8);
    expect(await within(once.wait(), 3000, "re-armed")).toEqual([{ token: 8, events: libc.EPOLLIN }]);
  });

  it("wake() ends a wait with nothing ready; a timeout ends it too", async () => {
    const { poll } = waiter(1);
    const w = poll.wait();
    poll.wake();
    expect(await within(w, 3000, "woken wait")).toEqual([]);
    expect(await poll.wait(50)).toEqual([]);
  });
});

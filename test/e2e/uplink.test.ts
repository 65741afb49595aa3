/**
 * The uplink with real guests: the `vhost-user` CLI on the embedded network (uplink on by
 * default), in its own mount namespace whose /etc/resolv.conf names a resolver this test runs
 * on the host's loopback, so nothing leaves the machine. Two Debian guests under QEMU, at once:
 * DHCP from the one server, a name resolved through the host's resolver, a file fetched from
 * an HTTP server on the host's 127.0.0.1 through the gateway's address (sha256), an upload to a
 * sink on the host's loopback (sha256), UDP both ways with iperf3 (to the host and, reversed,
 * from it), and a host client reaching a server in a guest through --forward (sha256). The guests' kernels count no
 * checksum errors, and the uplink's counters show the large segments that went out whole.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { boot, guestAvailable, type Guest } from "../../host/guests/qemu.js";
import { libslirp } from "../../host/runtime/libslirp.js";
import { DnsResponder } from "../support/dns-responder.js";
import { dhcpScript } from "../../host/guests/shell.js";
import { cli, sleep } from "./qemu-env.js";

const guestOk = guestAvailable();
let slirpOk = true;
try { libslirp(); } catch { slirpOk = false; }
const rootOk = process.getuid?.() === 0 && existsSync("/usr/bin/unshare") && existsSync("/usr/bin/iperf3");
const why = !guestOk.ok ? guestOk.reason : !slirpOk ? "libslirp0 is not installed" : !rootOk ? "needs root (a mount namespace for resolv.conf), unshare and iperf3" : "";

const SUBNET = "198.51.100";
const GW = `${SUBNET}.1`;
const PREFIX6 = "2001:db8:7::";
const GW6 = `${PREFIX6}1`;
const RESOLVER = "127.0.0.77";
const NAME = "files.vnw.test";
const FORWARDED = `${SUBNET}.50`;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const port = () => 20000 + Math.floor(Math.random() * 20000);

const dhcp = dhcpScript(["router", "dns"], `ip route add default via $router; echo "nameserver $dns" > /etc/resolv.conf`);

describe.skipIf(why !== "")(`the uplink with real guests${why ? ` (skipped: ${why})` : ""}`, () => {
  const blob = randomBytes(1 << 20);
  const upload = { sha: "", bytes: 0 };
  const ports = { http: 0, http6: 0, sink: 0, iperf: port(), fwdTcp: port() };
  let http: HttpServer;
  let http6: HttpServer;
  let sink: Server;
  let dns: DnsResponder;
  let iperf: ChildProcess;
  let backend: ChildProcess;
  let log = "";
  let dir = "";
  const sockets = [0, 1].map((i) => `/tmp/vnw-uplink-${process.pid}-${i}.sock`);
  let a: Guest;
  let b: Guest;
  let forwardedSha = "";

  beforeAll(async () => {
    http = createHttpServer((req, res) => { res.writeHead(req.url === "/blob" ? 200 : 404); res.end(req.url === "/blob" ? blob : ""); });
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", () => r()));
    ports.http = (http.address() as { port: number }).port;
    // The same server on the host's IPv6 loopback, for the guests' IPv6 (the gateway's prefix::1).
    http6 = createHttpServer(http.listeners("request")[0] as Parameters<typeof createHttpServer>[0]);
    await new Promise<void>((r) => http6.listen(0, "::1", () => r()));
    ports.http6 = (http6.address() as { port: number }).port;
    sink = createServer((s) => {
      const h = createHash("sha256");
      let n = 0;
      s.on("data", (d) => { h.update(d); n += d.length; });
      s.on("end", () => { upload.sha = h.digest("hex"); upload.bytes = n; });
    });
    await new Promise<void>((r) => sink.listen(0, "127.0.0.1", () => r()));
    ports.sink = (sink.address() as { port: number }).port;
    dns = await DnsResponder.listen(RESOLVER, { [NAME]: [198, 51, 100, 1] });
    iperf = spawn("iperf3", ["-s", "-B", "127.0.0.1", "-p", String(ports.iperf)], { stdio: "ignore" });
    dir = mkdtempSync(join(tmpdir(), "vnw-uplink-"));
    writeFileSync(join(dir, "resolv.conf"), `nameserver ${RESOLVER}\n`);
    const args = [cli, "vhost-user", ...sockets.flatMap((s) => ["--socket", s]), "--net", `${SUBNET}.0`, "--net6", PREFIX6, "--stats", "1",
      "--forward", `tcp:${ports.fwdTcp}:${FORWARDED}:7000`];
    // The back-end's own view of /etc/resolv.conf: the test's resolver, nothing beyond this machine.
    backend = spawn("unshare", ["--mount", "--propagation", "private", "sh", "-c",
      `mount --bind "${join(dir, "resolv.conf")}" /etc/resolv.conf && exec "${process.execPath}" "$@"`, "sh", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    backend.stdout!.on("data", (d) => { log += d; });
    backend.stderr!.on("data", (d) => { log += d; });
    for (let i = 0; i < 200 && !sockets.every(existsSync); i++) await sleep(25);
    if (!sockets.every(existsSync)) throw new Error(`back-end did not start:\n${log}`);

    a = boot({ socket: sockets[0], mac: "52:54:00:00:02:0a", script: `${dhcp}
nslookup ${NAME} > /tmp/ns 2>&1; echo "VNW resolved $(awk '/^Address/ { a = $NF } END { print a }' /tmp/ns)"
wget -q -O /tmp/f http://${NAME}:${ports.http}/blob && echo "VNW fetched $(sha256sum /tmp/f | cut -d' ' -f1)"
dd if=/dev/urandom of=/tmp/u bs=65536 count=32 2>/dev/null
echo "VNW uploading $(sha256sum /tmp/u | cut -d' ' -f1)"
nc ${GW} ${ports.sink} < /tmp/u
iperf3 -c ${GW} -p ${ports.iperf} -u -b 20M -t 2 > /tmp/up 2>&1; echo "VNW udpup $(grep -c receiver /tmp/up) $(awk '/receiver/ { print $(NF-3) }' /tmp/up)"
iperf3 -c ${GW} -p ${ports.iperf} -u -b 20M -t 2 -R > /tmp/down 2>&1; echo "VNW udpdown $(grep -c receiver /tmp/down) $(awk '/receiver/ { print $(NF-3) }' /tmp/down)"
echo "VNW csumerr $(csumerr Tcp) $(csumerr Udp)"` });
    b = boot({ socket: sockets[1], mac: "52:54:00:00:02:0b", script: `${dhcp}
ip addr add ${FORWARDED}/24 dev eth0
echo "VNW alias up"
wget -q -O /tmp/f http://${GW}:${ports.http}/blob && echo "VNW fetched $(sha256sum /tmp/f | cut -d' ' -f1)"
nc -l -p 7000 > /tmp/r
echo "VNW received $(sha256sum /tmp/r | cut -d' ' -f1)"
# IPv6: wait for the SLAAC address to leave DAD, then fetch from the host's ::1 through the gateway's prefix::1.
for i in $(seq 20); do ip -6 addr show dev eth0 scope global | grep -q inet6 && ! ip -6 addr show dev eth0 | grep -q tentative && break; sleep 0.5; done
wget -q -O /tmp/f6 "http://[${GW6}]:${ports.http6}/blob" && echo "VNW fetched6 $(sha256sum /tmp/f6 | cut -d' ' -f1)"
echo "VNW csumerr $(csumerr Tcp) $(csumerr Udp)"` });
    await b.waitFor(/VNW alias up/, 120_000);
    await sleep(1000);
    // The host reaches the server in guest B through the forwarded port.
    const sent = randomBytes(1 << 20);
    forwardedSha = sha(sent);
    for (let i = 0; i < 40; i++) {
      const ok = await new Promise<boolean>((resolve) => {
        const c = connect(ports.fwdTcp, "127.0.0.1");
        c.on("error", () => resolve(false));
        c.on("connect", () => c.end(sent, () => resolve(true)));
      });
      if (ok) break;
      await sleep(500);
    }
    await Promise.all([a.waitFor(/VNW csumerr/, 150_000), b.waitFor(/VNW csumerr/, 150_000)]);
    await sleep(1500); // one more stats line
  }, 240_000);

  afterAll(async () => {
    for (const g of [a, b]) g?.child.kill("SIGKILL");
    backend?.kill("SIGTERM");
    iperf?.kill("SIGTERM");
    http?.close();
    http6?.close();
    sink?.close();
    dns?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("one DHCP server hands both guests a lease with the gateway as router and .3 as DNS", () => {
    for (const g of [a, b]) expect(g.markers().get("lease")).toMatch(new RegExp(`^${SUBNET}\\.1\\d\\d router ${GW} dns ${SUBNET}\\.3$`));
  });

  it("a name resolves through the host's resolver (on its loopback)", () => {
    expect(a.markers().get("resolved")).toBe(GW);
    expect(dns.queries).toBeGreaterThan(0);
  });

  it("both guests fetch a file from an HTTP server on the host's 127.0.0.1 through the gateway's address", () => {
    expect(a.markers().get("fetched")).toBe(sha(blob));
    expect(b.markers().get("fetched")).toBe(sha(blob));
  });

  it("IPv6 through the uplink: a guest fetches from an HTTP server on the host's ::1 through the gateway's prefix::1", () => {
    expect(b.markers().get("fetched6")).toBe(sha(blob));
  });

  it("an upload from a guest reaches a sink on the host's loopback intact", () => {
    expect(upload.bytes).toBe(2 << 20);
    expect(upload.sha).toBe(a.markers().get("uploading"));
  });

  it("UDP both ways (iperf3 through the gateway to the host, and back)", () => {
    expect(a.markers().get("udpup")).toMatch(/^1 /);
    expect(a.markers().get("udpdown")).toMatch(/^1 /);
  });

  it("a host client reaches a server in a guest through --forward", () => {
    expect(b.markers().get("received")).toBe(forwardedSha);
  });

  it("no guest saw a checksum error; large segments went to the host whole, partial checksums finished on the way", () => {
    expect(a.markers().get("csumerr")).toBe("0 0");
    expect(b.markers().get("csumerr")).toBe("0 0");
    const last = [...log.matchAll(/stats \[uplink\]: to host (\d+) \(large segments (\d+)\), from host (\d+), suppressed (\d+); switch finished (\d+)/g)].pop();
    expect(last, log.slice(-2000)).toBeDefined();
    const [, toHost, gso, fromHost, , finished] = last!.map(Number);
    expect(toHost).toBeGreaterThan(1000);
    expect(fromHost).toBeGreaterThan(1000);
    expect(gso).toBeGreaterThan(0);
    expect(finished).toBeGreaterThan(0);
  });
});

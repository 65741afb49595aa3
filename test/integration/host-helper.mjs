// Host-side endpoints for the integration tests, run inside a test namespace with the same
// node binary: `ip netns exec NS node host-helper.mjs MODE ...`. Prints results as JSON.
import dgram from "node:dgram";
import net from "node:net";

const [mode, addr, portText, arg] = process.argv.slice(2);
const port = Number(portText);
const family = addr.includes(":") ? "udp6" : "udp4";

if (mode === "udp-recv") {
  // Receive `arg` datagrams, print their payloads as hex.
  const want = Number(arg);
  const got = [];
  const s = dgram.createSocket(family);
  s.on("message", (m) => {
    got.push(m.toString("hex"));
    if (got.length === want) { console.log(JSON.stringify(got)); s.close(); }
  });
  s.bind(port, addr, () => console.error("ready"));
  setTimeout(() => { console.log(JSON.stringify(got)); process.exit(got.length === want ? 0 : 3); }, 8000).unref();
} else if (mode === "udp-send") {
  const s = dgram.createSocket(family);
  s.send(Buffer.from(arg, "hex"), port, addr, (e) => { s.close(); process.exit(e ? 1 : 0); });
} else if (mode === "udp-burst") {
  // Send `arg` datagrams whose payload is their 4-byte big-endian sequence number, paced so
  // the tap queue (not the sender) is what fills up.
  const count = Number(arg);
  const s = dgram.createSocket(family);
  let i = 0;
  const next = () => {
    if (i === count) { s.close(); return; }
    const b = Buffer.alloc(4);
    b.writeUInt32BE(i++);
    s.send(b, port, addr, next);
  };
  next();
} else if (mode === "tcp-sink") {
  // Accept one connection, read to the end, print {bytes, sha256}.
  const { createHash } = await import("node:crypto");
  const srv = net.createServer((c) => {
    const h = createHash("sha256");
    let bytes = 0;
    c.on("data", (d) => { h.update(d); bytes += d.length; });
    c.on("end", () => { console.log(JSON.stringify({ bytes, sha256: h.digest("hex") })); srv.close(); process.exit(0); });
  });
  srv.listen(port, addr, () => console.error("ready"));
  setTimeout(() => process.exit(4), Number(arg ?? 60000)).unref();
} else if (mode === "tcp-say") {
  // Answer each connection with the next line of `arg` (lines separated by "|"), then close;
  // exit after the last. A guest asks it what to do next (it cannot remember across reboots).
  const lines = String(arg).split("|");
  let i = 0;
  const srv = net.createServer((c) => {
    c.end(`${lines[i++]}\n`);
    if (i === lines.length) srv.close();
  });
  srv.listen(port, addr, () => console.error("ready"));
  setTimeout(() => process.exit(4), 240_000).unref();
} else if (mode === "tcp-sinks") {
  // Accept `arg` connections one after another; print {port, bytes, sha256} for each.
  const { createHash } = await import("node:crypto");
  let left = Number(arg);
  const srv = net.createServer((c) => {
    const h = createHash("sha256");
    let bytes = 0;
    c.on("data", (d) => { h.update(d); bytes += d.length; });
    c.on("end", () => {
      console.log(JSON.stringify({ bytes, sha256: h.digest("hex") }));
      if (--left === 0) { srv.close(); process.exit(0); }
    });
  });
  srv.listen(port, addr, () => console.error("ready"));
  setTimeout(() => process.exit(4), 240_000).unref();
} else if (mode === "tcp-slow-sink") {
  // Accept one connection and read it at no more than `arg` bytes/s (TCP's window holds the
  // sender back); print "progress BYTES" on stderr as it goes and {bytes, sha256} at the end.
  const { createHash } = await import("node:crypto");
  const rate = Number(arg);
  const srv = net.createServer((c) => {
    const h = createHash("sha256");
    const start = Date.now();
    let bytes = 0;
    c.on("data", (d) => {
      h.update(d);
      bytes += d.length;
      const ahead = bytes / rate * 1000 - (Date.now() - start);
      if (ahead > 0) { c.pause(); setTimeout(() => c.resume(), ahead); }
    });
    const progress = setInterval(() => console.error(`progress ${bytes}`), 100);
    c.on("end", () => { clearInterval(progress); console.log(JSON.stringify({ bytes, sha256: h.digest("hex") })); srv.close(); process.exit(0); });
  });
  srv.listen(port, addr, () => console.error("ready"));
  setTimeout(() => process.exit(4), 600_000).unref();
} else if (mode === "tcp-source") {
  // Connect, send `arg` pseudo-random bytes, print {bytes, sha256}.
  const { createHash, randomBytes } = await import("node:crypto");
  const data = randomBytes(Number(arg));
  const c = net.connect({ host: addr, port }, () => {
    c.end(data, () => console.log(JSON.stringify({ bytes: data.length, sha256: createHash("sha256").update(data).digest("hex") })));
  });
  c.on("close", () => process.exit(0));
  c.on("error", (e) => { console.error(String(e)); process.exit(5); });
} else if (mode === "tcp-listen") {
  // Listen for `arg` ms: the kernel answers SYNs itself (SYN-ACK) whether or not we accept.
  const srv = net.createServer((c) => c.destroy());
  srv.listen(port, addr, () => console.error("ready"));
  setTimeout(() => { srv.close(); process.exit(0); }, Number(arg));
} else if (mode === "tcp-connect") {
  // Start a connection: its SYN is what the test looks at. Exits when refused/reset or after `arg` ms.
  const c = net.connect({ host: addr, port });
  c.on("error", () => process.exit(0));
  c.on("connect", () => process.exit(0));
  setTimeout(() => process.exit(0), Number(arg));
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
